"""Where training gets the teacher's outputs (cache or online), and the CUDA training paths
(bf16 autocast, the once-per-epoch loss check) exercised on CPU."""

import contextlib
import dataclasses

import pytest
import torch

import methods
from bench.train import device as gpu_speed
from bench.data import Batch
from bench.train.engine import build_method, train
from bench.train.teacher_outputs import TeacherOutputs
from bench.errors import MethodError
from bench.models.taps import TappedModel
from bench.models import build_model
from bench.protocols import get_protocol
from bench.train.teacher_outputs import OnlineTeacher, teacher_source
from methods.api import Method

P = get_protocol("cifar10")


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return build_model(P.teacher_arch, P).eval()


def _train(name, teacher, x, y, seed=0, epochs=1):
    spec = methods.discover()[0][name]
    recipe = dataclasses.replace(P.student_recipe, epochs=epochs, batch_size=32)
    torch.manual_seed(seed)
    student = build_model(P.student_arch, P)
    uses = spec.cls.uses_teacher
    method = build_method(spec.cls, spec.default_hparams(), P, student, teacher if uses else None,
                          x)
    stats = train(student, method, recipe, x, y, seed,
                  teacher_source(P, teacher, x) if uses else None, augmentation=P.augmentation)
    return student, stats


def test_online_teacher_equals_a_direct_forward_pass(teacher):
    x, y = _data(8)
    batch = Batch(x, y, torch.arange(8), augmented=True)
    got = OnlineTeacher(teacher).outputs(batch, ("stage1", "stage3"))
    tapped = TappedModel(teacher, ("stage1", "stage3"))
    with torch.no_grad():
        want = tapped(x)
    tapped.remove()
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=0)
    for t in ("stage1", "stage3"):
        torch.testing.assert_close(got.features[t], want.features[t], rtol=0, atol=0)
    assert not got.logits.requires_grad and teacher.training is False
    assert not any(m._forward_hooks for m in teacher.modules())  # no hooks left behind


def test_online_teacher_runs_in_eval_mode_and_restores_the_mode(teacher):
    x, y = _data(8)
    teacher.train()
    try:
        got = OnlineTeacher(teacher).outputs(Batch(x, y, torch.arange(8)), ())
        assert teacher.training  # restored
    finally:
        teacher.eval()
    with torch.no_grad():
        torch.testing.assert_close(got.logits, teacher(x))  # eval-mode batch norm


def test_the_protocol_picks_the_teacher_source(teacher):
    x, _ = _data(8)
    assert isinstance(teacher_source(P, teacher, x), OnlineTeacher)  # cifar10 augments
    assert isinstance(teacher_source(get_protocol("mnist5k"), teacher, x), TeacherOutputs)
    cache = TeacherOutputs(teacher, x)
    cache.ensure(())
    with pytest.raises(ValueError, match="augmented batch needs"):
        cache.outputs(Batch(x, x, torch.arange(8), augmented=True), ())


def test_augmented_kd_training_is_deterministic_for_a_seed(teacher):
    x, y = _data()
    torch.use_deterministic_algorithms(True)
    try:
        a, sa = _train("vanilla", teacher, x, y, seed=1)
        b, sb = _train("vanilla", teacher, x, y, seed=1)
    finally:
        torch.use_deterministic_algorithms(False)
    assert sa.final_epoch_loss == sb.final_epoch_loss and sa.steps == 2
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _cpu_bf16(device):
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("name", ["hierarchical", "adversarial"])
def test_cuda_training_path_runs_on_cpu(teacher, monkeypatch, name):
    """What CUDA does differently, on CPU: bf16 autocast in training and in the online teacher
    (features, PGD under autocast), the loss summed on the device and checked per epoch."""
    monkeypatch.setattr(gpu_speed, "autocast", _cpu_bf16)
    monkeypatch.setattr(gpu_speed, "checks_every_step", lambda device: False)
    x, y = _data(32)
    student, stats = _train(name, teacher, x, y)
    assert torch.isfinite(torch.tensor(stats.final_epoch_loss))
    assert all(p.dtype == torch.float32 for p in student.parameters())


def test_a_non_finite_loss_is_caught_once_per_epoch_on_the_cuda_path(monkeypatch):
    class Broken(Method):
        name, description, family, uses_teacher = "broken", "NaN", "reference", False

        def loss(self, step):
            return step.student().logits.sum() * float("nan")

    monkeypatch.setattr(gpu_speed, "checks_every_step", lambda device: False)
    x, y = _data(32)
    student = build_model(P.student_arch, P)
    method = build_method(Broken, Broken.Hparams(), P, student, None, x)
    recipe = dataclasses.replace(P.student_recipe, epochs=2, batch_size=16)
    with pytest.raises(MethodError, match="non-finite values during epoch 1"):
        train(student, method, recipe, x, y, 0)


def test_gpu_speed_does_nothing_on_cpu():
    assert isinstance(gpu_speed.autocast("cpu"), contextlib.nullcontext)
    assert gpu_speed.checks_every_step("cpu") and not gpu_speed.checks_every_step("cuda:0")
    before = torch.backends.cudnn.benchmark
    gpu_speed.configure("cpu")
    assert torch.backends.cudnn.benchmark == before
    model = build_model(P.student_arch, P)
    assert gpu_speed.compile_for_training(model, False) is model
    with pytest.raises(ValueError, match="only used on CUDA"):
        gpu_speed.compile_for_training(model, True)
