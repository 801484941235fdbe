"""Probabilistic knowledge transfer (Passalis & Tefas, "Learning Deep Representations with
Probabilistic Knowledge Transfer", ECCV 2018, arXiv:1803.10837).

The student matches the teacher's conditional distribution over neighbours in feature space:
with cosine-similarity kernels K(a, b) = (cos(a, b) + 1) / 2,
p_{j|i} = K(x_i, x_j) / sum_k K(x_i, x_k) for teacher and student features over a batch, and

    loss = CE(z_s, y) + beta * mean_{i,j} p^t_{j|i} * log((p^t_{j|i} + eps) / (p^s_{j|i} + eps))

a KL divergence averaged over the B x B entries (the official code's reduction, eps = 1e-7).
The code follows the authors' (passalis/probabilistic_kt nn/pkt.py, as RepDistiller and mdistiller
use it) on the pooled penultimate features. Defaults are RepDistiller's/mdistiller's CIFAR-100
ones: beta = 30000, CE weight 1.

Protocol note: the features are the global average of the last stage (methods.losses.pooled):
the mnist5k ConvNet's penultimate feature exactly; on ResNet-9, whose head max-pools, the average
of the same map.
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import pooled


def _cosine_kernel(f: torch.Tensor, eps: float) -> torch.Tensor:
    f = f / (torch.sqrt(torch.sum(f ** 2, dim=1, keepdim=True)) + eps)
    f = f.masked_fill(f != f, 0.0)  # the official code zeroes NaNs
    sim = (f @ f.t() + 1.0) / 2.0
    return sim / sim.sum(1, keepdim=True)


def pkt_loss(f_s: torch.Tensor, f_t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """KL between the teacher's and the student's neighbour distributions, mean over B x B."""
    p_s, p_t = _cosine_kernel(f_s, eps), _cosine_kernel(f_t, eps)
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean()


@register_method
class PKT(Method):
    name = "pkt"
    description = "Passalis & Tefas 2018: match the teacher's cosine-kernel neighbour distribution"
    family = "feature"
    feature_taps = ("stage3",)

    class Hparams(HParams):
        beta: float = 30000.0  # weight of the PKT divergence

    def loss(self, step: Step):
        s, t = step.student(), step.teacher
        # In float32 whatever the autocast (CUDA trains in bf16): beta = 30000 scales the error.
        with torch.autocast(s.logits.device.type, enabled=False):
            kt = pkt_loss(pooled(s.features["stage3"].float()),
                          pooled(t.features["stage3"].float()))
        return F.cross_entropy(s.logits, step.batch.y) + self.hp.beta * kt
