"""The `kdbench` command line: long because every command's options and help text live here;
the logic is in the modules each command imports."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from bench.cli_export import export_robustbench
from bench.errors import KdbenchError, UsageError
from bench.progress import make_console
from bench.protocols import DEFAULT_PROTOCOL, get_protocol

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="kdbench: a robustness benchmark for knowledge-distillation methods.")
out = make_console()
err = make_console(stderr=True)
app.command("export-robustbench")(export_robustbench)  # bench/cli_export.py

DEFAULT_RESULTS = Path("results")
SMOKE_RESULTS = Path(".kdbench/smoke-results")
DEFAULT_CACHE = Path(os.environ.get("KDBENCH_CACHE_DIR", ".kdbench/cache"))


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UsageError("expected a comma-separated list, got an empty one")
    return items


def _seeds(value: str | None) -> list[int] | None:
    items = _csv(value)
    if items is None:
        return None
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise UsageError(f"--seeds takes non-negative integers like 0,1,2, not {value!r}") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct non-negative integers, not {value!r}")
    return seeds


def _device(value: str) -> str:
    import torch
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine; use --device cpu")
    if value not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu, cuda or auto, not {value!r}")
    return value


@app.command()
def run(
    protocol: Annotated[str, typer.Option(help="Protocol to run (see `kdbench protocols`).")] = DEFAULT_PROTOCOL,
    methods: Annotated[Optional[str], typer.Option(help="Comma-separated methods; default: teacher row and every registered method.")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Comma-separated seeds; default: the protocol's.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto (cuda when present).")] = "auto",
    results_dir: Annotated[Optional[Path], typer.Option(help="Where records go [default: results, or .kdbench/smoke-results with --smoke].")] = None,
    cache_dir: Annotated[Path, typer.Option(help="Where the trained teacher is cached.")] = DEFAULT_CACHE,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset directory, for protocols whose data lives on disk.")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="2 short epochs on 1,000 images, 200 test images: 'does my method run?'. Records are never leaderboard results.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Also run AutoAttack (reference implementation, standard version): slow.")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the teacher and students for training (CUDA only; the first epochs pay the compile time).")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Jobs run at once, each in a worker process [default: one per core on CPU, 1 on GPU]; 0 runs them in this process (debugging: no time limit).")] = None,
    threads: Annotated[int, typer.Option(help="torch threads per job; records are reproducible for the same value.")] = 1,
    job_timeout: Annotated[float, typer.Option(help="Seconds a job may take before it is stopped and reported as failed.")] = 3600.0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Rerun every job: ignore up-to-date records, checkpoints and saved training states.")] = False,
    executor: Annotated[str, typer.Option(help="local (worker processes on this machine) or ray.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="With --executor ray: join this cluster (HOST:PORT) instead of starting a local instance.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (CI, logs).")] = False,
    teacher: Annotated[Optional[str], typer.Option(help="robustbench:NAME: RobustBench's CIFAR-10 L-inf zoo model NAME is the teacher, not trained; its records go under PROTOCOL+robustbench-NAME.")] = None,
    model_dir: Annotated[Optional[Path], typer.Option(help="With --teacher: RobustBench's model directory, holding cifar10/Linf/NAME.pt [default: ./models, as robustbench's].")] = None,
) -> None:
    """Train the teacher once, distil every method into the student, evaluate, write records."""
    from bench import report
    from bench.progress import Reporter
    from bench.run import runner
    from bench.run.executors import default_workers
    from bench.run.jobs import RunConfig
    from bench.train.device import configure_job
    from bench.models.zoo_checkpoint import with_zoo_teacher

    p = with_zoo_teacher(get_protocol(protocol), teacher, model_dir)
    if smoke:
        p = p.for_smoke()
    chosen_seeds = _seeds(seeds) or list(p.seeds)
    if threads < 1 or (workers is not None and workers < 0) or job_timeout <= 0:
        raise UsageError("--threads must be at least 1, --workers at least 0, --job-timeout "
                         "positive")
    dev = _device(device)
    if compile and dev != "cuda":
        raise UsageError("--compile is for CUDA runs (it compiles for the GPU); drop it on CPU")
    if executor not in ("local", "ray"):
        raise UsageError(f"--executor must be local or ray, not {executor!r}")
    if ray_address is not None and executor != "ray":
        raise UsageError("--ray-address needs --executor ray")
    cfg = RunConfig(
        protocol=p, methods=tuple(_csv(methods) or runner.available_methods()),
        seeds=tuple(chosen_seeds), device=dev,
        results_dir=results_dir or (SMOKE_RESULTS if smoke else DEFAULT_RESULTS),
        cache_dir=cache_dir, data_dir=data_dir, full=full,
        workers=default_workers(dev) if workers is None else workers, threads=threads,
        fresh=fresh, job_timeout=job_timeout, executor=executor, ray_address=ray_address,
        compile=compile, model_dir=model_dir)
    configure_job(cfg.device, cfg.threads)
    reporter = Reporter(quiet=quiet)
    reporter.log(f"kdbench run: protocol {p.name} ({p.hash}{', smoke' if smoke else ''}), "
                 f"seeds {list(cfg.seeds)}, device {dev}, "
                 f"{cfg.workers or 'no'} worker process(es) x {cfg.threads} thread(s), "
                 f"records -> {cfg.results_dir}")
    finished: list = []
    try:
        outcomes = runner.run(cfg, reporter, on_outcome=finished.append)
    except KeyboardInterrupt:
        done = [f"{o.method} seed {o.seed}" for o in finished if o.record is not None]
        err.print(f"[yellow]interrupted[/]: {len(done)} job(s) finished and recorded"
                  f"{': ' + ', '.join(done) if done else ''}. Nothing half-written was kept. "
                  "Rerun the same command to resume: finished jobs are skipped, interrupted "
                  "ones continue from their last completed epoch.", highlight=False)
        raise typer.Exit(130) from None
    done = [o.record for o in outcomes if o.record is not None]
    if done:
        out.print(report.table(done, title=f"{p.name} ({p.hash})"))
    failed = [o for o in outcomes if o.error]
    if failed:
        err.print(f"[red]{len(failed)} job(s) failed[/]:")
        for o in failed:
            err.print(f"  - {o.error}", highlight=False)
        raise typer.Exit(1)


@app.command()
def protocols() -> None:
    """List the registered protocols."""
    from bench.report import protocols_table
    out.print(protocols_table(DEFAULT_PROTOCOL))


@app.command("methods")
def list_methods() -> None:
    """List the registered methods (and any that failed to load)."""
    import methods as registry
    from bench.report import methods_table
    specs, errors = registry.discover()
    out.print(methods_table(specs))
    for e in errors:
        err.print(f"[red]could not load[/] {e.source}: {e.problem}", highlight=False)
    if errors:
        raise typer.Exit(1)


@app.command()
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Record files or directories [default: results].")] = None,
    allow_smoke: Annotated[bool, typer.Option("--allow-smoke", help="Accept --smoke records.")] = False,
) -> None:
    """Check records and entries: schema, ranges, protocol and hash, layout, that each record is
    current (made by today's code and teacher), duplicates, one data set per protocol, and each
    entry.json against the seed records beside it. Exits 1 on any problem."""
    from bench.run.checks import validate_paths
    v = validate_paths(paths or [DEFAULT_RESULTS], allow_smoke=allow_smoke)
    for _, msg in v.problems:
        err.print(f"[red]invalid[/] {msg}", highlight=False)
    bad = len(v.bad)
    out.print(f"{v.records + v.entries - bad} valid, {bad} invalid file(s) ({v.records} "
              f"record(s), {v.entries} entr{'y' if v.entries == 1 else 'ies'})")
    if bad:
        raise typer.Exit(1)


@app.command()
def submit(
    method: Annotated[str, typer.Option(help="The method to submit.")],
    protocol: Annotated[str, typer.Option(help="Its protocol.")] = DEFAULT_PROTOCOL,
    results_dir: Annotated[Path, typer.Option(help="Where its records are.")] = DEFAULT_RESULTS,
) -> None:
    """Check a method's records are complete and current, then write its leaderboard entry."""
    from bench import __version__, report
    from bench.records import checkpoint_path, record_path
    from bench.records.submission import build_entry, write_entry
    from bench.run.checks import submission_problems
    from bench.records.validate import results_protocol
    from bench.run.spec import TEACHER, job_seeds, method_spec
    p = results_protocol(protocol, results_dir)
    if method != TEACHER:
        method_spec(method)  # a clear error for an unknown or broken method
    records, problems, rerun = submission_problems(p, method, results_dir)
    if problems:
        err.print(f"[red]{method} is not ready to submit[/] under {p.name} ({p.hash}):",
                  highlight=False)
        for msg in problems:
            err.print(f"  - {msg}", highlight=False)
        seeds = ",".join(map(str, rerun))
        err.print(f"run: kdbench run {p.run_options} --methods {method} --seeds {seeds} "
                  f"--results-dir {results_dir}, then submit again", highlight=False)
        raise typer.Exit(1)
    path = write_entry(build_entry(records, __version__), results_dir)
    out.print(report.table(records, title=f"{method} on {p.name} ({p.hash})"))
    seeds = job_seeds(p, method)
    files = [path] + [record_path(results_dir, p.name, method, s) for s in seeds]
    files += [checkpoint_path(results_dir, p.name, method, s) for s in seeds]
    if method != TEACHER:
        from bench.provenance import relative_to_repo
        src = method_spec(method).cls.source_file()
        test = src.parent.parent / "tests" / f"test_method_{method}.py"
        files = [Path(relative_to_repo(src))] + ([Path(relative_to_repo(test))] if test.exists()
                                                   else []) + files
    out.print(f"wrote {path}\n\nFor the pull request, add these files:")
    for f in files:
        out.print(f"  {f}", highlight=False)
    out.print("and paste the table above into its description. CI runs `kdbench validate`; a "
              "maintainer runs `kdbench verify` on a record to mark it verified.")


@app.command()
def verify(
    record: Annotated[Path, typer.Argument(help="The record (seed-N.json) to verify.")],
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto.")] = "cpu",
    tolerance: Annotated[float, typer.Option(help="Allowed difference, percentage points.")] = 0.5,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset directory, for protocols whose data lives on disk.")] = None,
) -> None:
    """Reload a record's checkpoint (weights only), re-evaluate clean and PGD accuracy, and mark
    the record verified when both match within the tolerance."""
    from bench.run.verify import verify as run_verify
    if not record.exists():
        raise UsageError(f"{record}: no such file")
    rec, v = run_verify(record, _device(device), tolerance, data_dir)
    for name, got, want in (("clean", v.clean_acc, rec.metrics.clean_acc),
                            ("PGD", v.pgd_acc, rec.metrics.pgd_acc)):
        out.print(f"{name}: recorded {want:.2f}%, re-evaluated {got:.2f}% "
                  f"(difference {abs(got - want):.2f} pts)")
    if v.ok:
        out.print(f"[green]verified[/] within {tolerance} pts; written to {record}")
    else:
        err.print(f"[red]mismatch[/]: beyond the {tolerance} pts tolerance; {record} now says "
                  "verification failed", highlight=False)
        raise typer.Exit(1)


@app.command()
def export(
    method: Annotated[str, typer.Option(help="The method whose record to export (teacher: the teacher row).")],
    seed: Annotated[int, typer.Option(help="The record's seed.")],
    protocol: Annotated[str, typer.Option(help="Its protocol.")] = DEFAULT_PROTOCOL,
    results_dir: Annotated[Path, typer.Option(help="Where its record and checkpoint are.")] = DEFAULT_RESULTS,
    int8: Annotated[bool, typer.Option("--int8", help="Quantise to int8 as the benchmark does (static, QDQ, per-channel; the protocol's calibration images).")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The .onnx file to write [default: METHOD-seedN.onnx, or METHOD-seedN-int8.onnx].")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset directory, for protocols whose data lives on disk.")] = None,
) -> None:
    """Write the deployable ONNX model of a record from its checkpoint (checked against the
    record's sha256); print its accuracy, size and latency under ONNX Runtime."""
    from bench.run.export import export_record
    r = export_record(method, seed, protocol, results_dir, int8, output, data_dir)
    out.print(f"wrote {r.path}: {'int8' if r.int8 else 'fp32'} ONNX, {r.size_bytes:,} bytes",
              highlight=False)
    out.print(f"accuracy {r.clean_acc:.2f}% on the first {r.n} test examples (ONNX Runtime); the "
              f"record: {r.recorded_clean_acc:.2f}% (PyTorch, every test example); fp32 ONNX "
              f"logits within {r.logit_max_abs_diff:.2g} of PyTorch's", highlight=False)
    for name, timings in r.timings.items():
        out.print(f"latency, {name}: " + ", ".join(
            f"batch {t['batch']} {t['median_ms']:.3g} ms" for t in timings), highlight=False)


