"""Files: atomic writes and sha256 digests, torch-free.

Atomic writes go through a temporary file in the same directory, fsync, then a rename. Readers
see the old file or the whole new one, never half of either; a failed write leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from bench.errors import KdbenchError


def atomic_write(path: Path, data: bytes, error: type[KdbenchError] = KdbenchError,
                 hint: str = "choose another directory or fix its permissions") -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise error(f"cannot write to {path.parent}: {e.strerror}; {hint}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise error(f"could not write {path}: {e.strerror}; nothing was written") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
