"""Intervals, paired comparisons and rank ranges over records: one implementation, read by
`kdbench show`, `kdbench compare`, the leaderboard app and its CSV.

Seeds are the unit of replication: every model of a protocol is tested on the same test
examples, so what varies between two runs of a method is its seed (initial weights, data order).
A row's interval is a t-interval over its seeds' values; two methods are compared by a paired
t-test over the seeds they share (same seed: same initial student weights, same data order, same
test examples), at ALPHA = 0.05. The exact McNemar test on each seed's per-example bits says how
clearly the two models differ on that seed's test examples; it is shown, not used for verdicts.

Records without per-example evidence (`metrics.evidence`, absent before schema 2) get no
interval, test or rank range: their numbers cannot be checked example by example.
See docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.errors import RecordError
from bench.records.aggregate import with_mce
from bench.records.measures import BY_KEY, MEASURES
from bench.records.schema import Record
from bench.records.stats import (ALPHA, Interval, McNemar, PairedTest, binomial_se, holm,
                                 mcnemar_exact, paired_t, t_interval)

NO_EVIDENCE_NOTE = ("Rows marked † come from records without per-example evidence (made before "
                    "kdbench stored it): they show plain means, with no confidence interval or "
                    "rank range, because their accuracies cannot be checked example by example "
                    "and their paired tests would rest on unchecked numbers. Rerun them to get "
                    "both.")


def has_evidence(records: Iterable[Record]) -> bool:
    """Every record carries per-example evidence: its row may show intervals and rank ranges."""
    return all(r.metrics.evidence is not None for r in records)


def seed_values(records: Iterable[Record], key: str) -> dict[int, float]:
    """Seed -> the measure's value, for the records that have it."""
    read = BY_KEY[key].read
    return {r.seed: float(v) for r in records if (v := read(r)) is not None}


def interval(values: Iterable[float]) -> Interval:
    """The row's 95 % t-interval over its seeds' values (no interval for one seed)."""
    return t_interval(list(values))


