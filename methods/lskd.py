"""Logit standardisation in KD (Sun, Ren, Li, Wang & Cao, "Logit Standardization in Knowledge
Distillation", CVPR 2024, arXiv:2403.01427).

Classical KD forces the student's logits to match the teacher's up to a shift at a shared
temperature, although a smaller student cannot reach the teacher's logit range. Z-scoring each
example's logits before the softened KL removes that: the student only has to match the
teacher's logit *relations*. The paper's Algorithm 1:

    Z(z)  = (z - mean(z)) / (std(z) + 1e-7)        (per example, over the classes)
    loss  = ce_weight * CE(z_s, y)
            + kd_weight * T^2 * KL(softmax(Z(z_t) / T) || softmax(Z(z_s) / T))

as in the official code (sunshangquan/logit-standardization-KD, mdistiller/distillers/KD.py):
`std` is the unbiased (n - 1) standard deviation, the CE term is on the raw logits. Defaults are
the official CIFAR-100 KD recipe with `--logit-stand`: base temperature T = 2, KD weight 9, CE
weight 0.1.
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import kd_loss


def standardize(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Z-score each row: mean 0, (unbiased) standard deviation 1."""
    return (logits - logits.mean(-1, keepdim=True)) / (eps + logits.std(-1, keepdim=True))


@register_method
class LSKD(Method):
    name = "lskd"
    description = "Sun et al. 2024: KD on z-scored logits (logit standardisation)"
    family = "logit"

    class Hparams(HParams):
        T: float = 2.0  # base temperature, applied to the standardised logits
        kd_weight: float = 9.0  # weight of the KL term
        ce_weight: float = 0.1  # weight of the label cross-entropy

    def loss(self, step: Step):
        s, hp = step.student().logits, self.hp
        kl = kd_loss(standardize(s), standardize(step.teacher.logits), hp.T)
        return hp.ce_weight * F.cross_entropy(s, step.batch.y) + hp.kd_weight * kl
