"""A RobustBench zoo checkpoint: where it lies, fetching it, and reading it safely.

Layout, as robustbench's `load_model(name, model_dir)` reads it:

    <model-dir>/cifar10/Linf/<name>.pt       (model_dir defaults to ./models, as robustbench's)

A missing file is downloaded there by robustbench's own downloader (Google Drive, through gdown)
unless the environment says KDBENCH_OFFLINE=1; offline, or when the download fails, one error
names the file to place and where.

Reading differs from robustbench's `load_model` on purpose: `torch.load(weights_only=True)`
(tensors and plain containers only), so a checkpoint that needs arbitrary unpickling is refused
and never executed. What `load_model` does to the contents is repeated: the `state_dict` entry
(or `last`, for Andriushchenko2020Understanding) when there is one, the `module.` and `model.`
key prefixes removed, and the normalisation buffers some checkpoints lack (`mu`, `sigma`, ...)
kept at the values the architecture sets, as robustbench's `_safe_load_state_dict` allows.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
from pathlib import Path

import torch
from torch import nn

from bench.errors import KdbenchError, UsageError
from bench.files import file_sha256
from bench.models.zoo import DATASET, THREAT_MODEL, zoo_entry
from bench.models.zoo_info import PUBLISHED_CLEAN_ACC
from bench.protocols import Protocol, ZooTeacher

PREFIX = "robustbench:"
DEFAULT_MODEL_DIR = Path("models")  # robustbench's load_model: model_dir='./models'
OFFLINE_ENV = "KDBENCH_OFFLINE"  # as for CIFAR-10 (bench/data/cifar10.py)
DOWNLOAD_TIMEOUT_S = 60  # per socket operation
# Buffers that some zoo checkpoints lack and their architectures set in __init__ (robustbench's
# `_safe_load_state_dict` tolerates exactly these missing keys).
NORMALISATION_BUFFERS = {"mu", "sigma", "mean", "std", "normalize.mean", "normalize.std"}
NESTED_LAST = {"Andriushchenko2020Understanding"}  # checkpoint['last'], as load_model reads it


class ZooError(KdbenchError):
    """A zoo teacher's checkpoint is missing, unreadable or does not fit its architecture."""


def parse_teacher(spec: str) -> str:
    """`robustbench:NAME` -> NAME."""
    if not spec.startswith(PREFIX) or not spec[len(PREFIX):]:
        raise UsageError(f"--teacher takes robustbench:NAME (a RobustBench {DATASET} "
                         f"{THREAT_MODEL} model zoo entry, e.g. robustbench:Sehwag2021Proxy_R18), "
                         f"not {spec!r}")
    return spec[len(PREFIX):]


def checkpoint_file(model_dir: Path, name: str) -> Path:
    return Path(model_dir).expanduser() / DATASET / THREAT_MODEL / f"{name}.pt"


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def _place_it(name: str, path: Path, gdrive_id: str) -> str:
    return (f"place RobustBench's checkpoint of {name} at {path} (robustbench downloads it from "
            f"Google Drive id {gdrive_id}: on a machine with network, `load_model({name!r}, "
            f"model_dir=DIR, dataset='cifar10', threat_model='Linf')` leaves it at "
            f"DIR/{DATASET}/{THREAT_MODEL}/{name}.pt), or pass --model-dir DIR where "
            f"DIR/{DATASET}/{THREAT_MODEL}/{name}.pt lies")


def locate(name: str, model_dir: Path) -> Path:
    """The checkpoint file of zoo entry `name`, downloaded when absent and the network allows."""
    gdrive_id = zoo_entry(name)["gdrive_id"]
    path = checkpoint_file(model_dir, name)
    if path.is_file():
        return path
    lacking = f"robustbench:{name}: no checkpoint at {path}"
    if _offline():
        raise ZooError(f"{lacking}; not downloading ({OFFLINE_ENV} is set): "
                       f"{_place_it(name, path, gdrive_id)}")
    from robustbench.utils import download_gdrive_new
    tmp = path.with_name(f".{path.name}.download")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a blackholed network fails, not hangs
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        download_gdrive_new(gdrive_id, tmp)
        if not tmp.is_file():
            raise OSError("the downloader wrote no file")
        os.replace(tmp, path)  # whole or not at all
    except Exception as e:  # network, quota, disk: all the same to the user
        reason = f"{type(e).__name__}: {e}".splitlines()[0]
        raise ZooError(f"{lacking}; downloading it failed ({reason}): "
                       f"{_place_it(name, path, gdrive_id)}") from None
    finally:
        socket.setdefaulttimeout(previous)
        tmp.unlink(missing_ok=True)
    return path


