"""Reference row: the student trained from labels alone, on the same budget as every KD method.

Also the recipe the protocol's teacher is trained with.
"""

import torch.nn.functional as F

from methods.api import Method, Step, register_method


@register_method
class Baseline(Method):
    name = "baseline"
    description = "Student trained on labels only (cross-entropy), same budget: the no-KD reference"
    family = "reference"
    uses_teacher = False

    def loss(self, step: Step):
        return F.cross_entropy(step.student().logits, step.batch.y)
