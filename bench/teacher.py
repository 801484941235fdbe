"""The protocol's teacher: trained once per protocol and cached on disk.

The cache key is the protocol hash plus a hash of the model-zoo source, so a cached teacher is
reused by every later run of the same protocol and never by a different one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.checkpoints import load_checkpoint, save_checkpoint
from bench.data import Split
from bench.engine import TrainStats, build_method, train
from bench.models import arch_source_hash, build_model
from bench.progress import Reporter
from bench.protocols import Protocol
from methods.baseline import Baseline


def teacher_checkpoint(cache_dir: Path, protocol: Protocol) -> Path:
    key = f"{protocol.name}-{protocol.hash}-{arch_source_hash(protocol.teacher_arch)}"
    return Path(cache_dir) / "teachers" / f"{key}.pt"


def get_teacher(protocol: Protocol, split: Split, cache_dir: Path, device: str,
                reporter: Reporter) -> tuple[nn.Module, TrainStats, bool]:
    """The trained teacher in eval mode, its training stats, and whether it came from the cache."""
    path = teacher_checkpoint(cache_dir, protocol)
    if path.exists():
        ckpt = load_checkpoint(path, device)
        model = build_model(protocol.teacher_arch, protocol).to(device)
        model.load_state_dict(ckpt["state_dict"])
        reporter.log(f"teacher: loaded from cache {path}")
        return model.eval(), TrainStats(**ckpt["stats"]), True
    reporter.log(f"teacher: training {protocol.teacher_arch} for "
                 f"{protocol.teacher_recipe.epochs} epochs (cached afterwards at {path})")
    torch.manual_seed(protocol.teacher_seed)
    model = build_model(protocol.teacher_arch, protocol).to(device)
    method = build_method(Baseline, Baseline.Hparams(), protocol, model, None, split.x_train)
    stats = train(model, method, protocol.teacher_recipe, split.x_train, split.y_train,
                  protocol.teacher_seed, reporter=reporter, label="teacher")
    save_checkpoint({"state_dict": model.state_dict(), "stats": stats.__dict__}, path)
    return model.eval(), stats, False
