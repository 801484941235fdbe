"""The logit and feature methods against closed forms computed by hand here (DKD, which
torchdistill lacks; the warm-up; the properties the papers state), CRD's negative sampling and
its resumable state, and each method's real training step on both built-in architecture pairs.
The comparisons with torchdistill are in test_method_oracles.py."""

from __future__ import annotations

import dataclasses
import io as _io
import math

import pytest
import torch
import torch.nn.functional as F

import methods
from bench.data import Batch
from bench.models import build_model
from bench.models.taps import Outputs
from bench.plugin_check import one_step
from bench.protocols import get_protocol
from bench.train.engine import build_method
from methods.api import Step

NAMES = ["dkd", "dist", "lskd", "at", "pkt", "sp", "rkd", "crd", "vid", "reviewkd"]


def make(name: str, protocol=None, **hp):
    p = protocol or get_protocol("mnist5k")
    cls = methods.discover()[0][name].cls
    student, teacher = build_model(p.student_arch, p), build_model(p.teacher_arch, p)
    return build_method(cls, cls.Hparams(**hp), p, student, teacher,
                        torch.rand(2, *p.input_shape))


class Fixed:
    def __init__(self, out: Outputs):
        self.out = out

    def __call__(self, x):
        return self.out


def step_for(s, t, y, index=None, epochs=8) -> Step:
    index = torch.arange(len(y)) if index is None else index
    return Step(Batch(torch.zeros(len(y), 1), y, index), t, Fixed(s), 0, epochs)


