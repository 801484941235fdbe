"""One method under several teachers: protocols that differ only in the teacher (same data,
student, recipe, seeds and evaluation: `bench.protocols.student_side`), side by side.

mnist5k and mnist5k-robust are such a pair: the same student distilled from a teacher trained on
labels and from one trained adversarially. A method's rows there answer "does this method pass
on the teacher's robustness?"; the teachers' own accuracies are shown above them.
"""

from __future__ import annotations

import pandas as pd

from bench.protocols import PROTOCOLS, student_side
from leaderboard.data import Loaded, ProtocolKey, Status
from leaderboard.metrics import ACCURACIES, MethodRow
from leaderboard.tables import MISSING, fmt_cell, fmt_diff

TEACHER = "teacher"  # the teacher's own row in every protocol's records (bench.run.spec.TEACHER)
TEACHER_METRICS = (("teacher clean %", "clean"), ("teacher PGD %", "pgd"),
                   ("teacher robust %", "robust"))


def variants(loaded: Loaded, key: ProtocolKey) -> list[ProtocolKey]:
    """`key` first, then every other protocol version with records that differs from it only in
    the teacher; empty when there is no other. Only current definitions of registered protocols
    are compared (an outdated version's student side is not known)."""
    def comparable(k: ProtocolKey) -> bool:
        # a derived protocol (a zoo teacher: cifar10+robustbench-X) is not a registered name
        return k.status is Status.REGISTERED and not k.data and k.name in PROTOCOLS
    if not comparable(key):
        return []
    side = student_side(PROTOCOLS[key.name]())
    others = [k for k in loaded.protocols
              if k != key and comparable(k) and student_side(PROTOCOLS[k.name]()) == side]
    return [key, *others] if others else []


def label(key: ProtocolKey) -> str:
    """Column title: the protocol and how its teacher is trained (its `teacher_method`)."""
    return f"{key.name} (teacher: {PROTOCOLS[key.name]().teacher_method})"


def _row(rows: list[MethodRow], method: str) -> MethodRow | None:
    return next((r for r in rows if r.method == method), None)


def methods(rows_by_key: dict[ProtocolKey, list[MethodRow]]) -> list[str]:
    """Methods with a row under at least two of the protocols, by name."""
    counts: dict[str, int] = {}
    for rows in rows_by_key.values():
        for r in rows:
            if r.method != TEACHER:
                counts[r.method] = counts.get(r.method, 0) + 1
    return sorted(m for m, n in counts.items() if n >= 2)


def table(method: str, rows_by_key: dict[ProtocolKey, list[MethodRow]]
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, cell text): one column per protocol, one line per metric; first the teachers'
    own accuracies, then `method`'s; with two protocols a last column, second minus first.
    Metrics no column has (AutoAttack not run, ...) are left out."""
    keys = list(rows_by_key)
    lines = [(title, TEACHER, key) for title, key in TEACHER_METRICS]
    lines += [(m.label, method, m.key) for m in ACCURACIES]
    data, text = [], []
    for title, who, metric in lines:
        rows = [_row(rows_by_key[k], who) for k in keys]
        stats = [r.stats[metric] if r is not None else None for r in rows]
        if all(s is None for s in stats):
            continue
        d, t = {"metric": title}, {"metric": title}
        for k, r, s in zip(keys, rows, stats):
            d[label(k)] = s.mean if s is not None else None
            t[label(k)] = fmt_cell(r, metric) if r is not None else MISSING
        if len(keys) == 2:
            diff = (stats[1].mean - stats[0].mean
                    if stats[0] is not None and stats[1] is not None else None)
            d["difference"], t["difference"] = diff, fmt_diff(metric, diff)
        data.append(d)
        text.append(t)
    numbers = pd.DataFrame(data)
    value_columns = [c for c in numbers.columns if c != "metric"]
    numbers[value_columns] = numbers[value_columns].astype("float64")
    return numbers, pd.DataFrame(text, columns=numbers.columns)
