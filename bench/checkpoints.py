"""Checkpoints, in named save/load pairs: written atomically, read with weights_only=True
(tensors and plain data only, so a checkpoint that carries code is refused instead of executed).

- weights (`save_weights` / `load_weights`): the evaluated model of a record, or the cached
  teacher: `{"state_dict", "meta"}`. No timings inside: the same training gives a
  byte-identical file and sha256.
- training state (`save_training_state` / `load_training_state`): everything an interrupted
  training needs to resume exactly (weights, optimiser, schedule, every random generator, the
  method's own state), saved after each epoch.
- tensors (`save_tensors` / `load_tensors`): what a run computes once and its worker processes
  share (the transfer attack's examples).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from bench.errors import KdbenchError
from bench.files import atomic_write, bytes_sha256


def _save(obj: dict, path: Path) -> str:
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write(Path(path), data)
    return bytes_sha256(data)


def _load(path: Path, device: str) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise KdbenchError(f"{path}: not a loadable kdbench checkpoint ({type(e).__name__}: "
                           f"{first}); it may be damaged or not made by kdbench: delete it "
                           "to recompute") from None


def save_weights(path: Path, state_dict: dict, meta: dict) -> str:
    """A model's weights and what made them (plain data); returns the file's sha256."""
    return _save({"state_dict": state_dict, "meta": meta}, path)


def load_weights(path: Path, device: str = "cpu") -> tuple[dict, dict]:
    """(state_dict, meta) of a file written by `save_weights`."""
    obj = _load(path, device)
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise KdbenchError(f"{path}: not a kdbench weights file (no state_dict); delete it to "
                           "recompute")
    return obj["state_dict"], obj.get("meta", {})


def save_training_state(path: Path, state: dict) -> None:
    _save(state, path)


def load_training_state(path: Path, device: str = "cpu") -> dict:
    return _load(path, device)


def save_tensors(path: Path, tensors: dict) -> None:
    _save(tensors, path)


def load_tensors(path: Path, device: str = "cpu") -> dict:
    return _load(path, device)