def softmax(z, T=1.0):
    e = [math.exp((v - max(z)) / T) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def ce(z, y):
    return -math.log(softmax(z)[y])


S = [[2.0, 0.5, -1.0, 0.3], [0.1, 0.2, 0.3, -2.0]]
T_ = [[1.0, 1.5, -0.5, 0.0], [3.0, -1.0, 0.0, 1.0]]
Y = [0, 2]


def dkd_by_hand(s, t, y, T):
    """(TCKD, NCKD, KD, teacher's target probability) of one example, from the definitions."""
    p_s, p_t = softmax(s, T), softmax(t, T)
    b_s, b_t = [p_s[y], 1 - p_s[y]], [p_t[y], 1 - p_t[y]]
    q_s = [p / (1 - p_s[y]) for i, p in enumerate(p_s) if i != y]
    q_t = [p / (1 - p_t[y]) for i, p in enumerate(p_t) if i != y]
    return kl(b_t, b_s), kl(q_t, q_s), kl(p_t, p_s), p_t[y]


# -- DKD -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("T", [1.0, 4.0])
def test_dkd_target_and_non_target_terms_match_their_definitions(T):
    from methods.dkd import dkd_parts
    tckd, nckd = dkd_parts(torch.tensor(S), torch.tensor(T_), torch.tensor(Y), T)
    for i, (s, t, y) in enumerate(zip(S, T_, Y)):
        want_t, want_n, _, _ = dkd_by_hand(s, t, y, T)
        assert tckd[i].item() == pytest.approx(want_t, rel=1e-5)
        assert nckd[i].item() == pytest.approx(want_n, rel=1e-5)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_dkd_split_sums_back_to_kd(T):
    """The paper's Eq. 7: KD = TCKD + (1 - p_t^T) NCKD, per example."""
    from methods.dkd import dkd_parts
    tckd, nckd = dkd_parts(torch.tensor(S), torch.tensor(T_), torch.tensor(Y), T)
    for i, (s, t, y) in enumerate(zip(S, T_, Y)):
        _, _, kd, p_target = dkd_by_hand(s, t, y, T)
        assert (tckd[i] + (1 - p_target) * nckd[i]).item() == pytest.approx(kd, rel=1e-5)
    # ... so with the teacher's target-class weight put back, alpha = beta = 1 is not KD.
    assert (tckd + nckd).mean().item() != pytest.approx(
        sum(dkd_by_hand(s, t, y, T)[2] for s, t, y in zip(S, T_, Y)) / 2, rel=1e-3)


def test_dkd_loss_and_gradient_match_an_explicit_renormalisation():
    """The official -1000 masking trick against the non-target softmax written out."""
    from methods.dkd import dkd_loss
    torch.manual_seed(1)
    s, t, y = torch.randn(16, 10) * 3, torch.randn(16, 10) * 3, torch.randint(0, 10, (16,))
    s1, s2 = s.clone().requires_grad_(), s.double().requires_grad_()
    T, alpha, beta = 4.0, 1.0, 8.0
    ours = dkd_loss(s1, t, y, alpha, beta, T)
    p_s, p_t = F.softmax(s2 / T, 1), F.softmax(t.double() / T, 1)
    gt = F.one_hot(y, 10).bool()
    b_s = torch.stack([p_s[gt], 1 - p_s[gt]], 1)
    b_t = torch.stack([p_t[gt], 1 - p_t[gt]], 1)
    tckd = (b_t * (b_t / b_s).log()).sum(1)
    q_s = p_s[~gt].view(16, 9) / (1 - p_s[gt]).unsqueeze(1)
    q_t = p_t[~gt].view(16, 9) / (1 - p_t[gt]).unsqueeze(1)
    nckd = (q_t * (q_t / q_s).log()).sum(1)
    ref = T * T * (alpha * tckd + beta * nckd).mean()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    g1, = torch.autograd.grad(ours, s1)
    g2, = torch.autograd.grad(ref, s2)
    torch.testing.assert_close(g1.double(), g2, rtol=1e-4, atol=1e-6)


def test_dkd_method_is_ce_plus_warmed_up_weighted_terms():
    m = make("dkd")  # mnist5k: 4000 examples at batch 128 -> 32 steps per epoch, 8 epochs
    s = Outputs(torch.tensor(S, requires_grad=True))
    t = Outputs(torch.tensor(T_))
    y = torch.tensor(Y)
    full = sum(ce(a, c) + 16 * (1.0 * dkd_by_hand(a, b, c, 4.0)[0]
                                + 8.0 * dkd_by_hand(a, b, c, 4.0)[1])
               for a, b, c in zip(S, T_, Y)) / 2
    ce_only = sum(ce(a, c) for a, c in zip(S, Y)) / 2
    m.on_epoch_start(0, 8)
    # Warm-up over 1/12 of 256 steps: the first step's weight is 1 / (256 / 12).
    w = 12 / 256
    assert m.loss(step_for(s, t, y)).item() == pytest.approx(
        ce_only + w * (full - ce_only), rel=1e-5)
    m.on_epoch_start(1, 8)  # 32 steps in: past the warm-up (21.3 steps)
    assert m.loss(step_for(s, t, y)).item() == pytest.approx(full, rel=1e-5)


def test_warmup_is_linear_per_step_and_resumes_at_an_epoch_boundary():
    from methods.losses import LinearWarmup
    a = LinearWarmup(0.25, n_train=100, batch_size=32)  # 4 steps per epoch, 4 epochs: 4 steps
    weights = []
    for epoch in range(4):
        a.on_epoch_start(epoch)
        weights += [a(4) for _ in range(4)]
    assert weights == pytest.approx([0.25, 0.5, 0.75] + [1.0] * 13)
    b = LinearWarmup(0.5, n_train=100, batch_size=32)  # a resumed run: epoch 1 first
    b.on_epoch_start(1)
    assert [b(4) for _ in range(4)] == pytest.approx([5 / 8, 6 / 8, 7 / 8, 1.0])


# -- LSKD, DIST --------------------------------------------------------------------------------

def test_lskd_standardises_to_zero_mean_and_unit_unbiased_std():
    from methods.lskd import standardize
    z = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    mean, sd = 3.0, math.sqrt(((1 - 3) ** 2 + 1 + 0 + 9) / 3)
    torch.testing.assert_close(standardize(z), (z - mean) / (sd + 1e-7))


def test_lskd_distillation_term_ignores_the_students_logit_shift_and_scale():
    m = make("lskd", ce_weight=0.0)
    t = Outputs(torch.randn(8, 10))
    s = torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    a = m.loss(step_for(Outputs(s.requires_grad_()), t, y)).item()
    b = m.loss(step_for(Outputs((5 * s.detach() + 3).requires_grad_()), t, y)).item()
    assert a == pytest.approx(b, rel=1e-4)
    same = m.loss(step_for(Outputs((2 * t.logits - 1).requires_grad_()), t, y)).item()
    assert same == pytest.approx(0.0, abs=1e-5)  # the teacher's relations exactly: KL 0


def test_dist_is_zero_for_perfectly_correlated_predictions_and_at_most_two_tau_squared():
    from methods.dist import dist_loss
    z = torch.randn(16, 10)
    # Zero up to the eps in the correlation's denominator (1e-8 / |a||b|, times tau^2 = 16).
    assert dist_loss(z, z, 1.0, 1.0, 4.0).item() == pytest.approx(0.0, abs=1e-3)
    assert dist_loss(z, 3 * z, 1.0, 1.0, 4.0).item() > 0.01  # sharper is not the same ranking
    # Pearson correlations lie in [-1, 1]: each relation loss is at most 2.
    assert dist_loss(torch.randn(16, 10), z, 1.0, 1.0, 1.0).item() <= 4.0


# -- feature closed forms ------------------------------------------------------------------------

def test_hcl_pools_to_the_levels_smaller_than_the_map_with_halving_weights():
    from methods.reviewkd import hcl_loss
    f_t = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # 2x2 map: levels 4 and 2 skipped; level 1 (mean 2.5) at weight 1/2.
    full, pooled = (1 + 4 + 9 + 16) / 4, 2.5 ** 2
    assert hcl_loss(torch.zeros_like(f_t), f_t).item() == pytest.approx(
        (full + 0.5 * pooled) / 1.5)


def test_vid_starts_at_the_initial_variance():
    m = make("vid")
    for reg in m.regressors.values():
        _, var = reg(torch.rand(2, reg.regressor[0].in_channels, 3, 3))
        torch.testing.assert_close(var.flatten(), torch.full((var.numel(),), 5.0))


def test_rkd_is_zero_for_a_rescaled_copy_of_the_teacher():
    from methods.rkd import rkd_loss
    f = torch.randn(10, 6)
    assert rkd_loss(3 * f, f, 25.0, 50.0).item() == pytest.approx(0.0, abs=1e-5)


# -- CRD: negatives and state ----------------------------------------------------------------------

def _crd_step(m, index, y):
    s = Outputs(torch.randn(len(y), 10, requires_grad=True),
                {"stage3": torch.relu(torch.randn(len(y), *m.ctx.student_shapes["stage3"]))
                 .requires_grad_()})
    t = Outputs(torch.randn(len(y), 10),
                {"stage3": torch.relu(torch.randn(len(y), *m.ctx.teacher_shapes["stage3"]))})
    return m.loss(step_for(s, t, y, index))


def test_crd_draws_the_positive_first_then_uniform_negatives_of_other_classes():
    p = dataclasses.replace(get_protocol("mnist5k"), n_train=40)
    m = make("crd", p, nce_k=6000)
    y_all = torch.arange(40) % 4
    # Half the labels seen: the other half may be drawn for any anchor.
    idx = m._negatives(torch.arange(0, 40, 2), y_all[0::2])  # even positions: classes 0 and 2
    assert idx.shape == (20, 6001) and torch.equal(idx[:, 0], torch.arange(0, 40, 2))
    anchor0 = idx[0, 1:]  # class 0: candidates are the 10 even ones of class 2 and the 20 odd
    allowed = torch.tensor([i for i in range(40) if i % 2 or i % 4 == 2])
    assert set(anchor0.tolist()) == set(allowed.tolist())
    counts = torch.bincount(anchor0, minlength=40)[allowed].float()
    assert counts.min() > 0.7 * 200 and counts.max() < 1.3 * 200  # uniform: 6000 / 30 each
    # Every label seen: never the anchor's class.
    idx = m._negatives(torch.arange(40), y_all)
    assert not (y_all[idx[:, 1:]] == y_all[:, None]).any()
    assert idx.min() >= 0 and idx.max() < 40


def test_crd_state_after_a_step_resumes_exactly_and_loads_weights_only(tmp_path):
    p = dataclasses.replace(get_protocol("mnist5k"), n_train=64)
    torch.manual_seed(0)
    a = make("crd", p, nce_k=32)
    torch.manual_seed(1)  # another initial bank
    b = make("crd", p, nce_k=32)
    b.embed.load_state_dict(a.embed.state_dict())
    y = torch.randint(0, 10, (16,))
    _crd_step(a, torch.arange(16), y)
    state = a.state_dict()
    assert set(state) == {"memory_s", "memory_t", "z_s", "z_t", "labels"}
    assert state["z_s"] > 0 and state["z_t"] > 0 and (state["labels"][:16] == y).all()
    buf = _io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    nxt = []
    for m in (a, b):
        torch.manual_seed(5)
        nxt.append(_crd_step(m, torch.arange(16, 32), torch.randint(0, 10, (16,))))
    assert torch.equal(nxt[0], nxt[1])
    torch.testing.assert_close(a.memory.memory_s, b.memory.memory_s, rtol=0, atol=0)
    before = state["memory_s"].clone()
    _crd_step(a, torch.arange(16), y)
    assert torch.equal(state["memory_s"], before)  # the state is a copy, not a view


# -- contract ------------------------------------------------------------------------------------

def test_the_methods_are_registered_with_their_families_and_the_papers_defaults():
    specs, errors = methods.discover()
    assert not errors
    defaults = {
        "dkd": ("logit", {"alpha": 1.0, "beta": 8.0, "T": 4.0, "ce_weight": 1.0,
                          "warmup": 20 / 240}),
        "dist": ("logit", {"beta": 1.0, "gamma": 1.0, "tau": 4.0, "kd_weight": 2.0,
                           "ce_weight": 1.0}),
        "lskd": ("logit", {"T": 2.0, "kd_weight": 9.0, "ce_weight": 0.1}),
        "at": ("feature", {"beta": 1000.0, "p": 2.0}),
        "pkt": ("feature", {"beta": 30000.0}),
        "sp": ("feature", {"beta": 3000.0}),
        "rkd": ("feature", {"distance_weight": 25.0, "angle_weight": 50.0}),
        "crd": ("feature", {"feat_dim": 128, "nce_k": 4096, "nce_t": 0.07, "nce_m": 0.5,
                            "beta": 0.8}),
        "vid": ("feature", {"beta": 1.0, "init_pred_var": 5.0, "eps": 1e-5}),
        "reviewkd": ("feature", {"beta": 5.0, "warmup": 20 / 240}),
    }
    for name, (family, hp) in defaults.items():
        cls = specs[name].cls
        assert cls.family == family, name
        assert cls.Hparams().model_dump() == hp, name
        assert cls.uses_teacher, name


@pytest.mark.parametrize("name", ["vid", "crd", "reviewkd"])
def test_connectors_are_extra_modules_not_part_of_the_student(name):
    p = get_protocol("mnist5k")
    cls = methods.discover()[0][name].cls
    student, teacher = build_model(p.student_arch, p), build_model(p.teacher_arch, p)
    m = build_method(cls, cls.Hparams(), p, student, teacher, torch.rand(2, *p.input_shape))
    extra = {id(q) for q in m.extra_modules().parameters()}
    assert extra and not extra & {id(q) for q in student.parameters()}


@pytest.mark.parametrize("protocol", ["mnist5k", "cifar10"])
@pytest.mark.parametrize("name", NAMES)
def test_every_method_trains_for_one_real_step(name, protocol):
    loss = one_step(methods.discover()[0][name].cls, protocol)
    assert loss.dim() == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", ["pkt", "sp", "rkd", "crd"])
def test_relational_and_contrastive_terms_stay_float32_under_bf16_autocast(name):
    """CUDA trains under bf16 autocast (bench/train/device.py); these terms (Gram matrices,
    distances from |a|^2 + |b|^2 - 2ab, exp(score / 0.07)) compute in float32 regardless. Checked
    with CPU autocast: the loss is the same inside and outside it."""
    losses = []
    for autocast in (False, True):
        torch.manual_seed(0)
        m = make(name)
        s, t = _outputs_for(m, 16)
        y = torch.randint(0, 10, (16,))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            losses.append(m.loss(step_for(s, t, y)).float())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=0)


