"""Size and speed of a model: parameters, serialized bytes, FLOPs, CPU and GPU latency.

Timing uses torch.utils.benchmark (warm-up, adaptive repetition until the spread is small). A
device that is not present is reported as absent with the reason, never as a zero.
"""

from __future__ import annotations

import copy
import io
import platform
import statistics

import torch
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from bench.models import count_params


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


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(model: nn.Module, x: torch.Tensor, threads: int, min_run_time: float
          ) -> benchmark.Measurement:
    timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x},
                            num_threads=threads)
    timer.timeit(3)  # warm-up: first calls allocate and pick kernels
    return timer.adaptive_autorange(threshold=0.05, min_run_time=min_run_time,
                                    max_run_time=max(10 * min_run_time, 1.0))


def _summary(m: benchmark.Measurement, batch: int) -> dict:
    times = sorted(m.times)
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    return {"batch": batch, "median_ms": m.median * 1e3, "p90_ms": p90 * 1e3,
            "throughput_ips": batch / m.median, "samples": len(times),
            "iqr_over_median": m.iqr / m.median if m.median else 0.0}


@torch.no_grad()
def latency(model: nn.Module, input_shape: tuple[int, ...], batch_sizes: tuple[int, ...],
            device: str, threads: int, min_run_time: float) -> list[dict]:
    model = copy.deepcopy(model).to(device).eval()
    out = []
    for b in batch_sizes:
        x = torch.rand(b, *input_shape, device=device)
        out.append(_summary(_time(model, x, threads, min_run_time), b))
    return out


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
