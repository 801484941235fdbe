"""The statistics behind every interval, test and rank range kdbench shows (scipy.stats, numpy).

Torch-free and independent of records: plain numbers in, plain numbers out. Where they are
applied to records, and why seeds are the unit of replication: bench/records/significance.py
and docs/statistics.md.

- `t_interval`: Student-t confidence interval of a mean over seeds (n = 1: no interval).
- `paired_t`: mean paired difference with its t-interval, and the paired t-test
  (`scipy.stats.ttest_rel`) over seeds.
- `mcnemar_exact`: exact McNemar test on one seed's per-example bits: a two-sided binomial test
  (`scipy.stats.binomtest`) of the discordant pairs (McNemar 1947; the exact form of Fagerland,
  Lydersen & Laake 2013).
- `holm`: Holm's (1979) step-down adjustment of p-values (family-wise error control).
- `wilson`, `binomial_se`: one seed's sampling error over the test examples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  # confidence level of every interval shown
ALPHA = 0.05  # significance level of every verdict, after Holm's correction where there is one


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval; lo and hi are None when n < 2."""

    mean: float
    lo: float | None
    hi: float | None
    n: int

    @property
    def half(self) -> float | None:
        """Half the interval's width (a t-interval is symmetric about the mean)."""
        return None if self.lo is None or self.hi is None else (self.hi - self.lo) / 2


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """mean ± t_{(1+level)/2, n-1} · s / √n over `values` (the seeds' numbers)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(v.mean())
    if v.size < 2:
        return Interval(mean, None, None, int(v.size))
    half = float(stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return Interval(mean, mean - half, mean + half, int(v.size))


@dataclass(frozen=True)
class PairedTest:
    diff: Interval  # mean of a - b over the pairs, with its t-interval
    p: float | None  # two-sided paired t-test; None with fewer than 2 pairs or a constant shift


def paired_t(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> PairedTest:
    """The paired t-test of a against b (pairs in order). Identical pairs give p = 1. Differences
    that are all equal and non-zero give no p-value: with no spread between the pairs there is
    no estimate of the seed-to-seed variance, and scipy's t would be infinite (p = 0), a
    certainty that a handful of seeds cannot give."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_t needs two equally long 1-d sequences, got {a.shape}, {b.shape}")
    d = a - b
    interval = t_interval(d, level)
    if d.size < 2:
        return PairedTest(interval, None)
    if not d.any():  # 0/0: no difference at all is no evidence of one
        return PairedTest(interval, 1.0)
    if np.all(d == d[0]):  # a constant shift: the t statistic is undefined (s = 0)
        return PairedTest(interval, None)
    with warnings.catch_warnings():
        # scipy warns when differences are nearly equal (40.0, 40.0, 40.1); values with 4
        # decimals lose nothing that matters to a p-value there
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        return PairedTest(interval, float(stats.ttest_rel(a, b).pvalue))


@dataclass(frozen=True)
class McNemar:
    a_only: int  # examples a gets right and b wrong
    b_only: int  # examples b gets right and a wrong
    p: float  # exact two-sided; 1 when there is no discordant pair


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> McNemar:
    """Exact McNemar test of two models' correctness on the same examples."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar pairs examples: {a.shape} and {b.shape} differ")
    a_only, b_only = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(b & ~a))
    if a_only + b_only == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(a_only, b_only, float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the input order; None stays None and is not counted.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max over j <= i of
    min(1, (m - j + 1) · p_(j)). Rejecting where the adjusted p < alpha is Holm's procedure.
    """
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (one seed's accuracy over its test examples)."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def binomial_se(k: int, n: int) -> float:
    """Standard error of the proportion k/n, treating the n examples as independent trials."""
    p = k / n
    return math.sqrt(p * (1 - p) / n)
