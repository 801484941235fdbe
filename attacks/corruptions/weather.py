"""Weather corruptions (snow, frost, fog) and spatter: a procedural layer blended over the image."""

from __future__ import annotations

import torch

from attacks.corruptions import filters
from attacks.corruptions.base import colour, corruption, luma, normal, randint, uniform


def plasma_fractal(n: int, size: int, decay: float, gen: torch.Generator,
                   crop: tuple[int, int] | None = None,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The original's diamond-square height map, for n maps at once: (n, size, size) in [0, 1],
    or its top-left (n, *crop) corner, still normalised over the whole map.

    Kept as published, including its noise amplitude of wibble^2 (it multiplies a U(-wibble,
    wibble) draw by wibble again). `size` must be a power of two. Each level is held as four
    contiguous grids (corners, square centres, and the two kinds of diamond centres), summed in
    place and interleaved into the next level's corners: the same draws and the same sums, in the
    same order, as filling one strided map, at a fraction of the memory traffic. The original
    sums in float64; float32 (same draws) differs by about 1e-7 and halves the traffic again.
    """
    corners = torch.zeros(n, 1, 1, dtype=dtype)
    step, wibble = size, 100.0

    def wibble_(a: torch.Tensor) -> torch.Tensor:  # a / 4 + wibble * U(-wibble, wibble)
        return a.div_(4).add_(uniform(gen, a.shape, a, -wibble, wibble).mul_(wibble))

    while True:
        squares = _add_rolled(corners.clone(), corners, 1)
        centres = wibble_(_add_rolled(squares, squares.clone(), 2))
        top = wibble_(_add_rolled(_add_rolled(centres.clone(), centres, 1, back=True)
                                  .add_(corners), corners, 2))
        left = wibble_(_add_rolled(_add_rolled(centres.clone(), centres, 2, back=True)
                                   .add_(corners), corners, 1))
        step //= 2
        wibble /= decay
        if step < 2:
            break
        corners = _interleave(corners, top, left, centres)
    grids = (corners, top, left, centres)
    low = torch.stack([g.amin((1, 2)) for g in grids]).amin(0)[:, None, None]
    high = torch.stack([g.amax((1, 2)) for g in grids]).amax(0)[:, None, None]
    if crop is not None:
        rows, cols = (-(-c // 2) for c in crop)
        grids = tuple(g[:, :rows, :cols] for g in grids)
    m = _interleave(*grids)
    if crop is not None:
        m = m[:, :crop[0], :crop[1]]
    return m.sub_(low).div_(high - low)


def _add_rolled(out: torch.Tensor, a: torch.Tensor, dim: int, back: bool = False
                ) -> torch.Tensor:
    """out += a.roll(1 if back else -1, dim), without the copy roll makes."""
    k = a.shape[dim]
    if k == 1:
        return out.add_(a)
    if back:  # out[i] += a[i - 1]
        out.narrow(dim, 1, k - 1).add_(a.narrow(dim, 0, k - 1))
        out.narrow(dim, 0, 1).add_(a.narrow(dim, k - 1, 1))
    else:  # out[i] += a[i + 1]
        out.narrow(dim, 0, k - 1).add_(a.narrow(dim, 1, k - 1))
        out.narrow(dim, k - 1, 1).add_(a.narrow(dim, 0, 1))
    return out


def _interleave(corners: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                centres: torch.Tensor) -> torch.Tensor:
    """(n, 2r, 2c) grid with corners at even rows and columns, `top` at (even, odd), `left` at
    (odd, even) and `centres` at (odd, odd)."""
    n, r, c = corners.shape
    out = corners.new_empty(n, r, 2, c, 2)
    out[:, :, 0, :, 0] = corners
    out[:, :, 0, :, 1] = top
    out[:, :, 1, :, 0] = left
    out[:, :, 1, :, 1] = centres
    return out.view(n, 2 * r, 2 * c)


@corruption
def fog(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    strength, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[severity - 1]
    n, _, h, w = x.shape
    size = 1 << (max(h, w, 2) - 1).bit_length()  # the original's 32 for 32x32, cropped to h, w
    fractal = plasma_fractal(n, size, decay, gen)[:, None, :h, :w].to(x)
    peak = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * fractal) * peak / (peak + strength)


def pink_noise(n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 1, h, w) Gaussian field with power spectrum ~ 1/f, zero mean and unit std per image."""
    white = torch.randn((n, 1, h, w), generator=gen, dtype=torch.float64)
    f = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
                   + torch.fft.rfftfreq(w, dtype=torch.float64)[None, :] ** 2)
    amplitude = torch.where(f > 0, f.clamp_min(1e-12) ** -0.5, 0.0)
    field = torch.fft.irfft2(torch.fft.rfft2(white) * amplitude, s=(h, w))
    field -= field.mean((2, 3), keepdim=True)
    return field / field.std((2, 3), keepdim=True).clamp_min(1e-12)


