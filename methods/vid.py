"""Variational information distillation (Ahn, Hu, Damianou, Lawrence & Dai, CVPR 2019,
arXiv:1904.05835).

VID maximises a variational lower bound on the mutual information between teacher and student
features: at every stage a regressor mu(.) (three 1x1 convolutions) predicts the teacher's
activation t from the student's s, under a Gaussian with a learned per-channel variance
sigma_c^2 = softplus(alpha_c) + eps; the loss is its negative log-likelihood,

    loss = CE(z_s, y)
           + beta * sum_stages mean_{c,h,w} [ log sigma_c + (t - mu(s))^2 / (2 sigma_c^2) ]

(with log sigma_c = 0.5 log sigma_c^2; constants dropped). The code follows RepDistiller's
VIDLoss (from the authors' code): regressor widths (C_s -> C_t -> C_t -> C_t), ReLU between,
no bias; the variance initialised to 5 (init_pred_var) with eps = 1e-5; maps of different size
pooled to the smaller. Defaults are RepDistiller's/mdistiller's CIFAR-100 ones: beta = 1, CE
weight 1, at every stage after the stem.

Cost: the regressors run at every stage at the teacher's widths; on mnist5k a VID step costs
about 3x a plain one on one CPU core (measured over the full recipe).

The regressors and the variance parameters are extra modules, trained with the student and
discarded. mdistiller keeps its variance parameters outside its optimiser (they never move);
RepDistiller and the authors train them, as here.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.api import HParams, Method, Step, register_method
from methods.losses import match_spatial


class VIDRegressor(nn.Module):
    """mu(s) and the per-channel variance of one stage."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, init_pred_var: float, eps: float):
        super().__init__()
        self.regressor = nn.Sequential(
            nn.Conv2d(c_in, c_mid, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c_mid, c_mid, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c_mid, c_out, 1, bias=False))
        # softplus(log_scale) + eps == init_pred_var at the start.
        self.log_scale = nn.Parameter(
            torch.full((c_out,), math.log(math.expm1(init_pred_var - eps))))
        self.eps = eps

    def forward(self, f_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.regressor(f_s)
        var = F.softplus(self.log_scale) + self.eps
        return mean, var.view(1, -1, 1, 1)


def vid_nll(mean: torch.Tensor, var: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of the teacher's activations, mean over elements."""
    return (0.5 * ((mean - f_t) ** 2 / var + torch.log(var))).mean()


@register_method
class VID(Method):
    name = "vid"
    description = "Ahn et al. 2019: maximise a variational bound on teacher-student information"
    family = "feature"
    feature_taps = ("stage1", "stage2", "stage3")

    class Hparams(HParams):
        beta: float = 1.0  # weight of the summed VID losses
        init_pred_var: float = 5.0  # initial variance of the Gaussian
        eps: float = 1e-5  # variance floor

    def __init__(self, hparams, ctx):
        super().__init__(hparams, ctx)
        self.regressors = nn.ModuleDict({
            k: VIDRegressor(ctx.student_shapes[k][0], ctx.teacher_shapes[k][0],
                            ctx.teacher_shapes[k][0], self.hp.init_pred_var, self.hp.eps)
            for k in self.feature_taps})

    def extra_modules(self) -> nn.Module:
        return self.regressors

    def loss(self, step: Step):
        s, t = step.student(), step.teacher
        vid = 0.0
        for k in self.feature_taps:
            f_s, f_t = match_spatial(s.features[k], t.features[k])
            vid = vid + vid_nll(*self.regressors[k](f_s), f_t)
        return F.cross_entropy(s.logits, step.batch.y) + self.hp.beta * vid
