"""Common corruptions: accuracy per corruption and severity on the whole test set.

`corruptions_acc` is the mean over the benchmark's corruptions; held-out corruptions (CIFAR-10-C's
4 extras: Hendrycks & Dietterich keep them for validation) are averaged apart, in
`extra_corruptions_acc`, and never enter it or mCE.
"""

from __future__ import annotations

import torch
from torch import nn

from attacks import corruptions as corr
from attacks.adversarial import predict
from bench.data.cifar10c import Cifar10C
from bench.eval.context import EvalContext, pct
from bench.protocols import CIFAR10_C_EXTRAS


class CorruptedTestSet:
    """The corrupted test images, generated once per run (per process) and shared by every
    model: each model sees exactly the same images, and generation is paid once. `suite` names
    the corruption suite (the protocol's `eval.corruption_suite`). CIFAR-10-C corruptions that
    `files` holds (bench/data/cifar10c.py) are read from them instead."""

    def __init__(self, x: torch.Tensor, seed: int, files: Cifar10C | None = None,
                 suite: str = "cifar10-c"):
        if suite not in corr.SUITES:
            raise ValueError(f"unknown corruption suite {suite!r}; known: {', '.join(corr.SUITES)}")
        self.x, self.seed, self.files, self.suite = x, seed, files, suite
        self._cache: dict[tuple[str, int], torch.Tensor] = {}

    def get(self, name: str, severity: int) -> torch.Tensor:
        if (name, severity) not in self._cache:
            if self.suite == "cifar10-c" and self.files is not None and name in self.files:
                xc = self.files.read(name, severity)[:len(self.x)].to(self.x.device)
            else:
                xc = corr.apply(name, self.x, severity, self.seed, self.suite)
            self._cache[(name, severity)] = xc
        return self._cache[(name, severity)]


def _mean(table: dict[str, list[float]]) -> float | None:
    values = [a for accs in table.values() for a in accs]
    return round(sum(values) / len(values), 4) if values else None


class Corruptions:
    """Accuracy per corruption and severity; means over the benchmark and the held-out ones."""

    name = "corruptions"

    @torch.no_grad()
    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict:
        e = ctx.protocol.eval
        table: dict[str, list[float]] = {}
        if ctx.corrupted is None:  # kept: the deployed model is judged on the same images
            ctx.corrupted = CorruptedTestSet(ctx.x, e.seed, suite=e.corruption_suite)
        corrupted = ctx.corrupted
        if corrupted.suite != e.corruption_suite:  # same names, other corruptions: never mix
            raise ValueError(f"the corrupted test set holds {corrupted.suite} corruptions; the "
                             f"protocol evaluates {e.corruption_suite}")
        with ctx.reporter.task("corruptions", total=len(e.corruptions) * len(e.severities)) as bar:
            for name in e.corruptions:
                table[name] = []
                for s in e.severities:
                    ok = predict(model, corrupted.get(name, s), ctx.batch_size) == ctx.y
                    ctx.corruption_masks[(name, s)] = ok
                    table[name].append(pct(ok))
                    bar.advance()
        benchmark = {k: v for k, v in table.items() if k not in CIFAR10_C_EXTRAS}
        extras = {k: v for k, v in table.items() if k in CIFAR10_C_EXTRAS}
        return {"corruptions": table, "corruptions_acc": _mean(benchmark),
                "extra_corruptions_acc": _mean(extras)}
