"""DataFrames the app shows and exports, built from aggregated `MethodRow`s.

Tables carry numbers (so sorting a column sorts by value) and, separately, the text each cell
shows ("97.3 ± 0.4", "385.8 kB", "—"); `styled()` joins the two with a pandas Styler, whose
display values Streamlit renders while it keeps sorting on the numbers.
"""

from __future__ import annotations

import math
from fractions import Fraction
from urllib.parse import quote

import pandas as pd
from pandas.io.formats.style import Styler

from bench.records.aggregate import Stat
from bench.records.significance import fmt_interval
from bench.records.significance import spread as seed_spread
from bench.records.stats import Interval
from leaderboard.metrics import BY_KEY, METRICS, REFERENCE_FAMILY, MethodRow, rank, rank_ranges

MISSING = "—"  # shown for anything a record does not carry; never 0
BYTES = ("size", "int8_size", "onnx_size")  # metrics shown as kB / MB
POINTS = ("drop_clean", "drop_corruptions", "drop_transfer", "drop_square", "drop_robust")


# -- cell text ---------------------------------------------------------------------------------
def _decimals(x: float, significant: int = 3) -> int:
    return max(0, significant - 1 - math.floor(math.log10(abs(x)))) if x else 1


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def fmt_stat(key: str, stat: Stat | None, intervals: bool = True) -> str:
    """A metric as the table shows it: mean ± half-width of its 95 % t-interval over seeds (±
    only with several seeds, and only with `intervals`: rows without per-example evidence show
    plain means)."""
    if stat is None:
        return MISSING
    if key == "params":
        return f"{stat.mean:,.0f}"
    if key in BYTES:
        return fmt_bytes(stat.mean)
    if key == "flops":
        return fmt_count(stat.mean)
    iv = stat.interval if intervals else Interval(stat.mean, None, None, len(stat.values))
    # accuracies to 0.1 point; mCE and latencies to 3 significant digits, the ± to the same place
    return fmt_interval(iv, 1 if BY_KEY[key].accuracy or key in POINTS else _decimals(stat.mean))


def fmt_diff(key: str, diff: float | None) -> str:
    if diff is None:
        return MISSING
    sign = "+" if diff >= 0 else "−"
    if BY_KEY[key].accuracy or key in POINTS:
        return f"{sign}{abs(diff):.1f}"
    if key == "params":
        return f"{sign}{abs(diff):,.0f}"
    if key in BYTES:
        return sign + fmt_bytes(abs(diff))
    if key == "flops":
        return sign + fmt_count(abs(diff))
    return f"{sign}{abs(diff):.{_decimals(diff)}f}"


def fmt_cell(row: MethodRow, key: str) -> str:
    text = fmt_stat(key, row.stats[key], row.evidence)
    n, have = len(row.seeds), row.counts[key]
    return f"{text} ({have}/{n} seeds)" if 0 < have < n else text


def source_url(repo_url: str | None, source: str) -> str | None:
    """Link to the method's file under `repo_url`, or None when there is no sensible link."""
    if not repo_url or not repo_url.startswith(("https://", "http://")):
        return None
    if source.startswith(("/", "..")) or ":" in source:  # not a path inside the repository
        return None
    return f"{repo_url.rstrip('/')}/{quote(source)}"


# -- the leaderboard table ---------------------------------------------------------------------


