"""Attention transfer (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017,
arXiv:1612.03928).

The student matches the teacher's spatial attention maps at the end of every stage. An
activation-based attention map is the channel statistic F(A) = mean_c |A_c|^p, flattened and
L2-normalised per example (the paper's Eq. 2 with p = 2):

    loss = CE(z_s, y) + beta * sum_stages mean((Q_s - Q_t)^2),   Q = normalize(F(A))

The code follows the authors' implementation (szagoruyko/attention-transfer utils.py, used as is
by RepDistiller and mdistiller): the channel *mean* and the element-wise *mean* of the squared
difference, which the paper writes as a sum and a p-norm (torchdistill's ATLoss `mode="code"`
versus `"paper"`). Defaults are RepDistiller's/mdistiller's CIFAR-100 ones: p = 2, beta = 1000,
CE weight 1, at every stage after the stem (RepDistiller's `feat[1:-1]`). Maps of different
spatial size are average-pooled to the smaller (mdistiller); the built-in pairs agree stage by
stage.
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import match_spatial


def attention_map(feat: torch.Tensor, p: float) -> torch.Tensor:
    """L2-normalised mean_c A_c^p, flattened: (B, H*W)."""
    return F.normalize(feat.pow(p).mean(1).flatten(1))


def at_loss(f_s: torch.Tensor, f_t: torch.Tensor, p: float) -> torch.Tensor:
    """One stage's attention-transfer loss: mean squared difference of the maps."""
    f_s, f_t = match_spatial(f_s, f_t)
    return (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()


@register_method
class AT(Method):
    name = "at"
    description = "Zagoruyko & Komodakis 2017: match the teacher's spatial attention maps per stage"
    family = "feature"
    feature_taps = ("stage1", "stage2", "stage3")

    class Hparams(HParams):
        beta: float = 1000.0  # weight of the summed attention losses
        p: float = 2.0  # exponent of the attention map

    def loss(self, step: Step):
        s, t = step.student(), step.teacher
        # In float32 (CUDA trains in bf16): beta = 1000 scales the rounding error of the maps.
        at = sum(at_loss(s.features[k].float(), t.features[k].float(), self.hp.p)
                 for k in self.feature_taps)
        return F.cross_entropy(s.logits, step.batch.y) + self.hp.beta * at
