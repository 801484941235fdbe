"""The attacks behind `robust_acc`, all on the same examples (bench/eval/suite.py).

- clean accuracy;
- FGSM and PGD (torchattacks) at the protocol's eps on every example: `fgsm_acc`, `pgd_acc`;
- the protocol's stronger attacks (PGD restarted from new random starts, the reference APGD of
  pyautoattack), each run, as AutoAttack runs its attacks, on the examples every attack before
  it left robust: they can only lower `robust_acc`, and cost little on a model most examples of
  which are already fooled;
- under --full, the reference AutoAttack (standard version) on the first `autoattack_n`
  examples: `autoattack_acc`, and `robust_acc` then covers those examples. Its own warnings
  (pyautoattack's checks.py) are kept for the sanity checks.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from attacks.adversarial import make_attack, predict
from attacks.autoattack import autoattack_mask
from bench.eval.context import EvalContext, pct
from bench.protocols import StrongAttack


class CleanAccuracy:
    name = "clean"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        ok = predict(model, ctx.x, ctx.batch_size) == ctx.y
        ctx.add_mask("clean", ok)
        return {"clean_acc": pct(ok)}


class WhiteBoxAttacks:
    """FGSM and PGD (torchattacks) at the protocol's L-inf eps, on every example."""

    name = "attacks"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        fgsm = ctx.attack("fgsm", model, make_attack("fgsm", model, e.eps))
        ctx.add_mask("fgsm", fgsm)
        pgd = ctx.attack("pgd", model, make_attack("pgd", model, e.eps, e.pgd_steps,
                                                   e.pgd_step_size, e.pgd_random_start),
                         restarts=e.pgd_restarts, keep=True)
        ctx.add_mask("pgd", pgd)
        return {
            "fgsm_acc": pct(fgsm), "pgd_acc": pct(pgd),
            "attacks": {
                "norm": "Linf", "eps": e.eps_label,
                "fgsm": {"library": "torchattacks", "steps": 1, "step_size": e.eps},
                "pgd": {"library": "torchattacks", "steps": e.pgd_steps,
                        "step_size": e.pgd_step_size, "random_start": e.pgd_random_start,
                        "restarts": e.pgd_restarts},
                "strong": [{"library": "torchattacks" if a.kind == "pgd" else "pyautoattack",
                            "attack": a.label, "kind": a.kind, "iters": a.iters,
                            "restarts": a.restarts, "targets": a.targets,
                            "step_size": (a.step_size or e.pgd_step_size) if a.kind == "pgd"
                            else None, "until_dry": a.until_dry}
                           for a in e.strong_attacks],
                "autoattack": ({"library": "pyautoattack", "version": "standard", "seed": e.seed,
                                "examples": min(e.autoattack_n, len(ctx.x))}
                               if ctx.full else None),
            },
        }


# pyautoattack's APGD warns about zero gradients through a logger; outside AutoAttack (whose
# checks the sanity checks carry) those warnings go nowhere instead of to stderr per batch.
_QUIET = logging.getLogger("kdbench.apgd")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _apgd(model: nn.Module, spec: StrongAttack, eps: float, seed: int, device: str):
    """The reference APGD attack for `spec` (pyautoattack's own classes and seeding)."""
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    if spec.kind == "apgd-t":
        return APGDAttack_targeted(model, n_iter=spec.iters, n_restarts=1, eps=eps, norm="Linf",
                                   seed=seed, n_target_classes=spec.targets, device=device,
                                   logger=_QUIET)
    return APGDAttack(model, n_iter=spec.iters, n_restarts=spec.restarts, eps=eps, norm="Linf",
                      seed=seed, loss=spec.kind.removeprefix("apgd-"), device=device,
                      logger=_QUIET)


def strong_mask(model: nn.Module, spec: StrongAttack, ctx: EvalContext,
                only: torch.Tensor) -> torch.Tensor:
    """Correctness under `spec` on the first len(only) examples; the attack runs where `only`
    is True (elsewhere True: the caller already knows those examples)."""
    e = ctx.protocol.eval
    if spec.kind != "pgd":
        attack = _apgd(model, spec, e.eps, e.seed, ctx.device)
        return ctx.attack(spec.label, model, lambda x, y: attack.perturb(x, y), n=len(only),
                          only=only)
    step = spec.step_size or e.pgd_step_size
    ok, left = torch.ones_like(only), only.clone()
    for r in range(spec.restarts):
        attack = make_attack("pgd", model, e.eps, spec.iters, step, random_start=True)
        # each restart from its own random start, the same for every model
        got = ctx.attack(f"{spec.label} #{r + 1}", model, attack, n=len(only), only=left,
                         seed=e.seed + 1 + r)
        fooled = left & ~got
        ok &= got
        left &= got
        if 100.0 * float(fooled.sum()) / len(only) < spec.until_dry or not left.any():
            break
    return ok


class StrongAttacks:
    """The protocol's stronger attacks, each on the examples still robust before it."""

    name = "strong_attacks"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        for spec in ctx.protocol.eval.strong_attacks:
            ctx.add_mask(spec.label, strong_mask(model, spec, ctx, ctx.robust()))
        return {}


class _Flags(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class AutoAttack:
    """The reference AutoAttack (standard version); only under `kdbench run --full`."""

    name = "autoattack"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        if not ctx.full:
            return {}
        e = ctx.protocol.eval
        n = min(e.autoattack_n, len(ctx.x))
        ctx.reporter.log(f"  AutoAttack (standard, reference implementation) on {n} examples...")
        flags, logger = _Flags(), logging.getLogger("auto-attack")
        logger.addHandler(flags)
        try:
            ok = autoattack_mask(model, ctx.x[:n], ctx.y[:n], e.eps, ctx.batch_size, e.seed)
        finally:
            logger.removeHandler(flags)
        ctx.robust_n = n  # robust_acc covers the examples every attack ran on
        ctx.add_mask("autoattack", ok)
        ctx.outputs["autoattack_warnings"] = flags.messages
        return {"autoattack_acc": pct(ok)}
