"""Bars: tick -> bar aggregation one aggregator in a batch form and a streaming form that give identical bars.

Bars
    Output frames have btlab's bar layout (:mod:`btlab.model.bar`: ``ts, open, high, low, close, volume,
    trades``) plus ``vwap``; see :data:`AGG_BAR_COLUMNS`. ``ts`` is the bar OPEN time, ``datetime64[ns, UTC]``:
    window ``[ts, ts + timeframe)`` with ``ts = floor(trade time, timeframe)`` counted from the UTC epoch (from
    Monday 1970-01-05 for weekly bars, :attr:`btlab.model.timeframe.Timeframe.origin_ns`). A trade exactly on a
    boundary opens the next bar.

Rules for one bar (trades taken in the canonical order of :mod:`btlab.model.tick`: by time, then numeric trade id)
    - ``open`` = price of the first trade, ``close`` = price of the last, ``high``/``low`` = max/min price.
    - ``volume`` = sum of ``amount`` (base asset), rounded to ``volume_decimals`` decimals (default 8). Exchanges
      add the decimal strings exactly; float addition leaves a few ulps of noise that rounding removes. On the
      recorded Binance BTC/USDT trades the unrounded float sum misses the exchange's kline volume in some minutes,
      the rounded one matches every minute (``tests/marketdata/bars/test_aggregate.py``). Rounding also makes volume independent
      of summation order and grouping, so 1m -> 1h resampling equals ticks -> 1h exactly.
      ``volume_decimals=None`` keeps the raw float sum (use it for assets with more than 8 decimals).
    - ``trades`` = number of trades; ``vwap`` = sum(price * amount) / sum(amount) (unrounded float sums, in
      canonical order, per window).

Windows without trades (``empty``)
    ``"skip"`` (default): no bar. ``"flat"``: a bar at the previous bar's close (``open = high = low = close``),
    ``volume = 0``, ``trades = 0``, ``vwap = NaN`` (no trade, no volume-weighted price; Binance's kline has quote
    volume 0 there). Flat bars are only produced between two windows with trades (batch) or after the first
    trade (streaming), never before the first trade. What Binance does: it emits a kline for every interval
    while the market is up; an interval without trades is exactly such a flat bar at the previous close with
    volume 0 -- the BTC/USDT 1h klines 2017-2024 hold 4 of them (2017-09-06 16:00, 2019-06-07 21:00,
    2021-02-11 03:00, 2023-03-24 12:00, each O=H=L=C=previous close, volume 0), while hours when the market was
    down (128) have no kline at all. BTC/USDT trades every minute, so its 1m klines (2024, 2025 files) have no
    zero-volume minute. Use ``"flat"`` to match Binance's klines for illiquid markets, ``"skip"`` to keep only
    windows that traded.

Forms
    :func:`aggregate_ticks` (batch, vectorized numpy) and :class:`StreamingAggregator` (incremental, by event time
    with a watermark) run the same per-window kernel on the same canonically ordered trades, so they produce
    bit-identical bars (exact float equality) for the same ticks, whatever the arrival order within the allowed
    lateness. :func:`resample_bars` builds higher timeframes from lower ones; it equals aggregating the ticks
    directly (exactly for OHLC, volume and trades; vwap to float rounding, relative error below 1e-12, because a
    bar keeps vwap, not the exact sum of price * amount).

Modules
    :mod:`~btlab.marketdata.bars.kernel` (the per-window kernel), :mod:`~btlab.marketdata.bars.batch`
    (:func:`aggregate_ticks`, :func:`resample_bars`), :mod:`~btlab.marketdata.bars.streaming`
    (:class:`StreamingAggregator`), :mod:`~btlab.marketdata.bars.from_ticks` (bars from stored ticks),
    :mod:`~btlab.marketdata.bars.from_bars` (higher timeframes from stored bars).
"""

from btlab.marketdata.bars.batch import aggregate_ticks, resample_bars, tick_arrays
from btlab.marketdata.bars.kernel import AGG_BAR_COLUMNS, EmptyPolicy
from btlab.marketdata.bars.streaming import StreamingAggregator

__all__ = ["AGG_BAR_COLUMNS", "EmptyPolicy", "StreamingAggregator", "aggregate_ticks", "resample_bars", "tick_arrays"]
