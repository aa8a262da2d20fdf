"""Batch tick -> bar aggregation and bar resampling (vectorized numpy, a thread pool for millions of ticks).

:func:`aggregate_ticks` builds bars from a tick frame, :func:`resample_bars` builds higher timeframes from lower
ones; both run the kernel of :mod:`btlab.marketdata.bars.kernel`. Rules: :mod:`btlab.marketdata.bars`.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from btlab.errors import DataValidationError, InvalidArgumentError
from btlab.model.tick import trade_ids_as_int
from btlab.model.timeframe import Timeframe
from btlab.marketdata.bars.kernel import (
    EmptyPolicy,
    _NAT,
    _aggregate_sorted,
    _bars_frame,
    _check_decimals,
    _check_empty,
    _concat_bars,
    _empty_bars,
    _fill_flat,
    _round_volume,
)

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
