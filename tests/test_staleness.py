"""One idea of a job: a record is current only if it was made by today's code (the method file,
every project module it imports, the architecture), against today's teacher, by today's harness.
Run, submit, validate and verify all ask the same `staleness()`."""

import dataclasses
import shutil
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import methods
from bench.cli import app
from bench.harness import HARNESS_VERSION
from bench.protocols import PROTOCOLS, get_protocol
from bench.provenance import code_dependencies
from bench.records import read_record
from bench.run.spec import TEACHER, job_spec, staleness
from support import REPO, changed_file, kdbench


def _files(module):
    return {p.relative_to(REPO).as_posix() for p in code_dependencies(module)}


@pytest.mark.parametrize("method, shared", [
    ("vanilla", {"methods/losses.py"}), ("hierarchical", {"methods/losses.py"}),
    ("ard", {"methods/losses.py", "attacks/pgd.py"}), ("pgd_at", {"attacks/pgd.py"}),
    ("adversarial", {"methods/losses.py", "attacks/pgd.py"}), ("baseline", set())])
def test_a_methods_code_is_its_file_and_every_project_module_it_imports(method, shared):
    files = _files(f"methods.{method}")
    assert files == {f"methods/{method}.py"} | shared
    # the harness (bench/, the contract) is not hashed per job: HARNESS_VERSION stands for it
    assert not {f for f in files if f.startswith("bench/") or f == "methods/api.py"}


def test_every_job_names_its_architecture_teacher_and_harness(protocol):
    spec = job_spec(protocol, "vanilla", 1)
    assert "bench/models/convnet.py" in spec.sources and "bench/models/normalize.py" in spec.sources
    assert spec.sources["methods/vanilla.py"] and spec.method_source == "methods/vanilla.py"
    assert spec.harness_version == HARNESS_VERSION and spec.arch == protocol.student_arch
    assert spec.teacher_key == job_spec(protocol, "baseline", 0).teacher_key
    teacher = job_spec(protocol, TEACHER, protocol.teacher_seed)
    assert teacher.arch == protocol.teacher_arch and "methods/baseline.py" in teacher.sources
    assert spec.key != job_spec(protocol, "vanilla", 2).key  # the seed is part of the job


def test_the_teacher_key_follows_the_teachers_recipe_and_code(protocol, monkeypatch):
    base = job_spec(protocol, "vanilla", 0).teacher_key
    longer = dataclasses.replace(protocol, teacher_recipe=dataclasses.replace(
        protocol.teacher_recipe, epochs=protocol.teacher_recipe.epochs + 1))
    assert job_spec(longer, "vanilla", 0).teacher_key != base
    changed_file(monkeypatch, "methods/baseline.py")  # the teacher is trained with its loss
    assert job_spec(protocol, "vanilla", 0).teacher_key != base


# -- on real records: a tiny protocol, run in this process ----------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    smoke = get_protocol("mnist5k").for_smoke()
    proto = dataclasses.replace(smoke, name="tiny-stale", smoke=False, seeds=(0, 1, 2))
    root = tmp_path_factory.mktemp("stale")
    deterministic = torch.are_deterministic_algorithms_enabled()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PROTOCOLS, "tiny-stale", lambda: proto)
        out = CliRunner().invoke(app, [
            "run", "--protocol", "tiny-stale", "--methods", "teacher,baseline,vanilla",
            "--seeds", "0", "--workers", "0", "-q", "--results-dir", str(root / "results"),
            "--cache-dir", str(root / "cache")])
        assert out.exit_code == 0, out.output
    torch.use_deterministic_algorithms(deterministic)
    return proto, root


def _reasons(proto, root, method):
    rec = read_record(root / "results" / proto.name / method / "seed-0.json")
    seed = rec.seed
    return staleness(rec, job_spec(proto, method, seed), proto, results_dir=root / "results")


@pytest.mark.integration
def test_fresh_records_are_current(tiny):
    proto, root = tiny
    for method in ("teacher", "baseline", "vanilla"):
        assert _reasons(proto, root, method) == [], method


@pytest.mark.integration
@pytest.mark.parametrize("edited, stale, current", [
    ("methods/losses.py", {"vanilla"}, {"baseline", "teacher"}),  # a shared loss
    ("methods/vanilla.py", {"vanilla"}, {"baseline", "teacher"}),
    ("bench/models/convnet.py", {"vanilla", "baseline", "teacher"}, set()),  # the architecture
    ("methods/baseline.py", {"vanilla", "baseline", "teacher"}, set()),  # the teacher's recipe
])
def test_editing_code_makes_exactly_the_dependent_records_stale(tiny, monkeypatch, edited, stale,
                                                               current):
    proto, root = tiny
    changed_file(monkeypatch, edited)
    for method in stale:
        reasons = " ".join(_reasons(proto, root, method))
        assert edited in reasons or "another teacher" in reasons, (method, reasons)
    for method in current:
        assert _reasons(proto, root, method) == [], method


@pytest.mark.integration
def test_validate_and_submit_print_the_reason(tiny, monkeypatch):
    proto, root = tiny
    monkeypatch.setitem(PROTOCOLS, proto.name, lambda: proto)
    changed_file(monkeypatch, "methods/losses.py")
    out = CliRunner().invoke(app, ["validate", str(root / "results")])
    assert out.exit_code == 1
    assert "stale: the record methods/losses.py changed since the record was made" in out.output
    assert "baseline" not in "".join(l for l in out.output.splitlines() if "invalid" in l)


@pytest.mark.integration
def test_a_real_edit_in_a_copy_of_the_repository_reruns_the_job(tmp_path):
    """End to end, no monkeypatching: edit methods/losses.py in a copy of the repository and
    `kdbench run` reruns vanilla, saying why, and keeps baseline."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".kdbench", "results", "test-artifacts", "__pycache__", "*.egg-info"))
    args = ("run", "--smoke", "-q", "--methods", "baseline,vanilla", "--results-dir",
            str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"))
    first = kdbench(*args, cwd=repo)
    assert first.returncode == 0, first.stderr
    with open(repo / "methods" / "losses.py", "a") as f:
        f.write("\n# an edit\n")
    second = kdbench(*args, cwd=repo)
    assert second.returncode == 0, second.stderr
    assert ("vanilla seed 0: running again, its record methods/losses.py changed since the "
            "record was made") in second.stderr
    assert "1 job(s) already have up-to-date records" in second.stderr
