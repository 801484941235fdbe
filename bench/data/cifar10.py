"""CIFAR-10 from `--data-dir`, read with torchvision's reader (the python version of the dataset).

Layout, as torchvision and robustbench expect it:

    <data-dir>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    <data-dir>/CIFAR-10-C/<corruption>.npy, labels.npy      (optional; bench/data/cifar10c.py)

The split is the official one: the protocol's `n_train` first training images (all 50,000) and
`n_test` test images (all 10,000), in the class-balanced order every protocol uses
(bench/data/split.balanced_order), so that any prefix (a --smoke run's, the sanity checks') is
balanced. RobustBench evaluates the first n in the file's order instead. When the batch
files are absent, torchvision downloads them into `<data-dir>` (163 MB) unless the environment
says KDBENCH_OFFLINE=1; a failed download is a DataError that says how to place the files by hand.

torchvision checks the md5 of every file against the official release. KDBENCH_SKIP_CIFAR_MD5=1
skips that check, for data in CIFAR-10's on-disk format that is not the official release (the
tests write such data); the structure is checked either way (image shape, dtype, labels).
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import numpy as np
import torch
import torchvision

from bench.data.cifar10c import Cifar10C
from bench.data.registry import register_dataset
from bench.data.split import Split, balanced_order, fingerprint
from bench.errors import DataError
from bench.protocols import Protocol

FOLDER = "cifar-10-batches-py"
FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
URL = torchvision.datasets.CIFAR10.url
SKIP_MD5_ENV = "KDBENCH_SKIP_CIFAR_MD5"
OFFLINE_ENV = "KDBENCH_OFFLINE"
DOWNLOAD_TIMEOUT_S = 60  # per socket operation; torchvision's downloader sets none


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


class _CIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's reader, with its md5 checks switched off when `verify_md5` is False."""

    def __init__(self, root: Path, train: bool, download: bool = False, verify_md5: bool = True):
        self.verify_md5 = verify_md5  # before torchvision's __init__, which checks integrity
        super().__init__(root, train=train, download=download)

    def _check_integrity(self) -> bool:
        if self.verify_md5:
            return super()._check_integrity()
        folder = Path(self.root) / self.base_folder
        return all((folder / f).is_file() for f, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        if self.verify_md5:
            return super()._load_meta()
        with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


def _how_to_get(root: Path) -> str:
    return (f"get the python version of CIFAR-10 ({URL}, 163 MB) and extract it into {root} "
            f"(`tar xzf cifar-10-python.tar.gz -C {root}`), then rerun with --data-dir {root}")


def _download(root: Path, missing: list[str]) -> None:
    """torchvision's download and extraction; any failure becomes a DataError with the fix."""
    expected = f"{root / FOLDER}/{{data_batch_1..5, test_batch, batches.meta}}"
    lacking = f"CIFAR-10 not found: {expected} expected, {', '.join(missing)} missing"
    if _env_flag(OFFLINE_ENV):
        raise DataError(f"{lacking}; not downloading ({OFFLINE_ENV} is set): {_how_to_get(root)}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a blackholed network fails instead of hanging
    try:
        root.mkdir(parents=True, exist_ok=True)
        _CIFAR10(root, train=False, download=True)
    except Exception as e:  # network, disk, checksum of the archive: all the same to the user
        reason = f"{type(e).__name__}: {e}".splitlines()[0]
        raise DataError(f"{lacking}; downloading it failed ({reason}): {_how_to_get(root)}"
                        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _md5_mismatches(root: Path) -> list[str]:
    folder = root / FOLDER
    known = dict(_CIFAR10.train_list + _CIFAR10.test_list)
    known[_CIFAR10.meta["filename"]] = _CIFAR10.meta["md5"]
    return [f for f in FILES
            if not torchvision.datasets.utils.check_integrity(str(folder / f), known[f])]


def _read(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 images and int64 labels, structure-checked."""
    try:
        ds = _CIFAR10(root, train=train, verify_md5=not _env_flag(SKIP_MD5_ENV))
    except RuntimeError:
        bad = _md5_mismatches(root)
        raise DataError(f"{root / FOLDER}: {', '.join(bad) or 'some files'} do not match the md5 "
                        f"checksums of the official CIFAR-10 release; {_how_to_get(root)}. To read "
                        f"data in CIFAR-10's format that is not the official release, set "
                        f"{SKIP_MD5_ENV}=1") from None
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{root / FOLDER}: not CIFAR-10's python format "
                        f"({type(e).__name__}: {e}); {_how_to_get(root)}") from None
    x, y = np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)
    if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or len(y) != len(x):
        raise DataError(f"{root / FOLDER}: expected 32x32 RGB uint8 images with one label each, "
                        f"got {x.dtype} {x.shape} and {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{root / FOLDER}: labels must be 0..9, found {y.min()}..{y.max()}")
    return x, y


def _take(x: np.ndarray, y: np.ndarray, n: int, what: str, protocol: Protocol, root: Path
          ) -> tuple[np.ndarray, np.ndarray]:
    if len(x) < n:
        raise DataError(f"{root / FOLDER} holds {len(x)} {what} images; protocol "
                        f"{protocol.name!r}{' (--smoke)' if protocol.smoke else ''} needs {n}")
    return x[:n], y[:n]


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255).contiguous()


@register_dataset("cifar10")
def load_cifar10(protocol: Protocol, data_dir: Path | None) -> Split:
    """The protocol's CIFAR-10 split in memory, with CIFAR-10-C attached when its files exist."""
    if data_dir is None:
        raise DataError(f"protocol {protocol.name!r} reads CIFAR-10 from disk: pass --data-dir "
                        f"DIR, with the dataset in DIR/{FOLDER}/ (downloaded there when absent "
                        "and the network allows)")
    root = Path(data_dir).expanduser()
    missing = [f for f in FILES if not (root / FOLDER / f).is_file()]
    if missing:
        _download(root, missing)
    x_tr, y_tr = _take(*_read(root, train=True), protocol.n_train, "training", protocol, root)
    x_all, y_all = _read(root, train=False)
    _take(x_all, y_all, protocol.n_test, "test", protocol, root)
    positions = balanced_order(y_all, protocol.split_seed)[:protocol.n_test]
    x_te, y_te = x_all[positions], y_all[positions]
    files = Cifar10C.find(root, positions, y_te, protocol.eval.corruptions,
                          protocol.eval.severities)
    # The fingerprint covers the 8-bit images the tensors are exactly computed from (a quarter
    # of the bytes), and the CIFAR-10-C images a run reads instead of generating them.
    extra = files.digest() if files is not None else "generated-corruptions"
    fp = fingerprint(torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te),
                     torch.from_numpy(y_te), extra=extra)
    return Split(_tensor(x_tr), torch.from_numpy(y_tr), _tensor(x_te), torch.from_numpy(y_te),
                 fp, fingerprint(torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
                 corruption_files=files, official=not _env_flag(SKIP_MD5_ENV))
