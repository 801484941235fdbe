"""Jobs as Ray tasks: `kdbench run --executor ray [--ray-address ADDR]`.

Without an address a local Ray instance is started, bound to the loopback interface; with one,
the run joins an existing cluster (`ray start --head` on one machine, `ray start --address
HEAD:6379` on the others). Each job is a task asking for `--threads` CPUs (and one GPU with
`--device cuda`); the driver trains the teacher first, then submits every job. Tasks run the same
`run_job` as local workers, so records are identical to the local executor's.

On a multi-machine cluster, `--results-dir` and `--cache-dir` must be on storage every node sees
(NFS or similar): tasks load the cached teacher from there and write their checkpoints there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from bench.errors import UsageError
from bench.progress import Reporter
from bench.run.jobs import Job, JobContext, JobOutcome, RunConfig, run_job
from bench.train.device import configure_job

_task_ctx: JobContext | None = None


def _ray_job(cfg: RunConfig, efficiency: dict[str, dict], job: Job) -> JobOutcome:
    """Runs inside a Ray worker process; the job context is built once per process."""
    global _task_ctx
    if _task_ctx is None or _task_ctx.cfg != cfg:
        configure_job(cfg.device, cfg.threads)
        _task_ctx = JobContext.build(cfg, Reporter(quiet=True), efficiency)
    return run_job(_task_ctx, job)


def _import_ray(local: bool):
    if local:
        # Ray advertises the machine's network address even for a one-machine instance; this
        # switch keeps a local instance on 127.0.0.1 (it must be set before ray is imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, an optional extra: "
                         "pip install 'kdbench[ray]' (or `make install`, which includes it)") from None
    return ray


class RayExecutor:
    def __init__(self, cfg: RunConfig, efficiency: dict[str, dict], reporter: Reporter,
                 address: str | None):
        self.cfg, self.efficiency, self.reporter, self.address = cfg, efficiency, reporter, address

    def run(self, jobs: list[Job]) -> Iterator[JobOutcome]:
        ray = _import_ray(local=self.address is None)
        started_here = not ray.is_initialized()
        if started_here:
            options = dict(include_dashboard=False, log_to_driver=False,
                           logging_level="WARNING", configure_logging=True)
            if self.address is None:
                options.update(num_cpus=max(1, self.cfg.workers) * self.cfg.threads)
            else:
                options.update(address=self.address)
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UsageError(f"cannot connect to the Ray cluster at {self.address}: {e}"
                                 ) from None
            where = self.address or "a local Ray instance on 127.0.0.1"
            self.reporter.log(f"ray: {len(jobs)} job(s) on {where} "
                              f"({ray.cluster_resources().get('CPU', 0):g} CPUs)")
        task = ray.remote(num_cpus=self.cfg.threads,
                          num_gpus=1 if self.cfg.device == "cuda" else 0,
                          max_retries=0)(_ray_job)
        try:
            refs = {task.remote(self.cfg, self.efficiency, job): job for job in jobs}
            submitted = time.monotonic()
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                for ref in done:
                    job = refs.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as e:
                        yield JobOutcome(job.method, job.seed, error=(
                            f"the Ray task running {job.method!r} seed {job.seed} failed: "
                            f"{type(e).__name__}: {str(e).strip().splitlines()[-1]}"))
                # Tasks queue behind each other on a busy cluster, so the limit is generous:
                # each job's own limit times the number of rounds the cluster needs.
                limit = self.cfg.job_timeout and self.cfg.job_timeout * max(
                    1, -(-len(jobs) // max(1, self.cfg.workers)))
                if limit and refs and time.monotonic() - submitted > limit:
                    for ref, job in list(refs.items()):
                        ray.cancel(ref, force=True)
                        refs.pop(ref)
                        yield JobOutcome(job.method, job.seed, error=(
                            f"method {job.method!r} seed {job.seed} did not finish within "
                            f"{limit:g} s on the Ray cluster and was cancelled"))
        finally:
            if started_here:
                ray.shutdown()
