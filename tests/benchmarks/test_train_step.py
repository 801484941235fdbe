"""Cost of distillation over plain training, with the teacher-output cache on (goal: <= 1.3x,
asserted).

Run with `make perf`. Each round is one epoch over the mnist5k training set: the optimiser step,
the batch slicing and the cache lookups are all inside the timed region; computing the teacher's
outputs (once per run, shared by every method and seed) is not.
"""

import dataclasses

import pytest
import torch

import methods
from bench.train.engine import build_method, train
from bench.train.teacher_outputs import TeacherOutputs
from bench.models import build_model

_medians: dict[str, float] = {}


GOAL = 1.3  # a KD epoch costs at most this many plain (cross-entropy) epochs


@pytest.fixture(scope="module")
def setup(protocol, split):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a benchmark job runs
    teacher = build_model(protocol.teacher_arch, protocol).eval()
    outputs = TeacherOutputs(teacher, split.x_train)
    outputs.ensure(())
    yield protocol, split, teacher, outputs
    torch.set_num_threads(threads)


def _epoch(setup, name):
    protocol, split, teacher, outputs = setup
    spec = methods.discover()[0][name]
    recipe = dataclasses.replace(protocol.student_recipe, epochs=1)
    student = build_model(protocol.student_arch, protocol)
    method = build_method(spec.cls, spec.default_hparams(), protocol, student, teacher,
                          split.x_train)
    return lambda: train(student, method, recipe, split.x_train, split.y_train, 0, outputs)


@pytest.mark.benchmark(group="train-epoch")
@pytest.mark.parametrize("name", ["baseline", "vanilla"])
def test_train_epoch(benchmark, setup, name):
    benchmark.pedantic(_epoch(setup, name), rounds=7, warmup_rounds=1)
    if not benchmark.enabled:  # `make test` runs each benchmark once, untimed
        return
    _medians[name] = benchmark.stats.stats.median
    if name == "vanilla" and "baseline" in _medians:
        ratio = _medians["vanilla"] / _medians["baseline"]
        benchmark.extra_info["kd_over_ce"] = round(ratio, 3)
        print(f"\nKD step / CE step (teacher cache on): {ratio:.3f}")
        assert ratio <= GOAL, f"a KD epoch costs {ratio:.2f}x a CE epoch; the goal is {GOAL}x"
