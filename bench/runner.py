"""Runs a benchmark: the protocol's teacher once, then every (method, seed) job, then records.

A job is (protocol, method, seed); jobs are independent once the teacher is cached, so an executor
(bench/executors.py) may run them in any order, in this process, in worker processes or on a
cluster, with identical results. A job that fails because of its method (import error, exception,
non-finite loss, wrong output) is reported with the method's name and file, records nothing, and
does not stop the other jobs.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

import methods
from bench import models as zoo
from bench.data import Split, load_split
from bench.engine import TrainStats, build_method, train
from bench.errors import MethodError, UsageError
from bench.evaluate import CorruptedTestSet, TransferSource, evaluate, measure_efficiency
from bench.gpu_speed import compile_for_training
from bench.models import build_model
from bench.progress import Reporter
from bench.protocols import Protocol
from bench.provenance import environment, relative_to_repo
from bench.records import Record, write_record
from bench.teacher import get_teacher
from bench.teacher_source import TeacherSource, teacher_source
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
    full: bool = False  # also run AutoAttack (slow)
    workers: int = 1  # jobs run at once (processes)
    threads: int = 1  # torch threads per job; part of what makes a record reproducible
    compile: bool = False  # torch.compile the networks being trained (CUDA only)


@dataclass(frozen=True)
class Job:
    method: str
    seed: int


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


def plan(cfg: RunConfig, names: tuple[str, ...]) -> list[Job]:
    """Every job of the run: the teacher row once, each method once per seed."""
    jobs = [Job(TEACHER, cfg.protocol.teacher_seed)] if TEACHER in names else []
    return jobs + [Job(n, s) for n in names if n != TEACHER for s in cfg.seeds]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class JobContext:
    """What every job of a run shares, built once per process: data, teacher, caches."""

    cfg: RunConfig
    split: Split
    teacher: torch.nn.Module
    teacher_stats: TrainStats
    teacher_outputs: TeacherSource  # index cache, or online under augmentation
    transfer: TransferSource
    corrupted: CorruptedTestSet
    reporter: Reporter = field(default_factory=lambda: Reporter(quiet=True))
    efficiency: dict[str, dict] = field(default_factory=dict)  # per architecture

    @classmethod
    def build(cls, cfg: RunConfig, reporter: Reporter,
              efficiency: dict[str, dict] | None = None) -> JobContext:
        split = load_split(cfg.protocol, cfg.data_dir).to(cfg.device)
        teacher, stats, _ = get_teacher(cfg.protocol, split, cfg.cache_dir, cfg.device, reporter,
                                        compile=cfg.compile)
        return cls(cfg, split, teacher, stats, teacher_source(cfg.protocol, teacher, split.x_train),
                   TransferSource(teacher, "teacher"),
                   CorruptedTestSet(split.x_test, cfg.protocol.eval.seed,
                                    split.corruption_files), reporter,
                   efficiency or {})

    def measure_efficiency(self) -> None:
        """Size, FLOPs and latency of both architectures, measured before any job runs."""
        p = self.cfg.protocol
        self.reporter.log("measuring size and latency of the teacher and student architectures")
        self.efficiency = {
            p.teacher_arch: measure_efficiency(self.teacher, p),
            p.student_arch: measure_efficiency(build_model(p.student_arch, p), p),
        }


def _record(ctx: JobContext, model: torch.nn.Module, *, arch: str, method: str, family: str,
            hparams: dict, source: Path, seed: int, stats: TrainStats, started: datetime,
            transfer: TransferSource | None) -> Record:
    cfg, t0 = ctx.cfg, time.perf_counter()
    metrics = evaluate(model, cfg.protocol, ctx.split.x_test, ctx.split.y_test, cfg.device,
                       ctx.reporter, full=cfg.full, transfer=transfer, corrupted=ctx.corrupted)
    metrics["efficiency"] = ctx.efficiency[arch]
    return Record(
        protocol=cfg.protocol.name, protocol_hash=cfg.protocol.hash, smoke=cfg.protocol.smoke,
        method=method, family=family, hparams=hparams,
        method_source=relative_to_repo(source), method_source_sha256=_file_sha256(source),
        seed=seed, metrics=metrics, training=stats.__dict__,
        eval_wall_s=round(time.perf_counter() - t0, 3),
        provenance={**environment(cfg.device), "data_fingerprint": ctx.split.fingerprint,
                    "started_at": started, "finished_at": _now()},
    )


def _describe_failure(spec: MethodSpec, exc: BaseException) -> str:
    if isinstance(exc, MethodError):
        return str(exc)
    src = spec.cls.source_file()
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() == src]
    where = f" at line {frames[-1].lineno}" if frames else ""
    return f"method {spec.name!r} ({src}): raised {type(exc).__name__}: {exc}{where}"


def run_student(ctx: JobContext, spec: MethodSpec, seed: int) -> Record:
    """Train the protocol's student with one method and seed, evaluate it, return its record."""
    started, p, cfg = _now(), ctx.cfg.protocol, ctx.cfg
    torch.manual_seed(seed)  # same initial student for every method at this seed
    student = build_model(p.student_arch, p).to(cfg.device)
    hparams = spec.default_hparams()
    teacher = ctx.teacher if spec.cls.uses_teacher else None
    method = build_method(spec.cls, hparams, p, student, teacher, ctx.split.x_train)
    stats = train(compile_for_training(student, cfg.compile), method, p.student_recipe,
                  ctx.split.x_train, ctx.split.y_train, seed,
                  ctx.teacher_outputs if teacher is not None else None, ctx.reporter,
                  label=f"{spec.name} seed {seed}", augmentation=p.augmentation)
    return _record(ctx, student, arch=p.student_arch, method=spec.name, family=spec.cls.family,
                   hparams=hparams.model_dump(), source=spec.cls.source_file(), seed=seed,
                   stats=stats, started=started, transfer=ctx.transfer)


