"""Runs a benchmark: the protocol's teacher once, then every (method, seed) job, then records.

A job is (protocol, method, seed); jobs are independent once the teacher is cached, so an executor
(bench/executors.py) may run them in any order, in this process, in worker processes or on a
cluster, with identical results. A job that fails because of its method (import error, exception,
non-finite loss, wrong output) is reported with the method's name and file, records nothing, and
does not stop the other jobs.

Nothing is lost to an interruption. A job is keyed by (protocol hash, method, method source hash,
seed, hyper-parameters, device, threads). A rerun skips jobs whose record is up to date, evaluates
jobs whose final checkpoint exists, and resumes training from the last completed epoch
(`<cache-dir>/jobs/...`): the records equal those of an uninterrupted run, timings aside.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

import methods
from bench import models as zoo
from bench.data import Split, load_split
from bench.engine import TrainStats, build_method, train
from bench.errors import KdbenchError, MethodError, RecordError, UsageError
from bench.evaluate import CorruptedTestSet, TransferSource, evaluate, measure_efficiency
from bench.gpu_speed import compile_for_training
from bench.models import build_model
from bench.progress import Reporter
from bench.protocols import Protocol
from bench.provenance import environment, relative_to_repo
from bench.checkpoints import file_sha256, load_checkpoint, save_checkpoint
from bench.records import (Record, checkpoint_path, read_record, record_path,
                           write_record)
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
    fresh: bool = False  # ignore finished records, checkpoints and saved training states
    job_timeout: float | None = None  # seconds; a job past it is stopped and reported
    executor: str = "local"  # "local" (worker processes) or "ray"
    ray_address: str | None = None  # join this Ray cluster; None starts a local instance
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
    skipped: bool = False  # an up-to-date record existed


def job_key(cfg: RunConfig, method: str, seed: int, source_sha256: str, hparams: dict) -> dict:
    """Everything a job's result depends on; a saved state or record with another key is stale."""
    return {"protocol": cfg.protocol.name, "protocol_hash": cfg.protocol.hash, "method": method,
            "method_source_sha256": source_sha256, "seed": seed, "hparams": hparams,
            "device": cfg.device, "threads": cfg.threads}


def state_dir(cfg: RunConfig, method: str, seed: int, source_sha256: str) -> Path:
    p = cfg.protocol
    return (cfg.cache_dir / "jobs" / f"{p.name}-{p.hash}" / f"{method}-{source_sha256[:12]}"
            / f"seed-{seed}")


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
              efficiency: dict[str, dict] | None = None, split: Split | None = None
              ) -> JobContext:
        split = (split or load_split(cfg.protocol, cfg.data_dir)).to(cfg.device)
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
            transfer: TransferSource | None, checkpoint: Path) -> Record:
    cfg, t0 = ctx.cfg, time.perf_counter()
    metrics = evaluate(model, cfg.protocol, ctx.split.x_test, ctx.split.y_test, cfg.device,
                       ctx.reporter, full=cfg.full, transfer=transfer, corrupted=ctx.corrupted,
                       fault_key=f"{method}:{seed}")
    metrics["efficiency"] = ctx.efficiency[arch]
    return Record(
        protocol=cfg.protocol.name, protocol_hash=cfg.protocol.hash, smoke=cfg.protocol.smoke,
        method=method, family=family, hparams=hparams,
        method_source=relative_to_repo(source), method_source_sha256=_file_sha256(source),
        seed=seed, metrics=metrics, training=stats.__dict__,
        eval_wall_s=round(time.perf_counter() - t0, 3),
        provenance={**environment(cfg.device), "data_fingerprint": ctx.split.fingerprint,
                    "corruptions_from_files": _corruptions_from_files(ctx),
                    "started_at": started, "finished_at": _now()},
        checkpoint={"file": checkpoint.relative_to(cfg.results_dir).as_posix(),
                    "sha256": file_sha256(checkpoint), "bytes": checkpoint.stat().st_size},
    )


def _corruptions_from_files(ctx: JobContext) -> list[str]:
    files = ctx.split.corruption_files
    return [] if files is None else [c for c in ctx.cfg.protocol.eval.corruptions if c in files]


def _describe_failure(spec: MethodSpec, exc: BaseException) -> str:
    if isinstance(exc, MethodError):
        return str(exc)
    src = spec.cls.source_file()
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() == src]
    where = f" at line {frames[-1].lineno}" if frames else ""
    return f"method {spec.name!r} ({src}): raised {type(exc).__name__}: {exc}{where}"


