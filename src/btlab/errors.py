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

    The message reads ``SOURCE, row N, column 'C': REASON`` (row and column only where they apply).

    Attributes:
        source: where the data came from (a file path, or a description such as ``"DataFrame"``).
        row: where in the source, 1-based, or ``None`` when the problem is the whole input. For a CSV file (plain,
            gzip or zipped) it is the FILE LINE, counting the header line (so in a file with a header line, the
            first data row is row 2) and any blank lines, as an editor shows it; for a feather/parquet file, a
            frame, an API page or a message batch it is the 1-based position of the record.
        column: the offending column (the file's own name for it), or ``None``.
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


class StoreLockedError(StoreUnavailableError):
    """Another process holds the store's lock (DuckDB: one writing process, or readers while a writer waits).

    Attributes:
        pid: the process holding the lock, when the backend names it.
        command: that process's command line (from ``/proc/PID/cmdline``), when readable.
        waited: seconds spent retrying before giving up.
    """

    def __init__(self, address: str, *, pid: int | None, command: str | None, waited: float) -> None:
        self.pid = pid
        self.command = command
        self.waited = waited
        holder = "another process" if pid is None else f"process {pid}" + (f" ({command})" if command else "")
        super().__init__(
            address, f"the file is locked by {holder}; waited {waited:g} s (let it finish, or stop it, and retry)"
        )


class StoreConfigError(BtlabError, ValueError):
    """A store address is malformed, names an unknown backend, or names a file that is not a store."""


class StoreNotFoundError(BtlabError, FileNotFoundError):
    """A store opened read-only does not exist (nothing was created).

    Attributes:
        address: the store address.
    """

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        super().__init__(reason)


class TimeframeMismatchError(InvalidArgumentError):
    """Bars are spaced by a whole multiple of the timeframe given for them (e.g. 1h bars imported as ``1m``).

    Attributes:
        source: the file or series.
        given: the timeframe given (ccxt string).
        detected: the data's spacing as a timeframe (ccxt string).
        missing: bars that would count as missing with the given timeframe.
    """

    def __init__(self, source: str, given: str, detected: str, missing: int) -> None:
        self.source = source
        self.given = given
        self.detected = detected
        self.missing = missing
        super().__init__(
            f"{source}: every step between consecutive bars is a whole multiple of {detected} and the median step "
            f"is {detected}, but the timeframe given is {given} ({missing:,} {given} bars would count as missing): "
            f"did you mean --timeframe {detected}? (to store them as {given} bars anyway: "
            f"--allow-timeframe-mismatch, in Python allow_timeframe_mismatch=True)"
        )


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


class ClusterUnavailableError(BtlabError, ConnectionError):
    """The Dask scheduler at ``address`` cannot be reached (a parameter sweep's ``scheduler``/
    ``BTLAB_DASK_SCHEDULER``).

    Attributes:
        address: the scheduler address as given; reason: the underlying error in one line.
    """

    exit_code = 2

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot reach the Dask scheduler at {address}: {reason}")


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
