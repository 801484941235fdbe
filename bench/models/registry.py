"""The architecture registry: name -> constructor(protocol). The model zoo is data, as in
RobustBench; each architecture module joins it with `register_arch`.

Every model takes inputs in [0, 1] and normalises inside (RobustBench's convention), so attacks
and corruptions work in pixel space with no normalisation hooks. Every architecture declares its
`stages`: the names of the modules whose outputs feature-distillation methods may tap, from low to
high, with the same spatial size at the same position in teacher and student.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bench.errors import UsageError
from bench.models.normalize import Normalize
from bench.protocols import Protocol

Builder = Callable[[Protocol], nn.Module]
ARCHS: dict[str, Builder] = {}


def register_arch(name: str, build: Builder) -> Builder:
    if name in ARCHS:
        raise ValueError(f"architecture {name!r} is registered twice")
    ARCHS[name] = build
    return build


def build_model(arch: str, protocol: Protocol) -> nn.Module:
    """A fresh model in channels-last memory format: oneDNN's convolutions on CPU (and tensor
    cores on GPU) run it 1.5-3x faster than the default layout, with the same numbers up to
    float rounding. Inputs may stay in the default layout."""
    try:
        build = ARCHS[arch]
    except KeyError:
        raise UsageError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}") from None
    return build(protocol).to(memory_format=torch.channels_last)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def arch_source_files(arch: str) -> list[Path]:
    """The files whose code builds `arch`: its module first, then the normalisation every model
    starts with. A cached teacher or a record is stale when one of them changes."""
    builder = Path(inspect.getsourcefile(ARCHS[arch])).resolve()
    normalize = Path(inspect.getsourcefile(Normalize)).resolve()
    return [builder] if builder == normalize else [builder, normalize]
