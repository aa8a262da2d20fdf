"""Import bar files into a store: one series per file, staged chunk by chunk then published.

Formats, times, sizes and errors: :mod:`btlab.marketdata.sources.files.reader`.

Timeframe
---------
:func:`import_bars` refuses a timeframe that is a whole fraction of the data's spacing -- every step between
consecutive bars a multiple of some longer timeframe, and the median step exactly that (1h bars imported as
``1m`` would otherwise be stored as 1m bars with 59 "missing" bars in every hour) -- with
:class:`~btlab.errors.TimeframeMismatchError` asking whether that longer timeframe was meant, unless
``allow_timeframe_mismatch=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError, TimeframeMismatchError
from btlab.marketdata.quality.gaps import find_gaps
from btlab.marketdata.sources.files.reader import DEFAULT_CHUNK_BYTES, BarChunks, check_bars_file
from btlab.model.sessions import check_session, in_session
from btlab.model.timeframe import Timeframe
from btlab.model.venue import resolve_venue

if TYPE_CHECKING:
    from btlab.store.base import Store

__all__ = [
    "ImportReport",
    "SpacingStats",
    "data_spacing",
    "exchange_of",
    "import_bars",
    "infer_exchange",
    "stage_bars_file",
]

#: Checked bars gathered before they are written to the staging table (about 70 bytes a bar).
STAGE_ROWS = 100_000

# ---------------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImportReport:
    """What :func:`import_bars` wrote.

    Attributes:
        path: the file imported.
        exchange, symbol, timeframe: the series written (ccxt id or equity venue, symbol, ccxt timeframe string).
        rows: number of bars in the file (all were written; re-writing existing bars replaces them).
        first, last: open time of the first and last bar (UTC :class:`pandas.Timestamp`).
        gaps: number of missing bars between ``first`` and ``last`` for the timeframe under the venue's calendar
            (see :func:`btlab.marketdata.quality.gaps.find_gaps`); 0 for a complete series. For exchange venues only
            regular-session slots count: nights, weekends, holidays and the hours after an early close are not
            missing.
        calendar: the calendar the gaps were counted with: ``"24/7"`` or an exchange calendar code (``"XNYS"``).
        outside_session: bars outside the regular sessions (extended hours; for ``24/7`` always 0). They are
            stored like every other bar.
        assumed: what was inferred rather than given (e.g. the exchange from a data.binance.vision file name), as
            words for the user; None when nothing was.
    """

    path: Path
    exchange: str
    symbol: str
    timeframe: str
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    gaps: int
    calendar: str = "24/7"
    outside_session: int = 0
    assumed: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.path.name}: {self.rows} {self.timeframe} bars of {self.exchange} {self.symbol}, "
            f"{self.first} .. {self.last}, {self.gaps} missing ({self.calendar})"
        )


class SpacingStats:
    """What :func:`data_spacing` needs of a series of bar open times, gathered chunk by chunk (constant memory).

    Feed strictly increasing open times in order with :meth:`add`; :meth:`spacing` then answers like
    :func:`data_spacing` on all of them: the steps' greatest common divisor, the smallest step and how many steps
    equal it (the median step is the greatest common divisor exactly when more than half of the steps equal it,
    as no step is smaller), the first open time (weekly bars open on Mondays) and the count.
    """

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None
        self.last: int | None = None
        self.gcd = 0
        self.min_step: int | None = None
        self.at_min = 0

    def add(self, ts: pd.Series | pd.DatetimeIndex | np.ndarray) -> None:
        """Open times (``datetime64``, or int64 epoch ns) following the ones added before."""
        ns = ts if isinstance(ts, np.ndarray) and ts.dtype == np.int64 else pd.DatetimeIndex(ts).as_unit("ns").asi8
        if len(ns) == 0:
            return
        seq = ns if self.last is None else np.concatenate(([self.last], ns))
        steps = np.diff(seq)
        if self.first is None:
            self.first = int(ns[0])
        self.last = int(ns[-1])
        self.count += len(ns)
        if steps.size:
            self.gcd = int(np.gcd.reduce(np.append(steps, self.gcd)))
            low = int(steps.min())
            here = int((steps == low).sum())
            if self.min_step is None or low < self.min_step:
                self.min_step, self.at_min = low, here
            elif low == self.min_step:
                self.at_min += here

    def spacing(self, timeframe: Timeframe | str) -> Timeframe | None:
        """:func:`data_spacing` of every open time added."""
        tf = Timeframe.parse(timeframe)
        if self.count < 3:
            return None
        step, n_steps = self.gcd, self.count - 1
        at_gcd = self.at_min if self.min_step == step else 0
        if step <= tf.nanos or step % 1_000_000_000 or not 2 * at_gcd > n_steps:  # median == gcd
            return None
        seconds = step // 1_000_000_000
        found = Timeframe.from_seconds(seconds)
        if found.value.endswith("w") and not found.is_aligned(int(self.first or 0)):
            found = Timeframe.parse(f"{seconds // 86_400}d")
        return found


def data_spacing(ts: pd.Series | pd.DatetimeIndex, timeframe: Timeframe | str) -> Timeframe | None:
    """The longer timeframe bars given as ``timeframe`` are really spaced by, or None if they fit ``timeframe``.

    Returns ``T`` (longer than ``timeframe``) when every step between consecutive bars is a whole multiple of
    ``T`` and the median step is exactly ``T`` -- the signature of bars of timeframe ``T`` (their gaps are whole
    ``T`` windows too). ``T`` is the greatest common divisor of the steps, named in the largest ccxt unit that
    divides it (``1w`` only when the bars open on Mondays, as weekly bars do). Needs at least 3 bars.
    (:class:`SpacingStats` answers the same chunk by chunk.)

    Args:
        ts: strictly increasing bar open times.
        timeframe: the timeframe the bars are said to have.
    """
    stats = SpacingStats()
    stats.add(pd.DatetimeIndex(ts))
    return stats.spacing(timeframe)


def infer_exchange(path: str | Path) -> str | None:
    """The exchange a bar file's name implies, or None.

    A data.binance.vision kline file name (``BTCUSDT-1m-2024-01-01.zip``, ``.csv``) -> ``"binance"``. Nothing
    else is inferred: other files need the exchange to be given.
    """
    from btlab.marketdata.sources.binance_vision.importer import parse_vision_name

    try:
        _, kind, _ = parse_vision_name(Path(path).name)
    except ValueError:
        return None
    return "binance" if kind == "klines" else None


def exchange_of(path: str | Path, exchange: str | None) -> tuple[str, str | None]:
    """``(exchange, assumed)``: the exchange given, or the one inferred from the file name with the words saying so.

    Raises:
        InvalidArgumentError: ``exchange`` is None and the name implies none (one line, naming the file).
    """
    if exchange is not None:
        return exchange, None
    inferred = infer_exchange(path)
    if inferred is None:
        raise InvalidArgumentError(
            f"{path}: no exchange given and none can be inferred from the file name: give it (--exchange), e.g. "
            "binance (a ccxt id, 24/7) or XNYS/nyse, XNAS/nasdaq (equity venues)"
        )
    return inferred, f"exchange {inferred} assumed from the data.binance.vision file name"


@dataclass
class _SeriesStats:
    """What :func:`import_bars` reports, gathered chunk by chunk: rows, first/last bar, missing bars under the
    venue's calendar, bars outside its sessions, and the data's spacing."""

    tf: Timeframe
    calendar: str
    session: str | None
    venue: Any
    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    gaps: int = 0
    outside: int = 0
    carry: pd.Timestamp | None = None  # the last bar inside the sessions so far: gaps run from it into the next chunk
    spacing: SpacingStats = field(default_factory=SpacingStats)

    def add(self, ts: pd.Series) -> None:
        if self.first is None:
            self.first = ts.iloc[0]
        self.last = ts.iloc[-1]
        self.rows += len(ts)
        self.spacing.add(ts)
        inside = np.ones(len(ts), dtype=bool) if self.session is None else in_session(
            ts, self.venue, self.session, self.tf)
        self.outside += int((~inside).sum())
        series = ts if self.carry is None else pd.concat([pd.Series([self.carry], dtype=ts.dtype), ts],
                                                          ignore_index=True)
        self.gaps += int(find_gaps(series, self.tf, calendar=self.calendar, session=self.session)["missing_bars"].sum())
        if inside.any():
            self.carry = ts.iloc[int(np.flatnonzero(inside)[-1])]


@dataclass(frozen=True)
class StagedBars:
    """What :func:`stage_bars_file` wrote: rows, first and last open time (UTC), missing bars, bars outside the
    sessions, and the data's spacing when it is a longer timeframe (:func:`data_spacing`), else None."""

    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    gaps: int
    outside_session: int
    spacing: Timeframe | None


