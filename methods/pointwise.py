"""Point-wise logit matching (Ba & Caruana, NeurIPS 2014, "Do Deep Nets Really Need to be
Deep?"): the student mimics the teacher by regressing its logits, on that loss alone.

The paper's objective (Section 2.2) over the T training cases, T a count and not a temperature:

    L = 1/(2T) * sum_t || z_S(x_t) - z_T(x_t) ||_2^2

i.e. half the squared L2 distance between logit vectors, summed over classes and averaged over
examples; a mini-batch estimates it with its batch mean. Labels are not used: the mimic learns
from the teacher's logits only. Each example's logits are regressed onto the teacher's
independently of the other examples (point-wise, as opposed to relational, pair-wise
distillation); the regression is on logits rather than probabilities so that what the softmax
squashes is kept.

    loss = beta * mean_i ||z_S(x_i) - z_T(x_i)||^2 + ce_weight * CE(z_S, y)

with the paper's beta = 1/2 and ce_weight = 0. `ce_weight` is not in the paper; it is kept so the
label term can be added back as a variant.
"""

import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import logit_l2


@register_method
class Pointwise(Method):
    name = "pointwise"
    description = "Ba & Caruana 2014: L2 regression of student logits onto teacher logits"
    family = "logit"

    class Hparams(HParams):
        beta: float = 0.5  # the paper's 1/(2T) over T examples: 1/2 on the per-example mean
        ce_weight: float = 0.0  # label cross-entropy; not in the paper

    def loss(self, step: Step):
        s = step.student().logits
        loss = self.hp.beta * logit_l2(s, step.teacher.logits)
        if self.hp.ce_weight:
            loss = loss + self.hp.ce_weight * F.cross_entropy(s, step.batch.y)
        return loss
