import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.data import load_split
from bench.protocols import get_protocol

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def protocol():
    return get_protocol("mnist5k")


@pytest.fixture(scope="session")
def smoke_protocol(protocol):
    return protocol.for_smoke()


@pytest.fixture(scope="session")
def split(protocol):
    return load_split(protocol)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


def kdbench(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=timeout)


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def comparable(path: Path) -> tuple[dict, tuple]:
    """A record without what legitimately differs between two runs: timings and timestamps."""
    from bench.records import read_record
    d = read_record(path).model_dump(mode="json")
    d["training"].pop("wall_s")
    d.pop("eval_wall_s")
    for k in ("started_at", "finished_at", "git_commit"):
        d["provenance"].pop(k)
    eff = d["metrics"].pop("efficiency")
    if d["metrics"].get("deployment"):  # its seconds and latencies are timings too
        for k in ("wall_s", "latency"):
            d["metrics"]["deployment"].pop(k)
    return d, (eff["params"], eff["size_bytes"], eff["flops"])


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One `kdbench run --smoke` of every built-in method; its dirs and the finished process."""
    root = tmp_path_factory.mktemp("smoke")
    proc = kdbench("run", "--smoke", "--quiet", "--results-dir", str(root / "results"),
                   "--cache-dir", str(root / "cache"))
    return root, proc


@pytest.fixture
def good_record(smoke_run, tmp_path):
    """A copy of a valid smoke record at its proper place under a fresh results dir."""
    root, proc = smoke_run
    assert proc.returncode == 0, proc.stderr
    src = root / "results" / "mnist5k" / "vanilla" / "seed-0.json"
    dst = tmp_path / "results" / "mnist5k" / "vanilla" / "seed-0.json"
    dst.parent.mkdir(parents=True)
    dst.write_text(src.read_text())
    return dst


@pytest.fixture(scope="session")
def record_template(smoke_run) -> dict:
    """A real record (from the session's smoke run) to derive leaderboard test records from."""
    root, proc = smoke_run
    assert proc.returncode == 0, proc.stderr
    return load_json(root / "results" / "mnist5k" / "vanilla" / "seed-0.json")
