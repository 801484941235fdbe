"""L-inf PGD with an arbitrary objective, for training-time attacks (PGD-AT, ARD, RSLAD, IAD,
AdaAD, TRADES).

Evaluation attacks go through torchattacks (attacks/adversarial.py); training needs objectives
torchattacks does not offer (RSLAD maximises a KL divergence to the teacher), so this is the one
small PGD loop the methods share.

The released codes differ in where the attack starts, and each method follows its own:

- `start="uniform"`: x + U(-eps, eps) (Madry et al.; ARD's and IAD's `AttackPGD`);
- `start="normal"`: x + 0.001 * N(0, 1) (TRADES's `trades_loss`, copied by RSLAD and AdaAD). A
  KL objective between the model's outputs on x and on x' has zero gradient at x' = x, hence the
  small random offset;
- `clamp_start`: whether the start is clipped to [0, 1] before the first step. Madry et al.'s
  challenge code clips it; the released ARD, IAD, TRADES, RSLAD and AdaAD scripts do not (their
  first gradient is taken at a point up to eps outside the image range). Every step after that
  projects onto the eps-ball and [0, 1], so the result is always a valid image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Start = Literal["uniform", "normal"]
NORMAL_START_STD = 0.001  # TRADES: x_natural + 0.001 * torch.randn(...)


def pgd_linf(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float,
             step_size: float, steps: int, random_start: bool = True, *,
             start: Start = "uniform", clamp_start: bool = True) -> torch.Tensor:
    """Maximise `objective(x_adv)` (a scalar) over ||x_adv - x||_inf <= eps, x_adv in [0, 1].

    Gradients are taken with respect to the input only (torch.autograd.grad), so no parameter
    gradients are computed or accumulated. The random start (`start`, see the module docstring)
    draws from torch's global generator, which the engine seeds per job.
    """
    x = x.detach()
    if not random_start:
        x_adv = x.clone()
    elif start == "uniform":
        x_adv = x + torch.empty_like(x).uniform_(-eps, eps)
    elif start == "normal":
        x_adv = x + NORMAL_START_STD * torch.randn_like(x)
    else:
        raise ValueError(f"unknown PGD start {start!r}; use 'uniform' or 'normal'")
    if clamp_start:
        x_adv = x_adv.clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x_adv), x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach().clamp(0, 1)


def pgd_ce(student: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float,
           steps: int, random_start: bool = True, **start) -> torch.Tensor:
    """Madry et al.'s inner maximisation: PGD on the student's cross-entropy (PGD-AT, ARD, IAD).
    `start` passes `start=` / `clamp_start=` on to `pgd_linf`."""
    return pgd_linf(lambda xa: F.cross_entropy(student(xa), y), x, eps, step_size, steps,
                    random_start, **start)
