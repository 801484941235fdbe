"""Fixtures. Helpers the tests import live in tests/support.py."""

import shutil

import pytest
import torch

from bench.data import load_split
from bench.protocols import get_protocol
from support import committed_record_path, kdbench, load_json


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


@pytest.fixture(scope="session")
def trained_pair(protocol, split):
    """A student and a teacher trained for three epochs on labels: attacks and checks have
    something to break. Eval mode, parameters frozen; tests must not train them further."""
    import dataclasses

    import methods
    from bench.models import build_model
    from bench.train.engine import build_method, train
    baseline = methods.discover()[0]["baseline"].cls
    recipe = dataclasses.replace(protocol.student_recipe, epochs=3)
    nets = []
    for arch in (protocol.student_arch, protocol.teacher_arch):
        torch.manual_seed(0)
        net = build_model(arch, protocol)
        train(net, build_method(baseline, baseline.Hparams(), protocol, net, None, split.x_train),
              recipe, split.x_train, split.y_train, seed=0)
        for p in net.parameters():
            p.requires_grad_(False)
        nets.append(net.eval())
    return tuple(nets)


SMOKE_METHODS = "teacher,baseline,vanilla,adversarial"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One `kdbench run --smoke` of a few methods (every method's own smoke run is in
    tests/test_methods.py); its directories and the finished process."""
    root = tmp_path_factory.mktemp("smoke")
    proc = kdbench("run", "--smoke", "--quiet", "--methods", SMOKE_METHODS, "--results-dir",
                   str(root / "results"), "--cache-dir", str(root / "cache"))
    return root, proc


@pytest.fixture
def good_record(smoke_run, tmp_path):
    """A copy of a current smoke record, with its checkpoint, under a fresh results dir."""
    root, proc = smoke_run
    assert proc.returncode == 0, proc.stderr
    src = root / "results" / "mnist5k" / "vanilla"
    dst = tmp_path / "results" / "mnist5k" / "vanilla"
    dst.mkdir(parents=True)
    for f in ("seed-0.json", "seed-0.pt"):
        shutil.copy(src / f, dst / f)
    return dst / "seed-0.json"


@pytest.fixture(scope="session")
def record_template() -> dict:
    """A committed record, to derive leaderboard and record test records from."""
    return load_json(committed_record_path("vanilla", 0))


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
        return kdbench(*args, env=env, timeout=1800)
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
