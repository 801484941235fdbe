"""Size and speed of a model: parameters, serialized bytes, FLOPs, CPU and GPU latency.

`median_ms` comes from torch.utils.benchmark (warm-up, then blocks of calls repeated until the
spread is small, with a fixed thread count). Its samples average blocks of calls, so the per-call
percentiles `p50_ms`/`p90_ms` come from timing calls one by one: wall clock on CPU, CUDA events
on GPU (synchronised). A device that is not present is reported as absent with the reason, never
as a zero.
"""

from __future__ import annotations

import copy
import io
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from bench.models.registry import count_params
from bench.provenance import cpu_name


def serialized_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def flops_per_example(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on one example (2 per multiply-add; conv and matmul only)."""
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    return int(counter.get_total_flops())


def _time(model: Callable[[Any], Any], x: Any, threads: int, min_run_time: float
          ) -> benchmark.Measurement:
    timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x},
                            num_threads=threads)
    timer.timeit(3)  # warm-up: first calls allocate and pick kernels
    return timer.adaptive_autorange(threshold=0.05, min_run_time=min_run_time,
                                    max_run_time=max(10 * min_run_time, 1.0))


def per_call_ms(model: Callable[[Any], Any], x: Any, calls: int,
                cuda: bool | None = None) -> list[float]:
    """Each call timed alone: CUDA events on GPU (`cuda`, default: `x` is a CUDA tensor), the
    wall clock otherwise."""
    times = []
    if x.is_cuda if cuda is None else cuda:
        for _ in range(calls):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            model(x)
            times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _summary(m: benchmark.Measurement, calls: list[float], batch: int) -> dict:
    return {"batch": batch, "median_ms": m.median * 1e3,
            "p50_ms": percentile(calls, 50), "p90_ms": percentile(calls, 90),
            "throughput_ips": batch / m.median, "samples": len(m.times),
            "iqr_over_median": m.iqr / m.median if m.median else 0.0}


def time_batches(fn: Callable[[Any], Any], make_input: Callable[[int], Any],
                 batch_sizes: tuple[int, ...], threads: int, min_run_time: float,
                 cuda: bool = False) -> list[dict]:
    """Latency of `fn` at each batch size, by the rules of every latency in the records: a
    torch.utils.benchmark median over blocks of calls, then calls timed one by one for the
    percentiles. `fn` may be any callable (an ONNX Runtime session's wrapper too); its own thread
    count is the caller's to fix, torch's is set to `threads` here."""
    out = []
    previous_threads = torch.get_num_threads()
    for b in batch_sizes:
        x = make_input(b)
        m = _time(fn, x, threads, min_run_time)
        torch.set_num_threads(threads)  # the per-call timings use the same thread count
        try:
            calls = per_call_ms(fn, x, max(20, min(1000, int(min_run_time / m.median))), cuda)
        finally:
            torch.set_num_threads(previous_threads)
        out.append(_summary(m, calls, b))
    return out


@torch.no_grad()
def latency(model: nn.Module, input_shape: tuple[int, ...], batch_sizes: tuple[int, ...],
            device: str, threads: int, min_run_time: float) -> list[dict]:
    model = copy.deepcopy(model).to(device).eval()
    return time_batches(model, lambda b: torch.rand(b, *input_shape, device=device),
                        batch_sizes, threads, min_run_time, cuda=device.startswith("cuda"))


def measure(model: nn.Module, input_shape: tuple[int, ...], batch_sizes: tuple[int, ...],
            cpu_threads: int, min_run_time: float) -> dict:
    """The `efficiency` section of a result record."""
    cpu_model = copy.deepcopy(model).cpu().eval()
    result = {
        "params": count_params(cpu_model),
        "size_bytes": serialized_bytes(cpu_model),
        "flops": flops_per_example(cpu_model, input_shape),
        "cpu": {"device_name": cpu_name(), "threads": cpu_threads,
                "timings": latency(cpu_model, input_shape, batch_sizes, "cpu", cpu_threads,
                                   min_run_time)},
        "gpu": None,
        "gpu_absent_reason": None,
    }
    if torch.cuda.is_available():
        # benchmark.Timer synchronises CUDA around each measured block.
        result["gpu"] = {"device_name": torch.cuda.get_device_name(),
                         "threads": cpu_threads,
                         "timings": latency(cpu_model, input_shape, batch_sizes, "cuda",
                                            cpu_threads, min_run_time)}
    else:
        result["gpu_absent_reason"] = "CUDA is not available on the machine that ran the evaluation"
    return result


def cv(values: list[float]) -> float:
    """Coefficient of variation, for repeatability reports."""
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0
