"""Introspective Adversarial Distillation (IAD; Zhu, Yao, Han, Zhang, Liu, Niu, Zhou, Xu & Yang,
"Reliable Adversarial Distillation with Unreliable Teachers", ICLR 2022), on top of ARD (IAD-I).

A robust teacher is not reliable on every adversarial example the student queries. IAD trusts
the teacher's soft label on example i by how well the teacher itself does on the student's
adversarial example x'_i:

    a_i = P_T(x'_i)[y_i] ** beta          (no gradient; beta sharpens or flattens the trust)

and lets the student fall back on its own clean prediction where the teacher is not trusted
("introspection"):

    loss = alpha * mean_i [ w_i * T^2 * KL(T(x_i)/T || S(x'_i)/T)
                            + (1 - a_i) * KL(S(x_i) || S(x'_i)) ] + (1 - alpha) * CE(S(x), y)

with x' = PGD on the student's cross-entropy (ARD's attack) and the teacher on the clean input.
The paper's three cases are the limits of a_i: a teacher good at x'_i (a_i -> 1) is fully
trusted and the loss is ARD's; a teacher good at x_i but not x'_i is partially trusted and the
student adds its own soft label; otherwise (a_i -> 0) the student relies on its own soft label
alone. That last case needs the teacher term weighted, w_i = a_i, as the released IAD-II script
does (IAD-II.py); the released IAD-I script (IAD-I.py) leaves it unweighted (w_i = 1), which
`weight_teacher=False` reproduces. Before the epoch `begin_frac * epochs` (rounded) the loss is
ARD's (the code's `--begin`: the student's own predictions are worthless early in training).

As the released IAD-I script does it (github.com/ZFancy/IAD):

- every KL is summed over classes and averaged over the batch (`(1/B) * sum(KLDivLoss(reduce=
  False))`; unlike ARD's own code, which averages over classes too), the introspection KL has
  gradients through both S(x) and S(x') (the clean forward is not detached);
- the attack is ARD's: PGD-10 on the summed cross-entropy with the student in train mode, from an
  unclipped uniform start; the student's clean forward runs every step. Redundant forward passes
  of the script whose outputs are unused (`basicop`, a second clean forward) are not repeated;
- defaults are the script's: T = 1, alpha = 1, beta = 0.1, begin at epoch 60 of 200 (0.3).

The teacher is queried on x' once per step (`step.teacher_on`): one teacher forward pass per
batch, counted in the job's cost. The eps and step size are the protocol's (0.1 and 0.01 on
mnist5k) instead of the script's CIFAR 8/255 and 2/255. IAD assumes a robust teacher: compare
its rows under `mnist5k-robust`, whose teacher is adversarially trained.
"""

import torch
import torch.nn.functional as F

from attacks.pgd import pgd_ce
from methods.api import HParams, Method, Step, register_method
from methods.losses import kl_per_example


def begin_epoch(begin_frac: float, epochs: int) -> int:
    """The first epoch (0-based) with introspection: begin_frac * epochs, rounded half up."""
    return int(begin_frac * epochs + 0.5)


def trust(teacher_adv_logits: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """a_i = P_T(x'_i)[y_i] ** beta, without gradient."""
    with torch.no_grad():
        p = F.softmax(teacher_adv_logits.float(), 1).gather(1, y[:, None]).squeeze(1)
        return p.pow(beta)


@register_method
class IAD(Method):
    name = "iad"
    description = ("IAD (Zhu et al. 2022): ARD with the teacher trusted per example by its "
                   "accuracy on x', plus student introspection")
    family = "adversarial"
    perturb_mode = "train"  # ARD's attack, as the released script: student in train mode

    class Hparams(HParams):
        T: float = 1.0  # distillation temperature (the IAD-I script's --temp)
        alpha: float = 1.0  # ARD's weight of the distillation terms against label CE
        beta: float = 0.1  # trust sharpness: a_i = P_T(x'_i)[y_i] ** beta
        begin_frac: float = 0.3  # introspection from this fraction of the epochs (60 of 200)
        weight_teacher: bool = True  # w_i = a_i (paper's cases, IAD-II); False: IAD-I script
        steps: int = 10  # PGD steps of the inner maximisation

    def perturb(self, batch, student, teacher):
        e = self.ctx.protocol.eval
        return pgd_ce(student, batch.x, batch.y, e.eps, e.pgd_step_size, self.hp.steps,
                      e.pgd_random_start, start="uniform", clamp_start=False)

    def loss(self, step: Step):
        hp, y = self.hp, step.batch.y
        s_adv = step.student(step.batch.x_adv).logits
        s_clean = step.student().logits  # every step, as the script (batch-norm statistics)
        kd = kl_per_example(s_adv, step.teacher.logits, hp.T) * hp.T * hp.T
        ce = F.cross_entropy(s_clean, y)
        if step.epoch < begin_epoch(hp.begin_frac, step.epochs):
            return hp.alpha * kd.mean() + (1 - hp.alpha) * ce  # ARD
        a = trust(step.teacher_on(step.batch.x_adv).logits, y, hp.beta)
        teacher_term = (a * kd if hp.weight_teacher else kd).mean()
        introspection = ((1 - a) * kl_per_example(s_adv, s_clean)).mean()
        return hp.alpha * (teacher_term + introspection) + (1 - hp.alpha) * ce
