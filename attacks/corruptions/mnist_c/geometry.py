"""MNIST-C's affine corruptions: shear, scale and rotate about the image centre, and translate.

The original builds a skimage AffineTransform and calls skimage.transform.warp(x, inverse_map=t):
each output pixel (column c, row r) samples the input at t(c, r), bilinearly, with 0 outside the
image. grid_sample (bilinear, zero padding, aligned corners) on pixel coordinates does the same:
a sample partly outside the image mixes in zeros, as skimage's constant mode does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks.corruptions.base import randint
from attacks.corruptions.digital import affine_grid
from attacks.corruptions.mnist_c.registry import corruption


def random_signs(gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """-1 or 1 with equal probability: the original's np.random.choice([-1, 1])."""
    return (randint(gen, 0, 2, shape) * 2 - 1).double()


def warp_about_centre(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """skimage's warp by the inverse map p -> A (p - centre) + centre, per image: (N, 2, 2)
    matrices A acting on (column, row). The original's translation keeps (13.5, 13.5), the
    centre of a 28x28 digit, fixed: 13.5 * (1 - a1 - a2) is centre - A centre."""
    n, _, h, w = x.shape
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)
    shift = centre - a @ centre
    coeffs = torch.cat([a.transpose(1, 2), shift[:, None]], 1)  # [c, r, 1] @ coeffs
    grid = affine_grid(coeffs.to(x.device, x.dtype), h, w, align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


@corruption
def shear(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Severity 2: shear angle 0.4 rad, direction drawn per image. The matrix is the one
    # AffineTransform(shear=s) made when MNIST-C was generated, [[1, -sin s], [0, cos s]];
    # scikit-image 0.21 changed it to [[1, -tan s], [0, 1]] (scikit-image PR #6717).
    s = 0.4 * random_signs(gen, (x.shape[0],))
    zero, one = torch.zeros_like(s), torch.ones_like(s)
    a = torch.stack([torch.stack([one, -torch.sin(s)], -1),
                     torch.stack([zero, torch.cos(s)], -1)], -2)
    return warp_about_centre(x, a)


@corruption
def scale(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Severity 3: the inverse map scales by 1/0.7, so the digit shrinks to 0.7 of its size.
    a = torch.eye(2, dtype=torch.float64).expand(x.shape[0], 2, 2) / 0.7
    return warp_about_centre(x, a)


@corruption
def rotate(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Severity 2: 0.4 rad (about 23 degrees), direction drawn per image.
    t = 0.4 * random_signs(gen, (x.shape[0],))
    c, s = torch.cos(t), torch.sin(t)
    a = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    return warp_about_centre(x, a)


@corruption
def translate(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Severity 3: 3 pixels along each axis, each sign drawn per image. The inverse map
    # (c, r) -> (c + dx, r + dy) moves whole pixels, so this is an exact shift with zero fill.
    n, _, h, w = x.shape
    k = 3
    d = random_signs(gen, (n, 2)).long() * k  # (dx, dy)
    padded = F.pad(x, (k, k, k, k))
    out = torch.empty_like(x)
    for dx in (-k, k):
        for dy in (-k, k):
            idx = ((d[:, 0] == dx) & (d[:, 1] == dy)).nonzero()[:, 0].to(x.device)
            out[idx] = padded[idx, :, k + dy:k + dy + h, k + dx:k + dx + w]
    return out