def _outputs_for(m, b):
    s = Outputs(torch.randn(b, 10, requires_grad=True),
                {k: torch.relu(torch.randn(b, *m.ctx.student_shapes[k])).requires_grad_()
                 for k in m.feature_taps})
    t = Outputs(torch.randn(b, 10),
                {k: torch.relu(torch.randn(b, *m.ctx.teacher_shapes[k])) for k in m.feature_taps})
    return s, t


class _Killed(Exception):
    pass


@pytest.mark.parametrize("name", ["crd", "dkd", "reviewkd"])
def test_training_interrupted_after_an_epoch_resumes_exactly(name, protocol, split, tmp_path,
                                                             monkeypatch, request):
    """The engine's resume (bench/train/engine.py) with the method's own state: CRD's banks,
    normalisers and labels; DKD's and ReviewKD's per-step warm-up (restarted by
    on_epoch_start); ReviewKD's fusion modules with their batch-norm statistics."""
    from bench.train import engine
    from bench.train.teacher_outputs import TeacherOutputs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `kdbench run` trains; more threads crawl on a shared machine
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    n = 256
    p = dataclasses.replace(protocol, n_train=n)
    recipe = dataclasses.replace(p.student_recipe, epochs=2, batch_size=64)
    p = dataclasses.replace(p, student_recipe=recipe)
    x, y = split.x_train[:n], split.y_train[:n]
    torch.manual_seed(0)
    teacher = build_model(p.teacher_arch, p).eval()
    outputs = TeacherOutputs(teacher, x)

    def run(state_path, kill_after=None):
        if kill_after is not None:
            def reached(point):
                if point == f"train-epoch:k:{kill_after}":
                    raise _Killed
            monkeypatch.setattr(engine.faults, "reached", reached)
        torch.manual_seed(0)
        student = build_model(p.student_arch, p)
        m = make(name, p)
        try:
            engine.train(student, m, recipe, x, y, 0, outputs, state_path=state_path,
                         fault_key="k")
        except _Killed:
            return None
        finally:
            monkeypatch.undo()
        return student, m

    whole, m_whole = run(None)
    assert run(tmp_path / "state.pt", kill_after=1) is None
    assert (tmp_path / "state.pt").exists()  # epoch 1 saved: the next run resumes from it
    resumed, m_resumed = run(tmp_path / "state.pt")
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    for k, v in m_whole.state_dict().items():
        assert torch.equal(torch.as_tensor(v), torch.as_tensor(m_resumed.state_dict()[k])), k
