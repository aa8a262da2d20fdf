"""Tick -> bar aggregation: one aggregator in a batch form and a streaming form that give identical bars.

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
      the rounded one matches every minute (``tests/test_aggregate.py``). Rounding also makes volume independent
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
"""

from __future__ import annotations

import collections
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from btlab.errors import DataValidationError, InvalidArgumentError
from btlab.model.bar import BAR_COLUMNS
from btlab.model import tick as tick_model
from btlab.model.tick import trade_ids_as_int
from btlab.model.timeframe import Timeframe

EmptyPolicy = Literal["skip", "flat"]

#: Columns of every bar frame this module returns.
AGG_BAR_COLUMNS: tuple[str, ...] = BAR_COLUMNS  # the bar layout, vwap included

_NAT = np.iinfo(np.int64).min  # NaT as int64
_NO_TIME = -(2**62)  # "no event seen yet": far below any real time, far above int64 min (no overflow)
_NOTIONAL_CHUNK = 1 << 15  # ticks per price*amount scratch block (stays in L2)
_KEYS = ("ts", "open", "high", "low", "close", "volume", "trades", "vwap")
_BUFFERS = ("_bts", "_bpx", "_bam", "_bid", "_bex")


def _check_empty(empty: str) -> bool:
    if empty not in ("skip", "flat"):
        raise InvalidArgumentError(f"invalid empty-window policy {empty!r}: use 'skip' or 'flat'")
    return empty == "flat"


def _seconds_to_ns(value: timedelta | float | int, name: str) -> int:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return int(round(seconds * 1e9))


# ---------------------------------------------------------------------------------------------------------------
# the one kernel
# ---------------------------------------------------------------------------------------------------------------
def _check_decimals(decimals: int | None) -> int | None:
    if decimals is not None and (not isinstance(decimals, (int, np.integer)) or not 0 <= decimals <= 15):
        raise InvalidArgumentError(f"volume_decimals must be an integer 0..15 or None, got {decimals!r}")
    return None if decimals is None else int(decimals)


