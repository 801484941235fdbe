"""Adversarially Robust Distillation (ARD; Goldblum, Fowl, Feizi & Goldstein, AAAI 2020).

Inner maximisation: x' = PGD on the student's cross-entropy (the protocol's eps and step size).
Outer minimisation, with the teacher on the clean input:

    loss = alpha * T^2 * KL(T(x)/T || S(x')/T) + (1 - alpha) * CE(S(x), y)

Defaults are the paper's released settings (T = 30, alpha = 1).
"""

import torch.nn.functional as F

from attacks.pgd import pgd_ce
from methods.api import HParams, Method, Step, register_method
from methods.losses import kd_loss


@register_method
class ARD(Method):
    name = "ard"
    description = "ARD (Goldblum et al. 2020): student on PGD examples matches teacher's clean soft labels"
    family = "adversarial"

    class Hparams(HParams):
        T: float = 30.0
        alpha: float = 1.0
        steps: int = 10  # PGD steps of the inner maximisation

    def perturb(self, batch, student, teacher):
        e = self.ctx.protocol.eval
        return pgd_ce(student, batch.x, batch.y, e.eps, e.pgd_step_size, self.hp.steps,
                      e.pgd_random_start)

    def loss(self, step: Step):
        adv = kd_loss(step.student(step.batch.x_adv).logits, step.teacher.logits, self.hp.T)
        loss = self.hp.alpha * adv
        if self.hp.alpha < 1:  # the clean CE term costs a second forward pass; skip it at alpha=1
            loss = loss + (1 - self.hp.alpha) * F.cross_entropy(step.student().logits, step.batch.y)
        return loss
