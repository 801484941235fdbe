"""The plain CNN of the MNIST protocols: three conv stages and a global-average-pooled head.
`cnn-teacher` (widths 32-64-128, 94k parameters) and `cnn-student` (8-16-32, 6.3k)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from bench.models.normalize import Normalize
from bench.models.registry import register_arch
from bench.protocols import Protocol


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


register_arch("cnn-teacher", _convnet((32, 64, 128)))
register_arch("cnn-student", _convnet((8, 16, 32)))
