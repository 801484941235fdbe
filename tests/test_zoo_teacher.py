"""Teachers from RobustBench's model zoo (`kdbench run --teacher robustbench:NAME`): checkpoints
the tests write in RobustBench's layout (random weights of real zoo architectures), read safely
and the same way robustbench's own `load_model` reads them; protocols that name the checkpoint;
feature taps; the clean-accuracy check; and a `--smoke` run driven by a zoo teacher."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from torch import nn

from bench.data.split import Split
from bench.errors import MethodError, UsageError
from bench.models import build_model, feature_shapes
from bench.models import zoo_checkpoint as zc
from bench.models.zoo import ZOO_ARCH, zoo_network
from bench.progress import Reporter
from bench.protocols import ZooTeacher, get_protocol
from bench.records import read_record
from cifar_data import images, write_cifar10
from support import REPO
from support import write_zoo_checkpoint

R18 = "Addepalli2022Efficient_RN18"  # robustbench's ResNet18 (11.2M parameters)


def rb_load_model(name, model_dir):
    """robustbench's own loader, the reference for what a zoo checkpoint holds."""
    from robustbench.utils import load_model
    return load_model(name, model_dir=str(model_dir), dataset="cifar10", threat_model="Linf")


def source(name=R18, sha256="0" * 64):
    return ZooTeacher("robustbench", name, "cifar10", "Linf", sha256)


@pytest.fixture
def x():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("prefix, wrap", [("module.", True), ("model.", False), ("", True)])
def test_checkpoint_reads_as_robustbench_load_model_reads_it(tmp_path, x, prefix, wrap):
    path, weights = write_zoo_checkpoint(tmp_path, R18, prefix=prefix, wrap=wrap)
    ours = zc.load_into(zoo_network(R18), path, R18)
    theirs = rb_load_model(R18, tmp_path)
    assert not theirs.training and not ours.training
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in weights.items())


def test_missing_normalisation_buffers_keep_the_architectures_values(tmp_path, x):
    # Wong2020Fast's published checkpoint lacks `mu` and `sigma` (robustbench lists it among the
    # models whose load tolerates exactly that); they keep the values the architecture sets.
    name = "Wong2020Fast"
    path, weights = write_zoo_checkpoint(tmp_path, name)
    ckpt = torch.load(path, weights_only=True)
    for k in ("module.mu", "module.sigma"):
        del ckpt["state_dict"][k]
    torch.save(ckpt, path)
    ours = zc.load_into(zoo_network(name), path, name)
    assert torch.allclose(ours.mu.flatten(), torch.tensor([0.4914, 0.4822, 0.4465]))
    with torch.no_grad():
        assert torch.equal(ours(x), rb_load_model(name, tmp_path)(x))


def test_a_checkpoint_that_would_run_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    path, _ = write_zoo_checkpoint(tmp_path, R18)
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "args": Payload()}, path)
    with pytest.raises(zc.ZooError, match=r"refused: loading it needs arbitrary unpickling "
                                          r"\(it references .*pathlib.*weights_only=True"):
        zc.load_into(zoo_network(R18), path, R18)
    assert not marker.exists()


def test_a_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    path, _ = write_zoo_checkpoint(tmp_path, "Wong2020Fast")  # PreActResNet-18, not ResNet-18
    with pytest.raises(zc.ZooError, match=f"does not fit the architecture of robustbench:{R18}"):
        zc.load_into(zoo_network(R18), path, R18)


def test_missing_file_offline_names_the_file_to_place(tmp_path, monkeypatch):
    monkeypatch.setenv(zc.OFFLINE_ENV, "1")
    with pytest.raises(zc.ZooError) as e:
        zc.resolve_teacher(f"robustbench:{R18}", tmp_path)
    msg = str(e.value)
    assert f"no checkpoint at {tmp_path}/cifar10/Linf/{R18}.pt" in msg
    assert "not downloading (KDBENCH_OFFLINE is set)" in msg and "--model-dir" in msg


def test_a_failed_download_is_a_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    import robustbench.utils
    monkeypatch.delenv(zc.OFFLINE_ENV, raising=False)
    calls = []

    def no_network(gdrive_id, fname_save):
        calls.append(gdrive_id)
        pathlib.Path(fname_save).write_bytes(b"half a file")
        raise ConnectionError("Name or service not known")
    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", no_network)
    with pytest.raises(zc.ZooError, match=r"downloading it failed \(ConnectionError: Name or"):
        zc.resolve_teacher(f"robustbench:{R18}", tmp_path)
    from robustbench.model_zoo.cifar10 import cifar_10_models
    from robustbench.model_zoo.enums import ThreatModel
    assert calls == [cifar_10_models[ThreatModel.Linf][R18]["gdrive_id"]]
    assert not [f for f in tmp_path.rglob("*") if f.is_file()]


