"""Each method's loss against its formula, computed independently here on hand-made tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

import methods
from bench.data import Batch
from bench.train.engine import build_method
from bench.models.taps import Outputs
from bench.models import build_model, count_params
from methods.api import Step

S = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]
T_ = [[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]]
Y = [0, 2]


def softmax(z, T=1.0):
    e = [math.exp((v - max(z)) / T) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q))


def ce(z, y):
    return -math.log(softmax(z)[y])


def mean(xs):
    return sum(xs) / len(xs)


class FakeStudent:
    """Returns fixed logits for the clean batch and others for any other input."""

    def __init__(self, clean, adv=None):
        self.clean, self.adv = clean, adv

    def __call__(self, x):
        return Outputs(self.clean if x.sum() == 0 else self.adv)


def step(student_clean, teacher, student_adv=None, y=Y):
    x = torch.zeros(len(y), 1)
    batch = Batch(x, torch.tensor(y), torch.arange(len(y)), x_adv=torch.ones(len(y), 1))
    return Step(batch, None if teacher is None else Outputs(torch.tensor(teacher)),
                FakeStudent(torch.tensor(student_clean, requires_grad=True),
                            None if student_adv is None else torch.tensor(student_adv)), 0, 1)


def method(name, **hp):
    cls = methods.discover()[0][name].cls
    return cls(cls.Hparams(**hp), ctx=None)


def test_pointwise_is_squared_logit_distance_plus_ce():
    l2 = mean([sum((a - b) ** 2 for a, b in zip(s, t)) for s, t in zip(S, T_)])
    expected = 0.05 * l2 + mean([ce(s, y) for s, y in zip(S, Y)])
    assert method("pointwise").loss(step(S, T_)).item() == pytest.approx(expected, rel=1e-5)
    assert method("pointwise", beta=1.0).loss(step(T_, T_)).item() == pytest.approx(
        mean([ce(t, y) for t, y in zip(T_, Y)]), rel=1e-5)  # zero distance: CE alone


def test_rslad_weights_adversarial_and_clean_kl_five_sixths_one_sixth():
    adv = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]
    kl_adv = mean([kl(softmax(t), softmax(a)) for a, t in zip(adv, T_)])
    kl_clean = mean([kl(softmax(t), softmax(s)) for s, t in zip(S, T_)])
    got = method("adversarial").loss(step(S, T_, adv)).item()
    assert got == pytest.approx(5 / 6 * kl_adv + 1 / 6 * kl_clean, rel=1e-5)


def test_rslad_kl_is_zero_when_student_matches_teacher():
    assert method("adversarial").loss(step(T_, T_, T_)).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("T", [1.0, 4.0, 30.0])
def test_ard_kd_term_carries_T_squared_and_uses_adversarial_student(T):
    adv = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]
    kd = mean([kl(softmax(t, T), softmax(a, T)) for a, t in zip(adv, T_)]) * T * T
    assert method("ard", T=T, alpha=1.0).loss(step(S, T_, adv)).item() == pytest.approx(kd, rel=1e-5)
    clean_ce = mean([ce(s, y) for s, y in zip(S, Y)])
    got = method("ard", T=T, alpha=0.7).loss(step(S, T_, adv)).item()
    assert got == pytest.approx(0.7 * kd + 0.3 * clean_ce, rel=1e-5)


def test_pgd_at_is_cross_entropy_on_the_adversarial_input():
    adv = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]
    expected = mean([ce(a, y) for a, y in zip(adv, Y)])
    assert method("pgd_at").loss(step(S, None, adv)).item() == pytest.approx(expected, rel=1e-5)


def test_defensive_is_soft_label_cross_entropy_at_temperature_times_T():
    expected = 100 * mean([-sum(p * math.log(q) for p, q in zip(softmax(t), softmax(s, 100)))
                           for s, t in zip(S, T_)])
    assert method("defensive").loss(step(S, T_)).item() == pytest.approx(expected, rel=1e-5)


# -- hierarchical ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hierarchical(protocol):
    cls = methods.discover()[0]["hierarchical"].cls
    student = build_model(protocol.student_arch, protocol)
    teacher = build_model(protocol.teacher_arch, protocol)
    m = build_method(cls, cls.Hparams(), protocol, student, teacher,
                     torch.rand(2, *protocol.input_shape))
    return m, student


def test_hierarchical_connectors_map_each_student_stage_to_the_teacher_stage(hierarchical):
    m, _ = hierarchical
    assert tuple(m.regressors) == ("stage1", "stage2", "stage3")
    for stage, reg in m.regressors.items():
        c_s, h, w = m.ctx.student_shapes[stage]
        c_t = m.ctx.teacher_shapes[stage][0]
        assert reg.weight.shape == (c_t, c_s, 1, 1)
        assert reg(torch.rand(2, c_s, h, w)).shape == (2, *m.ctx.teacher_shapes[stage])


def test_hierarchical_connectors_are_not_part_of_the_student(hierarchical):
    m, student = hierarchical
    connector_params = {id(p) for p in m.extra_modules().parameters()}
    assert connector_params and not connector_params & {id(p) for p in student.parameters()}
    assert count_params(student) == 6274


def test_hierarchical_switches_hints_on_from_low_to_high_stages(hierarchical):
    m, _ = hierarchical
    active = []
    for epoch in range(8):
        m.on_epoch_start(epoch, 8)
        active.append(len(m.active))
    assert active == [1, 1, 1, 2, 2, 2, 3, 3]


def test_hint_loss_is_half_the_mean_squared_error_with_spatial_alignment():
    from methods.losses import hint_loss
    t = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    r = torch.zeros(1, 1, 4, 4) + 1.0  # pooled to 2x2 ones
    assert hint_loss(t, r).item() == pytest.approx(0.5 * (0 + 1 + 4 + 9) / 4)


# -- adversarial inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["adversarial", "ard", "pgd_at"])
def test_adversarial_inputs_stay_within_eps_and_raise_the_students_loss(name, protocol, split,
                                                                        trained_pair):
    cls = methods.discover()[0][name].cls
    student, teacher = trained_pair
    x, y = split.x_test[:64], split.y_test[:64]
    m = build_method(cls, cls.Hparams(), protocol, student, teacher, x)
    with torch.no_grad():
        t_out = Outputs(teacher(x))
    x_adv = m.perturb(Batch(x, y, torch.arange(64)), student, t_out)
    eps = protocol.eval.eps
    assert x_adv.shape == x.shape and not torch.equal(x_adv, x)
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        if name == "adversarial":  # RSLAD maximises KL to the teacher's soft labels
            t = F.softmax(t_out.logits, 1)
            before = F.kl_div(F.log_softmax(student(x), 1), t, reduction="batchmean")
            after = F.kl_div(F.log_softmax(student(x_adv), 1), t, reduction="batchmean")
        else:
            before, after = F.cross_entropy(student(x), y), F.cross_entropy(student(x_adv), y)
    assert after > 2 * before
