"""Runs a benchmark: the protocol's teacher once, then every (method, seed) job, then records.

Read top to bottom, `run()` is the whole flow: resolve the methods, plan the jobs, skip those whose
record is current (bench/run/spec.py: `staleness`), train the teacher once (cached), measure the
architectures' size and speed alone on the machine, hand the jobs to an executor (this process,
worker processes, or a Ray cluster: bench/run/executors.py), and write each record as it comes.

Nothing is lost to an interruption: a rerun skips jobs whose record is current, evaluates jobs
whose final checkpoint exists, and resumes training from the last completed epoch
(`<cache-dir>/jobs/...`): the records equal those of an uninterrupted run, timings aside.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable

import methods
from bench.data.registry import load_split
from bench.errors import RecordError, UsageError
from bench.progress import Reporter
from bench.records.layout import read_record, record_path, write_record
from bench.records.schema import Record
from bench.run.executors import InProcess, WorkerPool
from bench.run.jobs import Job, JobContext, JobOutcome, RunConfig, state_dir
from bench.run.spec import TEACHER, job_seeds, job_spec, staleness


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


def plan(cfg: RunConfig, names: Iterable[str]) -> list[Job]:
    """Every job of the run: the teacher row once, each method once per chosen seed."""
    return [Job(n, s) for n in names
            for s in (job_seeds(cfg.protocol, n) if n == TEACHER else cfg.seeds)]


def up_to_date(cfg: RunConfig, job: Job, data_fingerprint: str
               ) -> tuple[Record | None, list[str]]:
    """The job's existing record if nothing makes it stale for this run (else None), and why
    an existing record is stale."""
    path = record_path(cfg.results_dir, cfg.protocol.name, job.method, job.seed)
    if cfg.fresh or not path.exists():
        return None, []
    try:
        rec = read_record(path)
    except RecordError as e:
        return None, [str(e)]  # unreadable: the job runs again and replaces it
    reasons = staleness(rec, job_spec(cfg.protocol, job.method, job.seed), cfg.protocol,
                        results_dir=cfg.results_dir, device=cfg.device, threads=cfg.threads,
                        data_fingerprint=data_fingerprint, full=cfg.full)
    return (None if reasons else rec), reasons


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


def make_executor(cfg: RunConfig, ctx: JobContext):
    if cfg.executor == "ray":
        from bench.run.ray_executor import RayExecutor
        return RayExecutor(cfg, ctx.efficiency, ctx.reporter, cfg.ray_address)
    if cfg.workers <= 0:
        return InProcess(ctx)
    return WorkerPool(cfg, ctx.efficiency, ctx.reporter)


def run(cfg: RunConfig, reporter: Reporter,
        on_outcome: Callable[[JobOutcome], None] = lambda o: None) -> list[JobOutcome]:
    """Run every job of `cfg`; returns one outcome per job, failures and skipped ones included.
    `on_outcome` sees each outcome as it is recorded (the CLI reports them after a Ctrl-C)."""
    names, outcomes = resolve_methods(list(cfg.methods))
    for o in outcomes:
        reporter.log(f"[red]FAILED[/] {o.error}")
    preflight(cfg)
    split = load_split(cfg.protocol, cfg.data_dir)  # on CPU; the jobs' context moves it
    jobs = []
    for job in plan(cfg, names):
        rec, stale = up_to_date(cfg, job, split.fingerprint)
        if stale:
            reporter.log(f"{job.method} seed {job.seed}: running again, its record "
                         + "; ".join(stale))
        if rec is None:
            jobs.append(job)
        else:
            outcomes.append(JobOutcome(job.method, job.seed, record=rec, skipped=True))
    skipped = sum(o.skipped for o in outcomes)
    if skipped:
        reporter.log(f"{skipped} job(s) already have up-to-date records: skipped "
                     "(--fresh runs them again)")
    if not jobs:
        return outcomes
    with reporter.live():
        # The teacher is trained here, once, before any job needs it; jobs load it from the cache.
        ctx = JobContext.build(cfg, reporter, split=split)
        ctx.measure_efficiency()  # alone on the machine: no job runs beside the timing
        ctx.prepare()
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
    # Recorded: the saved training state has served.
    shutil.rmtree(state_dir(cfg, job_spec(cfg.protocol, rec.method, rec.seed)), ignore_errors=True)
    m = rec.metrics
    flag = " [yellow]UNRELIABLE[/]" if m.unreliable else ""
    reporter.log(f"{rec.method} seed {rec.seed}: clean {m.clean_acc:.1f}%  PGD {m.pgd_acc:.1f}%  "
                 f"corruptions {m.corruptions_acc:.1f}%{flag}  -> {path}")
    return outcome
