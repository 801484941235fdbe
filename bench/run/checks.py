"""What `kdbench validate` and `kdbench submit` check, beyond a record's schema.

Both ask `staleness` (bench/run/spec.py), so a record that `kdbench run` would redo is never
valid, never submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import RecordError, UsageError
from bench.protocols import Protocol
from bench.records.layout import find_entries, find_records, read_record, record_path
from bench.records.schema import Record
from bench.records.submission import entry_problems
from bench.records.validate import (check_record, data_mismatches, duplicate_problems,
                                    record_protocol)
from bench.run.spec import job_seeds, job_spec, staleness


def _stale(path: Path, rec: Record) -> list[str]:
    protocol = record_protocol(rec)
    try:
        spec = job_spec(protocol, rec.method, rec.seed)
    except UsageError as e:  # the method is not registered in this kdbench
        return [f"{path}: cannot tell whether it is current: {e}"]
    reasons = staleness(rec, spec, protocol, results_dir=Path(path).parents[2])
    return [f"{path}: stale: the record " + "; ".join(reasons) + "; rerun it with `kdbench run "
            f"{protocol.run_options} --methods {rec.method} --seeds {rec.seed}`"] if reasons else []


@dataclass
class Validation:
    records: int = 0
    entries: int = 0
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (file, problem in words)

    @property
    def bad(self) -> set[Path]:
        return {f for f, _ in self.problems}


def validate_paths(roots: list[Path], allow_smoke: bool = False) -> Validation:
    """Every record and entry under `roots`: schema, layout, protocol, currency (staleness),
    duplicates, one data set per protocol, entries against their seed records."""
    files, entries = find_records(roots), find_entries(roots)
    if not files and not entries:
        raise UsageError(f"no records (seed-*.json) under {', '.join(map(str, roots))}")
    v = Validation(records=len(files), entries=len(entries))
    checked = []
    for f in files:
        rec, problems = check_record(f, allow_smoke=allow_smoke)
        if rec is not None:
            checked.append((f, rec))
            if not problems:
                problems = _stale(f, rec)
        v.problems += [(f, msg) for msg in problems]
    v.problems += duplicate_problems(checked)
    v.problems += data_mismatches(checked)
    for f in entries:
        v.problems += [(f, msg) for msg in entry_problems(f)]
    return v


def submission_problems(protocol: Protocol, method: str, results_dir: Path
                        ) -> tuple[list[Record], list[str], list[int]]:
    """(current records, problems in words, seeds to (re)run) of a method's submission."""
    records, problems, rerun = [], [], []
    for seed in job_seeds(protocol, method):
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
        reasons = staleness(rec, job_spec(protocol, method, seed), protocol,
                            results_dir=results_dir)
        if reasons:
            problems.append(f"seed {seed}: record {path} " + "; ".join(reasons))
            rerun.append(seed)
        else:
            records.append(rec)
    paths = {record_path(results_dir, protocol.name, method, r.seed): r for r in records}
    for path, msg in data_mismatches(list(paths.items())):
        problems.append(f"seed {paths[path].seed}: {msg}")
        rerun.append(paths[path].seed)
        records.remove(paths[path])
    return records, problems, sorted(rerun)
