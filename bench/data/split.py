"""A dataset split held in memory as tensors in [0, 1], and the mini-batches training reads.

The protocols here are small enough that the whole split fits in memory; batching is slicing a
permutation, which keeps the training loop free of DataLoader overhead and makes the order a pure
function of the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from bench.data.augment import for_epoch
from bench.errors import DataError

if TYPE_CHECKING:
    from bench.data.cifar10c import Cifar10C


@dataclass(frozen=True)
class Split:
    x_train: torch.Tensor  # float32, (N, C, H, W), values in [0, 1]
    y_train: torch.Tensor  # int64, (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    fingerprint: str  # sha256 of the exact tensors, recorded as provenance
    train_fingerprint: str  # of the training tensors alone: part of the teacher cache's key
    # Real corrupted copies of the test set, read instead of generated where present
    # (CIFAR-10-C: bench/data/cifar10c.py); None: every corruption is generated.
    corruption_files: Cifar10C | None = None
    # The dataset's official release, its checksums verified (CIFAR-10 read without
    # KDBENCH_SKIP_CIFAR_MD5): published numbers on it, a zoo teacher's, can be checked.
    official: bool = False

    def to(self, device: torch.device | str) -> Split:
        return dataclasses.replace(self, x_train=self.x_train.to(device),
                                   y_train=self.y_train.to(device),
                                   x_test=self.x_test.to(device), y_test=self.y_test.to(device))


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # clean inputs in [0, 1] (augmented when the protocol augments)
    y: torch.Tensor
    index: torch.Tensor  # positions in the training set: the key of the teacher-output cache
    x_adv: torch.Tensor | None = None  # set by a method's perturb() hook
    augmented: bool = False  # x is a random transform of the stored example, not the example


def stratified_split(y: np.ndarray, n_train: int, n_test: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a class-balanced train/test split, a pure function of `seed`: training indices
    sorted, test indices in `balanced_order`."""
    classes = np.unique(y)
    if n_train % len(classes) or n_test % len(classes):
        raise DataError(f"n_train={n_train} and n_test={n_test} must be multiples of the "
                        f"{len(classes)} classes for a stratified split")
    rng = np.random.default_rng(seed)
    train, test = [], []
    per_train, per_test = n_train // len(classes), n_test // len(classes)
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < per_train + per_test:
            raise DataError(f"class {c} has {len(idx)} examples; the split needs "
                            f"{per_train + per_test}")
        train.append(idx[:per_train])
        test.append(idx[per_train:per_train + per_test])
    test_idx = np.concatenate(test)
    return np.sort(np.concatenate(train)), test_idx[balanced_order(y[test_idx], seed)]


def balanced_order(y: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order of the examples in which every prefix is as class-balanced as it can be:
    round r holds the r-th example of every class (each class's examples shuffled), the classes
    in a shuffled order within each round. With equal class counts, the first k * C examples
    hold exactly k of each of the C classes, so any prefix (the eps curve's, the sanity checks',
    a --smoke run's) is a fair sample of the test set."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    order = []
    for r in range(max(len(p) for p in per_class)):
        round_ = [p[r] for p in per_class if r < len(p)]
        order.extend(round_[i] for i in rng.permutation(len(round_)))
    return np.asarray(order, dtype=np.int64)


def fingerprint(*arrays: torch.Tensor, extra: str = "") -> str:
    """sha256 of the tensors' bytes (and of `extra`, a digest of other data a run reads)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.contiguous().numpy().tobytes())
    if extra:
        h.update(extra.encode())
    return h.hexdigest()[:16]


def train_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                  generator: torch.Generator, augmentation: str = "none") -> Iterator[Batch]:
    """One epoch of shuffled mini-batches, augmented as the protocol says (bench/data/augment.py);
    the last partial batch is kept."""
    order = torch.randperm(x.shape[0], generator=generator).to(x.device)
    augment = for_epoch(augmentation, x.shape[0], generator, x.device)
    for start in range(0, x.shape[0], batch_size):
        idx = order[start:start + batch_size]
        if augment is None:
            yield Batch(x[idx], y[idx], idx)
        else:
            yield Batch(augment(x[idx], start, start + len(idx)), y[idx], idx, augmented=True)
