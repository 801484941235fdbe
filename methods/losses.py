"""Losses that several methods share, each defined once (torchdistill's `losses/single.py`
habit); the training-time attacks they share are in attacks/pgd.py. A method that imports this
file has it in its job key: editing it makes every dependent record stale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Hinton et al. 2015: T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch
    (batchmean: the true KL divergence per example). The T^2 keeps the soft-target gradients on
    the hard-target scale when T changes."""
    return F.kl_div(F.log_softmax(student_logits / T, dim=1),
                    F.log_softmax(teacher_logits / T, dim=1),
                    reduction="batchmean", log_target=True) * T * T


def soft_kl(student_logits: torch.Tensor, teacher_prob: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) at temperature 1, averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits, 1), teacher_prob, reduction="batchmean")


def logit_l2(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between logit vectors, averaged over the batch."""
    return (student_logits - teacher_logits).pow(2).sum(1).mean()


def hint_loss(teacher_feat: torch.Tensor, regressed: torch.Tensor) -> torch.Tensor:
    """FitNets' 0.5 * squared error per element, averaged over elements; the regressed student
    feature is pooled to the teacher's spatial size where they differ."""
    if regressed.shape[-2:] != teacher_feat.shape[-2:]:
        regressed = F.adaptive_avg_pool2d(regressed, teacher_feat.shape[-2:])
    return 0.5 * (teacher_feat - regressed).pow(2).mean()
