"""MNIST-C (Mu & Gilmer 2019): the output contract and seeding, and agreement with independent
implementations (scikit-image's warp, HSV conversions and Canny, scipy.ndimage's affine
transforms, shifts and Gaussian filters, imagecorruptions' port of ImageMagick's motion blur) and
with closed forms computed here. The protocol wiring and the checks on trained students are in
test_mnist_c_protocol.py."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from attacks import corruptions as corr
from attacks.corruptions import mnist_c
from attacks.corruptions.blur import glass_permutation
from attacks.corruptions.weather import plasma_fractal
from bench.protocols import MNIST_C

NAMES = list(MNIST_C)
DETERMINISTIC = {"scale", "brightness", "stripe", "canny_edges"}
RANDOM = [n for n in NAMES if n not in DETERMINISTIC]


def apply(name: str, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return corr.apply(name, x, 1, seed, suite="mnist-c")


def first_draws(seed: int = 0) -> torch.Generator:
    """The generator `apply` hands a corruption: tests that replay its draws start from it."""
    return torch.Generator().manual_seed(seed * 1000 + 1)


@pytest.fixture(scope="module")
def digits(split) -> torch.Tensor:
    return split.x_test[:32]  # real MNIST digits, (32, 1, 28, 28) float32


def test_registry_holds_the_15_published_corruptions_in_order():
    assert list(mnist_c.CORRUPTIONS) == NAMES and len(NAMES) == 15
    assert corr.SUITES == {"cifar10-c": corr.CORRUPTIONS, "mnist-c": mnist_c.CORRUPTIONS}
    shared = set(NAMES) & set(corr.CORRUPTIONS)
    assert shared == {"shot_noise", "impulse_noise", "glass_blur", "motion_blur", "fog",
                      "spatter", "brightness"}
    assert all(mnist_c.CORRUPTIONS[n] is not corr.CORRUPTIONS[n] for n in shared)


@pytest.mark.parametrize("name", NAMES)
def test_output_contract(name, digits):
    out = apply(name, digits)
    assert out.shape == digits.shape and out.dtype == digits.dtype
    assert out.device == digits.device
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    for dtype in (torch.float64, torch.float16):
        assert apply(name, digits[:2].to(dtype)).dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_changes_the_images_by_a_sensible_amount(name, digits):
    # A near-identity changes little; a corruption that wipes the digit out (an inverted image
    # changes by about 0.75 on average) changes too much.
    change = (apply(name, digits) - digits).abs()
    assert 0.015 < change.mean().item() < 0.6, change.mean().item()
    assert (change > 1 / 255).float().mean().item() > 0.02


@pytest.mark.parametrize("name", NAMES)
def test_seeded_and_reproducible(name, digits):
    first = apply(name, digits, seed=0)
    assert torch.equal(first, apply(name, digits, seed=0))
    if name in DETERMINISTIC:
        assert torch.equal(first, apply(name, digits, seed=1))
    else:
        assert not torch.equal(first, apply(name, digits, seed=1))


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_ones_act_on_each_image_alone(name, digits):
    whole = apply(name, digits)
    one_by_one = torch.cat([apply(name, digits[i:i + 1]) for i in range(len(digits))])
    torch.testing.assert_close(whole, one_by_one, atol=1e-6, rtol=0)


def test_bad_input_is_rejected_with_a_clear_error(digits):
    with pytest.raises(ValueError, match=r"expected \(N, 1, H, W\)"):
        apply("fog", digits.expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="MNIST-C: severity must be 1, not 2"):
        corr.apply("fog", digits, 2, seed=0, suite="mnist-c")
    with pytest.raises(KeyError, match="mnist-c has no corruption 'snow'"):
        apply("snow", digits)
    with pytest.raises(KeyError, match="cifar10-c has no corruption 'zigzag'"):
        corr.apply("zigzag", digits, 1, seed=0)
    with pytest.raises(ValueError, match="unknown corruption suite 'mnist'"):
        corr.apply("fog", digits, 1, seed=0, suite="mnist")


# --- noise -------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0.25, 0.5])
def test_shot_noise_is_poisson_of_three_x_over_three(level):
    stats = pytest.importorskip("scipy.stats")
    x = torch.full((64, 1, 28, 28), level)  # 50k values
    out = apply("shot_noise", x)
    counts = (out * 3).round()
    assert torch.allclose(out * 3, counts, atol=1e-5)  # whole counts / 3, clipped at 3 / 3 = 1
    pmf = stats.poisson.pmf(np.arange(3), 3 * level)
    expected = np.append(pmf, 1 - pmf.sum())  # P(0), P(1), P(2), P(>= 3): clipped to 1
    observed = np.array([(counts == k).double().mean().item() for k in range(4)])
    se = np.sqrt(expected * (1 - expected) / out.numel())
    assert np.all(np.abs(observed - expected) < 5 * se), (observed, expected)


def test_impulse_noise_flips_17_percent_half_to_salt():
    x = torch.full((64, 1, 28, 28), 0.5)
    out = apply("impulse_noise", x)
    salt, pepper = (out == 1).double().mean().item(), (out == 0).double().mean().item()
    assert (out != x).double().mean().item() == pytest.approx(salt + pepper)
    se = math.sqrt(0.17 * 0.83 / out.numel())
    assert abs(salt + pepper - 0.17) < 4 * se
    assert abs(salt - pepper) < 4 * math.sqrt(0.17 / out.numel())


# --- geometry: scipy.ndimage and skimage.transform.warp ---------------------------------------
def inverse_maps(name: str) -> list[np.ndarray]:
    """The 2x2 matrices of MNIST-C's AffineTransform for each drawn direction, written out:
    shear as AffineTransform(shear=s) built it when MNIST-C was made (scikit-image < 0.21)."""
    if name == "shear":
        return [np.array([[1, -math.sin(s)], [0, math.cos(s)]]) for s in (0.4, -0.4)]
    if name == "rotate":
        return [np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
                for t in (0.4, -0.4)]
    return [np.eye(2) / 0.7]  # scale


@pytest.mark.parametrize("name", ["shear", "rotate", "scale"])
def test_affine_ones_match_scipy_and_skimage_warps(name, digits):
    from scipy import ndimage

    transform = pytest.importorskip("skimage.transform")
    x = digits.double()
    out = apply(name, x)[:, 0].numpy()
    centre = np.array([13.5, 13.5])
    chosen = []
    for i, img in enumerate(x[:, 0].numpy()):
        errors = []
        for a in inverse_maps(name):
            shift = centre - a @ centre  # the original's 13.5 * (1 - a1 - a2), ...
            params = np.eye(3)
            params[:2, :2], params[:2, 2] = a, shift
            sk = transform.warp(img, inverse_map=transform.AffineTransform(matrix=params))
            # scipy indexes (row, column); grid-constant interpolates with zeros past the edge,
            # as skimage's constant mode does.
            sc = ndimage.affine_transform(img, a[::-1, ::-1], offset=shift[::-1], order=1,
                                          mode="grid-constant", cval=0.0)
            errors.append(max(np.abs(out[i] - sk).max(), np.abs(out[i] - sc).max()))
        chosen.append(int(np.argmin(errors)))
        assert min(errors) < 1e-9, (i, errors)
    assert len(set(chosen)) == len(inverse_maps(name))  # both directions are drawn


def test_translate_shifts_3_pixels_each_way_like_scipy(digits):
    from scipy import ndimage

    out = apply("translate", digits)[:, 0].numpy()
    moves = [(dx, dy) for dx in (-3, 3) for dy in (-3, 3)]
    chosen = []
    for i, img in enumerate(digits[:, 0].numpy()):
        # The inverse map (c, r) -> (c + dx, r + dy) moves the content by (-dx, -dy).
        errors = [np.abs(out[i] - ndimage.shift(img, (-dy, -dx), order=0, cval=0)).max()
                  for dx, dy in moves]
        chosen.append(int(np.argmin(errors)))
        assert min(errors) == 0
    assert sorted(set(chosen)) == [0, 1, 2, 3]


# --- pixel values ------------------------------------------------------------------------------
def test_brightness_matches_skimage_hsv_round_trip(digits):
    color = pytest.importorskip("skimage.color")
    x = digits.double()
    ours = apply("brightness", x)[:, 0].numpy()
    for i, img in enumerate(x[:, 0].numpy()):
        hsv = color.rgb2hsv(color.gray2rgb(img))
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] + 0.5, 0, 1)
        expected = np.clip(color.rgb2gray(color.hsv2rgb(hsv)), 0, 1)
        assert np.abs(ours[i] - expected).max() < 1e-12


def test_stripe_inverts_the_outer_quarters(digits):
    expected = digits.clone()
    expected[..., :7] = 1 - digits[..., :7]
    expected[..., 21:] = 1 - digits[..., 21:]
    assert torch.equal(apply("stripe", digits), expected)


def test_glass_blur_blurs_down_columns_truncates_and_swaps(digits):
    from scipy import ndimage

    x = digits.double()
    n = len(x)

    def column_blur(a: np.ndarray) -> np.ndarray:  # what gaussian(multichannel=True) does in 2-D
        return ndimage.gaussian_filter1d(a, 0.7, axis=-2, mode="nearest")

    first = np.floor(column_blur(x[:, 0].numpy()) * 255) / 255  # np.uint8(... * 255)
    index = glass_permutation(n, 28, 28, 1, 2, first_draws(), p_swap=0.5).numpy()
    swapped = np.take_along_axis(first.reshape(n, -1), index, 1).reshape(n, 28, 28)
    expected = np.clip(column_blur(swapped), 0, 1)
    assert np.abs(apply("glass_blur", x)[:, 0].numpy() - expected).max() < 1e-9


def test_glass_permutation_replays_swaps_made_with_probability_one_half():
    n, h, w = 3, 9, 8
    perm = glass_permutation(n, h, w, 1, 2, torch.Generator().manual_seed(5), p_swap=0.5)
    gen = torch.Generator().manual_seed(5)
    positions = [(r, c) for r in range(h - 1, 1, -1) for c in range(w - 1, 1, -1)]
    passes = []
    for _ in range(2):
        d = torch.randint(-1, 1, (len(positions), 2, n), generator=gen)
        passes.append((d, torch.rand(len(positions), 1, n, generator=gen) < 0.5))
    swaps = 0
    for i in range(n):
        img = [[r * w + c for c in range(w)] for r in range(h)]
        for d, coin in passes:
            for k, (r, c) in enumerate(positions):
                if coin[k, 0, i]:
                    dx, dy = int(d[k, 0, i]), int(d[k, 1, i])
                    img[r][c], img[r + dy][c + dx] = img[r + dy][c + dx], img[r][c]
                    swaps += 1
        assert perm[i].tolist() == [v for row in img for v in row]
    assert 0.3 < swaps / (2 * n * len(positions)) < 0.7


def test_motion_blur_matches_imagecorruptions_port_of_imagemagick(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ic = pytest.importorskip("imagecorruptions.corruptions")
    x = digits[:8].double()
    angles = torch.rand(8, generator=first_draws()) * 90 - 45  # the corruption's only draw
    ours = apply("motion_blur", x)[:, 0].numpy()
    for i in range(8):
        expected = ic._motion_blur(x[i, 0].numpy()[:, :, None], 10, 3, float(angles[i]))
        assert np.abs(ours[i] - np.clip(expected.reshape(28, 28), 0, 1)).max() < 1e-4


def test_fog_adds_a_crop_of_a_256_map_and_scales_by_the_peak(digits):
    x = digits.double()
    peak = x.amax((1, 2, 3), keepdim=True)
    layer = (apply("fog", x) * (peak + 3) / peak - x) / 3  # out = (x + 3 f) peak / (peak + 3)
    assert layer.min() > -1e-9 and layer.max() < 1 + 1e-9
    # The map is normalised over all 256 x 256 values before the 28 x 28 crop: a crop rarely
    # spans [0, 1]. A map of the digit's own size (CIFAR-10-C's 32) would span nearly all of it.
    spans = layer.amax((1, 2, 3)) - layer.amin((1, 2, 3))
    assert spans.mean() < 0.6
    small = plasma_fractal(32, 32, 1.4, torch.Generator().manual_seed(0))[:, :28, :28]
    assert (small.amax((1, 2)) - small.amin((1, 2))).mean() > 0.9
    full = plasma_fractal(4, 256, 1.4, torch.Generator().manual_seed(3))
    crop = plasma_fractal(4, 256, 1.4, torch.Generator().manual_seed(3), crop=(28, 28))
    assert torch.equal(crop, full[:, :28, :28])
    assert torch.equal(full.amin((1, 2)), torch.zeros(4)) and torch.equal(full.amax((1, 2)),
                                                                          torch.ones(4))


def test_spatter_paints_grey_mud_as_often_as_the_published_recipe():
    from scipy import ndimage

    zeros, ones = torch.zeros(400, 1, 28, 28), torch.ones(400, 1, 28, 28)
    on_black, on_white = apply("spatter", zeros), apply("spatter", ones)  # same draws
    mud = on_black > 0
    assert torch.equal(mud, on_white < 1)
    m = on_black[mud] / (63 / 255)  # x (1 - m) + 63/255 m with m in [0.8, 1]
    assert m.min() >= 0.8 - 1e-6 and m.max() <= 1 + 1e-6
    torch.testing.assert_close(on_white[mud], 1 - m * (1 - 63 / 255))
    # The published recipe in numpy/scipy (skimage's gaussian is scipy's, border "nearest").
    rng = np.random.default_rng(0)
    fractions = []
    for _ in range(400):
        liquid = ndimage.gaussian_filter(rng.normal(0.65, 0.3, (28, 28)), 1, mode="nearest")
        liquid[liquid < 0.65] = 0
        mask = ndimage.gaussian_filter((liquid > 0.65).astype(float), 1.5, mode="nearest")
        fractions.append((mask >= 0.8).mean())
    assert abs(mud.double().mean().item() - np.mean(fractions)) < 0.02


# --- strokes -------------------------------------------------------------------------------------
def dotted_line_by_hand(r0: int, r1: int) -> np.ndarray:
    """The paper's dotted line on a blank 28x28 image, from its description: the line from
    (column 0, row r0) to (27, r1); intensity 1 + ln(1 - d / 2.3) at vertical distance d,
    clipped; 2-pixel dashes starting with a gap; nothing in the last column."""
    c = np.arange(28.0)
    f = r0 + (r1 - r0) * c / 27
    d = np.minimum(np.abs(np.arange(28.0)[:, None] - f), 2.3 - 1e-10)
    line = np.clip(1 + np.log(1 - d / 2.3), 0, 1)
    line[:, (c // 2) % 2 == 0] = 0
    line[:, 27] = 0
    return line


def test_dotted_line_is_the_published_line_for_some_drawn_rows():
    out = apply("dotted_line", torch.zeros(12, 1, 28, 28, dtype=torch.float64))[:, 0].numpy()
    candidates = {(a, b): dotted_line_by_hand(a, b) for a in range(27) for b in range(27)}
    for img in out:
        assert min(np.abs(img - line).max() for line in candidates.values()) < 1e-12


def test_dotted_line_and_zigzag_add_to_the_digit(digits):
    for name in ("dotted_line", "zigzag"):
        stroke = apply(name, torch.zeros_like(digits))
        torch.testing.assert_close(apply(name, digits), (digits + stroke).clamp(0, 1))


def test_zigzag_zigzags_across_the_middle():
    out = apply("zigzag", torch.zeros(32, 1, 28, 28, dtype=torch.float64))[:, 0]
    cols = out.sum(1) > 0
    assert not cols[:, :1].any() and not cols[:, 26:].any()  # from column 2 to about 25
    inside = cols[:, 3:24].all(1)  # strokes starting near the top or bottom leave the image
    assert inside.sum() >= 16
    rows = torch.arange(28.0)[:, None]
    for img in out[inside]:
        mass = img[:, 3:24]
        centre = (mass * rows).sum(0) / mass.sum(0)  # the stroke's row in each column
        t = torch.arange(21.0)
        slope, intercept = np.polyfit(t.numpy(), centre.numpy(), 1)
        residual = centre - (slope * t + intercept)
        # Vertices 2 pixels either side of the run, 4 pixels apart: the residual swings by
        # about 2 and changes sign every 4 columns.
        assert 1 < residual.abs().max() < 3
        flips = (torch.sign(residual[1:]) != torch.sign(residual[:-1])).sum()
        assert flips >= 4


# --- canny edges: scikit-image -----------------------------------------------------------------
def test_canny_edges_equal_skimage_canny(digits):
    feature = pytest.importorskip("skimage.feature")
    noise = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    inputs = [digits, apply("shot_noise", digits), apply("translate", digits),
              apply("zigzag", digits), noise]  # ties, edges at the border, texture
    for x in inputs:
        x = x.double()
        ours = apply("canny_edges", x)[:, 0].numpy()
        expected = np.stack([feature.canny(img) for img in x[:, 0].numpy()])
        assert np.array_equal(ours, expected.astype(np.float64))
        assert expected.any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_images_on_cuda(digits):
    for name in NAMES:
        cpu = apply(name, digits)
        gpu = apply(name, digits.cuda())
        assert gpu.device.type == "cuda"
        # Same draws; the arithmetic differs in the last bits, which can tip a threshold
        # (spatter's mask, glass blur's 8-bit floor, Canny's ties) on a few values.
        off = (gpu.cpu() - cpu).abs() > 1e-4
        assert off.float().mean().item() < 1e-3, name
