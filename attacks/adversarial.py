"""White-box L-inf attacks for evaluation, through torchattacks.

"Robust accuracy" of an example is its worst case over everything run: an example counts as robust
only if the model is right on the clean input and on every attack's output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchattacks
from torch import nn


def make_attack(name: str, model: nn.Module, eps: float, steps: int = 1,
                step_size: float | None = None, random_start: bool = True) -> torchattacks.Attack:
    if name == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    if name == "pgd":
        return torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps,
                                random_start=random_start)
    raise ValueError(f"unknown attack {name!r}")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def robust_mask(model: nn.Module, attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                x: torch.Tensor, y: torch.Tensor, batch_size: int, restarts: int = 1,
                on_batch: Callable[[], None] | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per example: True when the model stays right on every restart of `attack`.

    `keep` (shaped like `x`), when given, receives each example's adversarial input: from the
    first restart that fooled the model, else from the last restart, so that the model is
    right on `keep` exactly where the mask is True (a transfer check reuses them)."""
    model.eval()
    ok = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for r in range(restarts):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            x_adv = attack(xb, yb)
            with torch.no_grad():
                right = model(x_adv).argmax(1) == yb
                if keep is not None:
                    take = ok[i:i + batch_size] & (~right | (r == restarts - 1))
                    keep[i:i + batch_size][take.to(keep.device)] = x_adv[take].to(keep.device)
                ok[i:i + batch_size] &= right
            if on_batch:
                on_batch()
    return ok
