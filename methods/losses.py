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


# -- feature helpers shared by the feature methods ----------------------------------------------

def pooled(feat: torch.Tensor) -> torch.Tensor:
    """The global average of a (B, C, H, W) stage output, (B, C): the "pooled feature" that PKT,
    RKD, CRD and ReviewKD read (RepDistiller's `feat[-1]`). The method contract taps stages, not
    the head, so this is the average of the last stage whatever the head pools: the mnist5k
    ConvNet's own head averages; ResNet-9's head max-pools the same map."""
    return feat.mean((2, 3))


def match_spatial(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The larger of two feature maps average-pooled to the other's size (RepDistiller's and
    mdistiller's AT and VID); unchanged when they agree, as every built-in student/teacher pair
    does stage by stage."""
    h_s, h_t = f_s.shape[2], f_t.shape[2]
    if h_s > h_t:
        f_s = F.adaptive_avg_pool2d(f_s, f_t.shape[2:])
    elif h_s < h_t:
        f_t = F.adaptive_avg_pool2d(f_t, f_s.shape[2:])
    return f_s, f_t


class LinearWarmup:
    """A distillation term's weight ramping linearly from 0 to 1 over the first `fraction` of
    training, per step (DKD's and ReviewKD's warm-up: `min(epoch / 20, 1)` over 240 epochs in the
    papers' code, 1/12 of training). The papers step it per epoch; the protocols here train for
    8-15 epochs, where 1/12 is less than one epoch, so it steps per batch.

    Stateless across a resume: `on_epoch_start` puts the step count where the epoch begins, and
    each `__call__` (one per training step) advances it."""

    def __init__(self, fraction: float, n_train: int, batch_size: int):
        self.fraction = fraction
        self.steps_per_epoch = -(-n_train // batch_size)
        self.step = 0

    def on_epoch_start(self, epoch: int) -> None:
        self.step = epoch * self.steps_per_epoch

    def __call__(self, epochs: int) -> float:
        """The weight for the current step (fraction of training done after it / `fraction`)."""
        self.step += 1
        if self.fraction <= 0:
            return 1.0
        return min(self.step / (self.steps_per_epoch * epochs) / self.fraction, 1.0)
