"""Our clean and AutoAttack accuracy equal robustbench.eval.benchmark's on the same model and
examples (CIFAR-10 test data the test writes in the dataset's on-disk format)."""

import json

import pytest
import torch
import torchvision
from torch import nn

from attacks.adversarial import predict
from attacks.autoattack import autoattack_mask
from bench.models import Normalize
from bench.robustbench_compat import import_robustbench
from cifar_data import images, write_cifar10

N, BATCH, EPS = 20, 20, 8 / 255


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    write_cifar10(tmp_path, n_train=50, n_test=N)
    # torchvision checks the md5 of the real CIFAR-10 files even when not downloading; the test
    # data has other checksums. Tests only.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    return tmp_path


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
                          nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 10))
    x, y = images(400, seed=7)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(y).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.mark.slow  # AutoAttack runs twice on CPU: ~40 s alone, minutes on a busy machine
def test_clean_and_autoattack_accuracy_match_robustbench(cifar_dir):
    import_robustbench()
    from robustbench.data import load_cifar10
    from robustbench.eval import benchmark

    model = tiny_model()
    rb_clean, rb_aa = benchmark(model, n_examples=N, dataset="cifar10", threat_model="Linf",
                                data_dir=str(cifar_dir), device=torch.device("cpu"),
                                batch_size=BATCH, eps=EPS)
    x, y = load_cifar10(n_examples=N, data_dir=str(cifar_dir))
    ours_clean = (predict(model, x, BATCH) == y).sum().item() / N
    ours_aa = autoattack_mask(model, x, y, EPS, BATCH, seed=0).sum().item() / N
    assert ours_clean == pytest.approx(rb_clean, abs=1e-9)
    assert ours_aa == pytest.approx(rb_aa, abs=1e-9)
    assert 0.5 < ours_clean and ours_aa < ours_clean  # the model learned, and the attack bites


@pytest.mark.integration
@pytest.mark.slow  # a --smoke --full CIFAR-10 run, then AutoAttack again through robustbench
def test_exported_students_numbers_are_robustbenchs(exported_student, monkeypatch, tmp_path):
    """The student `kdbench export-robustbench` wrote, loaded by robustbench's load_model and
    evaluated by robustbench.eval.benchmark on the same test images, gets the clean and AutoAttack
    accuracy of its record; benchmark(to_disk=True) rewrites the exported model_info file with
    its own numbers, which equal ours. On a copy of the export: the fixture is shared, and
    robustbench rewrites the file its own way (eps as a float)."""
    import shutil
    from types import SimpleNamespace
    ns = SimpleNamespace(**vars(exported_student))
    ns.out = tmp_path / "out"
    shutil.copytree(exported_student.out, ns.out)
    import_robustbench()
    from robustbench.eval import benchmark
    from robustbench.utils import load_model

    from bench.records import read_record
    from bench.robustbench_export import register_exported
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    rec = read_record(ns.record)
    register_exported(ns.out)
    model = load_model(ns.name, model_dir=str(ns.out / "models"), dataset="cifar10",
                       threat_model="Linf")
    mine = json.loads((ns.out / "model_info" / "cifar10" / "Linf" / f"{ns.name}.json").read_text())
    monkeypatch.chdir(ns.out)  # benchmark(to_disk=True) updates ./model_info/.../<name>.json
    rb_clean, rb_aa = benchmark(model, n_examples=N, dataset="cifar10", threat_model="Linf",
                                to_disk=True, model_name=ns.name, data_dir=str(ns.data),
                                device=torch.device("cpu"), batch_size=N, eps=EPS)
    assert 100 * rb_clean == pytest.approx(rec.metrics.clean_acc, abs=1e-9)
    assert 100 * rb_aa == pytest.approx(rec.metrics.autoattack_acc, abs=1e-9)
    theirs = json.loads((ns.out / "model_info" / "cifar10" / "Linf" / f"{ns.name}.json").read_text())
    for field in ("clean_acc", "autoattack_acc"):
        assert float(theirs[field]) == pytest.approx(float(mine[field]), abs=0.005), field
    assert theirs["name"] == mine["name"]  # robustbench updated our file, not a new one
