"""Common corruptions (Hendrycks & Dietterich 2019, CIFAR-10-C) as batched tensor operations.

Each corruption maps a batch in [0, 1] and a severity 1..5 to a corrupted batch in [0, 1]. Random
draws come from a generator the caller seeds, so every model sees exactly the same images.
Parameters are the paper's for 32x32 images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {}


def corruption(fn: Corruption) -> Corruption:
    CORRUPTIONS[fn.__name__] = fn
    return fn


def _randn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    # Drawn on the generator's device (CPU), so the images do not depend on the eval device.
    return torch.randn(x.shape, generator=gen).to(x.device)


@corruption
def gaussian_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return (x + sigma * _randn(x, gen)).clamp(0, 1)


def apply(name: str, x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    """Corrupt `x` reproducibly: the same (name, severity, seed, x) always gives the same output."""
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, not {severity}")
    gen = torch.Generator().manual_seed(seed * 1000 + severity)
    return CORRUPTIONS[name](x, severity, gen)
