"""Throughput of the MNIST-C corruptions: images/s on mnist5k's 1000 test digits, one thread.

Run with `make perf`. Each corruption takes the whole test set as one (1000, 1, 28, 28) float32
batch, as the evaluation does. Times are the process's CPU time (one thread, so the same as its
wall time on an idle machine, and far steadier on a shared one), the fastest of several rounds.
The goal: every corruption at least 1,000 images/s, so that the 15 corrupted test sets of a run
cost about a second to generate.
"""

from __future__ import annotations

import time

import pytest
import torch

from attacks.corruptions import mnist_c

GOAL = 1000  # images/s
_speeds: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread(request):
    """Run on one core, and print the table once every corruption has been timed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if _speeds:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(table())


def table() -> str:
    rows = ["\nMNIST-C throughput, 1000 digits 28x28, one thread:",
            f"{'corruption':15s} {'images/s':>9s} {'us/image':>9s}"]
    for name, ips in _speeds.items():
        flag = "" if ips >= GOAL else f"  (< {GOAL})"
        rows.append(f"{name:15s} {ips:9.0f} {1e6 / ips:9.1f}{flag}")
    total = sum(1 / ips for ips in _speeds.values())
    rows.append(f"{'all of them':15s} {1 / total:9.0f} {1e6 * total:9.1f}")
    return "\n".join(rows)


@pytest.fixture(scope="module")
def digits(split) -> torch.Tensor:
    return split.x_test[:1000]


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("name", list(mnist_c.CORRUPTIONS))
def test_mnist_c_speed(benchmark, name, digits):
    benchmark.group = f"mnist-c-{name}"
    fn, gen = mnist_c.CORRUPTIONS[name], torch.Generator()
    if not benchmark.enabled:  # `make test` runs benchmarks once, untimed: check it runs
        benchmark(lambda: fn(digits[:8], 1, gen.manual_seed(0)))
        return
    benchmark.pedantic(lambda: fn(digits, 1, gen.manual_seed(0)), rounds=5, warmup_rounds=1)
    ips = len(digits) / benchmark.stats.stats.min
    _speeds[name] = ips
    benchmark.extra_info.update(images_per_s=round(ips))
