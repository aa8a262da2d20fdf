"""Errors btlab raises on purpose.

Every error a user can cause (bad file, unknown strategy, unreachable store, ...) is a subclass of
:class:`BtlabError`. The CLI prints ``str(error)`` as one line and exits with its ``exit_code`` (1 for bad input,
2 for a store, broker or exchange that cannot be reached). Anything else is a bug: the CLI prints its type and
message on one line, exit code 1, and the traceback only with ``btlab --debug``.
"""

from __future__ import annotations


class BtlabError(Exception):
    """Base class of every error btlab raises for bad input or an unavailable service."""

    exit_code: int = 1


class InvalidArgumentError(BtlabError, ValueError):
    """A value given by the user (timeframe, date bound, size, ...) is malformed or out of range."""


class DataValidationError(BtlabError, ValueError):
    """Input market data is malformed; nothing from it was written.

    Attributes:
        source: where the data came from (a file path, or a description such as ``"DataFrame"``).
        row: 1-based data row (not counting a header line), or ``None`` when the problem is the whole input.
        column: the offending column, or ``None``.
        reason: what is wrong, in words.
    """

    def __init__(self, source: str, reason: str, *, row: int | None = None, column: str | None = None) -> None:
        self.source = source
        self.row = row
        self.column = column
        self.reason = reason
        where = [source]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {reason}")


class NoDataError(BtlabError, LookupError):
    """The store holds no bars for the requested instrument, timeframe and range."""


class StoreUnavailableError(BtlabError, ConnectionError):
    """The store at ``address`` cannot be reached or opened.

    Attributes:
        address: the store address as the user gave it (credentials removed).
        reason: the underlying error in one line.
    """

    exit_code = 2

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot reach the store at {address}: {reason}")


class StoreConfigError(BtlabError, ValueError):
    """A store address is malformed or names an unknown backend."""


class UnknownStrategyError(BtlabError, LookupError):
    """A strategy name or ``module:Class`` reference does not resolve to a Backtrader strategy."""


class StrategyLoadError(BtlabError):
    """A strategy file or module exists but cannot be loaded: a syntax error (the message names the file and line)
    or an exception raised while importing it."""


class StrategyParameterError(BtlabError, ValueError):
    """A strategy parameter is unknown or its value cannot be converted to the parameter's type."""


class RunNotFoundError(BtlabError, LookupError):
    """No run with the given ``run_id`` is in the store."""


class WarmupError(BtlabError, ValueError):
    """The requested range holds fewer bars than the strategy needs before its first ``next()`` (its warm-up,
    Backtrader's minimum period); nothing was recorded."""


class DataGapError(BtlabError, ValueError):
    """Bars are missing inside the requested range beyond what a run accepts without ``allow_gaps``; nothing was
    recorded."""


class RunInterruptedError(BtlabError):
    """A run was stopped by a signal (SIGINT = Ctrl-C, SIGTERM); what ran is stored with status ``interrupted``.

    Attributes:
        run_id: the run's id.
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        exit_code: 128 + the signal number, as a shell reports a process ended by it: 130 (SIGINT), 143 (SIGTERM).
    """

    def __init__(self, message: str, *, run_id: str, signal_name: str, signal_number: int) -> None:
        self.run_id = run_id
        self.signal_name = signal_name
        self.exit_code = 128 + int(signal_number)
        super().__init__(message)
