"""Decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge
Distillation", CVPR 2022, arXiv:2203.08679).

The classical KD loss splits into a target-class term and a non-target-class term (the paper's
Eq. 7):

    KD = TCKD + (1 - p_t^T) * NCKD

TCKD is the KL divergence between the binary distributions (p_target, 1 - p_target) of teacher
and student; NCKD the KL divergence between their distributions over the non-target classes
alone, renormalised. In KD, NCKD is suppressed by the teacher's confidence (1 - p_t^T); DKD
weights the two freely:

    loss = ce_weight * CE(z_s, y) + w(t) * T^2 * (alpha * TCKD + beta * NCKD)

Defaults are the paper's CIFAR-100 ones (the official mdistiller `CFG.DKD`): alpha = 1, beta = 8,
T = 4, CE weight 1, and its warm-up w(t), a linear ramp of the DKD term over the first 20 of 240
epochs. The code follows mdistiller's `dkd_loss` (official), including how the non-target
distribution is formed: the target logit is lowered by 1000 before the softmax, which drives its
probability to exactly 0 in float32.

Protocol-forced change: the warm-up is the same fraction of training (1/12) stepped per batch
rather than per epoch, since the mnist5k protocol trains for 8 epochs (methods.losses.LinearWarmup).
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import LinearWarmup


def dkd_parts(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
              T: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example TCKD and NCKD (without T^2), as in mdistiller's `dkd_loss`."""
    gt = F.one_hot(target, student_logits.shape[1]).bool()
    p_s = F.softmax(student_logits / T, dim=1)
    p_t = F.softmax(teacher_logits / T, dim=1)
    # Binary (target, rest) distributions.
    b_s = torch.stack([(p_s * gt).sum(1), (p_s * ~gt).sum(1)], dim=1)
    b_t = torch.stack([(p_t * gt).sum(1), (p_t * ~gt).sum(1)], dim=1)
    tckd = F.kl_div(torch.log(b_s), b_t, reduction="none").sum(1)
    # Non-target distributions: the target logit pushed to -1000 before the softmax.
    log_q_s = F.log_softmax(student_logits / T - 1000.0 * gt, dim=1)
    q_t = F.softmax(teacher_logits / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="none").sum(1)
    return tckd, nckd


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             alpha: float, beta: float, T: float) -> torch.Tensor:
    """T^2 * (alpha * TCKD + beta * NCKD), averaged over the batch."""
    tckd, nckd = dkd_parts(student_logits, teacher_logits, target, T)
    return (alpha * tckd.mean() + beta * nckd.mean()) * T * T


@register_method
class DKD(Method):
    name = "dkd"
    description = "Zhao et al. 2022: KD decoupled into target and non-target terms, weighted apart"
    family = "logit"

    class Hparams(HParams):
        alpha: float = 1.0  # weight of TCKD (target vs. the rest)
        beta: float = 8.0  # weight of NCKD (among the non-target classes)
        T: float = 4.0  # softmax temperature
        ce_weight: float = 1.0  # weight of the label cross-entropy
        warmup: float = 20 / 240  # fraction of training over which the DKD term ramps up

    def __init__(self, hparams, ctx):
        super().__init__(hparams, ctx)
        self.warmup = LinearWarmup(self.hp.warmup, ctx.protocol.n_train,
                                   ctx.protocol.student_recipe.batch_size)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.warmup.on_epoch_start(epoch)

    def loss(self, step: Step):
        s, hp = step.student().logits, self.hp
        y = step.batch.y
        return (hp.ce_weight * F.cross_entropy(s, y)
                + self.warmup(step.epochs) * dkd_loss(s, step.teacher.logits, y,
                                                      hp.alpha, hp.beta, hp.T))
