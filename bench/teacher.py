"""The protocol's teacher: trained once per protocol and cached on disk.

The teacher is trained with the loss of the protocol's `teacher_method` (`baseline`: labels only;
`pgd_at`: PGD adversarial training), under the teacher recipe and the protocol's augmentation.
The cache key is the protocol hash plus hashes of the model-zoo source, of the teacher method's
file and of the training data, so a cached teacher is reused by every later run of the same
protocol on the same data and never by a different one (evaluation-only data, such as CIFAR-10-C
files, is not part of the key: adding them does not retrain the teacher).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import methods
from bench.checkpoints import load_checkpoint, save_checkpoint
from bench.data import Split
from bench.engine import TrainStats, build_method, train
from bench.errors import KdbenchError
from bench.gpu_speed import compile_for_training
from bench.models import arch_source_hash, build_model
from bench.progress import Reporter
from bench.protocols import Protocol
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


def teacher_checkpoint(cache_dir: Path, protocol: Protocol, split: Split) -> Path:
    key = (f"{protocol.name}-{protocol.hash}-{arch_source_hash(protocol.teacher_arch)}-"
           f"{teacher_method(protocol).source_hash()[:8]}-{split.train_fingerprint[:8]}")
    return Path(cache_dir) / "teachers" / f"{key}.pt"


def get_teacher(protocol: Protocol, split: Split, cache_dir: Path, device: str,
                reporter: Reporter, compile: bool = False) -> tuple[nn.Module, TrainStats, bool]:
    """The trained teacher in eval mode, its training stats, and whether it came from the cache.

    `compile` compiles the network being trained (CUDA only); the teacher returned is always a
    plain module loaded from the saved weights."""
    path = teacher_checkpoint(cache_dir, protocol, split)
    if not path.exists():
        _train_teacher(protocol, split, path, device, reporter, compile)
        cached = False
    else:
        reporter.log(f"teacher: loaded from cache {path}")
        cached = True
    ckpt = load_checkpoint(path, device)
    model = build_model(protocol.teacher_arch, protocol).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), TrainStats(**ckpt["stats"]), cached


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
    save_checkpoint({"state_dict": model.state_dict(), "stats": stats.__dict__}, path)
