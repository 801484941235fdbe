"""Aggregate records over seeds (mean and std) and show them as a table."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.table import Table

from bench.records import Record

# column title -> how to read the number from a record
COLUMNS: dict[str, Callable[[Record], float]] = {
    "clean %": lambda r: r.metrics.clean_acc,
    "noise %": lambda r: r.metrics.corruptions_acc,
    "FGSM %": lambda r: r.metrics.fgsm_acc,
    "PGD %": lambda r: r.metrics.pgd_acc,
    "robust %": lambda r: r.metrics.robust_acc,
}


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample standard deviation; 0 for a single seed
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        v = tuple(values)
        return cls(statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, v)

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f}" if len(self.values) > 1 else f"{self.mean:.1f}"


def _row_order(key: tuple[str, str]) -> tuple:
    protocol, method = key
    return (protocol, {"teacher": 0, "baseline": 1}.get(method, 2), method)


def group(records: Iterable[Record]) -> dict[tuple[str, str], list[Record]]:
    """Records by (protocol, method): teacher and baseline rows first, seeds sorted."""
    out: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        out.setdefault((r.protocol, r.method), []).append(r)
    return {k: sorted(out[k], key=lambda r: r.seed) for k in sorted(out, key=_row_order)}


def table(records: Iterable[Record], title: str = "kdbench results") -> Table:
    t = Table(title=title)
    for col in ("protocol", "method", "family", "seeds", *COLUMNS, "params", "CPU b1 ms"):
        t.add_column(col, justify="left" if col in ("protocol", "method", "family") else "right")
    for (protocol, method), recs in group(records).items():
        eff = recs[0].metrics.efficiency
        lat = Stat.of(r.metrics.efficiency.cpu.timings[0].median_ms for r in recs)
        t.add_row(protocol, method, recs[0].family, str(len(recs)),
                  *(str(Stat.of(f(r) for r in recs)) for f in COLUMNS.values()),
                  f"{eff.params:,}", f"{lat.mean:.3f}")
    return t
