"""Digital corruptions: colour changes, geometric warps, resolution and compression losses."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from attacks.corruptions import filters
from attacks.corruptions.base import corruption, uniform


@corruption
def brightness(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # The original adds c to V in HSV. With H and S fixed every channel is proportional to V, so
    # this scales the pixel by V'/V; black (V = 0, S = 0) becomes grey V'.
    c = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    v = x.amax(1, keepdim=True)
    v_new = (v + c).clamp(max=1)
    scale = torch.where(v > 0, v_new / v.clamp_min(1e-12), 0.0)
    return torch.addcmul(torch.where(v > 0, 0.0, v_new), x, scale)


@corruption
def contrast(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    means = x.mean((2, 3), keepdim=True)  # per image and channel, as in the original
    return torch.add(means * (1 - c), x, alpha=c)  # (x - means) * c + means


@corruption
def saturate(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # S' = clip(S * a + b) in HSV with H and V fixed: every channel sits at V - V * S * f(H), so
    # it moves linearly in S. Grey pixels (S = 0) have skimage's hue 0, so b > 0 tints them red;
    # grey images have no hue at all and are left unchanged.
    scale, shift = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    if x.shape[1] == 1:
        return x.clone()
    v = x.amax(1, keepdim=True)
    s = (v - x.amin(1, keepdim=True)).div_(v.clamp_min(1e-12))
    s_new = (s * scale + shift).clamp_(0, 1)
    # v - (v - x) s'/s; grey pixels have v - x = 0 exactly, so their huge ratio is harmless.
    out = (v - x).mul_(s_new / s.clamp_min(1e-12)).neg_().add_(v)
    if shift:  # hue 0 for grey pixels: (v, v (1 - s'), v (1 - s'))
        out[:, 1:].sub_(torch.where(s > 0, 0.0, v * s_new))
    return out


def _random_affine(x: torch.Tensor, spread: float, gen: torch.Generator) -> torch.Tensor:
    """cv2.warpAffine by the affine map that moves three points around the centre by U(-spread,
    spread) each, as the original does (BORDER_REFLECT_101 is grid_sample's reflection with
    aligned corners)."""
    n, _, h, w = x.shape
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float64)
    r = min(h, w) // 3
    src = centre + torch.tensor([[r, r], [r, -r], [-r, -r]], dtype=torch.float64)
    dst = src + uniform(gen, (n, 3, 2), src, -spread, spread)
    # An output pixel samples the input at the inverse map, so solve dst -> src directly.
    ones = torch.ones(n, 3, 1, dtype=torch.float64)
    inverse = torch.linalg.solve(torch.cat([dst, ones], -1), src.expand(n, 3, 2)).to(x)
    grid = affine_grid(inverse, h, w, align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def affine_grid(coeffs: torch.Tensor, h: int, w: int, align_corners: bool) -> torch.Tensor:
    """grid_sample's (N, H, W, 2) grid sampling pixel (x, y) at [x, y, 1] @ coeffs, coeffs being
    (N, 3, 2) in pixels. Broadcast arithmetic: F.affine_grid's tiny batched matmuls are slower."""
    py = torch.arange(h, dtype=coeffs.dtype, device=coeffs.device).view(1, h, 1, 1)
    px = torch.arange(w, dtype=coeffs.dtype, device=coeffs.device).view(1, 1, w, 1)
    c = coeffs[:, None, None]  # (N, 1, 1, 3, 2)
    pixels = px * c[..., 0, :] + py * c[..., 1, :] + c[..., 2, :]
    size = torch.tensor([w, h], dtype=coeffs.dtype, device=coeffs.device)
    if align_corners:
        return pixels * (2 / (size - 1).clamp_min(1)) - 1
    return (2 * pixels + 1) / size - 1


@corruption
def elastic_transform(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # Pixel parameters are the original's fractions of IMSIZE = 32, whatever the image size.
    alpha, sigma, spread = (32 * f for f in ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                                             (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))[severity - 1])
    n, _, h, w = x.shape
    x = _random_affine(x, spread, gen)
    noise = uniform(gen, (n, 2, h, w), x, -1, 1)  # dx, dy
    # skimage.filters.gaussian(mode="reflect", truncate=3): scipy's reflect is "symmetric" here.
    shift = filters.gaussian_blur(noise, sigma, "symmetric", truncate=3).permute(0, 2, 3, 1)
    # map_coordinates(order=1, mode="reflect") mirrors about pixel edges: grid_sample's
    # reflection without aligned corners.
    identity = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=x.dtype, device=x.device)
    grid = affine_grid(identity[None], h, w, align_corners=False)
    grid = grid + shift * (alpha * 2 / torch.tensor([w, h], dtype=x.dtype, device=x.device))
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@corruption
def pixelate(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # PIL BOX-resize down to int(size * c) and back up, as two separable linear maps.
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    h, w = x.shape[2:]
    small_h, small_w = int(h * c), int(w * c)
    rows = filters.box_resize_matrix(small_h, h) @ filters.box_resize_matrix(h, small_h)
    cols = filters.box_resize_matrix(small_w, w) @ filters.box_resize_matrix(w, small_w)
    return filters.resample(x, rows, cols)


@corruption
def jpeg_compression(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # The real codec: torchvision's libjpeg(-turbo) bindings, one image at a time (its list API
    # loops on CPU). It gives the same bytes as the original's PIL round trip. CPU always, so CUDA
    # inputs are not sent through nvjpeg and give the same images.
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    quality = (80, 65, 58, 50, 40)[severity - 1]
    pixels = (x.detach() * 255).round().to("cpu", torch.uint8)
    mode = ImageReadMode.GRAY if x.shape[1] == 1 else ImageReadMode.RGB
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its image codecs for torchcodec
        warnings.simplefilter("ignore")
        decoded = decode_jpeg(encode_jpeg(list(pixels), quality=quality), mode=mode)
    return torch.stack(decoded).to(x.device, x.dtype) / 255
