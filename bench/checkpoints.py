"""Checkpoints: written atomically, read with weights_only=True (tensors and plain data only, so
a checkpoint that carries code is refused instead of executed)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from bench.atomic import atomic_write
from bench.errors import KdbenchError


def save_checkpoint(obj: dict, path: Path) -> str:
    """torch.save through a temporary file and a rename; returns the file's sha256."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: Path, device: str = "cpu") -> dict:
    """Tensors and plain data only: weights_only=True refuses pickles that carry code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise KdbenchError(f"{path}: not a loadable kdbench checkpoint ({type(e).__name__}: "
                           f"{first}); it may be damaged or not made by kdbench: delete it "
                           "to recompute") from None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
