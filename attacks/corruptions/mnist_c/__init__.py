"""MNIST-C (Mu & Gilmer 2019, "MNIST-C: A Robustness Benchmark for Computer Vision",
arXiv:1906.02337) as batched tensor operations.

Each corruption maps a batch of grey digits (N, 1, H, W) in [0, 1] to a corrupted batch of the same
shape, dtype and device, in [0, 1]. MNIST-C has one severity per corruption: the one each function
of its corruptions.py (google-research/mnist-c) uses by default, which is severity 1 here (the only
one). Pixel parameters are the original's (made for 28x28 digits); the image centre, the stripes
and the strokes' ends follow the image size and are the original's on 28x28.

Every random draw comes from the CPU generator the caller passes (`attacks.corruptions.apply`
seeds it), so the same (name, seed, x) gives the same images on any device. Draws are made per
image for the whole batch, so an image's corruption depends on its position in the batch; scale,
brightness, stripe and canny_edges have no randomness and act on each image alone. Work is in
floating point and outputs are not rounded to 8 bits (the original returns float32 on the 0-255
scale, some of it 8-bit).

How each one relates to the original (tests/test_mnist_c.py checks them against scipy and
scikit-image where those are installed):

- shot_noise: Poisson(3 x) / 3, exact draws (torch.poisson; CUDA inputs go to CPU and back).
- impulse_noise: skimage's salt & pepper, amount 0.17, drawn as in the CIFAR-10-C suite.
- glass_blur: as published, including what skimage's gaussian(multichannel=True) does to a 2-D
  image (the blur runs down the columns only), the 8-bit truncation between the first blur and
  the swaps, and the coin flip that makes half of the visits swap.
- motion_blur: ImageMagick's MotionBlurImage (Wand in the original) reimplemented, as in the
  CIFAR-10-C suite (attacks/corruptions/filters.py): integer offsets along a ray, one-sided
  Gaussian weights, edge pixels repeated; taps weighing less than 1e-5 of the first are dropped.
  Skipped: the 8-bit PNG round trip of the result.
- shear, scale, rotate: skimage's warp (bilinear, zeros outside) as grid_sample, to float
  precision. Shear uses the matrix skimage's AffineTransform(shear=s) built in 2019,
  [[1, -sin s], [0, cos s]]; scikit-image 0.21 and later build [[1, -tan s], [0, 1]] instead.
- translate: an exact 3-pixel shift along each axis with zero fill (the warp of a whole-pixel
  translation).
- brightness: as published, in closed form (x + 0.5, clipped; see pixels.py).
- stripe, dotted_line, zigzag: as published (zigzag's odd last vertex included).
- fog: as published: the diamond-square plasma fractal (shared with CIFAR-10-C's fog) on the
  original's 256 x 256 map, normalised over the whole map, cropped to the digit; summed in
  float32 instead of float64 (the maps differ by about 1e-7).
- spatter: as published (mud: blurred Gaussian noise, thresholded, blurred again; grey 63/255).
- canny_edges: skimage.feature.canny with its defaults, ported step by step (edges.py), equal
  to it pixel for pixel. scikit-image 0.20 moved its non-maximum suppression from numpy to
  Cython; the two can differ only where gradient components tie exactly.
"""

from __future__ import annotations

from attacks.corruptions.mnist_c import edges, geometry, pixels, strokes  # noqa: F401 (registers)
from attacks.corruptions.mnist_c.registry import CORRUPTIONS, corruption
from bench.protocols import MNIST_C

# Published order (the registry fills in module order); same dict object, reordered in place.
_registered = dict(CORRUPTIONS)
CORRUPTIONS.clear()
CORRUPTIONS.update({name: _registered.pop(name) for name in MNIST_C})
if _registered:
    raise RuntimeError(f"MNIST-C corruptions missing from bench.protocols.MNIST_C: "
                       f"{sorted(_registered)}")

__all__ = ["CORRUPTIONS", "MNIST_C", "corruption"]
