"""Fault injection for the crash-and-resume tests: `KDBENCH_FAULT=point[,point...]` makes the
process group die with SIGKILL when a run reaches a named point, as a power cut would.

Points are reached by `kdbench run`: `train-epoch:<method>:<seed>:<epoch>` after an epoch's state
is saved, and `eval:<method>:<seed>:<evaluator>` before an evaluator runs. Unset (always, outside
tests), `reached()` is one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "KDBENCH_FAULT"


def reached(point: str) -> None:
    wanted = os.environ.get(ENV)
    if wanted and point in wanted.split(","):
        os.killpg(os.getpgid(0), signal.SIGKILL)
