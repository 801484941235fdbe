"""Errors a user can act on. The CLI prints their message as one line, with no traceback."""


class KdbenchError(Exception):
    """Base class: the message says what is wrong and how to fix it."""

    exit_code = 2


class UsageError(KdbenchError):
    """Bad command-line input: unknown protocol or method, malformed seeds, ..."""


class DataError(KdbenchError):
    """A dataset is missing or does not look like what the protocol expects."""


class RecordError(KdbenchError):
    """A result record is malformed, invalid, or cannot be written."""


class MethodError(KdbenchError):
    """A method plugin failed: import error, exception, non-finite loss, wrong output."""

    def __init__(self, method: str, source: str | None, problem: str):
        self.method, self.source, self.problem = method, source, problem
        where = f" ({source})" if source else ""
        super().__init__(f"method {method!r}{where}: {problem}")
