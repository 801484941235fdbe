"""ResNet-9 (the DAWNBench CIFAR-10 network of Page 2018, "How to train your ResNet"), at full
width for the `cifar10` teacher and at a quarter of the width for the student.

Chosen because it is the fastest ResNet-style network to train to ~94 % on one GPU (Page: 94 % in
24 epochs; wide and shallow, so it keeps a GPU busy at batch 512), and because a narrower copy of
the same shape gives a student whose stages have the teacher's spatial sizes, which feature
distillation needs:

    prep    conv-bn-relu                     32x32   (not a stage)
    stage1  conv-bn-relu, max-pool, residual 16x16   2 conv-bn-relu inside the residual
    stage2  conv-bn-relu, max-pool            8x8
    stage3  conv-bn-relu, max-pool, residual  4x4
    head    global max-pool, linear (no bias), logits x 0.125

The 0.125 logit scale is Page's: it keeps the initial logits small, which the high learning rate
of the fast recipe needs. Widths: (64, 128, 256, 512) for the teacher, (16, 32, 64, 128) for the
student.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bench.models.normalize import Normalize
from bench.models.registry import register_arch
from bench.protocols import Protocol


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + f(x), with f two conv-bn-relu blocks at constant width."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(width, width), conv_bn(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    stages: tuple[str, ...] = ("stage1", "stage2", "stage3")

    def __init__(self, widths: Sequence[int], in_channels: int, num_classes: int,
                 image_size: int, mean: Sequence[float], std: Sequence[float],
                 logit_scale: float = 0.125):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.normalize = Normalize(mean, std)
        self.prep = conv_bn(in_channels, w0)
        self.stage1 = nn.Sequential(conv_bn(w0, w1), nn.MaxPool2d(2), Residual(w1))
        self.stage2 = nn.Sequential(conv_bn(w1, w2), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(conv_bn(w2, w3), nn.MaxPool2d(2), Residual(w3))
        # A fixed-size max-pool, not an adaptive one: adaptive max-pool has no deterministic
        # CUDA backward.
        self.head = nn.Sequential(nn.MaxPool2d(image_size // 8), nn.Flatten(),
                                  nn.Linear(w3, num_classes, bias=False))
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prep(self.normalize(x))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.head(x) * self.logit_scale


def resnet9(widths: Sequence[int]):
    def build(p: Protocol) -> nn.Module:
        c, h, w = p.input_shape
        if h != w or h % 8:
            raise ValueError(f"ResNet-9 needs square inputs, side divisible by 8, not {h}x{w}")
        return ResNet9(widths, c, p.num_classes, h, p.mean, p.std)
    return build


register_arch("resnet9", resnet9((64, 128, 256, 512)))
register_arch("resnet9-quarter", resnet9((16, 32, 64, 128)))