def leaderboard(rows: list[MethodRow], rank_by: str, repo_url: str | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, cell text) for the main table, best first by `rank_by`; same index and columns.

    Reference rows sit where their value puts them, without a rank: they are context.
    """
    ranks, ranges = rank(rows, rank_by), rank_ranges(rows, rank_by)
    sign = -1 if BY_KEY[rank_by].higher_is_better else 1
    missing = math.inf

    def order(r: MethodRow) -> tuple:
        s = r.stats[rank_by]
        return (s is None, sign * s.mean if s is not None else missing, r.method)

    data, text = [], []
    for r in sorted(rows, key=order):
        url = source_url(repo_url, r.source)
        # badges right after the name, where a reader looks before trusting the numbers
        rr = ranges.get(r.method)
        d = {"rank": ranks.get(r.method), "rank range": rr.best if rr else None,
             "method": r.method, "flags": r.flags, "family": r.family}
        t = {"rank": str(ranks[r.method]) if r.method in ranks else MISSING,
             "rank range": str(rr) if rr else MISSING,
             "method": r.method + ("" if r.evidence else " †"), "flags": r.flags,
             "family": r.family}
        for m in METRICS:
            d[m.key] = r.stats[m.key].mean if r.stats[m.key] is not None else None
            t[m.key] = fmt_cell(r, m.key)
        d["seeds"], t["seeds"] = len(r.seeds), str(len(r.seeds))
        d["source"] = url or r.source
        t["source"] = r.source
        data.append(d)
        text.append(t)
    numbers = pd.DataFrame(data)
    if not numbers.empty:
        numbers["rank"] = numbers["rank"].astype("Int64")
        numbers["rank range"] = numbers["rank range"].astype("Int64")  # sorts by the best rank
        for m in METRICS:
            numbers[m.key] = numbers[m.key].astype("float64")
    return numbers, pd.DataFrame(text, index=numbers.index, columns=numbers.columns)


def styled(numbers: pd.DataFrame, text: pd.DataFrame) -> Styler:
    """Numbers underneath, cell text on top; reference rows (by family) in a muted tint."""
    reference = (numbers["family"] == REFERENCE_FAMILY).to_dict() if "family" in numbers else {}
    styler = numbers.style
    for col in numbers.columns:
        for i in numbers.index:
            styler = styler.format(lambda _, s=text.at[i, col]: s, subset=pd.IndexSlice[[i], [col]])
    tint = "background-color: rgba(128, 128, 128, 0.14); color: rgb(80, 80, 90)"
    return styler.apply(lambda row: [tint if reference.get(row.name) else ""] * len(row), axis=1)


def csv(rows: list[MethodRow], rank_by: str, protocol: str, protocol_hash: str) -> str:
    """The table as machine-readable CSV: mean, std, the 95 % t-interval (rows with per-example
    evidence) and seed count per metric, the rank and rank range; empty where absent."""
    ranks, ranges = rank(rows, rank_by), rank_ranges(rows, rank_by)
    out = []
    for r in rows:
        rr = ranges.get(r.method)
        d = {"protocol": protocol, "protocol_hash": protocol_hash,
             f"rank_by_{rank_by}": ranks.get(r.method),
             f"rank_range_by_{rank_by}": str(rr) if rr else None,
             "rank_best": rr.best if rr else None, "rank_worst": rr.worst if rr else None,
             "method": r.method, "family": r.family, "seeds": " ".join(map(str, r.seeds)),
             "evidence": r.evidence}
        for m in METRICS:
            s = r.stats[m.key]
            iv = s.interval if s and r.evidence else None
            d[f"{m.key}_mean"] = s.mean if s else None
            d[f"{m.key}_std"] = s.std if s else None
            d[f"{m.key}_ci_low"] = iv.lo if iv else None
            d[f"{m.key}_ci_high"] = iv.hi if iv else None
            d[f"{m.key}_n"] = r.counts[m.key]
        d.update(unreliable=r.unreliable, unreliable_reasons="; ".join(r.unreliable_reasons),
                 verified=r.verified, source=r.source,
                 source_sha256=" ".join(r.source_sha256))
        out.append(d)
    frame = pd.DataFrame(out)
    for col in (f"rank_by_{rank_by}", "rank_best", "rank_worst"):
        frame[col] = frame[col].astype("Int64")
    return frame.sort_values([f"rank_by_{rank_by}", "method"], na_position="last").to_csv(
        index=False)


# -- per-method views --------------------------------------------------------------------------
def seeds(row: MethodRow) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One line per seed, every metric as recorded (missing stays missing), training and checks."""
    data, text = [], []
    for i, rec in enumerate(row.records):
        d: dict = {"seed": rec.seed}
        t: dict = {"seed": str(rec.seed)}
        for m in METRICS:
            v = row.per_seed[m.key][i]
            d[m.label] = v
            t[m.label] = fmt_stat(m.key, None if v is None else Stat.of([v]))
        tr = rec.training  # None: a zoo teacher's row (not trained here)
        loss, wall = (None, None) if tr is None else (tr.final_epoch_loss, tr.wall_s)
        d["final loss"], t["final loss"] = loss, MISSING if loss is None else f"{loss:.4g}"
        d["train s"], t["train s"] = wall, MISSING if wall is None else f"{wall:.1f}"
        d["eval s"], t["eval s"] = rec.eval_wall_s, f"{rec.eval_wall_s:.1f}"
        d["unreliable"] = rec.metrics.unreliable
        t["unreliable"] = MISSING if rec.metrics.unreliable is None else str(rec.metrics.unreliable)
        d["finished"] = t["finished"] = rec.provenance.finished_at.isoformat(timespec="seconds")
        data.append(d)
        text.append(t)
    numbers = pd.DataFrame(data)
    for m in METRICS:
        numbers[m.label] = numbers[m.label].astype("float64")
    return numbers, pd.DataFrame(text, columns=numbers.columns)


