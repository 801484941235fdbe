"""bench/perf.py (`make perf-gpu`) runs on CPU too, at toy sizes: every measurement is taken and
the estimate adds up. Its numbers here mean nothing; on a GPU they are the report."""

import pytest

from bench import perf
from bench.protocols import get_protocol


def test_perf_measures_every_part_and_estimates_the_total():
    names = ["baseline", "vanilla", "adversarial"]
    r = perf.measure("cifar10", "cpu", n_train=16, n_eval=8, smoke=True, method_names=names,
                     log=lambda m: None)
    assert set(r["ips"]) == {"train teacher (baseline)", "online teacher forward",
                             "PGD-5 teacher", "PGD-5 student",
                             *(f"train student ({n})" for n in names)}
    assert all(v > 0 for v in r["ips"].values())
    est = r["estimate"]
    parts = est["parts_s"]
    assert set(parts["student training"]) == set(names) and est["methods"] == names
    total = (parts["teacher training"] + sum(parts["student training"].values())
             + parts["corrupted test set"] + parts["transfer examples"]
             + parts["evaluation, teacher row"] + 3 * parts["evaluation, per student"]
             + parts["efficiency"])
    assert est["total_s"] == pytest.approx(total) and total > 0
    assert "estimated wall time of one seed (3 methods + teacher row)" in perf.render(r)


def test_evaluation_scales_with_the_examples_each_evaluator_uses():
    p = get_protocol("cifar10")  # n_test 10,000; curve_n and sanity_n 500
    assert perf.eval_scale(p, "corruptions", 2000) == 5
    assert perf.eval_scale(p, "eps_curve", 2000) == 1  # capped at curve_n either way
    assert perf.eval_scale(p, "sanity", 250) == 2


def test_perf_refuses_compile_and_cuda_on_cpu(capsys):
    assert perf.main(["--device", "cpu", "--compile"]) == 2
    assert "--compile is for CUDA" in capsys.readouterr().err
