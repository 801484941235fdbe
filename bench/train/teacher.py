"""The protocol's teacher: trained once per protocol and cached on disk.

The teacher is trained with the loss of the protocol's `teacher_method` (`baseline`: labels only;
`pgd_at`: PGD adversarial training), under the teacher recipe and the protocol's augmentation.

`teacher_key(protocol)` names the teacher: the protocol hash, the harness version and the sha256
of every file of its code (the teacher method and what it imports, the architecture). Every record
of the protocol carries it (bench/run/jobs.py): retrain the teacher and the records made against
the old one read as stale. The cache file adds a digest of the training data, so a cached teacher
is never reused on other data (evaluation-only data, such as CIFAR-10-C files, is not part of it:
adding them does not retrain the teacher).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

import methods
from bench.checkpoints import load_weights, save_weights
from bench.data.split import Split
from bench.errors import KdbenchError
from bench.harness import HARNESS_VERSION
from bench.models.registry import arch_source_files, build_model
from bench.progress import Reporter
from bench.protocols import Protocol
from bench.provenance import code_dependencies, source_digests
from bench.train.device import compile_for_training
from bench.train.engine import TrainStats, build_method, train
from methods.api import Method


def teacher_method(protocol: Protocol) -> type[Method]:
    """The registered method whose loss trains the protocol's teacher."""
    specs, _ = methods.discover()
    spec = specs.get(protocol.teacher_method)
    if spec is None or spec.cls.uses_teacher:
        raise KdbenchError(f"protocol {protocol.name!r}: teacher_method "
                           f"{protocol.teacher_method!r} is not a registered method that trains "
                           "without a teacher (e.g. baseline, pgd_at)")
    return spec.cls


def teacher_sources(protocol: Protocol) -> dict[str, str]:
    """repo-relative path -> sha256 of every file of the teacher's code."""
    cls = teacher_method(protocol)
    return source_digests([*code_dependencies(cls.__module__),
                           *arch_source_files(protocol.teacher_arch)])


def teacher_key(protocol: Protocol) -> str:
    """The identity of the protocol's teacher (see the module docstring)."""
    ident = {"protocol_hash": protocol.hash, "harness": HARNESS_VERSION,
             "sources": teacher_sources(protocol)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def teacher_checkpoint(cache_dir: Path, protocol: Protocol, split: Split) -> Path:
    key = f"{protocol.name}-{teacher_key(protocol)}-{split.train_fingerprint[:8]}"
    return Path(cache_dir) / "teachers" / f"{key}.pt"


def get_teacher(protocol: Protocol, split: Split, cache_dir: Path, device: str,
                reporter: Reporter, compile: bool = False) -> tuple[nn.Module, TrainStats]:
    """The trained teacher in eval mode and its training stats, from the cache or trained now.

    `compile` compiles the network being trained (CUDA only); the teacher returned is always a
    plain module loaded from the saved weights."""
    path = teacher_checkpoint(cache_dir, protocol, split)
    if not path.exists():
        _train_teacher(protocol, split, path, device, reporter, compile)
    else:
        reporter.log(f"teacher: loaded from cache {path}")
    state_dict, meta = load_weights(path, device)
    model = build_model(protocol.teacher_arch, protocol).to(device)
    model.load_state_dict(state_dict)
    return model.eval(), TrainStats(**meta["stats"])


def _train_teacher(protocol: Protocol, split: Split, path: Path, device: str, reporter: Reporter,
                   compile: bool) -> None:
    cls = teacher_method(protocol)
    reporter.log(f"teacher: training {protocol.teacher_arch} with the {cls.name!r} loss for "
                 f"{protocol.teacher_recipe.epochs} epochs (cached afterwards at {path})")
    torch.manual_seed(protocol.teacher_seed)
    model = build_model(protocol.teacher_arch, protocol).to(device)
    method = build_method(cls, cls.Hparams(), protocol, model, None, split.x_train)
    stats = train(compile_for_training(model, compile), method, protocol.teacher_recipe,
                  split.x_train, split.y_train, protocol.teacher_seed, reporter=reporter,
                  label="teacher", augmentation=protocol.augmentation)
    save_weights(path, model.state_dict(), {"stats": stats.__dict__,
                                            "teacher_key": teacher_key(protocol)})
