"""L-inf PGD with an arbitrary objective, for training-time attacks (ARD, RSLAD, PGD-AT).

Evaluation attacks go through torchattacks (attacks/adversarial.py); training needs objectives
torchattacks does not offer (RSLAD maximises a KL divergence to the teacher), so this is the one
small PGD loop the methods share.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def pgd_linf(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float,
             step_size: float, steps: int, random_start: bool = True) -> torch.Tensor:
    """Maximise `objective(x_adv)` (a scalar) over ||x_adv - x||_inf <= eps, x_adv in [0, 1].

    Gradients are taken with respect to the input only (torch.autograd.grad), so no parameter
    gradients are computed or accumulated. The random start draws from torch's global generator,
    which the engine seeds per job.
    """
    x = x.detach()
    x_adv = x + torch.empty_like(x).uniform_(-eps, eps) if random_start else x.clone()
    x_adv = x_adv.clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x_adv), x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def pgd_ce(student: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float,
           steps: int, random_start: bool = True) -> torch.Tensor:
    """Madry et al.'s inner maximisation: PGD on the student's cross-entropy (PGD-AT, ARD)."""
    return pgd_linf(lambda xa: F.cross_entropy(student(xa), y), x, eps, step_size, steps,
                    random_start)
