"""The protocol's teacher: trained once per protocol and cached on disk, or taken from
RobustBench's model zoo. This module is the one place that knows which.

The teacher is trained with the loss of the protocol's `teacher_method` (`baseline`: labels only;
`pgd_at`: PGD adversarial training), under the teacher recipe and the protocol's augmentation.
A protocol with a `teacher_source` (`kdbench run --teacher robustbench:NAME`) trains nothing: the
zoo checkpoint, the one the protocol hash names by sha256, is read (bench/models/zoo_checkpoint.py),
its clean accuracy checked against the zoo's published one on the official CIFAR-10 test images,
and copied into the cache like a trained teacher.

`teacher_key(protocol)` names the teacher: the protocol hash, the harness version and the sha256
of every file of its code (the teacher method and what it imports, the architecture). Every record
of the protocol carries it (bench/run/jobs.py): retrain the teacher and the records made against
the old one read as stale. The cache file adds a digest of the training data, so a cached teacher
is never reused on other data (evaluation-only data, such as CIFAR-10-C files, is not part of it:
adding them does not retrain the teacher).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import methods
from attacks.adversarial import predict
from bench.checkpoints import load_weights, save_weights
from bench.data.split import Split
from bench.errors import KdbenchError
from bench.files import file_sha256
from bench.harness import HARNESS_VERSION
from bench.models import zoo, zoo_checkpoint
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
    if protocol.teacher_source is not None:  # its architecture and how its weights are read
        return source_digests([*arch_source_files(zoo.ZOO_ARCH), Path(zoo_checkpoint.__file__)])
    cls = teacher_method(protocol)
    return source_digests([*code_dependencies(cls.__module__),
                           *arch_source_files(protocol.teacher_arch)])


def teacher_key(protocol: Protocol) -> str:
    """The identity of the protocol's teacher (see the module docstring)."""
    ident = {"protocol_hash": protocol.hash, "harness": HARNESS_VERSION,
             "sources": teacher_sources(protocol)}
    if protocol.teacher_source is not None:  # its architecture's code is robustbench's
        ident["robustbench"] = importlib.metadata.version("robustbench")
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TeacherRow:
    """What the teacher's reference row is, for its job spec (bench/run/spec.py)."""

    arch: str
    epochs: int | None  # None: not trained here
    hparams: dict
    defined_in: Path
    sources: dict[str, str]


def teacher_row(protocol: Protocol) -> TeacherRow:
    sources = teacher_sources(protocol)
    src = protocol.teacher_source
    if src is not None:
        return TeacherRow(zoo.ZOO_ARCH, None, {"arch": zoo.ZOO_ARCH, "zoo_model": src.label},
                          Path(zoo.__file__), sources)
    arch = protocol.teacher_arch
    return TeacherRow(arch, protocol.teacher_recipe.epochs,
                      {"arch": arch, "trained_with": teacher_method(protocol).name},
                      arch_source_files(arch)[0], sources)


@dataclass(frozen=True)
class Teacher:
    model: nn.Module  # in eval mode
    stats: TrainStats | None  # None: not trained here (a zoo teacher)
    # A zoo teacher's identity and clean-accuracy check, as records hold it (teacher_source).
    source: dict | None = None


def teacher_checkpoint(cache_dir: Path, protocol: Protocol, split: Split) -> Path:
    key = f"{protocol.name}-{teacher_key(protocol)}-{split.train_fingerprint[:8]}"
    return Path(cache_dir) / "teachers" / f"{key}.pt"


def get_teacher(protocol: Protocol, split: Split, cache_dir: Path, device: str,
                reporter: Reporter, compile: bool = False, model_dir: Path | None = None
                ) -> Teacher:
    """The protocol's teacher, from the cache, or trained (or read from the zoo's checkpoint
    under `model_dir`) now.

    `compile` compiles the network being trained (CUDA only); the teacher returned is always a
    plain module loaded from the saved weights."""
    path = teacher_checkpoint(cache_dir, protocol, split)
    if path.exists():
        reporter.log(f"teacher: loaded from cache {path}")
    elif protocol.teacher_source is not None:
        _import_zoo_teacher(protocol, split, path, device, reporter, model_dir)
    else:
        _train_teacher(protocol, split, path, device, reporter, compile)
    state_dict, meta = load_weights(path, device)
    model = build_model(protocol.teacher_arch, protocol).to(device)
    model.load_state_dict(state_dict)
    stats = None if meta["stats"] is None else TrainStats(**meta["stats"])
    return Teacher(model.eval(), stats, meta.get("teacher_source"))


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


def clean_check_tolerance(published: float, n: int, population: int = 10_000) -> float:
    """Percentage points by which the accuracy on the first `n` of the `population` test images
    may differ from the published accuracy on all of them: 4 standard errors of a sample of n
    drawn without replacement (finite-population correction: 0 at n = population), plus 0.1 for
    floating-point differences between machines (RobustBench's own test allows 0.05)."""
    p = published / 100
    se = math.sqrt(p * (1 - p) / n * max(population - n, 0) / (population - 1))
    return 0.1 + 400 * se


def _import_zoo_teacher(protocol: Protocol, split: Split, path: Path, device: str,
                        reporter: Reporter, model_dir: Path | None) -> None:
    src, model_dir = protocol.teacher_source, model_dir or zoo_checkpoint.DEFAULT_MODEL_DIR
    file = zoo_checkpoint.locate(src.name, model_dir)
    if (digest := file_sha256(file)) != src.sha256:
        raise zoo_checkpoint.ZooError(
            f"{file} has sha256 {digest[:12]}, not the {src.sha256[:12]} the protocol names: the "
            f"file changed since; rerun `kdbench run --teacher {src.label}` to use it (another "
            "protocol hash), or put the original file back")
    reporter.log(f"teacher: {src.label} from {file} (RobustBench model zoo, not trained)")
    model = zoo_checkpoint.load_into(build_model(zoo.ZOO_ARCH, protocol), file, src.name)
    model.to(device)
    published = zoo_checkpoint.published_clean_acc(src.name, model_dir)
    record = {**dataclasses.asdict(src), "published_clean_acc": published,
              "checked_clean_acc": None, "checked_n": None}
    if published is None or not split.official:
        why = ("RobustBench publishes no number for it" if published is None else
               "the test data is not the official CIFAR-10 release")
        reporter.log(f"teacher: clean accuracy not checked against the zoo's: {why}")
    else:
        n = len(split.y_test)
        with torch.no_grad():
            right = predict(model, split.x_test, protocol.eval.eval_batch_size) == split.y_test
        acc = 100 * right.float().mean().item()
        tol = clean_check_tolerance(published, n)
        if abs(acc - published) > tol:
            raise zoo_checkpoint.ZooError(
                f"{src.label}: clean accuracy {acc:.2f}% on the first {n} CIFAR-10 test images, "
                f"RobustBench publishes {published:.2f}% (allowed difference {tol:.2f} pts): "
                f"{file} is not the published model, or the model expects other inputs")
        reporter.log(f"teacher: clean accuracy {acc:.2f}% on {n} test images, published "
                     f"{published:.2f}% (within {tol:.2f} pts)")
        record.update(checked_clean_acc=round(acc, 4), checked_n=n)
    save_weights(path, model.state_dict(), {"stats": None, "teacher_key": teacher_key(protocol),
                                            "teacher_source": record})
