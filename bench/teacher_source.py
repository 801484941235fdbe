"""Where the training loop gets the teacher's outputs on the batch it trains on.

- Deterministic inputs (no augmentation): the index cache `bench.engine.TeacherOutputs`, computed
  once per run, looked up by the batch's positions in the training set; a KD step then costs about
  as much as a plain one.
- Random augmentation: a cache cannot apply, since every epoch shows every example differently.
  `OnlineTeacher` runs the teacher on the augmented batch: eval mode (batch-norm statistics
  frozen), no gradient, bf16 autocast on CUDA. It is still the largest part of a KD step when the
  teacher is much bigger than the student (cifar10: 16x the FLOPs); bench/perf.py measures it.
"""

from __future__ import annotations

from typing import Protocol as Interface

import torch
from torch import nn

from bench.data import Batch
from bench.engine import TeacherOutputs
from bench.features import Outputs, TappedModel
from bench import gpu_speed
from bench.protocols import Protocol


class TeacherSource(Interface):
    def ensure(self, taps: tuple[str, ...]) -> None:
        """Prepare outputs for these feature taps (before training starts)."""

    def outputs(self, batch: Batch, taps: tuple[str, ...]) -> Outputs:
        """The teacher's logits and tapped features on `batch.x`, float32, no gradient."""


class OnlineTeacher:
    """The teacher's outputs computed on every batch, on the inputs actually trained on."""

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher

    def ensure(self, taps: tuple[str, ...]) -> None:
        pass  # nothing to precompute

    @torch.no_grad()
    def outputs(self, batch: Batch, taps: tuple[str, ...]) -> Outputs:
        tapped = TappedModel(self.teacher, taps)  # hooks live for one call: the teacher stays clean
        was_training = self.teacher.training
        self.teacher.eval()
        try:
            with gpu_speed.autocast(batch.x.device):
                out = tapped(batch.x)
        finally:
            tapped.remove()
            self.teacher.train(was_training)
        return Outputs(out.logits.float(), {t: f.float() for t, f in out.features.items()})


def teacher_source(protocol: Protocol, teacher: nn.Module, x_train: torch.Tensor) -> TeacherSource:
    """The index cache when the protocol's training inputs are deterministic, else online."""
    if protocol.augmentation == "none":
        return TeacherOutputs(teacher, x_train)
    return OnlineTeacher(teacher)
