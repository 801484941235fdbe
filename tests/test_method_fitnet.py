"""FitNets (Romero et al. 2015): the regressor (torchdistill's ConvReg), stage 1 (the hint alone,
the head untouched), stage 2 (the paper's KD loss, lambda annealed), the split of the epochs."""

import math

import pytest
import torch

import methods
from bench.data import Batch
from bench.models import build_model
from bench.models.taps import Outputs, tapped
from bench.train.engine import build_method, make_optimizer
from methods.api import Step


@pytest.fixture
def built(protocol):
    cls = methods.discover()[0]["fitnet"].cls
    torch.manual_seed(0)
    student = build_model(protocol.student_arch, protocol)
    teacher = build_model(protocol.teacher_arch, protocol).eval()
    m = build_method(cls, cls.Hparams(), protocol, student, teacher,
                     torch.rand(2, *protocol.input_shape))
    return m, student, teacher


def test_regressor_is_torchdistills_convreg(built):
    from torchdistill.models.adaptation import ConvReg
    m, _, _ = built
    (c_s, h, w), c_t = m.ctx.student_shapes["stage2"], m.ctx.teacher_shapes["stage2"][0]
    assert (h, w) == m.ctx.teacher_shapes["stage2"][1:]  # equal sizes: a 1x1 conv
    ref = ConvReg(c_s, c_t, kernel_size=1, stride=1, padding=0, uses_relu=True)
    # the same tensors under torchdistill's names (conv, bn) in the same order
    ref.load_state_dict(dict(zip(ref.state_dict(), m.regressor.state_dict().values())))
    x = torch.randn(4, c_s, h, w)
    for mode in (True, False):
        m.regressor.train(mode)
        ref.train(mode)
        assert torch.allclose(m.regressor(x), ref(x), atol=1e-6)


@pytest.mark.parametrize("frac,epochs,expected", [(0.25, 8, 2), (0.25, 20, 5), (0.25, 2, 1),
                                                  (0.9, 8, 7), (0.01, 8, 1), (0.25, 1, 0)])
def test_stage_split_rounds_and_leaves_each_stage_an_epoch(frac, epochs, expected):
    from methods.fitnet import stage1_epochs
    assert stage1_epochs(frac, epochs) == expected


def _real_step(m, student, teacher, epoch, epochs, x, y):
    """The engine's step on real networks: tapped forward, loss, backward, SGD step."""
    taps = m.feature_taps
    with torch.no_grad(), tapped(teacher, taps, mode="eval") as t:
        t_out = t(x)
    params = list(student.parameters()) + list(m.regressor.parameters())
    opt, _ = make_optimizer(params, m.ctx.protocol.student_recipe, 100)
    student.train()
    m.regressor.train()
    with tapped(student, taps) as s:
        step = Step(Batch(x, y, torch.arange(len(y))), t_out, s, epoch, epochs)
        loss = m.loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss, t_out, step


def test_stage1_is_the_hint_alone_and_leaves_the_head_untouched(built, protocol):
    m, student, teacher = built
    x, y = torch.rand(16, *protocol.input_shape), torch.randint(0, 10, (16,))
    after_guided = {n: p.detach().clone() for n, p in student.named_parameters()
                    if n.startswith(("stage3", "head"))}
    upto_guided = {n: p.detach().clone() for n, p in student.named_parameters()
                   if n.startswith(("stage1", "stage2"))}
    reg_before = [p.detach().clone() for p in m.regressor.parameters()]
    with torch.no_grad(), tapped(student, m.feature_taps, mode="train") as s:
        guided = s(x).features["stage2"]
        want = 100 * ((m.regressor(guided) - teacher_stage2(teacher, x)) ** 2).mean()
    loss, _, _ = _real_step(m, student, teacher, 0, 8, x, y)  # epoch 0 of 8: stage 1
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)  # no CE, no logits
    for n, p in student.named_parameters():
        if n in after_guided:  # no gradient: no step, no weight decay, no momentum
            assert p.grad is None and torch.equal(p, after_guided[n]), n
        else:
            assert p.grad is not None and not torch.equal(p, upto_guided[n]), n
    assert all(not torch.equal(a, b) for a, b in zip(m.regressor.parameters(), reg_before))


def teacher_stage2(teacher, x):
    with tapped(teacher, ("stage2",), mode="eval") as t:
        return t(x).features["stage2"]


def test_stage2_is_the_papers_kd_loss_and_leaves_the_regressor_alone(built, protocol):
    m, student, teacher = built
    x, y = torch.rand(16, *protocol.input_shape), torch.randint(0, 10, (16,))
    reg_before = [p.detach().clone() for p in m.regressor.parameters()]
    with torch.no_grad():
        s_logits, t_logits = student.train()(x), teacher(x)
    loss, _, _ = _real_step(m, student, teacher, 2, 8, x, y)  # first epoch of stage 2
    # CE(y) + lambda * H(p_T^tau, p_S^tau), lambda = 4 at the start, tau = 3, by hand:
    total = 0.0
    for s, t, label in zip(s_logits.tolist(), t_logits.tolist(), y.tolist()):
        ls = [v - max(s) for v in s]
        log_p = [v - math.log(sum(math.exp(u) for u in ls)) for v in ls]
        st = [v / 3 - max(s) / 3 for v in s]
        log_q = [v - math.log(sum(math.exp(u) for u in st)) for v in st]
        et = [math.exp((v - max(t)) / 3) for v in t]
        p_t = [v / sum(et) for v in et]
        total += -log_p[label] + 4.0 * -sum(a * b for a, b in zip(p_t, log_q))
    assert loss.item() == pytest.approx(total / 16, rel=1e-4)
    assert all(p.grad is None for p in m.regressor.parameters())
    assert all(torch.equal(a, b) for a, b in zip(m.regressor.parameters(), reg_before))
    assert all(p.grad is not None for p in student.parameters())


def test_kd_weight_anneals_linearly_from_4_to_1_over_stage_2(built):
    m, _, _ = built
    # 8 epochs: stage 1 is epochs 0-1, stage 2 epochs 2..7
    assert [m.kd_weight(e, 8) for e in range(2, 8)] == pytest.approx([4, 3.4, 2.8, 2.2, 1.6, 1])
    assert [m.in_stage1(e, 8) for e in range(8)] == [True, True] + [False] * 6


def test_one_real_step_of_each_stage_through_the_plugin_check():
    from bench.plugin_check import one_step  # epochs = 1: stage 2 only, the whole student
    loss = one_step(methods.discover()[0]["fitnet"].cls)
    assert loss.dim() == 0 and torch.isfinite(loss)
    cls = methods.discover()[0]["fitnet"].cls
    assert cls.family == "feature" and cls.feature_taps == ("stage2",)


def test_hint_of_a_student_that_matches_the_teacher_through_the_regressor_is_zero(built):
    m, _, _ = built
    c_s, h, w = m.ctx.student_shapes["stage2"]
    f = torch.rand(2, c_s, h, w)
    m.regressor.eval()
    with torch.no_grad():
        target = m.regressor(f)
    s = Step(Batch(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.arange(2)),
             Outputs(torch.zeros(2, 10), {"stage2": target}),
             lambda _: Outputs(torch.zeros(2, 10), {"stage2": f}), 0, 8)
    assert m.loss(s).item() == pytest.approx(0, abs=1e-10)
