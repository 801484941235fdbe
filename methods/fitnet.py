"""FitNets (Romero, Ballas, Kahou, Chassang, Gatta & Bengio, ICLR 2015): hint-based training.

Two stages, as Algorithm 1 of the paper and torchdistill's two-stage FitNet sample:

1. Hint training. The student up to its guided layer (here the middle stage, `stage2`) and a
   regressor r are trained so that r(guided) predicts the teacher's hint layer (its `stage2`),
   on the hint loss alone: no labels, no logits. r is a ConvReg (conv + batch norm + ReLU, as
   torchdistill's `ConvReg` and mdistiller's FitNet; a 1x1 conv where the spatial sizes agree,
   a strided or transposed conv where one is twice the other). r is an extra module: trained,
   then thrown away.
2. Knowledge distillation of the whole student, initialised by stage 1, with the paper's KD loss
   (its Eq. 2; the released code's `KDCost`):

       loss = CE(S(x), y) + lambda * H(softmax(T(x)/tau), softmax(S(x)/tau))

   tau = 3 and lambda annealed linearly per epoch from 4 (the released CIFAR-10 and MNIST
   configurations, `TeacherDecayOverEpoch`), here down to 1 over stage 2 (the CIFAR-10
   configuration's target).

`stage1_frac` of the protocol's epochs (rounded; at least one epoch for each stage) go to stage
1: the paper trains stage 1 to convergence on a validation set, torchdistill's sample gives it 5
of 20 epochs (0.25, the default). The protocol's one optimiser (SGD, one-cycle schedule over all
epochs) serves both stages. In stage 1 the parameters after the guided layer (stage 3, the head)
get no gradient: SGD leaves them exactly as they are, weight decay and momentum included (PyTorch
skips parameters whose gradient is None; the engine zeroes gradients to None). Their batch-norm
running statistics still follow the forward passes, which stage 2 overwrites within an epoch. In
stage 2 the regressor gets no gradient and stays as stage 1 left it.

Where the protocol forces a change: the paper's hint loss is 1/2 * ||u_h - r(v_g)||^2 summed
over the hint's elements per example, trained with RMSProp (invariant to the loss scale). Under
the protocol's SGD that sum (64 x 7 x 7 = 3136 elements on mnist5k, i.e. 1568 * F.mse_loss) takes
steps 16x larger than mdistiller's 100 * F.mse_loss (FITNET.LOSS.FEAT_WEIGHT = 100), and stage 1
stops converging as the one-cycle LR reaches its peak: on mnist5k (seed 0, the trained teacher)
the hint MSE after the two stage-1 epochs was 0.91 (0.31 after the first) at the paper's scale,
0.16 at mdistiller's. The hint loss is therefore mdistiller's; in stage 1 (hints alone) its scale
only sets the step size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.api import HParams, Method, Step, register_method
from methods.losses import hint_mse

HINT_LAYER = "stage2"  # the middle of the three stages every architecture declares


def conv_reg(s_shape: tuple[int, ...], t_shape: tuple[int, ...]) -> nn.Sequential:
    """mdistiller's / torchdistill's ConvReg from student (C, H, W) to teacher (C, H, W)."""
    (s_c, s_h, s_w), (t_c, t_h, t_w) = s_shape, t_shape
    if s_h == 2 * t_h:
        conv = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
    elif 2 * s_h == t_h:
        conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
    elif s_h >= t_h and s_w >= t_w:
        conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
    else:
        raise ValueError(f"no ConvReg from student feature {s_shape} to teacher feature {t_shape}")
    return nn.Sequential(conv, nn.BatchNorm2d(t_c), nn.ReLU(inplace=True))


def stage1_epochs(frac: float, epochs: int) -> int:
    """Epochs of hint training: frac * epochs rounded half up, leaving each stage one epoch."""
    return min(max(int(frac * epochs + 0.5), 1), epochs - 1)


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       tau: float) -> torch.Tensor:
    """H(softmax(t/tau), softmax(s/tau)) = -sum_k p_t log p_s, averaged over the batch."""
    p_t = F.softmax(teacher_logits / tau, 1)
    return -(p_t * F.log_softmax(student_logits / tau, 1)).sum(1).mean()


@register_method
class FitNet(Method):
    name = "fitnet"
    description = ("FitNets (Romero et al. 2015): stage 1 trains the student to its middle layer "
                   "on hints, stage 2 the whole student with KD")
    family = "feature"
    feature_taps = (HINT_LAYER,)

    class Hparams(HParams):
        stage1_frac: float = 0.25  # share of the epochs spent on hint training
        hint_weight: float = 100.0  # on F.mse_loss (mdistiller's FEAT_WEIGHT)
        tau: float = 3.0  # KD temperature of stage 2
        lambda_start: float = 4.0  # weight of the soft targets at the start of stage 2 ...
        lambda_end: float = 1.0  # ... annealed linearly to this at its last epoch

    def __init__(self, hparams, ctx):
        super().__init__(hparams, ctx)
        self.regressor = conv_reg(ctx.student_shapes[HINT_LAYER], ctx.teacher_shapes[HINT_LAYER])

    def extra_modules(self) -> nn.Module:
        return self.regressor

    def in_stage1(self, epoch: int, epochs: int) -> bool:
        return epoch < stage1_epochs(self.hp.stage1_frac, epochs)

    def kd_weight(self, epoch: int, epochs: int) -> float:
        """lambda at `epoch` of stage 2: lambda_start at its first epoch, lambda_end at its last."""
        first = stage1_epochs(self.hp.stage1_frac, epochs)
        span = max(epochs - 1 - first, 1)
        return self.hp.lambda_start + (self.hp.lambda_end - self.hp.lambda_start) * min(
            max(epoch - first, 0) / span, 1.0)

    def loss(self, step: Step):
        s, t = step.student(), step.teacher
        if self.in_stage1(step.epoch, step.epochs):
            regressed = self.regressor(s.features[HINT_LAYER])
            return self.hp.hint_weight * hint_mse(t.features[HINT_LAYER], regressed)
        lam = self.kd_weight(step.epoch, step.epochs)
        return (F.cross_entropy(s.logits, step.batch.y)
                + lam * soft_cross_entropy(s.logits, t.logits, self.hp.tau))
