"""Evaluation overheads (run with `make perf`).

- PGD through the suite (EvalContext.attack: seeding, masks, progress) against a bare torchattacks
  loop on the same model and images: goal <= 1.1x the time.
- Latency repeatability: the coefficient of variation of 5 repeated CPU batch-1 measurements of
  the student: goal <= 5 %.
"""

import pytest
import torch
import torchattacks

from bench.eval import efficiency
from bench.eval.context import EvalContext
from bench.models import build_model
from bench.progress import Reporter

_pgd: dict[str, float] = {}


OVERHEAD_GOAL = 1.1  # the suite's PGD / a bare torchattacks loop
CV_GOAL = 0.05  # coefficient of variation of repeated batch-1 latency measurements


@pytest.fixture(scope="module")
def student(protocol):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = build_model(protocol.student_arch, protocol).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    yield model
    torch.set_num_threads(threads)


def _bare(model, x, y, e):
    atk = torchattacks.PGD(model, eps=e.eps, alpha=e.pgd_step_size, steps=e.pgd_steps,
                           random_start=True)
    correct = 0
    for i in range(0, len(x), e.eval_batch_size):
        xb, yb = x[i:i + e.eval_batch_size], y[i:i + e.eval_batch_size]
        x_adv = atk(xb, yb)
        with torch.no_grad():
            correct += (model(x_adv).argmax(1) == yb).sum().item()
    return correct


def _suite(model, x, y, protocol):
    ctx = EvalContext(protocol, x, y, "cpu", Reporter(quiet=True))
    e = protocol.eval
    return ctx.attack("pgd", model, torchattacks.PGD(
        model, eps=e.eps, alpha=e.pgd_step_size, steps=e.pgd_steps, random_start=True))


@pytest.mark.benchmark(group="pgd-eval")
@pytest.mark.parametrize("way", ["bare_torchattacks", "suite"])
def test_pgd_evaluation_overhead(benchmark, way, student, protocol, split):
    x, y = split.x_test, split.y_test
    fn = (lambda: _bare(student, x, y, protocol.eval)) if way == "bare_torchattacks" else \
        (lambda: _suite(student, x, y, protocol))
    benchmark.pedantic(fn, rounds=5, warmup_rounds=1)
    if not benchmark.enabled:
        return
    _pgd[way] = benchmark.stats.stats.median
    if len(_pgd) == 2:
        ratio = _pgd["suite"] / _pgd["bare_torchattacks"]
        benchmark.extra_info["suite_over_bare"] = round(ratio, 3)
        print(f"\nPGD-{protocol.eval.pgd_steps} on {len(x)} images: suite / bare torchattacks "
              f"= {ratio:.3f}")
        assert ratio <= OVERHEAD_GOAL, f"the suite's PGD costs {ratio:.2f}x a bare loop"


@pytest.mark.benchmark(group="latency")
def test_cpu_latency_repeatability(benchmark, student, protocol):
    e = protocol.eval

    def five():
        return [efficiency.latency(student, protocol.input_shape, (1,), "cpu", e.cpu_threads,
                                   e.latency_min_run_time)[0]["median_ms"] for _ in range(5)]
    values = benchmark.pedantic(five, rounds=1, iterations=1)
    cv = efficiency.cv(values)
    benchmark.extra_info.update(cv=round(cv, 4), medians_ms=[round(v, 4) for v in values])
    if benchmark.enabled:
        print(f"\nbatch-1 CPU latency, 5 measurements: {[round(v, 4) for v in values]} ms, "
              f"CV {100 * cv:.2f} %")
        assert cv <= CV_GOAL, f"latency varies by {100 * cv:.1f} % between measurements"
