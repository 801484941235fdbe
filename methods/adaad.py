"""Adaptive Adversarial Distillation (AdaAD; Huang, Chen, Wang, Lu, Cheng & Wang, "Boosting
Accuracy and Robustness of Student Models via Adaptive Adversarial Distillation", CVPR 2023).

The teacher takes part in the inner maximisation: x' is the point of the eps-ball where student
and teacher disagree most,

    x' = argmax_{||x' - x||_inf <= eps} KL(T(x') || S(x'))       (PGD through both networks)

and the student is trained to agree with the teacher there (and, with weight 1 - alpha, on the
clean input):

    loss = alpha * KL(T(x') || S(x')) + (1 - alpha) * KL(T(x) || S(x))

No labels are used. Where the teacher is robust, x' tracks the student's weaknesses relative to
the teacher rather than the label boundary ("adaptive" adversarial examples).

As the released code does it (github.com/boyellow/AdaAD, AT_helper.py `adaad_inner_loss` and
main.py, method "AdaAD"):

- the attack runs with the student and the teacher in eval mode, starts at x + 0.001 * N(0, 1)
  (unclipped) and maximises the KL summed over the batch; gradients reach x' through both the
  student and the teacher (`self.query_teacher` inside `perturb()`);
- the outer KLs use `nn.KLDivLoss()`'s default reduction, the mean over batch x classes (the
  code's CIFAR-10 branch; its CIFAR-100 branch averages over the batch only), against the
  teacher's outputs without gradient; the student's clean forward runs every step, also at
  alpha = 1;
- defaults: alpha = 1 (`--AdaAD_alpha`), 10 steps. The paper's eps and step size (8/255 and
  2/255 on CIFAR-10, or the larger 16/255 and 4/255 search radius its README also shows) are
  replaced by the protocol's (0.1 and 0.01 on mnist5k).

Cost: every attack step runs the teacher forward and backward, so a step costs about 10 teacher
forward-backward passes more than RSLAD's (counted in the job's `teacher_query_images`). AdaAD
assumes a robust teacher: compare its rows under `mnist5k-robust`.
"""

import torch.nn.functional as F

from attacks.pgd import pgd_linf
from methods.api import HParams, Method, Step, register_method
from methods.losses import soft_kl


@register_method
class AdaAD(Method):
    name = "adaad"
    description = ("AdaAD (Huang et al. 2023): PGD maximising KL(teacher || student) at x', "
                   "student matches the teacher there")
    family = "adversarial"

    class Hparams(HParams):
        alpha: float = 1.0  # weight of the adversarial KL; the clean KL gets 1 - alpha
        steps: int = 10  # PGD steps of the inner maximisation

    def inner_objective(self, student, x_adv):
        """KL(T(x') || S(x')) summed over the batch and classes, differentiable in x' through
        both networks: what the attack maximises."""
        t_prob = F.softmax(self.query_teacher(x_adv).logits, 1)
        return F.kl_div(F.log_softmax(student(x_adv), 1), t_prob, reduction="sum")

    def perturb(self, batch, student, teacher):
        e = self.ctx.protocol.eval
        return pgd_linf(lambda xa: self.inner_objective(student, xa), batch.x, e.eps,
                        e.pgd_step_size, self.hp.steps, e.pgd_random_start, start="normal",
                        clamp_start=False)

    def loss(self, step: Step):
        x_adv = step.batch.x_adv
        t_adv = F.softmax(step.teacher_on(x_adv).logits, 1)  # x_adv is detached: no gradient
        adv = soft_kl(step.student(x_adv).logits, t_adv, reduction="mean")
        clean = soft_kl(step.student().logits, F.softmax(step.teacher.logits, 1), reduction="mean")
        return self.hp.alpha * adv + (1 - self.hp.alpha) * clean
