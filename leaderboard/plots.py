"""Altair charts of the leaderboard. Inputs are the long-format frames of `leaderboard.tables`.

Text from records (method names) only ever reaches charts as data fields, which Vega draws as
text, never as HTML.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from leaderboard.pareto import frontier

# One colour per family, stable across charts; families not listed get Vega's defaults.
FAMILY_COLOURS = {"reference": "#7f7f7f", "logit": "#1f77b4", "feature": "#2ca02c",
                  "adversarial": "#d62728"}


def _family_colour(families: list[str]) -> alt.Color:
    known = [f for f in FAMILY_COLOURS if f in families]
    other = sorted(set(families) - set(known))
    palette = ["#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e"]
    domain = known + other
    colours = [FAMILY_COLOURS[f] for f in known] + [palette[i % len(palette)]
                                                   for i in range(len(other))]
    return alt.Color("family:N", title="family", scale=alt.Scale(domain=domain, range=colours))


def wide_range(values: pd.Series, ratio: float = 10.0) -> bool:
    """Costs spanning more than `ratio`x read better on a log axis."""
    v = values[values > 0]
    return len(v) > 1 and v.max() / v.min() > ratio


def tradeoff(points: pd.DataFrame, x_title: str, y_title: str, log_x: bool | None = None,
             si_units: bool = False) -> alt.LayerChart:
    """Accuracy against cost, one point per method, with the Pareto frontier as a staircase.

    A point is on the frontier when no other method is at least as cheap and as accurate.
    """
    if log_x is None:
        log_x = wide_range(points["cost"])
    front_idx = frontier(list(zip(points["cost"], points["acc"])))
    front = points.iloc[front_idx].sort_values("cost")
    points = points.assign(kind=points["reference"].map({True: "reference", False: "method"}),
                           on_frontier=[i in front_idx for i in range(len(points))])
    # SI prefixes suit counts and bytes (33k, 1.5M), not milliseconds (they would read "150m").
    x = alt.X("cost:Q", title=x_title, axis=alt.Axis(format="~s") if si_units else alt.Axis(),
              scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False))
    y = alt.Y("acc:Q", title=y_title, scale=alt.Scale(zero=False, nice=True))
    tooltip = [alt.Tooltip("method:N"), alt.Tooltip("family:N"),
               alt.Tooltip("acc_text:N", title=y_title), alt.Tooltip("cost_text:N", title=x_title),
               alt.Tooltip("on_frontier:N", title="on the Pareto frontier")]
    dots = alt.Chart(points).mark_point(filled=True, size=110, opacity=0.9).encode(
        x=x, y=y, color=_family_colour(points["family"].tolist()),
        shape=alt.Shape("kind:N", title="row", scale=alt.Scale(
            domain=["method", "reference"], range=["circle", "diamond"])),
        tooltip=tooltip)
    names = alt.Chart(points).mark_text(align="left", dx=8, dy=-8, fontSize=12).encode(
        x=x, y=y, text="method:N")
    line = alt.Chart(front).mark_line(interpolate="step-after", strokeDash=[5, 4],
                                      color="#555", strokeWidth=1.5).encode(x=x, y=y)
    return alt.layer(line, dots, names).properties(height=380)


def corruption_heatmap(cells: pd.DataFrame) -> alt.LayerChart:
    """Methods x corruptions, coloured by accuracy (mean over seeds), values written in."""
    order = (cells.groupby("method")["acc"].mean().sort_values(ascending=False).index.tolist())
    lo, hi = float(cells["acc"].min()), float(cells["acc"].max())
    mid = (lo + hi) / 2
    base = alt.Chart(cells).encode(
        # Every corruption named: at 19 columns Altair would drop every other label.
        x=alt.X("column:N", title=None, sort=None,
                axis=alt.Axis(labelAngle=-40, labelOverlap=False, labelLimit=160)),
        y=alt.Y("method:N", title=None, sort=order))
    rect = base.mark_rect().encode(
        color=alt.Color("acc:Q", title="accuracy %", scale=alt.Scale(scheme="viridis",
                                                                       domain=[lo, hi])),
        tooltip=[alt.Tooltip("method:N"), alt.Tooltip("column:N", title="corruption"),
                 alt.Tooltip("text:N", title="accuracy %"), alt.Tooltip("seeds:Q")])
    # viridis runs dark to light: white text on the low (dark) end, black on the high end
    text = base.mark_text(fontSize=12).encode(
        text="text:N",
        color=alt.condition(alt.datum.acc < mid, alt.value("white"), alt.value("black")))
    # A band height per method, not a chart height: any number of methods stays legible.
    return alt.layer(rect, text).properties(height=alt.Step(30))


def eps_curves(curves: pd.DataFrame) -> alt.LayerChart:
    """PGD accuracy against the attack radius, one line per method."""
    x = alt.X("eps_value:Q", title="eps (L-inf)")
    y = alt.Y("acc:Q", title="PGD accuracy %", scale=alt.Scale(domain=[0, 100]))
    tooltip = [alt.Tooltip("method:N"), alt.Tooltip("eps:N"),
               alt.Tooltip("acc:Q", format=".1f", title="accuracy %"),
               alt.Tooltip("std:Q", format=".1f", title="std"), alt.Tooltip("seeds:Q")]
    base = alt.Chart(curves).encode(x=x, y=y, color=alt.Color("method:N", title="method"),
                                    tooltip=tooltip)
    return alt.layer(base.mark_line(), base.mark_point(filled=True, size=50)).properties(
        height=360)


OUTCOME_COLOURS = {"win": "#2ca02c", "tie": "#bdbdbd", "loss": "#d62728", "not tested": "#f0f0f0",
                   "—": "#ffffff"}


def significance_matrix(cells: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Methods x methods: does the row method beat the column method on `metric` (paired t-test
    over seeds at 0.05)? Green win, grey tie, red loss; cells name the outcome."""
    order = cells["row"].drop_duplicates().tolist()
    base = alt.Chart(cells).encode(
        x=alt.X("column:N", title="column method", sort=order,
                axis=alt.Axis(labelAngle=-40, labelOverlap=False, labelLimit=160)),
        y=alt.Y("row:N", title="row method", sort=order))
    rect = base.mark_rect(stroke="white").encode(
        color=alt.Color("outcome:N", title=f"row vs column ({metric})",
                        scale=alt.Scale(domain=list(OUTCOME_COLOURS),
                                        range=list(OUTCOME_COLOURS.values()))),
        tooltip=[alt.Tooltip("row:N"), alt.Tooltip("column:N"), alt.Tooltip("outcome:N"),
                 alt.Tooltip("diff:Q", format="+.2f", title="mean paired difference"),
                 alt.Tooltip("p:Q", format=".2g", title="paired t-test p")])
    text = base.mark_text(fontSize=11).encode(text="text:N")
    return alt.layer(rect, text).properties(height=alt.Step(30), width=alt.Step(60))
