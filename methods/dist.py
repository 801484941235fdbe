"""DIST: knowledge distillation from a stronger teacher (Huang, You, Wang, Qian & Xu, NeurIPS 2022,
arXiv:2205.10536).

Exact KL matching is too strict when the teacher is much stronger; DIST matches relations
instead, with the Pearson correlation rho between probability vectors (softmax at temperature
tau):

    inter = 1 - mean_i rho(p_s[i, :], p_t[i, :])   (each example's class ranking)
    intra = 1 - mean_c rho(p_s[:, c], p_t[:, c])   (each class over the batch)
    loss  = ce_weight * CE(z_s, y) + kd_weight * tau^2 * (beta * inter + gamma * intra)

The code follows the official loss (hunto/image_classification_sota, lib/models/losses/
dist_kd.py), including its cosine similarity a.b / (|a| |b| + eps) with eps = 1e-8. Defaults are
the official CIFAR-100 recipe (configs/strategies/distill/dist_cifar.yaml, `kd: dist_t4`): beta =
gamma = 1, tau = 4, KD weight 2, CE weight 1. The intra-class term correlates each class over the
batch, so it needs at least two examples per batch (every protocol's batch has 128 or more).
"""

import torch
import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method


def pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise Pearson correlation, as the official code computes it."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float,
              gamma: float, tau: float) -> torch.Tensor:
    """tau^2 * (beta * inter-class + gamma * intra-class relation loss)."""
    p_s = F.softmax(student_logits / tau, dim=1)
    p_t = F.softmax(teacher_logits / tau, dim=1)
    inter = 1 - pearson(p_s, p_t).mean()
    intra = 1 - pearson(p_s.t(), p_t.t()).mean()
    return tau * tau * (beta * inter + gamma * intra)


@register_method
class DIST(Method):
    name = "dist"
    description = "Huang et al. 2022: inter- and intra-class Pearson correlation with the teacher"
    family = "logit"

    class Hparams(HParams):
        beta: float = 1.0  # inter-class relation weight
        gamma: float = 1.0  # intra-class relation weight
        tau: float = 4.0  # softmax temperature
        kd_weight: float = 2.0  # weight of the DIST term
        ce_weight: float = 1.0  # weight of the label cross-entropy

    def loss(self, step: Step):
        s, hp = step.student().logits, self.hp
        return (hp.ce_weight * F.cross_entropy(s, step.batch.y)
                + hp.kd_weight * dist_loss(s, step.teacher.logits, hp.beta, hp.gamma, hp.tau))