def run_job(ctx: JobContext, job: Job) -> JobOutcome:
    """One job, its method's failures caught and described; the record is not yet written."""
    if job.method == TEACHER:
        rec = _record(ctx, ctx.teacher, arch=ctx.cfg.protocol.teacher_arch, method=TEACHER,
                      family="reference",
                      hparams={"arch": ctx.cfg.protocol.teacher_arch}, source=Path(zoo.__file__),
                      seed=job.seed, stats=ctx.teacher_stats, started=_now(), transfer=None)
        return JobOutcome(job.method, job.seed, record=rec)
    spec = methods.discover()[0][job.method]
    try:
        return JobOutcome(job.method, job.seed, record=run_student(ctx, spec, job.seed))
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:  # the method's fault; the other jobs go on
        return JobOutcome(job.method, job.seed, error=_describe_failure(spec, e))


def run(cfg: RunConfig, reporter: Reporter) -> list[JobOutcome]:
    """Run every job of `cfg`; returns one outcome per job, failures included."""
    from bench.executors import make_executor

    names, outcomes = resolve_methods(list(cfg.methods))
    for o in outcomes:
        reporter.log(f"[red]FAILED[/] {o.error}")
    jobs = plan(cfg, names)
    with reporter.live():
        # The teacher is trained here, once, before any job needs it; jobs load it from the cache.
        ctx = JobContext.build(cfg, reporter)
        ctx.measure_efficiency()  # alone on the machine: no job runs beside the timing
        executor = make_executor(cfg, ctx)
        with reporter.task("jobs", total=len(jobs)) as bar:
            for outcome in executor.run(jobs):
                outcomes.append(_finish(cfg, outcome, reporter))
                bar.advance()
    return outcomes


def _finish(cfg: RunConfig, outcome: JobOutcome, reporter: Reporter) -> JobOutcome:
    if outcome.record is None:
        reporter.log(f"[red]FAILED[/] {outcome.error}; nothing recorded for seed {outcome.seed}")
        return outcome
    rec = outcome.record
    path = write_record(rec, cfg.results_dir)
    m = rec.metrics
    flag = " [yellow]UNRELIABLE[/]" if m.unreliable else ""
    reporter.log(f"{rec.method} seed {rec.seed}: clean {m.clean_acc:.1f}%  PGD {m.pgd_acc:.1f}%  "
                 f"corruptions {m.corruptions_acc:.1f}%{flag}  -> {path}")
    return JobOutcome(rec.method, rec.seed, path, rec)
