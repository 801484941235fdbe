"""Relational knowledge distillation (Park, Kim, Lu & Cho, CVPR 2019, arXiv:1904.05068).

The student matches the *structure* of the teacher's embeddings over a batch rather than the
embeddings themselves, with two relational potentials:

- distance: pairwise Euclidean distances, each divided by the batch's mean non-zero distance;
- angle: cosines of the angle at j between (i - j) and (k - j), for every triplet.

    loss = CE(z_s, y) + w_d * huber(psi_D(s), psi_D(t)) + w_a * huber(psi_A(s), psi_A(t))

with the Huber loss (smooth L1, delta 1) averaged over entries. The code follows the authors'
(lenscloth/RKD metric/loss.py, as RepDistiller and mdistiller use it; eps = 1e-12 in the distance
clamp). Defaults are the paper's and mdistiller's: w_d = 25, w_a = 50, CE weight 1, on the pooled
penultimate features.

Protocol note: the features are the global average of the last stage (methods.losses.pooled):
the mnist5k ConvNet's penultimate feature exactly; on ResNet-9, whose head max-pools, the average
of the same map.
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method
from methods.losses import pooled


def pairwise_distance(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances between the rows of e, zero on the diagonal."""
    sq = e.pow(2).sum(1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=d.dtype))


def _normalized_distances(e: torch.Tensor) -> torch.Tensor:
    d = pairwise_distance(e)
    return d / d[d > 0].mean()


def _angles(e: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


def rkd_loss(f_s: torch.Tensor, f_t: torch.Tensor, distance_weight: float,
             angle_weight: float) -> torch.Tensor:
    """w_d * distance-wise + w_a * angle-wise Huber loss between student and teacher relations."""
    with torch.no_grad():
        d_t, a_t = _normalized_distances(f_t), _angles(f_t)
    return (distance_weight * F.smooth_l1_loss(_normalized_distances(f_s), d_t)
            + angle_weight * F.smooth_l1_loss(_angles(f_s), a_t))


@register_method
class RKD(Method):
    name = "rkd"
    description = "Park et al. 2019: match the teacher's pairwise distances and triplet angles"
    family = "feature"
    feature_taps = ("stage3",)

    class Hparams(HParams):
        distance_weight: float = 25.0
        angle_weight: float = 50.0

    def loss(self, step: Step):
        s, t = step.student(), step.teacher
        hp = self.hp
        # In float32 whatever the autocast: distances from |a|^2 + |b|^2 - 2ab in bf16 cancel.
        with torch.autocast(s.logits.device.type, enabled=False):
            rel = rkd_loss(pooled(s.features["stage3"].float()),
                           pooled(t.features["stage3"].float()),
                           hp.distance_weight, hp.angle_weight)
        return F.cross_entropy(s.logits, step.batch.y) + rel
