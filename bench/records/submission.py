"""Leaderboard entries: every seed's record of a method, aggregated into `entry.json`.

`kdbench submit` writes `<results-dir>/<protocol>/<method>/entry.json` only when none of the
method's records is stale (bench/run/jobs.py: `staleness`); `kdbench validate` checks an entry
against the seed records next to it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import NonNegativeInt, ValidationError

from bench.errors import RecordError
from bench.records.aggregate import Stat
from bench.records.layout import atomic_write_text, entry_path, read_record
from bench.records.schema import SCHEMA_VERSION, Record, Sha, Strict

# Aggregated per seed set; RobustBench's names where they exist.
ENTRY_METRICS = ("clean_acc", "fgsm_acc", "pgd_acc", "autoattack_acc", "robust_acc",
                 "corruptions_acc")


class MetricStat(Strict):
    mean: float
    std: float  # sample standard deviation over seeds; 0 for one seed
    values: list[float]  # per seed, in the order of `seeds`


class Entry(Strict):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
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


def build_entry(records: list[Record], kdbench_version: str) -> Entry:
    records = sorted(records, key=lambda r: r.seed)
    first = records[0]
    metrics = {}
    for name in ENTRY_METRICS:
        values = [getattr(r.metrics, name) for r in records]
        if all(v is not None for v in values):
            stat = Stat.of(values)
            metrics[name] = MetricStat(mean=round(stat.mean, 4), std=round(stat.std, 4),
                                       values=values)
    return Entry(
        protocol=first.protocol, protocol_hash=first.protocol_hash, method=first.method,
        family=first.family, hparams=first.hparams, method_source=first.method_source,
        method_source_sha256=first.method_source_sha256, seeds=[r.seed for r in records],
        metrics=metrics, unreliable_seeds=[r.seed for r in records if r.metrics.unreliable],
        checkpoints={str(r.seed): r.checkpoint.sha256 for r in records if r.checkpoint},
        kdbench=kdbench_version, created_at=datetime.now(timezone.utc))


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
