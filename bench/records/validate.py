"""Checks a record must pass before anyone reads its numbers (beyond its JSON schema)."""

from __future__ import annotations

from pathlib import Path

from bench.errors import RecordError, UsageError
from bench.protocols import DERIVED, PROTOCOLS, Protocol, get_protocol
from bench.records.layout import find_records, read_record
from bench.records.schema import Record


def layout_problem(path: Path, rec: Record) -> str | None:
    """Why `rec` is not at `<results-dir>/<protocol>/<method>/seed-<n>.json`, or None."""
    expected = (rec.protocol, rec.method, f"seed-{rec.seed}.json")
    if tuple(Path(path).parts[-3:]) == expected:
        return None
    return (f"{path}: a record of {rec.protocol}/{rec.method} seed {rec.seed} must "
            f"live at <results-dir>/{'/'.join(expected)}")


def record_protocol(rec: Record) -> Protocol:
    """The registered definition of the protocol a record was made under: by name, with the zoo
    teacher the record names (bench/protocols.py: get_protocol), shrunk for a --smoke record."""
    source = rec.teacher_source.model_dump() if rec.teacher_source is not None else None
    protocol = get_protocol(rec.protocol, source)
    return protocol.for_smoke() if rec.smoke else protocol


def results_protocol(name: str, results_dir: Path) -> Protocol:
    """Protocol `name` as the records under `results_dir` know it: a derived protocol
    (`cifar10+robustbench-X`) takes its zoo teacher from them."""
    if DERIVED not in name:
        return get_protocol(name)
    folder = Path(results_dir) / name
    for f in find_records([folder]) if folder.is_dir() else []:
        try:
            rec = read_record(f)
        except RecordError:
            continue
        if rec.teacher_source is not None:
            return get_protocol(name, rec.teacher_source.model_dump())
    raise UsageError(f"protocol {name!r} has a zoo teacher, and no record under "
                     f"{Path(results_dir) / name} names it; run it first (kdbench run --protocol "
                     f"{name.partition(DERIVED)[0]} --teacher robustbench:NAME)")


def check_record(path: Path, allow_smoke: bool = False) -> tuple[Record | None, list[str]]:
    """The parsed record (None if unreadable) and every problem found, each one sentence."""
    try:
        rec = read_record(path)
    except RecordError as e:
        return None, [str(e)]
    problems = [p for p in [layout_problem(path, rec)] if p]
    if rec.protocol.partition(DERIVED)[0] not in PROTOCOLS:
        problems.append(f"{path}: unknown protocol {rec.protocol!r} (registered: "
                        f"{', '.join(sorted(PROTOCOLS))})")
        return rec, problems
    try:
        registered = record_protocol(rec)
    except UsageError as e:
        return rec, problems + [f"{path}: {e}"]
    if rec.smoke and not allow_smoke:
        problems.append(f"{path}: a --smoke record is never a leaderboard result; rerun "
                        "without --smoke")
    if rec.protocol_hash != registered.hash:
        problems.append(f"{path}: protocol_hash {rec.protocol_hash} does not match the "
                        f"registered {rec.protocol!r} protocol ({registered.hash}); the record "
                        "was made under another protocol definition and must be rerun")
    evidence = rec.metrics.evidence
    if evidence is not None and evidence.n != registered.n_test:
        problems.append(f"{path}: metrics.evidence.n is {evidence.n}, but the "
                        f"{rec.protocol!r} protocol{' (--smoke)' if rec.smoke else ''} tests "
                        f"{registered.n_test} examples: the per-example evidence must cover "
                        "exactly its test set")
    return rec, problems


def duplicate_problems(checked: list[tuple[Path, Record]]) -> list[tuple[Path, str]]:
    """The same job recorded twice, or one result filed under two method names: (path, problem)."""
    problems, jobs, weights = [], {}, {}
    for path, rec in checked:
        job = (rec.protocol, rec.protocol_hash, rec.method, rec.seed)
        if job in jobs:
            problems.append((path, f"{path}: duplicate of {jobs[job]} ({rec.method} seed "
                                   f"{rec.seed} recorded twice)"))
        jobs.setdefault(job, path)
        if rec.checkpoint is not None:
            other = weights.get(rec.checkpoint.sha256)
            if other is not None and other[1] != rec.method:
                problems.append((path, f"{path}: its checkpoint is identical to that of "
                                       f"{other[0]} (method {other[1]!r}): one result filed "
                                       "under two names"))
            weights.setdefault(rec.checkpoint.sha256, (path, rec.method))
    return problems


def data_mismatches(checked: list[tuple[Path, Record]]) -> list[tuple[Path, str]]:
    """Records of one protocol version evaluated on different data (another copy of the dataset,
    or CIFAR-10-C files present for some runs and generated corruptions for others), whose
    numbers must not share a table: (path, problem) for each record whose data_fingerprint is not
    the one most records of its protocol carry."""
    groups: dict[tuple[str, str], dict[str, list[Path]]] = {}
    for path, rec in checked:
        by_data = groups.setdefault((rec.protocol, rec.protocol_hash), {})
        by_data.setdefault(rec.provenance.data_fingerprint, []).append(path)
    out = []
    for (protocol, _), by_data in groups.items():
        common, paths = max(by_data.items(), key=lambda kv: (len(kv[1]), kv[0]))
        for data, others in sorted(by_data.items()):
            out += [(p, f"{p}: data_fingerprint {data} differs from the {common} of {len(paths)} "
                        f"other {protocol} record(s) such as {paths[0]}: it was evaluated on "
                        "other data (another copy of the dataset, or corruption files present "
                        "in one run and not the other); rerun it on the same --data-dir")
                    for p in others if data != common]
    return out
