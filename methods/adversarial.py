"""Robust soft-label adversarial distillation (RSLAD; Zi, Zhao, Ma & Jiang, ICCV 2021).

Inner maximisation: x' maximises KL(T(x) || S(x')) by PGD against the student (the protocol's
eps and step size). Outer minimisation:

    loss = 5/6 * KL(T(x) || S(x')) + 1/6 * KL(T(x) || S(x))

Every term uses the teacher's soft labels on the clean input (no gradient); labels y are not
used at all, which is RSLAD's point. The KL weights are the paper's.
"""

import torch.nn.functional as F

from attacks.pgd import pgd_linf
from methods.api import HParams, Method, Step, register_method
from methods.losses import soft_kl


@register_method
class RSLAD(Method):
    name = "adversarial"
    description = "RSLAD (Zi et al. 2021): PGD on KL to the teacher's soft labels, 5/6 adv + 1/6 clean"
    family = "adversarial"

    class Hparams(HParams):
        steps: int = 10  # PGD steps of the inner maximisation
        adv_weight: float = 5 / 6  # the clean term gets 1 - adv_weight

    def perturb(self, batch, student, teacher):
        e = self.ctx.protocol.eval
        t_prob = F.softmax(teacher.logits, 1)
        return pgd_linf(lambda xa: soft_kl(student(xa), t_prob), batch.x, e.eps,
                        e.pgd_step_size, self.hp.steps, e.pgd_random_start)

    def loss(self, step: Step):
        t_prob = F.softmax(step.teacher.logits, 1)
        adv = soft_kl(step.student(step.batch.x_adv).logits, t_prob)
        clean = soft_kl(step.student().logits, t_prob)
        return self.hp.adv_weight * adv + (1 - self.hp.adv_weight) * clean
