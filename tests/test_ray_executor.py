"""`kdbench run --executor ray` on a local Ray instance (loopback only) gives the local
executor's records."""

import sys

import pytest

from bench.errors import UsageError
from support import comparable, kdbench, method_source, plugin_site

pytest.importorskip("ray", reason="Ray is the optional extra kdbench[ray]; make install adds it")


@pytest.mark.integration
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


@pytest.mark.integration
def test_a_failing_method_is_reported_like_a_local_failure(smoke_run, tmp_path):
    root, _ = smoke_run
    env = plugin_site(tmp_path / "site", {"zz_ray_raises": method_source(
        "zz_ray_raises", "raise ValueError('nope')")})
    proc = kdbench("run", "--smoke", "-q", "--executor", "ray", "--methods", "zz_ray_raises",
                   "--results-dir", str(tmp_path / "r"), "--cache-dir", str(root / "cache"),
                   env=env)
    assert proc.returncode == 1
    assert "method 'zz_ray_raises'" in proc.stderr and "raised ValueError: nope" in proc.stderr


def test_missing_ray_is_a_clear_message(monkeypatch):
    from bench.run import ray_executor
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(UsageError, match=r"pip install 'kdbench\[ray\]'"):
        ray_executor._import_ray(local=True)


@pytest.mark.integration
def test_ray_address_needs_the_ray_executor(tmp_path):
    proc = kdbench("run", "--smoke", "--ray-address", "127.0.0.1:6379", "--results-dir",
                   str(tmp_path))
    assert proc.returncode == 2 and "--ray-address needs --executor ray" in proc.stderr
