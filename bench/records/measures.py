"""The accuracy measures of a record that intervals, paired tests and rank ranges apply to: how to
read each one's number and, where the record carries it, its per-example evidence.

`auc` is derived here, not stored: the normalised area under the accuracy-vs-eps curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bench.records.schema import EpsPoint, Record


def eps_value(label: str) -> float | None:
    """'8/255' -> 0.0314, '0.1' -> 0.1; None if unreadable."""
    try:
        return float(Fraction(label.strip()))
    except (ValueError, ZeroDivisionError):
        return None


def eps_auc(clean_acc: float, curve: Sequence[EpsPoint] | None) -> float | None:
    """Normalised area under the accuracy-vs-eps curve, in percent.

    The curve starts at eps 0 with the clean accuracy and runs through the recorded PGD points
    (sorted by eps); the trapezoid rule integrates it up to the last eps, and dividing by that
    eps makes it the curve's mean height: 100 means never fooled up to the last radius, 0 fooled
    at every radius. It is only as good as the curve's points: the eps curve is measured on the
    first `curve_n` test examples of the protocol, the clean point on all of them.
    None when the record has no curve.
    """
    points = sorted((v, p.acc) for p in curve or [] if (v := eps_value(p.eps)) is not None
                    and v > 0)
    if not points:
        return None
    xs = [0.0] + [e for e, _ in points]
    ys = [clean_acc] + [a for _, a in points]
    area = sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))
    return round(area / xs[-1], 4)


def _corruption_bits(r: Record) -> np.ndarray | None:
    """Every corruption x severity's bits, one after the other: their mean is corruptions_acc
    (each corruption and severity has the same test examples)."""
    ev = r.metrics.evidence
    if ev is None or not ev.corruptions:
        return None
    masks = ev.masks()
    return np.concatenate([masks[f"{c}/{s}"] for c, accs in ev.corruptions.items()
                           for s in range(1, len(accs) + 1)])


def _bits(name: str) -> Callable[[Record], np.ndarray | None]:
    def read(r: Record) -> np.ndarray | None:
        ev = r.metrics.evidence
        return None if ev is None or getattr(ev, name) is None else ev.masks()[name]
    return read


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    read: Callable[[Record], float | None]
    bits: Callable[[Record], np.ndarray | None]  # None: no per-example evidence for it
    help: str
    higher_is_better: bool = True


MEASURES: tuple[Measure, ...] = (
    Measure("clean", "clean %", lambda r: r.metrics.clean_acc, _bits("clean"),
            "Accuracy on the protocol's clean test examples"),
    Measure("corruptions", "corruption %", lambda r: r.metrics.corruptions_acc, _corruption_bits,
            "Mean accuracy over corruptions x severities"),
    Measure("fgsm", "FGSM %", lambda r: r.metrics.fgsm_acc, _bits("fgsm"),
            "Accuracy under FGSM at the protocol's eps"),
    Measure("pgd", "PGD %", lambda r: r.metrics.pgd_acc, _bits("pgd"),
            "Accuracy under PGD at the protocol's eps"),
    Measure("autoattack", "AutoAttack %", lambda r: r.metrics.autoattack_acc, _bits("autoattack"),
            "Accuracy under AutoAttack (opt-in; — when not run)"),
    Measure("robust", "robust %", lambda r: r.metrics.robust_acc, _bits("robust"),
            "Per-example worst case over clean and every attack run"),
    Measure("auc", "eps AUC %", lambda r: eps_auc(r.metrics.clean_acc, r.metrics.eps_curve),
            lambda r: None,
            "Normalised area under the PGD accuracy-vs-eps curve, from eps 0 (clean accuracy) "
            "to the curve's last eps (trapezoids, divided by that eps): less sensitive to the "
            "one threshold than PGD %"),
)
BY_KEY: dict[str, Measure] = {m.key: m for m in MEASURES}
