"""Reference row: TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, ICML 2019), robust training
without a teacher, beside `pgd_at`.

    loss = CE(S(x), y) + beta * KL(S(x) || S(x')),   x' = argmax_{||x' - x|| <= eps} KL(S(x) || S(x'))

The first term fits the labels, the second (the "boundary" term) makes the prediction smooth
within the eps-ball; beta = 1/lambda trades one for the other. As the released code does it
(github.com/yaodongyu/TRADES, trades.py `trades_loss`):

- the inner maximisation runs with the student in eval mode, starts at x + 0.001 * N(0, 1) (the
  KL has zero gradient at x' = x), not clipped before the first step, and maximises the summed
  KL against the student's clean prediction (computed in eval mode, no gradient);
- the outer KL is summed over classes and averaged over the batch (`criterion_kl` with
  `size_average=False`, divided by the batch size), with gradients through both S(x) and S(x')
  (the clean forward is not detached), the student in train mode.

Defaults: beta = 6, the paper's setting in its MNIST and CIFAR-10 comparisons (Table 5; the
released MNIST example script uses 1.0); 10 attack steps as the CIFAR-10 script, at the
protocol's eps and step size (0.1 and 0.01 on mnist5k, where the MNIST script uses 0.3, 0.01 and
40 steps), the same attack budget as `pgd_at`.
"""

import torch
import torch.nn.functional as F

from attacks.pgd import pgd_linf
from methods.api import HParams, Method, Step, register_method
from methods.losses import kl_per_example


@register_method
class TRADES(Method):
    name = "trades"
    description = "Zhang et al. 2019: CE + beta * KL(S(x) || S(x')) on the worst x', no teacher"
    family = "reference"
    uses_teacher = False

    class Hparams(HParams):
        beta: float = 6.0  # 1/lambda: weight of the robustness (boundary) term
        steps: int = 10  # PGD steps of the inner maximisation

    def perturb(self, batch, student, teacher):
        e = self.ctx.protocol.eval
        with torch.no_grad():
            clean = student(batch.x)  # eval mode: the fixed target of the attack
        return pgd_linf(lambda xa: kl_per_example(student(xa), clean).sum(), batch.x, e.eps,
                        e.pgd_step_size, self.hp.steps, e.pgd_random_start, start="normal",
                        clamp_start=False)

    def loss(self, step: Step):
        clean = step.student().logits
        robust = kl_per_example(step.student(step.batch.x_adv).logits, clean).mean()
        return F.cross_entropy(clean, step.batch.y) + self.hp.beta * robust
