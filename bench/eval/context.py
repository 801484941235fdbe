"""What every evaluator sees: the test set, the device, and the attacks run so far.

The attacks behind `robust_acc` leave a per-example correctness mask here (`add_mask`); every one
covers the same examples, the first `n` of the test set (all of it unless AutoAttack runs on
fewer), and `robust()` is their per-example worst case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

import torch
from torch import nn

from attacks.adversarial import robust_mask
from bench.progress import Reporter
from bench.protocols import Protocol


class TransferExamples(TypingProtocol):
    """Adversarial examples crafted on a surrogate (bench/eval/sanity.py: TransferSource)."""

    name: str

    def examples(self, x: torch.Tensor, y: torch.Tensor, protocol: Protocol) -> torch.Tensor: ...


class CorruptedImages(TypingProtocol):
    """The corrupted test set (bench/eval/corruptions.py: CorruptedTestSet)."""

    suite: str

    def get(self, name: str, severity: int) -> torch.Tensor: ...


def pct(mask: torch.Tensor) -> float:
    """Accuracy in percent, rounded so that JSON diffs show no float noise."""
    return round(100.0 * float(mask.sum()) / mask.numel(), 4) if mask.numel() else 0.0


@dataclass
class EvalContext:
    protocol: Protocol
    x: torch.Tensor  # the protocol's test inputs (class-balanced order), on the evaluation device
    y: torch.Tensor
    device: str
    reporter: Reporter
    full: bool = False  # also run AutoAttack
    transfer: TransferExamples | None = None  # None when the model is the transfer source itself
    corrupted: CorruptedImages | None = None
    # Per-example correctness under each attack behind robust_acc (True: the model stayed
    # right), in the order they ran; each covers the first `robust_n` examples.
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    robust_n: int | None = None  # examples robust_acc covers (None: the whole test set)
    # (corruption, severity) -> per-example correctness; not part of the worst case
    corruption_masks: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # what evaluators leave for later ones
    # Adversarial examples of the attacks asked to keep them (on the CPU), for the deployed
    # model's evaluation (bench/eval/deployment.py: PGD transfer to the int8 model).
    adversarial: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.protocol.eval.eval_batch_size

    @property
    def n(self) -> int:
        return len(self.x) if self.robust_n is None else self.robust_n

    def attack(self, name: str, model: nn.Module, attack, n: int | None = None,
               restarts: int = 1, only: torch.Tensor | None = None,
               seed: int | None = None, keep: bool = False) -> torch.Tensor:
        """Per-example correctness under `attack` on the first `n` examples (default: all the
        robust set). With `only`, a mask over those examples, the attack runs on them alone and
        the others count as correct (the caller combines it with what fooled them before). With
        `keep` (and no `only`), its adversarial examples are kept in `adversarial[name]`."""
        n = self.n if n is None else min(n, len(self.x))
        idx = torch.arange(n, device=self.x.device) if only is None else only.nonzero().flatten()
        ok = torch.ones(n, dtype=torch.bool, device=self.x.device)
        # the same random starts for every model
        torch.manual_seed(self.protocol.eval.seed if seed is None else seed)
        kept = torch.empty_like(self.x[:n], device="cpu") if keep and only is None else None
        if len(idx):
            with self.reporter.task(name, total=restarts * -(-len(idx) // self.batch_size)) as bar:
                ok[idx] = robust_mask(model, attack, self.x[idx], self.y[idx], self.batch_size,
                                      restarts, on_batch=bar.advance, keep=kept)
        if kept is not None:
            self.adversarial[name] = kept
        return ok

    def add_mask(self, name: str, ok: torch.Tensor) -> None:
        """Record an attack behind robust_acc; `ok` covers the first `self.n` examples."""
        self.masks[name] = ok[:self.n]

    def robust(self, upto: int | None = None) -> torch.Tensor:
        """Per example: right on the clean input and under every attack recorded so far."""
        n = self.n if upto is None else min(upto, self.n)
        return torch.stack([m[:n] for m in self.masks.values()]).all(0)


class Evaluator(TypingProtocol):
    name: str

    def __call__(self, model: nn.Module, ctx: EvalContext) -> dict: ...
