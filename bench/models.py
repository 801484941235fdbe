"""The model zoo: teacher and student architectures, by name.

Every model takes inputs in [0, 1] and normalises inside (RobustBench's convention), so attacks
and corruptions work in pixel space with no normalisation hooks. Every architecture declares its
`stages`: the names of the modules whose outputs feature-distillation methods may tap, from low to
high, with the same spatial size at the same position in teacher and student.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

from bench.errors import UsageError
from bench.normalize import Normalize
from bench.protocols import Protocol
from bench.zoo_resnet import resnet9


def conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU, 2x2 max-pool: halves the spatial size."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ConvNet(nn.Module):
    """Plain CNN of three conv stages and a global-average-pooled linear head."""

    stages: tuple[str, ...] = ("stage1", "stage2", "stage3")

    def __init__(self, widths: Sequence[int], in_channels: int, num_classes: int,
                 mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        w1, w2, w3 = widths
        self.normalize = Normalize(mean, std)
        self.stage1 = conv_stage(in_channels, w1)
        self.stage2 = conv_stage(w1, w2)
        self.stage3 = conv_stage(w2, w3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w3, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.head(x)


def _convnet(widths: Sequence[int]) -> Callable[[Protocol], nn.Module]:
    def build(p: Protocol) -> nn.Module:
        return ConvNet(widths, p.input_shape[0], p.num_classes, p.mean, p.std)
    return build


# name -> constructor(protocol). The model zoo is data, as in RobustBench.
ARCHS: dict[str, Callable[[Protocol], nn.Module]] = {
    "cnn-teacher": _convnet((32, 64, 128)),
    "cnn-student": _convnet((8, 16, 32)),
    # cifar10 (bench/zoo_resnet.py): the DAWNBench ResNet-9 and a quarter-width copy of it.
    "resnet9": resnet9((64, 128, 256, 512)),
    "resnet9-quarter": resnet9((16, 32, 64, 128)),
}


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


def arch_source_hash(arch: str) -> str:
    """Hash of the code that builds `arch`: a cached teacher is stale when it changes."""
    modules = {inspect.getmodule(ARCHS[arch]), inspect.getmodule(Normalize)}
    # Whole modules, conservatively: the builder's and the normalisation every model starts with.
    src = "".join(inspect.getsource(m) for m in sorted(modules, key=lambda m: m.__name__))
    return hashlib.sha256(src.encode()).hexdigest()[:16]
