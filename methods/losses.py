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
