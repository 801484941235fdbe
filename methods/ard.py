"""Adversarially Robust Distillation (ARD; Goldblum, Fowl, Feizi & Goldstein, AAAI 2020).

Inner maximisation: x' = PGD on the student's cross-entropy (the protocol's eps and step size,
`steps` steps). Outer minimisation, with the teacher on the clean input:

    loss = alpha * T^2 * KL(T(x)/T || S(x')/T) + (1 - alpha) * CE(S(x), y)

As the released code does it (github.com/goldblum/AdversariallyRobustDistillation, main.py):

- the KL is `nn.KLDivLoss()` with its default reduction, the mean over batch x classes: 1/10 of
  the per-example KL on 10 classes (`reduction="mean"` in methods/losses.py);
- the attack runs with the student in train mode (`net.train()` around `AttackPGD`: batch-norm
  uses batch statistics and its running statistics move with every attack step), so
  `perturb_mode = "train"`; its uniform random start is not clipped to [0, 1] before the first
  step;
- the student's clean forward pass runs every step, also at alpha = 1 where the CE term has
  weight 0 (its batch-norm statistics update is part of the training);
- defaults are the released settings (T = 30, alpha = 1, 10 PGD steps).

The eps and step size are the protocol's (0.1 and 0.01 on mnist5k) instead of the code's CIFAR
8/255 and 2/255.
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
    perturb_mode = "train"  # the released code attacks the student in train mode

    class Hparams(HParams):
        T: float = 30.0
        alpha: float = 1.0
        steps: int = 10  # PGD steps of the inner maximisation

    def perturb(self, batch, student, teacher):
        e = self.ctx.protocol.eval
        return pgd_ce(student, batch.x, batch.y, e.eps, e.pgd_step_size, self.hp.steps,
                      e.pgd_random_start, start="uniform", clamp_start=False)

    def loss(self, step: Step):
        adv = kd_loss(step.student(step.batch.x_adv).logits, step.teacher.logits, self.hp.T,
                      reduction="mean")
        clean = step.student().logits  # every step, as the released code (batch-norm statistics)
        return self.hp.alpha * adv + (1 - self.hp.alpha) * F.cross_entropy(clean, step.batch.y)