# Statistics of 32x32 crops of the original's frost photographs after its 0.2x resize, measured
# from the copies imagecorruptions 1.1.2 ships: per texture, the RGB mean, the spread of crop means
# between crops (RGB std) and the spread within a crop (RGB std). Rows follow the original's
# randint(5) choice of frost1-frost5; frost2.png and frost3.png are the same picture.
FROST_TEXTURES = torch.tensor([
    [[0.301, 0.581, 0.646], [0.067, 0.037, 0.030], [0.084, 0.051, 0.049]],  # frost1.png
    [[0.779, 0.796, 0.833], [0.032, 0.035, 0.037], [0.069, 0.071, 0.073]],  # frost2.png
    [[0.779, 0.796, 0.833], [0.032, 0.035, 0.037], [0.069, 0.071, 0.073]],  # frost3.png
    [[0.562, 0.621, 0.670], [0.039, 0.039, 0.042], [0.101, 0.101, 0.105]],  # frost4.jpg
    [[0.404, 0.448, 0.494], [0.064, 0.062, 0.058], [0.136, 0.135, 0.132]],  # frost5.jpg
], dtype=torch.float64)


def frost_texture(n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, h, w) procedural stand-in for a random crop of a random frost photograph."""
    stats = FROST_TEXTURES[randint(gen, 0, len(FROST_TEXTURES), (n,))]
    mean, between, within = (s[:, :, None, None] for s in stats.unbind(1))
    offset = torch.randn((n, 1, 1, 1), generator=gen, dtype=torch.float64)
    return (mean + between * offset + within * pink_noise(n, h, w, gen)).clamp(0, 1)


@corruption
def frost(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    image_weight, frost_weight = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4),
                                  (0.75, 0.45))[severity - 1]
    n, _, h, w = x.shape
    texture = frost_texture(n, h, w, gen).to(x)
    return image_weight * x + frost_weight * (texture if x.shape[1] == 3 else luma(texture))


@corruption
def snow(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    )[severity - 1]
    n, _, h, w = x.shape
    flakes = normal(gen, (n, 1, h, w), x, loc, scale)
    flakes = filters.resample(flakes, filters.clipped_zoom_matrix(h, zoom),
                              filters.clipped_zoom_matrix(w, zoom))
    flakes = torch.where(flakes < threshold, 0.0, flakes).clamp(0, 1)
    flakes = filters.motion_blur(flakes, radius, sigma, uniform(gen, (n,), low=-135, high=-45))
    whitened = torch.maximum(x, luma(x) * 1.5 + 0.5)
    return keep * x + (1 - keep) * whitened + flakes + flakes.flip(-2, -1)


WATER = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD = (63 / 255, 42 / 255, 20 / 255)
EMBOSS = torch.tensor([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=torch.float64)
ONES3 = torch.ones(3)


def water_relief(liquid: torch.Tensor) -> torch.Tensor:
    """The original's shading of water drops, on its 8-bit scale: distance to the drop edges,
    truncated at 20, blurred, histogram-equalised, embossed and blurred again (cv2 calls, whose
    uint8 truncation and rounding are kept), except that cv2's 5x5 chamfer distance is replaced
    by the exact Euclidean distance it approximates."""
    edges = filters.canny((liquid * 255).floor(), 50, 150)
    d = filters.distance_transform(edges, limit=20)
    d = box_mean3(d).floor()
    d = filters.equalize_hist(d)
    d = filters.filter2d(d, EMBOSS).round().clamp(0, 255)
    return box_mean3(d).round()


def box_mean3(x: torch.Tensor) -> torch.Tensor:
    """cv2.blur(x, (3, 3)): the exact integer sum, then one multiplication by 1/9 as cv2 does,
    so that the floor/round after it lands where cv2's does."""
    return filters.separable(x, ONES3, "reflect") * (1 / 9)


@corruption
def spatter(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    loc, scale, sigma, threshold, intensity, mud = (
        (0.62, 0.1, 0.7, 0.7, 0.5, False),
        (0.65, 0.1, 0.8, 0.7, 0.5, False),
        (0.65, 0.3, 1, 0.69, 0.5, False),
        (0.65, 0.1, 0.7, 0.69, 0.6, True),
        (0.65, 0.1, 0.5, 0.68, 0.6, True),
    )[severity - 1]
    n, _, h, w = x.shape
    liquid = filters.gaussian_blur(normal(gen, (n, 1, h, w), x, loc, scale), sigma)
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    if mud:
        m = filters.gaussian_blur((liquid > threshold).to(x), intensity)
        m = torch.where(m < 0.8, 0.0, m)
        return x * (1 - m) + colour(MUD, x) * m
    m = liquid * water_relief(liquid)
    m = m / m.amax((2, 3), keepdim=True).clamp_min(1e-12) * intensity
    return x + m * colour(WATER, x)
