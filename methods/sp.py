"""Similarity-preserving knowledge distillation (Tung & Mori, ICCV 2019, arXiv:1907.09682).

Inputs that the teacher finds similar should be similar to the student too. Over a batch of B
examples with last-stage activations flattened to Q (B x CHW), the similarity matrix
G = row_normalize(Q Q^T) (B x B) does not depend on the channel count, so any two networks can be
compared:

    loss = CE(z_s, y) + beta / B^2 * ||G_t - G_s||_F^2

Defaults are RepDistiller's/mdistiller's CIFAR-100 ones (the paper's gamma): beta = 3000, CE
weight 1, on the output of the last stage before pooling (RepDistiller's `feat[-2]`).
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method


def similarity(feat: torch.Tensor) -> torch.Tensor:
    """Row-L2-normalised Gram matrix of the flattened activations, (B, B)."""
    q = feat.flatten(1)
    return F.normalize(q @ q.t(), dim=1)


def sp_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """||G_t - G_s||_F^2 / B^2."""
    b = f_s.shape[0]
    return (similarity(f_t) - similarity(f_s)).pow(2).sum() / (b * b)


@register_method
class SP(Method):
    name = "sp"
    description = "Tung & Mori 2019: match the teacher's batch similarity matrix at the last stage"
    family = "feature"
    feature_taps = ("stage3",)

    class Hparams(HParams):
        beta: float = 3000.0  # weight of the similarity loss (the paper's gamma)

    def loss(self, step: Step):
        s, t = step.student(), step.teacher
        # In float32 whatever the autocast (CUDA trains in bf16): beta = 3000 scales the error.
        with torch.autocast(s.logits.device.type, enabled=False):
            sp = sp_loss(s.features["stage3"].float(), t.features["stage3"].float())
        return F.cross_entropy(s.logits, step.batch.y) + self.hp.beta * sp
