"""Each logit and feature method's loss against torchdistill's implementation of the same paper
(torchdistill.losses.mid_level, and its auxiliary modules in torchdistill.models.wrapper): the
same tensors in, equal values and equal gradients with respect to the student's outputs (its
logits and tapped features) out. Learnable parts (CRD's embeddings and memory banks, VID's
regressors and variances, ReviewKD's fusion modules) are given identical weights in both.

Every method's total loss is CE + weight * distillation term; the tests build that sum from
torchdistill's term, so the weights and the reduction are checked too. Documented differences:
- DIST: the official cosine similarity adds eps to |a| |b|; torchdistill calls torch's
  cosine_similarity, which clamps the norms instead: equal up to 1e-8 / (|a| |b|).
- CRD: torchdistill's CRDLoss draws no negatives itself here (its sampler is not used with
  `contrast_idx` given, as the official data loader gives it); both get the indices our method
  drew.
- The methods' student and teacher are run on both built-in architecture pairs (the mnist5k
  ConvNets, the CIFAR ResNet-9s), so the shapes come from each protocol's real models.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import methods
from bench.data import Batch
from bench.models import build_model
from bench.models.taps import Outputs
from bench.protocols import get_protocol
from bench.train.engine import build_method
from methods.api import Step

td = pytest.importorskip("torchdistill.losses.mid_level")
wrapper = pytest.importorskip("torchdistill.models.wrapper")

PROTOCOLS = ["mnist5k", "cifar10"]
B = 12


class Fixed:
    """Stands in for the tapped student: returns the given outputs for the clean batch."""

    def __init__(self, out: Outputs):
        self.out = out

    def __call__(self, x):
        return self.out


def make(name: str, protocol: str = "mnist5k", **hp):
    p = get_protocol(protocol)
    cls = methods.discover()[0][name].cls
    student, teacher = build_model(p.student_arch, p), build_model(p.teacher_arch, p)
    return build_method(cls, cls.Hparams(**hp), p, student, teacher,
                        torch.rand(2, *p.input_shape))


def outputs(m, student: bool, b: int = B) -> Outputs:
    """Random logits and post-activation-like features of the context's shapes; the student's
    require gradients."""
    shapes = m.ctx.student_shapes if student else m.ctx.teacher_shapes
    feats = {k: torch.relu(torch.randn(b, *shapes[k])).requires_grad_(student)
             for k in m.feature_taps}
    logits = (3 * torch.randn(b, m.ctx.num_classes)).requires_grad_(student)
    return Outputs(logits, feats)


def step_for(s: Outputs, t: Outputs, y: torch.Tensor, index: torch.Tensor | None = None,
             epoch: int = 0, epochs: int = 1) -> Step:
    index = torch.arange(len(y)) if index is None else index
    return Step(Batch(torch.zeros(len(y), 1), y, index), t, Fixed(s), epoch, epochs)


def leaves(out: Outputs) -> list[torch.Tensor]:
    return [out.logits, *out.features.values()]


def clone(out: Outputs) -> Outputs:
    """The same values as new leaves, so each implementation gets its own gradients."""
    return Outputs(out.logits.detach().clone().requires_grad_(),
                   {k: v.detach().clone().requires_grad_() for k, v in out.features.items()})


def assert_same(ours: torch.Tensor, theirs: torch.Tensor, s_ours: Outputs, s_theirs: Outputs,
                rtol: float = 1e-5) -> None:
    """Equal values, and equal gradients w.r.t. every student output."""
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=0)
    g_ours = torch.autograd.grad(ours, leaves(s_ours), allow_unused=True)
    g_theirs = torch.autograd.grad(theirs, leaves(s_theirs), allow_unused=True)
    for a, b in zip(g_ours, g_theirs):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=rtol, atol=1e-6 * float(b.abs().max()))
    assert any(g is not None for g in g_ours)


def io(**modules) -> dict:
    """torchdistill's io_dict: {module path: {"output" or "input": tensor}}."""
    return {path: value for path, value in modules.items()}


def labels(m, b: int = B) -> torch.Tensor:
    return torch.randint(0, m.ctx.num_classes, (b,))


# -- logit methods -------------------------------------------------------------------------------

def test_lskd_equals_torchdistill_logit_std_kd_loss():
    m = make("lskd")
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    ours = m.loss(step_for(s, t, y))
    # torchdistill's alpha weights the CE term and beta the KL term: ours are ce_weight, kd_weight.
    ref = td.LogitStdKDLoss(".", "output", ".", "output", temperature=2.0, alpha=0.1, beta=9.0)
    theirs = ref(io(**{".": {"output": s2.logits}}), io(**{".": {"output": t.logits}}), y)
    assert_same(ours, theirs, s, s2)


