"""Methods from outside the built-in set: scaffolded, from an entry point, and broken ones."""

import os
import textwrap
import uuid

import pytest

from bench.records import read_record
from conftest import REPO, kdbench

HEADER = "import torch\nfrom methods.api import Method, register_method\n"


def _method(name, body, family="logit", extra=""):
    return HEADER + extra + textwrap.dedent(f"""
        @register_method
        class M(Method):
            name, description, family = "{name}", "test method", "{family}"

            def loss(self, step):
        """) + textwrap.indent(textwrap.dedent(body), " " * 8)


FAULTY = {
    "raises": (_method("zz_raises", "raise RuntimeError('boom in my loss')"),
               "raised RuntimeError: boom in my loss at line"),
    "nan": (_method("zz_nan", "return step.student().logits.sum() * float('nan')"),
            "loss() returned nan at epoch 1, step 1"),
    "shape": (_method("zz_shape", "return step.student().logits"),
              "returned a tensor of shape (128, 10), expected a scalar"),
    "import": ("import torch\nfrom methods.api import no_such_name\n",
               "could not be loaded from"),
}


@pytest.fixture
def method_files():
    """Write files into methods/ for one test and always remove them."""
    written = []

    def write(name, source):
        path = REPO / "methods" / f"{name}.py"
        path.write_text(source)
        written.append(path)
        return path
    yield write
    for p in written:
        p.unlink(missing_ok=True)


def test_faulty_methods_are_isolated_named_and_record_nothing(method_files, smoke_run, tmp_path):
    root, _ = smoke_run
    paths = {kind: method_files(f"zz_{kind}", src) for kind, (src, _) in FAULTY.items()}
    names = ",".join(["baseline", *(f"zz_{k}" for k in FAULTY)])
    proc = kdbench("run", "--smoke", "-q", "--methods", names, "--results-dir",
                   str(tmp_path / "res"), "--cache-dir", str(root / "cache"))
    assert proc.returncode == 1
    assert "4 job(s) failed" in proc.stderr
    for kind, (_, message) in FAULTY.items():
        line = next(l for l in proc.stderr.splitlines() if f"'zz_{kind}'" in l and "  - " in l)
        assert message in line, (kind, line)
        assert str(paths[kind]) in line, (kind, line)
    written = sorted(p.parent.name for p in (tmp_path / "res").rglob("*.json"))
    assert written == ["baseline"]  # the good method still ran; nothing for the broken ones
    assert "Traceback" not in proc.stderr


def test_broken_module_does_not_hide_the_others(method_files):
    method_files("zz_import", FAULTY["import"][0])
    proc = kdbench("methods")
    assert proc.returncode == 1
    assert "vanilla" in proc.stdout
    assert "zz_import.py: ImportError: cannot import name 'no_such_name'" in proc.stderr


def test_scaffolded_method_runs_under_smoke_without_touching_other_files(smoke_run, tmp_path):
    root, _ = smoke_run
    name = f"zz_scaffold_{uuid.uuid4().hex[:6]}"
    files = [REPO / "methods" / f"{name}.py", REPO / "tests" / f"test_method_{name}.py"]
    try:
        made = kdbench("new-method", name)
        assert made.returncode == 0, made.stderr
        assert all(f.exists() for f in files)
        run = kdbench("run", "--smoke", "-q", "--methods", name, "--results-dir",
                      str(tmp_path), "--cache-dir", str(root / "cache"))
        assert run.returncode == 0, run.stderr
        rec = read_record(tmp_path / "mnist5k" / name / "seed-0.json")
        assert rec.hparams == {"T": 4.0, "alpha": 0.9}
        assert rec.method_source == f"methods/{name}.py"
        import subprocess
        import sys
        test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(files[1])], capture_output=True, text=True, cwd=REPO)
        assert test.returncode == 0, test.stdout
    finally:
        for f in files:
            f.unlink(missing_ok=True)


def test_entry_point_method_from_an_installed_distribution(tmp_path, smoke_run):
    root, _ = smoke_run
    pkg = tmp_path / "site" / "kdb_ext_demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(_method("ext_demo", """
        s = step.student().logits
        return torch.nn.functional.mse_loss(s, step.teacher.logits)"""))
    info = tmp_path / "site" / "kdb_ext_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kdb-ext-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kdbench.methods]\next_demo = kdb_ext_demo:M\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                              text=True, cwd=REPO, env=env, timeout=300)
    listed = cli("methods")
    assert listed.returncode == 0, listed.stderr
    assert "ext_demo" in listed.stdout
    run = cli("run", "--smoke", "-q", "--methods", "ext_demo", "--results-dir", str(tmp_path / "r"),
              "--cache-dir", str(root / "cache"))
    assert run.returncode == 0, run.stderr
    rec = read_record(tmp_path / "r" / "mnist5k" / "ext_demo" / "seed-0.json")
    assert rec.method_source.endswith("kdb_ext_demo/__init__.py")
