"""Reference row: PGD adversarial training of the student, no teacher (Madry et al. 2018).

loss = CE(S(x'), y), x' = PGD on the student's CE within the protocol's eps. The robustness any
adversarial distillation method should be compared against.
"""

import torch.nn.functional as F

from attacks.pgd import pgd_ce
from methods.api import HParams, Method, Step, register_method


@register_method
class PGDAT(Method):
    name = "pgd_at"
    description = "Madry et al. 2018: PGD adversarial training of the student, no teacher"
    family = "reference"
    uses_teacher = False

    class Hparams(HParams):
        steps: int = 10  # PGD steps per batch, the same attack budget as ARD and RSLAD

    def perturb(self, batch, student, teacher):
        e = self.ctx.protocol.eval
        return pgd_ce(student, batch.x, batch.y, e.eps, e.pgd_step_size, self.hp.steps,
                      e.pgd_random_start)

    def loss(self, step: Step):
        return F.cross_entropy(step.student(step.batch.x_adv).logits, step.batch.y)
