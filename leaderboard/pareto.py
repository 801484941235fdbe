"""The Pareto frontier of a cost/accuracy trade-off: lower cost and higher accuracy are better."""

from __future__ import annotations

import math
from collections.abc import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """`a` is at least as cheap and as accurate as `b`, and strictly better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, accuracy) points no other point dominates, cheapest first.

    Points with a missing (None/NaN) coordinate are ignored. Identical points are all kept:
    neither dominates the other. O(n log n): sweep by cost, keeping the best accuracy so far.
    """
    valid = [i for i, (x, y) in enumerate(points)
             if x is not None and y is not None and not math.isnan(x) and not math.isnan(y)]
    order = sorted(valid, key=lambda i: (points[i][0], -points[i][1]))
    out: list[int] = []
    best: tuple[float, float] | None = None  # the last frontier point
    for i in order:
        p = points[i]
        if best is None or p[1] > best[1] or p == best:
            out.append(i)
            best = p
    return out
