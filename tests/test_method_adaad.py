"""AdaAD (Huang et al. 2023): its outer loss against the formula by hand and against the released
code's line, and its inner objective (what the attack maximises, through both networks)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import methods
from bench.data import Batch
from bench.models.taps import Outputs
from bench.plugin_check import one_step
from bench.train.engine import teacher_attached
from methods.api import Step

CLEAN = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]  # student on x
ADV = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]  # student on x'
T_CLEAN = [[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]]
T_ADV = [[0.5, 2.0, 0.0], [-1.0, 2.0, 1.0]]


def softmax(z):
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q))


def adaad(**hp):
    cls = methods.discover()[0]["adaad"].cls
    return cls(cls.Hparams(**hp), ctx=None)


def make_step(clean=CLEAN, adv=ADV, t_clean=T_CLEAN, t_adv=T_ADV):
    x = torch.zeros(len(clean), 1)
    batch = Batch(x, torch.zeros(len(clean), dtype=torch.long), torch.arange(len(clean)),
                  x_adv=torch.ones(len(clean), 1))
    c, a, ta = (v if isinstance(v, torch.Tensor) else torch.tensor(v) for v in (clean, adv, t_adv))
    return Step(batch, Outputs(torch.as_tensor(t_clean)),
                lambda inp: Outputs(c if inp.sum() == 0 else a), 0, 1,
                lambda inp, taps=(): Outputs(ta if inp.sum() != 0 else torch.as_tensor(t_clean)))


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_loss_is_the_kl_to_the_teacher_at_x_adv_averaged_over_batch_and_classes(alpha):
    adv = sum(kl(softmax(t), softmax(s)) for s, t in zip(ADV, T_ADV)) / (2 * 3)
    clean = sum(kl(softmax(t), softmax(s)) for s, t in zip(CLEAN, T_CLEAN)) / (2 * 3)
    got = adaad(alpha=alpha).loss(make_step()).item()
    assert got == pytest.approx(alpha * adv + (1 - alpha) * clean, rel=1e-6)


def test_loss_equals_the_released_code_on_fixed_tensors():
    """main.py, method AdaAD, CIFAR-10 branch: nn.KLDivLoss() (mean over batch x classes)."""
    g = torch.Generator().manual_seed(6)
    ori, adv, t_ori, t_adv = (torch.randn(8, 10, generator=g) * 2 for _ in range(4))
    alpha = 0.8
    with pytest.warns(UserWarning, match="mean"):  # torch's note on KLDivLoss's default
        kl1 = nn.KLDivLoss()(F.log_softmax(adv, dim=1), F.softmax(t_adv.detach(), dim=1))
        kl2 = nn.KLDivLoss()(F.log_softmax(ori, dim=1), F.softmax(t_ori.detach(), dim=1))
    ref = alpha * kl1 + (1 - alpha) * kl2
    got = adaad(alpha=alpha).loss(make_step(ori, adv, t_ori, t_adv))
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)


def test_loss_is_zero_where_the_student_agrees_with_the_teacher():
    assert adaad(alpha=0.5).loss(make_step(T_CLEAN, T_ADV)).item() == pytest.approx(0, abs=1e-7)


class Linear(nn.Module):
    """z = W x: a network whose input gradient is known in closed form."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return x @ self.w.T


def test_inner_objective_is_the_summed_kl_and_its_gradient_reaches_x_through_the_teacher():
    m = adaad()
    student = Linear([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    teacher = Linear([[0.0, 2.0], [1.0, 0.0], [0.5, 0.5]])
    x = torch.tensor([[0.3, 0.6], [0.9, 0.2]], requires_grad=True)
    with teacher_attached(m, lambda inp, taps=(): Outputs(teacher(inp))):
        value = m.inner_objective(student, x)
    want = sum(kl(softmax((teacher(x[i:i + 1]))[0].tolist()),
                  softmax((student(x[i:i + 1]))[0].tolist())) for i in range(2))
    assert value.item() == pytest.approx(want, rel=1e-6)
    (grad,) = torch.autograd.grad(value, x)
    # By hand: d/dx KL(p_t || p_s) = W_t^T [p_t * (log p_t - log p_s - KL)] + W_s^T (p_s - p_t)
    for i in range(2):
        p_t = torch.softmax(teacher(x[i]), 0).detach()
        p_s = torch.softmax(student(x[i]), 0).detach()
        d = (p_t * (p_t.log() - p_s.log())).sum()
        want_grad = teacher.w.T.detach() @ (p_t * (p_t.log() - p_s.log() - d)) \
            + student.w.T.detach() @ (p_s - p_t)
        assert torch.allclose(grad[i], want_grad, atol=1e-6)
    # A student that ignores x still gives the attack a direction: the teacher's.
    frozen = Linear([[0.0, 0.0]] * 3)
    xs = x.detach().clone().requires_grad_()
    with teacher_attached(m, lambda inp, taps=(): Outputs(teacher(inp))):
        (g,) = torch.autograd.grad(m.inner_objective(frozen, xs), xs)
    assert g.abs().sum() > 0


def test_one_real_step_trains():
    cls = methods.discover()[0]["adaad"].cls
    assert cls.family == "adversarial" and cls.uses_teacher and cls.perturb_mode == "eval"
    loss = one_step(cls)
    assert loss.dim() == 0 and torch.isfinite(loss)