def spread(row: MethodRow) -> pd.DataFrame:
    """Per accuracy measure with per-example bits: the std over seeds and the mean binomial SE."""
    out = []
    for key in ("clean", "corruptions", "fgsm", "pgd", "autoattack", "robust"):
        s = seed_spread(row.records, key)
        if s.seed_sd is not None and s.sampling_se is not None:
            out.append({"metric": BY_KEY[key].label, "std over seeds": round(s.seed_sd, 2),
                        "within-seed SE": round(s.sampling_se, 2)})
    return pd.DataFrame(out, columns=["metric", "std over seeds", "within-seed SE"])


def provenance(row: MethodRow) -> pd.DataFrame:
    """Library versions and machine per seed, one column per seed."""
    cols = {f"seed {r.seed}": r.provenance.model_dump(mode="json") for r in row.records}
    return pd.DataFrame(cols).astype("string")


# -- plot data ---------------------------------------------------------------------------------
def corruptions(rows: list[MethodRow], by_severity: bool) -> pd.DataFrame:
    """Long format: method, column (corruption, or corruption and severity), mean accuracy."""
    out = []
    for r in rows:
        cells: dict[str, list[float]] = {}
        for rec in r.records:
            for name, accs in rec.metrics.corruptions.items():
                if by_severity:
                    for sev, acc in enumerate(accs, start=1):
                        cells.setdefault(f"{name} s{sev}", []).append(acc)
                else:
                    cells.setdefault(name, []).append(sum(accs) / len(accs))
        for col, values in cells.items():
            s = Stat.of(values)
            out.append({"method": r.method, "family": r.family, "column": col, "acc": s.mean,
                        "text": f"{s.mean:.1f}", "seeds": len(values)})
    return pd.DataFrame(out, columns=["method", "family", "column", "acc", "text", "seeds"])


def eps_value(label: str) -> float | None:
    """'8/255' -> 0.0314, '0.1' -> 0.1; None if unreadable."""
    try:
        return float(Fraction(label.strip()))
    except (ValueError, ZeroDivisionError):
        return None


def eps_curves(rows: list[MethodRow]) -> pd.DataFrame:
    """Long format: method, eps (label and value), accuracy mean and std over seeds."""
    out = []
    for r in rows:
        points: dict[str, list[float]] = {}
        for rec in r.records:
            for p in rec.metrics.eps_curve or []:
                points.setdefault(p.eps, []).append(p.acc)
        for label, values in points.items():
            s = Stat.of(values)
            out.append({"method": r.method, "family": r.family, "eps": label,
                        "eps_value": eps_value(label), "acc": s.mean, "std": s.std,
                        "seeds": len(values)})
    return pd.DataFrame(out, columns=["method", "family", "eps", "eps_value", "acc", "std",
                                      "seeds"])


def tradeoff(rows: list[MethodRow], cost: str, acc: str) -> pd.DataFrame:
    """Points of the cost/accuracy scatter: rows that have both numbers."""
    out = []
    for r in rows:
        c, a = r.stats[cost], r.stats[acc]
        if c is None or a is None:
            continue
        out.append({"method": r.method, "family": r.family, "reference": r.is_reference,
                    "cost": c.mean, "acc": a.mean, "cost_text": fmt_cell(r, cost),
                    "acc_text": fmt_cell(r, acc)})
    return pd.DataFrame(out, columns=["method", "family", "reference", "cost", "acc",
                                      "cost_text", "acc_text"])