def _train_or_resume(ctx: JobContext, model: torch.nn.Module, spec: MethodSpec | None,
                     seed: int, key: dict, source_sha256: str) -> TrainStats:
    """Train `model` for the job, or reuse what an interrupted run of the same job left: the final
    checkpoint (training done) or the last epoch's training state. Writes the final checkpoint.
    `spec` None: the teacher, trained and cached by get_teacher()."""
    cfg, p = ctx.cfg, ctx.cfg.protocol
    ckpt = checkpoint_path(cfg.results_dir, p.name, key["method"], seed)
    jobdir = state_dir(cfg, key["method"], seed, source_sha256)
    if cfg.fresh:
        ckpt.unlink(missing_ok=True)
        for f in ("train-state.pt", "trained.json"):
            (jobdir / f).unlink(missing_ok=True)
    if ckpt.exists():
        saved = load_checkpoint(ckpt, cfg.device)
        if saved.get("key") == key:  # trained before the interruption: evaluate only
            model.load_state_dict(saved["state_dict"])
            wall = json.loads((jobdir / "trained.json").read_text())["wall_s"] \
                if (jobdir / "trained.json").exists() else None
            return TrainStats(**saved["stats"], wall_s=wall)
    if spec is None:
        stats = ctx.teacher_stats
    else:
        teacher = ctx.teacher if spec.cls.uses_teacher else None
        method = build_method(spec.cls, spec.default_hparams(), p, model, teacher,
                              ctx.split.x_train)
        stats = train(compile_for_training(model, cfg.compile), method, p.student_recipe,
                      ctx.split.x_train, ctx.split.y_train, seed,
                      ctx.teacher_outputs if teacher is not None else None, ctx.reporter,
                      label=f"{spec.name} seed {seed}", state_path=jobdir / "train-state.pt",
                      fault_key=f"{spec.name}:{seed}", augmentation=p.augmentation)
    jobdir.mkdir(parents=True, exist_ok=True)
    (jobdir / "trained.json").write_text(json.dumps({"wall_s": stats.wall_s}))
    # No timings inside: the same training gives a byte-identical checkpoint and sha256.
    save_checkpoint({"state_dict": model.state_dict(), "key": key,
                     "stats": {"epochs": stats.epochs, "steps": stats.steps,
                               "final_epoch_loss": stats.final_epoch_loss}}, ckpt)
    (jobdir / "train-state.pt").unlink(missing_ok=True)
    return stats


def run_student(ctx: JobContext, spec: MethodSpec, seed: int) -> Record:
    """Train (or resume) the protocol's student with one method and seed, evaluate it."""
    started, p, cfg = _now(), ctx.cfg.protocol, ctx.cfg
    torch.manual_seed(seed)  # same initial student for every method at this seed
    student = build_model(p.student_arch, p).to(cfg.device)
    hparams = spec.default_hparams().model_dump()
    source, sha = spec.cls.source_file(), spec.cls.source_hash()
    key = job_key(cfg, spec.name, seed, sha, hparams)
    stats = _train_or_resume(ctx, student, spec, seed, key, sha)
    rec = _record(ctx, student, arch=p.student_arch, method=spec.name, family=spec.cls.family,
                  hparams=hparams, source=source, seed=seed, stats=stats, started=started,
                  transfer=ctx.transfer,
                  checkpoint=checkpoint_path(cfg.results_dir, p.name, spec.name, seed))
    return rec


def run_teacher(ctx: JobContext, seed: int) -> Record:
    """The teacher's reference row: its cached weights evaluated like any student."""
    p, cfg = ctx.cfg.protocol, ctx.cfg
    source = Path(zoo.__file__)
    hparams = {"arch": p.teacher_arch}
    sha = _file_sha256(source)
    key = job_key(cfg, TEACHER, seed, sha, hparams)
    teacher = build_model(p.teacher_arch, p).to(cfg.device)
    teacher.load_state_dict(ctx.teacher.state_dict())
    stats = _train_or_resume(ctx, teacher, None, seed, key, sha)
    return _record(ctx, teacher, arch=p.teacher_arch, method=TEACHER, family="reference",
                   hparams=hparams, source=source, seed=seed, stats=stats, started=_now(),
                   transfer=None, checkpoint=checkpoint_path(cfg.results_dir, p.name, TEACHER, seed))


def run_job(ctx: JobContext, job: Job) -> JobOutcome:
    """One job, its method's failures caught and described; the record is not yet written."""
    if job.method == TEACHER:
        return JobOutcome(job.method, job.seed, record=run_teacher(ctx, job.seed))
    spec = methods.discover()[0][job.method]
    try:
        return JobOutcome(job.method, job.seed, record=run_student(ctx, spec, job.seed))
    except (KeyboardInterrupt, SystemExit, MemoryError, KdbenchError):
        raise
    except Exception as e:  # the method's fault; the other jobs go on
        return JobOutcome(job.method, job.seed, error=_describe_failure(spec, e))


