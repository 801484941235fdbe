import pytest
import torch
from torch import nn

from bench.eval import efficiency
from bench.eval.suite import measure_efficiency
from bench.models import build_model
from bench.records import Efficiency


def test_flops_of_known_layers_match_their_closed_form():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # 2 FLOPs per multiply-add: 2 * C_in * k * k * C_out * H_out * W_out
    assert efficiency.flops_per_example(conv, (3, 16, 16)) == 2 * 3 * 3 * 3 * 8 * 16 * 16
    linear = nn.Linear(100, 10)
    assert efficiency.flops_per_example(linear, (100,)) == 2 * 100 * 10


def test_serialized_size_grows_with_parameters():
    small, big = nn.Linear(10, 10), nn.Linear(100, 100)
    assert 4 * 110 < efficiency.serialized_bytes(small) < efficiency.serialized_bytes(big)


def test_efficiency_section_is_positive_and_gpu_absence_has_a_reason(protocol):
    p = protocol.for_smoke()
    out = Efficiency.model_validate(measure_efficiency(build_model(p.student_arch, p), p))
    assert out.params == 6274 and out.size_bytes > 4 * 6274 and out.flops > 0
    assert [t.batch for t in out.cpu.timings] == list(p.eval.latency_batch_sizes)
    for t in out.cpu.timings:
        assert 0 < t.p50_ms <= t.p90_ms and t.median_ms > 0 and t.throughput_ips > 0
    assert out.cpu.threads == p.eval.cpu_threads
    if not torch.cuda.is_available():
        assert out.gpu is None and "CUDA is not available" in out.gpu_absent_reason


def test_latency_keeps_the_callers_thread_count(protocol):
    before = torch.get_num_threads()
    efficiency.latency(nn.Linear(4, 4), (4,), (1,), "cpu", threads=1, min_run_time=0.01)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("values, q, expected", [([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
                                                 ([5.0], 50, 5.0), ([3, 1, 2], 50, 2)])
def test_nearest_rank_percentile(values, q, expected):
    assert efficiency.percentile(values, q) == expected
