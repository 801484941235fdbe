"""Vanilla knowledge distillation (Hinton, Vinyals & Dean 2015, arXiv:1503.02531).

loss = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, y)

The T^2 factor keeps the soft-target gradients on the same scale as the hard-target ones when T
changes (section 2 of the paper). KL uses batchmean reduction: the true KL divergence per example.
"""

import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import kd_loss


@register_method
class Vanilla(Method):
    name = "vanilla"
    description = "Hinton et al. 2015: temperature-softened KL to the teacher plus label CE"
    family = "logit"

    class Hparams(HParams):
        T: float = 4.0  # softmax temperature
        alpha: float = 0.9  # weight of the distillation term

    def loss(self, step: Step):
        s = step.student().logits
        return (self.hp.alpha * kd_loss(s, step.teacher.logits, self.hp.T)
                + (1 - self.hp.alpha) * F.cross_entropy(s, step.batch.y))
