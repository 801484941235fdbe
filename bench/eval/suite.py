"""The evaluation suite: a list of pluggable evaluators run on every trained model.

Each evaluator returns a part of the record's `metrics` section. Attacks at the protocol's eps
leave a per-example correctness mask in the context (True where the attack was not run on that
example); `robust_acc` is the per-example worst case over the clean input and every such mask:
an example counts as robust only if no attack run on it fooled the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

import torch
import torchattacks
from torch import nn

from attacks import corruptions as corr
from attacks import sanity
from attacks.adversarial import make_attack, predict, robust_mask
from attacks.autoattack import autoattack_mask
from bench import faults
from bench.data.cifar10c import Cifar10C
from bench.eval import efficiency
from bench.progress import Reporter
from bench.protocols import Protocol, parse_eps


def pct(mask: torch.Tensor) -> float:
    """Accuracy in percent, rounded so that JSON diffs show no float noise."""
    return round(100.0 * float(mask.sum()) / mask.numel(), 4)


class TransferSource:
    """Adversarial examples crafted once per run on a surrogate model (the protocol's teacher),
    for the black-box transfer check of every other model."""

    def __init__(self, model: nn.Module, name: str):
        self.model, self.name = model, name
        self._cache: dict[tuple, torch.Tensor] = {}

    def examples(self, x: torch.Tensor, y: torch.Tensor, protocol: Protocol) -> torch.Tensor:
        e = protocol.eval
        key = (protocol.hash, len(x))  # the same test examples for every model of a run
        if key not in self._cache:
            torch.manual_seed(e.seed)
            attack = make_attack("pgd", self.model.eval(), e.eps, e.pgd_steps, e.pgd_step_size,
                                 e.pgd_random_start)
            self._cache[key] = torch.cat([attack(x[i:i + e.eval_batch_size],
                                                 y[i:i + e.eval_batch_size])
                                          for i in range(0, len(x), e.eval_batch_size)])
        return self._cache[key]


class CorruptedTestSet:
    """The corrupted test images, generated once per run (per process) and shared by every
    model: each model sees exactly the same images, and generation is paid once. Corruptions
    that `files` holds (CIFAR-10-C, bench/data/cifar10c.py) are read from them instead."""

    def __init__(self, x: torch.Tensor, seed: int, files: Cifar10C | None = None):
        self.x, self.seed, self.files = x, seed, files
        self._cache: dict[tuple[str, int], torch.Tensor] = {}

    def get(self, name: str, severity: int) -> torch.Tensor:
        if (name, severity) not in self._cache:
            if self.files is not None and name in self.files:
                xc = self.files.read(name, severity)[:len(self.x)].to(self.x.device)
            else:
                xc = corr.apply(name, self.x, severity, self.seed)
            self._cache[(name, severity)] = xc
        return self._cache[(name, severity)]


@dataclass
class EvalContext:
    protocol: Protocol
    x: torch.Tensor  # the protocol's test inputs, on the evaluation device
    y: torch.Tensor
    device: str
    reporter: Reporter
    full: bool = False  # also run AutoAttack
    transfer: TransferSource | None = None  # None when the model is the transfer source itself
    corrupted: CorruptedTestSet | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # attacks at the protocol eps
    # Kept for the deployed model's evaluation (bench/eval/deployment.py): the adversarial
    # examples of the attacks asked to keep them (on the CPU), and the per-example correctness
    # on each (corruption, severity).
    adversarial: dict[str, torch.Tensor] = field(default_factory=dict)
    corruption_masks: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.protocol.eval.eval_batch_size

    def attack(self, name: str, model: nn.Module, attack, n: int | None = None,
               restarts: int = 1, keep: bool = False) -> float:
        """Run `attack` on the first `n` examples, keep its mask (and with `keep` its adversarial
        examples), return its accuracy there."""
        n = len(self.x) if n is None else min(n, len(self.x))
        torch.manual_seed(self.protocol.eval.seed)  # the same random starts for every model
        kept = torch.empty_like(self.x[:n], device="cpu") if keep else None
        with self.reporter.task(name, total=restarts * -(-n // self.batch_size)) as bar:
            ok = robust_mask(model, attack, self.x[:n], self.y[:n], self.batch_size, restarts,
                             on_batch=bar.advance, keep=kept)
        if kept is not None:
            self.adversarial[name] = kept
        self.add_mask(name, ok)
        return pct(ok)

    def add_mask(self, name: str, ok: torch.Tensor) -> None:
        full = torch.ones(len(self.x), dtype=torch.bool, device=ok.device)
        full[:len(ok)] = ok
        self.masks[name] = full

    def worst_case(self, n: int | None = None) -> float:
        n = len(self.x) if n is None else n
        return pct(torch.stack(list(self.masks.values()))[:, :n].all(0))


class Evaluator(TypingProtocol):
    name: str

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict: ...


class CleanAccuracy:
    name = "clean"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        ok = predict(model, ctx.x, ctx.batch_size) == ctx.y
        ctx.add_mask("clean", ok)
        return {"clean_acc": pct(ok)}


class WhiteBoxAttacks:
    """FGSM and PGD (torchattacks) at the protocol's L-inf eps."""

    name = "attacks"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        fgsm = ctx.attack("fgsm", model, make_attack("fgsm", model, e.eps))
        pgd = ctx.attack("pgd", model, make_attack("pgd", model, e.eps, e.pgd_steps,
                                                   e.pgd_step_size, e.pgd_random_start),
                         restarts=e.pgd_restarts, keep=True)
        return {
            "fgsm_acc": fgsm, "pgd_acc": pgd,
            "attacks": {
                "norm": "Linf", "eps": e.eps_label,
                "fgsm": {"library": "torchattacks", "steps": 1, "step_size": e.eps},
                "pgd": {"library": "torchattacks", "steps": e.pgd_steps,
                        "step_size": e.pgd_step_size, "random_start": e.pgd_random_start,
                        "restarts": e.pgd_restarts},
                "autoattack": ({"library": "pyautoattack", "version": "standard",
                                "seed": e.seed} if ctx.full else None),
            },
        }


class AutoAttack:
    """The reference AutoAttack (standard version); only under `kdbench run --full`."""

    name = "autoattack"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        if not ctx.full:
            return {}
        e = ctx.protocol.eval
        ctx.reporter.log("  AutoAttack (standard, reference implementation)...")
        ok = autoattack_mask(model, ctx.x, ctx.y, e.eps, ctx.batch_size, e.seed)
        ctx.add_mask("autoattack", ok)
        return {"autoattack_acc": pct(ok)}


def _pgd(model: nn.Module, eps: float, steps: int, random_start: bool = True):
    """PGD whose step size is eps/4, so the radius is reachable in any number of steps >= 4."""
    return make_attack("pgd", model, eps, steps, eps / 4, random_start)


class EpsCurve:
    """PGD accuracy at several radii, on the first `curve_n` test examples."""

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
                ok = robust_mask(model, _pgd(model, parse_eps(label), e.curve_steps),
                                 ctx.x[:n], ctx.y[:n], ctx.batch_size)
                points.append({"eps": label, "acc": pct(ok)})
                bar.advance()
        return {"eps_curve": points}


class SanityChecks:
    """Gradient-masking checks (attacks/sanity.py); any failure makes the record unreliable."""

    name = "sanity"

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e, tol = ctx.protocol.eval, ctx.protocol.eval.sanity_tolerance
        n = min(e.sanity_n, len(ctx.x))
        masks = dict(ctx.masks)
        checks = [sanity.pgd_not_weaker_than_fgsm(pct(masks["pgd"]), pct(masks["fgsm"]), tol)]
        base = pct(masks["pgd"][:n])
        double = ctx.attack("pgd_double_steps", model,
                            make_attack("pgd", model, e.eps, 2 * e.pgd_steps, e.pgd_step_size,
                                        e.pgd_random_start), n)
        checks.append(sanity.more_steps_do_not_help(double, base, e.pgd_steps, tol))
        whitebox = pct(torch.stack([masks[k][:n] for k in ("clean", "fgsm", "pgd")]).all(0))
        if ctx.transfer is not None:
            x_t = ctx.transfer.examples(ctx.x[:n], ctx.y[:n], ctx.protocol)
            ok = predict(model, x_t, ctx.batch_size) == ctx.y[:n]
            ctx.add_mask("transfer", ok)
            checks.append(sanity.blackbox_not_stronger(
                "transfer", f"PGD transferred from the {ctx.transfer.name}", pct(ok), whitebox, tol))
        m = min(e.square_n, n)
        square = torchattacks.Square(model, norm="Linf", eps=e.eps, n_queries=e.square_queries,
                                     seed=e.seed)
        whitebox_m = pct(torch.stack([masks[k][:m] for k in ("clean", "fgsm", "pgd")]).all(0))
        checks.append(sanity.blackbox_not_stronger(
            "square", f"Square ({e.square_queries} queries)", ctx.attack("square", model, square, m),
            whitebox_m, tol))
        large = parse_eps(e.sanity_large_eps)
        torch.manual_seed(e.seed)
        # No random start: at a large radius random noise alone can fool the model and would hide
        # masked gradients; the check is whether the gradient steps get there.
        ok = robust_mask(model, _pgd(model, large, e.pgd_steps, random_start=False),
                         ctx.x[:n], ctx.y[:n], ctx.batch_size)  # other eps: not in robust_acc
        checks.append(sanity.large_eps_reaches_chance(pct(ok), e.sanity_large_eps,
                                                      ctx.protocol.num_classes, tol))
        unreliable, reasons = sanity.verdict(checks)
        return {"sanity_checks": [c.as_dict() for c in checks], "unreliable": unreliable,
                "unreliable_reasons": reasons}


class Corruptions:
    """Accuracy per corruption and severity; `corruptions_acc` is the mean over all of them."""

    name = "corruptions"

    @torch.no_grad()
    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        table: dict[str, list[float]] = {}
        if ctx.corrupted is None:
            ctx.corrupted = CorruptedTestSet(ctx.x, e.seed)
        corrupted = ctx.corrupted
        with ctx.reporter.task("corruptions", total=len(e.corruptions) * len(e.severities)) as bar:
            for name in e.corruptions:
                table[name] = []
                for s in e.severities:
                    xc = corrupted.get(name, s)
                    ok = predict(model, xc, ctx.batch_size) == ctx.y
                    ctx.corruption_masks[(name, s)] = ok
                    table[name].append(pct(ok))
                    bar.advance()
        values = [a for accs in table.values() for a in accs]
        return {"corruptions": table, "corruptions_acc": round(sum(values) / len(values), 4)}


def measure_efficiency(model: nn.Module, protocol: Protocol) -> dict:
    """The `efficiency` section. It depends on the architecture only, so a run measures it once
    per architecture, with no job running beside it, and every record of that architecture
    carries the same numbers (bench/run/jobs.py)."""
    e = protocol.eval
    return efficiency.measure(model, protocol.input_shape, e.latency_batch_sizes, e.cpu_threads,
                              e.latency_min_run_time)


DEFAULT_EVALUATORS: tuple[Evaluator, ...] = (
    CleanAccuracy(), WhiteBoxAttacks(), AutoAttack(), EpsCurve(), SanityChecks(), Corruptions())


def evaluate(model: nn.Module, protocol: Protocol, x: torch.Tensor, y: torch.Tensor,
             device: str, reporter: Reporter, *, full: bool = False,
             transfer: TransferSource | None = None, corrupted: CorruptedTestSet | None = None,
             evaluators: tuple[Evaluator, ...] = DEFAULT_EVALUATORS, fault_key: str = "") -> dict:
    """Run every evaluator on `model` (final weights, eval mode); returns the metrics section."""
    model.eval()
    requires_grad = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():  # attacks need input gradients only
        p.requires_grad_(False)
    ctx = EvalContext(protocol, x.to(device), y.to(device), device, reporter, full, transfer,
                      corrupted)
    metrics: dict = {}
    try:
        for ev in evaluators:
            faults.reached(f"eval:{fault_key}:{ev.name}")
            metrics.update(ev(model, ctx))
    finally:
        for p, r in zip(model.parameters(), requires_grad):
            p.requires_grad_(r)
    metrics["robust_acc"] = ctx.worst_case()
    return metrics
