"""Higher-timeframe bars built from stored bars (``btlab data resample``): e.g. 4h bars from the stored 1h bars.

The bars are built with :func:`btlab.marketdata.bars.resample_bars` (open of the first source bar, max high,
min low, close of the last, summed volume and trades, volume-weighted vwap; source bars without trades never set a
price), so they equal the exchange's own bars of that timeframe wherever the source bars are complete.

Only COMPLETE windows are built: a target window is built when every one of its source bars is stored (4 of 4 for
1h -> 4h). A window with some source bars missing -- an exchange outage, a hole in the data, the still-open window
at the end of the stored span, or a window cut by the requested range -- is skipped and counted, never stored as a
partial bar that would silently differ from the exchange's. ``allow_partial=True`` also builds windows with missing
source bars inside the stored span (for sessions that trade only part of the window, e.g. equities), but never a
window that reaches beyond the first or last stored source bar or the requested range.

Bars are written idempotently (upserts on ``ts, exchange, symbol, timeframe``) with ``source = "resample:<source
timeframe>"``: running the same resample again changes nothing. Source bars are read in slices (about half a
million at a time, cut at target-window boundaries), so memory stays bounded whatever the series' length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError, NoDataError
from btlab.marketdata.bars import resample_bars
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store
from btlab.store.rows import TimeLike, to_utc

__all__ = ["ResampleReport", "resample_stored_bars"]

#: Source bars read per slice (rounded to whole target windows).
SLICE_SOURCE_BARS = 500_000


@dataclass(frozen=True)
class ResampleReport:
    """What :func:`resample_stored_bars` built.

    Attributes:
        exchange, symbol: the instrument.
        source_timeframe, timeframe: the stored bars' timeframe and the one built (ccxt strings).
        source_bars: source bars read.
        bars: bars built and written (re-written ones included: writing them again changes nothing).
        incomplete: target windows holding some, but not all, of their source bars that were therefore not built
            (with ``allow_partial``: only those reaching beyond the stored span or the requested range).
        first, last: open time (UTC) of the first and last bar built, None if none.
    """

    exchange: str
    symbol: str
    source_timeframe: str
    timeframe: str
    source_bars: int
    bars: int
    incomplete: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None

    def __str__(self) -> str:
        span = f", {self.first} .. {self.last}" if self.first is not None else ""
        skipped = (f"; {self.incomplete:,} incomplete {self.timeframe} window(s) skipped (source bars missing)"
                   if self.incomplete else "")
        return (f"{self.exchange}:{self.symbol}: {self.bars:,} {self.timeframe} bars built from "
                f"{self.source_bars:,} {self.source_timeframe} bars{span}{skipped}")


def resample_stored_bars(
    store: Store,
    *,
    exchange: str,
    symbol: str,
    source_timeframe: Timeframe | str,
    timeframe: Timeframe | str,
    start: TimeLike = None,
    end: TimeLike = None,
    allow_partial: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ResampleReport:
    """Build ``timeframe`` bars from the stored ``source_timeframe`` bars of one instrument, and store them.

    See the module docstring for which windows are built. Only windows lying entirely inside ``[start, end)``
    are built (bounds optional, UTC; a naive time is taken as UTC).

    Args:
        store: holds the source bars and receives the new ones.
        exchange, symbol: the instrument (as stored).
        source_timeframe: the stored bars' timeframe, e.g. ``"1h"``.
        timeframe: the timeframe to build, a whole multiple of ``source_timeframe`` whose windows are made of whole
            source windows (``4h`` or ``1d`` from ``1h``; ``1w`` from ``1d``).
        start, end: the range of bar open times to build (``start <= window``, ``window end <= end``).
        allow_partial: also build windows with some source bars missing (not at the edges).
        progress: called as ``progress(windows_done, windows_total)``.

    Returns:
        A :class:`ResampleReport`.

    Raises:
        InvalidArgumentError: an invalid timeframe, ``timeframe`` not a whole multiple of ``source_timeframe``
            (or not longer), empty ``exchange``/``symbol``, ``end`` not after ``start``.
        NoDataError: no ``source_timeframe`` bars of the instrument in the range (naming what is stored).
    """
    src, tgt = Timeframe.parse(source_timeframe), Timeframe.parse(timeframe)
    for name, value in (("exchange", exchange), ("symbol", symbol)):
        if not str(value or "").strip():
            raise InvalidArgumentError(f"{name} must not be empty")
    if tgt.nanos <= src.nanos or tgt.nanos % src.nanos or (tgt.origin_ns - src.origin_ns) % src.nanos:
        raise InvalidArgumentError(
            f"cannot build {tgt} bars from {src} bars: the timeframe must be a whole multiple of the source "
            f"timeframe (e.g. 4h or 1d from 1h)"
        )
    lo_req, hi_req = to_utc(start), to_utc(end)
    if lo_req is not None and hi_req is not None and hi_req <= lo_req:
        raise InvalidArgumentError(f"the end ({hi_req}) must be after the start ({lo_req})")
    span = store.bar_span(exchange=exchange, symbol=symbol, timeframe=src, start=lo_req, end=hi_req)
    if span.bars == 0:
        where = "" if lo_req is None and hi_req is None else f" between {lo_req or 'the start'} and {hi_req or 'the end'}"
        raise NoDataError(
            f"no {src} bars of {exchange}:{symbol}{where} in the store at {store.address} (see: btlab data coverage)"
        )
    assert span.first is not None and span.last is not None
    # windows must lie inside the stored span and the requested range
    lo = max(span.first.value, lo_req.value if lo_req is not None else span.first.value)
    hi = min(span.last.value + src.nanos, hi_req.value if hi_req is not None else span.last.value + src.nanos)
    first_window = lo + (-(lo - tgt.origin_ns)) % tgt.nanos
    end_window = hi - (hi - tgt.origin_ns) % tgt.nanos
    per_window = tgt.nanos // src.nanos
    total = max(0, (end_window - first_window) // tgt.nanos)
    step = max(1, SLICE_SOURCE_BARS // per_window) * tgt.nanos

    source_bars = built = incomplete = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    cursor = first_window
    while cursor < end_window:
        b = min(cursor + step, end_window)
        bars = store.read_bars(exchange=exchange, symbol=symbol, timeframe=src, start=pd.Timestamp(cursor, tz="UTC"),
                               end=pd.Timestamp(b, tz="UTC"))
        if len(bars):
            source_bars += len(bars)
            kept, skipped = _complete_windows(bars, src, tgt, per_window, allow_partial)
            incomplete += skipped
            if len(kept):
                built += store.write_bars(kept, exchange=exchange, symbol=symbol, timeframe=tgt,
                                          source=f"resample:{src}")
                first = kept["ts"].iloc[0] if first is None else first
                last = kept["ts"].iloc[-1]
        if progress is not None:
            progress((b - first_window) // tgt.nanos, total)
        cursor = b
    incomplete += _edge_windows(span.first.value, span.last.value, first_window, end_window, tgt)
    return ResampleReport(exchange, symbol, src.value, tgt.value, source_bars, built, incomplete, first, last)


def _complete_windows(bars: pd.DataFrame, src: Timeframe, tgt: Timeframe, per_window: int,
                      allow_partial: bool) -> tuple[pd.DataFrame, int]:
    """The resampled bars of the windows to keep, and how many windows holding source bars were skipped."""
    ns = pd.DatetimeIndex(bars["ts"]).asi8
    windows, counts = np.unique((ns - tgt.origin_ns) // tgt.nanos * tgt.nanos + tgt.origin_ns, return_counts=True)
    ok = counts >= 1 if allow_partial else counts == per_window
    out = resample_bars(bars, tgt, empty="flat", source_timeframe=src)
    opens = pd.DatetimeIndex(out["ts"]).asi8
    out = out[np.isin(opens, windows[ok])].reset_index(drop=True)
    return out, int((~ok).sum())


def _edge_windows(first_bar: int, last_bar: int, first_window: int, end_window: int, tgt: Timeframe) -> int:
    """Windows holding source bars (``first_bar .. last_bar``, ns) that are not whole inside ``[first_window,
    end_window)``: at most one at each end, one if both ends fall in the same window."""
    window_of = lambda t: (t - tgt.origin_ns) // tgt.nanos  # noqa: E731
    head = first_bar < first_window
    tail = last_bar >= end_window
    if head and tail and window_of(first_bar) == window_of(last_bar):
        return 1
    return int(head) + int(tail)
