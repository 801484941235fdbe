"""Checkpoints: written atomically, read with weights_only=True (tensors and plain data only, so
a checkpoint that carries code is refused instead of executed)."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import torch

from bench.errors import KdbenchError


def save_checkpoint(obj: dict, path: Path) -> str:
    """torch.save through a temporary file and a rename; returns the file's sha256."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getbuffer()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise KdbenchError(f"cannot write a checkpoint in {path.parent}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise KdbenchError(f"could not write {path}: {e.strerror}; nothing was written") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
