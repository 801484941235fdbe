"""Common corruptions (Hendrycks & Dietterich 2019, CIFAR-10-C) as batched tensor operations.

This package holds two corruption suites, each with its own registry (`SUITES`), applied through
`apply(name, x, severity, seed, suite)`: "cifar10-c", documented here, and "mnist-c", MNIST-C's 15
corruptions for grey digits (Mu & Gilmer 2019), documented in mnist_c/.

Each corruption maps a batch (N, C, H, W) in [0, 1], C = 1 or 3, and a severity 1..5 to a
corrupted batch of the same shape, dtype and device, in [0, 1]. Parameters are those of the
original CIFAR-10-C script (hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py). Parameters
in pixels are kept for other image sizes (a 28x28 digit gets CIFAR's radii); pixelate and the fog
and frost layers follow the image size.

Every random draw comes from the CPU generator the caller passes (`apply` seeds it), so the same
(name, severity, seed, x) gives the same images on any device. Draws are made per image for the
whole batch, so an image's corruption depends on its position in the batch; the corruptions without
randomness act on each image alone. Work is in floating point, without the original's 8-bit round
trips between library calls, except where spatter's shading depends on them.

`CIFAR10_C` lists the 15 benchmark corruptions, `EXTRAS` the 4 held-out ones; `CORRUPTIONS` holds
all 19 in that order. How each one relates to the original (tests/test_corruptions.py compares
against the original's libraries where they are installed):

- gaussian_noise, speckle_noise: as published.
- shot_noise: exact Poisson draws (torch.poisson), which need x on CPU: CUDA inputs go there and
  back.
- impulse_noise: skimage's salt & pepper, each channel value independently; the corrupted positions
  are drawn as geometric gaps between hits, the same distribution as one uniform per value.
- defocus_blur, gaussian_blur, zoom_blur, contrast: as published (to float precision).
- brightness, saturate: as published, computed in closed form instead of an HSV round trip.
- glass_blur: as published, including the order of the swaps (a pixel moved up or left is visited
  again and drifts further); the swaps are replayed on pixel indices for the whole batch. Skipped:
  the 8-bit truncation between the first blur and the swaps.
- motion_blur: ImageMagick's MotionBlurImage (called through Wand in the original) reimplemented:
  integer offsets along a ray, one-sided Gaussian weights, edge pixels repeated. Taps weighing
  less than 1e-5 of the first are dropped.
- snow: as published, with the motion blur above; skipped: the 8-bit PNG round trip of the layer.
- frost: APPROXIMATED. The original blends a random crop of one of five frost photographs. Here a
  Gaussian random field with a 1/f power spectrum stands in for the crop, with the RGB mean, the
  spread between crops and the spread within a crop of the chosen photograph (measured on 32x32
  crops of the copies imagecorruptions 1.1.2 ships). Ice-crystal shapes are not reproduced.
- fog: as published (the diamond-square plasma fractal, batched); the map side is the next power
  of two of the image side (32 for 28x28 and 32x32), cropped.
- elastic_transform: as published; cv2.warpAffine and scipy's map_coordinates are bilinear
  grid_sample calls with the matching border reflections.
- pixelate: PIL's BOX resizes as exact linear maps; skipped: PIL's rounding to 8 bits after each
  resize (at most 1/255).
- jpeg_compression: the real codec, libjpeg through torchvision's encode_jpeg/decode_jpeg, one image
  at a time on CPU (the one exception to batched tensor operations); bit-identical to the
  original's PIL round trip of the 8-bit image.
- spatter: mud (severities 4-5) as published. Water (1-3): cv2's Canny, histogram equalisation and
  filters reproduced with their 8-bit rounding; cv2's 5x5 chamfer distance transform replaced by
  the exact Euclidean distance it approximates.

Grey images (C = 1): corruptions that only add colour use its luminance (spatter's water and mud,
frost's texture); snow uses the image as its own luminance; saturate returns grey images unchanged
(they have no saturation; the HSV code would tint them red at severities 4-5 through skimage's
default hue 0 for grey pixels).
"""

from __future__ import annotations

import torch

from attacks.corruptions import blur, digital, noise, weather  # noqa: F401  (registers them)
from attacks.corruptions import mnist_c
from attacks.corruptions.base import CORRUPTIONS, Corruption, corruption
from bench.protocols import CIFAR10_C
from bench.protocols import CIFAR10_C_EXTRAS as EXTRAS

# Published order (the registry fills in module order); same dict object, reordered in place.
_registered = dict(CORRUPTIONS)
CORRUPTIONS.clear()
CORRUPTIONS.update({name: _registered.pop(name) for name in CIFAR10_C + EXTRAS})
CORRUPTIONS.update(_registered)

# Corruption suites by the name protocols give them (bench.protocols.CorruptionSuite): each its
# own registry, since names recur with other meanings (MNIST-C's fog is not CIFAR-10-C's).
SUITES: dict[str, dict[str, Corruption]] = {"cifar10-c": CORRUPTIONS,
                                            "mnist-c": mnist_c.CORRUPTIONS}

__all__ = ["CIFAR10_C", "CORRUPTIONS", "Corruption", "EXTRAS", "SUITES", "apply", "corruption",
           "mnist_c"]


def apply(name: str, x: torch.Tensor, severity: int, seed: int,
          suite: str = "cifar10-c") -> torch.Tensor:
    """Corrupt `x` with `suite`'s corruption `name` reproducibly: the same (suite, name,
    severity, seed, x) always gives the same output, on any device."""
    if suite not in SUITES:
        raise ValueError(f"unknown corruption suite {suite!r}; known: {', '.join(SUITES)}")
    registry = SUITES[suite]
    if name not in registry:
        raise KeyError(f"{suite} has no corruption {name!r}; it has: {', '.join(registry)}")
    gen = torch.Generator().manual_seed(seed * 1000 + severity)
    return registry[name](x, severity, gen)
