"""The method contract: everything a distillation method may see and do.

A method is a subclass of `Method` registered with `@register_method`. Per training step the
engine gives it a `Step`; it returns a scalar loss. Optional hooks, each with a no-op default:

- `Hparams`          a pydantic model of the method's own hyper-parameters and their defaults;
                     recorded in every result. The protocol (data, archs, optimiser, epochs) is
                     not the method's to change.
- `feature_taps`     stage names (declared by both architectures, low to high) whose outputs the
                     loss reads as `step.student().features[name]` / `step.teacher.features[name]`.
- `extra_modules()`  trainable modules (connectors, regressors) optimised with the student and
                     thrown away afterwards: never part of the evaluated or measured student.
- `perturb()`        a per-batch input transform, e.g. adversarial examples crafted against the
                     student. Runs with the student in `perturb_mode` ("eval" by default,
                     "train" where a paper's code attacks in train mode); the result is
                     `step.batch.x_adv`.
- `on_epoch_start()` to change behaviour over training (e.g. stage-wise schedules).
- `state_dict()` / `load_state_dict()` for state kept across steps outside `extra_modules()` (an
                     EMA, a memory bank), so an interrupted run resumes exactly. Tensors and plain
                     data only.

`step.teacher` holds the teacher's outputs on the clean inputs `batch.x` (augmented, when the
protocol augments). Without augmentation they come from a cache computed once per run, so a KD
step costs little more than a plain one; under augmentation the teacher runs on every batch (eval
mode, no gradient, bf16 on CUDA: bench/train/teacher_outputs.py).

The teacher on any other input (adversarial examples, say): `self.query_teacher(x, taps)` in
`perturb()` or `loss()`, or `step.teacher_on(x, taps)`. The teacher runs in eval mode with frozen
weights; gradients reach `x` when it requires them (an attack through the teacher), never the
teacher. The images it runs on are counted in the job's training stats. A method never holds the
teacher module itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from bench.data.split import Batch
from bench.models.taps import Outputs, TappedModel
from bench.protocols import Protocol

# The teacher on any input: (x, taps) -> Outputs (bench.train.teacher_outputs.TeacherQuery).
TeacherQuery = Callable[..., Outputs]

FAMILIES = ("reference", "logit", "feature", "adversarial")


class HParams(BaseModel):
    """Base of a method's hyper-parameters: typed, defaulted, frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class MethodContext:
    """What a method knows when it is built, before training starts."""

    protocol: Protocol
    stages: tuple[str, ...]  # stage names both architectures declare, low to high
    student_shapes: dict[str, tuple[int, ...]]  # per tapped stage: (C, H, W) of one example
    teacher_shapes: dict[str, tuple[int, ...]]

    @property
    def num_classes(self) -> int:
        return self.protocol.num_classes


class Step:
    """One training step as a method sees it."""

    def __init__(self, batch: Batch, teacher: Outputs | None, student: TappedModel,
                 epoch: int, epochs: int, teacher_query: TeacherQuery | None = None):
        self.batch = batch
        self.teacher = teacher  # teacher outputs on batch.x (clean), no gradient; None if unused
        self.epoch, self.epochs = epoch, epochs
        self._student = student
        self._query = teacher_query
        self._clean: Outputs | None = None

    def teacher_on(self, x: torch.Tensor, taps: tuple[str, ...] = ()) -> Outputs:
        """The teacher's outputs on `x` (eval mode, frozen weights; counted in the job's cost)."""
        if self._query is None:
            raise RuntimeError("step.teacher_on() needs a method with uses_teacher = True")
        return self._query(x, taps)

    def student(self, x: torch.Tensor | None = None) -> Outputs:
        """The student's outputs (logits and tapped features) on `x`, default the clean batch.

        The clean forward pass is computed once per step however often it is asked for.
        """
        if x is None or x is self.batch.x:
            if self._clean is None:
                self._clean = self._student(self.batch.x)
            return self._clean
        return self._student(x)


class Method:
    """Base class of a distillation method. See the module docstring for the contract."""

    name: ClassVar[str]
    description: ClassVar[str]  # one line for `kdbench methods`
    family: ClassVar[str]  # one of FAMILIES
    uses_teacher: ClassVar[bool] = True
    feature_taps: ClassVar[tuple[str, ...]] = ()
    Hparams: ClassVar[type[HParams]] = HParams
    perturb_mode: ClassVar[Literal["eval", "train"]] = "eval"  # the student's mode in perturb()

    def __init__(self, hparams: HParams, ctx: MethodContext):
        self.hp = hparams
        self.ctx = ctx
        self._teacher_query: TeacherQuery | None = None  # set by the engine during training

    def query_teacher(self, x: torch.Tensor, taps: tuple[str, ...] = ()) -> Outputs:
        """The teacher's outputs on `x`, from `perturb()` or `loss()` (see the module docstring)."""
        if self._teacher_query is None:
            raise RuntimeError(f"{type(self).__name__}.query_teacher() is only available during "
                               "training, for a method with uses_teacher = True")
        return self._teacher_query(x, taps)

    def extra_modules(self) -> nn.Module | None:
        return None

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        pass

    def perturb(self, batch: Batch, student: nn.Module, teacher: Outputs | None
                ) -> torch.Tensor | None:
        return None

    def loss(self, step: Step) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss(step)")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # -- bookkeeping, not for overriding --------------------------------------------------
    @classmethod
    def source_file(cls) -> Path:
        return Path(inspect.getsourcefile(cls)).resolve()

    @classmethod
    def has_perturb(cls) -> bool:
        return cls.perturb is not Method.perturb


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its class and where it came from."""

    cls: type[Method]
    origin: str  # "builtin" or the entry point's distribution

    @property
    def name(self) -> str:
        return self.cls.name

    def default_hparams(self) -> HParams:
        return self.cls.Hparams()


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: `@register_method class MyKD(Method): name = "my_kd" ...`."""
    for attr in ("name", "description", "family"):
        if not isinstance(getattr(cls, attr, None), str):
            raise TypeError(f"{cls.__qualname__} must set the class attribute {attr!r} (a str)")
    if cls.family not in FAMILIES:
        raise TypeError(f"{cls.__qualname__}.family must be one of {FAMILIES}, not {cls.family!r}")
    if not (isinstance(cls.Hparams, type) and issubclass(cls.Hparams, HParams)):
        raise TypeError(f"{cls.__qualname__}.Hparams must subclass methods.api.HParams")
    prior = _REGISTRY.get(cls.name)
    if prior is not None and prior.cls.source_file() != cls.source_file():
        raise ValueError(f"method name {cls.name!r} is registered twice: in "
                         f"{prior.cls.source_file()} and {cls.source_file()}")
    _REGISTRY[cls.name] = MethodSpec(cls, origin=getattr(cls, "__kdbench_origin__", "builtin"))
    return cls


def registry() -> dict[str, MethodSpec]:
    return _REGISTRY


__all__ = ["FAMILIES", "HParams", "Method", "MethodContext", "MethodSpec", "Outputs", "Step",
           "register_method", "registry"]
