"""MNIST-C's noise, blur, brightness, stripe, fog and spatter: every one changes pixel values in
place (no geometry), each at the severity MNIST-C's corruptions.py uses by default."""

from __future__ import annotations

import functools

import torch

from attacks.corruptions import filters
from attacks.corruptions.base import normal, uniform
from attacks.corruptions.blur import glass_permutation
from attacks.corruptions.mnist_c.registry import corruption
from attacks.corruptions.noise import salt_and_pepper
from attacks.corruptions.weather import plasma_fractal


@corruption
def shot_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Poisson(3 x) / 3 (severity 5 of the original's list). The counts depend on x, so x goes to
    # the generator's device (CPU) for the draw: the same images on CUDA get the same noise.
    lam = 3
    counts = torch.poisson(x.detach().cpu().float() * lam, generator=gen)
    return counts.to(x.device, x.dtype) / lam


@corruption
def impulse_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    return salt_and_pepper(x, 0.17, gen)  # skimage's s&p, amount 0.17 (severity 4)


@functools.lru_cache(maxsize=16)
def _vertical_gaussian(h: int, sigma: float) -> torch.Tensor:
    return filters.conv_matrix(h, tuple(filters.gaussian_kernel(sigma).tolist()), "replicate")


@corruption
def glass_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Severity 1: sigma 0.7, swaps of at most 1 pixel, 2 passes. The original calls skimage's
    # gaussian(multichannel=True) on the 2-D digit, which takes its columns for colour channels:
    # the blur runs down the columns only. Between the blurs it truncates to 8 bits (np.uint8)
    # and swaps each visited pixel with probability 1/2 (np.random.choice([True, False])).
    sigma, delta, iterations = 0.7, 1, 2
    n, _, h, w = x.shape
    blur = _vertical_gaussian(h, sigma).to(x)
    x = torch.floor(blur @ x * 255) / 255
    index = glass_permutation(n, h, w, delta, iterations, gen, p_swap=0.5).to(x.device)
    x = x.reshape(n, h * w).gather(1, index).view(n, 1, h, w)
    return blur @ x


@corruption
def motion_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # ImageMagick's motion blur (through Wand in the original), radius 10, sigma 3 (severity 1), at
    # an angle drawn from U(-45, 45) degrees per image.
    angle = uniform(gen, (x.shape[0],), low=-45, high=45)
    return filters.motion_blur(x, 10, 3, angle)


@corruption
def brightness(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # The original adds 0.5 to V in HSV (severity 5) through skimage's grey -> RGB -> HSV -> RGB ->
    # grey round trip. A grey pixel has S = 0 and V = its value, and rgb2gray's weights sum to 1,
    # so the round trip is x + 0.5, clipped.
    return x + 0.5


@corruption
def stripe(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Inverts the left and right quarters: columns [0, 7) and [21, 28) of a 28-pixel digit.
    q = x.shape[-1] // 4
    out = x.clone()
    out[..., :q] = 1 - x[..., :q]
    out[..., x.shape[-1] - q:] = 1 - x[..., x.shape[-1] - q:]
    return out


FOG_MAP_SIZE = 256  # the original's plasma_fractal default: a 256 map, cropped to the digit
FOG_CHUNK = 32  # maps made at once: 8 MiB of float32 per chunk


@corruption
def fog(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Severity 5: strength 3, wibble decay 1.4. The map is normalised to [0, 1] over the whole
    # 256 x 256 map before the top-left crop, so a crop rarely spans the full range.
    strength, decay = 3.0, 1.4
    n, _, h, w = x.shape
    if max(h, w) > FOG_MAP_SIZE:
        raise ValueError(f"fog: images larger than {FOG_MAP_SIZE} pixels, got {h}x{w}")
    # In float32: the maps differ from float64 ones by ~1e-7, at half the cost.
    fractal = torch.cat([plasma_fractal(min(FOG_CHUNK, n - i), FOG_MAP_SIZE, decay, gen,
                                        crop=(h, w), dtype=torch.float32)[:, None]
                         for i in range(0, n, FOG_CHUNK)]).to(x)
    peak = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * fractal) * peak / (peak + strength)


MUD = 63 / 255


@corruption
def spatter(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Severity 4: mud. A N(0.65, 0.3^2) field blurred (sigma 1) and thresholded at 0.65; the mask
    # of its blobs blurred (sigma 1.5) and kept where >= 0.8 paints grey 63/255 over the digit.
    loc, scale, sigma, threshold, mask_sigma = 0.65, 0.3, 1.0, 0.65, 1.5
    liquid = filters.gaussian_blur(normal(gen, x.shape, x, loc, scale), sigma)
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    m = filters.gaussian_blur((liquid > threshold).to(x), mask_sigma)
    m = torch.where(m < 0.8, 0.0, m)
    return x * (1 - m) + MUD * m
