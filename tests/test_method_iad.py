"""IAD (Zhu et al. 2022) against its formula on tiny inputs computed by hand, its limits (ARD
when the teacher is trusted, the student's own soft labels when it is not), and the released
IAD-I script's loss line on fixed tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

import methods
from bench.data import Batch
from bench.models.taps import Outputs
from bench.plugin_check import one_step
from methods.api import Step

CLEAN = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]  # student on x
ADV = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]  # student on x'
TEACHER = [[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]]  # teacher on x
Y = [0, 2]


def softmax(z, T=1.0):
    e = [math.exp((v - max(z)) / T) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q))


def iad(**hp):
    cls = methods.discover()[0]["iad"].cls
    return cls(cls.Hparams(**hp), ctx=None)


def make_step(teacher_adv, epoch=7, epochs=8, clean=CLEAN, adv=ADV, teacher=TEACHER, y=Y):
    """Student: `clean` on the clean batch (zeros), `adv` on x_adv (ones); the teacher answers
    `teacher_adv` when queried (on x_adv)."""
    x = torch.zeros(len(y), 1)
    batch = Batch(x, torch.tensor(y), torch.arange(len(y)), x_adv=torch.ones(len(y), 1))
    c, a = (v if isinstance(v, torch.Tensor) else torch.tensor(v) for v in (clean, adv))
    queried = []

    def query(inp, taps=()):
        queried.append(inp)
        return Outputs(torch.tensor(teacher_adv))
    s = Step(batch, Outputs(torch.tensor(teacher)), lambda inp: Outputs(c if inp.sum() == 0 else a),
             epoch, epochs, query)
    s.queried = queried
    return s


def by_hand(teacher_adv, T=1.0, alpha=1.0, beta=0.1, weight_teacher=True):
    total = 0.0
    for c, a, t, ta, y in zip(CLEAN, ADV, TEACHER, teacher_adv, Y):
        trust = softmax(ta)[y] ** beta
        w = trust if weight_teacher else 1.0
        total += (w * T * T * kl(softmax(t, T), softmax(a, T))
                  + (1 - trust) * kl(softmax(c), softmax(a)))
    ce = sum(-math.log(softmax(c)[y]) for c, y in zip(CLEAN, Y)) / len(Y)
    return alpha * total / len(Y) + (1 - alpha) * ce


def ard_by_hand(T=1.0, alpha=1.0):
    kd = sum(T * T * kl(softmax(t, T), softmax(a, T)) for a, t in zip(ADV, TEACHER)) / len(Y)
    ce = sum(-math.log(softmax(c)[y]) for c, y in zip(CLEAN, Y)) / len(Y)
    return alpha * kd + (1 - alpha) * ce


MIXED = [[2.0, 0.0, 0.0], [0.0, 0.0, -1.0]]  # teacher right on x'_1, wrong on x'_2


@pytest.mark.parametrize("hp", [{}, {"T": 4.0, "alpha": 0.7, "beta": 0.5},
                                {"weight_teacher": False}])
def test_loss_matches_the_formula_by_hand(hp):
    assert iad(**hp).loss(make_step(MIXED)).item() == pytest.approx(by_hand(MIXED, **hp),
                                                                    rel=1e-5)


def test_a_teacher_right_on_the_adversarial_example_is_fully_trusted_and_iad_is_ard():
    sure = [[60.0, 0.0, 0.0], [0.0, 0.0, 60.0]]  # P_T(x')[y] = 1 on both examples
    for hp in ({}, {"T": 4.0, "alpha": 0.7}):
        got = iad(**hp).loss(make_step(sure)).item()
        assert got == pytest.approx(ard_by_hand(**{k: hp[k] for k in ("T", "alpha") if k in hp}),
                                    rel=1e-5)


def test_beta_zero_trusts_the_teacher_everywhere_and_iad_is_ard():
    assert iad(beta=0.0).loss(make_step(MIXED)).item() == pytest.approx(ard_by_hand(), rel=1e-5)


def test_an_untrusted_teacher_leaves_the_student_its_own_soft_labels():
    wrong = [[-60.0, 0.0, 0.0], [0.0, 0.0, -60.0]]  # P_T(x')[y] ~ e^-60 = trust at beta 1
    intro = sum(kl(softmax(c), softmax(a)) for c, a in zip(CLEAN, ADV)) / 2
    assert iad(beta=1.0).loss(make_step(wrong)).item() == pytest.approx(intro, rel=1e-6)


def test_before_the_begin_epoch_the_loss_is_ard_and_the_teacher_is_not_queried():
    # begin at 0.3 * 8 = 2.4 -> epoch 2 (0-based); epochs 0 and 1 are ARD
    for epoch, introspective in ((0, False), (1, False), (2, True), (7, True)):
        s = make_step(MIXED, epoch=epoch)
        got = iad().loss(s).item()
        want = by_hand(MIXED) if introspective else ard_by_hand()
        assert got == pytest.approx(want, rel=1e-5), epoch
        assert len(s.queried) == int(introspective)
        if introspective:
            assert torch.equal(s.queried[0], s.batch.x_adv)


def _released_iad_i(outputs, basic_clean, teacher_outputs, guide, targets, temp, alpha, beta):
    """IAD-I.py's training loss after `--begin`, line for line (KLDivLoss(reduce=False) spelled
    as reduction='none')."""
    KL_loss = torch.nn.KLDivLoss(reduction="none")
    XENT_loss = torch.nn.CrossEntropyLoss()
    Alpha = torch.ones(len(outputs))
    for pp in range(len(outputs)):
        L = F.softmax(guide, dim=1)[pp][targets[pp].item()]
        Alpha[pp] = L.pow(beta).item()
    return (alpha * temp * temp * (1 / len(outputs)) * torch.sum(KL_loss(
                F.log_softmax(outputs / temp, dim=1), F.softmax(teacher_outputs / temp, dim=1)
            ).sum(dim=1))
            + alpha * (1 / len(outputs)) * torch.sum(KL_loss(
                F.log_softmax(outputs, dim=1), F.softmax(basic_clean, dim=1)).sum(dim=1).mul(
                1 - Alpha))
            + (1.0 - alpha) * XENT_loss(basic_clean, targets))


def test_weight_teacher_false_is_the_released_iad_i_script_with_its_gradients():
    g = torch.Generator().manual_seed(5)
    clean, adv, teacher, guide = (torch.randn(6, 10, generator=g) * 2 for _ in range(4))
    y = torch.randint(0, 10, (6,), generator=g)
    for temp, alpha in ((1.0, 1.0), (3.0, 0.6)):
        c1, a1 = clean.clone().requires_grad_(), adv.clone().requires_grad_()
        c2, a2 = clean.clone().requires_grad_(), adv.clone().requires_grad_()
        s = make_step(guide.tolist(), clean=c1, adv=a1, teacher=teacher.tolist(), y=y.tolist())
        ours = iad(T=temp, alpha=alpha, weight_teacher=False).loss(s)
        ref = _released_iad_i(a2, c2, teacher, guide, y, temp, alpha, 0.1)
        assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
        ours.backward()
        ref.backward()
        assert torch.allclose(c1.grad, c2.grad, atol=1e-6)
        assert torch.allclose(a1.grad, a2.grad, atol=1e-6)


def test_attack_is_ards_in_train_mode_and_one_real_step_trains():
    cls = methods.discover()[0]["iad"].cls
    assert cls.perturb_mode == "train" and cls.family == "adversarial" and cls.uses_teacher
    loss = one_step(cls)
    assert loss.dim() == 0 and torch.isfinite(loss)