def test_dist_equals_torchdistill_dist_loss():
    m = make("dist")
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    ours = m.loss(step_for(s, t, y))
    ref = td.DISTLoss(".", "output", ".", "output", beta=1.0, gamma=1.0, tau=4.0)
    term = ref(io(**{".": {"output": s2.logits}}), io(**{".": {"output": t.logits}}))
    theirs = F.cross_entropy(s2.logits, y) + 2.0 * term  # CE weight 1, KD weight 2
    assert_same(ours, theirs, s, s2)


# -- feature methods on stage outputs -------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_at_equals_torchdistill_at_loss_in_code_mode(protocol):
    m = make("at", protocol)
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    ours = m.loss(step_for(s, t, y))
    pairs = {k: {"student": {"io": "output", "path": k}, "teacher": {"io": "output", "path": k},
                 "weight": 1000.0} for k in m.feature_taps}
    ref = td.ATLoss(pairs, mode="code")
    term = ref(io(**{k: {"output": v} for k, v in s2.features.items()}),
               io(**{k: {"output": v} for k, v in t.features.items()}))
    assert_same(ours, F.cross_entropy(s2.logits, y) + term, s, s2)


class SPKDLossL2(td.SPKDLoss):
    """torchdistill 1.1.5's SPKDLoss calls `normalize(G, 1)`, whose second argument is p: it
    normalises the rows of the similarity matrix in L1. The paper (Eq. 2, row-wise L2) and both
    official codes (RepDistiller, mdistiller: `F.normalize(G)`) use L2; this swaps that one call
    and keeps the rest of torchdistill's loss (the Frobenius norm, the 1 / B^2 reduction)."""

    def matmul_and_normalize(self, z):
        z = torch.flatten(z, 1)
        return F.normalize(torch.matmul(z, torch.t(z)), p=2, dim=1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sp_equals_torchdistill_spkd_loss_batchmean(protocol):
    m = make("sp", protocol)
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    ours = m.loss(step_for(s, t, y))
    s_io = io(stage3={"output": s2.features["stage3"]})
    t_io = io(stage3={"output": t.features["stage3"]})
    term = SPKDLossL2("stage3", "stage3", reduction="batchmean")(s_io, t_io)
    assert_same(ours, F.cross_entropy(s2.logits, y) + 3000.0 * term, s, s2)
    # The one difference, made explicit: unpatched, torchdistill normalises the rows in L1.
    unpatched = td.SPKDLoss("stage3", "stage3", reduction="batchmean")(s_io, t_io)
    g = [f.detach().flatten(1) @ f.detach().flatten(1).t()
         for f in (s2.features["stage3"], t.features["stage3"])]
    l1 = (F.normalize(g[1], p=1, dim=1) - F.normalize(g[0], p=1, dim=1)).pow(2).sum() / B ** 2
    torch.testing.assert_close(unpatched.detach(), l1)
    assert not torch.isclose(unpatched.detach(), term.detach(), rtol=1e-2)


def _pooled(out: Outputs) -> torch.Tensor:
    # The pooled penultimate feature torchdistill reads as fc's input: the global average.
    return F.adaptive_avg_pool2d(out.features["stage3"], 1).flatten(1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pkt_equals_torchdistill_pkt_loss(protocol):
    m = make("pkt", protocol)
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    ours = m.loss(step_for(s, t, y))
    ref = td.PKTLoss("fc", "input", "fc", "input", eps=1e-7)
    term = ref(io(fc={"input": _pooled(s2)}), io(fc={"input": _pooled(t)}))
    assert_same(ours, F.cross_entropy(s2.logits, y) + 30000.0 * term, s, s2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rkd_equals_torchdistill_rkd_loss(protocol):
    m = make("rkd", protocol)
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    ours = m.loss(step_for(s, t, y))
    ref = td.RKDLoss("pool", "pool", dist_factor=25.0, angle_factor=50.0, reduction="mean")
    # RKDLoss flattens the module output itself: hand it the pooled features as (B, C, 1, 1).
    term = ref(io(pool={"output": _pooled(s2)[:, :, None, None]}),
               io(pool={"output": _pooled(t)[:, :, None, None]}))
    assert_same(ours, F.cross_entropy(s2.logits, y) + term, s, s2)


# -- feature methods with learnable parts ----------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_vid_equals_torchdistill_vid_loss_with_the_same_regressors(protocol):
    m = make("vid", protocol)
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    ours = m.loss(step_for(s, t, y))
    s_io, t_io, pairs = {}, {}, {}
    for k in m.feature_taps:
        mine = m.regressors[k]
        c_s, c_t = m.ctx.student_shapes[k][0], m.ctx.teacher_shapes[k][0]
        reg = wrapper.Regressor4VID(c_s, c_t, c_t, eps=1e-5, init_pred_var=5.0)
        # Same initial variance by construction; the same regressor weights by copy.
        torch.testing.assert_close(reg.soft_plus_param.float(), mine.log_scale.detach())
        reg.load_state_dict({"regressor.0.weight": mine.regressor[0].weight,
                             "regressor.2.weight": mine.regressor[2].weight,
                             "regressor.4.weight": mine.regressor[4].weight,
                             "soft_plus_param": mine.log_scale})
        s_io[f"reg.{k}"] = {"output": reg(s2.features[k])}
        t_io[k] = {"output": t.features[k]}
        pairs[k] = {"student": {"io": "output", "path": f"reg.{k}"},
                    "teacher": {"io": "output", "path": k}, "weight": 1.0}
    theirs = F.cross_entropy(s2.logits, y) + td.VIDLoss(pairs)(s_io, t_io)
    assert_same(ours, theirs, s, s2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reviewkd_equals_torchdistill_abf_chain_and_hierarchical_context_loss(protocol):
    m = make("reviewkd", protocol, warmup=0.0)  # no warm-up: the review term at full weight
    s, t = outputs(m, True), outputs(m, False)
    y = labels(m)
    s2 = clone(s)
    m.fusion.train()
    ours = m.loss(step_for(s, t, y))
    taps = m.feature_taps
    # torchdistill's Student4KnowledgeReview chain, highest feature first, with our weights.
    abfs = []
    for i, mine in enumerate(m.fusion.abfs):
        ref = wrapper.AttentionBasedFusion(mine.conv1[0].in_channels, mine.conv1[0].out_channels,
                                           mine.conv2[0].out_channels,
                                           uses_attention=mine.att_conv is not None)
        state = {k.replace("att_conv", "attention_conv"): v for k, v in mine.state_dict().items()}
        ref.load_state_dict(state)
        abfs.append(ref.train())
    student_feats = [s2.features[k] for k in taps] + [_pooled(s2)[:, :, None, None]]
    teacher_feats = [t.features[k] for k in taps] + [_pooled(t)[:, :, None, None]]
    sizes = [f.shape[-1] for f in student_feats]
    outs, (out, res) = [], abfs[-1](student_feats[-1])
    outs.insert(0, out)
    for i in reversed(range(len(taps))):
        out, res = abfs[i](student_feats[i], res, sizes[i])
        outs.insert(0, out)
    hcl = td.HierarchicalContextLoss("abf", "output", "t", "output", output_sizes=[4, 2, 1])
    review = sum(hcl(io(abf={"output": (o, None)}), io(t={"output": f}))
                 for o, f in zip(outs, teacher_feats))
    assert_same(ours, F.cross_entropy(s2.logits, y) + 5.0 * review, s, s2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_crd_equals_torchdistill_crd_loss_over_two_steps_with_the_same_banks(protocol):
    m = make("crd", protocol, nce_k=64)
    n, dim = m.n_data, m.hp.feat_dim
    ref = td.CRDLoss("normalizer", "empty", "normalizer", input_size=dim, output_size=n,
                     num_negative_samples=64, num_samples=n, temperature=0.07, momentum=0.5)
    ref.memory_v1.copy_(m.memory.memory_s)  # v1: the student's side
    ref.memory_v2.copy_(m.memory.memory_t)
    norm_s = wrapper.Normalizer4CRD(torch.nn.Linear(*m.embed["student"].linear.weight.shape[::-1]))
    norm_t = wrapper.Normalizer4CRD(torch.nn.Linear(*m.embed["teacher"].linear.weight.shape[::-1]))
    norm_s.linear.load_state_dict(m.embed["student"].linear.state_dict())
    norm_t.linear.load_state_dict(m.embed["teacher"].linear.state_dict())
    drawn = []
    draw = m._negatives
    m._negatives = lambda index, y: drawn.append(draw(index, y)) or drawn[-1]
    for k in range(2):  # the first step sets the normalisers Z; the second uses them
        s, t = outputs(m, True), outputs(m, False)
        y = labels(m)
        index = torch.randperm(n)[:B]
        s2 = clone(s)
        ours = m.loss(step_for(s, t, y, index))
        supp = {"pos_idx": index, "contrast_idx": drawn[-1]}
        term = ref(io(normalizer={"output": norm_s(_pooled(s2))}, empty={"input": supp}),
                   io(normalizer={"output": norm_t(_pooled(t))}))
        # CRDLoss returns a 1-element tensor (its sums keep a dimension).
        assert_same(ours, F.cross_entropy(s2.logits, y) + 0.8 * term.squeeze(0), s, s2)
        torch.testing.assert_close(m.memory.memory_s, ref.memory_v1)
        torch.testing.assert_close(m.memory.memory_t, ref.memory_v2)
        assert m.memory.z_s == pytest.approx(ref.params[2].item(), rel=1e-6)
        assert m.memory.z_t == pytest.approx(ref.params[3].item(), rel=1e-6)
