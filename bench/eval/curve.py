"""Accuracy against the attack's radius, on the first `curve_n` (class-balanced) test examples.

Each radius is attacked on its own (PGD, `curve_steps` steps of eps/4, random start), so that the
sanity check "accuracy decreases as eps grows" can fail. The normalised area under the curve
summarises it (leaderboard and statistics).
"""

from __future__ import annotations

import torch
from torch import nn

from attacks.adversarial import make_attack, robust_mask
from bench.eval.context import EvalContext, pct
from bench.protocols import parse_eps


def pgd_eps4(model: nn.Module, eps: float, steps: int, random_start: bool = True):
    """PGD whose step size is eps/4, so the radius is reachable in any number of steps >= 4."""
    return make_attack("pgd", model, eps, steps, eps / 4, random_start)


class EpsCurve:
    name = "eps_curve"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        if not e.eps_curve:
            return {}
        n = min(e.curve_n, len(ctx.x))
        points = []
        with ctx.reporter.task("eps curve", total=len(e.eps_curve)) as bar:
            for label in e.eps_curve:
                torch.manual_seed(e.seed)
                ok = robust_mask(model, pgd_eps4(model, parse_eps(label), e.curve_steps),
                                 ctx.x[:n], ctx.y[:n], ctx.batch_size)
                points.append({"eps": label, "acc": pct(ok)})
                ctx.outputs.setdefault("curve_masks", {})[label] = ok
                bar.advance()
        return {"eps_curve": points}
