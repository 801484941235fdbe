"""Progress display: Rich bars on a terminal, plain log lines when quiet (CI, logs, tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


def make_console(stderr: bool = False) -> Console:
    """Messages never wrap (one greppable line each); tables get room in logs and pipes."""
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, soft_wrap=True, width=200)
    return console


class Reporter:
    """Shows what a run is doing. `quiet=True` prints only `log()` lines, never bars."""

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or make_console(stderr=True)
        self.quiet = quiet or not self.console.is_terminal
        self._progress: Progress | None = None

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False)

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Keep one set of bars on screen for the whole run."""
        if self.quiet:
            yield
            return
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=self.console, transient=False)
        with self._progress:
            try:
                yield
            finally:
                self._progress = None

    def bar(self, description: str, total: int) -> Task:
        """A bar to `advance()`, `info()`, `reset()` and finally `close()`."""
        if self._progress is None:
            return Task(None, None)
        return Task(self._progress, self._progress.add_task(description, total=total, info=""))

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Task]:
        """A bar that disappears when done."""
        bar = self.bar(description, total)
        try:
            yield bar
        finally:
            bar.close()


class Task:
    def __init__(self, progress: Progress | None, tid):
        self._p, self._tid = progress, tid

    def advance(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._tid, n)

    def info(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._tid, info=text)

    def reset(self, description: str, total: int, completed: int = 0, info: str = "") -> None:
        if self._p is not None:
            self._p.reset(self._tid, total=total, completed=completed, description=description,
                          info=info)

    def close(self) -> None:
        if self._p is not None:
            self._p.remove_task(self._tid)
            self._p = None
