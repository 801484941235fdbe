"""AutoAttack through the reference implementation (Croce & Hein 2020, package `pyautoattack`).

torchattacks' own AutoAttack port disagrees with the reference (torchattacks issues #164, #188),
so the opt-in strongest evaluation uses `pyautoattack`'s standard version: APGD-CE, APGD-T,
FAB-T and Square, with a fixed seed so every model faces the same random restarts.
"""

from __future__ import annotations

import torch
from torch import nn


def autoattack_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                    batch_size: int, seed: int) -> torch.Tensor:
    """Per example: True when the model is right on the clean input and on AutoAttack's output."""
    from pyautoattack import AutoAttack

    model.eval()
    adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard",
                           device=x.device, seed=seed)
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    with torch.no_grad():
        return torch.cat([model(x_adv[i:i + batch_size]).argmax(1)
                          for i in range(0, len(x), batch_size)]) == y
