"""Noise corruptions: every pixel value of every channel is perturbed independently."""

from __future__ import annotations

import math

import torch

from attacks.corruptions.base import corruption, normal, uniform


@corruption
def gaussian_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return normal(gen, x.shape, x, std=sigma).add_(x)


@corruption
def shot_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Poisson(x * lam) / lam. The counts depend on x, so x goes to the generator's device (CPU) for
    # the draw: the same images on CUDA get the same noise.
    lam = (500, 250, 100, 75, 50)[severity - 1]
    counts = torch.poisson(x.detach().cpu().float() * lam, generator=gen)
    return counts.to(x.device, x.dtype) / lam


def bernoulli_positions(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    """Sorted positions in [0, n) where independent Bernoulli(p) trials succeed (on CPU).

    The gaps between successes are geometric, so about p * n draws replace n: the same
    distribution as thresholding one uniform per position, for a few percent of the cost.
    """
    log_q = math.log1p(-p)
    found, last = [], -1
    while last < n:
        expected = p * (n - last)
        batch = int(expected + 6 * math.sqrt(expected) + 16)  # rarely needs a second round
        u = torch.rand(batch, generator=gen, dtype=torch.float64)
        gaps = torch.floor(torch.log1p(-u) / log_q)  # failures before the next success
        positions = last + torch.cumsum(gaps + 1, 0)
        found.append(positions[positions < n])
        last = int(positions[-1].item())
    return torch.cat(found).long()


def salt_and_pepper(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """skimage's random_noise(mode="s&p", amount=a) on images in [0, 1]: each value independently
    becomes 0 or 1 with probability a, salt and pepper equally likely."""
    hit = bernoulli_positions(x.numel(), amount, gen)
    salt = uniform(gen, hit.shape, x) < 0.5
    out = x.clone()
    out.view(-1)[hit.to(x.device)] = salt.to(x.dtype)
    return out


@corruption
def impulse_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    return salt_and_pepper(x, (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1], gen)


@corruption
def speckle_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    s = (0.06, 0.10, 0.12, 0.16, 0.20)[severity - 1]
    return normal(gen, x.shape, x, mean=1.0, std=s).mul_(x)  # x * (1 + s z)
