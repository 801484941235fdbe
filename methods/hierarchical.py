"""Hierarchical (multi-stage) feature distillation: FitNets hints at several depths.

FitNets (Romero et al. 2015) trains a regressor r on the student's guided layer so that
0.5 * ||u_T - r(v_S)||^2 matches the teacher's hint layer. Here every stage both architectures
declare gets a hint, with a learned 1x1-conv regressor per stage (channels matched, spatial size
aligned by adaptive average pooling when it differs). Hints are switched on progressively from the
lowest stage to the highest over training (the stage-wise curriculum of FitNets and its
multi-stage successors), and the Hinton KD term on the logits runs throughout.

The regressors are extra modules: optimised with the student, discarded before evaluation.
"""

import torch.nn.functional as F
from torch import nn

from methods.api import HParams, Method, Step, register_method
from methods.losses import hint_loss, kd_loss


@register_method
class Hierarchical(Method):
    name = "hierarchical"
    description = "FitNets hints at every stage, switched on low to high over training, plus KD"
    family = "feature"
    feature_taps = ("stage1", "stage2", "stage3")

    class Hparams(HParams):
        beta: float = 1.0  # weight of each active stage's hint loss
        T: float = 4.0  # temperature of the logit KD term
        alpha: float = 0.9  # weight of the KD term against label CE

    def __init__(self, hparams, ctx):
        super().__init__(hparams, ctx)
        self.regressors = nn.ModuleDict({
            stage: nn.Conv2d(ctx.student_shapes[stage][0], ctx.teacher_shapes[stage][0], 1)
            for stage in self.feature_taps})
        self.active = self.feature_taps[:1]

    def extra_modules(self) -> nn.Module:
        return self.regressors

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        # Stage k (0-based) joins after k/K of training: low stages are matched first.
        k = len(self.feature_taps)
        self.active = self.feature_taps[:min(k, 1 + epoch * k // epochs)]

    def loss(self, step: Step):
        s, t = step.student(), step.teacher
        hints = sum(hint_loss(t.features[st], self.regressors[st](s.features[st]))
                    for st in self.active)
        logit = (self.hp.alpha * kd_loss(s.logits, t.logits, self.hp.T)
                 + (1 - self.hp.alpha) * F.cross_entropy(s.logits, step.batch.y))
        return logit + self.hp.beta * hints
