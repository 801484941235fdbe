"""Runs a benchmark: the protocol's teacher once, then every (method, seed) job, then records.

A job that fails because of its method (import error, exception, non-finite loss, wrong output)
is reported with the method's name and file, records nothing, and does not stop the other jobs.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

import methods
from bench.data import Split, load_split
from bench.engine import TeacherOutputs, TrainStats, build_method, train
from bench.errors import MethodError, UsageError
from bench.evaluate import evaluate
from bench import models as zoo
from bench.models import build_model
from bench.progress import Reporter
from bench.protocols import Protocol
from bench.provenance import environment, relative_to_repo
from bench.records import Record, write_record
from bench.teacher import get_teacher
from methods.api import MethodSpec

TEACHER = "teacher"  # the reference row of the protocol's teacher itself


@dataclass(frozen=True)
class RunConfig:
    protocol: Protocol
    methods: tuple[str, ...]  # may include TEACHER
    seeds: tuple[int, ...]
    device: str
    results_dir: Path
    cache_dir: Path
    data_dir: Path | None = None


@dataclass(frozen=True)
class JobOutcome:
    method: str
    seed: int | None
    path: Path | None = None
    record: Record | None = None
    error: str | None = None


def available_methods() -> list[str]:
    specs, _ = methods.discover()
    return [TEACHER, *sorted(specs, key=lambda n: (n != "baseline", n))]


def resolve_methods(names: list[str] | None) -> tuple[tuple[str, ...], list[JobOutcome]]:
    """The runnable method names, and a failed outcome for each one that could not be loaded."""
    specs, load_errors = methods.discover()
    broken = {e.module: e for e in load_errors}
    wanted = available_methods() + sorted(broken) if names is None else names
    unknown = [n for n in wanted if n != TEACHER and n not in specs and n not in broken]
    if unknown:
        raise UsageError(f"unknown method{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; available: "
                         f"{', '.join(available_methods())}")
    failed = [JobOutcome(n, None, error=f"method {n!r} could not be loaded from "
                         f"{broken[n].source}: {broken[n].problem}")
              for n in wanted if n in broken and n not in specs]
    runnable = tuple(dict.fromkeys(n for n in wanted if n == TEACHER or n in specs))
    return runnable, failed


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _record(cfg: RunConfig, split: Split, *, method: str, family: str, hparams: dict,
            source: Path, seed: int, stats: TrainStats, model: nn.Module, reporter: Reporter,
            started: datetime) -> Record:
    t0 = time.perf_counter()
    metrics = evaluate(model, cfg.protocol, split.x_test, split.y_test, cfg.device, reporter)
    env = environment(cfg.device)
    return Record(
        protocol=cfg.protocol.name, protocol_hash=cfg.protocol.hash, smoke=cfg.protocol.smoke,
        method=method, family=family, hparams=hparams,
        method_source=relative_to_repo(source), method_source_sha256=_file_sha256(source),
        seed=seed, metrics=metrics, training=stats.__dict__,
        eval_wall_s=round(time.perf_counter() - t0, 3),
        provenance={**env, "data_fingerprint": split.fingerprint, "started_at": started,
                    "finished_at": _now()},
    )


def _describe_failure(spec: MethodSpec, exc: BaseException) -> str:
    if isinstance(exc, MethodError):
        return str(exc)
    src = spec.cls.source_file()
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() == src]
    where = f" at line {frames[-1].lineno}" if frames else ""
    return f"method {spec.name!r} ({src}): raised {type(exc).__name__}: {exc}{where}"


def run_student(cfg: RunConfig, spec: MethodSpec, seed: int, split: Split, teacher: nn.Module,
                teacher_outputs: TeacherOutputs, reporter: Reporter) -> Record:
    """Train the protocol's student with one method and seed, evaluate it, return its record."""
    started = _now()
    p = cfg.protocol
    torch.manual_seed(seed)  # same initial student for every method at this seed
    student = build_model(p.student_arch, p).to(cfg.device)
    hparams = spec.default_hparams()
    uses_teacher = spec.cls.uses_teacher
    method = build_method(spec.cls, hparams, p, student, teacher if uses_teacher else None,
                          split.x_train)
    stats = train(student, method, p.student_recipe, split.x_train, split.y_train, seed,
                  teacher_outputs if uses_teacher else None, reporter,
                  label=f"{spec.name} seed {seed}")
    return _record(cfg, split, method=spec.name, family=spec.cls.family,
                   hparams=hparams.model_dump(), source=spec.cls.source_file(), seed=seed,
                   stats=stats, model=student, reporter=reporter, started=started)


def run(cfg: RunConfig, reporter: Reporter) -> list[JobOutcome]:
    """Run every job of `cfg`; returns one outcome per job, failures included."""
    names, outcomes = resolve_methods(list(cfg.methods))
    for o in outcomes:
        reporter.log(f"[red]FAILED[/] {o.error}")
    specs, _ = methods.discover()
    p = cfg.protocol
    started = _now()
    split = load_split(p, cfg.data_dir).to(cfg.device)
    with reporter.live():
        teacher, teacher_stats, _ = get_teacher(p, split, cfg.cache_dir, cfg.device, reporter)
        if TEACHER in names:
            rec = _record(cfg, split, method=TEACHER, family="reference",
                          hparams={"arch": p.teacher_arch}, source=Path(zoo.__file__),
                          seed=p.teacher_seed, stats=teacher_stats, model=teacher,
                          reporter=reporter, started=started)
            outcomes.append(_write(cfg, rec, reporter))
        teacher_outputs = TeacherOutputs(teacher, split.x_train)
        for name in names:
            if name == TEACHER:
                continue
            for seed in cfg.seeds:
                try:
                    rec = run_student(cfg, specs[name], seed, split, teacher, teacher_outputs,
                                      reporter)
                except (KeyboardInterrupt, SystemExit, MemoryError):
                    raise
                except Exception as e:  # the method's fault; the other jobs go on
                    msg = _describe_failure(specs[name], e)
                    reporter.log(f"[red]FAILED[/] {msg}; nothing recorded for seed {seed}")
                    outcomes.append(JobOutcome(name, seed, error=msg))
                    continue
                outcomes.append(_write(cfg, rec, reporter))
    return outcomes


def _write(cfg: RunConfig, rec: Record, reporter: Reporter) -> JobOutcome:
    path = write_record(rec, cfg.results_dir)
    m = rec.metrics
    reporter.log(f"{rec.method} seed {rec.seed}: clean {m.clean_acc:.1f}%  PGD {m.pgd_acc:.1f}%  "
                 f"noise {m.corruptions_acc:.1f}%  -> {path}")
    return JobOutcome(rec.method, rec.seed, path, rec)
