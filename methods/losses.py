"""Losses that several methods share, each defined once (torchdistill's `losses/single.py`
habit); the training-time attacks they share are in attacks/pgd.py. A method that imports this
file has it in its job key: editing it makes every dependent record stale.

KL reductions. `reduction="batchmean"` is the true KL divergence per example, averaged over the
batch (sum over classes, mean over examples). `reduction="mean"` averages over batch x classes:
what `nn.KLDivLoss()` does by default, which the released codes of ARD, RSLAD and AdaAD (CIFAR-10)
use; it is the batchmean value divided by the number of classes, i.e. a 10x smaller loss, and so
a 10x smaller learning rate for that term, on 10 classes.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

KLReduction = Literal["batchmean", "mean"]


def _kl(student_log_prob: torch.Tensor, teacher: torch.Tensor, reduction: KLReduction,
        log_target: bool = False) -> torch.Tensor:
    if reduction not in ("batchmean", "mean"):
        raise ValueError(f"KL reduction must be 'batchmean' or 'mean', not {reduction!r}")
    total = F.kl_div(student_log_prob, teacher, reduction="sum", log_target=log_target)
    # Spelled out: F.kl_div(reduction="mean") computes the same but warns on every call.
    return total / (student_log_prob.shape[0] if reduction == "batchmean"
                    else student_log_prob.numel())


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float,
            reduction: KLReduction = "batchmean") -> torch.Tensor:
    """Hinton et al. 2015: T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch
    (batchmean: the true KL divergence per example; see the module docstring for "mean"). The
    T^2 keeps the soft-target gradients on the hard-target scale when T changes."""
    return _kl(F.log_softmax(student_logits / T, dim=1), F.log_softmax(teacher_logits / T, dim=1),
               reduction, log_target=True) * T * T


def soft_kl(student_logits: torch.Tensor, teacher_prob: torch.Tensor,
            reduction: KLReduction = "batchmean") -> torch.Tensor:
    """KL(teacher || student) at temperature 1 against given probabilities (batchmean by
    default; see the module docstring for "mean")."""
    return _kl(F.log_softmax(student_logits, 1), teacher_prob, reduction)


def kl_per_example(student_logits: torch.Tensor, target_logits: torch.Tensor,
                   T: float = 1.0) -> torch.Tensor:
    """KL(softmax(target/T) || softmax(student/T)) of each example (shape [batch]), gradients
    to both arguments; for losses that weight examples (IAD) or compare two outputs of one
    network (TRADES)."""
    return F.kl_div(F.log_softmax(student_logits / T, 1), F.log_softmax(target_logits / T, 1),
                    reduction="none", log_target=True).sum(1)


def logit_l2(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between logit vectors, averaged over the batch."""
    return (student_logits - teacher_logits).pow(2).sum(1).mean()


def hint_mse(teacher_feat: torch.Tensor, regressed: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the teacher's hint and the regressed student feature, averaged
    over every element (F.mse_loss, as mdistiller's FitNet); the regressed feature is pooled to
    the teacher's spatial size where they differ."""
    if regressed.shape[-2:] != teacher_feat.shape[-2:]:
        regressed = F.adaptive_avg_pool2d(regressed, teacher_feat.shape[-2:])
    return F.mse_loss(regressed, teacher_feat)