@app.command()
def show(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Record files or directories [default: results].")] = None,
    rank_by: Annotated[str, typer.Option(help="The metric the rank ranges are by: clean, corruptions, fgsm, pgd, autoattack, robust, auc, mce, rel_mce.")] = "robust",
) -> None:
    """Print the summary table (mean ± 95 % CI over seeds, rank ranges) of existing records."""
    from bench import report
    from bench.records import find_records, read_record
    records = [read_record(f) for f in find_records(paths or [DEFAULT_RESULTS])]
    if not records:
        raise UsageError("no records found; run `kdbench run` first")
    out.print(report.table(records, rank_by=rank_by))


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Method A.")],
    b: Annotated[str, typer.Argument(help="Method B.")],
    protocol: Annotated[str, typer.Option(help="Their protocol (its registered definition).")] = DEFAULT_PROTOCOL,
    results_dir: Annotated[Path, typer.Option(help="Where their records are.")] = DEFAULT_RESULTS,
    metric: Annotated[Optional[list[str]], typer.Option(help="A metric to compare (repeatable): clean, corruptions, fgsm, pgd, autoattack, robust, auc [default: every one both have].")] = None,
) -> None:
    """Paired comparison of two methods over their shared seeds: per metric the mean difference
    with its 95 % CI, the paired t-test, each seed's exact McNemar test, and the verdict at 0.05
    after Holm's correction over the metrics shown (docs/statistics.md)."""
    from bench import report
    from bench.records.pairs import compare_methods
    comparisons = compare_methods(results_dir, get_protocol(protocol), a, b, metric)
    out.print(report.comparison_table(a, b, comparisons))
    for line in report.verdict_lines(a, b, comparisons):
        out.print(line, highlight=False)


