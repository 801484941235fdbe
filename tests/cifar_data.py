"""Small datasets written in CIFAR-10's and CIFAR-10-C's exact on-disk formats, for tests.

Images are class-coloured noise, so a tiny model learns them in a few steps.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32, 32, 3) uint8 images and int labels, balanced over the 10 classes."""
    rng = np.random.default_rng(seed)
    palette = np.random.default_rng(1234).integers(40, 215, size=(10, 3))
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    noise = rng.integers(-40, 41, size=(n, 32, 32, 3))
    return np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8), labels


def _batch(x: np.ndarray, y: np.ndarray, name: str) -> dict:
    # CIFAR-10's python pickles: rows of 3072 bytes, channel-major (R plane, G plane, B plane).
    # The originals are Python 2 pickles whose str keys load as str with encoding="latin1", as
    # torchvision reads them.
    return {"batch_label": name, "labels": [int(v) for v in y],
            "data": x.transpose(0, 3, 1, 2).reshape(len(x), 3072),
            "filenames": [f"img_{i}.png" for i in range(len(x))]}


def write_cifar10(root: Path, n_train: int = 500, n_test: int = 100) -> Path:
    """`root/cifar-10-batches-py/` with data_batch_1..5, test_batch and batches.meta."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = images(n_train, seed=1)
    for i, (xs, ys) in enumerate(zip(np.array_split(x, 5), np.array_split(y, 5)), start=1):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(_batch(xs, ys, f"training batch {i} of 5"), f)
    xt, yt = images(n_test, seed=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(_batch(xt, yt, "testing batch 1 of 1"), f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": LABEL_NAMES, "num_cases_per_batch": n_train // 5,
                     "num_vis": 3072}, f)
    return folder


def write_cifar10c(root: Path, corruptions: list[str], n_per_severity: int = 20,
                   seed: int = 3) -> Path:
    """`root/CIFAR-10-C/<corruption>.npy` (5 severities stacked) and `labels.npy`. With seed=2
    and n_per_severity equal to write_cifar10's n_test, the images are corrupted copies of its
    test set, in order, as in the real CIFAR-10-C."""
    folder = Path(root) / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = images(n_per_severity, seed=seed)
    for i, name in enumerate(corruptions):
        sev = [np.clip(x.astype(int) + 10 * s * (i + 1) % 60, 0, 255).astype(np.uint8)
               for s in range(1, 6)]
        np.save(folder / f"{name}.npy", np.concatenate(sev))
    np.save(folder / "labels.npy", np.tile(y, 5).astype(np.uint8))
    return folder