def test_names_the_zoo_does_not_offer_as_one_network_are_refused(tmp_path):
    with pytest.raises(UsageError, match="did you mean Addepalli2022Efficient_RN18"):
        zc.resolve_teacher("robustbench:Addepalli2022Efficient_RN1", tmp_path)
    with pytest.raises(UsageError, match="an ensemble of several checkpoints"):
        zc.resolve_teacher("robustbench:Chen2020Adversarial", tmp_path)
    with pytest.raises(UsageError, match="takes robustbench:NAME"):
        zc.resolve_teacher(R18, tmp_path)
    with pytest.raises(UsageError, match="zoo teachers are cifar10 models; protocol 'mnist5k'"):
        zc.with_zoo_teacher(get_protocol("mnist5k"), f"robustbench:{R18}", tmp_path)


def test_the_protocol_names_the_checkpoint_by_sha256(tmp_path):
    path, _ = write_zoo_checkpoint(tmp_path, R18)
    base = get_protocol("cifar10-robust")
    p = zc.with_zoo_teacher(base, f"robustbench:{R18}", tmp_path)
    import hashlib
    assert p.teacher_source == source(sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    assert p.name == f"cifar10-robust+robustbench-{R18}" and p.teacher_arch == ZOO_ARCH
    assert p.hash != base.hash
    other = base.with_teacher(dataclasses.replace(p.teacher_source, sha256="1" * 64))
    assert other.hash != p.hash  # other weights, another protocol version
    # what a record names rebuilds the same protocol, smoke or not, in either order
    assert get_protocol(p.name, dataclasses.asdict(p.teacher_source)) == p
    assert base.for_smoke().with_teacher(p.teacher_source) == p.for_smoke()
    with pytest.raises(UsageError, match="--protocol cifar10-robust --teacher robustbench:NAME"):
        get_protocol(p.name)
    assert p.run_options == f"--protocol cifar10-robust --teacher robustbench:{R18}"


def test_a_trained_teachers_protocol_hash_is_unchanged_by_the_field():
    p = get_protocol("cifar10")
    assert "teacher_source" not in p.to_dict() and p.teacher_source is None


@pytest.mark.parametrize("name, shapes", [
    # ResNet-18 (robustbench's resnet.py): widths 64-128-256-512 at 32, 16, 8, 4 pixels;
    # stages 2-4 have the student's sizes (16, 8, 4).
    (R18, [(128, 16, 16), (256, 8, 8), (512, 4, 4)]),
    ("Wong2020Fast", [(128, 16, 16), (256, 8, 8), (512, 4, 4)]),  # PreActResNet-18
    # WideResNet-28-4: groups of 16k = 64, 128, 256 channels at 32, 16, 8 pixels.
    ("Ding2020MMA", [(64, 32, 32), (128, 16, 16), (256, 8, 8)]),
])
def test_zoo_families_declare_the_students_stages(name, shapes, x):
    model = build_model(ZOO_ARCH, get_protocol("cifar10").with_teacher(source(name)))
    assert model.stages == ("stage1", "stage2", "stage3")
    assert list(feature_shapes(model, model.stages, x).values()) == shapes


def test_a_feature_method_with_a_teacher_without_stages_names_the_teacher():
    import methods
    from bench.train.engine import build_method
    hierarchical = methods.discover()[0]["hierarchical"].cls
    p = get_protocol("cifar10")
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    teacher.zoo_name, teacher.stages = "SomeZooModel", ()  # as bench.models.zoo marks a family
    student = build_model(p.student_arch, p)                 # it has no stages for
    with pytest.raises(MethodError, match=r"not stages of both architectures \(available: \[\]; "
                                          r"the teacher robustbench:SomeZooModel \(Sequential\) "
                                          r"has \[\], the student ResNet9 has \['stage1'"):
        build_method(hierarchical, hierarchical.Hparams(), p, student, teacher,
                     torch.rand(2, 3, 32, 32))


def test_clean_check_tolerance_is_four_standard_errors_of_the_subset():
    from bench.train.teacher import clean_check_tolerance
    # p = 0.85 on n = 1000 of 10,000: sqrt(.85 * .15 / 1000 * 9000 / 9999) = 0.010714
    assert clean_check_tolerance(85.0, 1000) == pytest.approx(0.1 + 4 * 1.0714, abs=1e-3)
    assert clean_check_tolerance(85.0, 10_000) == pytest.approx(0.1)  # all of it: exact, 0.1


def _split(n=40):
    x, y = images(n, seed=2)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(y).long()
    return Split(x, y, x, y, "f" * 16, "e" * 16, official=True)


def test_clean_accuracy_is_checked_against_the_published_number(tmp_path):
    from bench.train.teacher import get_teacher
    path, _ = write_zoo_checkpoint(tmp_path / "models", R18)
    p = zc.with_zoo_teacher(dataclasses.replace(get_protocol("cifar10"), n_test=40),
                            f"robustbench:{R18}", tmp_path / "models")
    split = _split()
    # robustbench's own accuracy of its loaded model, written where its repository keeps it
    from robustbench.utils import clean_accuracy
    acc = 100 * clean_accuracy(rb_load_model(R18, tmp_path / "models"), split.x_test,
                               split.y_test)
    info = tmp_path / "model_info" / "cifar10" / "Linf" / f"{R18}.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"clean_acc": f"{acc:.2f}"}))
    t = get_teacher(p, split, tmp_path / "cache", "cpu", Reporter(quiet=True),
                    model_dir=tmp_path / "models")
    assert t.stats is None and t.source["checked_n"] == 40
    assert t.source["checked_clean_acc"] == pytest.approx(acc, abs=1e-3)
    assert t.source["published_clean_acc"] == float(f"{acc:.2f}")
    assert t.source["sha256"] == p.teacher_source.sha256
    # a published number this random network does not reach: refused, nothing cached
    info.write_text(json.dumps({"clean_acc": "84.59"}))
    with pytest.raises(zc.ZooError, match=rf"clean accuracy {acc:.2f}% on the first 40 .*"
                                          r"publishes 84.59%.*is not the published model"):
        get_teacher(p, split, tmp_path / "cache2", "cpu", Reporter(quiet=True),
                    model_dir=tmp_path / "models")
    assert not (tmp_path / "cache2" / "teachers").exists() or not any(
        (tmp_path / "cache2" / "teachers").iterdir())


def test_a_changed_checkpoint_is_not_the_protocols_teacher(tmp_path):
    from bench.train.teacher import get_teacher
    write_zoo_checkpoint(tmp_path, R18)
    p = zc.with_zoo_teacher(dataclasses.replace(get_protocol("cifar10"), n_test=40),
                            f"robustbench:{R18}", tmp_path)
    write_zoo_checkpoint(tmp_path, R18, seed=1)  # other weights in the same file
    with pytest.raises(zc.ZooError, match="not the .* the protocol names: the file changed"):
        get_teacher(p, _split(), tmp_path / "cache", "cpu", Reporter(quiet=True),
                    model_dir=tmp_path)


def _cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=1200, env={**os.environ, **env})


