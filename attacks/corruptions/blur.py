"""Blur corruptions."""

from __future__ import annotations

import functools

import torch

from attacks.corruptions import filters
from attacks.corruptions.base import corruption, randint, uniform


@corruption
def defocus_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    radius, alias_blur = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    return filters.filter2d(x, filters.disk_kernel(radius, alias_blur), "reflect", exact=False)


@corruption
def gaussian_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1]
    return filters.gaussian_blur(x, sigma)


def glass_permutation(n: int, h: int, w: int, delta: int, iterations: int,
                      gen: torch.Generator, p_swap: float = 1.0) -> torch.Tensor:
    """Source pixel of every output pixel after the original's local pixel swaps, per image.

    The original visits rows and columns from the bottom-right corner inwards, swapping each pixel
    with one at offset U{-delta..delta-1} (numpy's exclusive high); with `p_swap` < 1 (MNIST-C)
    each visit swaps only with that probability. The swaps are sequential: a pixel moved up or
    left is visited again and can travel further. They do not depend on pixel values, so the same
    swaps are replayed once on an index array for the whole batch.
    """
    index = torch.arange(h * w).repeat(n, 1).T.contiguous()  # index[p, i]: source pixel at p
    batch = torch.arange(n)
    rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
    positions = [r * w + c for r in rows for c in cols]
    for _ in range(iterations):
        d = randint(gen, -delta, delta, (len(positions), 2, n))  # (dx, dy) per swap and image
        if p_swap < 1:  # a visit that does not swap is a swap with itself
            d *= (uniform(gen, (len(positions), 1, n)) < p_swap).long()
        targets = torch.tensor(positions)[:, None] + d[:, 1] * w + d[:, 0]
        for p, q in zip(positions, targets):
            moved = index[p].clone()
            index[p] = index[q, batch]
            index[q, batch] = moved
    return index.T


@corruption
def glass_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2),
                                (0.4, 1, 2))[severity - 1]
    n, c, h, w = x.shape
    x = filters.gaussian_blur(x, sigma)
    index = glass_permutation(n, h, w, delta, iterations, gen).to(x.device)
    x = x.reshape(n, c, h * w).gather(2, index[:, None].expand(n, c, -1)).view(n, c, h, w)
    return filters.gaussian_blur(x, sigma)


@corruption
def motion_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity - 1]
    angle = uniform(gen, (x.shape[0],), low=-45, high=45)
    return filters.motion_blur(x, radius, sigma, angle)


# The original's np.arange(1, 1.06 ... 1.26, 0.01): float rounding gives these lengths, and numpy
# fills it as 1 + k * ((1 + 0.01) - 1), a hair above 1 + 0.01 k. The hair matters: at k = 25,
# scipy's output size round(26 * 1.25...02) is 33, not 32.
ZOOMS_PER_SEVERITY = (7, 12, 16, 21, 26)
ZOOM_STEP = (1 + 0.01) - 1


@functools.lru_cache(maxsize=16)
def zoom_blur_operator(h: int, w: int, n_zooms: int, dtype: torch.dtype) -> torch.Tensor:
    """The whole zoom blur as one sparse (HW x HW) matrix: the mean of the image and its clipped
    zooms by 1.00, 1.01, ... Each zoom is separable: its pixel operator is a Kronecker product."""
    eye = functools.partial(torch.eye, dtype=torch.float64)
    parts = [filters.sparse_kron(eye(h), eye(w))]
    for k in range(n_zooms):
        z = 1 + k * ZOOM_STEP
        parts.append(filters.sparse_kron(filters.clipped_zoom_matrix(h, z),
                                         filters.clipped_zoom_matrix(w, z)))
    total = torch.stack(parts).sum(0).coalesce() / (n_zooms + 1)
    return filters.sparse_operator(total.to(dtype))


@corruption
def zoom_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    n_zooms = ZOOMS_PER_SEVERITY[severity - 1]
    op = zoom_blur_operator(x.shape[2], x.shape[3], n_zooms, x.dtype).to(x.device)
    return filters.apply_pixel_operator(x, op)
