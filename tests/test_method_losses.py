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


def tensor(v, requires_grad=False):
    """Lists become tensors; tensors are used as they are (a test may read their .grad)."""
    return v if isinstance(v, torch.Tensor) else torch.tensor(v, requires_grad=requires_grad)


def step(student_clean, teacher, student_adv=None, y=Y):
    x = torch.zeros(len(y), 1)
    batch = Batch(x, torch.tensor(y), torch.arange(len(y)), x_adv=torch.ones(len(y), 1))
    return Step(batch, None if teacher is None else Outputs(tensor(teacher)),
                FakeStudent(tensor(student_clean, requires_grad=True),
                            None if student_adv is None else tensor(student_adv)), 0, 1)


def method(name, **hp):
    cls = methods.discover()[0][name].cls
    return cls(cls.Hparams(**hp), ctx=None)


def test_pointwise_is_ba_and_caruanas_half_squared_logit_distance_alone():
    # 1/(2T) * sum_t ||z_S - z_T||^2 over T examples: half the per-example squared distance.
    l2 = mean([sum((a - b) ** 2 for a, b in zip(s, t)) for s, t in zip(S, T_)])
    paper = method("pointwise", beta=0.5)
    assert paper.loss(step(S, T_)).item() == pytest.approx(0.5 * l2, rel=1e-6)
    assert paper.loss(step(T_, T_)).item() == pytest.approx(0, abs=1e-7)
    # the default is a fifth of the paper's (F.mse_loss's scale on 10 classes; the docstring)
    assert method("pointwise").loss(step(S, T_)).item() == pytest.approx(0.1 * l2, rel=1e-6)
    with_ce = method("pointwise", beta=0.5, ce_weight=0.3).loss(step(S, T_)).item()
    assert with_ce == pytest.approx(0.5 * l2 + 0.3 * mean([ce(s, y) for s, y in zip(S, Y)]),
                                    rel=1e-6)


def test_rslad_weights_adversarial_and_clean_kl_five_sixths_one_sixth():
    # The released code averages the element-wise KL over batch x classes (torch.mean).
    adv = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]
    kl_adv = mean([kl(softmax(t), softmax(a)) for a, t in zip(adv, T_)]) / 3
    kl_clean = mean([kl(softmax(t), softmax(s)) for s, t in zip(S, T_)]) / 3
    got = method("adversarial").loss(step(S, T_, adv)).item()
    assert got == pytest.approx(5 / 6 * kl_adv + 1 / 6 * kl_clean, rel=1e-5)


def _official_rslad(adv_logits, nat_logits, teacher_logits):
    """resnet18_rslad_cifar10.py, line for line (its kl_loss, torch.mean, 5/6 and 1/6)."""
    def kl_loss(a, b):
        return -a * b + torch.log(b + 1e-5) * b
    t = F.softmax(teacher_logits, dim=1)
    kl1 = torch.mean(kl_loss(F.log_softmax(adv_logits, dim=1), t))
    kl2 = torch.mean(kl_loss(F.log_softmax(nat_logits, dim=1), t))
    return 5 / 6.0 * kl1 + 1 / 6.0 * kl2


def test_rslad_equals_the_released_code_up_to_its_1e5_constant_with_equal_gradients():
    g = torch.Generator().manual_seed(3)
    nat, adv, t = (torch.randn(8, 10, generator=g) * 3 for _ in range(3))
    ours_nat, ours_adv = nat.clone().requires_grad_(), adv.clone().requires_grad_()
    ref_nat, ref_adv = nat.clone().requires_grad_(), adv.clone().requires_grad_()
    ours = method("adversarial").loss(step(ours_nat, t, ours_adv))
    ref = _official_rslad(ref_adv, ref_nat, t)
    ours.backward()
    ref.backward()
    # log(b + 1e-5) * b depends on the teacher alone: a constant shift of at most ~1e-5.
    assert ours.item() == pytest.approx(ref.item(), abs=2e-5)
    assert torch.allclose(ours_nat.grad, ref_nat.grad, atol=1e-7)
    assert torch.allclose(ours_adv.grad, ref_adv.grad, atol=1e-7)
    # ... and the batch-mean reduction it replaced is 10x (the number of classes) larger.
    batchmean = (5 / 6 * F.kl_div(F.log_softmax(adv, 1), F.softmax(t, 1), reduction="batchmean")
                 + 1 / 6 * F.kl_div(F.log_softmax(nat, 1), F.softmax(t, 1), reduction="batchmean"))
    assert batchmean.item() == pytest.approx(10 * ours.item(), rel=1e-5)


def test_rslad_kl_is_zero_when_student_matches_teacher():
    assert method("adversarial").loss(step(T_, T_, T_)).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("T", [1.0, 4.0, 30.0])
def test_ard_kd_term_carries_T_squared_averaged_over_batch_and_classes(T):
    adv = [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]
    kd = mean([kl(softmax(t, T), softmax(a, T)) for a, t in zip(adv, T_)]) / 3 * T * T
    assert method("ard", T=T, alpha=1.0).loss(step(S, T_, adv)).item() == pytest.approx(kd, rel=1e-5)
    clean_ce = mean([ce(s, y) for s, y in zip(S, Y)])
    got = method("ard", T=T, alpha=0.7).loss(step(S, T_, adv)).item()
    assert got == pytest.approx(0.7 * kd + 0.3 * clean_ce, rel=1e-5)


