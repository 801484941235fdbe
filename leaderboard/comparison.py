"""The Compare tab: two methods side by side, their paired tests with the verdict, and the
methods x methods significance matrix. The statistics are bench/records/significance.py's, the
same that `kdbench compare` prints. Record strings (method names, errors) go to dataframes,
charts and st.text only, never markdown."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bench.records import RecordError
from bench.records.significance import (MetricComparison, compare, fmt_interval,
                                        significance_matrix)
from bench.records.significance import paired as paired_seeds
from leaderboard import plots, tables
from leaderboard.metrics import ACCURACIES, BY_KEY, METRICS, MethodRow, rank
from leaderboard.tables import MISSING, fmt_cell, fmt_diff


def means(a: MethodRow, b: MethodRow) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metric by metric: a, b, and a - b of the means (numbers, and the text each cell shows)."""
    data, text = [], []
    for m in METRICS:
        sa, sb = a.stats[m.key], b.stats[m.key]
        diff = sa.mean - sb.mean if sa is not None and sb is not None else None
        data.append({"metric": m.label, "A": sa.mean if sa else None,
                     "B": sb.mean if sb else None, "A − B": diff})
        text.append({"metric": m.label, "A": fmt_cell(a, m.key), "B": fmt_cell(b, m.key),
                     "A − B": fmt_diff(m.key, diff)})
    numbers = pd.DataFrame(data)
    numbers[["A", "B", "A − B"]] = numbers[["A", "B", "A − B"]].astype("float64")
    return numbers, pd.DataFrame(text, columns=numbers.columns)


def fmt_p(p: float | None) -> str:
    return MISSING if p is None else f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def paired_tests(comparisons: list[MetricComparison]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paired tests of A against B (bench/records/significance.py: `compare`), one line
    per metric: the mean paired difference A − B, its 95 % CI, the paired t-test's p (raw and
    Holm-adjusted over these metrics), each seed's exact McNemar p, and the verdict."""
    data, text = [], []
    for c in comparisons:
        d = c.test.diff
        mcnemar = "; ".join(f"seed {s}: {fmt_p(m.p)}" for s, m in c.mcnemar) or MISSING
        data.append({"metric": c.label, "A": c.a.mean, "B": c.b.mean, "A − B": d.mean,
                     "CI low": d.lo, "CI high": d.hi, "p": c.test.p, "Holm p": c.p_holm,
                     "McNemar p per seed": mcnemar, "verdict": c.verdict()})
        text.append({"metric": c.label, "A": fmt_interval(c.a), "B": fmt_interval(c.b),
                     "A − B": fmt_diff(c.key, d.mean),
                     "CI low": MISSING if d.lo is None else f"{d.lo:+.1f}",
                     "CI high": MISSING if d.hi is None else f"{d.hi:+.1f}",
                     "p": fmt_p(c.test.p), "Holm p": fmt_p(c.p_holm),
                     "McNemar p per seed": mcnemar, "verdict": c.verdict()})
    numbers = pd.DataFrame(data)
    cols = ["A", "B", "A − B", "CI low", "CI high", "p", "Holm p"]
    numbers[cols] = numbers[cols].astype("float64")
    return numbers, pd.DataFrame(text, columns=numbers.columns)


OUTCOME = {1: "win", 0: "tie", -1: "loss", None: "not tested"}


def significance(rows: list[MethodRow], key: str) -> pd.DataFrame:
    """Long format for the methods x methods heatmap: does the row method beat the column method
    on `key` (paired t-test over seeds, p < 0.05, the test behind the rank ranges)?"""
    values = {r.method: {s: v for s, v in zip(r.seeds, r.per_seed[key]) if v is not None}
              for r in rows}
    values = {m: v for m, v in values.items() if v}
    testable = {r.method for r in rows if r.evidence and r.method in values}
    matrix = significance_matrix(values, BY_KEY[key].higher_is_better, testable)
    out = []
    for (a, b), outcome in matrix.items():
        test = (paired_seeds(values[a], values[b])[1] if a != b and outcome is not None
                and len(set(values[a]) & set(values[b])) >= 2 else None)
        out.append({"row": a, "column": b, "outcome": OUTCOME[outcome] if a != b else "—",
                    "diff": test.diff.mean if test else None, "p": test.p if test else None,
                    "text": {1: "win", 0: "tie", -1: "loss", None: "?"}[outcome] if a != b
                    else ""})
    return pd.DataFrame(out, columns=["row", "column", "outcome", "diff", "p", "text"])


def _table(data) -> None:
    st.dataframe(data, hide_index=True, width="stretch", placeholder=MISSING)


def view(rows: list[MethodRow]) -> None:
    """The Compare tab."""
    if len(rows) < 2:
        st.info("Comparing needs at least two methods under this protocol.")
        return
    names = [r.method for r in rows]
    ranks = rank(rows, "robust")
    best = min(ranks, key=ranks.get) if ranks else names[-1]
    first = "baseline" if "baseline" in names and best != "baseline" else names[0]
    left, right = st.columns(2)
    a = left.selectbox("A", names, index=names.index(first), key="compare_a")
    b = right.selectbox("B", names, index=names.index(best if best != a else names[-1]),
                        key="compare_b")
    row_a, row_b = rows[names.index(a)], rows[names.index(b)]
    st.caption("Paired by seed: the mean difference A − B with its 95 % t-interval, the paired "
               "t-test over seeds (p, and Holm-adjusted over the metrics shown), each seed's "
               "exact McNemar test on the per-example results, and the verdict at 0.05 after "
               "Holm (docs/statistics.md).")
    try:
        tests = compare(row_a.records, row_b.records) if a != b else None
    except RecordError as e:
        st.info("No paired test for these two: each needs per-example evidence on at least two "
                "shared seeds.", icon="ℹ️")
        st.text(str(e))
        tests = None
    if tests:
        numbers, text = paired_tests(tests)
        _table(tables.styled(numbers, text))
        st.text("\n".join(f"{c.label}: {c.verdict(a, b)}" for c in tests))
    with st.expander("Every metric's means (costs included)"):
        numbers, text = means(row_a, row_b)
        _table(tables.styled(numbers, text))
    keys = [m.key for m in ACCURACIES] + ["mce", "rel_mce"]
    key = st.selectbox("Significance matrix of", keys, index=keys.index("robust"),
                       format_func=lambda k: BY_KEY[k].label, key="matrix_metric")
    cells = significance(rows, key)
    if cells.empty:
        st.info(f"No method has {BY_KEY[key].label} measured.")
        return
    st.altair_chart(plots.significance_matrix(cells, BY_KEY[key].label), width="content")
    st.caption("Row method against column method, paired t-test over seeds at p < 0.05: win "
               "(green), tie (grey), loss (red); ? where a row has no per-example evidence or "
               "the two share fewer than two seeds. The rank ranges count these outcomes.")
