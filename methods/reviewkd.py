"""Knowledge review (Chen, Liu, Zhao & Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021,
arXiv:2104.09044).

Each teacher stage is matched by a fusion of the student's *same and higher* stages (a low stage
of the teacher is "reviewed" with the student's later knowledge). The student's features, from the
highest (the pooled feature, 1x1) down to the lowest stage, go through attention-based fusion
(ABF) modules: a 1x1 conv brings stage i to a common width, is fused with the upsampled output of
stage i + 1 through two spatial attention maps (a 1x1 conv of both, sigmoid), and a 3x3 conv maps
the fusion to the teacher's width. The hierarchical context loss (HCL) compares each output with
the teacher's feature at full resolution and average-pooled to 4x4, 2x2 and 1x1 (where smaller
than the map), weights 1, 1/2, 1/4, 1/8, normalised:

    loss = CE(z_s, y) + w(t) * beta * sum_stages HCL(ABF_i(...), F_t^i)

The code follows the official CIFAR-100 code (dvlab-research/ReviewKD, CIFAR-100/model/
reviewkd.py: ABF, `hcl`; mdistiller's ReviewKD is the same): the common width is
min(512, C of the highest student feature), the ABF convs are Kaiming-uniform initialised
(a = 1) and batch-normalised. Defaults are its CIFAR-100 recipe for ResNet-32x4 -> ResNet-8x4
(and mdistiller's): beta = 5, CE weight 1, and a warm-up w(t) ramping the review loss linearly
over the first 20 of 240 epochs.

Cost: the fusion's 3x3 convolutions to the teacher's widths are the bulk of a step; on mnist5k a
ReviewKD step costs about 6x a plain one on one CPU core (measured over the full recipe).

Protocol-forced changes:
- The teacher's features are its stage outputs after the activation; the official code reads
  the teacher's pre-activation features, which the method contract does not tap.
- The pooled features (student and teacher) are the global average of the last stage
  (methods.losses.pooled): exactly the mnist5k ConvNet's head; ResNet-9's head max-pools.
- The warm-up is the same fraction of training (1/12) stepped per batch rather than per epoch:
  mnist5k trains for 8 epochs (methods.losses.LinearWarmup).
"""

import torch
import torch.nn.functional as F
from torch import nn

from methods.api import HParams, Method, Step, register_method
from methods.losses import LinearWarmup, pooled


class ABF(nn.Module):
    """Attention-based fusion of one student stage with the stage above it (official ABF)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, c_mid, 1, bias=False), nn.BatchNorm2d(c_mid))
        self.conv2 = nn.Sequential(nn.Conv2d(c_mid, c_out, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(c_out))
        self.att_conv = (nn.Sequential(nn.Conv2d(2 * c_mid, 2, 1), nn.Sigmoid())
                         if fuse else None)
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None,
                out_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(output at the teacher's width and `out_size`, the fused map passed down)."""
        x = self.conv1(x)
        if self.att_conv is not None:
            residual = F.interpolate(residual, x.shape[-2:], mode="nearest")
            z = self.att_conv(torch.cat([x, residual], dim=1))
            x = x * z[:, :1] + residual * z[:, 1:2]
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, out_size, mode="nearest")
        return self.conv2(x), x


def hcl_loss(f_s: torch.Tensor, f_t: torch.Tensor, levels: tuple[int, ...] = (4, 2, 1)
             ) -> torch.Tensor:
    """Hierarchical context loss of one stage (the official `hcl`, one pair)."""
    loss = F.mse_loss(f_s, f_t)
    weight, total = 1.0, 1.0
    for k in levels:
        if k >= f_s.shape[2]:
            continue
        weight /= 2.0
        loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(f_s, (k, k)),
                                          F.adaptive_avg_pool2d(f_t, (k, k)))
        total += weight
    return loss / total


class ReviewFusion(nn.Module):
    """The ABF chain over the student's stages plus the pooled feature, highest first."""

    def __init__(self, in_channels: list[int], out_channels: list[int],
                 out_sizes: list[tuple[int, int]]):
        super().__init__()
        mid = min(512, in_channels[-1])
        n = len(in_channels)
        # Built low to high, as officially; run high to low.
        self.abfs = nn.ModuleList(ABF(c_in, mid, c_out, i < n - 1)
                                  for i, (c_in, c_out) in enumerate(zip(in_channels,
                                                                        out_channels)))
        self.out_sizes = out_sizes

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Student features low to high -> fused outputs low to high (teacher widths)."""
        outs, residual = [], None
        for i in reversed(range(len(features))):
            out, residual = self.abfs[i](features[i], residual, self.out_sizes[i])
            outs.insert(0, out)
        return outs


@register_method
class ReviewKD(Method):
    name = "reviewkd"
    description = "Chen et al. 2021: fused student stages reviewed against every teacher stage"
    family = "feature"
    feature_taps = ("stage1", "stage2", "stage3")

    class Hparams(HParams):
        beta: float = 5.0  # weight of the review (HCL) loss
        warmup: float = 20 / 240  # fraction of training over which the review loss ramps up

    def __init__(self, hparams, ctx):
        super().__init__(hparams, ctx)
        taps, s, t = self.feature_taps, ctx.student_shapes, ctx.teacher_shapes
        # The stages, then the pooled feature as a 1x1 map.
        self.fusion = ReviewFusion([s[k][0] for k in taps] + [s[taps[-1]][0]],
                                   [t[k][0] for k in taps] + [t[taps[-1]][0]],
                                   [tuple(t[k][1:]) for k in taps] + [(1, 1)])
        self.warmup = LinearWarmup(self.hp.warmup, ctx.protocol.n_train,
                                   ctx.protocol.student_recipe.batch_size)

    def extra_modules(self) -> nn.Module:
        return self.fusion

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.warmup.on_epoch_start(epoch)

    @staticmethod
    def _features(out, taps) -> list[torch.Tensor]:
        last = out.features[taps[-1]]
        return [out.features[k] for k in taps] + [pooled(last)[:, :, None, None]]

    def loss(self, step: Step):
        s, taps = step.student(), self.feature_taps
        fused = self.fusion(self._features(s, taps))
        review = sum(hcl_loss(f_s, f_t)
                     for f_s, f_t in zip(fused, self._features(step.teacher, taps)))
        return (F.cross_entropy(s.logits, step.batch.y)
                + self.warmup(step.epochs) * self.hp.beta * review)
