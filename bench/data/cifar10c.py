"""CIFAR-10-C (Hendrycks & Dietterich 2019) read from its files, where they are present.

Layout (the published archive, and what robustbench's `load_cifar10c` reads):

    <data-dir>/CIFAR-10-C/<corruption>.npy   (5 * k, 32, 32, 3) uint8, severities 1..5 stacked
    <data-dir>/CIFAR-10-C/labels.npy         (5 * k,) labels, the CIFAR-10 test labels 5 times

Each severity block holds the CIFAR-10 test set in order (k = 10,000 in the release), so image i
of a block is the corrupted test image i. A run evaluates the test images at `positions` (the
protocol's class-balanced order, bench/data/split.balanced_order), and reads those rows. robustbench's `load_corruptions_cifar` slices every file
by a hard-coded 10,000 and loads whole files (600 MB for the 19); this reader takes k from the
file's length / 5 and memory-maps it, so only the rows a run evaluates are read, and small files
in the same layout (the tests') work too.

Corruptions whose file is absent are generated (attacks/corruptions) as for every other dataset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bench.errors import DataError

FOLDER = "CIFAR-10-C"
SEVERITIES = 5


class Cifar10C:
    """The CIFAR-10-C files of the protocol's corruptions that exist, checked against the test
    labels; `read(name, severity)` gives the images at the evaluated `positions` of the test set
    (in that order) at that severity."""

    def __init__(self, folder: Path, names: Sequence[str], positions: np.ndarray,
                 y_test: np.ndarray, severities: Sequence[int]):
        self.folder, self.names, self.severities = Path(folder), tuple(names), tuple(severities)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.n = int(self.positions.max()) + 1 if len(self.positions) else 0
        labels = np.load(self.folder / "labels.npy", mmap_mode="r")
        self.per_severity = self._per_severity("labels.npy", labels.shape[0])
        for s in self.severities:
            block = np.asarray(self._rows(labels, s), dtype=np.int64)
            if not np.array_equal(block, np.asarray(y_test)):
                raise DataError(f"{self.folder}/labels.npy: severity {s} does not list the "
                                "CIFAR-10 test labels in order; CIFAR-10-C must be the test set "
                                "of the CIFAR-10 in use")
        for name in self.names:
            a = self._open(name)
            if a.dtype != np.uint8 or a.shape[1:] != (32, 32, 3) or a.shape[0] != labels.shape[0]:
                raise DataError(f"{self.folder}/{name}.npy: expected ({labels.shape[0]}, 32, 32, "
                                f"3) uint8 like labels.npy, got {a.dtype} {a.shape}")

    @classmethod
    def find(cls, data_dir: Path, positions: np.ndarray, y_test: np.ndarray,
             corruptions: Sequence[str], severities: Sequence[int]) -> Cifar10C | None:
        """The files of `corruptions` under `data_dir/CIFAR-10-C`, or None when there are none.
        `y_test` are the labels of the test images at `positions`."""
        folder = Path(data_dir) / FOLDER
        names = [c for c in corruptions if (folder / f"{c}.npy").is_file()]
        if not names:
            return None
        if not (folder / "labels.npy").is_file():
            raise DataError(f"{folder} holds corruption files but no labels.npy; add it (it is "
                            "part of the CIFAR-10-C archive) or move the folder away to generate "
                            "the corruptions instead")
        return cls(folder, names, positions, y_test, severities)

    def _per_severity(self, what: str, length: int) -> int:
        if length % SEVERITIES:
            raise DataError(f"{self.folder}/{what}: {length} rows is not {SEVERITIES} severities "
                            "of equal size")
        per = length // SEVERITIES
        if per < self.n:
            raise DataError(f"{self.folder}/{what}: {per} images per severity; the protocol "
                            f"evaluates test images up to position {self.n}")
        return per

    def _open(self, name: str) -> np.ndarray:
        return np.load(self.folder / f"{name}.npy", mmap_mode="r")

    def _rows(self, a: np.ndarray, severity: int) -> np.ndarray:
        """The rows of the evaluated positions at `severity` (a copy: the map is read-only)."""
        return a[(severity - 1) * self.per_severity + self.positions]

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def read(self, name: str, severity: int) -> torch.Tensor:
        """(n, 3, 32, 32) float32 in [0, 1] on CPU: the evaluated test images at `severity`."""
        rows = self._rows(self._open(name), severity)
        return torch.from_numpy(rows).permute(0, 3, 1, 2).float().div_(255).contiguous()

    def digest(self) -> str:
        """sha256 of every image and label a run reads from these files."""
        h = hashlib.sha256()
        labels = np.load(self.folder / "labels.npy", mmap_mode="r")
        for s in self.severities:
            h.update(np.ascontiguousarray(self._rows(labels, s)).tobytes())
        for name in self.names:
            a = self._open(name)
            h.update(name.encode())
            for s in self.severities:
                h.update(np.ascontiguousarray(self._rows(a, s)).data)
        return "cifar10c:" + h.hexdigest()
