"""Training-input augmentation, as batched tensor operations on the training device.

`crop-flip` is the standard CIFAR-10 augmentation (He et al. 2016; torchvision's
`RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`): pad 4 pixels of zeros on each side, take
a random 32x32 window, flip it left-right with probability 1/2.

The random parameters of a whole epoch are drawn at once from the job's CPU generator, right
after the batch order: training stays a pure function of the seed on CPU, any device gets the same
crops and flips, and a GPU gets one small host-to-device copy per epoch instead of one per step
(a blocking copy would stall the training loop every step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

PAD = 4  # pixels of zero padding before the random crop

# Applies an epoch's parameters to the batch at positions [start, stop) of the epoch's order.
EpochAugment = Callable[[torch.Tensor, int, int], torch.Tensor]


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
              pad: int = PAD) -> torch.Tensor:
    """Crop image i of `x` (N, C, H, W) at offset (dy[i], dx[i]) of its zero-padded copy, then
    mirror it where flip[i]; one gather for the whole batch."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H) rows of the padded image
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a mirrored crop reads columns backwards
    # Advanced indices around a slice put the indexed dims first: (N, H, W, C); permuting back
    # gives an NCHW view in channels-last memory, the layout the models run in.
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None],
                 cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def draw_crop_flip(n: int, generator: torch.Generator, pad: int = PAD
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, dx, flip) for n images: offsets uniform in 0..2*pad, flips with probability 1/2."""
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return dy, dx, flip


def for_epoch(name: str, n: int, generator: torch.Generator, device: torch.device | str
              ) -> EpochAugment | None:
    """The augmentation of one epoch of n examples, or None for "none" (which draws nothing, so
    a protocol without augmentation trains exactly as before augmentation existed)."""
    if name == "none":
        return None
    if name == "crop-flip":
        dy, dx, flip = (t.to(device) for t in draw_crop_flip(n, generator))
        return lambda x, start, stop: crop_flip(x, dy[start:stop], dx[start:stop],
                                                flip[start:stop])
    raise ValueError(f"unknown augmentation {name!r}")
