"""Aggregation over seeds, defined once: mean and std (`Stat`), records grouped by method, and
the corruption errors (mCE) derived against the baseline. `entry.json`, `kdbench show` and the
leaderboard all read their numbers through here."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from bench.protocols import CIFAR10_C_EXTRAS, PROTOCOLS
from bench.records.schema import Record
from bench.records.stats import Interval, t_interval


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample standard deviation; 0 for a single seed
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        v = tuple(values)
        return cls(statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, v)

    @property
    def interval(self) -> Interval:
        """The 95 % t-interval of the mean over these seeds (bench/records/stats.py)."""
        return t_interval(self.values)

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f}" if len(self.values) > 1 else f"{self.mean:.1f}"


def corruption_errors(rec: Record, baseline: Record, floor: float = 1.0
                      ) -> tuple[float | None, float | None]:
    """(mCE, relative mCE) in percent of the baseline's, Hendrycks & Dietterich 2019, over the
    benchmark's corruptions (held-out ones, CIFAR-10-C's 4 extras, never enter).

    CE_c = sum_s E(s,c) / sum_s E_base(s,c); relative CE_c uses errors minus the clean error.
    Corruptions on which the baseline makes no error are left out of mCE; those on which its
    relative error (mean over severities) is below `floor` percentage points are left out of
    relative mCE, where the ratio would be one over one or two images.
    """
    ce, rel = [], []
    clean_err, base_clean_err = 100 - rec.metrics.clean_acc, 100 - baseline.metrics.clean_acc
    for name, accs in rec.metrics.corruptions.items():
        base = baseline.metrics.corruptions.get(name)
        if name in CIFAR10_C_EXTRAS or base is None or len(base) != len(accs):
            continue
        err, base_err = [100 - a for a in accs], [100 - a for a in base]
        if sum(base_err) > 0:
            ce.append(sum(err) / sum(base_err))
        base_rel = sum(e - base_clean_err for e in base_err)
        if base_rel > floor * len(base_err):
            rel.append(sum(e - clean_err for e in err) / base_rel)
    return (100 * statistics.fmean(ce) if ce else None,
            100 * statistics.fmean(rel) if rel else None)


def rel_mce_floor(protocol: str) -> float:
    """The floor a protocol declares (bench.protocols EvalSuite.rel_mce_floor)."""
    return PROTOCOLS[protocol]().eval.rel_mce_floor if protocol in PROTOCOLS else 1.0


def with_mce(records: list[Record]) -> list[tuple[Record, float | None, float | None]]:
    """Each record with its (relative) mCE against the `baseline` record of the same protocol
    version and seed; None where that baseline record is absent."""
    base = {(r.protocol_hash, r.seed): r for r in records if r.method == "baseline"}
    out = []
    for r in records:
        b = base.get((r.protocol_hash, r.seed))
        out.append((r, *corruption_errors(r, b, rel_mce_floor(r.protocol))) if b is not None
                   else (r, None, None))
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
