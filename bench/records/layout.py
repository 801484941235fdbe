"""Where records live and how they are read and written.

Layout: `<results-dir>/<protocol>/<method>/seed-<n>.json`, the evaluated weights beside each
record (`seed-<n>.pt`) and a method's leaderboard entry (`entry.json`). Files are written
atomically: a reader never sees half a record.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from bench.errors import RecordError
from bench.files import atomic_write
from bench.records.schema import SCHEMA_VERSION, READABLE_VERSIONS, Record

# How `kdbench leaderboard` tells the app where the records are, and the base URL that
# repo-relative `method_source` paths are appended to (e.g.
# https://github.com/ORG/kdbench/blob/main; unset: paths are shown as text).
RESULTS_DIR_ENV = "KDBENCH_RESULTS_DIR"
REPO_URL_ENV = "KDBENCH_REPO_URL"


def record_path(results_dir: Path, protocol: str, method: str, seed: int) -> Path:
    return Path(results_dir) / protocol / method / f"seed-{seed}.json"


def checkpoint_path(results_dir: Path, protocol: str, method: str, seed: int) -> Path:
    return Path(results_dir) / protocol / method / f"seed-{seed}.pt"


def entry_path(results_dir: Path, protocol: str, method: str) -> Path:
    return Path(results_dir) / protocol / method / "entry.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one."""
    atomic_write(path, text.encode(), RecordError,
                 "choose another --results-dir or fix its permissions")


def write_record(record: Record, results_dir: Path) -> Path:
    path = record_path(results_dir, record.protocol, record.method, record.seed)
    atomic_write_text(path, record.model_dump_json(indent=2) + "\n")
    return path


def read_record(path: Path) -> Record:
    """Parse and schema-check one record; RecordError names the file and the first problems."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise RecordError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}") from None
    if isinstance(data, dict) and data.get("schema_version") not in (None, *READABLE_VERSIONS):
        raise RecordError(f"{path}: schema_version {data.get('schema_version')!r} is not "
                          f"supported (this kdbench reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))}; it writes {SCHEMA_VERSION})")
    try:
        return Record.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(record)'}: {err['msg']}"
                             for err in e.errors()[:5])
        more = f" (and {e.error_count() - 5} more)" if e.error_count() > 5 else ""
        raise RecordError(f"{path}: {problems}{more}") from None


def _find(paths: list[Path], pattern: str) -> list[Path]:
    found: dict[Path, None] = {}  # ordered, and each file once however it was named
    for p in map(Path, paths):
        if p.is_dir():
            found.update(dict.fromkeys(sorted(p.rglob(pattern))))
        elif p.exists():
            if p.match(pattern):
                found[p] = None
        else:
            raise RecordError(f"{p}: no such file or directory")
    unique: dict[Path, Path] = {}
    for f in found:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def find_records(paths: list[Path]) -> list[Path]:
    """Record files (seed-*.json) under the given files and directories, sorted, each once."""
    return _find(paths, "seed-*.json")


def find_entries(paths: list[Path]) -> list[Path]:
    """Leaderboard entries (entry.json) under the given files and directories."""
    return _find(paths, "entry.json")