@pytest.mark.integration
def test_cli_missing_checkpoint_offline_is_one_line(tmp_path):
    proc = _cli("run", "--protocol", "cifar10-robust", "--teacher", f"robustbench:{R18}",
                "--model-dir", str(tmp_path / "models"), "--smoke", "--data-dir", str(tmp_path),
                "-q", "--results-dir", str(tmp_path / "r"), KDBENCH_OFFLINE="1")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"{tmp_path}/models/cifar10/Linf/{R18}.pt" in proc.stderr.replace("\n", "")


@pytest.mark.integration
@pytest.mark.slow  # a ResNet-18 teacher evaluated on CPU: minutes on a busy machine
def test_smoke_run_with_a_zoo_teacher(tmp_path):
    data, models = tmp_path / "data", tmp_path / "models"
    write_cifar10(data, n_train=300, n_test=50)
    path, _ = write_zoo_checkpoint(models, R18, prefix="module.")
    proc = _cli("run", "--protocol", "cifar10-robust", "--teacher", f"robustbench:{R18}",
                "--model-dir", str(models), "--smoke", "--data-dir", str(data),
                "--methods", "teacher,hierarchical", "-q", "--workers", "1",
                "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "c"),
                KDBENCH_SKIP_CIFAR_MD5="1")
    assert proc.returncode == 0, proc.stderr
    assert f"teacher: robustbench:{R18} from {path}" in proc.stderr
    assert "not the official CIFAR-10 release" in proc.stderr  # the test data: not checked
    p = zc.with_zoo_teacher(get_protocol("cifar10-robust"), f"robustbench:{R18}", models)
    folder = tmp_path / "results" / p.name
    teacher = read_record(folder / "teacher" / "seed-0.json")
    student = read_record(folder / "hierarchical" / "seed-0.json")  # feature taps on ResNet-18
    for rec in (teacher, student):
        assert rec.protocol_hash == p.for_smoke().hash
        assert rec.teacher_source.sha256 == p.teacher_source.sha256
        assert rec.teacher_source.published_clean_acc == 85.71  # RobustBench's model_info
        assert rec.teacher_source.checked_clean_acc is None
    assert teacher.training is None and teacher.arch == ZOO_ARCH
    assert teacher.metrics.efficiency.params == 11_173_962  # ResNet-18, as robustbench builds it
    assert student.training.epochs == 2 and student.teacher_key == teacher.teacher_key
    # the teacher row's checkpoint is the zoo's weights
    state = torch.load(tmp_path / "results" / teacher.checkpoint.file, weights_only=True)
    ref = torch.load(path, weights_only=True)["state_dict"]
    assert all(torch.equal(state["state_dict"][k[len("module."):]], v) for k, v in ref.items())
    check = _cli("validate", "--allow-smoke", str(tmp_path / "results"))
    assert check.returncode == 0, check.stdout + check.stderr
