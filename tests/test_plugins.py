"""Methods from outside the built-in set: scaffolded, from an entry point, and broken ones.

Nothing is written into the source tree: plugins are installed into a temporary directory on
PYTHONPATH with entry points (tests/support.plugin_site), and the scaffold runs in a copy of the
repository.
"""

import shutil
import subprocess
import sys

import pytest

from bench.records import read_record
from support import REPO, kdbench, method_source, plugin_file, plugin_site

pytestmark = pytest.mark.integration

FAULTY = {
    "raises": (method_source("zz_raises", "raise RuntimeError('boom in my loss')"),
               "raised RuntimeError: boom in my loss at line"),
    "nan": (method_source("zz_nan", "return step.student().logits.sum() * float('nan')"),
            "loss() returned nan at epoch 1, step 1"),
    "shape": (method_source("zz_shape", "return step.student().logits"),
              "returned a tensor of shape (128, 10), expected a scalar"),
    "import": ("import torch\nfrom methods.api import no_such_name\n",
               "could not be loaded from"),
}


def test_faulty_methods_are_isolated_named_and_record_nothing(smoke_run, tmp_path):
    root, _ = smoke_run
    env = plugin_site(tmp_path / "site", {f"zz_{k}": src for k, (src, _) in FAULTY.items()})
    names = ",".join(["baseline", *(f"zz_{k}" for k in FAULTY)])
    proc = kdbench("run", "--smoke", "-q", "--methods", names, "--results-dir",
                   str(tmp_path / "res"), "--cache-dir", str(root / "cache"), env=env)
    assert proc.returncode == 1
    assert "4 job(s) failed" in proc.stderr
    for kind, (_, message) in FAULTY.items():
        line = next(l for l in proc.stderr.splitlines() if f"'zz_{kind}'" in l and "  - " in l)
        assert message in line, (kind, line)
        assert str(plugin_file(env, f"zz_{kind}").resolve()) in line, (kind, line)
    written = sorted(p.parent.name for p in (tmp_path / "res").rglob("*.json"))
    assert written == ["baseline"]  # the good method still ran; nothing for the broken ones
    assert "Traceback" not in proc.stderr


def test_broken_module_does_not_hide_the_others(tmp_path):
    env = plugin_site(tmp_path, {"zz_import": FAULTY["import"][0]})
    proc = kdbench("methods", env=env)
    assert proc.returncode == 1
    assert "vanilla" in proc.stdout
    assert str(plugin_file(env, "zz_import").resolve()) in proc.stderr
    assert "ImportError: cannot import name 'no_such_name'" in proc.stderr


def test_entry_point_method_runs_and_its_record_points_at_its_file(tmp_path, smoke_run):
    root, _ = smoke_run
    env = plugin_site(tmp_path / "site", {"ext_demo": method_source("ext_demo", """
        s = step.student().logits
        return torch.nn.functional.mse_loss(s, step.teacher.logits)""")})
    listed = kdbench("methods", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "ext_demo" in listed.stdout and "entry point" in listed.stdout
    run = kdbench("run", "--smoke", "-q", "--methods", "ext_demo", "--results-dir",
                  str(tmp_path / "r"), "--cache-dir", str(root / "cache"), env=env)
    assert run.returncode == 0, run.stderr
    rec = read_record(tmp_path / "r" / "mnist5k" / "ext_demo" / "seed-0.json")
    assert rec.method_source == str(plugin_file(env, "ext_demo").resolve())


def _copy_of_the_repository(dst):
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".kdbench", "results", "test-artifacts", "__pycache__", "*.egg-info",
        ".pytest_cache", ".benchmarks"))
    return dst


def test_scaffolded_method_runs_under_smoke_and_its_test_passes(smoke_run, tmp_path):
    root, _ = smoke_run
    repo = _copy_of_the_repository(tmp_path / "repo")
    made = kdbench("new-method", "my_kd", cwd=repo)
    assert made.returncode == 0, made.stderr
    files = [repo / "methods" / "my_kd.py", repo / "tests" / "test_method_my_kd.py"]
    assert all(f.exists() for f in files)
    assert not (REPO / "methods" / "my_kd.py").exists()
    run = kdbench("run", "--smoke", "-q", "--methods", "my_kd", "--results-dir",
                  str(tmp_path / "r"), "--cache-dir", str(root / "cache"), cwd=repo)
    assert run.returncode == 0, run.stderr
    rec = read_record(tmp_path / "r" / "mnist5k" / "my_kd" / "seed-0.json")
    assert rec.hparams == {"T": 4.0, "alpha": 0.9}
    assert rec.method_source == "methods/my_kd.py"
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(files[1])], capture_output=True, text=True, cwd=repo)
    assert test.returncode == 0, test.stdout


def test_new_method_refuses_taken_and_malformed_names(tmp_path):
    repo = _copy_of_the_repository(tmp_path / "repo")
    for name, message in (("vanilla", "already exists"), ("Bad-Name", "must be 2-40 lowercase"),
                          ("teacher", "already exists")):
        proc = kdbench("new-method", name, cwd=repo)
        assert proc.returncode == 2 and message in proc.stderr, (name, proc.stderr)
