"""The Deployment view: each method's student as it ships, exported to ONNX, quantised to int8 and
run by ONNX Runtime on the CPU (the records' `metrics.deployment`, bench/eval/deployment.py).

Records made before the deployment evaluation existed have no such section: their rows show —
here, and every other view shows them as before.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from leaderboard import plots, tables
from leaderboard.metrics import BY_KEY, DEPLOYMENT, MethodRow
from leaderboard.views import table

# The table's columns: the eager CPU latency (the `efficiency` section) next to the ONNX ones.
COLUMNS = ("rank", "method", "flags", "family", *(m.key for m in DEPLOYMENT), "cpu_ms", "seeds")
DEFAULT_RANK = "int8_robust"


def errors(rows: list[MethodRow]) -> pd.DataFrame:
    """One line per record whose deployment section carries an error."""
    out = [{"method": r.method, "seed": rec.seed, "error": rec.metrics.deployment.error}
           for r in rows for rec in r.records
           if rec.metrics.deployment is not None and rec.metrics.deployment.error]
    return pd.DataFrame(out, columns=["method", "seed", "error"])


def rank_key(rank_by: str) -> str:
    """The sidebar's metric when it is a deployment metric, else int8 robust accuracy."""
    return rank_by if BY_KEY[rank_by].group == "deployment" else DEFAULT_RANK


def _column_config(by: str) -> dict:
    cfg = {"rank": st.column_config.NumberColumn(
        "rank", width=50, help=f"Among KD methods by {BY_KEY[by].label}; reference rows are "
                               "unranked")}
    for key in COLUMNS:
        if key in BY_KEY:
            cfg[key] = st.column_config.NumberColumn(BY_KEY[key].label, help=BY_KEY[key].help)
    return cfg


def deployment(rows: list[MethodRow], visible: list[MethodRow], rank_by: str) -> None:
    failed = errors(rows)
    if all(r.counts["int8_clean"] == 0 for r in rows) and failed.empty:
        st.info("No record of this protocol carries a deployment section (ONNX Runtime, int8): "
                "they were made before kdbench measured the deployed model, or under a protocol "
                "that turns it off. Rerun them to measure it.", icon="📦")
        return
    by = rank_key(rank_by)
    numbers, text = tables.leaderboard(rows, by)
    keep = numbers["method"].isin({r.method for r in visible})
    numbers, text = numbers[keep].reset_index(drop=True), text[keep].reset_index(drop=True)
    present = [c for c in COLUMNS if c in numbers.columns
               and (c not in BY_KEY or numbers[c].notna().any())]
    if not any(r.flags for r in rows):
        present.remove("flags")
    table(tables.styled(numbers, text), column_order=present, column_config=_column_config(by))
    st.caption(f"Ranked by {BY_KEY[by].label}. int8: ONNX Runtime's static quantisation (QDQ, "
               "per-channel weights); accuracies of the int8 model on the same examples as the "
               "fp32 one; a drop is fp32 minus int8 in points (positive: quantisation lost "
               "accuracy). PGD-transfer: the fp32 model's own PGD examples; Square: the black-box "
               "attack run against each model. Latencies are per architecture, batch 1, CPU.")
    left, right = st.columns(2)
    for col, cost, title in ((left, "int8_ms", "int8 CPU latency, batch 1 (ms)"),
                             (right, "int8_size", "int8 .onnx size (bytes)")):
        points = tables.tradeoff(visible, cost, "int8_robust")
        with col:
            if points.empty:
                st.info(f"No method has both {BY_KEY['int8_robust'].label} and "
                        f"{BY_KEY[cost].label}.")
                continue
            st.altair_chart(plots.tradeoff(points, title, BY_KEY["int8_robust"].label,
                                           si_units=cost == "int8_size"), width="stretch")
    st.caption("The dashed staircase is the Pareto frontier: no other method's int8 model is both "
               "cheaper and more robust.")
    if not failed.empty:
        st.warning(f"{len(failed)} record(s) could not deploy their model; the rest of each "
                   "record stands.", icon="⚠️")
        table(failed, column_config={"error": st.column_config.TextColumn(width="large")})
