"""TRADES (Zhang et al. 2019) against its formula, computed by hand on tiny inputs."""

import math

import pytest
import torch
import torch.nn.functional as F

import methods
from bench.data import Batch
from bench.models.taps import Outputs
from bench.plugin_check import one_step
from methods.api import Step

CLEAN = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]
ADV = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]
Y = [0, 2]


def softmax(z):
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q))


def trades(**hp):
    cls = methods.discover()[0]["trades"].cls
    return cls(cls.Hparams(**hp), ctx=None)


def make_step(clean, adv, y=Y):
    """A student that answers `clean` on the clean batch (zeros) and `adv` on x_adv (ones)."""
    x = torch.zeros(len(y), 1)
    batch = Batch(x, torch.tensor(y), torch.arange(len(y)), x_adv=torch.ones(len(y), 1))
    return Step(batch, None, lambda inp: Outputs(clean if inp.sum() == 0 else adv), 0, 1)


def test_loss_is_cross_entropy_plus_beta_times_the_kl_from_clean_to_adversarial():
    ce = sum(-math.log(softmax(c)[y]) for c, y in zip(CLEAN, Y)) / 2
    robust = sum(kl(softmax(c), softmax(a)) for c, a in zip(CLEAN, ADV)) / 2  # batch mean
    got = trades().loss(make_step(torch.tensor(CLEAN), torch.tensor(ADV))).item()
    assert got == pytest.approx(ce + 6.0 * robust, rel=1e-6)  # beta = 6, the paper's
    got = trades(beta=1.0).loss(make_step(torch.tensor(CLEAN), torch.tensor(ADV))).item()
    assert got == pytest.approx(ce + robust, rel=1e-6)


def test_robustness_term_is_zero_when_the_model_ignores_the_perturbation():
    ce = sum(-math.log(softmax(c)[y]) for c, y in zip(CLEAN, Y)) / 2
    clean = torch.tensor(CLEAN)
    assert trades(beta=50.0).loss(make_step(clean, clean.clone())).item() == pytest.approx(
        ce, rel=1e-6)


def test_gradient_flows_through_the_clean_prediction_of_the_robustness_term():
    """As the released code: KL(S(x) || S(x')) with S(x) not detached."""
    clean = torch.tensor(CLEAN, requires_grad=True)
    adv = torch.tensor(ADV, requires_grad=True)
    trades(beta=2.0).loss(make_step(clean, adv)).backward()
    # d/dz_clean of [CE + 2 KL(softmax(z_clean) || softmax(z_adv))], by hand per example:
    # CE: (p - onehot) / B; KL: p_k * (log p_k - log q_k - KL) * 2 / B.
    for i, (c, a, y) in enumerate(zip(CLEAN, ADV, Y)):
        p, q = softmax(c), softmax(a)
        d = kl(p, q)
        want = [((p[k] - (k == y)) + 2 * p[k] * (math.log(p[k]) - math.log(q[k]) - d)) / 2
                for k in range(3)]
        assert clean.grad[i].tolist() == pytest.approx(want, abs=1e-6)
        assert adv.grad[i].tolist() == pytest.approx([2 * (q[k] - p[k]) / 2 for k in range(3)],
                                                     abs=1e-6)


def test_trains_without_a_teacher_as_a_reference_row():
    cls = methods.discover()[0]["trades"].cls
    assert cls.family == "reference" and not cls.uses_teacher and cls.perturb_mode == "eval"
    loss = one_step(cls)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_attack_starts_at_a_small_gaussian_offset_so_the_kl_gradient_is_not_zero():
    """At x' = x the KL's gradient vanishes; from x + 0.001 N(0, 1) one step moves every pixel."""
    from bench.protocols import get_protocol
    from bench.models import build_model
    from bench.train.engine import build_method
    p = get_protocol("mnist5k")
    torch.manual_seed(0)
    student = build_model(p.student_arch, p).eval()
    cls = methods.discover()[0]["trades"].cls
    x = torch.rand(8, *p.input_shape) * 0.8 + 0.1  # away from the [0, 1] clip
    m = build_method(cls, cls.Hparams(steps=1), p, student, None, x)
    x_adv = m.perturb(Batch(x, torch.zeros(8, dtype=torch.long), torch.arange(8)), student, None)
    step_size = p.eval.pgd_step_size
    moved = (x_adv - x).abs()
    assert moved.max() <= step_size + 0.006  # one signed step from a start within ~0.005 of x
    assert (moved > step_size / 2).float().mean() > 0.5  # most pixels took a full step
    assert F.kl_div(F.log_softmax(student(x_adv), 1), F.softmax(student(x), 1),
                    reduction="batchmean") > 0
