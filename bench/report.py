"""Tables for the terminal: the summary of a set of records (`kdbench run`, `show`, `submit`),
a paired comparison of two methods (`kdbench compare`) and the registries (`kdbench protocols`,
`kdbench methods`). Intervals, tests and rank ranges come from bench/records/significance.py,
which the leaderboard reads too."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from rich.table import Table

from bench.errors import UsageError
from bench.records.aggregate import Stat, group, with_mce
from bench.records.measures import MEASURES
from bench.records.schema import Record
from bench.records.significance import (NO_EVIDENCE_NOTE, MetricComparison, RankRange,
                                        fmt_interval, has_evidence, interval, rankable,
                                        shared_ranges, table_ranges)

COLUMNS_BY_KEY = {m.key: m.label for m in MEASURES} | {"mce": "mCE", "rel_mce": "rel. mCE"}


# column title -> how to read the number from a record (the accuracy measures of
# bench/records/measures.py, in their order)
COLUMNS: dict[str, Callable[[Record], float | None]] = {m.label: m.read for m in MEASURES}
DERIVED_COLUMNS = {"mCE": "mce", "rel. mCE": "rel_mce"}


def _cell(values: list[float | None], intervals: bool) -> str:
    """mean ± 95 % CI half-width over the seeds, or the plain mean for rows without evidence."""
    present = [v for v in values if v is not None]
    if not present or len(present) != len(values):
        return "—"
    iv = interval(present)
    return fmt_interval(iv if intervals else replace(iv, lo=None, hi=None))


def _ranges(records: list[Record], rank_by: str) -> dict[tuple[str, str, str], RankRange]:
    """(protocol, hash, method) -> rank range, per protocol version."""
    versions: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        versions.setdefault((r.protocol, r.protocol_hash), []).append(r)
    return {(*v, m): rr for v, recs in versions.items()
            for m, rr in table_ranges(recs, rank_by).items()}


def _caption(records: list[Record], rank_by: str, ranges: dict, unevidenced: bool) -> str:
    label = COLUMNS_BY_KEY.get(rank_by, rank_by)
    lines = ["Cells: mean ± half-width of the 95 % t-interval over seeds (seeds are the unit of "
             "replication; docs/statistics.md)."]
    if ranges:
        lines.append(f"Rank range by {label}: best = 1 + methods significantly better (paired "
                     "t-test over seeds, p < 0.05), worst = methods not significantly worse.")
        for (protocol, _), groups in _shared(ranges).items():
            for rr, names in groups:
                lines.append(f"No test separates {', '.join(names)} ({protocol}, rank {rr}).")
    if unevidenced:
        lines.append(NO_EVIDENCE_NOTE)
    return "\n".join(lines)


def _shared(ranges: dict) -> dict[tuple[str, str], list]:
    by_version: dict[tuple[str, str], dict[str, RankRange]] = {}
    for (protocol, h, method), rr in ranges.items():
        by_version.setdefault((protocol, h), {})[method] = rr
    return {v: shared_ranges(rs) for v, rs in by_version.items() if shared_ranges(rs)}


def table(records: Iterable[Record], title: str = "kdbench results",
          rank_by: str = "robust") -> Table:
    if not rankable(rank_by):
        raise UsageError(f"--rank-by {rank_by}: not a metric with rank ranges; choose from "
                         f"{', '.join(COLUMNS_BY_KEY)}")
    records = list(records)
    mces = {id(r): (m, rel) for r, m, rel in with_mce(records)}
    columns = {k: f for k, f in COLUMNS.items()
               if any(f(r) is not None for r in records)}  # no all-empty AutoAttack column
    ranges = _ranges(records, rank_by)
    rows = group(records)
    unevidenced = [k for k, recs in rows.items() if not has_evidence(recs)]
    t = Table(title=title, caption=_caption(records, rank_by, ranges, bool(unevidenced)),
              caption_justify="left")
    for col in ("protocol", "method", "family", "seeds", "rank range", *columns,
                *DERIVED_COLUMNS, "unreliable", "params", "CPU b1 ms"):
        t.add_column(col, justify="left" if col in ("protocol", "method", "family") else "right")
    for (protocol, method), recs in rows.items():
        eff = recs[0].metrics.efficiency
        lat = Stat.of(r.metrics.efficiency.cpu.timings[0].median_ms for r in recs)
        flagged = sum(bool(r.metrics.unreliable) for r in recs)
        ev = (protocol, method) not in unevidenced
        rr = ranges.get((protocol, recs[0].protocol_hash, method))
        t.add_row(protocol, method + ("" if ev else " †"), recs[0].family, str(len(recs)),
                  str(rr) if rr else "—",
                  *(_cell([f(r) for r in recs], ev) for f in columns.values()),
                  _cell([mces[id(r)][0] for r in recs], ev),
                  _cell([mces[id(r)][1] for r in recs], ev),
                  f"[yellow]{flagged}/{len(recs)}[/]" if flagged else "no",
                  f"{eff.params:,}", f"{lat.mean:.3f}")
    return t


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def comparison_table(a: str, b: str, comparisons: list[MetricComparison]) -> Table:
    """`kdbench compare`: per metric A, B, the paired difference A − B with its 95 % CI, the
    paired t-test's p-value (raw and Holm-adjusted over the metrics shown), each seed's exact
    McNemar p-value, and the verdict."""
    t = Table(title=f"{a} (A) vs {b} (B), paired by seed",
              caption="A, B: mean ± 95 % CI half-width over the paired seeds. A − B: mean paired "
                      "difference [95 % t-interval]. p: paired t-test over seeds; Holm: "
                      f"adjusted over the {len(comparisons)} metric(s) shown; verdicts at 0.05 "
                      "after Holm. McNemar: exact test on each seed's per-example results "
                      "(A-only/B-only correct examples), shown for the per-seed picture.",
              caption_justify="left")
    for col in ("metric", "A", "B", "A − B [95 % CI]", "p", "Holm p", "McNemar per seed",
                "verdict"):
        t.add_column(col, justify="left" if col in ("metric", "McNemar per seed", "verdict")
                     else "right")
    for c in comparisons:
        d = c.test.diff
        ci = f" [{d.lo:+.1f}, {d.hi:+.1f}]" if d.lo is not None else ""
        mc = "; ".join(f"seed {s}: {_p(m.p)} ({m.a_only}/{m.b_only})" for s, m in c.mcnemar)
        t.add_row(c.label, fmt_interval(c.a), fmt_interval(c.b), f"{d.mean:+.1f}{ci}",
                  _p(c.test.p), _p(c.p_holm), mc or "— (no per-example bits)",
                  c.verdict(a, b))
    return t


def verdict_lines(a: str, b: str, comparisons: list[MetricComparison]) -> list[str]:
    """One line per metric: the Holm-corrected verdict."""
    return [f"{c.label}: {c.verdict(a, b)} (Holm-adjusted p = {_p(c.p_holm)}, "
            f"{len(c.seeds)} paired seeds)" for c in comparisons]


def protocols_table(default: str) -> Table:
    from bench.models.registry import build_model, count_params
    from bench.protocols import PROTOCOLS
    t = Table(title="protocols")
    for col in ("name", "hash", "dataset", "teacher", "student", "epochs T/S", "seeds", "eps",
                "description"):
        t.add_column(col)
    for name in sorted(PROTOCOLS):
        p = PROTOCOLS[name]()
        t.add_row(name + (" (default)" if name == default else ""), p.hash, p.dataset,
                  f"{p.teacher_arch} ({count_params(build_model(p.teacher_arch, p)):,})",
                  f"{p.student_arch} ({count_params(build_model(p.student_arch, p)):,})",
                  f"{p.teacher_recipe.epochs}/{p.student_recipe.epochs}",
                  ",".join(map(str, p.seeds)), p.eval.eps_label, p.description)
    return t


def methods_table(specs: dict) -> Table:
    """Every registered method with its defaults, file and origin (builtin or entry point)."""
    from bench.provenance import relative_to_repo
    from bench.run.spec import TEACHER
    t = Table(title="methods")
    # names, families and origins are what a reader greps for: never wrapped or cut; a long
    # plugin path folds instead of squeezing them
    for col in ("name", "family"):
        t.add_column(col, no_wrap=True, min_width=len(col))
    for col in ("hyper-parameters", "description"):
        t.add_column(col, ratio=1)
    t.add_column("source", overflow="fold", ratio=1)
    t.add_column("from", no_wrap=True, min_width=len("entry point"))
    t.add_row(TEACHER, "reference", "", "The protocol's teacher itself (trained once, cached)",
              "bench/models/", "builtin")
    for name in sorted(specs):
        cls = specs[name].cls
        hp = ", ".join(f"{k}={v}" for k, v in cls.Hparams().model_dump().items())
        t.add_row(name, cls.family, hp, cls.description, relative_to_repo(cls.source_file()),
                  specs[name].origin)
    return t