@app.command("new-method")
def new_method(
    name: Annotated[str, typer.Argument(help="The method's name: lowercase, digits, underscores.")],
    root: Annotated[Path, typer.Option(help="Repository root holding methods/ and tests/.")] = Path("."),
) -> None:
    """Write methods/NAME.py (a working, commented template) and a test for it."""
    import methods as registry
    from bench.scaffold import write_method
    specs, errors = registry.discover()
    files = write_method(name, root, set(specs) | {e.module for e in errors})
    for f in files:
        out.print(f"wrote {f}")
    out.print(f"next: edit {files[0]}, then `kdbench run --smoke --methods {name}` and "
              f"`python -m pytest {files[1]}` (docs/adding-a-method.md)")


@app.command()
def leaderboard(
    results_dir: Annotated[Path, typer.Option(help="Records to show.")] = DEFAULT_RESULTS,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    repo_url: Annotated[Optional[str], typer.Option(help="Base URL that method source paths are linked under, e.g. https://github.com/ORG/kdbench/blob/main [default: $KDBENCH_REPO_URL, else paths are shown as text].")] = None,
) -> None:
    """Serve the Streamlit leaderboard of the records under --results-dir (reads records only)."""
    from bench.serve import streamlit_command
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, not {port}")
    cmd, env = streamlit_command(results_dir, host, port, repo_url)
    if not results_dir.is_dir():
        err.print(f"[yellow]note:[/] {results_dir} does not exist yet; the page says how to "
                  "produce results", highlight=False)
    out.print(f"kdbench leaderboard of {results_dir.resolve()}: http://{host}:{port}",
              highlight=False, soft_wrap=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not a child: Ctrl-C and kill reach streamlit directly and its exit code is ours.
    os.execve(sys.executable, cmd, env)


@app.command()
def doctor() -> None:
    """Check the installation: torch, torchattacks, robustbench's files and import, data, CUDA."""
    from bench.doctor import checks
    lines, problems = checks()
    for line in lines:
        out.print(line)
    for p in problems:
        err.print(f"[red]problem:[/] {p}", highlight=False)
    if problems:
        raise typer.Exit(1)
    out.print("[green]all good[/]")


def main() -> None:
    """Entry point: user mistakes print one line and exit 2, never a traceback."""
    try:
        app()  # standalone mode: click handles its own usage errors and calls sys.exit
    except KdbenchError as e:
        err.print(f"[red]error:[/] {e}", highlight=False)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
