"""Per-example evidence in a record (`metrics.evidence`): was the model right on each test
example, under each measurement? Every accuracy in `metrics` is the mean of one of these."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import PositiveInt

from bench.records import bits
from bench.records.base import Strict


class Evidence(Strict):
    """Per example of the protocol's test set, in its order: was the model right? Each field is
    base64 of `numpy.packbits` (bench/records/bits.py), `n` examples long. The paired tests of
    bench/records/significance.py read it; every accuracy in `metrics` is its mean."""

    n: PositiveInt  # test examples: the protocol's test set
    # examples `robust` and `autoattack` cover: the first robust_n (AutoAttack may run on fewer
    # than the test set; attacks.robust_set says so); None: all n
    robust_n: PositiveInt | None = None
    encoding: Literal["packbits-base64"] = "packbits-base64"
    clean: str
    fgsm: str
    pgd: str
    autoattack: str | None = None  # when AutoAttack was run
    robust: str  # worst case over clean and every attack run at the protocol's eps
    corruptions: dict[str, list[str]]  # per corruption, per severity (severity 1 first)

    def masks(self) -> dict[str, np.ndarray]:
        """Every measurement's booleans: "clean", "fgsm", ..., and "<corruption>/<severity>"."""
        named = {k: getattr(self, k) for k in ("clean", "fgsm", "pgd", "autoattack", "robust")}
        named.update({f"{c}/{s}": text for c, texts in self.corruptions.items()
                      for s, text in enumerate(texts, start=1)})
        out = {}
        for key, text in named.items():
            if text is None:
                continue
            n = self.robust_n or self.n if key in ("robust", "autoattack") else self.n
            try:
                out[key] = bits.unpack(text, n)
            except ValueError as e:
                raise ValueError(f"evidence.{key}: {e}") from None
        return out


def evidence_problems(m, ev: Evidence) -> list[str]:
    """Where the per-example bits contradict the accuracies stored beside them (`m`: the
    record's Metrics)."""
    masks = ev.masks()
    if (ev.autoattack is None) != (m.autoattack_acc is None):
        return ["evidence.autoattack and autoattack_acc go together"]
    if {c: len(a) for c, a in ev.corruptions.items()} != {c: len(a) for c, a in
                                                          m.corruptions.items()}:
        return ["evidence.corruptions must name the corruptions and severities of corruptions"]
    stored = {"clean": m.clean_acc, "fgsm": m.fgsm_acc, "pgd": m.pgd_acc,
              "autoattack": m.autoattack_acc, "robust": m.robust_acc}
    stored.update({f"{c}/{s}": acc for c, accs in m.corruptions.items()
                   for s, acc in enumerate(accs, start=1)})
    problems = []
    for key, mask in masks.items():
        # Accuracies are rounded to 4 decimals (bench/eval/suite.py: pct); the bits are exact.
        if abs(100.0 * mask.mean() - stored[key]) > 0.5e-4 + 1e-9:
            field = (f"corruptions[{key.split('/')[0]!r}][{int(key.split('/')[1]) - 1}]"
                     if "/" in key else f"{key}_acc")
            problems.append(f"evidence.{key}: {int(mask.sum())} of {ev.n} examples correct is "
                            f"{100 * mask.mean():.4f} %, but {field} is {stored[key]}")
    r = len(masks["robust"])
    attacked = [masks[k][:r] for k in ("clean", "fgsm", "pgd", "autoattack") if k in masks]
    if (masks["robust"] & ~np.logical_and.reduce(attacked)).any():
        problems.append("evidence.robust: an example counts as robust where clean or an attack "
                        "got it wrong; robust is the per-example worst case")
    return problems