# -- pairs of methods ----------------------------------------------------------------------------
def paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[tuple[int, ...], PairedTest]:
    """The paired t-test of a against b over the seeds both have."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ValueError("no seed in common: nothing to pair")
    return seeds, paired_t([a[s] for s in seeds], [b[s] for s in seeds])


def separation(a: Mapping[int, float], b: Mapping[int, float], higher_is_better: bool = True,
               alpha: float = ALPHA) -> int:
    """+1: a is significantly better than b; -1: b than a; 0: no test separates them (fewer than
    two shared seeds, or p >= alpha)."""
    if len(set(a) & set(b)) < 2:
        return 0
    _, test = paired(a, b)
    if test.p is None or test.p >= alpha or test.diff.mean == 0:
        return 0
    better = test.diff.mean > 0 if higher_is_better else test.diff.mean < 0
    return 1 if better else -1


@dataclass(frozen=True, order=True)
class RankRange:
    best: int  # 1 + methods significantly better
    worst: int  # methods not significantly worse, itself included

    def __str__(self) -> str:
        return str(self.best) if self.best == self.worst else f"{self.best}-{self.worst}"


def significance_matrix(values: Mapping[str, Mapping[int, float]], higher_is_better: bool = True,
                        testable: Iterable[str] | None = None
                        ) -> dict[tuple[str, str], int | None]:
    """(row, column) -> separation(row, column); None where either is not testable."""
    ok = set(values if testable is None else testable)
    return {(a, b): (separation(values[a], values[b], higher_is_better)
                     if a in ok and b in ok and a != b else None if a != b else 0)
            for a in values for b in values}


def rank_ranges(values: Mapping[str, Mapping[int, float]], higher_is_better: bool = True,
                testable: Iterable[str] | None = None) -> dict[str, RankRange]:
    """Each testable method's rank range among all methods in `values` (Chatbot Arena, HELM):
    best = 1 + methods significantly better, worst = methods not significantly worse (counting
    itself). A method that cannot be tested is separated from nobody: it widens the others'
    ranges and gets none itself."""
    ok = set(values if testable is None else testable)
    matrix = significance_matrix(values, higher_is_better, ok)
    out = {}
    for m in values:
        if m not in ok:
            continue
        better = sum(matrix[(o, m)] == 1 for o in values if o != m)
        worse = sum(matrix[(m, o)] == 1 for o in values if o != m)
        out[m] = RankRange(1 + better, len(values) - worse)
    return out


def shared_ranges(ranges: Mapping[str, RankRange]) -> list[tuple[RankRange, list[str]]]:
    """Rank ranges held by more than one method, best first: methods no test orders."""
    by_range: dict[RankRange, list[str]] = {}
    for m, r in ranges.items():
        by_range.setdefault(r, []).append(m)
    return sorted((r, sorted(ms)) for r, ms in by_range.items() if len(ms) > 1)


# -- two methods, metric by metric ---------------------------------------------------------------
@dataclass(frozen=True)
class MetricComparison:
    key: str
    label: str
    seeds: tuple[int, ...]  # the paired seeds
    a: Interval
    b: Interval
    test: PairedTest  # of a - b
    p_holm: float | None  # Holm-adjusted over the metrics compared together
    mcnemar: tuple[tuple[int, McNemar], ...]  # per seed, where both carry the bits
    higher_is_better: bool = True

    @property
    def winner(self) -> str | None:
        """"a", "b", or None (no significant difference at ALPHA after Holm)."""
        if self.p_holm is None or self.p_holm >= ALPHA or self.test.diff.mean == 0:
            return None
        return "a" if (self.test.diff.mean > 0) == self.higher_is_better else "b"

    def verdict(self, a: str = "A", b: str = "B") -> str:
        return {"a": f"{a} > {b}", "b": f"{a} < {b}", None: "no significant difference"}[
            self.winner]


def _missing_evidence(name: str, records: Sequence[Record]) -> list[str]:
    return [f"{name} seed {r.seed}" for r in records if r.metrics.evidence is None]


def compare(a: Sequence[Record], b: Sequence[Record], keys: Sequence[str] | None = None
            ) -> list[MetricComparison]:
    """A against B (records of one protocol version), metric by metric, paired by seed.

    `keys` defaults to every measure both carry on every shared seed. Raises RecordError when a
    record lacks per-example evidence or the two share fewer than two seeds."""
    name_a, name_b = (a[0].method if a else "A"), (b[0].method if b else "B")
    missing = _missing_evidence(name_a, a) + _missing_evidence(name_b, b)
    if missing:
        raise RecordError(f"{', '.join(missing)}: no per-example evidence (a record made before "
                          "kdbench stored it); paired comparisons need it: rerun those seeds")
    by_seed_a, by_seed_b = {r.seed: r for r in a}, {r.seed: r for r in b}
    seeds = tuple(sorted(set(by_seed_a) & set(by_seed_b)))
    if len(seeds) < 2:
        raise RecordError(f"{name_a} and {name_b} share {len(seeds)} seed(s) "
                          f"({', '.join(map(str, seeds)) or 'none'}); a paired test over seeds "
                          "needs at least 2")
    pa, pb = [by_seed_a[s] for s in seeds], [by_seed_b[s] for s in seeds]
    chosen = [m for m in MEASURES if (keys is None or m.key in keys)
              and len(seed_values(pa, m.key)) == len(seed_values(pb, m.key)) == len(seeds)]
    if keys is not None and len(chosen) < len(keys):
        lacking = [k for k in keys if k not in {m.key for m in chosen}]
        raise RecordError(f"{', '.join(lacking)}: not measured on every seed of both "
                          f"{name_a} and {name_b} (seeds {', '.join(map(str, seeds))})")
    tests = []
    for m in chosen:
        va, vb = seed_values(pa, m.key), seed_values(pb, m.key)
        tests.append((m, paired(va, vb)[1], interval(va.values()), interval(vb.values())))
    adjusted = holm([t.p for _, t, _, _ in tests])
    out = []
    for (m, test, ia, ib), p_holm in zip(tests, adjusted):
        per_seed = tuple((s, mcnemar_exact(x, y)) for s, ra, rb in zip(seeds, pa, pb)
                         if (x := m.bits(ra)) is not None and (y := m.bits(rb)) is not None)
        out.append(MetricComparison(m.key, m.label, seeds, ia, ib, test, p_holm, per_seed,
                                    m.higher_is_better))
    return out


# -- one method: seed-to-seed spread against within-seed sampling error --------------------------
@dataclass(frozen=True)
class Spread:
    seed_sd: float | None  # sample std of the seeds' values (percentage points)
    sampling_se: float | None  # mean over seeds of the binomial standard error of one seed's value


def spread(records: Sequence[Record], key: str) -> Spread:
    """How much a measure moves between seeds, against how much it would move between two draws
    of the test set for one model (binomial SE of the per-example bits, in points)."""
    m = BY_KEY[key]
    values = list(seed_values(records, key).values())
    ses = [100 * binomial_se(int(np.count_nonzero(x)), len(x))
           for r in records if (x := m.bits(r)) is not None]
    return Spread(float(np.std(values, ddof=1)) if len(values) > 1 else None,
                  float(np.mean(ses)) if ses else None)


# -- a table's rank ranges, the same for `kdbench show`, the app and its CSV ----------------------
DERIVED = {"mce": "mCE", "rel_mce": "rel. mCE"}  # lower is better; need the baseline's records


def rankable(key: str) -> bool:
    """Keys that get rank ranges: the accuracy measures and the corruption errors (seed-level
    values). Costs (size, latency) are properties of the architecture, not of the seed."""
    return key in BY_KEY or key in DERIVED


def values_by_method(records: Sequence[Record], key: str) -> dict[str, dict[int, float]]:
    """Method -> seed -> value of `key`, for records of ONE protocol version."""
    out: dict[str, dict[int, float]] = {}
    if key in DERIVED:
        for r, mce, rel in with_mce(list(records)):
            v = mce if key == "mce" else rel
            if v is not None:
                out.setdefault(r.method, {})[r.seed] = float(v)
        return out
    read = BY_KEY[key].read
    for r in records:
        if (v := read(r)) is not None:
            out.setdefault(r.method, {})[r.seed] = float(v)
    return out


def table_ranges(records: Sequence[Record], key: str, reference_family: str = "reference"
                 ) -> dict[str, RankRange]:
    """Rank ranges by `key` of the methods of ONE protocol version; reference rows (teacher,
    baseline) are context, not entries, and get none. {} for keys that are not `rankable`."""
    if not rankable(key):
        return {}
    reference = {r.method for r in records if r.family == reference_family}
    values = {m: v for m, v in values_by_method(records, key).items()  # mCE needs the baseline
              if m not in reference}
    testable = {m for m in values if has_evidence(r for r in records if r.method == m)}
    higher = key not in DERIVED and BY_KEY[key].higher_is_better
    return rank_ranges(values, higher, testable)


def fmt_interval(iv: Interval, decimals: int = 1) -> str:
    """mean ± half-width of the 95 % interval ("84.6 ± 2.5"); the mean alone without one."""
    if iv.half is None:
        return f"{iv.mean:.{decimals}f}"
    return f"{iv.mean:.{decimals}f} ± {iv.half:.{decimals}f}"
