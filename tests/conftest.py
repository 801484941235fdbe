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


@pytest.fixture(scope="session")
def exported_student(tmp_path_factory):
    """`kdbench run --protocol cifar10 --smoke --full --methods baseline` on CIFAR-format test
    data, then `kdbench export-robustbench` of its student: the directories and both processes."""
    import os
    from types import SimpleNamespace

    from cifar_data import write_cifar10
    root = tmp_path_factory.mktemp("export")
    ns = SimpleNamespace(data=root / "data", results=root / "results", out=root / "out",
                         name="Kdbench2026Test_baseline")
    write_cifar10(ns.data, n_train=300, n_test=20)
    env = {**os.environ, "KDBENCH_SKIP_CIFAR_MD5": "1"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                              text=True, cwd=REPO, timeout=1800, env=env)
    ns.run = cli("run", "--protocol", "cifar10", "--smoke", "--full", "--data-dir", str(ns.data),
                 "--methods", "baseline", "-q", "--workers", "1", "--results-dir",
                 str(ns.results), "--cache-dir", str(root / "cache"))
    assert ns.run.returncode == 0, ns.run.stderr
    ns.export = cli("export-robustbench", "--method", "baseline", "--protocol", "cifar10",
                    "--results-dir", str(ns.results), "-o", str(ns.out), "--allow-smoke",
                    "--name", ns.name, "--title", "A test", "--authors", "kdbench tests")
    assert ns.export.returncode == 0, ns.export.stderr
    ns.record = ns.results / "cifar10" / "baseline" / "seed-0.json"
    return ns
