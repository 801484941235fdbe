"""Point-wise logit matching (Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?").

loss = beta * mean_i ||z_S(x_i) - z_T(x_i)||^2 + CE(z_S, y)

Each example's logits are regressed onto the teacher's, independently of the other examples:
point-wise, as opposed to relational (pair-wise) distillation. Ba & Caruana regress on logits
rather than probabilities so that information the softmax squashes is kept.
"""

import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import logit_l2


@register_method
class Pointwise(Method):
    name = "pointwise"
    description = "Ba & Caruana 2014: L2 regression of student logits onto teacher logits, plus CE"
    family = "logit"

    class Hparams(HParams):
        beta: float = 0.05  # weight of the logit regression; the squared distance sums 10 classes

    def loss(self, step: Step):
        s = step.student().logits
        return self.hp.beta * logit_l2(s, step.teacher.logits) + F.cross_entropy(s, step.batch.y)
