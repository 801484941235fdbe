"""The corruption suite: output contract, seeding, severity ordering, noise statistics, and
agreement with the libraries the original CIFAR-10-C script called, where they are installed."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from attacks import corruptions as corr
from attacks.corruptions import blur, filters

NAMES = list(corr.CORRUPTIONS)
DETERMINISTIC = {"defocus_blur", "gaussian_blur", "zoom_blur", "brightness", "contrast",
                 "saturate", "pixelate", "jpeg_compression"}
RANDOM = [n for n in NAMES if n not in DETERMINISTIC]


def smooth_texture(n: int, seed: int = 1) -> torch.Tensor:
    """(n, 3, 32, 32) colour images: bicubic-upsampled noise, stretched to [0, 1] per image."""
    z = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    x = torch.nn.functional.interpolate(z, size=32, mode="bicubic", align_corners=False)
    lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo)


@pytest.fixture(scope="module")
def gray(split) -> torch.Tensor:
    return split.x_test[:16]  # real MNIST digits, (16, 1, 28, 28)


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    return smooth_texture(16)


@pytest.fixture(params=["gray", "rgb"])
def images(request, gray, rgb) -> torch.Tensor:
    return {"gray": gray, "rgb": rgb}[request.param]


def run(name: str, x: torch.Tensor, severity: int, seed: int = 0) -> torch.Tensor:
    """The corruption with a freshly seeded generator: the same draws at every severity."""
    return corr.CORRUPTIONS[name](x, severity, torch.Generator().manual_seed(seed))


def test_registry_holds_the_19_published_corruptions_in_order():
    assert len(corr.CIFAR10_C) == 15 and len(corr.EXTRAS) == 4
    assert NAMES == [*corr.CIFAR10_C, *corr.EXTRAS]


@pytest.mark.parametrize("name", NAMES)
def test_output_contract(name, images):
    for severity in range(1, 6):
        out = corr.apply(name, images, severity, seed=0)
        assert out.shape == images.shape and out.dtype == images.dtype
        assert out.device == images.device
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_dtype_is_kept(dtype, rgb):
    for name in NAMES:
        assert corr.apply(name, rgb[:2].to(dtype), 3, seed=0).dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_seeded_and_reproducible(name, images):
    first = corr.apply(name, images, 3, seed=0)
    assert torch.equal(first, corr.apply(name, images, 3, seed=0))
    other_seed = corr.apply(name, images, 3, seed=1)
    if name in DETERMINISTIC:
        assert torch.equal(first, other_seed)
    else:
        assert not torch.equal(first, other_seed)


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_ones_act_on_each_image_alone(name, images):
    whole = corr.apply(name, images, 4, seed=0)
    pieces = torch.cat([corr.apply(name, part, 4, seed=0) for part in images.split(5)])
    torch.testing.assert_close(whole, pieces, atol=1e-6, rtol=0)


def test_apply_rejects_bad_input(rgb):
    for severity in (0, 6):
        with pytest.raises(ValueError, match="severity"):
            corr.apply("fog", rgb, severity, seed=0)
    with pytest.raises(ValueError, match="expected"):
        corr.apply("fog", rgb[0], 1, seed=0)
    with pytest.raises(KeyError):
        corr.apply("rain", rgb, 1, seed=0)


def test_saturate_leaves_grey_images_alone(gray):
    for severity in range(1, 6):
        assert torch.equal(corr.apply("saturate", gray, severity, seed=0), gray)


# --- severity ordering -------------------------------------------------------------------------
# Severities as chains of groups: each group's statistic must reach every earlier group's. The
# default chain is 1 < 2 < 3 < 4 < 5; where the published parameters are not monotone in the
# statistic, the chains say what they do order.
ORDER = {
    # Blur sigma .05/.25/.4/.25/.4 with 1/1/1/2/2 swap passes: more blur hides swapped pixels, so
    # within one pass the change is not monotone; the second pass always adds change.
    "glass_blur": [((1, 2, 3), (4, 5))],
    # Severities 1-3 are water (additive, pale), 4-5 mud (opaque, smaller): two separate scales.
    "spatter": [((1,), (2,), (3,)), ((4,), (5,))],
    # Saturation x0.3, x0.1, then x1.5, x2 (+0.1), x2.5 (+0.2): desaturate, then oversaturate.
    "saturate": [((1,), (2,)), ((3,), (4,), (5,))],
}
FULL_CHAIN = [((1,), (2,), (3,), (4,), (5,))]


def mean_abs_change(name: str, x: torch.Tensor) -> list[float]:
    return [(run(name, x, s) - x).abs().mean().item() for s in range(1, 6)]


def frost_contrast_lost(x: torch.Tensor) -> list[float]:
    # Frost's image weight falls (1, 1, .9, .85, .75) while its frost weight rises (.2 ... .45):
    # on bright images the mean change peaks at severity 3. What grows is the part of a black/white
    # difference the frost washes out (same texture at every severity: same seed).
    black, white = torch.zeros_like(x), torch.ones_like(x)
    return [1 - (run("frost", white, s) - run("frost", black, s)).mean().item()
            for s in range(1, 6)]


def elastic_non_affine_displacement(x: torch.Tensor, border: int = 9) -> list[float]:
    # CIFAR's elastic_transform shrinks its random affine part with severity (+-2.56 px at 1, +-0.96
    # at 5) while the elastic part grows (0 at 1): the mean change falls. Warping coordinate ramps
    # gives the displacement field; what is left after the best affine fit is the elastic part.
    n, c, h, w = x.shape
    col, row = torch.linspace(0, 1, w).expand(h, w), torch.linspace(0, 1, h)[:, None].expand(h, w)
    ramps = torch.stack([col, row, torch.full((h, w), 0.5)][:c]).expand(n, c, h, w).clone()
    k = min(c, 2)
    scale = torch.tensor([w - 1.0, h - 1.0])[:k].view(1, k, 1)
    py, px = torch.meshgrid(torch.arange(border, h - border).float(),
                            torch.arange(border, w - border).float(), indexing="ij")
    design = torch.stack([px.flatten(), py.flatten(), torch.ones(px.numel())], 1).expand(n, -1, -1)
    stats = []
    for s in range(1, 6):
        moved = run("elastic_transform", ramps, s) - ramps
        d = (moved[:, :k, border:-border, border:-border].flatten(2) * scale).transpose(1, 2)
        fit = torch.linalg.lstsq(design, d).solution
        stats.append((d - design @ fit).pow(2).mean().sqrt().item())
    return stats


def pixelate_change_on_white_noise(x: torch.Tensor) -> list[float]:
    # Box-resizing to 28 or to 27 pixels aliases smooth textures differently, so the mean change
    # is not monotone on every texture; on white noise (all frequencies) the resolution loss is.
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
    return [(run("pixelate", noise, s) - noise).pow(2).mean().sqrt().item() for s in range(1, 6)]


SPECIAL_STATISTIC = {
    "frost": frost_contrast_lost,
    "elastic_transform": elastic_non_affine_displacement,
    "pixelate": pixelate_change_on_white_noise,
}


@pytest.mark.parametrize("name", NAMES)
def test_severity_ordering(name, images):
    stat = SPECIAL_STATISTIC.get(name, lambda x: mean_abs_change(name, x))(images)
    for chain in ORDER.get(name, FULL_CHAIN):
        for lower, higher in zip(chain, chain[1:]):
            # 1e-6: motion blur's severities 3 and 4 differ only in taps weighing < 1e-5.
            assert min(stat[s - 1] for s in higher) >= max(stat[s - 1] for s in lower) - 1e-6, (
                name, [round(v, 5) for v in stat])


# --- noise statistics --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mid_grey() -> torch.Tensor:
    return torch.full((32, 3, 32, 32), 0.5)  # 98k values: standard errors well under 1 %


@pytest.mark.parametrize("severity", range(1, 6))
def test_gaussian_noise_has_the_published_sigma(severity, mid_grey):
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    d = corr.apply("gaussian_noise", mid_grey, severity, seed=0) - mid_grey
    assert abs(d.mean().item()) < 0.01 * sigma * 5
    assert d.std().item() == pytest.approx(sigma, rel=0.02)


@pytest.mark.parametrize("severity", range(1, 6))
def test_shot_noise_is_poisson_with_the_published_rate(severity, mid_grey):
    lam = (500, 250, 100, 75, 50)[severity - 1]
    out = corr.apply("shot_noise", mid_grey, severity, seed=0)
    assert out.mean().item() == pytest.approx(0.5, abs=0.003)
    assert out.var().item() == pytest.approx(0.5 / lam, rel=0.03)  # Poisson: variance = mean
    assert torch.allclose(out * lam, (out * lam).round(), atol=1e-3)  # whole counts / lam


@pytest.mark.parametrize("severity", range(1, 6))
def test_impulse_noise_flips_the_published_fraction(severity, mid_grey):
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    out = corr.apply("impulse_noise", mid_grey, severity, seed=0)
    salt, pepper = (out == 1).float().mean().item(), (out == 0).float().mean().item()
    assert (out != mid_grey).float().mean().item() == pytest.approx(salt + pepper)
    se = (amount / out.numel()) ** 0.5  # binomial standard error (amount << 1)
    assert abs(salt + pepper - amount) < 4 * se
    assert abs(salt - pepper) < 4 * se


@pytest.mark.parametrize("severity", range(1, 6))
def test_speckle_noise_is_multiplicative_with_the_published_sigma(severity, mid_grey):
    s = (0.06, 0.10, 0.12, 0.16, 0.20)[severity - 1]
    x = mid_grey.clone()
    x[:16] = 0.25  # two intensities: the noise must scale with the pixel
    rel = (corr.apply("speckle_noise", x, severity, seed=0) - x) / x
    assert rel[:16].std().item() == pytest.approx(s, rel=0.03)
    assert rel[16:].std().item() == pytest.approx(s, rel=0.03)


# --- agreement with the original script's libraries ----------------------------------------------
def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_jpeg_matches_a_pil_round_trip(severity, rgb):
    from PIL import Image

    quality = (80, 65, 58, 50, 40)[severity - 1]
    expected = []
    for img in to_uint8_hwc(rgb[:4]):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        expected.append(np.asarray(Image.open(buf)))
    ours = to_uint8_hwc(corr.apply("jpeg_compression", rgb[:4], severity, seed=0))
    assert np.array_equal(ours, np.stack(expected))


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_pixelate_matches_pil_box_resizes(severity, rgb):
    from PIL import Image

    small = int(32 * (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1])
    expected = np.stack([
        np.asarray(Image.fromarray(img).resize((small, small), Image.BOX)
                   .resize((32, 32), Image.BOX))
        for img in to_uint8_hwc(rgb[:4])])
    x = torch.from_numpy(to_uint8_hwc(rgb[:4])).permute(0, 3, 1, 2).float() / 255
    ours = corr.apply("pixelate", x, severity, seed=0).permute(0, 2, 3, 1).numpy() * 255
    assert np.abs(ours - expected).max() <= 1.001  # PIL rounds to 8 bits after each resize


def test_gaussian_blur_matches_scipy(rgb):
    from scipy.ndimage import gaussian_filter

    for severity, sigma in [(1, 0.4), (5, 1.0)]:
        expected = gaussian_filter(rgb.double().numpy(), sigma=(0, 0, sigma, sigma), mode="nearest")
        ours = corr.apply("gaussian_blur", rgb.double(), severity, seed=0).numpy()
        assert np.abs(ours - np.clip(expected, 0, 1)).max() < 1e-9


def test_zoom_blur_matches_scipy_clipped_zooms(rgb):
    from scipy.ndimage import zoom

    x = rgb[:2].double().numpy()
    total = x.copy()
    for k in range(7):  # severity 1: zooms 1.00 ... 1.06, as numpy's arange makes them
        z = 1 + k * ((1 + 0.01) - 1)
        crop = int(np.ceil(32 / z))
        top = (32 - crop) // 2
        zoomed = zoom(x[:, :, top:top + crop, top:top + crop], (1, 1, z, z), order=1)
        trim = (zoomed.shape[-1] - 32) // 2
        total += zoomed[:, :, trim:trim + 32, trim:trim + 32]
    ours = corr.apply("zoom_blur", rgb[:2].double(), 1, seed=0).numpy()
    assert np.abs(ours - total / 8).max() < 1e-9


def test_distance_transform_matches_scipy():
    from scipy.ndimage import distance_transform_edt

    mask = torch.rand(4, 1, 28, 32, generator=torch.Generator().manual_seed(0)) < 0.02
    expected = np.stack([np.minimum(distance_transform_edt(~m), 20) for m in mask.numpy()])
    assert np.abs(filters.distance_transform(mask, limit=20).numpy() - expected).max() < 1e-5


def test_glass_blur_replays_the_sequential_swaps():
    n, h, w = 3, 9, 8
    perm = blur.glass_permutation(n, h, w, 1, 2, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    positions = [(r, c) for r in range(h - 1, 1, -1) for c in range(w - 1, 1, -1)]
    draws = [torch.randint(-1, 1, (len(positions), 2, n), generator=gen) for _ in range(2)]
    for i in range(n):
        img = [[r * w + c for c in range(w)] for r in range(h)]
        for d in draws:
            for k, (r, c) in enumerate(positions):
                dx, dy = int(d[k, 0, i]), int(d[k, 1, i])
                img[r][c], img[r + dy][c + dx] = img[r + dy][c + dx], img[r][c]
        assert perm[i].tolist() == [v for row in img for v in row]


@pytest.mark.parametrize("severity", [1, 5])
def test_brightness_and_saturate_match_skimage_hsv(severity, rgb):
    color = pytest.importorskip("skimage.color")
    x = rgb[:4].double().clone()
    x[:, :, :4, :4] = 0.5  # grey pixels: saturate's hue-0 case
    hsv = color.rgb2hsv(x.permute(0, 2, 3, 1).numpy(), channel_axis=-1)
    v_shift = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    s_scale, s_shift = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    for name, channel, change in [("brightness", 2, lambda v: v + v_shift),
                                  ("saturate", 1, lambda s: s * s_scale + s_shift)]:
        changed = hsv.copy()
        changed[..., channel] = np.clip(change(changed[..., channel]), 0, 1)
        expected = np.clip(color.hsv2rgb(changed, channel_axis=-1), 0, 1)
        ours = corr.apply(name, x, severity, seed=0).permute(0, 2, 3, 1).numpy()
        assert np.abs(ours - expected).max() < 1e-9, name


def test_defocus_kernel_and_canny_match_opencv(rgb):
    cv2 = pytest.importorskip("cv2")
    # Defocus at severity 4: cv2's anti-aliased disk (radius 1, alias blur 0.2), reflected border.
    t = np.arange(-8, 9)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= 1).astype(np.float32)
    disk = cv2.GaussianBlur(disk / disk.sum(), (3, 3), 0.2)
    img = rgb[0].permute(1, 2, 0).numpy().astype(np.float32)
    expected = np.clip(cv2.filter2D(img, -1, disk), 0, 1)
    ours = corr.apply("defocus_blur", rgb[:1], 4, seed=0)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - expected).max() < 1e-5
    # Canny on thresholded blobs, the input spatter gives it.
    blobs = (rgb[:4, :1] * 255).floor()
    blobs[blobs < 150] = 0
    for i in range(4):
        ref = cv2.Canny(blobs[i, 0].numpy().astype(np.uint8), 50, 150) > 0
        assert np.array_equal(filters.canny(blobs[i:i + 1], 50, 150)[0, 0].numpy(), ref)
    levels = (rgb[:4, :1] * 20).floor()
    for i in range(4):
        ref = cv2.equalizeHist(levels[i, 0].numpy().astype(np.uint8))
        assert np.array_equal(filters.equalize_hist(levels[i:i + 1])[0, 0].numpy(), ref)


@pytest.mark.parametrize("severity", [1, 5])
def test_motion_blur_matches_imagecorruptions_port_of_imagemagick(severity, rgb):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ic = pytest.importorskip("imagecorruptions.corruptions")
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity - 1]
    img = rgb[0].permute(1, 2, 0).double().numpy()
    for angle in (-45.0, -12.3, 30.0, 44.9):
        expected = ic._motion_blur(img, radius, sigma, angle)
        ours = filters.motion_blur(rgb[:1].double(), radius, sigma, torch.tensor([angle]))
        assert np.abs(ours[0].permute(1, 2, 0).numpy() - expected).max() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_images_on_cuda(rgb):
    for name in NAMES:
        cpu = corr.apply(name, rgb, 3, seed=0)
        gpu = corr.apply(name, rgb.cuda(), 3, seed=0)
        assert gpu.device.type == "cuda"
        # Same draws; the arithmetic differs in the last bits, which can move one of spatter's
        # 8-bit floors (and so its shading around that pixel): allow a few such values.
        off = (gpu.cpu() - cpu).abs() > 1e-4
        assert off.float().mean().item() < 1e-3, name
