"""Data: the registry of dataset loaders and the in-memory split they return.

    from bench.data import load_split, Split, Batch

`split` (Split, Batch, the stratified split, the epoch's batches), `registry` (`load_split`,
`register_dataset`), one module per dataset (`mnist5k`, `cifar10`, with `cifar10c` for CIFAR-10-C
files) and `augment` (training-input augmentation).
"""

from bench.data.split import (Batch, Split, balanced_order, fingerprint, stratified_split,
                              train_batches)
from bench.data.registry import DATASETS, load_split, register_dataset
from bench.data import cifar10, mnist5k  # noqa: F401  (each registers its loader)

__all__ = ["DATASETS", "Batch", "Split", "balanced_order", "fingerprint", "load_split", "register_dataset",
           "stratified_split", "train_batches"]
