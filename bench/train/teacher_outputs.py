"""Where training gets the teacher's outputs.

- Deterministic inputs (no augmentation): `TeacherOutputs`, an index cache computed once per run
  and looked up by the batch's positions in the training set; a KD step then costs about as much
  as a plain one.
- Random augmentation: a cache cannot apply, since every epoch shows every example differently.
  `OnlineTeacher` runs the teacher on the augmented batch: eval mode (batch-norm statistics
  frozen), no gradient, bf16 autocast on CUDA. It is still the largest part of a KD step when the
  teacher is much bigger than the student (cifar10: 16x the FLOPs); bench/perf.py measures it.
- Any other input (adversarial examples, for IAD or AdaAD): `TeacherQuery`, the teacher in eval
  mode with its parameters frozen, called by a method through `Method.query_teacher` or
  `Step.teacher_on`. Gradients flow to the input when it requires them (an attack through the
  teacher), never to the teacher's weights. It counts the images it runs on: the job's cost.
"""

from __future__ import annotations

from typing import Protocol as Interface

import torch
from torch import nn

from bench.data.split import Batch
from bench.models.taps import Outputs, tapped
from bench.protocols import Protocol
from bench.train import device as dev


class TeacherSource(Interface):
    teacher: nn.Module

    def ensure(self, taps: tuple[str, ...]) -> None:
        """Prepare outputs for these feature taps (before training starts)."""

    def outputs(self, batch: Batch, taps: tuple[str, ...]) -> Outputs:
        """The teacher's logits and tapped features on `batch.x`, float32, no gradient."""


class TeacherOutputs:
    """The teacher's logits and tapped features on every training input, computed once.

    Valid because the protocol's training inputs are deterministic (no random augmentation); the
    methods' own input transforms only ever change what the student sees. Protocols that augment
    use `OnlineTeacher` instead.
    """

    def __init__(self, teacher: nn.Module, x: torch.Tensor, batch_size: int = 1000):
        self.teacher, self.x, self.batch_size = teacher, x, batch_size
        self.logits: torch.Tensor | None = None
        self.features: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def ensure(self, taps: tuple[str, ...]) -> None:
        missing = [t for t in taps if t not in self.features]
        if self.logits is not None and not missing:
            return
        with tapped(self.teacher, missing, mode="eval") as t:
            parts = [t(self.x[i:i + self.batch_size])
                     for i in range(0, self.x.shape[0], self.batch_size)]
        self.logits = torch.cat([p.logits for p in parts])
        for name in missing:
            self.features[name] = torch.cat([p.features[name] for p in parts])

    def lookup(self, index: torch.Tensor, taps: tuple[str, ...]) -> Outputs:
        return Outputs(self.logits[index], {t: self.features[t][index] for t in taps})

    def outputs(self, batch: Batch, taps: tuple[str, ...]) -> Outputs:
        if batch.augmented:
            raise ValueError("the teacher-output cache holds outputs on the stored examples; an "
                             "augmented batch needs OnlineTeacher")
        return self.lookup(batch.index, taps)


class OnlineTeacher:
    """The teacher's outputs computed on every batch, on the inputs actually trained on."""

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher

    def ensure(self, taps: tuple[str, ...]) -> None:
        pass  # nothing to precompute

    @torch.no_grad()
    def outputs(self, batch: Batch, taps: tuple[str, ...]) -> Outputs:
        # Hooks live for one call: the teacher stays clean.
        with tapped(self.teacher, taps, mode="eval") as t, dev.autocast(batch.x.device):
            out = t(batch.x)
        return Outputs(out.logits.float(), {k: f.float() for k, f in out.features.items()})


class TeacherQuery:
    """The teacher on any input a method asks about: eval mode, frozen weights, counted."""

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher
        self.images = 0  # inputs the teacher ran on through this query: part of the job's cost

    def __call__(self, x: torch.Tensor, taps: tuple[str, ...] = ()) -> Outputs:
        self.images += x.shape[0]
        frozen = [p.requires_grad for p in self.teacher.parameters()]
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        try:
            with tapped(self.teacher, taps, mode="eval") as t, \
                    torch.set_grad_enabled(x.requires_grad and torch.is_grad_enabled()):
                out = t(x)
        finally:
            for p, r in zip(self.teacher.parameters(), frozen):
                p.requires_grad_(r)
        return Outputs(out.logits.float(), {k: f.float() for k, f in out.features.items()})


def teacher_source(protocol: Protocol, teacher: nn.Module, x_train: torch.Tensor) -> TeacherSource:
    """The index cache when the protocol's training inputs are deterministic, else online."""
    if protocol.augmentation == "none":
        return TeacherOutputs(teacher, x_train)
    return OnlineTeacher(teacher)
