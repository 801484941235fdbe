"""The dataset registry: each loader joins it with `@register_dataset(name)`; `load_split` reads
a protocol's split through it. Protocols name their dataset (`bench.protocols.Dataset`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from bench.data.split import Split
from bench.errors import DataError
from bench.protocols import Protocol

Loader = Callable[[Protocol, Path | None], Split]

# name -> loader(protocol, data_dir). The data_dir is for datasets that live on disk.
DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    def add(loader: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = loader
        return loader
    return add


def load_split(protocol: Protocol, data_dir: Path | None = None) -> Split:
    try:
        loader = DATASETS[protocol.dataset]
    except KeyError:
        raise DataError(f"protocol {protocol.name!r} names unknown dataset "
                        f"{protocol.dataset!r}; known: {', '.join(DATASETS)}") from None
    split = loader(protocol, data_dir)
    if split.x_test.shape[0] > protocol.n_test:
        split = dataclasses.replace(split, x_test=split.x_test[:protocol.n_test],
                                    y_test=split.y_test[:protocol.n_test])
    return split
