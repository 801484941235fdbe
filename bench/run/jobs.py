"""Running one job: its run configuration, the context every job of a run shares, and `run_job`.

A job trains (or resumes) the protocol's student with one method and seed, evaluates the final
weights and returns its record, not yet written. A failure of the method (import error, exception,
non-finite loss, wrong output) comes back as the job's error, naming the method and its file;
the other jobs go on.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.checkpoints import load_weights, save_weights
from bench.data.registry import load_split
from bench.data.split import Split
from bench.errors import KdbenchError, MethodError
from bench.eval import deployment
from bench.eval.corruptions import CorruptedTestSet
from bench.eval.sanity import TransferSource
from bench.eval.suite import default_evaluators, evaluate, measure_efficiency
from bench.files import file_sha256
from bench.models.registry import build_model
from bench.progress import Reporter
from bench.protocols import Protocol
from bench.provenance import environment
from bench.records.layout import checkpoint_path
from bench.records.schema import Record
from bench.run.spec import TEACHER, JobSpec, job_spec, method_spec
from bench.train.device import compile_for_training
from bench.train.engine import TrainStats, build_method, train
from bench.train.teacher import Teacher, get_teacher, teacher_key
from bench.train.teacher_outputs import TeacherSource, teacher_source


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
    model_dir: Path | None = None  # RobustBench's model_dir, for a zoo teacher (--model-dir)


@dataclass(frozen=True)
class Job:
    method: str
    seed: int


@dataclass(frozen=True)
class JobOutcome:
    method: str
    seed: int | None
    record: Record | None = None
    error: str | None = None
    skipped: bool = False  # an up-to-date record existed


def state_dir(cfg: RunConfig, spec: JobSpec) -> Path:
    """Where an unfinished job keeps its training state; a changed job never resumes from it."""
    p = cfg.protocol
    return (cfg.cache_dir / "jobs" / f"{p.name}-{p.hash}"
            / f"{spec.method}-{spec.key[:12]}-{cfg.device}-t{cfg.threads}" / f"seed-{spec.seed}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class JobContext:
    """What every job of a run shares, built once per process: data, teacher, caches."""

    cfg: RunConfig
    split: Split
    teacher: torch.nn.Module
    teacher_stats: TrainStats | None  # None: a zoo teacher, not trained here
    teacher_outputs: TeacherSource  # index cache, or online under augmentation
    transfer: TransferSource
    corrupted: CorruptedTestSet
    reporter: Reporter = field(default_factory=lambda: Reporter(quiet=True))
    # Per architecture: its `efficiency` section, and under deployment.latency_key(arch) its
    # deployment latency; measured once, before any job runs.
    efficiency: dict[str, dict] = field(default_factory=dict)
    teacher_source: dict | None = None  # a zoo teacher's identity and check, for every record

    @classmethod
    def build(cls, cfg: RunConfig, reporter: Reporter,
              efficiency: dict[str, dict] | None = None, split: Split | None = None
              ) -> JobContext:
        split = (split or load_split(cfg.protocol, cfg.data_dir)).to(cfg.device)
        t: Teacher = get_teacher(cfg.protocol, split, cfg.cache_dir, cfg.device, reporter,
                                 compile=cfg.compile, model_dir=cfg.model_dir)
        transfer = cfg.cache_dir / "transfer" / (
            f"{cfg.protocol.name}-{teacher_key(cfg.protocol)}-{split.fingerprint[:8]}-"
            f"{cfg.device}-t{cfg.threads}.pt")
        return cls(cfg, split, t.model, t.stats,
                   teacher_source(cfg.protocol, t.model, split.x_train),
                   TransferSource(t.model, "teacher", transfer),
                   CorruptedTestSet(split.x_test, cfg.protocol.eval.seed,
                                    split.corruption_files,
                                    suite=cfg.protocol.eval.corruption_suite), reporter,
                   efficiency or {}, t.source)

    def prepare(self) -> None:
        """What every job of the run shares, computed once before the jobs start: the transfer
        check's adversarial examples (cached on disk for the worker processes)."""
        n = min(self.cfg.protocol.eval.sanity_n, len(self.split.x_test))
        self.transfer.examples(self.split.x_test[:n], self.split.y_test[:n], self.cfg.protocol)

    def measure_efficiency(self) -> None:
        """Size, FLOPs and latency of both architectures, measured before any job runs."""
        p = self.cfg.protocol
        self.reporter.log("measuring size and latency of the teacher and student architectures")
        models = {p.teacher_arch: self.teacher, p.student_arch: build_model(p.student_arch, p)}
        self.efficiency = {arch: measure_efficiency(m, p) for arch, m in models.items()}
        if p.deploy.enabled:
            for arch, m in models.items():
                self.efficiency[deployment.latency_key(arch)] = deployment.measure_latency(
                    m, arch, p, self.split.x_train, self.efficiency[arch])