def resolve_teacher(spec: str, model_dir: Path | None = None) -> ZooTeacher:
    """The identity of `--teacher robustbench:NAME`: the entry checked, its checkpoint located
    (or downloaded) and hashed."""
    name = parse_teacher(spec)
    path = locate(name, DEFAULT_MODEL_DIR if model_dir is None else model_dir)
    return ZooTeacher(zoo="robustbench", name=name, dataset=DATASET, threat_model=THREAT_MODEL,
                      sha256=file_sha256(path))


def with_zoo_teacher(protocol: Protocol, teacher: str | None, model_dir: Path | None
                     ) -> Protocol:
    """`kdbench run --teacher robustbench:NAME [--model-dir DIR]`: the protocol with that teacher
    (unchanged without --teacher)."""
    if teacher is None:
        if model_dir is not None:
            raise UsageError("--model-dir goes with --teacher robustbench:NAME")
        return protocol
    if protocol.dataset != DATASET:  # before looking for (or downloading) any file
        raise UsageError(f"--teacher {teacher}: RobustBench's zoo teachers are {DATASET} models; "
                         f"protocol {protocol.name!r} is on {protocol.dataset}")
    return protocol.with_teacher(resolve_teacher(teacher, model_dir))


def _read(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:  # the legacy (non-zip) format cannot be listed
            found = []
        what = f" (it references {', '.join(found)})" if found else ""
        raise ZooError(
            f"{path}: refused: loading it needs arbitrary unpickling{what}, which can run code; "
            "kdbench reads checkpoints with torch.load(weights_only=True). If you trust its "
            "origin, save its tensors alone (torch.save(state_dict, path)) and rerun") from None
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise ZooError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: "
                       f"{first}); delete it and place RobustBench's file") from None


def _strip(state_dict: dict, prefix: str) -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def read_state_dict(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a zoo checkpoint, keyed as the architecture names them."""
    obj = _read(path)
    if isinstance(obj, dict) and name in NESTED_LAST and "last" in obj:
        obj = obj["last"]
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ZooError(f"{path}: holds no state dict (a mapping of parameter names to tensors, "
                       "alone or under 'state_dict')")
    return _strip(_strip(obj, "module."), "model.")  # DataParallel, then wrapper prefixes


def load_into(model: nn.Module, path: Path, name: str) -> nn.Module:
    """`model` (the zoo architecture of `name`) with the checkpoint's weights, in eval mode."""
    state_dict = read_state_dict(path, name)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        detail = str(e).strip().splitlines()[-1].strip()
        raise ZooError(f"{path}: does not fit the architecture of robustbench:{name} "
                       f"({type(model).__name__}): {detail}") from None
    missing = set(result.missing_keys) - NORMALISATION_BUFFERS
    if missing or result.unexpected_keys:
        parts = [f"{len(missing)} missing (e.g. {sorted(missing)[0]})" if missing else "",
                 f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})"
                 if result.unexpected_keys else ""]
        raise ZooError(f"{path}: does not fit the architecture of robustbench:{name} "
                       f"({type(model).__name__}): keys {' and '.join(p for p in parts if p)}")
    return model.eval()


def published_clean_acc(name: str, model_dir: Path | None = None) -> float | None:
    """The zoo's published clean accuracy of `name` (percent, 10,000 test images): from a
    checkout of RobustBench's repository when `model_info/` lies beside the model directory (its
    own layout: ./models and ./model_info), else kdbench's copy (bench/models/zoo_info.py)."""
    if model_dir is not None:
        info = (Path(model_dir).expanduser().resolve().parent / "model_info" / DATASET
                / THREAT_MODEL / f"{name}.json")
        if info.is_file():
            try:
                return float(json.loads(info.read_text())["clean_acc"])
            except (OSError, ValueError, KeyError, TypeError):
                raise ZooError(f"{info}: not a RobustBench model_info file with a clean_acc; "
                               "fix or remove it") from None
    return PUBLISHED_CLEAN_ACC.get(name)