def stage_bars_file(path: str | Path, store: Store, *, exchange: str, symbol: str, timeframe: Timeframe,
                    source: str, calendar: str | None = None, check_spacing: bool = False,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> StagedBars:
    """Read, check and write one bar file as one series, chunk by chunk, writing nothing unless all of it is valid.

    Every chunk is checked (:class:`BarChunks`) and appended to a staging table of the store
    (:meth:`Store.staging <btlab.store.base.Store.staging>`); only when the whole file passed (and, with
    ``check_spacing``, its bars are not spaced by a longer timeframe) are the rows published into ``ohlcv``
    (upserts on ``(ts, exchange, symbol, timeframe)``). On any error the staging table is dropped and the store is
    as it was. Memory does not grow with the file.

    Raises:
        DataValidationError: see :func:`read_bars_file`.
        TimeframeMismatchError: ``check_spacing`` and the bars are spaced by a longer timeframe.
        InvalidArgumentError: unknown exchange without ``calendar``, unknown calendar.
    """
    from btlab.store.marketdata import bar_rows

    venue = resolve_venue(exchange, calendar)
    stats = _SeriesStats(timeframe, venue.calendar, check_session(None, venue), venue)
    with store.staging("ohlcv") as stage:
        pending: list[pd.DataFrame] = []

        def flush() -> None:
            bars = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
            stage.add(bar_rows(bars, exchange=exchange, symbol=symbol, timeframe=timeframe, source=source))
            pending.clear()

        for bars in BarChunks(path, timeframe=timeframe, chunk_bytes=chunk_bytes):
            stats.add(bars["ts"])
            pending.append(bars)
            if sum(map(len, pending)) >= STAGE_ROWS:  # fewer, bigger writes: each one is a commit
                flush()
        if pending:
            flush()
        spacing = stats.spacing.spacing(timeframe)
        if check_spacing and spacing is not None:
            raise TimeframeMismatchError(str(path), timeframe.value, spacing.value, stats.gaps)
        stage.publish()
    assert stats.first is not None and stats.last is not None  # BarChunks raises for a file without bars
    return StagedBars(stats.rows, stats.first, stats.last, stats.gaps, stats.outside, spacing)


def import_bars(
    path: str | Path,
    store: Store,
    *,
    exchange: str | None = None,
    symbol: str,
    timeframe: Timeframe | str,
    source: str | None = None,
    calendar: str | None = None,
    allow_timeframe_mismatch: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> ImportReport:
    """Read, validate and store the bars of one file as one series.

    The file is read and validated chunk by chunk into a staging table of the store; only when the whole file is
    valid are its bars published into ``ohlcv`` (:func:`stage_bars_file`), so a bad file writes nothing, and
    memory does not grow with the file. Writes are upserts on ``(ts, exchange, symbol, timeframe)``: importing the
    same file again changes nothing. (A big file is published in slices, see
    :meth:`Staging.publish <btlab.store.base.Staging.publish>`: an import cut short during that last step is
    completed by importing the file again.)

    Args:
        path: a file :func:`read_bars_file` understands.
        store: where to write.
        exchange: ccxt exchange id (``"binance"``) or equity venue (``"XNYS"``, ``"nyse"``, ``"nasdaq"``), see
            :func:`btlab.model.venue.resolve_venue`. None: inferred from a data.binance.vision kline file name
            (:func:`infer_exchange`, said in ``ImportReport.assumed``), otherwise an error.
        symbol: ccxt unified symbol, e.g. ``"BTC/USDT"``, or a ticker (``"SPY"``).
        timeframe: the bars' length (``"1h"``, ...); every bar open time must be aligned to it.
        source: provenance stored with each bar; defaults to the file name (without folders).
        calendar: the venue's calendar when ``exchange`` is a name btlab does not know (``"24/7"``, ``"XNYS"``);
            it only decides how missing bars are counted (see :class:`ImportReport`).
        allow_timeframe_mismatch: store the bars even when they are spaced by a whole multiple of ``timeframe``
            (see :func:`data_spacing`): e.g. a sparse series that really has ``timeframe`` bars.
        chunk_bytes: CSV text per chunk (memory use is a small multiple of it).

    Returns:
        An :class:`ImportReport` (rows, first/last bar open time in UTC, number of missing bars, calendar).

    Raises:
        InvalidArgumentError: no exchange given and none inferable; unknown exchange without ``calendar``; unknown
            calendar. Checked before the file is read; the store is unchanged.
        DataValidationError: the file is missing, unreadable or invalid (see :func:`read_bars_file`); the store
            is unchanged.
        TimeframeMismatchError: the bars are spaced by a longer timeframe than ``timeframe`` (naming it) and
            ``allow_timeframe_mismatch`` is False; the store is unchanged.
        InvalidArgumentError: ``timeframe`` is not a valid ccxt timeframe, or ``exchange``/``symbol`` is empty.
    """
    p = Path(path)
    tf = Timeframe.parse(timeframe)
    exchange, assumed = exchange_of(p, exchange)
    if not str(symbol or "").strip():
        raise InvalidArgumentError("symbol must not be empty")
    venue = resolve_venue(exchange, calendar)
    check_bars_file(p)
    staged = stage_bars_file(p, store, exchange=exchange, symbol=symbol, timeframe=tf, source=source or p.name,
                             calendar=calendar, check_spacing=not allow_timeframe_mismatch, chunk_bytes=chunk_bytes)
    return ImportReport(
        path=p,
        exchange=exchange,
        symbol=symbol,
        timeframe=tf.value,
        rows=staged.rows,
        first=staged.first,
        last=staged.last,
        gaps=staged.gaps,
        calendar=venue.calendar,
        outside_session=staged.outside_session,
        assumed=assumed,
    )


