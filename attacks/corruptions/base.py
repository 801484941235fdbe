"""The registries, the seeded random draws and the colour helpers every corruption shares."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {}  # CIFAR-10-C's; MNIST-C has its own (mnist_c/)

# ITU-R BT.601 weights: what cv2.COLOR_RGB2GRAY and PIL's "L" conversion use in the original script.
LUMA = (0.299, 0.587, 0.114)


def registrar(registry: dict[str, Corruption], severities: int, channels: tuple[int, ...],
              suite: str) -> Callable[[Corruption], Corruption]:
    """A decorator registering corruptions of one suite in `registry`, behind a wrapper that holds
    every corruption to one contract.

    The wrapper checks the input (N, C, H, W) with C in `channels` and the severity (1 ..
    `severities`), computes in float32 or float64 (half inputs are promoted, since several CPU
    kernels have no half version) and returns the input's dtype, clipped to [0, 1] as the
    original scripts clip before saving 8-bit images. A corruption returns a new tensor (never
    `x` or a view of it), which the wrapper clips in place.
    """
    shape = f"(N, {' or '.join(map(str, channels))}, H, W)"
    levels = "1" if severities == 1 else f"1..{severities}"

    def register(fn: Corruption) -> Corruption:
        @functools.wraps(fn)
        def checked(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
            if x.ndim != 4 or x.shape[1] not in channels:
                raise ValueError(f"{fn.__name__}: expected {shape}, got {tuple(x.shape)}")
            if not x.is_floating_point():
                raise TypeError(f"{fn.__name__}: expected a float tensor in [0, 1], got {x.dtype}")
            if not 1 <= severity <= severities:
                raise ValueError(f"{suite}: severity must be {levels}, not {severity}")
            work = x if x.dtype in (torch.float32, torch.float64) else x.float()
            return fn(work, severity, gen).clamp_(0, 1).to(x.dtype)

        registry[fn.__name__] = checked
        return checked

    return register


# CIFAR-10-C (Hendrycks & Dietterich 2019): five severities, grey or colour images.
corruption = registrar(CORRUPTIONS, severities=5, channels=(1, 3), suite="CIFAR-10-C")


def uniform(gen: torch.Generator, shape: Sequence[int], like: torch.Tensor | None = None,
            low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """U(low, high) drawn on the generator's device (CPU), so images do not depend on `like`'s;
    then moved to `like`'s device and dtype (kept on CPU, float32, without `like`)."""
    u = torch.rand(tuple(shape), generator=gen)
    if (low, high) != (0.0, 1.0):
        u.mul_(high - low).add_(low)
    return u if like is None else u.to(like.device, like.dtype)


def normal(gen: torch.Generator, shape: Sequence[int], like: torch.Tensor,
           mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """N(mean, std^2) drawn on CPU (see `uniform`)."""
    z = torch.randn(tuple(shape), generator=gen)
    if (mean, std) != (0.0, 1.0):
        z.mul_(std).add_(mean)
    return z.to(like.device, like.dtype)


def randint(gen: torch.Generator, low: int, high: int, shape: Sequence[int]) -> torch.Tensor:
    """Integers in [low, high) on CPU, like numpy's randint (exclusive high)."""
    return torch.randint(low, high, tuple(shape), generator=gen)


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luminance: the image itself when it is already grey."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def colour(rgb: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """A (1, C, 1, 1) colour for `like`'s channel count: the RGB triple, or its luminance for grey
    images (what converting the RGB result back to grey gives, up to clipping)."""
    c = torch.tensor(rgb, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return c if like.shape[1] == 3 else luma(c)
