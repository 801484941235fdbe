"""Nothing is lost: a run killed at any point, then rerun, ends with the records of an
uninterrupted run; Ctrl-C stops cleanly; a hanging method is stopped by the per-job limit."""

import os
import signal
import subprocess
import sys
import time

import pytest

import methods
from bench.records import read_record
from methods.api import Method
from support import REPO, comparable, kdbench, method_source, plugin_site

pytestmark = pytest.mark.integration

METHODS = "baseline,vanilla,adversarial"
# Methods that keep state across steps outside extra_modules() (a memory bank, an EMA): their
# state must come back exactly when a killed run resumes.
STATEFUL = sorted(name for name, spec in methods.discover()[0].items()
                  if spec.cls.state_dict is not Method.state_dict)


def run(results, cache, fault=None, extra=(), timeout=600, methods=METHODS):
    env = dict(os.environ)
    env.pop("KDBENCH_FAULT", None)
    if fault:
        env["KDBENCH_FAULT"] = fault
    # A session of its own: the fault kills the run's whole process group, never pytest.
    return subprocess.run([sys.executable, "-m", "bench.cli", "run", "--smoke", "-q",
                           "--methods", methods, "--results-dir", str(results),
                           "--cache-dir", str(cache), *extra],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout,
                          start_new_session=True)


@pytest.fixture(scope="module")
def uninterrupted(smoke_run, tmp_path_factory):
    root, _ = smoke_run
    results = tmp_path_factory.mktemp("uninterrupted")
    proc = run(results, root / "cache")
    assert proc.returncode == 0, proc.stderr
    return results, root / "cache"


def test_killed_mid_training_and_mid_evaluation_then_rerun_equals_uninterrupted(uninterrupted,
                                                                                  tmp_path):
    reference, cache = uninterrupted
    results = tmp_path / "results"
    # 1. killed right after vanilla's first epoch was saved
    first = run(results, cache, fault="train-epoch:vanilla:0:1")
    assert first.returncode == -signal.SIGKILL
    assert not (results / "mnist5k" / "vanilla" / "seed-0.json").exists()
    # 2. resumed: vanilla continues at epoch 2; killed again in the middle of its evaluation
    second = run(results, cache, fault="eval:vanilla:0:corruptions")
    assert second.returncode == -signal.SIGKILL
    assert "vanilla seed 0: resuming after epoch 1/2" in second.stderr
    assert (results / "mnist5k" / "vanilla" / "seed-0.pt").exists()  # training had finished
    assert not (results / "mnist5k" / "vanilla" / "seed-0.json").exists()
    # 3. rerun to the end: evaluation only for vanilla, finished jobs skipped
    third = run(results, cache)
    assert third.returncode == 0, third.stderr
    for method in METHODS.split(","):
        got = results / "mnist5k" / method / "seed-0.json"
        want = reference / "mnist5k" / method / "seed-0.json"
        assert comparable(got) == comparable(want), method
    # nothing half-written anywhere
    assert not list(results.rglob("*.tmp")) and not list(cache.rglob("*.tmp"))
    # a fourth run has nothing left to do
    fourth = run(results, cache)
    assert "3 job(s) already have up-to-date records: skipped" in fourth.stderr
    # a record made on other data (say, before CIFAR-10-C files were added) is not up to date
    path = results / "mnist5k" / "baseline" / "seed-0.json"
    path.write_text(path.read_text().replace(read_record(path).provenance.data_fingerprint,
                                             "0" * 16))
    fifth = run(results, cache)
    assert fifth.returncode == 0, fifth.stderr
    assert "2 job(s) already have up-to-date records: skipped" in fifth.stderr
    assert comparable(path) == comparable(reference / "mnist5k" / "baseline" / "seed-0.json")


@pytest.mark.parametrize("method", STATEFUL or [pytest.param(
    None, marks=pytest.mark.skip(reason="no registered method keeps state outside "
                                        "extra_modules()"))])
def test_a_stateful_method_killed_after_an_epoch_resumes_exactly(method, smoke_run, tmp_path):
    root, _ = smoke_run
    cache = root / "cache"
    reference = run(tmp_path / "ref", cache, methods=method)
    assert reference.returncode == 0, reference.stderr
    killed = run(tmp_path / "r", cache, fault=f"train-epoch:{method}:0:1", methods=method)
    assert killed.returncode == -signal.SIGKILL
    resumed = run(tmp_path / "r", cache, methods=method)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{method} seed 0: resuming after epoch 1/2" in resumed.stderr
    got = tmp_path / "r" / "mnist5k" / method / "seed-0.json"
    assert comparable(got) == comparable(tmp_path / "ref" / "mnist5k" / method / "seed-0.json")


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(smoke_run, tmp_path):
    root, _ = smoke_run
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--smoke", "-q",
                             "--methods", "baseline,pgd_at,adversarial,ard",
                             "--results-dir", str(tmp_path), "--cache-dir", str(root / "cache")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.rglob("seed-0.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    for rec in tmp_path.rglob("seed-*.json"):
        read_record(rec)  # every record left is whole
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_hanging_method_is_stopped_by_the_job_time_limit(smoke_run, tmp_path):
    root, _ = smoke_run
    env = plugin_site(tmp_path / "site", {"zz_hangs": method_source(
        "zz_hangs", "time.sleep(3600)", extra="import time\n")})
    proc = kdbench("run", "--smoke", "-q", "--methods", "zz_hangs,baseline", "--job-timeout",
                   "20", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(root / "cache"),
                   env=env)
    assert proc.returncode == 1
    assert "method 'zz_hangs' seed 0 exceeded the per-job time limit of 20 s" in proc.stderr
    assert (tmp_path / "r" / "mnist5k" / "baseline" / "seed-0.json").exists()
    assert not (tmp_path / "r" / "mnist5k" / "zz_hangs").exists()


def test_an_unwritable_results_dir_fails_before_any_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = kdbench("run", "--smoke", "--methods", "baseline", "--results-dir", str(blocker / "r"),
                   "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 2
    assert "cannot write to" in proc.stderr and "--results-dir" in proc.stderr
    assert not (tmp_path / "cache" / "teachers").exists()