def _round_volume(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """Round to ``decimals`` decimals: the float nearest to the decimal value (as parsing its string gives).

    Values of 2**52 / 10**decimals or more (45 million with 8 decimals) are left as they are: a float has no
    digits left at that scale."""
    if decimals is None or values.size == 0:
        return values
    scale = 10.0**decimals
    out = np.rint(values * scale) / scale  # rint(x*10^d) is the exact integer; one correctly rounded division
    big = ~(np.abs(values) < 2.0**52 / scale)  # beyond float precision at that scale (or NaN): leave as is
    if big.any():
        out[big] = values[big]
    return out


def _sums_of_products(px: np.ndarray, amt: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``sum(px * amt)`` per segment (segments start at ``starts``, the last runs to the end).

    Same floats as ``np.add.reduceat(px * amt, starts)`` (a segment's sum depends only on its own values), but
    the products are formed block by block in a small scratch buffer instead of one array of ``n`` floats.
    """
    n = px.size
    if n <= _NOTIONAL_CHUNK:
        return np.add.reduceat(px * amt, starts)
    out = np.empty(starts.size)
    nseg = starts.size
    # first segment of each block: the segment holding every _NOTIONAL_CHUNK-th tick
    cuts = np.unique(np.searchsorted(starts, np.arange(_NOTIONAL_CHUNK, n, _NOTIONAL_CHUNK), side="right") - 1)
    cuts = cuts[cuts > 0]
    bounds = [0, *cuts.tolist(), nseg]
    scratch = np.empty(_NOTIONAL_CHUNK * 2)
    for j in range(len(bounds) - 1):
        s0, s1 = bounds[j], bounds[j + 1]
        if s0 == s1:
            continue
        a = int(starts[s0])
        b = int(starts[s1]) if s1 < nseg else n
        tmp = scratch[: b - a] if b - a <= scratch.size else np.empty(b - a)
        np.multiply(px[a:b], amt[a:b], out=tmp)
        out[s0:s1] = np.add.reduceat(tmp, starts[s0:s1] - a)
    return out


def _empty_bars() -> dict[str, np.ndarray]:
    return {k: np.empty(0, dtype=np.int64 if k in ("ts", "trades") else np.float64) for k in _KEYS}


def _aggregate_sorted(
    ts: np.ndarray,
    px: np.ndarray,
    amt: np.ndarray,
    tf_ns: int,
    origin: int,
    *,
    flat: bool,
    decimals: int | None,
    lo: int | None = None,
    hi: int | None = None,
    prev_close: float = math.nan,
) -> dict[str, np.ndarray]:
    """Bars of valid trades already in canonical order (the kernel both forms share).

    Args:
        ts, px, amt: int64 ns, float64, float64 arrays of equal length, ``ts`` non-decreasing.
        tf_ns, origin: window length and alignment origin in ns.
        flat: fill windows without trades with flat bars (see the module docstring).
        lo, hi: aligned window bounds of the range to fill with flat bars (default: the windows of the first and
            last trade); all trades must lie in ``[lo, hi)``.
        prev_close: close before ``lo`` (NaN: none, so empty windows before the first trade are skipped).

    Returns:
        Arrays keyed by :data:`_KEYS` (``ts`` int64 bar open ns, ``trades`` int64).
    """
    n = ts.size
    if n:
        first = (int(ts[0]) - origin) // tf_ns * tf_ns + origin
        last = (int(ts[-1]) - origin) // tf_ns * tf_ns + origin
        nwin = (last - first) // tf_ns + 1
        if nwin == 1:
            starts = np.zeros(1, dtype=np.intp)
            wopen = np.array([first], dtype=np.int64)
        elif nwin * 32 <= n:  # few windows: binary-search their edges instead of dividing every time stamp
            edges = np.arange(1, nwin, dtype=np.int64)
            edges *= tf_ns
            edges += first
            bounds = np.empty(nwin + 1, dtype=np.intp)
            bounds[0] = 0
            bounds[1:-1] = np.searchsorted(ts, edges, side="left")
            bounds[-1] = n
            nonempty = bounds[1:] > bounds[:-1]
            starts = bounds[:-1][nonempty]
            wopen = np.flatnonzero(nonempty).astype(np.int64)
            wopen *= tf_ns
            wopen += first
        else:  # many windows: window index of every trade (one division each), starts where it changes
            bucket = (ts - origin) // tf_ns
            starts = np.concatenate(([0], np.flatnonzero(bucket[1:] != bucket[:-1]) + 1)).astype(np.intp)
            wopen = bucket[starts] * tf_ns + origin
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[-1] = n
        vol_raw = np.add.reduceat(amt, starts)
        notional = _sums_of_products(px, amt, starts)
        bars = {
            "ts": wopen,
            "open": px[starts],
            "high": np.maximum.reduceat(px, starts),
            "low": np.minimum.reduceat(px, starts),
            "close": px[ends - 1],
            "volume": _round_volume(vol_raw, decimals),
            "trades": (ends - starts).astype(np.int64),
            "vwap": notional / vol_raw,
        }
    else:
        bars = _empty_bars()
    if flat:
        bars = _fill_flat(bars, tf_ns, lo, hi, prev_close)
    return bars


def _fill_flat(
    bars: dict[str, np.ndarray], tf_ns: int, lo: int | None, hi: int | None, prev_close: float
) -> dict[str, np.ndarray]:
    """Insert flat bars for the windows in ``[lo, hi)`` without a bar, after the first known close."""
    wopen = bars["ts"]
    if lo is None:
        if not wopen.size:
            return bars
        lo = int(wopen[0])
    if hi is None:
        if not wopen.size:
            return bars
        hi = int(wopen[-1]) + tf_ns
    nwin = (hi - lo) // tf_ns
    if nwin <= 0 or nwin == wopen.size:
        return bars
    if not wopen.size and math.isnan(prev_close):
        return bars
    pos = (wopen - lo) // tf_ns
    has = np.zeros(nwin, dtype=bool)
    has[pos] = True
    last = np.where(has, np.arange(nwin), -1)
    np.maximum.accumulate(last, out=last)
    close_full = np.empty(nwin)
    close_full[pos] = bars["close"]
    fill = np.where(last >= 0, close_full[np.maximum(last, 0)], prev_close)
    keep = has | ~np.isnan(fill)
    out_ts = (np.arange(nwin, dtype=np.int64) * tf_ns + lo)[keep]
    has_k = has[keep]
    fill_k = fill[keep]
    src = np.cumsum(has_k) - 1  # index into bars for windows with trades
    out: dict[str, np.ndarray] = {"ts": out_ts}
    for key in ("open", "high", "low", "close"):
        col = fill_k.copy()
        col[has_k] = bars[key][src[has_k]]
        out[key] = col
    for key, zero in (("volume", 0.0), ("trades", 0), ("vwap", math.nan)):
        col = np.full(out_ts.size, zero, dtype=bars[key].dtype)
        col[has_k] = bars[key][src[has_k]]
        out[key] = col
    return out


def _bars_frame(bars: dict[str, np.ndarray]) -> pd.DataFrame:
    """Kernel arrays -> a bar frame with :data:`AGG_BAR_COLUMNS` (``ts`` UTC, ``trades`` nullable Int64)."""
    ts = pd.DatetimeIndex(bars["ts"].view("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame(
        {
            "ts": ts,
            "open": bars["open"],
            "high": bars["high"],
            "low": bars["low"],
            "close": bars["close"],
            "volume": bars["volume"],
            "trades": pd.array(bars["trades"], dtype="Int64"),
            "vwap": bars["vwap"],
        },
        copy=False,
    )


def _concat_bars(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return _empty_bars()
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in _KEYS}


# ---------------------------------------------------------------------------------------------------------------
# batch form
# ---------------------------------------------------------------------------------------------------------------
def _time_ns(values: pd.Series, what: str) -> np.ndarray:
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        arr = values.array
        if dtype.unit != "ns":
            arr = arr.as_unit("ns")
        return np.asarray(arr.asi8)
    if pd.api.types.is_datetime64_dtype(dtype):  # naive: taken as UTC
        return values.to_numpy().astype("datetime64[ns]").view(np.int64)
    raise DataValidationError(what, f"'ts' must be datetime64 (UTC), got {dtype}", column="ts")


def _canonical(
    ts: np.ndarray, px: np.ndarray, amt: np.ndarray, ids: np.ndarray | None, text_ids: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Slow path: drop invalid and duplicate trades and put the rest in canonical order (copies).

    Returns ``(ts, px, amt, invalid, duplicates)``. Invalid: price or amount NaN, infinite or <= 0, or time NaT.
    Duplicate: a row whose trade id (numeric ``ids``, else the text ``text_ids``) equals that of an earlier valid
    row in input order; the first stays. Order: ``ts``, then numeric id; without numeric ids, equal times keep
    input order (stable sort).
    """
    n = ts.size
    keep = (px > 0) & (px < np.inf) & (amt > 0) & (amt < np.inf) & (ts != _NAT)
    invalid = int(n - np.count_nonzero(keep))
    valid_idx = np.flatnonzero(keep)
    if ids is not None:
        _, first = np.unique(ids[valid_idx], return_index=True)
        idx = np.sort(valid_idx[first])
    elif text_ids is not None:
        sub = text_ids.iloc[valid_idx]
        repeated = sub.duplicated(keep="first").to_numpy() & sub.notna().to_numpy()
        idx = valid_idx[~repeated]
    else:
        idx = valid_idx
    duplicates = int(valid_idx.size - idx.size)
    ts, px, amt = ts[idx], px[idx], amt[idx]
    if ids is not None:
        order = np.lexsort((ids[idx], ts))
    else:
        order = np.argsort(ts, kind="stable")
    return ts[order], px[order], amt[order], invalid, duplicates


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_PARALLEL_MIN = 1 << 20  # ticks per thread below which one thread is faster
_CHUNK = 1 << 18  # trades per cache-resident chunk (8 MB of ts, id, price, amount)


def _threads(n: int) -> int:
    """Threads for ``n`` ticks: ``BTLAB_AGG_THREADS`` if set, else up to the CPU count, one per 1M ticks."""
    env = os.environ.get("BTLAB_AGG_THREADS", "").strip()
    limit = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    return max(1, min(limit, n // _PARALLEL_MIN))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="btlab-agg")
        return _POOL


def _aggregate_parallel(
    ts: np.ndarray,
    px: np.ndarray,
    amt: np.ndarray,
    ids: np.ndarray | pa.Array | None,
    tf_ns: int,
    origin: int,
    decimals: int | None,
    *,
    check: bool,
) -> dict[str, np.ndarray] | None:
    """:func:`_aggregate_sorted` (no flat filling) over window-aligned chunks, in threads (numpy releases the GIL).

    A window's bar depends only on its own trades, so the chunks give the same bars as one pass. With ``check``,
    each part also verifies the fast-path preconditions -- times non-decreasing, ids strictly increasing (so no
    duplicate), amounts > 0, and from the bars: prices finite and > 0, volume finite -- and ``None`` is returned
    if any fails (the caller then takes the slow path).
    """
    n = ts.size
    if n == 0:
        return _empty_bars()
    if check and ts[0] == _NAT:
        return None
    # window-aligned chunks of about _CHUNK trades: all of a chunk's passes run while it sits in the CPU cache
    pos = np.arange(_CHUNK, n, _CHUNK)
    cuts = np.searchsorted(ts, (ts[pos] - origin) // tf_ns * tf_ns + origin + tf_ns, side="left")
    cuts = np.unique(cuts[(cuts > 0) & (cuts < n)])
    bounds = [0, *cuts.tolist(), n]
    chunks = list(zip(bounds[:-1], bounds[1:]))

    def part(a: int, b: int) -> dict[str, np.ndarray] | None:
        if check:
            hi = min(b + 1, n)  # overlap one trade so chunk boundaries are checked too
            if np.less(ts[a + 1 : hi], ts[a : hi - 1]).any():
                return None
            if ids is not None:
                if isinstance(ids, np.ndarray):
                    seg = ids[a:hi]
                else:  # Arrow text ids: parse this chunk's slice (C, about 6 ns an id)
                    try:
                        seg = np.asarray(pc.cast(ids.slice(a, hi - a), pa.int64()).to_numpy())
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        return None
                if np.less_equal(seg[1:], seg[:-1]).any():
                    return None
            if not amt[a:b].min() > 0:  # also False for NaN
                return None
        bars = _aggregate_sorted(ts[a:b], px[a:b], amt[a:b], tf_ns, origin, flat=False, decimals=decimals)
        if check:
            high, low, vol = bars["high"], bars["low"], bars["volume"]
            if not (np.isfinite(high).all() and (low > 0).all() and np.isfinite(vol).all()):
                return None
        return bars

    def run(group: list[tuple[int, int]]) -> list[dict[str, np.ndarray]] | None:
        out = []
        for a, b in group:
            bars = part(a, b)
            if bars is None:
                return None
            out.append(bars)
        return out

    nthreads = min(_threads(n), len(chunks))
    if nthreads == 1:
        results = run(chunks)
        return None if results is None else _concat_bars(results)
    groups = [chunks[i * len(chunks) // nthreads : (i + 1) * len(chunks) // nthreads] for i in range(nthreads)]
    done = list(_pool().map(run, groups))
    if any(r is None for r in done):
        return None
    return _concat_bars([bars for r in done for bars in r])  # type: ignore[union-attr]


_SLOW = object()  # marker: trade ids need the slow path


def _id_source(col: pd.Series | None) -> np.ndarray | pa.Array | object | None:
    """Trade ids for the fast path: int64 array, an Arrow text array (cast part by part), None, or :data:`_SLOW`."""
    if col is None:
        return None
    if pd.api.types.is_integer_dtype(col.dtype):
        if col.isna().any():
            return _SLOW
        return col.to_numpy(dtype=np.int64)
    chunked = getattr(col.array, "_pa_array", None)
    if isinstance(chunked, pa.ChunkedArray) and pa.types.is_string(chunked.type) or (
        isinstance(chunked, pa.ChunkedArray) and pa.types.is_large_string(chunked.type)
    ):
        if chunked.null_count:
            return _SLOW
        return chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
    return _SLOW


def _tick_values(ticks: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for col in ("ts", "price", "amount"):
        if col not in ticks.columns:
            raise DataValidationError(source, f"missing tick column {col!r}")
    ts = _time_ns(ticks["ts"], source)
    px = np.asarray(ticks["price"].to_numpy(dtype=np.float64, na_value=np.nan))
    amt = np.asarray(ticks["amount"].to_numpy(dtype=np.float64, na_value=np.nan))
    return ts, px, amt


def tick_arrays(
    ticks: pd.DataFrame, source: str = "ticks"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(ts_ns int64, price float64, amount float64, trade_id int64 or None)`` arrays of a tick frame.

    ``ts`` must be datetime64 (timezone-aware, converted to UTC; naive taken as UTC). ``trade_id`` may be text
    (the tick layout) or integers; ``None`` is returned for it when the column is absent or not all numeric.
    """
    ts, px, amt = _tick_values(ticks, source)
    ids = trade_ids_as_int(ticks["trade_id"]) if "trade_id" in ticks.columns else None
    return ts, px, amt, ids


def aggregate_ticks(
    ticks: pd.DataFrame,
    timeframe: Timeframe | str,
    *,
    empty: EmptyPolicy = "skip",
    volume_decimals: int | None = 8,
) -> pd.DataFrame:
    """Aggregate trades into bars of one timeframe (batch form, vectorized).

    Args:
        ticks: a tick frame (:mod:`btlab.model.tick`): ``ts`` (datetime64, UTC), ``price``, ``amount`` and, for
            the tie order and dedup, ``trade_id`` (text of decimal digits, or an integer column -- equivalent and
            faster). Any row order: trades are put in canonical order (time, then numeric trade id; without
            numeric ids, equal times keep input order). Already ordered input (the usual case) is detected in a
            few vectorized passes and not copied.
        timeframe: ccxt timeframe (``1s``, ``1m``, ``1h``, ``1d``, ``1w`` ...).
        empty: ``"skip"`` or ``"flat"`` (windows without trades; see the module docstring).
        volume_decimals: decimals the volume is rounded to (None: raw float sum); see the module docstring.

    Returns:
        Bars (:data:`AGG_BAR_COLUMNS`) sorted by ``ts`` (bar open, ``datetime64[ns, UTC]``), one per window with
        trades (plus flat bars between them with ``empty="flat"``). ``attrs`` holds ``invalid_ticks`` (rows
        ignored: NaN/inf/<= 0 price or amount, NaT time -- use :func:`btlab.model.tick.split_valid_ticks` first
        to keep them) and ``duplicate_ticks`` (rows dropped for repeating an earlier row's trade id).

    Complexity: O(n) for ordered input (O(n log n) otherwise): about 2 ns a trade on one core for 1m bars with
    int64 ids, plus about 6 ns a trade to parse text ids. Inputs of 2M trades or more use one thread per 1M trades
    (at most the CPU count; ``BTLAB_AGG_THREADS`` caps it); the result does not depend on the thread count.
    """
    tf = Timeframe.parse(timeframe)
    flat = _check_empty(empty)
    volume_decimals = _check_decimals(volume_decimals)
    ts, px, amt = _tick_values(ticks, "ticks")
    col = ticks["trade_id"] if "trade_id" in ticks.columns else None
    source = _id_source(col)
    parsed: np.ndarray | None | object = _SLOW
    if source is _SLOW and col is not None:  # object or nullable ids: parse once
        parsed = trade_ids_as_int(col)
        source = _SLOW if parsed is None else parsed
    invalid = dups = 0
    bars = None
    if source is not _SLOW:  # fast path: checks fused into the kernel; None if anything needs the slow path
        bars = _aggregate_parallel(ts, px, amt, source, tf.nanos, tf.origin_ns, volume_decimals, check=True)
    if bars is None:
        if parsed is _SLOW:
            parsed = trade_ids_as_int(col) if col is not None else None
        ids = parsed  # type: ignore[assignment]
        text_ids = None
        if ids is None and col is not None and col.notna().any():
            text_ids = col.reset_index(drop=True)
        ts, px, amt, invalid, dups = _canonical(ts, px, amt, ids, text_ids)
        bars = _aggregate_parallel(ts, px, amt, None, tf.nanos, tf.origin_ns, volume_decimals, check=False)
    if flat:
        bars = _fill_flat(bars, tf.nanos, None, None, math.nan)
    frame = _bars_frame(bars)
    frame.attrs["invalid_ticks"] = invalid
    frame.attrs["duplicate_ticks"] = dups
    return frame


def resample_bars(
    bars: pd.DataFrame,
    timeframe: Timeframe | str,
    *,
    empty: EmptyPolicy = "skip",
    volume_decimals: int | None = 8,
    source_timeframe: Timeframe | str | None = None,
) -> pd.DataFrame:
    """Build bars of a higher timeframe from bars of a lower one (e.g. 1m -> 5m, 1h, 1d).

    Rules: a source bar with trades (``trades > 0``; when ``trades`` is missing, ``volume > 0``) belongs to the
    target window containing its open time. ``open`` = first such bar's open, ``close`` = last one's close,
    ``high``/``low`` = max/min, ``volume`` = sum (rounded to ``volume_decimals``), ``trades`` = sum (missing if any
    part is missing), ``vwap`` = sum(vwap * volume) / sum(volume) (NaN if a part with volume lacks vwap).
    Source bars without trades (flat bars, zero-volume klines) carry no trade, so they never set a price; target
    windows with no traded source bar are skipped or filled flat per ``empty``, exactly as
    :func:`aggregate_ticks` does. So ``resample_bars(aggregate_ticks(t, "1m"), "1h")`` equals
    ``aggregate_ticks(t, "1h")`` (exactly for OHLC, volume and trades; vwap within float rounding).

    Args:
        bars: bar frame with ``ts`` (bar open, UTC, strictly increasing), ``open, high, low, close, volume`` and
            optionally ``trades`` and ``vwap``. Every source window must lie inside one target window (the
            target a multiple of the source timeframe, same alignment); pass ``source_timeframe`` to check it.
        timeframe: target timeframe.
        empty: ``"skip"`` or ``"flat"``.
        volume_decimals: as in :func:`aggregate_ticks`.
        source_timeframe: the bars' timeframe, if known: checked to divide the target and to align with it.

    Returns:
        Bars (:data:`AGG_BAR_COLUMNS`) sorted by ``ts``.

    Raises:
        DataValidationError: ``ts`` not strictly increasing, or bars not aligned to ``source_timeframe``.
        InvalidArgumentError: ``source_timeframe`` does not divide ``timeframe``.
    """
    tf = Timeframe.parse(timeframe)
    flat = _check_empty(empty)
    volume_decimals = _check_decimals(volume_decimals)
    ts = _time_ns(bars["ts"], "bars")
    if ts.size > 1 and not (ts[1:] > ts[:-1]).all():
        raise DataValidationError("bars", "bar times must be strictly increasing", column="ts")
    if source_timeframe is not None:
        src = Timeframe.parse(source_timeframe)
        if tf.nanos % src.nanos or (tf.origin_ns - src.origin_ns) % src.nanos:
            raise InvalidArgumentError(
                f"cannot resample {src} bars to {tf}: {tf} windows do not split into {src} windows"
            )
        if ((ts - src.origin_ns) % src.nanos).any():
            raise DataValidationError("bars", f"bar times are not {src} bar open times", column="ts")
    get = lambda c: np.asarray(bars[c].to_numpy(dtype=np.float64, na_value=np.nan))  # noqa: E731
    o, h, l, c, v = (get(col) for col in ("open", "high", "low", "close", "volume"))
    if "trades" in bars.columns:
        tr = np.asarray(bars["trades"].to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        tr = np.full(ts.size, np.nan)
    vw = get("vwap") if "vwap" in bars.columns else np.full(ts.size, np.nan)
    traded = np.where(np.isnan(tr), v > 0, tr > 0)
    idx = np.flatnonzero(traded)
    ts, o, h, l, c, v, tr, vw = (a[idx] for a in (ts, o, h, l, c, v, tr, vw))
    if ts.size:
        bucket = (ts - tf.origin_ns) // tf.nanos
        starts = np.concatenate(([0], np.flatnonzero(bucket[1:] != bucket[:-1]) + 1)).astype(np.intp)
        ends = np.append(starts[1:], ts.size)
        vol_raw = np.add.reduceat(v, starts)
        weighted = np.add.reduceat(np.where(v > 0, vw * v, 0.0), starts)
        trades_na = np.add.reduceat(np.isnan(tr).astype(np.int64), starts) > 0
        trades = np.add.reduceat(np.nan_to_num(tr, nan=0.0), starts).astype(np.int64)
        out = {
            "ts": bucket[starts] * tf.nanos + tf.origin_ns,
            "open": o[starts],
            "high": np.maximum.reduceat(h, starts),
            "low": np.minimum.reduceat(l, starts),
            "close": c[ends - 1],
            "volume": _round_volume(vol_raw, volume_decimals),
            "trades": trades,
            "vwap": weighted / vol_raw,
        }
    else:
        out = _empty_bars()
        trades_na = np.zeros(0, dtype=bool)
    if flat:
        marker = out["trades"].copy()
        marker[trades_na] = -1
        out["trades"] = marker
        out = _fill_flat(out, tf.nanos, None, None, math.nan)
        trades_na = out["trades"] < 0
        out["trades"] = np.where(trades_na, 0, out["trades"])
    frame = _bars_frame(out)
    if trades_na.any():
        frame.loc[trades_na, "trades"] = pd.NA
    return frame


def _invalid_reason(ts: int, price: float, amount: float) -> str:
    """The :mod:`btlab.model.tick` quarantine reason of an invalid trade (first rule that fails)."""
    if ts == _NAT:
        return tick_model.REASON_TIME
    t = tick_model
    for value, missing, infinite, nonpositive in (
        (price, t.REASON_PRICE_MISSING, t.REASON_PRICE_INFINITE, t.REASON_PRICE_NONPOSITIVE),
        (amount, t.REASON_AMOUNT_MISSING, t.REASON_AMOUNT_INFINITE, t.REASON_AMOUNT_NONPOSITIVE),
    ):
        if math.isnan(value):
            return missing
        if math.isinf(value) and value > 0:
            return infinite
        if value <= 0:
            return nonpositive
    return "invalid"


# ---------------------------------------------------------------------------------------------------------------
# streaming form
# ---------------------------------------------------------------------------------------------------------------
class StreamingAggregator:
    """Incremental tick -> bar aggregation by event time, for live trades; several timeframes at once.

    Event time and finality: the watermark is ``max(event time seen) - allowed_lateness``, where event times are
    trade times (``ts_ns``) and the times given to :meth:`advance`. A bar ``[t, t + tf)`` becomes FINAL -- and is
    made available by :meth:`pop_bars` -- once ``watermark >= t + tf``; final bars are never changed afterwards.

    Per trade, on arrival, the first rule that applies:

    1. invalid (price or amount NaN, infinite or <= 0, time NaT): dropped, counted in ``invalid_ticks``, the last
       ``log_size`` kept with the :mod:`btlab.model.tick` reason in :meth:`quarantine_log`. Invalid trades do not
       move the watermark.
    2. duplicate: its trade id equals that of an accepted trade still retained (trades of open windows, and of the
       last ``dedup_retention`` seconds of event time before the watermark) or of an earlier accepted trade of the
       same call: dropped, counted in ``duplicate_ticks`` (a re-sent trade is a duplicate even when its window has
       closed). The first arrival wins.
    3. late for a timeframe: its window is already final (``ts < floor(watermark, timeframe)`` with the watermark
       the trade meets on arrival). Never merged into that bar; counted once in ``late_ticks`` (and per timeframe
       in ``late_by_timeframe``), the last ``log_size`` kept in :meth:`late_log`. A trade late for every
       timeframe is dropped; one late only for the shorter timeframes (e.g. 1s) still counts in the longer ones'
       open bars (e.g. 1m).
    4. otherwise accepted and merged. Trades that arrive out of order within the lateness are merged in canonical
       order (time, then trade id), so open/close are the first/last by trade time.

    Bars are computed when their window closes, by the same kernel as :func:`aggregate_ticks` over the retained
    trades of that window in canonical order. Given the same trades, the two forms give bit-identical bars: for
    any arrival order in which no trade is late, and with duplicates within the retention window (batch input
    in arrival order, so that "first" means the same).

    API and speed: :meth:`add_batch` takes numpy arrays and processes them at once (the fast path: tens of
    millions of trades per second in batches of thousands). :meth:`add` takes one trade and only appends it to a
    pending list (a few hundred ns, several million trades per second); pending trades are classified and merged,
    vectorized and with the same per-arrival rules, when results are read (:meth:`pop_bars`, :meth:`flush`,
    counters, logs) or every ``pending_limit`` trades. Results are identical whichever mix is used. A live
    caller calls :meth:`pop_bars` when :meth:`add` returns True and stores those (final) bars. Trade ids must be
    integers (for exchanges with text ids map them to int64: dedup and the tie order then follow that mapping).

    Not thread-safe: feed and read it from one thread (or behind a lock).

    Memory: the retained trades (40 bytes each) of the longest timeframe's open window, plus the lateness and the
    dedup retention. For long timeframes (1h, 1d) stream 1m (or 1s) and build them with :func:`resample_bars`.

    Args:
        timeframes: ccxt timeframes, e.g. ``["1s", "1m"]``.
        allowed_lateness: how far (seconds, or a timedelta) a trade may lag the newest event time and still count.
        empty: ``"skip"`` or ``"flat"`` (windows without trades; flat bars only after the first trade).
        volume_decimals: as in :func:`aggregate_ticks` (must match for identical bars).
        dedup_retention: seconds of event time behind the watermark for which closed windows' trade ids are kept.
        log_size: how many late and invalid trades to keep for inspection.
        pending_limit: single trades buffered before :meth:`add` processes them anyway.
    """

    def __init__(
        self,
        timeframes: Iterable[Timeframe | str],
        *,
        allowed_lateness: timedelta | float = 0.0,
        empty: EmptyPolicy = "skip",
        volume_decimals: int | None = 8,
        dedup_retention: timedelta | float = 60.0,
        log_size: int = 1000,
        pending_limit: int = 65_536,
    ) -> None:
        tfs = sorted({Timeframe.parse(t) for t in timeframes})
        if not tfs or len(tfs) > 62:
            raise InvalidArgumentError("StreamingAggregator needs 1 to 62 timeframes")
        self.timeframes: tuple[Timeframe, ...] = tuple(tfs)
        self._tf_ns = [tf.nanos for tf in tfs]
        self._origin = [tf.origin_ns for tf in tfs]
        self._flat = _check_empty(empty)
        self._decimals = _check_decimals(volume_decimals)
        self._lateness = _seconds_to_ns(allowed_lateness, "allowed_lateness")
        self._retention = _seconds_to_ns(dedup_retention, "dedup_retention")
        self._pending_limit = max(1, int(pending_limit))
        # pending single trades (Python lists: append is the cheapest thing per trade)
        self._pts: list[int] = []
        self._ppx: list[float] = []
        self._pam: list[float] = []
        self._pid: list[int] = []
        self._append_ts = self._pts.append
        self._append_px = self._ppx.append
        self._append_am = self._pam.append
        self._append_id = self._pid.append
        self._trigger = _NO_TIME  # event time at which the next window closes (for add()'s signal)
        self._ready = False  # final bars (or a closed window still pending) waiting for pop_bars()
        self._waiting = 0  # final bars computed and not yet popped
        # retained trades, canonical order, in [b0, b1) of growable arrays
        cap = 1 << 14
        self._bts = np.empty(cap, dtype=np.int64)
        self._bpx = np.empty(cap)
        self._bam = np.empty(cap)
        self._bid = np.empty(cap, dtype=np.int64)
        self._bex = np.zeros(cap, dtype=np.int64)  # bit k set: late for timeframe k, excluded from its bars
        self._b0 = 0
        self._b1 = 0
        self._max_ts = _NO_TIME
        self._max_id = np.iinfo(np.int64).min
        self._until: list[int | None] = [None] * len(tfs)  # end of the last final window per timeframe
        self._last_close = [math.nan] * len(tfs)
        self._out: list[list[dict[str, np.ndarray]]] = [[] for _ in tfs]
        self._n_accepted_ticks = 0
        self._n_invalid_ticks = 0
        self._n_duplicate_ticks = 0
        self._n_late_ticks = 0
        self._late_tf = [0] * len(tfs)
        self._n_bars_emitted = 0
        self._late_log: collections.deque = collections.deque(maxlen=log_size)
        self._bad_log: collections.deque = collections.deque(maxlen=log_size)

    # ---- feeding -------------------------------------------------------------------------------------------
    def add(self, ts_ns: int, price: float, amount: float, trade_id: int) -> bool:
        """Feed one trade: ``ts_ns`` exchange trade time (int ns, UTC), price, amount (base asset), int trade id.

        The trade is appended to a pending list; pending trades are classified and merged, vectorized, when
        results are asked for (:meth:`pop_bars`, :meth:`flush`, counters) or every ``pending_limit`` trades, with
        the same per-arrival rules as if each were processed at once.

        Returns:
            True when a window has closed (by this or an earlier trade) since the last :meth:`pop_bars`: final bars
            are waiting. A live caller stores ``pop_bars()`` when this turns True.
        """
        self._append_ts(ts_ns)
        self._append_px(price)
        self._append_am(amount)
        self._append_id(trade_id)
        if ts_ns >= self._trigger:
            self._crossed(ts_ns, price, amount)
        if len(self._pts) >= self._pending_limit:
            self._ingest_pending()
            self._emit()
        return self._ready

    def add_batch(
        self,
        ts_ns: np.ndarray | Sequence[int],
        price: np.ndarray | Sequence[float],
        amount: np.ndarray | Sequence[float],
        trade_id: np.ndarray | Sequence[int],
    ) -> int:
        """Feed trades in arrival order (arrays of equal length: int64 ns UTC, float64, float64, int64).

        Same result as calling :meth:`add` for each trade in order. Processed at once (vectorized).

        Returns:
            The number of final bars waiting for :meth:`pop_bars`.
        """
        ts = np.asarray(ts_ns, dtype=np.int64)
        px = np.asarray(price, dtype=np.float64)
        am = np.asarray(amount, dtype=np.float64)
        ids = np.asarray(trade_id, dtype=np.int64)
        if not (ts.shape == px.shape == am.shape == ids.shape) or ts.ndim != 1:
            raise InvalidArgumentError("add_batch needs four 1-d arrays of equal length")
        if self._pts:
            self._ingest_pending()
        self._ingest(ts, px, am, ids)
        self._emit()
        return self._waiting

    def add_ticks(self, ticks: pd.DataFrame) -> int:
        """Feed a tick frame (:mod:`btlab.model.tick` layout, rows in arrival order); numeric trade ids required."""
        ts, px, am, ids = tick_arrays(ticks)
        if ids is None:
            raise InvalidArgumentError("streaming aggregation needs numeric trade ids (column 'trade_id')")
        return self.add_batch(ts, px, am, ids)

    def advance(self, now_event_ns: int) -> int:
        """Tell the aggregator that event time has reached ``now_event_ns`` (int ns UTC; e.g. an exchange heartbeat
        or event time of another stream), closing windows although no trade arrived. Subject to the lateness like
        a trade time. Returns the number of final bars waiting for :meth:`pop_bars`."""
        if self._pts:
            self._ingest_pending()
        if now_event_ns > self._max_ts:
            self._max_ts = int(now_event_ns)
        self._emit()
        return self._waiting

    # ---- results -------------------------------------------------------------------------------------------
    def pop_bars(self) -> dict[str, pd.DataFrame]:
        """Final bars produced since the last call, per timeframe (``{"1m": frame, ...}``, every timeframe present,
        frames possibly empty), each sorted by ``ts`` with :data:`AGG_BAR_COLUMNS`. Safe to store as final."""
        return {tf: _bars_frame(bars) for tf, bars in self.pop_bar_arrays().items()}

    def pop_bar_arrays(self) -> dict[str, dict[str, np.ndarray]]:
        """As :meth:`pop_bars`, without pandas (for low-latency consumers): per timeframe a dict of numpy arrays
        keyed by :data:`AGG_BAR_COLUMNS`, ``ts`` as int64 ns UTC (bar open) and ``trades`` as int64."""
        self._sync()
        out = {}
        for k, tf in enumerate(self.timeframes):
            out[tf.value] = _concat_bars(self._out[k])
            self._out[k] = []
        self._waiting = 0
        self._ready = False
        return out

    def flush(self) -> dict[str, pd.DataFrame]:
        """The still-OPEN bars (windows not yet final), per timeframe, as they stand now.

        For shutdown or display only: these bars are NOT final (later trades may still change them), so callers
        must not store them as final bars. Does not change the aggregator's state. Final bars not yet popped are
        not included (see :meth:`pop_bars`).
        """
        self._sync()
        out = {}
        b0, b1 = self._b0, self._b1
        bts = self._bts[b0:b1]
        for k, tf in enumerate(self.timeframes):
            lo = self._until[k]
            i0 = 0 if lo is None else int(np.searchsorted(bts, lo, side="left"))
            sts, spx, sam = self._slice(k, b0 + i0, b1)
            bars = _aggregate_sorted(
                sts,
                spx,
                sam,
                self._tf_ns[k],
                self._origin[k],
                flat=self._flat,
                decimals=self._decimals,
                lo=lo,
                prev_close=self._last_close[k],
            )
            out[tf.value] = _bars_frame(bars)
        return out

    # ---- counters (each processes pending single trades first) ----------------------------------------------
    @property
    def accepted_ticks(self) -> int:
        """Trades merged into at least one timeframe's bars."""
        self._sync()
        return self._n_accepted_ticks

    @property
    def invalid_ticks(self) -> int:
        """Trades dropped as invalid (see :meth:`quarantine_log`)."""
        self._sync()
        return self._n_invalid_ticks

    @property
    def duplicate_ticks(self) -> int:
        """Trades dropped because their id repeats a retained accepted trade."""
        self._sync()
        return self._n_duplicate_ticks

    @property
    def late_ticks(self) -> int:
        """Trades late for at least one timeframe, each counted once (see :meth:`late_log`)."""
        self._sync()
        return self._n_late_ticks

    @property
    def bars_emitted(self) -> int:
        """Final bars produced so far (all timeframes)."""
        self._sync()
        return self._n_bars_emitted

    def _sync(self) -> None:
        """Classify and merge pending single trades (see :meth:`add`)."""
        if self._pts:
            self._process_pending()

    @property
    def watermark_ns(self) -> int | None:
        """Current watermark (int ns UTC), or None before the first event."""
        self._sync()
        return None if self._max_ts == _NO_TIME else self._max_ts - self._lateness

    @property
    def late_by_timeframe(self) -> dict[str, int]:
        """Late trades per timeframe (a trade late for 1s but not for 1m counts under 1s only)."""
        self._sync()
        return {tf.value: n for tf, n in zip(self.timeframes, self._late_tf)}

    def stats(self) -> dict[str, int | None]:
        """Counters: accepted, invalid, duplicate and late trades, bars emitted, retained trades, watermark."""
        self._sync()
        return {
            "accepted_ticks": self._n_accepted_ticks,
            "invalid_ticks": self._n_invalid_ticks,
            "duplicate_ticks": self._n_duplicate_ticks,
            "late_ticks": self._n_late_ticks,
            "bars_emitted": self._n_bars_emitted,
            "retained_ticks": self._b1 - self._b0,
            "watermark_ns": None if self._max_ts == _NO_TIME else self._max_ts - self._lateness,
        }

    def late_log(self) -> pd.DataFrame:
        """The last ``log_size`` late trades: ``ts`` (UTC), ``price``, ``amount``, ``trade_id``, ``watermark`` (at
        arrival, UTC) and ``timeframes`` (comma-separated timeframes whose final bar the trade missed)."""
        self._sync()
        return self._log_frame(self._late_log, "timeframes")

    def quarantine_log(self) -> pd.DataFrame:
        """The last ``log_size`` invalid trades with the ``reason`` (same columns as :meth:`late_log`)."""
        self._sync()
        return self._log_frame(self._bad_log, "reason")

    @staticmethod
    def _log_frame(log: collections.deque, label: str) -> pd.DataFrame:
        rows = list(log)
        frame = pd.DataFrame(rows, columns=["ts", "price", "amount", "trade_id", "watermark", label])
        for col in ("ts", "watermark"):
            frame[col] = pd.to_datetime(frame[col].astype("Int64"), utc=True)
        frame["trade_id"] = frame["trade_id"].astype("int64")
        return frame

    # ---- internals -----------------------------------------------------------------------------------------
    def _process_pending(self) -> int:
        self._ingest_pending()
        return self._emit()

    def _crossed(self, ts_ns: int, price: float, amount: float) -> None:
        """A single trade reached the trigger: flag that a window closed and move the trigger (pure Python, rare)."""
        if not (0 < price < math.inf and 0 < amount < math.inf) or ts_ns == _NAT:
            return  # invalid trades do not move the watermark
        started = self._trigger != _NO_TIME  # False only for the very first event: nothing to close before it
        wm = int(ts_ns) - self._lateness
        self._trigger = min((wm - o) // t * t + o + t for t, o in zip(self._tf_ns, self._origin)) + self._lateness
        if started:
            self._ready = True

    def _ingest_pending(self) -> None:
        ts = np.array(self._pts, dtype=np.int64)
        px = np.array(self._ppx, dtype=np.float64)
        am = np.array(self._pam, dtype=np.float64)
        ids = np.array(self._pid, dtype=np.int64)
        self._pts.clear()
        self._ppx.clear()
        self._pam.clear()
        self._pid.clear()
        self._ingest(ts, px, am, ids)

    def _ingest(self, ts: np.ndarray, px: np.ndarray, am: np.ndarray, ids: np.ndarray) -> None:
        """Classify trades in arrival order (invalid, duplicate, late) and merge the rest into the retained set.

        Vectorized, with the same outcome as handling the trades one by one: the watermark a trade meets is the
        running maximum of the valid event times before it, minus the lateness.
        """
        m = ts.size
        if m == 0:
            return
        ok = (px > 0) & (px < np.inf) & (am > 0) & (am < np.inf) & (ts != _NAT)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            self._n_invalid_ticks += bad.size
            wm = None if self._max_ts == _NO_TIME else self._max_ts - self._lateness
            for i in bad[-self._bad_log.maxlen :] if self._bad_log.maxlen else ():
                self._bad_log.append(
                    (None if ts[i] == _NAT else int(ts[i]), float(px[i]), float(am[i]), int(ids[i]), wm,
                     _invalid_reason(int(ts[i]), float(px[i]), float(am[i])))
                )
            ts, px, am, ids = ts[ok], px[ok], am[ok], ids[ok]
            m = ts.size
            if m == 0:
                return
        prior = self._max_ts
        lateness = self._lateness
        ntf = len(self._tf_ns)

        # 1. lateness per timeframe against the watermark each trade meets on arrival
        late_masks: list[np.ndarray] | None = None
        wm_before = None
        increasing = m < 2 or not np.less(ts[1:], ts[:-1]).any()
        if increasing and int(ts[0]) >= prior - lateness:
            new_max = max(prior, int(ts[-1]))  # nothing can be late: every trade is at or after its watermark
        else:
            before = np.empty(m, dtype=np.int64)
            before[0] = prior
            if m > 1:
                np.maximum.accumulate(ts[:-1], out=before[1:])
                np.maximum(before[1:], prior, out=before[1:])
            wm_before = before - lateness
            new_max = max(int(before[-1]), int(ts[-1]))
            cand = np.flatnonzero(ts < wm_before)
            if cand.size:
                masks = []
                for k in range(ntf):
                    tf_ns, origin = self._tf_ns[k], self._origin[k]
                    mask = np.zeros(m, dtype=bool)
                    wmc = wm_before[cand]
                    mask[cand] = ts[cand] < (wmc - origin) // tf_ns * tf_ns + origin
                    masks.append(mask)
                if any(mk.any() for mk in masks):
                    late_masks = masks
        self._max_ts = new_max
        late_all = None
        if late_masks is not None:
            late_all = late_masks[0].copy()
            for mk in late_masks[1:]:
                late_all &= mk

        # 2. duplicates: the id of a retained accepted trade, or of an earlier trade of this batch that is accepted
        dup = None
        if not (int(ids[0]) > self._max_id and (m < 2 or not np.less_equal(ids[1:], ids[:-1]).any())):
            dup = np.zeros(m, dtype=bool)
            if self._b1 > self._b0:
                dup = np.isin(ids, self._bid[self._b0 : self._b1])
            fresh = ~dup if late_all is None else ~dup & ~late_all  # could be accepted
            idx = np.flatnonzero(fresh)
            uniq, first = np.unique(ids[idx], return_index=True)
            first_pos = idx[first]  # position of the first acceptable arrival of each id
            where = np.searchsorted(uniq, ids)
            where[where >= uniq.size] = 0
            known = uniq.size > 0
            has = (uniq[where] == ids) if known else np.zeros(m, dtype=bool)
            dup |= has & (first_pos[where] < np.arange(m)) if known else dup
            if not dup.any():
                dup = None
            else:
                self._n_duplicate_ticks += int(np.count_nonzero(dup))

        # 3. count and log late trades (duplicates are not counted as late)
        excl = None
        if late_masks is not None:
            late_any = np.zeros(m, dtype=bool)
            for k, mk in enumerate(late_masks):
                if dup is not None:
                    mk &= ~dup
                self._late_tf[k] += int(np.count_nonzero(mk))
                late_any |= mk
            n_late = int(np.count_nonzero(late_any))
            if n_late:
                self._n_late_ticks += n_late
                maxlen = self._late_log.maxlen or 0
                assert wm_before is not None  # late trades exist only on the per-arrival path
                for i in np.flatnonzero(late_any)[-maxlen:] if maxlen else ():
                    names = ",".join(tf.value for k, tf in enumerate(self.timeframes) if late_masks[k][i])
                    self._late_log.append(
                        (int(ts[i]), float(px[i]), float(am[i]), int(ids[i]), int(wm_before[i]), names)
                    )
                excl = np.zeros(m, dtype=np.int64)
                for k, mk in enumerate(late_masks):
                    excl[mk] |= 1 << k

        # 4. merge the accepted trades
        accept = None
        if dup is not None:
            accept = ~dup
        if late_all is not None:
            accept = ~late_all if accept is None else accept & ~late_all
        if accept is not None:
            ts, px, am, ids = ts[accept], px[accept], am[accept], ids[accept]
            if excl is not None:
                excl = excl[accept]
            if ts.size == 0:
                return
        if excl is not None and not excl.any():
            excl = None
        self._max_id = max(self._max_id, int(ids.max()))
        self._n_accepted_ticks += ts.size
        self._insert(ts, px, am, ids, excl)

    def _reserve(self, extra: int) -> None:
        b0, b1 = self._b0, self._b1
        cap = self._bts.size
        if b1 + extra <= cap:
            return
        live = b1 - b0
        if live + extra <= cap // 2 and b0 > 0:  # compact in place
            for name in _BUFFERS:
                arr = getattr(self, name)
                arr[:live] = arr[b0:b1]
        else:
            new_cap = max(cap * 2, 1 << (int(live + extra) - 1).bit_length())
            for name in _BUFFERS:
                arr = getattr(self, name)
                grown = np.empty(new_cap, dtype=arr.dtype)
                grown[:live] = arr[b0:b1]
                setattr(self, name, grown)
        self._b0, self._b1 = 0, live

    def _insert(
        self, ts: np.ndarray, px: np.ndarray, am: np.ndarray, ids: np.ndarray, excl: np.ndarray | None
    ) -> None:
        m = ts.size
        if excl is None:
            excl = np.zeros(m, dtype=np.int64)
        if m > 1 and (np.less(ts[1:], ts[:-1]).any() or ((ts[1:] == ts[:-1]) & (ids[1:] < ids[:-1])).any()):
            order = np.lexsort((ids, ts))
            ts, px, am, ids, excl = ts[order], px[order], am[order], ids[order], excl[order]
        self._reserve(m)
        b0, b1 = self._b0, self._b1
        t0 = int(ts[0])
        if b1 == b0 or t0 > self._bts[b1 - 1] or (t0 == self._bts[b1 - 1] and ids[0] > self._bid[b1 - 1]):
            self._bts[b1 : b1 + m] = ts
            self._bpx[b1 : b1 + m] = px
            self._bam[b1 : b1 + m] = am
            self._bid[b1 : b1 + m] = ids
            self._bex[b1 : b1 + m] = excl
        else:  # out of order: re-sort the tail of the retained trades that the new ones fall into
            p = b0 + int(np.searchsorted(self._bts[b0:b1], t0, side="left"))
            tts = np.concatenate((self._bts[p:b1], ts))
            tid = np.concatenate((self._bid[p:b1], ids))
            order = np.lexsort((tid, tts))
            self._bpx[p : b1 + m] = np.concatenate((self._bpx[p:b1], px))[order]
            self._bam[p : b1 + m] = np.concatenate((self._bam[p:b1], am))[order]
            self._bex[p : b1 + m] = np.concatenate((self._bex[p:b1], excl))[order]
            self._bts[p : b1 + m] = tts[order]
            self._bid[p : b1 + m] = tid[order]
        self._b1 = b1 + m

    def _slice(self, k: int, i: int, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Retained trades ``[i, j)`` that count for timeframe ``k`` (not late for it)."""
        ex = self._bex[i:j]
        if ex.any():
            sel = (ex & (1 << k)) == 0
            return self._bts[i:j][sel], self._bpx[i:j][sel], self._bam[i:j][sel]
        return self._bts[i:j], self._bpx[i:j], self._bam[i:j]

    def _emit(self) -> int:
        """Close every window the watermark has passed; prune trades no longer needed; set the next trigger."""
        if self._max_ts == _NO_TIME:
            return 0
        wm = self._max_ts - self._lateness
        b0, b1 = self._b0, self._b1
        bts = self._bts[b0:b1]
        produced = 0
        next_close = None
        for k in range(len(self._tf_ns)):
            tf_ns, origin = self._tf_ns[k], self._origin[k]
            until = (wm - origin) // tf_ns * tf_ns + origin
            nxt = until + tf_ns
            next_close = nxt if next_close is None else min(next_close, nxt)
            prev = self._until[k]
            if prev is not None and until <= prev:
                continue
            if prev is None:
                i0 = 0
            else:
                i0 = int(np.searchsorted(bts, prev, side="left"))
            i1 = int(np.searchsorted(bts, until, side="left"))
            if i1 > i0 or (self._flat and prev is not None and not math.isnan(self._last_close[k])):
                sts, spx, sam = self._slice(k, b0 + i0, b0 + i1)
                bars = _aggregate_sorted(
                    sts,
                    spx,
                    sam,
                    tf_ns,
                    origin,
                    flat=self._flat,
                    decimals=self._decimals,
                    lo=prev,
                    hi=until,
                    prev_close=self._last_close[k],
                )
                nb = bars["ts"].size
                if nb:
                    self._out[k].append(bars)
                    self._waiting += nb
                    self._last_close[k] = float(bars["close"][-1])
                    produced += nb
            self._until[k] = until
        # prune: keep trades of open windows and the dedup retention
        cut = min(min(u for u in self._until if u is not None), wm - self._retention)
        if b1 > b0 and bts[0] < cut:
            self._b0 = b0 + int(np.searchsorted(bts, cut, side="left"))
        self._trigger = next_close + self._lateness  # type: ignore[operator]
        self._n_bars_emitted += produced
        self._ready = self._waiting > 0
        return produced
