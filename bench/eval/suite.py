"""The evaluation suite: pluggable evaluators run in order on every trained model.

Each evaluator returns a part of the record's `metrics` section. The attacks behind `robust_acc`
(FGSM, PGD, the protocol's stronger APGD attacks, and AutoAttack under --full) all run on one
set of examples, the whole test set (or the first `autoattack_n` when AutoAttack runs on fewer),
and each leaves a per-example correctness mask in the context; `robust_acc` is their per-example
worst case. The sanity checks, the eps curve and the corruptions are measured beside it and
never enter it.

Modules: `context` (what evaluators see), `attacks` (clean, white-box and strong attacks,
AutoAttack), `curve` (accuracy vs eps), `sanity` (gradient-masking checks), `corruptions`,
`efficiency` (size and speed).
"""

from __future__ import annotations

import torch
from torch import nn

from bench import faults
from bench.eval import efficiency, evidence
from bench.eval.attacks import AutoAttack, CleanAccuracy, StrongAttacks, WhiteBoxAttacks
from bench.eval.context import CorruptedImages, EvalContext, Evaluator, TransferExamples, pct
from bench.eval.corruptions import Corruptions
from bench.eval.curve import EpsCurve
from bench.eval.sanity import SanityChecks
from bench.progress import Reporter
from bench.protocols import Protocol

__all__ = ["EvalContext", "evaluate", "default_evaluators", "measure_efficiency", "pct"]


def measure_efficiency(model: nn.Module, protocol: Protocol) -> dict:
    """The `efficiency` section. It depends on the architecture only, so a run measures it once
    per architecture, with no job running beside it, and every record of that architecture
    carries the same numbers (bench/run/jobs.py)."""
    e = protocol.eval
    return efficiency.measure(model, protocol.input_shape, e.latency_batch_sizes, e.cpu_threads,
                              e.latency_min_run_time)


def default_evaluators() -> tuple[Evaluator, ...]:
    return (CleanAccuracy(), WhiteBoxAttacks(), StrongAttacks(), AutoAttack(), EpsCurve(),
            SanityChecks(), Corruptions())


def evaluate(model: nn.Module, protocol: Protocol, x: torch.Tensor, y: torch.Tensor,
             device: str, reporter: Reporter, *, full: bool = False,
             transfer: TransferExamples | None = None, corrupted: CorruptedImages | None = None,
             evaluators: tuple[Evaluator, ...] | None = None, fault_key: str = "") -> dict:
    """Run every evaluator on `model` (final weights, eval mode); returns the metrics section."""
    model.eval()
    requires_grad = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():  # attacks need input gradients only
        p.requires_grad_(False)
    ctx = EvalContext(protocol, x.to(device), y.to(device), device, reporter, full, transfer,
                      corrupted)
    metrics: dict = {}
    try:
        for ev in evaluators or default_evaluators():
            faults.reached(f"eval:{fault_key}:{ev.name}")
            metrics.update(ev(model, ctx))
    finally:
        for p, r in zip(model.parameters(), requires_grad):
            p.requires_grad_(r)
    if "attacks" not in metrics:  # a partial suite (verify, tests): no robust set to report
        return metrics
    robust = ctx.robust()
    metrics["robust_acc"] = pct(robust)
    metrics["attacks"]["robust_set"] = {"attacks": list(ctx.masks), "examples": ctx.n}
    packed = evidence.collect(ctx.masks, robust, ctx.corruption_masks)
    if packed is not None:
        metrics["evidence"] = packed
    return metrics
