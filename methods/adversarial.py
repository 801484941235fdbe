"""Robust soft-label adversarial distillation (RSLAD; Zi, Zhao, Ma & Jiang, ICCV 2021).

Inner maximisation: x' maximises KL(T(x) || S(x')) by PGD against the student in eval mode (the
protocol's eps and step size, `steps` steps). Outer minimisation:

    loss = 5/6 * KL(T(x) || S(x')) + 1/6 * KL(T(x) || S(x))

Every term uses the teacher's soft labels on the clean input (no gradient); labels y are not
used at all, which is RSLAD's point. The KL weights are the paper's.

As the released code does it (github.com/zibojia/RSLAD, resnet18_rslad_cifar10.py and
rslad_loss.py):

- each KL is averaged over batch x classes (`torch.mean` of the element-wise KL): 1/10 of the
  per-example KL on 10 classes (`reduction="mean"` in methods/losses.py). The code's element-wise
  KL adds 1e-5 inside the teacher's log; that term depends on the teacher only, so it shifts the
  loss value by a constant and leaves every gradient unchanged: we leave it out;
- the attack starts at x + 0.001 * N(0, 1), not clipped before the first step (TRADES's start).
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
        # The code's attack maximises the summed KL; a sign step does not see the scale.
        return pgd_linf(lambda xa: soft_kl(student(xa), t_prob, "mean"), batch.x, e.eps,
                        e.pgd_step_size, self.hp.steps, e.pgd_random_start, start="normal",
                        clamp_start=False)

    def loss(self, step: Step):
        t_prob = F.softmax(step.teacher.logits, 1)
        adv = soft_kl(step.student(step.batch.x_adv).logits, t_prob, reduction="mean")
        clean = soft_kl(step.student().logits, t_prob, reduction="mean")
        return self.hp.adv_weight * adv + (1 - self.hp.adv_weight) * clean
