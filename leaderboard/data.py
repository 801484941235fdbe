"""Reading a results directory for the leaderboard: which records count, and why others do not.

Records are grouped by protocol *version* (name and hash): numbers made under different protocol
definitions never share a table. Nothing is dropped silently: every file that is not shown comes
back as a `Skipped` entry naming the file and the reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from bench.protocols import DERIVED, PROTOCOLS, Protocol, UsageError, ZooTeacher, get_protocol
from bench.records import Record, RecordError, find_records, read_record
from bench.records.layout import REPO_URL_ENV, RESULTS_DIR_ENV  # noqa: F401  (the app reads both)
from bench.records.validate import layout_problem

Fingerprint = tuple[tuple[str, int, int], ...]


class Status(str, Enum):
    """How a protocol version relates to the protocols registered in this kdbench."""

    REGISTERED = "registered"  # name and hash match the registered definition
    OUTDATED = "outdated"  # the name is registered, but with another definition (hash)
    UNREGISTERED = "unregistered"  # made by a kdbench that knows a protocol this one does not


@dataclass(frozen=True, order=True)
class ProtocolKey:
    name: str
    hash: str
    # The records' data_fingerprint, set only when one protocol version's records come from
    # different data: each data set then gets a table of its own.
    data: str = ""
    # A zoo teacher's identity as the records name it (JSON of a ZooTeacher; the hash covers it),
    # "" for a trained teacher: the definition of a derived protocol is rebuilt from it.
    teacher: str = ""

    def definition(self) -> Protocol | None:
        """This kdbench's registered definition of the protocol; None when it has none."""
        if self.name.partition(DERIVED)[0] not in PROTOCOLS:
            return None
        try:
            return get_protocol(self.name, json.loads(self.teacher) if self.teacher else None)
        except UsageError:
            return None

    @property
    def status(self) -> Status:
        registered = self.definition()
        if registered is None:
            return Status.UNREGISTERED
        return Status.REGISTERED if registered.hash == self.hash else Status.OUTDATED

    def label(self) -> str:
        """How the protocol selector names this version (plain text, never markdown)."""
        note = {Status.REGISTERED: "", Status.OUTDATED: " (outdated definition)",
                Status.UNREGISTERED: " (not registered in this kdbench)"}[self.status]
        data = f" · data {self.data[:8]}" if self.data else ""
        return f"{self.name} · {self.hash[:8]}{data}{note}"


@dataclass(frozen=True)
class Skipped:
    path: str  # relative to the results directory
    reason: str
    smoke: bool = False  # a --smoke record: expected, not an error


@dataclass(frozen=True)
class Loaded:
    exists: bool
    by_protocol: dict[ProtocolKey, list[Record]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def protocols(self) -> list[ProtocolKey]:
        """Registered versions first, then outdated, then unregistered; by name within each."""
        order = {Status.REGISTERED: 0, Status.OUTDATED: 1, Status.UNREGISTERED: 2}
        return sorted(self.by_protocol, key=lambda k: (order[k.status], k.name, k.hash, k.data))

    @property
    def errors(self) -> list[Skipped]:
        return [s for s in self.skipped if not s.smoke]

    @property
    def smoke(self) -> list[Skipped]:
        return [s for s in self.skipped if s.smoke]


def results_dir_from_env() -> Path:
    return Path(os.environ.get(RESULTS_DIR_ENV) or "results")


def _files(results_dir: Path) -> list[Path]:
    if not results_dir.is_dir():
        return []
    try:
        return find_records([results_dir])
    except RecordError:  # the directory vanished between the check and the walk
        return []


def fingerprint(results_dir: Path) -> Fingerprint:
    """What the cached read depends on: every record file's path, mtime and size.

    Cheap (one stat per file), so the app computes it on every rerun and re-reads only when a
    file was added, removed or rewritten.
    """
    out = []
    for f in _files(results_dir):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _reason(message: str, path: Path) -> str:
    """RecordError messages start with the full path; the table already names the file."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def load(results_dir: Path) -> Loaded:
    """Every record under `results_dir`, grouped by protocol version, and every file skipped."""
    results_dir = Path(results_dir)
    by_protocol: dict[ProtocolKey, list[Record]] = {}
    skipped: list[Skipped] = []
    seen: dict[tuple[ProtocolKey, str, int], str] = {}
    for f in _files(results_dir):
        rel = _relative(f, results_dir)
        try:
            rec = read_record(f)
        except RecordError as e:
            skipped.append(Skipped(rel, _reason(str(e), f)))
            continue
        if rec.smoke:
            skipped.append(Skipped(rel, "a --smoke record (1 epoch, 200 test images) is never a "
                                        "leaderboard result", smoke=True))
            continue
        if (problem := layout_problem(f, rec)) is not None:
            skipped.append(Skipped(rel, _reason(problem, f)))
            continue
        teacher = ("" if rec.teacher_source is None else json.dumps(dataclasses.asdict(
            ZooTeacher.from_dict(rec.teacher_source.model_dump())), sort_keys=True))
        key = ProtocolKey(rec.protocol, rec.protocol_hash, teacher=teacher)
        # Layout is checked, but a results dir may nest copies (results/old/mnist5k/...).
        job = (key, rec.method, rec.seed)
        if job in seen:
            skipped.append(Skipped(rel, f"the same protocol version, method and seed as "
                                        f"{seen[job]}, which is shown instead"))
            continue
        seen[job] = rel
        by_protocol.setdefault(key, []).append(rec)
    return Loaded(results_dir.is_dir(), _split_by_data(by_protocol), skipped)


def _split_by_data(by_protocol: dict[ProtocolKey, list[Record]]
                   ) -> dict[ProtocolKey, list[Record]]:
    """One table per data set where a protocol version's records were evaluated on different
    data (`kdbench validate` rejects such a mix; the app still shows all of it, apart)."""
    out: dict[ProtocolKey, list[Record]] = {}
    for key, records in by_protocol.items():
        by_data: dict[str, list[Record]] = {}
        for rec in records:
            by_data.setdefault(rec.provenance.data_fingerprint, []).append(rec)
        if len(by_data) == 1:
            out[key] = records
        else:
            out.update({dataclasses.replace(key, data=data): recs
                        for data, recs in by_data.items()})
    return out