def _record(ctx: JobContext, model: torch.nn.Module, spec: JobSpec, stats: TrainStats | None,
            started: datetime) -> Record:
    cfg, t0 = ctx.cfg, time.perf_counter()
    deploy = deployment.Deployment(spec.arch, ctx.split.x_train,
                                   ctx.efficiency.get(deployment.latency_key(spec.arch)))
    metrics = evaluate(model, cfg.protocol, ctx.split.x_test, ctx.split.y_test, cfg.device,
                       ctx.reporter, full=cfg.full,
                       transfer=None if spec.method == TEACHER else ctx.transfer,
                       corrupted=ctx.corrupted, evaluators=(*default_evaluators(), deploy),
                       fault_key=f"{spec.method}:{spec.seed}")
    metrics["efficiency"] = ctx.efficiency[spec.arch]
    ckpt = checkpoint_path(cfg.results_dir, spec.protocol, spec.method, spec.seed)
    files = ctx.split.corruption_files
    return Record(
        protocol=spec.protocol, protocol_hash=spec.protocol_hash, smoke=spec.smoke,
        method=spec.method, family=spec.family, hparams=spec.hparams,
        method_source=spec.method_source, method_source_sha256=spec.sources[spec.method_source],
        seed=spec.seed, job_key=spec.key, harness_version=spec.harness_version, arch=spec.arch,
        sources=spec.sources, teacher_key=spec.teacher_key,
        metrics=metrics, training=None if stats is None else stats.__dict__,
        teacher_source=ctx.teacher_source,
        eval_wall_s=round(time.perf_counter() - t0, 3),
        provenance={**environment(cfg.device), "data_fingerprint": ctx.split.fingerprint,
                    "corruptions_from_files": ([] if files is None else
                                               [c for c in cfg.protocol.eval.corruptions
                                                if c in files]),
                    "started_at": started, "finished_at": _now()},
        checkpoint={"file": ckpt.relative_to(cfg.results_dir).as_posix(),
                    "sha256": file_sha256(ckpt), "bytes": ckpt.stat().st_size},
    )


def _trained_before(ctx: JobContext, spec: JobSpec, model: torch.nn.Module) -> TrainStats | None:
    """The stats of this job's training when an interrupted run finished it (its final
    checkpoint is there, made by this very job), with its weights loaded into `model`."""
    cfg = ctx.cfg
    ckpt = checkpoint_path(cfg.results_dir, spec.protocol, spec.method, spec.seed)
    if not ckpt.exists():
        return None
    state_dict, meta = load_weights(ckpt, cfg.device)
    if meta.get("job") != _weights_id(cfg, spec):
        return None
    model.load_state_dict(state_dict)
    timing = state_dir(cfg, spec) / "trained.json"
    wall = json.loads(timing.read_text())["wall_s"] if timing.exists() else None
    return TrainStats(**meta["stats"], wall_s=wall)


def _weights_id(cfg: RunConfig, spec: JobSpec) -> dict:
    return {"key": spec.key, "device": cfg.device, "threads": cfg.threads}


def _train_or_resume(ctx: JobContext, model: torch.nn.Module, spec: JobSpec
                     ) -> TrainStats | None:
    """Train `model` for the job, or reuse what an interrupted run of the same job left: the final
    checkpoint (training done) or the last epoch's training state. Writes the final checkpoint.
    None: the teacher row of a zoo teacher, whose weights are the zoo's (nothing trained)."""
    cfg, p = ctx.cfg, ctx.cfg.protocol
    ckpt = checkpoint_path(cfg.results_dir, spec.protocol, spec.method, spec.seed)
    if spec.method == TEACHER and ctx.teacher_stats is None:
        model.load_state_dict(ctx.teacher.state_dict())
        save_weights(ckpt, model.state_dict(), {"job": _weights_id(cfg, spec), "stats": None})
        return None
    jobdir = state_dir(cfg, spec)
    if cfg.fresh:
        ckpt.unlink(missing_ok=True)
        for f in ("train-state.pt", "trained.json"):
            (jobdir / f).unlink(missing_ok=True)
    stats = _trained_before(ctx, spec, model)
    if stats is not None:
        return stats
    if spec.method == TEACHER:  # trained and cached by get_teacher()
        model.load_state_dict(ctx.teacher.state_dict())
        stats = ctx.teacher_stats
    else:
        mspec = method_spec(spec.method)
        teacher = ctx.teacher if mspec.cls.uses_teacher else None
        method = build_method(mspec.cls, mspec.default_hparams(), p, model, teacher,
                              ctx.split.x_train)
        stats = train(compile_for_training(model, cfg.compile), method, p.student_recipe,
                      ctx.split.x_train, ctx.split.y_train, spec.seed,
                      ctx.teacher_outputs if teacher is not None else None, ctx.reporter,
                      label=f"{spec.method} seed {spec.seed}",
                      state_path=jobdir / "train-state.pt",
                      fault_key=f"{spec.method}:{spec.seed}", augmentation=p.augmentation)
    jobdir.mkdir(parents=True, exist_ok=True)
    (jobdir / "trained.json").write_text(json.dumps({"wall_s": stats.wall_s}))
    meta = {"job": _weights_id(cfg, spec),
            "stats": {k: v for k, v in stats.__dict__.items() if k != "wall_s"}}
    save_weights(ckpt, model.state_dict(), meta)
    (jobdir / "train-state.pt").unlink(missing_ok=True)
    return stats


def _describe_failure(method: str, exc: BaseException) -> str:
    if isinstance(exc, MethodError):
        return str(exc)
    src = method_spec(method).cls.source_file()
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() == src]
    where = f" at line {frames[-1].lineno}" if frames else ""
    return f"method {method!r} ({src}): raised {type(exc).__name__}: {exc}{where}"


def run_job(ctx: JobContext, job: Job) -> JobOutcome:
    """One job, its method's failures caught and described; the record is not yet written.

    Every student starts from the same initial weights at a seed, whatever its method."""
    started, p = _now(), ctx.cfg.protocol
    spec = job_spec(p, job.method, job.seed)
    torch.manual_seed(job.seed)
    model = build_model(spec.arch, p).to(ctx.cfg.device)
    try:
        stats = _train_or_resume(ctx, model, spec)
        return JobOutcome(job.method, job.seed, record=_record(ctx, model, spec, stats, started))
    except (KeyboardInterrupt, SystemExit, MemoryError, KdbenchError):
        raise
    except Exception as e:  # the method's fault; the other jobs go on
        if job.method == TEACHER:
            raise
        return JobOutcome(job.method, job.seed, error=_describe_failure(job.method, e))
