"""The evaluation suite: a list of pluggable evaluators run on every trained model.

Each evaluator returns a part of the record's `metrics` section and may leave per-example
correctness masks in the context; `robust_acc` is the per-example worst case over the clean input
and every attack mask (an example is robust only if no attack run fools the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

import torch
from torch import nn

from attacks import corruptions as corr
from attacks.adversarial import make_attack, predict, robust_mask
from bench import efficiency
from bench.progress import Reporter
from bench.protocols import Protocol


def pct(mask_or_count: torch.Tensor, total: int | None = None) -> float:
    """Accuracy in percent, rounded so that JSON diffs show no float noise."""
    if total is None:
        total = mask_or_count.numel()
        mask_or_count = mask_or_count.sum()
    return round(100.0 * float(mask_or_count) / total, 4)


@dataclass
class EvalContext:
    protocol: Protocol
    x: torch.Tensor  # the protocol's test inputs, on the evaluation device
    y: torch.Tensor
    device: str
    reporter: Reporter
    attack_masks: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.protocol.eval.eval_batch_size


class Evaluator(TypingProtocol):
    name: str

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict: ...


class CleanAccuracy:
    name = "clean"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        ok = predict(model, ctx.x, ctx.batch_size) == ctx.y
        ctx.attack_masks["clean"] = ok
        return {"clean_acc": pct(ok)}


class WhiteBoxAttacks:
    """FGSM and PGD (torchattacks) at the protocol's L-inf eps."""

    name = "attacks"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        runs = {
            "fgsm": (make_attack("fgsm", model, e.eps), 1),
            "pgd": (make_attack("pgd", model, e.eps, e.pgd_steps, e.pgd_step_size,
                                e.pgd_random_start), e.pgd_restarts),
        }
        n_batches = -(-len(ctx.x) // ctx.batch_size)
        out: dict = {}
        with ctx.reporter.task("attacks", total=sum(r for _, r in runs.values()) * n_batches) as bar:
            for name, (attack, restarts) in runs.items():
                torch.manual_seed(e.seed)  # the same random starts for every model
                ok = robust_mask(model, attack, ctx.x, ctx.y, ctx.batch_size, restarts,
                                 on_batch=bar.advance)
                ctx.attack_masks[name] = ok
                out[f"{name}_acc"] = pct(ok)
        out["attacks"] = {
            "norm": "Linf", "eps": e.eps_label,
            "fgsm": {"library": "torchattacks", "steps": 1, "step_size": e.eps},
            "pgd": {"library": "torchattacks", "steps": e.pgd_steps, "step_size": e.pgd_step_size,
                    "random_start": e.pgd_random_start, "restarts": e.pgd_restarts},
        }
        return out


class Corruptions:
    """Accuracy per corruption and severity; `corruptions_acc` is the mean over all of them."""

    name = "corruptions"

    @torch.no_grad()
    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        table: dict[str, list[float]] = {}
        with ctx.reporter.task("corruptions", total=len(e.corruptions) * len(e.severities)) as bar:
            for name in e.corruptions:
                table[name] = []
                for s in e.severities:
                    xc = corr.apply(name, ctx.x, s, e.seed)
                    table[name].append(pct(predict(model, xc, ctx.batch_size) == ctx.y))
                    bar.advance()
        values = [a for accs in table.values() for a in accs]
        return {"corruptions": table, "corruptions_acc": round(sum(values) / len(values), 4)}


class Efficiency:
    name = "efficiency"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        return {"efficiency": efficiency.measure(model, ctx.protocol.input_shape,
                                                 e.latency_batch_sizes, e.cpu_threads,
                                                 e.latency_min_run_time)}


DEFAULT_EVALUATORS: tuple[Evaluator, ...] = (CleanAccuracy(), WhiteBoxAttacks(), Corruptions(),
                                             Efficiency())


def evaluate(model: nn.Module, protocol: Protocol, x: torch.Tensor, y: torch.Tensor,
             device: str, reporter: Reporter,
             evaluators: tuple[Evaluator, ...] = DEFAULT_EVALUATORS) -> dict:
    """Run every evaluator on `model` (final weights, eval mode); returns the metrics section."""
    model.eval()
    ctx = EvalContext(protocol, x.to(device), y.to(device), device, reporter)
    metrics: dict = {}
    for ev in evaluators:
        metrics.update(ev(model, ctx))
    worst = torch.stack(list(ctx.attack_masks.values())).all(0)
    metrics["robust_acc"] = pct(worst)
    return metrics
