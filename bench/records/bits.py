"""Per-example correctness, packed: base64 of `numpy.packbits` (big bit order, zero padding).

A record stores one such string per measurement (clean, each attack, each corruption x severity)
with the example count beside it; 1,000 test examples take 168 characters. Torch-free.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np


def pack(mask: np.ndarray) -> str:
    """A 1-d boolean array as base64 of its packed bits."""
    mask = np.asarray(mask)
    if mask.ndim != 1 or mask.dtype != np.bool_:
        raise ValueError(f"pack wants a 1-d boolean array, got {mask.dtype} of shape {mask.shape}")
    return base64.b64encode(np.packbits(mask).tobytes()).decode("ascii")


def unpack(text: str, n: int) -> np.ndarray:
    """The `n` booleans `pack` stored in `text`; ValueError (in words) when it cannot hold them."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not base64 text") from None
    if len(raw) != -(-n // 8):
        raise ValueError(f"holds {len(raw)} bytes, but {n} examples pack into {-(-n // 8)}")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[n:].any():
        raise ValueError("the padding bits after the last example are not zero")
    return bits[:n].astype(bool)


def pct(mask: np.ndarray) -> float:
    """Accuracy in percent as the evaluation suite rounds it (bench/eval/suite.py: `pct`)."""
    return round(100.0 * float(np.count_nonzero(mask)) / len(mask), 4)
