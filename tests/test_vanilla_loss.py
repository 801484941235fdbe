import math

import pytest
import torch
import torch.nn.functional as F

from bench.data import Batch
from bench.models.taps import Outputs
from methods.api import Step
from methods.losses import kd_loss
from methods.vanilla import Vanilla


def softmax(z):
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def kl_by_hand(s_logits, t_logits, T):
    """sum_i p_t,i * (log p_t,i - log p_s,i) per row, averaged over rows, times T^2."""
    total = 0.0
    for s, t in zip(s_logits, t_logits):
        ps, pt = softmax([v / T for v in s]), softmax([v / T for v in t])
        total += sum(b * (math.log(b) - math.log(a)) for a, b in zip(ps, pt))
    return total / len(s_logits) * T * T


S = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]
T_ = [[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]]


def test_kd_loss_is_zero_when_student_equals_teacher():
    z = torch.randn(8, 10)
    assert kd_loss(z, z.clone(), T=4.0).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("T", [1.0, 4.0, 10.0])
def test_kd_loss_matches_the_formula_computed_by_hand(T):
    got = kd_loss(torch.tensor(S), torch.tensor(T_), T).item()
    assert got == pytest.approx(kl_by_hand(S, T_, T), rel=1e-5)


def test_kd_loss_carries_the_T_squared_factor():
    s, t = torch.tensor(S), torch.tensor(T_)
    raw = F.kl_div(F.log_softmax(s / 4, 1), F.softmax(t / 4, 1), reduction="batchmean")
    assert kd_loss(s, t, 4.0).item() == pytest.approx(16 * raw.item(), rel=1e-6)


class _Student:
    def __init__(self, logits):
        self.logits = logits

    def __call__(self, x):
        return Outputs(self.logits)


def test_vanilla_mixes_kd_and_cross_entropy_with_alpha():
    s, t, y = torch.tensor(S, requires_grad=True), torch.tensor(T_), torch.tensor([0, 2])
    method = Vanilla(Vanilla.Hparams(T=4.0, alpha=0.9), ctx=None)
    step = Step(Batch(torch.zeros(2, 1), y, torch.arange(2)), Outputs(t), _Student(s), 0, 1)
    expected = 0.9 * kl_by_hand(S, T_, 4.0) + 0.1 * F.cross_entropy(s, y).item()
    assert method.loss(step).item() == pytest.approx(expected, rel=1e-5)