def up_to_date(cfg: RunConfig, job: Job, data_fingerprint: str) -> Record | None:
    """The job's existing record, if it was made by exactly this job, on this data (a record
    made before CIFAR-10-C files were added, say, is stale) and its checkpoint is intact."""
    path = record_path(cfg.results_dir, cfg.protocol.name, job.method, job.seed)
    if cfg.fresh or not path.exists():
        return None
    try:
        rec = read_record(path)
    except RecordError:
        return None  # unreadable: the job runs again and replaces it
    if job.method == TEACHER:
        sha, hparams = _file_sha256(Path(zoo.__file__)), {"arch": cfg.protocol.teacher_arch}
    else:
        spec = methods.discover()[0][job.method]
        sha, hparams = spec.cls.source_hash(), spec.default_hparams().model_dump()
    key = job_key(cfg, job.method, job.seed, sha, hparams)
    ckpt = checkpoint_path(cfg.results_dir, cfg.protocol.name, job.method, job.seed)
    return rec if (rec.protocol_hash == key["protocol_hash"] and rec.smoke == cfg.protocol.smoke
                   and rec.method_source_sha256 == sha and rec.hparams == hparams
                   and rec.provenance.device == cfg.device
                   and rec.provenance.threads == cfg.threads
                   and rec.provenance.data_fingerprint == data_fingerprint
                   and (not cfg.full or rec.metrics.autoattack_acc is not None)
                   and rec.checkpoint is not None and ckpt.exists()
                   and file_sha256(ckpt) == rec.checkpoint.sha256) else None


def preflight(cfg: RunConfig) -> None:
    """Fail in a second, not after an hour of training, when results cannot be written."""
    for d in (cfg.results_dir, cfg.cache_dir):
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / ".kdbench-write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise RecordError(f"cannot write to {d}: {e.strerror}; choose another directory "
                              "(--results-dir / --cache-dir) or fix its permissions") from None


def run(cfg: RunConfig, reporter: Reporter,
        on_outcome: Callable[[JobOutcome], None] = lambda o: None) -> list[JobOutcome]:
    """Run every job of `cfg`; returns one outcome per job, failures and skipped ones included.
    `on_outcome` sees each outcome as it is recorded (the CLI reports them after a Ctrl-C)."""
    from bench.executors import make_executor

    names, outcomes = resolve_methods(list(cfg.methods))
    for o in outcomes:
        reporter.log(f"[red]FAILED[/] {o.error}")
    preflight(cfg)
    split = load_split(cfg.protocol, cfg.data_dir)  # on CPU; the jobs' context moves it
    jobs = []
    for job in plan(cfg, names):
        rec = up_to_date(cfg, job, split.fingerprint)
        if rec is None:
            jobs.append(job)
        else:
            outcomes.append(JobOutcome(job.method, job.seed, record=rec, skipped=True,
                                       path=record_path(cfg.results_dir, rec.protocol,
                                                        rec.method, rec.seed)))
    if len(outcomes) > len(jobs) and any(o.skipped for o in outcomes):
        skipped = sum(o.skipped for o in outcomes)
        reporter.log(f"{skipped} job(s) already have up-to-date records: skipped "
                     "(--fresh runs them again)")
    if not jobs:
        return outcomes
    with reporter.live():
        # The teacher is trained here, once, before any job needs it; jobs load it from the cache.
        ctx = JobContext.build(cfg, reporter, split=split)
        ctx.measure_efficiency()  # alone on the machine: no job runs beside the timing
        executor = make_executor(cfg, ctx)
        with reporter.task("jobs", total=len(jobs)) as bar:
            for outcome in executor.run(jobs):
                outcomes.append(_finish(cfg, outcome, reporter))
                on_outcome(outcomes[-1])
                bar.advance()
    return outcomes


def _finish(cfg: RunConfig, outcome: JobOutcome, reporter: Reporter) -> JobOutcome:
    if outcome.record is None:
        reporter.log(f"[red]FAILED[/] {outcome.error}; nothing recorded for seed {outcome.seed}")
        return outcome
    rec = outcome.record
    path = write_record(rec, cfg.results_dir)
    shutil.rmtree(state_dir(cfg, rec.method, rec.seed, rec.method_source_sha256),
                  ignore_errors=True)  # recorded: the saved training state has served
    m = rec.metrics
    flag = " [yellow]UNRELIABLE[/]" if m.unreliable else ""
    reporter.log(f"{rec.method} seed {rec.seed}: clean {m.clean_acc:.1f}%  PGD {m.pgd_acc:.1f}%  "
                 f"corruptions {m.corruptions_acc:.1f}%{flag}  -> {path}")
    return JobOutcome(rec.method, rec.seed, path, rec)
