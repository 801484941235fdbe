"""`kdbench run --executor ray` on a local Ray instance (loopback only) gives the local
executor's records."""

import sys

import pytest

from bench.errors import UsageError
from conftest import comparable, kdbench

pytest.importorskip("ray", reason="Ray is the optional extra kdbench[ray]; make install adds it")


def test_ray_executor_records_equal_the_local_executors(smoke_run, tmp_path):
    root, local = smoke_run
    assert local.returncode == 0, local.stderr
    proc = kdbench("run", "--smoke", "-q", "--executor", "ray", "--methods",
                   "teacher,baseline,vanilla", "--results-dir", str(tmp_path),
                   "--cache-dir", str(root / "cache"))
    assert proc.returncode == 0, proc.stderr
    assert "a local Ray instance on 127.0.0.1" in proc.stderr
    for method in ("teacher", "baseline", "vanilla"):
        got = tmp_path / "mnist5k" / method / "seed-0.json"
        want = root / "results" / "mnist5k" / method / "seed-0.json"
        assert comparable(got) == comparable(want), method


def test_a_failing_method_is_reported_like_a_local_failure(smoke_run, tmp_path):
    from conftest import REPO
    root, _ = smoke_run
    path = REPO / "methods" / "zz_ray_raises.py"
    path.write_text("from methods.api import Method, register_method\n\n\n@register_method\n"
                    "class R(Method):\n    name, description, family = 'zz_ray_raises', 'x', "
                    "'logit'\n\n    def loss(self, step):\n        raise ValueError('nope')\n")
    try:
        proc = kdbench("run", "--smoke", "-q", "--executor", "ray", "--methods",
                       "zz_ray_raises", "--results-dir", str(tmp_path), "--cache-dir",
                       str(root / "cache"))
    finally:
        path.unlink()
    assert proc.returncode == 1
    assert "method 'zz_ray_raises'" in proc.stderr and "raised ValueError: nope" in proc.stderr


def test_missing_ray_is_a_clear_message(monkeypatch):
    from bench.run import ray_executor
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(UsageError, match=r"pip install 'kdbench\[ray\]'"):
        ray_executor._import_ray(local=True)


def test_ray_address_needs_the_ray_executor(tmp_path):
    proc = kdbench("run", "--smoke", "--ray-address", "127.0.0.1:6379", "--results-dir",
                   str(tmp_path))
    assert proc.returncode == 2 and "--ray-address needs --executor ray" in proc.stderr
