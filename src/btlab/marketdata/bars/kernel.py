"""The per-window bar kernel shared by the batch and streaming aggregators (pure numpy, no I/O).

:func:`_aggregate_sorted` turns canonically ordered trades (time, then trade id) into the bars of one timeframe;
:func:`_fill_flat` adds the flat bars of windows without trades. The rules for one bar (open/high/low/close,
volume rounding, trades, vwap) and for empty windows are stated in :mod:`btlab.marketdata.bars`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError
from btlab.model.bar import BAR_COLUMNS

EmptyPolicy = Literal["skip", "flat"]

#: Columns of every bar frame this module returns.
AGG_BAR_COLUMNS: tuple[str, ...] = BAR_COLUMNS  # the bar layout, vwap included

_NAT = np.iinfo(np.int64).min  # NaT as int64
_NO_TIME = -(2**62)  # "no event seen yet": far below any real time, far above int64 min (no overflow)
_NOTIONAL_CHUNK = 1 << 15  # ticks per price*amount scratch block (stays in L2)
_KEYS = ("ts", "open", "high", "low", "close", "volume", "trades", "vwap")


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
