"""Bars from stored ticks with the batch aggregator: for trade history (``ingest history --trades``) and trade files
(``ingest binance-vision`` trades/aggTrades).

Only windows that lie entirely inside the span the caller vouches for (``start <= window < end``) are built, so a
span that starts or ends mid-window never yields a partial bar. Ticks are read from the store in slices aligned to
every requested timeframe (so no window is split between slices) and aggregated with
:func:`btlab.marketdata.bars.aggregate_ticks`; bars are written idempotently (``source = "ticks"``). For
aggTrades files the ``trades`` column counts aggregate trades, not raw trades.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import lcm

import pandas as pd

from btlab.errors import InvalidArgumentError
from btlab.marketdata.bars import aggregate_ticks
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store
from btlab.store.rows import TimeLike, to_utc

SLICE_NS = 86_400 * 10**9  # read about one day of ticks at a time (rounded up to a multiple of every timeframe)


def bars_from_ticks(
    store: Store,
    *,
    exchange: str,
    symbol: str,
    timeframes: Sequence[Timeframe | str],
    start: TimeLike,
    end: TimeLike,
    empty: str = "skip",
) -> dict[str, int]:
    """Build and store the bars of every window fully inside ``[start, end)`` from the stored ticks.

    Args:
        store: holds the ticks (``ticks`` table) and receives the bars (``ohlcv``).
        exchange, symbol: the instrument.
        timeframes: ccxt timeframes to build (``["1m", "1h"]``).
        start, end: the UTC span whose trades are all stored (e.g. a whole data.binance.vision day, or the
            ``[since, until)`` of a trade-history ingest). Windows crossing either bound are not built.
        empty: ``skip`` or ``flat`` (windows without trades), as in :func:`aggregate_ticks`.

    Returns:
        Bars written per timeframe.

    Raises:
        InvalidArgumentError: no timeframe, or ``end`` not after ``start``.
    """
    tfs = [Timeframe.parse(tf) for tf in timeframes]
    if not tfs:
        raise InvalidArgumentError("bars_from_ticks needs at least one timeframe")
    lo, hi = to_utc(start), to_utc(end)
    if lo is None or hi is None or hi <= lo:
        raise InvalidArgumentError(f"bars_from_ticks needs start < end, got {start} .. {end}")
    step = lcm(SLICE_NS, *(tf.nanos for tf in tfs))
    origin = max(tf.origin_ns for tf in tfs)  # 0, or Monday for weeks (a multiple of every shorter timeframe)
    written = {tf.value: 0 for tf in tfs}
    cursor = lo.value - (lo.value - origin) % step
    while cursor < hi.value:
        a, b = max(cursor, lo.value), min(cursor + step, hi.value)
        ticks = store.read_ticks(exchange=exchange, symbol=symbol, start=pd.Timestamp(a, tz="UTC"),
                                 end=pd.Timestamp(b, tz="UTC"))
        if not ticks.empty:
            for tf in tfs:
                bars = aggregate_ticks(ticks, tf, empty=empty)  # type: ignore[arg-type]
                first_ok = a + (-(a - tf.origin_ns)) % tf.nanos  # first window starting at or after a
                opens = pd.DatetimeIndex(bars["ts"]).asi8
                bars = bars[(opens >= first_ok) & (opens + tf.nanos <= b)]
                if len(bars):
                    written[tf.value] += store.write_bars(bars, exchange=exchange, symbol=symbol, timeframe=tf,
                                                          source="ticks")
        cursor += step
    return written