def test_ard_equals_the_released_code_on_fixed_tensors():
    """main.py of goldblum/AdversariallyRobustDistillation: nn.KLDivLoss() (mean over batch x
    classes) times alpha * T^2, plus (1 - alpha) * CE on the clean forward."""
    g = torch.Generator().manual_seed(4)
    nat, adv, t = (torch.randn(8, 10, generator=g) * 3 for _ in range(3))
    y = torch.randint(0, 10, (8,), generator=g)
    T, alpha = 30.0, 0.8
    with pytest.warns(UserWarning, match="mean"):  # torch's note on KLDivLoss's default
        ref = (alpha * T * T * torch.nn.KLDivLoss()(F.log_softmax(adv / T, dim=1),
                                                    F.softmax(t / T, dim=1))
               + (1.0 - alpha) * torch.nn.CrossEntropyLoss()(nat, y))
    got = method("ard", T=T, alpha=alpha).loss(step(nat, t, adv, y=y.tolist()))
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)


def test_ard_attacks_in_train_mode_and_runs_the_clean_forward_even_at_alpha_one():
    cls = methods.discover()[0]["ard"].cls
    assert cls.perturb_mode == "train"
    s = step(S, T_, [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    calls = []
    forward = s._student
    s._student = lambda x: calls.append(float(x.sum())) or forward(x)
    method("ard", alpha=1.0).loss(s)
    assert sorted(calls) == [0.0, 2.0]  # the clean batch (zeros) and the adversarial (ones)


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


def test_hint_mse_is_the_mean_squared_error_with_spatial_alignment():
    from methods.losses import hint_mse
    t = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    r = torch.zeros(1, 1, 4, 4) + 1.0  # pooled to 2x2 ones
    assert hint_mse(t, r).item() == pytest.approx((0 + 1 + 4 + 9) / 4)


def test_hierarchical_weights_each_hint_by_beta_on_the_mean_squared_error(hierarchical):
    m, student = hierarchical
    assert m.hp.beta == 10.0  # mdistiller's 100 collapses the mnist5k student (the docstring)
    g = torch.Generator().manual_seed(0)
    feats_s = {k: torch.rand(2, *v, generator=g) for k, v in m.ctx.student_shapes.items()}
    feats_t = {k: torch.rand(2, *v, generator=g) for k, v in m.ctx.teacher_shapes.items()}
    logits = torch.randn(2, 10, generator=g)
    x = torch.zeros(2, 1)
    batch = Batch(x, torch.tensor([1, 2]), torch.arange(2))
    s = Step(batch, Outputs(logits, feats_t), lambda _: Outputs(logits, feats_s), 0, 8)
    m.on_epoch_start(7, 8)  # every stage active
    with torch.no_grad():
        hints = sum(((m.regressors[k](feats_s[k]) - feats_t[k]) ** 2).mean() for k in feats_s)
        ce_part = (1 - m.hp.alpha) * F.cross_entropy(logits, batch.y)  # equal logits: KD = 0
        assert m.loss(s).item() == pytest.approx(ce_part.item() + m.hp.beta * hints.item(),
                                             rel=1e-5)


# -- adversarial inputs ------------------------------------------------------------------------

def _objective(name, student, teacher, x_clean, x, y):
    """What each method's attack maximises at x, written out here."""
    with torch.no_grad():
        s = F.log_softmax(student(x), 1)
        if name == "adversarial":  # RSLAD: KL to the teacher's clean soft labels
            return F.kl_div(s, F.softmax(teacher(x_clean), 1), reduction="batchmean")
        if name == "trades":  # KL(S(x) || S(x'))
            return F.kl_div(s, F.softmax(student(x_clean), 1), reduction="batchmean")
        if name == "adaad":  # KL(T(x') || S(x'))
            return F.kl_div(s, F.softmax(teacher(x), 1), reduction="batchmean")
        return F.nll_loss(s, y)  # cross-entropy: PGD-AT, ARD, IAD


@pytest.mark.parametrize("name", ["adversarial", "ard", "pgd_at", "trades", "iad", "adaad"])
def test_adversarial_inputs_stay_within_eps_and_raise_the_attack_objective(name, protocol, split,
                                                                         trained_pair):
    from bench.train.engine import teacher_attached
    from bench.train.teacher_outputs import TeacherQuery
    cls = methods.discover()[0][name].cls
    student, teacher = trained_pair
    x, y = split.x_test[:64], split.y_test[:64]
    m = build_method(cls, cls.Hparams(), protocol, student, teacher, x)
    with torch.no_grad():
        t_out = Outputs(teacher(x))
    query = TeacherQuery(teacher) if cls.uses_teacher else None
    with teacher_attached(m, query):
        x_adv = m.perturb(Batch(x, y, torch.arange(64)), student, t_out)
    eps = protocol.eval.eps
    assert x_adv.shape == x.shape and not torch.equal(x_adv, x)
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    g = torch.Generator().manual_seed(1)
    noise = (x + torch.empty(x.shape).uniform_(-eps, eps, generator=g)).clamp(0, 1)
    before, random, after = (_objective(name, student, teacher, x, z, y)
                             for z in (x, noise, x_adv))
    assert after > 2 * before and after > 2 * random, (before, random, after)
    if name == "adaad":  # the teacher ran in the attack: 10 steps of 64 images
        assert query.images == 64 * 10

