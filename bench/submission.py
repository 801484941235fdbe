"""Leaderboard entries: every seed's record of a method, checked for completeness and aggregated.

`kdbench submit` writes `<results-dir>/<protocol>/<method>/entry.json` only when the method's
records are complete (every protocol seed, final epoch, full evaluation), were made by the
method's current source under the registered protocol, and each has its checkpoint with the
recorded sha256. `kdbench validate` checks an entry against the seed records next to it.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import NonNegativeInt, ValidationError

from bench.checkpoints import file_sha256
from bench.errors import RecordError
from bench.protocols import Protocol
from bench.records import (SCHEMA_VERSION, Record, Sha, Strict, atomic_write_text, read_record,
                           record_path)
from bench.validate import data_mismatches

# Aggregated per seed set; RobustBench's names where they exist.
ENTRY_METRICS = ("clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc", "robust_acc",
                 "corruptions_acc")


class MetricStat(Strict):
    mean: float
    std: float  # sample standard deviation over seeds; 0 for one seed
    values: list[float]  # per seed, in the order of `seeds`


class Entry(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["entry"] = "entry"
    protocol: str
    protocol_hash: Sha
    method: str
    family: str
    hparams: dict
    method_source: str
    method_source_sha256: Sha
    seeds: list[NonNegativeInt]
    metrics: dict[str, MetricStat]
    unreliable_seeds: list[NonNegativeInt]  # seeds whose gradient-masking checks failed
    checkpoints: dict[str, Sha]  # seed -> sha256 of its checkpoint
    kdbench: str
    created_at: datetime


def entry_path(results_dir: Path, protocol: str, method: str) -> Path:
    return Path(results_dir) / protocol / method / "entry.json"


def protocol_seeds(protocol: Protocol, method: str) -> list[int]:
    return [protocol.teacher_seed] if method == "teacher" else list(protocol.seeds)


def build_entry(records: list[Record], kdbench_version: str) -> Entry:
    records = sorted(records, key=lambda r: r.seed)
    first = records[0]
    metrics = {}
    for name in ENTRY_METRICS:
        values = [getattr(r.metrics, name) for r in records]
        if all(v is not None for v in values):
            metrics[name] = MetricStat(
                mean=round(statistics.fmean(values), 4),
                std=round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                values=values)
    return Entry(
        protocol=first.protocol, protocol_hash=first.protocol_hash, method=first.method,
        family=first.family, hparams=first.hparams, method_source=first.method_source,
        method_source_sha256=first.method_source_sha256, seeds=[r.seed for r in records],
        metrics=metrics, unreliable_seeds=[r.seed for r in records if r.metrics.unreliable],
        checkpoints={str(r.seed): r.checkpoint.sha256 for r in records if r.checkpoint},
        kdbench=kdbench_version, created_at=datetime.now(timezone.utc))


def completeness_problems(protocol: Protocol, method: str, source_sha256: str | None,
                          results_dir: Path) -> tuple[list[Record], list[str], list[int]]:
    """(complete records, problems in words, seeds to (re)run)."""
    records, problems, rerun = [], [], []
    final_epochs = (protocol.teacher_recipe if method == "teacher" else protocol.student_recipe).epochs
    e = protocol.eval
    for seed in protocol_seeds(protocol, method):
        path = record_path(results_dir, protocol.name, method, seed)
        if not path.exists():
            problems.append(f"seed {seed}: no record at {path}")
            rerun.append(seed)
            continue
        try:
            rec = read_record(path)
        except RecordError as err:
            problems.append(f"seed {seed}: {err}")
            rerun.append(seed)
            continue
        issues = []
        if rec.smoke:
            issues.append("is a --smoke record")
        if rec.protocol_hash != protocol.hash:
            issues.append(f"was made under another definition of {protocol.name} "
                          f"({rec.protocol_hash}, registered: {protocol.hash})")
        if source_sha256 is not None and rec.method_source_sha256 != source_sha256:
            issues.append(f"was made by an earlier version of {rec.method_source} (sha256 "
                          f"{rec.method_source_sha256[:12]}, now {source_sha256[:12]})")
        if rec.training.epochs != final_epochs:
            issues.append(f"has {rec.training.epochs} training epochs, the protocol "
                          f"{final_epochs}")
        missing = [k for k in e.corruptions if len(rec.metrics.corruptions.get(k, [])) !=
                   len(e.severities)]
        if missing:
            issues.append(f"lacks corruption results for {', '.join(missing)}")
        if rec.metrics.sanity_checks is None:
            issues.append("lacks the gradient-masking sanity checks")
        if e.eps_curve and not rec.metrics.eps_curve:
            issues.append("lacks the accuracy-vs-eps curve")
        ckpt = None if rec.checkpoint is None else Path(results_dir) / rec.checkpoint.file
        if ckpt is None:
            issues.append("has no checkpoint")
        elif not ckpt.exists():
            issues.append(f"names checkpoint {ckpt}, which does not exist")
        elif file_sha256(ckpt) != rec.checkpoint.sha256:
            issues.append(f"checkpoint {ckpt} does not match its recorded sha256")
        if issues:
            problems.append(f"seed {seed}: record {path} " + "; ".join(issues))
            rerun.append(seed)
        else:
            records.append(rec)
    paths = {record_path(results_dir, protocol.name, method, r.seed): r for r in records}
    for path, msg in data_mismatches(list(paths.items())):
        problems.append(f"seed {paths[path].seed}: {msg}")
        rerun.append(paths[path].seed)
        records.remove(paths[path])
    return records, problems, sorted(rerun)


def entry_problems(path: Path) -> list[str]:
    """An entry checked against the seed records beside it."""
    try:
        entry = Entry.model_validate(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError, ValidationError) as e:
        first = e.errors()[0] if isinstance(e, ValidationError) else None
        detail = (f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(e))
        return [f"{path}: not a valid entry: {detail}"]
    problems = []
    records = []
    for seed in entry.seeds:
        rec_path = Path(path).parent / f"seed-{seed}.json"
        try:
            records.append(read_record(rec_path))
        except RecordError as e:
            problems.append(f"{path}: lists seed {seed}, whose record is unreadable: {e}")
    if problems:
        return problems
    if len(set(entry.seeds)) != len(entry.seeds):
        problems.append(f"{path}: seeds {entry.seeds} list a seed twice")
    expected = build_entry(records, entry.kdbench)
    for field in ("protocol", "protocol_hash", "method", "method_source_sha256", "hparams",
                  "unreliable_seeds", "checkpoints"):
        if getattr(entry, field) != getattr(expected, field):
            problems.append(f"{path}: {field} {getattr(entry, field)!r} does not match the seed "
                            f"records ({getattr(expected, field)!r})")
    if set(entry.metrics) != set(expected.metrics):
        problems.append(f"{path}: metrics {sorted(entry.metrics)} do not match the seed records' "
                        f"{sorted(expected.metrics)}")
    for name in set(entry.metrics) & set(expected.metrics):
        got, want = entry.metrics[name], expected.metrics[name]
        if (got.values != want.values or not math.isclose(got.mean, want.mean, abs_tol=1e-3)
                or not math.isclose(got.std, want.std, abs_tol=1e-3)):
            problems.append(f"{path}: {name} {got.mean} ± {got.std} {got.values} does not "
                            f"match the seed records ({want.mean} ± {want.std} {want.values})")
    return problems


def write_entry(entry: Entry, results_dir: Path) -> Path:
    path = entry_path(results_dir, entry.protocol, entry.method)
    atomic_write_text(path, entry.model_dump_json(indent=2) + "\n")
    return path
