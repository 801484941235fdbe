"""MNIST-C's pen strokes across the digit: a dotted line and a zigzag, added to the image.

Both draw the original's line_from_points: for the line r = f(c) through two points, a pixel at
vertical distance d from it gets 1 + ln(1 - d / 2.3), clipped to [0, 1] (so about 1.45 pixels
either side), and only the columns [floor(c0), ceil(c1)) keep it, with numpy's slice rules.
A segment with c0 = c1 draws nothing.
"""

from __future__ import annotations

import torch

from attacks.corruptions.base import randint
from attacks.corruptions.mnist_c.registry import corruption

LINE_REACH = 2.3  # distance at which 1 + ln(1 - d / 2.3) would reach -inf; clipped to 0 long before


def _slice_bound(b: torch.Tensor, w: int) -> torch.Tensor:
    """Where a numpy slice bound b (as in a[:, :b] or a[:, b:]) falls in a row of length w."""
    return torch.where(b >= 0, b.clamp(max=w), (b + w).clamp(min=0))


def lines(c0: torch.Tensor, r0: torch.Tensor, c1: torch.Tensor, r1: torch.Tensor, h: int,
          w: int) -> torch.Tensor:
    """The sum of line_from_points over K segments per image, given as (N, K) float64 tensors:
    (N, h, w).

    A column's line is non-zero only on the rows within 2.3 (1 - 1/e) < 1.46 of it: the 4 rows
    from floor(f) - 1 to floor(f) + 2 hold them all, so only those are computed and added in.
    """
    n, k = c0.shape
    cols = torch.arange(w, dtype=torch.float64)
    run = c1 - c0
    slope = (r1 - r0) / torch.where(run == 0, 1.0, run)
    f = slope[..., None] * (cols - c0[..., None]) + r0[..., None]  # (N, K, w): the line's row
    rows = torch.floor(f)[..., None, :] + torch.arange(-1, 3, dtype=torch.float64)[:, None]
    dist = (rows - f[..., None, :]).abs().clamp(0, LINE_REACH - 1e-10)  # (N, K, 4, w)
    value = (torch.log(1 - dist / LINE_REACH) + 1).clamp(0, 1)
    lo = _slice_bound(torch.floor(c0).long(), w)[..., None]
    hi = _slice_bound(torch.ceil(c1).long(), w)[..., None]
    keep = (cols >= lo) & (cols < hi) & (run != 0)[..., None]  # (N, K, w)
    inside = (rows >= 0) & (rows < h)
    value = value * (keep[..., None, :] & inside)
    index = (rows.clamp(0, h - 1) * w + cols).long()
    out = torch.zeros(n, h * w, dtype=torch.float64)
    return out.scatter_add_(1, index.view(n, -1), value.view(n, -1)).view(n, h, w)


@corruption
def dotted_line(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # A line from (0, r0) to (w - 1, r1), rows drawn from [0, h - 1) as randint(0, 27) does, then
    # cut into 2-pixel dashes, starting with a gap (the original's arange(0, 30, 2) loop).
    n, _, h, w = x.shape
    r = randint(gen, 0, h - 1, (n, 2)).double()
    zero = torch.zeros(n, 1, dtype=torch.float64)
    layer = lines(zero, r[:, :1], zero + (w - 1), r[:, 1:], h, w)
    dashes = (torch.arange(w) // 2) % 2 == 1
    return x + (layer * dashes).to(x)[:, None]


ZIGZAG_STEP, ZIGZAG_AMPLITUDE = 2.0, 2.0  # the original's a (length) and b (width)


def zigzag_points(r0: torch.Tensor, rise: torch.Tensor, c0: float, c1: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The original's zigzag vertices for each image: (columns, rows, valid), each (N, K).

    Along a straight run of length d = (c1 - c0) / cos(theta), theta = atan(rise / (c1 - c0)),
    vertices sit at (0, 0), ((2i + 1) a, (-1)^i b) for i <= (d - a) // 2a, and, when d is not a
    multiple of 2a, a last one at (d, r_last / (2 (d - 2a (d // 2a)))) as published. The run is
    then rotated by theta and moved to (c0, r0).
    """
    a, b = ZIGZAG_STEP, ZIGZAG_AMPLITUDE
    n = r0.shape[0]
    theta = torch.atan(rise / (c1 - c0))
    d = (c1 - c0) / torch.cos(theta)
    count = torch.floor((d - a) / (2 * a)).long() + 1  # loop vertices per image
    k_max = int(count.max())
    i = torch.arange(k_max, dtype=torch.float64)
    u = torch.zeros(n, k_max + 2, dtype=torch.float64)  # along the run; vertex 0 is (0, 0)
    v = torch.zeros(n, k_max + 2, dtype=torch.float64)  # across it
    u[:, 1:-1] = (2 * i + 1) * a
    v[:, 1:-1] = torch.where(i % 2 == 0, b, -b)
    slots = torch.arange(k_max + 2)
    valid = slots[None] <= count[:, None]
    max_c = 2 * a * torch.floor(d / (2 * a))
    last = d != max_c
    r_last = torch.where((count - 1) % 2 == 0, b, -b)
    end = count + 1  # the slot after the last loop vertex
    tail = torch.stack([d, r_last / (2 * (d - max_c).masked_fill(~last, 1.0))], 1)
    u.scatter_(1, end[:, None], tail[:, :1])
    v.scatter_(1, end[:, None], tail[:, 1:])
    valid |= (slots[None] == end[:, None]) & last[:, None]
    cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    return u * cos - v * sin + c0, u * sin + v * cos + r0[:, None], valid


@corruption
def zigzag(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    # From column 2 to column w - 3 (25 on a 28-pixel digit), starting at a row drawn from
    # [0, h - 1) and ending between 5 rows above and 4 below it. The original adds each segment
    # and clips in turn; the segments are >= 0, so one sum clipped at the end is the same.
    n, _, h, w = x.shape
    c0, c1 = 2.0, w - 3.0
    r0 = randint(gen, 0, h - 1, (n,)).double()
    rise = randint(gen, -5, 5, (n,)).double()
    cs, rs, valid = zigzag_points(r0, rise, c0, c1)
    # A segment that is not drawn is one with c0 = c1, which lines() leaves out.
    ends = torch.where(valid[:, 1:], cs[:, 1:], cs[:, :-1])
    return x + lines(cs[:, :-1], rs[:, :-1], ends, rs[:, 1:], h, w).to(x)[:, None]

