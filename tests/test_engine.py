import torch

import methods
from bench.models.taps import feature_shapes
from bench.train.engine import build_method, train
from bench.train.teacher_outputs import TeacherOutputs
from bench.models.taps import TappedModel
from bench.models import build_model, count_params


def _train(protocol, split, name, seed, teacher=None, outputs=None, epochs=1):
    import dataclasses
    specs, _ = methods.discover()
    spec = specs[name]
    recipe = dataclasses.replace(protocol.student_recipe, epochs=epochs)
    torch.manual_seed(seed)
    student = build_model(protocol.student_arch, protocol)
    method = build_method(spec.cls, spec.default_hparams(), protocol, student, teacher,
                          split.x_train[:512])
    stats = train(student, method, recipe, split.x_train[:512], split.y_train[:512], seed, outputs)
    return student, stats


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_training_is_deterministic_for_a_seed(protocol, split):
    torch.use_deterministic_algorithms(True)
    try:
        a, sa = _train(protocol, split, "baseline", seed=3)
        b, sb = _train(protocol, split, "baseline", seed=3)
        c, _ = _train(protocol, split, "baseline", seed=4)
    finally:
        torch.use_deterministic_algorithms(False)
    assert _same(a, b) and sa.final_epoch_loss == sb.final_epoch_loss
    assert not _same(a, c)


def test_student_is_much_smaller_than_teacher(protocol):
    t = count_params(build_model(protocol.teacher_arch, protocol))
    s = count_params(build_model(protocol.student_arch, protocol))
    assert t > 10 * s


def test_teacher_output_cache_equals_a_fresh_forward_pass(protocol, split):
    teacher = build_model(protocol.teacher_arch, protocol).eval()
    cache = TeacherOutputs(teacher, split.x_train[:300], batch_size=128)
    cache.ensure(("stage2",))
    idx = torch.tensor([5, 0, 299, 17])
    got = cache.lookup(idx, ("stage2",))
    tapped = TappedModel(teacher, ("stage2",))
    with torch.no_grad():
        fresh = tapped(split.x_train[:300][idx])
    torch.testing.assert_close(got.logits, fresh.logits)
    torch.testing.assert_close(got.features["stage2"], fresh.features["stage2"])
    assert teacher.training is False


def test_vanilla_trains_from_the_cached_teacher(protocol, split):
    teacher = build_model(protocol.teacher_arch, protocol).eval()
    outputs = TeacherOutputs(teacher, split.x_train[:512])
    _, stats = _train(protocol, split, "vanilla", seed=0, teacher=teacher, outputs=outputs)
    assert outputs.logits.shape == (512, 10)
    assert stats.final_epoch_loss > 0 and stats.steps == 4


def test_feature_shapes_of_declared_stages(protocol):
    x = torch.zeros(2, *protocol.input_shape)
    t = build_model(protocol.teacher_arch, protocol)
    s = build_model(protocol.student_arch, protocol)
    ts, ss = feature_shapes(t, t.stages, x), feature_shapes(s, s.stages, x)
    assert [v[1:] for v in ts.values()] == [v[1:] for v in ss.values()]  # same spatial sizes
    assert [v[0] for v in ts.values()] == [32, 64, 128]
    assert [v[0] for v in ss.values()] == [8, 16, 32]
