"""What `kdbench compare` pairs: each method's seeds under the registered definition of a
protocol, with an error that says what to run when they are missing."""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError
from bench.protocols import Protocol
from bench.records.layout import find_records, read_record
from bench.records.measures import BY_KEY
from bench.records.schema import Record
from bench.records.significance import MetricComparison, compare


def method_records(results_dir: Path, protocol: Protocol, method: str) -> list[Record]:
    """`method`'s records of `protocol` (this exact definition: name and hash), by seed."""
    folder = Path(results_dir) / protocol.name / method
    if not folder.is_dir():
        raise UsageError(f"no records of {method!r} under {folder}; run `kdbench run --protocol "
                         f"{protocol.name} --methods {method} --results-dir {results_dir}`")
    records = [read_record(f) for f in find_records([folder])]
    current = [r for r in records if r.protocol_hash == protocol.hash and not r.smoke]
    if not current:
        other = sorted({r.protocol_hash for r in records if not r.smoke})
        raise UsageError(f"no current records of {method!r} under {folder}: the registered "
                         f"{protocol.name} protocol is {protocol.hash}, the records were made "
                         f"under {', '.join(other) or 'none (only --smoke records)'}; rerun "
                         f"`kdbench run --protocol {protocol.name} --methods {method}`")
    return sorted(current, key=lambda r: r.seed)


def compare_methods(results_dir: Path, protocol: Protocol, a: str, b: str,
                    metrics: list[str] | None = None) -> list[MetricComparison]:
    """`kdbench compare A B`: their records paired by seed, metric by metric
    (bench/records/significance.py: `compare`)."""
    unknown = [m for m in metrics or [] if m not in BY_KEY]
    if unknown:
        raise UsageError(f"--metric {', '.join(unknown)}: not a metric; choose from "
                         f"{', '.join(BY_KEY)}")
    if a == b:
        raise UsageError(f"compare two different methods, not {a!r} with itself")
    return compare(method_records(results_dir, protocol, a),
                   method_records(results_dir, protocol, b), metrics)
