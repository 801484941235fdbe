"""MNIST-C's canny_edges: the digit replaced by its Canny edge map, skimage.feature.canny with its
defaults (sigma 1, thresholds 0.1 and 0.2 of the [0, 1] range).

This is scikit-image's canny (its Cython non-maximum suppression, 0.20 and later), step by step
and in float64, with each filter's sums in scipy's order so that ties fall the same way:

1. Gaussian smoothing, sigma 1, radius 4, zeros outside the image, divided by the same filter
   applied to an all-ones image (its "bleed-over" normalisation).
2. Sobel gradients (scipy.ndimage.sobel, border mirrored), magnitude sqrt(gi^2 + gj^2).
3. Non-maximum suppression along the gradient, interpolating the two neighbours on each side as
   its Cython kernel does, on every pixel but the outermost ring, keeping magnitudes >= 0.1
   (compared in single precision, as the kernel's float argument is).
4. Hysteresis: the 8-connected groups of kept pixels that hold a magnitude >= 0.2.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from attacks.corruptions import filters
from attacks.corruptions.mnist_c.registry import corruption

LOW, HIGH = float(np.float32(0.1)), 0.2
EPS = float(np.finfo(np.float64).eps)


@functools.lru_cache(maxsize=8)
def _gaussian_weights(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """scipy.ndimage's _gaussian_kernel1d, computed as it does (numpy), centre first."""
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / sigma**2 * t**2)
    phi = phi / phi.sum()
    return tuple(phi[radius:].tolist())


def _symmetric_1d(x: torch.Tensor, weights: tuple[float, ...], dim: int) -> torch.Tensor:
    """scipy's correlate1d with a symmetric kernel (centre weight first) on a zero-padded axis,
    summed in its order: centre, then each mirrored pair from the outermost in."""
    r, n = len(weights) - 1, x.shape[dim]
    p = F.pad(x, (0, 0, r, r) if dim == -2 else (r, r, 0, 0))
    out = x * weights[0]
    for j in range(r, 0, -1):
        out = out + (p.narrow(dim, r - j, n) + p.narrow(dim, r + j, n)) * weights[j]
    return out


def _sobel(x: torch.Tensor, dim: int) -> torch.Tensor:
    """scipy.ndimage.sobel(x, axis=dim) with its default border (mirror, which repeats the edge
    pixel for a 1-pixel reach): x[+1] - x[-1] along `dim`, then 2 x + (x[-1] + x[+1]) across."""
    other = -1 if dim == -2 else -2
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    d = p.narrow(dim, 2, x.shape[dim]) - p.narrow(dim, 0, x.shape[dim])
    d = d.narrow(other, 1, x.shape[other])
    q = F.pad(d, (1, 1, 0, 0) if other == -1 else (0, 0, 1, 1), mode="replicate")
    return d * 2 + (q.narrow(other, 0, d.shape[other]) + q.narrow(other, 2, d.shape[other]))


def _gaussian_constant(x: torch.Tensor, sigma: float) -> torch.Tensor:
    weights = _gaussian_weights(sigma)
    return _symmetric_1d(_symmetric_1d(x, weights, -2), weights, -1)  # axis 0, then axis 1


def canny(img: torch.Tensor, sigma: float = 1.0, low: float = LOW, high: float = HIGH
          ) -> torch.Tensor:
    """skimage.feature.canny on (N, 1, H, W) float64 images in [0, 1]: boolean edge maps."""
    bleed_over = _gaussian_constant(img.new_ones(1, 1, *img.shape[-2:]), sigma) + EPS
    smoothed = _gaussian_constant(img, sigma) / bleed_over
    gi, gj = _sobel(smoothed, -2), _sobel(smoothed, -1)  # along rows (axis 0), along columns
    mag = torch.sqrt(gi * gi + gj * gj)
    h, w = img.shape[-2:]
    p = F.pad(mag, (1, 1, 1, 1))

    def at(dr: int, dc: int) -> torch.Tensor:
        return p[..., 1 + dr:1 + dr + h, 1 + dc:1 + dc + w]

    ai, aj = gi.abs(), gj.abs()
    down, left = gi <= 0, gj <= 0
    same_sign = (~down & ~left) | (down & left)  # the kernel's cond1; cond2 otherwise
    mostly_i = torch.where(same_sign, ai > aj, ~(ai < aj))
    ratio = torch.where(mostly_i, aj / ai.clamp_min(1e-300), ai / aj.clamp_min(1e-300))
    # Neighbours (n11, n12) on one side and (n21, n22) on the other, per case of the kernel.
    n11 = torch.where(same_sign, torch.where(mostly_i, at(1, 0), at(0, 1)),
                      torch.where(mostly_i, at(-1, 0), at(0, 1)))
    n12 = torch.where(same_sign, at(1, 1), at(-1, 1))
    n21 = torch.where(same_sign, torch.where(mostly_i, at(-1, 0), at(0, -1)),
                      torch.where(mostly_i, at(1, 0), at(0, -1)))
    n22 = torch.where(same_sign, at(-1, -1), at(1, -1))
    peak = ((n12 * ratio + n11 * (1.0 - ratio)) <= mag) & ((n22 * ratio + n21 * (1.0 - ratio))
                                                           <= mag)
    inner = torch.zeros(h, w, dtype=torch.bool, device=img.device)
    inner[1:-1, 1:-1] = True
    kept = inner & (mag >= low) & peak
    edges = kept & (mag >= high)
    while True:
        grown = filters.dilate3(edges) & kept
        if torch.equal(grown, edges):
            return edges
        edges = grown


@corruption
def canny_edges(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    return canny(x.double()).to(x.dtype)
