"""Where jobs run: worker processes on this machine (default), this process, or a Ray cluster.

A job's result depends only on its key (protocol, method, seed, threads per job), never on which
worker ran it or in what order, so executors are interchangeable. Small CPU models use two
single-threaded jobs better than one job on two threads, hence one worker process per core.

Worker processes also isolate the run from its jobs: a job that hangs past `--job-timeout`, or a
worker that dies (out of memory, a crash in native code), is reported as that job's failure, the
worker is replaced, and the other jobs go on.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from bench.errors import KdbenchError
from bench.progress import Reporter, Task
from bench.run.jobs import Job, JobContext, JobOutcome, RunConfig, run_job
from bench.train.device import configure_job


class InProcess:
    """Jobs one after another in this process (`--workers 0`): live per-epoch bars and easy
    debugging, but no time limit and no protection from a job that crashes the interpreter."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx

    def run(self, jobs: list[Job]) -> Iterator[JobOutcome]:
        for job in jobs:
            yield run_job(self.ctx, job)


# -- worker side ---------------------------------------------------------------------------------

class _PipeTask(Task):
    """A worker's progress bar, forwarded to the parent at most four times a second."""

    def __init__(self, conn: Connection, description: str, total: int):
        super().__init__(None, None)
        self.conn, self.description, self.total = conn, description, total
        self.done, self._info, self._sent = 0, "", 0.0
        self._send(force=True)

    def _send(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._sent > 0.25 or self.done >= self.total:
            self.conn.send(("progress", self.description, self.done, self.total, self._info))
            self._sent = now

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._send()

    def info(self, text: str) -> None:
        self._info = text
        self._send()


class _PipeReporter(Reporter):
    def __init__(self, conn: Connection):
        super().__init__(quiet=True)
        self.conn = conn

    def log(self, message: str) -> None:
        self.conn.send(("log", message))

    def bar(self, description: str, total: int) -> Task:
        return _PipeTask(self.conn, description, total)


def _worker_main(conn: Connection, cfg: RunConfig, efficiency: dict[str, dict]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    configure_job(cfg.device, cfg.threads)
    reporter = _PipeReporter(conn)
    try:
        ctx = JobContext.build(cfg, reporter, efficiency)  # the teacher comes from the cache
    except BaseException as e:
        conn.send(("init_failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready",))
    while (job := conn.recv()) is not None:
        try:
            outcome = run_job(ctx, job)
        except KdbenchError as e:
            outcome = JobOutcome(job.method, job.seed, error=str(e))
        except Exception:
            outcome = JobOutcome(job.method, job.seed, error="internal error, please report: "
                                 + traceback.format_exc(limit=-3).strip().replace("\n", " | "))
        conn.send(("done", outcome))


# -- parent side ---------------------------------------------------------------------------------

@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: Connection
    bar: Task
    ready: bool = False
    job: Job | None = None
    started: float = 0.0
    log: list[str] = field(default_factory=list)


class WorkerPool:
    """`workers` long-lived processes, one job each at a time, outcomes as they finish."""

    def __init__(self, cfg: RunConfig, efficiency: dict[str, dict], reporter: Reporter):
        self.cfg, self.efficiency, self.reporter = cfg, efficiency, reporter
        self._mp = multiprocessing.get_context("spawn")  # no forked OpenMP or CUDA state

    def _start(self, n: int) -> _Worker:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(target=_worker_main, args=(child, self.cfg, self.efficiency),
                                   name=f"kdbench-worker-{n}", daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent, self.reporter.bar(f"worker {n}: starting", 1))

    @staticmethod
    def _stop(w: _Worker, kill: bool = False) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            if not kill:
                w.conn.send(None)
        w.process.join(timeout=0 if kill else 5)
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        w.bar.close()

    def run(self, jobs: list[Job]) -> Iterator[JobOutcome]:
        pending = collections.deque(jobs)
        count = min(self.cfg.workers, len(jobs))
        workers = [self._start(i + 1) for i in range(count)]
        timeout = self.cfg.job_timeout
        try:
            while pending or any(w.job for w in workers):
                for w in workers:
                    if w.ready and w.job is None and pending:
                        w.job, w.started = pending.popleft(), time.monotonic()
                        w.conn.send(w.job)
                deadlines = [w.started + timeout - time.monotonic()
                             for w in workers if w.job and timeout]
                wait([w.conn for w in workers] + [w.process.sentinel for w in workers],
                     timeout=max(0.0, min(deadlines)) if deadlines else 1.0)
                for i, w in enumerate(workers):
                    outcome, replace = self._poll(w, timeout)
                    if outcome is not None:
                        yield outcome
                    if replace:
                        self._stop(w, kill=True)
                        workers[i] = self._start(i + 1)
        finally:
            for w in workers:
                self._stop(w, kill=True)

    def _poll(self, w: _Worker, timeout: float | None) -> tuple[JobOutcome | None, bool]:
        """Handle what a worker said; (a finished or failed job's outcome, replace the worker)."""
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                kind = msg[0]
                if kind == "ready":
                    w.ready = True
                    w.bar.reset("worker: idle", 1)
                elif kind == "log":
                    self.reporter.log(msg[1])
                elif kind == "progress" and w.job:
                    _, what, done, total, info = msg
                    w.bar.reset(f"{w.job.method} seed {w.job.seed}: {what}", max(total, 1),
                                completed=done, info=info)
                elif kind == "done":
                    job, w.job = w.job, None
                    w.bar.reset("worker: idle", 1)
                    return msg[1], False
                elif kind == "init_failed":
                    raise KdbenchError(f"a worker process could not start: {msg[1]}")
        except (EOFError, OSError):
            pass  # the worker is gone; its sentinel tells the rest below
        job = w.job
        if not w.process.is_alive():
            if job is None and not w.ready:
                raise KdbenchError("a worker process died while starting (exit code "
                                   f"{w.process.exitcode}); rerun with --workers 0 to see why")
            w.job = None
            return (JobOutcome(job.method, job.seed, error=(
                f"the worker running {job.method!r} seed {job.seed} died (exit code "
                f"{w.process.exitcode}: out of memory, or a crash in native code); rerun with "
                "--workers 0 to see where")) if job else None), True
        if job is not None and timeout and time.monotonic() - w.started > timeout:
            w.job = None
            return JobOutcome(job.method, job.seed, error=(
                f"method {job.method!r} seed {job.seed} exceeded the per-job time limit of "
                f"{timeout:g} s and was stopped; raise --job-timeout if it is just slow")), True
        return None, False


def default_workers(device: str) -> int:
    """One single-threaded job per available core on CPU; one job at a time on a GPU."""
    return 1 if device != "cpu" else max(1, len(os.sched_getaffinity(0)))
