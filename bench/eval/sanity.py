"""The gradient-masking sanity checks as an evaluator (the checks themselves: attacks/sanity.py).

Every check compares attacks on the same examples (the first `sanity_n`, class-balanced), and
asks what a second attack adds to what the evaluated attacks (those behind `robust_acc`) found:
doubling their iterations, transferring PGD examples from the teacher, or the black-box Square
attack must fool (almost) none of the examples they left robust. None of these attacks enters
`robust_acc`: a failed check flags the record `unreliable` instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchattacks
from torch import nn

from attacks import sanity
from attacks.adversarial import make_attack, predict
from bench.checkpoints import load_tensors, save_tensors
from bench.eval.attacks import strong_mask
from bench.eval.curve import pgd_eps4
from bench.eval.context import EvalContext, pct
from bench.protocols import Protocol, parse_eps


class TransferSource:
    """Adversarial examples crafted once on a surrogate model (the protocol's teacher), for the
    black-box transfer check of every other model. With `cache`, a file the first process of a
    run writes and the others read."""

    def __init__(self, model: nn.Module, name: str, cache: Path | None = None):
        self.model, self.name, self.cache = model, name, cache
        self._cache: dict[tuple, torch.Tensor] = {}

    def examples(self, x: torch.Tensor, y: torch.Tensor, protocol: Protocol) -> torch.Tensor:
        e = protocol.eval
        key = (protocol.hash, len(x))  # the same test examples for every model of a run
        if key not in self._cache:
            path = None if self.cache is None else self.cache.with_name(
                f"{self.cache.stem}-{protocol.hash}-{len(x)}.pt")
            if path is not None and path.exists():
                self._cache[key] = load_tensors(path, str(x.device))["x_adv"]
            else:
                torch.manual_seed(e.seed)
                attack = make_attack("pgd", self.model.eval(), e.eps, e.pgd_steps,
                                     e.pgd_step_size, e.pgd_random_start)
                self._cache[key] = torch.cat([attack(x[i:i + e.eval_batch_size],
                                                     y[i:i + e.eval_batch_size])
                                              for i in range(0, len(x), e.eval_batch_size)])
                if path is not None:
                    save_tensors(path, {"x_adv": self._cache[key].cpu()})
        return self._cache[key]


def _extra(before: torch.Tensor, after: torch.Tensor) -> float:
    """Percentage points of the examples that were robust `before` and are not `after`."""
    return round(pct(before) - pct(before & after), 4)


class SanityChecks:
    """Gradient-masking checks; any failure makes the record unreliable."""

    name = "sanity"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e, tol = ctx.protocol.eval, ctx.protocol.eval.sanity_tolerance
        n = min(e.sanity_n, ctx.n)
        checks = [sanity.pgd_not_weaker_than_fgsm(pct(ctx.masks["pgd"]), pct(ctx.masks["fgsm"]),
                                                  tol),
                  self._convergence(model, ctx)]
        curve = ctx.outputs.get("curve_masks", {})
        if curve:
            checks.append(sanity.eps_curve_is_monotone(
                [(label, pct(ok)) for label, ok in curve.items()], tol))
        whitebox = ctx.robust(n)
        if ctx.transfer is not None:
            x_t = ctx.transfer.examples(ctx.x[:n], ctx.y[:n], ctx.protocol)
            ok = predict(model, x_t, ctx.batch_size) == ctx.y[:n]
            checks.append(sanity.blackbox_not_stronger(
                "transfer", f"PGD transferred from the {ctx.transfer.name}", _extra(whitebox, ok),
                pct(whitebox), tol))
        m = min(e.square_n, n)
        square = torchattacks.Square(model, norm="Linf", eps=e.eps, n_queries=e.square_queries,
                                     seed=e.seed)
        ok = ctx.attack("square", model, square, n=m, only=whitebox[:m])
        checks.append(sanity.blackbox_not_stronger(
            "square", f"Square ({e.square_queries} queries)", _extra(whitebox[:m], ok),
            pct(whitebox[:m]), tol))
        checks.append(self._large_eps(model, ctx, n, curve))
        if "autoattack_warnings" in ctx.outputs:
            checks += sanity.from_autoattack(ctx.outputs["autoattack_warnings"])
        unreliable, reasons = sanity.verdict(checks)
        return {"sanity_checks": [c.as_dict() for c in checks], "unreliable": unreliable,
                "unreliable_reasons": reasons}

    @staticmethod
    def _convergence(model: nn.Module, ctx: EvalContext) -> sanity.Check:
        """Carlini et al. 2019: twice the iterations must not find more adversarial examples.
        PGD and each stronger attack at twice their iterations, on the examples the evaluated
        attacks left robust."""
        e, tol = ctx.protocol.eval, ctx.protocol.eval.sanity_tolerance
        c = min(e.convergence_n, ctx.n)
        robust = ctx.robust(c)
        pgd2 = make_attack("pgd", model, e.eps, 2 * e.pgd_steps, e.pgd_step_size,
                           e.pgd_random_start)
        ok = robust & ctx.attack("pgd 2x steps", model, pgd2, n=c, only=robust)
        names = [f"PGD-{2 * e.pgd_steps}"]
        for spec in e.strong_attacks:
            ok = ok & strong_mask(model, spec.doubled(), ctx, ok)
            names.append(spec.doubled().label)
        return sanity.more_steps_do_not_help(_extra(robust, ok), " then ".join(names),
                                             pct(robust), tol)

    @staticmethod
    def _large_eps(model: nn.Module, ctx: EvalContext, n: int,
                   curve: dict[str, torch.Tensor]) -> sanity.Check:
        """PGD without random start at a large radius (at which random noise alone could fool
        the model and hide masked gradients; the check is whether gradient steps get there). An
        example fooled at the curve's largest radius is fooled here too (the same perturbation
        lies in the larger ball): only the others are attacked."""
        e = ctx.protocol.eval
        fooled = torch.zeros(n, dtype=torch.bool, device=ctx.x.device)
        if curve:
            last = curve[list(curve)[-1]][:n]
            fooled[:len(last)] = ~last
        attack = pgd_eps4(model, parse_eps(e.sanity_large_eps), e.pgd_steps, random_start=False)
        ok = ~fooled & ctx.attack("large eps", model, attack, n=n, only=~fooled)
        return sanity.large_eps_reaches_chance(pct(ok), e.sanity_large_eps,
                                               ctx.protocol.num_classes, e.sanity_tolerance)
