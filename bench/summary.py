"""Aggregate records over seeds (mean and std), derive mCE, and show them as a table."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.table import Table

from bench.records import Record


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


def corruption_errors(rec: Record, baseline: Record) -> tuple[float | None, float | None]:
    """(mCE, relative mCE) in percent of the baseline's, Hendrycks & Dietterich 2019.

    CE_c = sum_s E(s,c) / sum_s E_base(s,c); relative CE_c uses errors minus the clean error.
    Corruptions on which the baseline makes no (relative) error are left out of that mean.
    """
    ce, rel = [], []
    clean_err, base_clean_err = 100 - rec.metrics.clean_acc, 100 - baseline.metrics.clean_acc
    for name, accs in rec.metrics.corruptions.items():
        base = baseline.metrics.corruptions.get(name)
        if base is None or len(base) != len(accs):
            continue
        err, base_err = [100 - a for a in accs], [100 - a for a in base]
        if sum(base_err) > 0:
            ce.append(sum(err) / sum(base_err))
        base_rel = sum(e - base_clean_err for e in base_err)
        if base_rel > 0:
            rel.append(sum(e - clean_err for e in err) / base_rel)
    return (100 * statistics.fmean(ce) if ce else None,
            100 * statistics.fmean(rel) if rel else None)


def with_mce(records: list[Record]) -> list[tuple[Record, float | None, float | None]]:
    """Each record with its (relative) mCE against the `baseline` record of the same protocol
    version and seed; None where that baseline record is absent."""
    base = {(r.protocol_hash, r.seed): r for r in records if r.method == "baseline"}
    out = []
    for r in records:
        b = base.get((r.protocol_hash, r.seed))
        out.append((r, *corruption_errors(r, b)) if b is not None else (r, None, None))
    return out


def _row_order(key: tuple[str, str]) -> tuple:
    protocol, method = key
    return (protocol, {"teacher": 0, "baseline": 1}.get(method, 2), method)


def group(records: Iterable[Record]) -> dict[tuple[str, str], list[Record]]:
    """Records by (protocol, method): teacher and baseline rows first, seeds sorted."""
    out: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        out.setdefault((r.protocol, r.method), []).append(r)
    return {k: sorted(out[k], key=lambda r: r.seed) for k in sorted(out, key=_row_order)}


# column title -> how to read the number from a record
COLUMNS: dict[str, Callable[[Record], float | None]] = {
    "clean %": lambda r: r.metrics.clean_acc,
    "corruptions %": lambda r: r.metrics.corruptions_acc,
    "FGSM %": lambda r: r.metrics.fgsm_acc,
    "PGD %": lambda r: r.metrics.pgd_acc,
    "AutoAttack %": lambda r: r.metrics.autoattack_acc,
    "robust %": lambda r: r.metrics.robust_acc,
}


def _cell(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return str(Stat.of(present)) if present and len(present) == len(values) else "—"


def table(records: Iterable[Record], title: str = "kdbench results") -> Table:
    records = list(records)
    mces = {id(r): (m, rel) for r, m, rel in with_mce(records)}
    columns = {k: f for k, f in COLUMNS.items()
               if any(f(r) is not None for r in records)}  # no all-empty AutoAttack column
    t = Table(title=title)
    for col in ("protocol", "method", "family", "seeds", *columns, "mCE", "rel. mCE",
                "unreliable", "params", "CPU b1 ms"):
        t.add_column(col, justify="left" if col in ("protocol", "method", "family") else "right")
    for (protocol, method), recs in group(records).items():
        eff = recs[0].metrics.efficiency
        lat = Stat.of(r.metrics.efficiency.cpu.timings[0].median_ms for r in recs)
        flagged = sum(bool(r.metrics.unreliable) for r in recs)
        t.add_row(protocol, method, recs[0].family, str(len(recs)),
                  *(_cell([f(r) for r in recs]) for f in columns.values()),
                  _cell([mces[id(r)][0] for r in recs]),
                  _cell([mces[id(r)][1] for r in recs]),
                  f"[yellow]{flagged}/{len(recs)}[/]" if flagged else "no",
                  f"{eff.params:,}", f"{lat.mean:.3f}")
    return t
