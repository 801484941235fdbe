"""Contrastive representation distillation (Tian, Krishnan & Isola, ICLR 2020, arXiv:1910.10699).

CRD maximises a lower bound on the mutual information between the teacher's and the student's
representations with a contrastive (NCE) objective: the student's embedding of x_i should pick
the teacher's embedding of the same x_i out of K negatives of other inputs, and symmetrically.
Both embeddings are linear maps of the pooled penultimate features to 128 dimensions,
L2-normalised. The negatives come from a memory bank holding a momentum average of every training
example's embedding (one bank per network), indexed by the example's position in the training
set, `batch.index`. With h(v, m) = exp(v.m / tau) / Z and noise probability 1/N over N training
examples (the official NCE form of the paper's bound),

    L_v = -1/B sum_i [ log(h_i+ / (h_i+ + K/N)) + sum_k log((K/N) / (h_ik + K/N)) ]
    loss = CE(z_s, y) + beta * (L_student + L_teacher)

The code follows the official implementation (HobbitLong/RepDistiller crd/: Embed,
ContrastMemory, ContrastLoss; mdistiller's CRD is the same): the bank initialised uniformly in
+-1/sqrt(d/3), the normalisers Z fixed from the first batch as mean(exp(.)) * N, the bank rows of
the batch updated after scoring as normalize(m * row + (1 - m) * embedding). One change of
computation, not of result: the scores come from one product of the embeddings with the whole
bank, then the drawn entries are picked, where the official code gathers B (K + 1) bank rows
first (ContrastMemory.score says why). Defaults are its
CIFAR-100 ones: embedding dimension 128, NCE temperature tau = 0.07, momentum 0.5, beta = 0.8,
CE weight 1.

Protocol-forced changes:
- K = 4096 negatives instead of 16384: mnist5k has N = 4000 training examples (16384 would
  draw each of them four times per anchor), and the NCE terms cost O(B K) per step: on one CPU
  core the CRD part of a step takes about 35 ms at K = 4096 and 130 ms at 16384, against about
  25 ms for the rest of the step (the student's forward and backward).
- Negatives are drawn from the other classes, as the official data loader's `mode="exact"`
  does, but the labels are learned from the batches as they come (a method sees the training
  set only batch by batch): during the first epoch an example not yet seen may be drawn as a
  negative whatever its class. They are drawn with replacement (the official loader draws
  without, when there are enough).
- The pooled features are the global average of the last stage (methods.losses.pooled): the
  mnist5k ConvNet's penultimate feature exactly; ResNet-9's head max-pools.

The banks, the normalisers and the learned labels are the method's state (`state_dict()`), so a
resumed run continues exactly. The embeddings are extra modules.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.api import HParams, Method, Step, register_method
from methods.losses import pooled

class Embed(nn.Module):
    """Linear map to the contrastive space, L2-normalised (official Embed)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x.flatten(1))
        return z / z.pow(2).sum(1, keepdim=True).pow(0.5)


def contrast_loss(x: torch.Tensor, n_data: int, eps: float = 1e-7) -> torch.Tensor:
    """NCE loss of the official ContrastLoss: column 0 the positive, the rest negatives."""
    m = x.shape[1] - 1
    noise = m / n_data
    log_d1 = torch.log(x[:, 0] / (x[:, 0] + (noise + eps)))
    log_d0 = torch.log(noise / (x[:, 1:] + (noise + eps)))
    return -(log_d1.sum() + log_d0.sum()) / x.shape[0]


