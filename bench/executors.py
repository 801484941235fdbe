"""Where jobs run: in this process, or in a pool of worker processes.

Every job's result depends only on (protocol, method, seed, threads per job), never on which
worker ran it or in what order, so executors are interchangeable. Small CPU models use two
single-threaded jobs better than one job on two threads, hence the process pool.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool

import torch

from bench import gpu_speed
from bench.progress import Reporter
from bench.runner import Job, JobContext, JobOutcome, RunConfig, run_job


def configure_torch(cfg: RunConfig) -> None:
    """The per-job settings records depend on; the same in every process."""
    torch.set_num_threads(cfg.threads)
    if cfg.device == "cpu":
        torch.use_deterministic_algorithms(True)
    gpu_speed.configure(cfg.device)


class InProcess:
    """Jobs one after another in this process, with live progress bars."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx

    def run(self, jobs: list[Job]) -> Iterator[JobOutcome]:
        for job in jobs:
            yield run_job(self.ctx, job)


_worker_ctx: JobContext | None = None


def _init_worker(cfg: RunConfig, efficiency: dict[str, dict]) -> None:
    global _worker_ctx
    configure_torch(cfg)
    # The teacher comes from the cache; efficiency was measured by the parent, alone.
    _worker_ctx = JobContext.build(cfg, Reporter(quiet=True), efficiency)


def _worker_job(job: Job) -> JobOutcome:
    return run_job(_worker_ctx, job)


class ProcessPool:
    """Jobs in `workers` processes (spawned: no forked OpenMP state), outcomes as they finish."""

    def __init__(self, cfg: RunConfig, efficiency: dict[str, dict]):
        self.cfg, self.efficiency = cfg, efficiency

    def run(self, jobs: list[Job]) -> Iterator[JobOutcome]:
        pool = cf.ProcessPoolExecutor(max_workers=min(self.cfg.workers, len(jobs)),
                                      mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_worker,
                                      initargs=(self.cfg, self.efficiency))
        futures = {pool.submit(_worker_job, job): job for job in jobs}
        try:
            for future in cf.as_completed(futures):
                job = futures[future]
                try:
                    yield future.result()
                except BrokenProcessPool:
                    yield JobOutcome(job.method, job.seed, error=(
                        f"the worker process running {job.method!r} seed {job.seed} died "
                        "(out of memory, or a crash in native code); rerun with --workers 1 "
                        "to see where"))
        except BaseException:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()  # Ctrl-C: stop at once, finished records are already written
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


def default_workers(device: str) -> int:
    """One single-threaded job per available core on CPU; one job at a time on a GPU."""
    return 1 if device != "cpu" else max(1, len(os.sched_getaffinity(0)))


def make_executor(cfg: RunConfig, ctx: JobContext):
    if cfg.workers <= 1:
        return InProcess(ctx)
    return ProcessPool(cfg, ctx.efficiency)