class ContrastMemory:
    """The two memory banks (student's, teacher's) and their normalisers: official
    ContrastMemory.forward with the negative indices given."""

    def __init__(self, dim: int, n_data: int, nce_t: float, momentum: float):
        stdv = 1.0 / math.sqrt(dim / 3)
        self.memory_s = torch.rand(n_data, dim).mul_(2 * stdv).add_(-stdv)
        self.memory_t = torch.rand(n_data, dim).mul_(2 * stdv).add_(-stdv)
        self.z_s, self.z_t = -1.0, -1.0  # set from the first batch
        self.nce_t, self.momentum = nce_t, momentum

    def to(self, device: torch.device) -> None:
        self.memory_s, self.memory_t = self.memory_s.to(device), self.memory_t.to(device)

    def score(self, v_s: torch.Tensor, v_t: torch.Tensor, index: torch.Tensor,
              contrast_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(out_s, out_t), each (B, K + 1): the student's embedding against the teacher's bank
        rows and the teacher's against the student's; then the batch's rows are updated."""
        n_data = self.memory_s.shape[0]
        # The official code gathers the B x (K + 1) bank rows and multiplies (bmm): B (K + 1) d
        # floats moved per bank (1 GB at K = 16384, B = 128). Scoring against the whole bank and
        # picking the entries is the same number at B N d multiply-adds and B N floats.
        out_s = torch.exp((v_s @ self.memory_t.t()).gather(1, contrast_idx) / self.nce_t)
        out_t = torch.exp((v_t @ self.memory_s.t()).gather(1, contrast_idx) / self.nce_t)
        if self.z_s < 0:  # a host sync, once per run
            self.z_s = out_s.mean().item() * n_data
        if self.z_t < 0:
            self.z_t = out_t.mean().item() * n_data
        out_s, out_t = out_s / self.z_s, out_t / self.z_t
        with torch.no_grad():  # out of place: the scores' backward reads the old banks
            self.memory_s = self._updated(self.memory_s, index, v_s)
            self.memory_t = self._updated(self.memory_t, index, v_t)
        return out_s, out_t

    def _updated(self, bank: torch.Tensor, index: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        rows = bank[index] * self.momentum + v * (1 - self.momentum)
        return bank.index_copy(0, index, rows / rows.pow(2).sum(1, keepdim=True).pow(0.5))


def crd_loss(out_s: torch.Tensor, out_t: torch.Tensor, n_data: int) -> torch.Tensor:
    return contrast_loss(out_s, n_data) + contrast_loss(out_t, n_data)


@register_method
class CRD(Method):
    name = "crd"
    description = "Tian et al. 2020: contrastive distillation with a memory bank of negatives"
    family = "feature"
    feature_taps = ("stage3",)

    class Hparams(HParams):
        feat_dim: int = 128  # embedding dimension
        nce_k: int = 4096  # negatives per example
        nce_t: float = 0.07  # temperature of the contrastive scores
        nce_m: float = 0.5  # momentum of the memory bank
        beta: float = 0.8  # weight of the contrastive loss

    def __init__(self, hparams, ctx):
        super().__init__(hparams, ctx)
        hp = self.hp
        self.n_data = ctx.protocol.n_train
        self.embed = nn.ModuleDict({
            "student": Embed(ctx.student_shapes["stage3"][0], hp.feat_dim),
            "teacher": Embed(ctx.teacher_shapes["stage3"][0], hp.feat_dim)})
        self.memory = ContrastMemory(hp.feat_dim, self.n_data, hp.nce_t, hp.nce_m)
        self.labels = torch.full((self.n_data,), -1, dtype=torch.long)  # learned from batches

    def extra_modules(self) -> nn.Module:
        return self.embed

    def _negatives(self, index: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, K + 1) bank indices: the example itself, then K negatives drawn uniformly, with
        replacement, from the examples not known to share its class."""
        self.labels[index] = y
        # The bank grouped by label, unknown (-1) first: the candidates of an anchor of class c
        # are the positions outside c's block, [0, start_c) and [start_c + n_c, N). One uniform
        # draw over those N - n_c positions per negative, no rejection, no host sync.
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels + 1, minlength=self.ctx.num_classes + 1)
        n_c = counts[y + 1].unsqueeze(1)
        start_c = (counts.cumsum(0) - counts)[y + 1].unsqueeze(1)
        others = self.n_data - n_c
        u = torch.rand(index.shape[0], self.hp.nce_k, device=index.device) * others
        u = torch.minimum(u.long(), others - 1)  # float rounding may reach the upper bound
        neg = order[u + n_c * (u >= start_c)]
        return torch.cat([index.unsqueeze(1), neg], dim=1)

    def loss(self, step: Step):
        s, batch = step.student(), step.batch
        device = s.logits.device
        if self.memory.memory_s.device != device:
            self.memory.to(device)
            self.labels = self.labels.to(device)
        contrast_idx = self._negatives(batch.index, batch.y)
        # In float32 whatever the autocast (CUDA runs bf16): the banks are float32, and exp(./0.07)
        # of bf16 scores would lose the contrast.
        with torch.autocast(device.type, enabled=False):
            v_s = self.embed["student"](pooled(s.features["stage3"]).float())
            v_t = self.embed["teacher"](pooled(step.teacher.features["stage3"]).float())
            out_s, out_t = self.memory.score(v_s, v_t, batch.index, contrast_idx)
            kd = crd_loss(out_s, out_t, self.n_data)
        return F.cross_entropy(s.logits, batch.y) + self.hp.beta * kd

    def state_dict(self) -> dict:
        m = self.memory
        return {"memory_s": m.memory_s.clone(), "memory_t": m.memory_t.clone(),
                "z_s": m.z_s, "z_t": m.z_t, "labels": self.labels.clone()}

    def load_state_dict(self, state: dict) -> None:
        m = self.memory
        m.memory_s, m.memory_t = state["memory_s"].clone(), state["memory_t"].clone()
        m.z_s, m.z_t = float(state["z_s"]), float(state["z_t"])
        self.labels = state["labels"].clone()
