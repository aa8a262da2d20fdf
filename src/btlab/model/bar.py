"""OHLCV bars: the column layout btlab uses everywhere, and validation of a batch of bars.

A bar frame is a :class:`pandas.DataFrame` with one row per bar, sorted by time:

============  ==========================  ==============================================
column        dtype                       meaning
============  ==========================  ==============================================
``ts``        ``datetime64[ns, UTC]``     bar OPEN time (as Binance and ccxt stamp klines)
``open``      float64                     first trade price in the window
``high``      float64                     highest trade price
``low``       float64                     lowest trade price
``close``     float64                     last trade price
``volume``    float64                     traded amount in the base asset (shares for equities)
``trades``    Int64 (nullable)            number of trades in the window, when the source says
``vwap``      float64 (NaN if unknown)    volume-weighted average trade price, when known
============  ==========================  ==============================================

A bar is final only once its window ``[ts, ts + timeframe)`` has closed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from btlab.errors import DataValidationError
from btlab.model.timeframe import Timeframe

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLUMNS: tuple[str, ...] = ("ts", *PRICE_COLUMNS, "volume", "trades", "vwap")
REQUIRED_COLUMNS: tuple[str, ...] = ("ts", *PRICE_COLUMNS, "volume")


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def validate_bars(frame: pd.DataFrame, source: str, timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """Check a batch of bars and return it in btlab's canonical layout.

    Checks, in this order, and reports the first violation: required columns present; ``ts`` is timezone-aware
    UTC datetime; no missing value in ``ts``/OHLCV; prices > 0; volume >= 0; ``low <= min(open, close)``,
    ``high >= max(open, close)`` and ``high >= low``; ``ts`` strictly increasing (duplicates and decreases are
    named separately); every ``ts`` aligned to ``timeframe`` when one is given.

    Args:
        frame: bars with at least ``ts, open, high, low, close, volume`` (``trades`` optional).
        source: where the bars came from, used in error messages (e.g. the file path).
        timeframe: if given, bar open times must be multiples of it (UTC epoch origin; Monday for weeks).

    Returns:
        A new frame with exactly :data:`BAR_COLUMNS`, float64 prices/volume/vwap (NaN when not given) and nullable
        Int64 ``trades``.

    Raises:
        DataValidationError: naming ``source``, the 1-based row of ``frame`` and the column at fault.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            source, f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}"
        )
    if len(frame) == 0:
        raise DataValidationError(source, "no bars")
    ts = frame["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise DataValidationError(source, f"timestamps must be timezone-aware datetimes, got {ts.dtype}", column="ts")
    ts = ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out = pd.DataFrame({"ts": ts.reset_index(drop=True)})
    for col in (*PRICE_COLUMNS, "volume"):
        try:
            out[col] = pd.to_numeric(frame[col].reset_index(drop=True), errors="raise").astype("float64")
        except (ValueError, TypeError):
            bad = pd.to_numeric(frame[col], errors="coerce").isna() & frame[col].notna()
            row = _first(bad.to_numpy())
            value = frame[col].iloc[row] if row is not None else "?"
            raise DataValidationError(
                source, f"not a number: {value!r}", row=None if row is None else row + 1, column=col
            ) from None
    if "trades" in frame.columns:
        trades = pd.to_numeric(frame["trades"].reset_index(drop=True), errors="coerce")
        out["trades"] = trades.round().astype("Int64")
    else:
        out["trades"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    if "vwap" in frame.columns:
        out["vwap"] = pd.to_numeric(frame["vwap"].reset_index(drop=True), errors="coerce").astype("float64")
    else:
        out["vwap"] = np.nan

    if (row := _first(out["ts"].isna().to_numpy())) is not None:
        raise DataValidationError(source, "missing timestamp", row=row + 1, column="ts")
    check_bar_values(*(out[col].to_numpy() for col in (*PRICE_COLUMNS, "volume")), source)

    ns = pd.DatetimeIndex(out["ts"]).asi8
    if len(ns) > 1:
        step = np.diff(ns)
        if (row := _first(step == 0)) is not None:
            raise DataValidationError(
                source, f"duplicate timestamp {out['ts'].iloc[row + 1]} (same as the bar before it)", row=row + 2, column="ts"
            )
        if (row := _first(step < 0)) is not None:
            raise DataValidationError(
                source,
                f"timestamps not increasing: {out['ts'].iloc[row + 1]} follows {out['ts'].iloc[row]}",
                row=row + 2,
                column="ts",
            )
    if timeframe is not None:
        check_aligned(ns, timeframe, source)
    return out


def check_bar_values(o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray, volume: np.ndarray,  # noqa: E741
                     source: str) -> None:
    """Check bar values (float64 arrays of equal length, one entry per bar, row ``i`` reported as ``i + 1``):
    finite, prices > 0, volume >= 0, ``high >= low``, ``high >= max(open, close)``, ``low <= min(open, close)``.

    Raises:
        DataValidationError: the first violation, naming ``source``, the row and the column.
    """
    for col, values in zip((*PRICE_COLUMNS, "volume"), (o, h, l, c, volume)):
        if (row := _first(~np.isfinite(values))) is not None:
            raise DataValidationError(source, f"missing or infinite value ({values[row]})", row=row + 1, column=col)
    for col, values in zip(PRICE_COLUMNS, (o, h, l, c)):
        if (row := _first(values <= 0)) is not None:
            raise DataValidationError(source, f"price must be positive, got {values[row]}", row=row + 1, column=col)
    if (row := _first(volume < 0)) is not None:
        raise DataValidationError(source, f"volume must be >= 0, got {volume[row]}", row=row + 1, column="volume")
    if (row := _first(h < l)) is not None:
        raise DataValidationError(source, f"high {h[row]} is below low {l[row]}", row=row + 1, column="high")
    if (row := _first(h < np.maximum(o, c))) is not None:
        raise DataValidationError(
            source, f"high {h[row]} is below open {o[row]} or close {c[row]}", row=row + 1, column="high"
        )
    if (row := _first(l > np.minimum(o, c))) is not None:
        raise DataValidationError(
            source, f"low {l[row]} is above open {o[row]} or close {c[row]}", row=row + 1, column="low"
        )


def check_aligned(ns: np.ndarray, timeframe: Timeframe | str, source: str, rows: np.ndarray | None = None) -> None:
    """Check that bar open times ``ns`` (int64 epoch ns, UTC) are multiples of ``timeframe`` from its origin
    (the UTC epoch; Monday 1970-01-05 for weeks). ``rows``: the 1-based row number of each entry in the input
    (default: position + 1), for inputs that hold several series.

    Raises:
        DataValidationError: the first misaligned time, naming ``source``, its row and column ``ts``.
    """
    tf = Timeframe.parse(timeframe)
    if (i := _first((ns - tf.origin_ns) % tf.nanos != 0)) is not None:
        row = i + 1 if rows is None else int(rows[i])
        raise DataValidationError(
            source, f"timestamp {pd.Timestamp(int(ns[i]), tz='UTC')} is not a {tf} bar open time (wrong --timeframe?)",
            row=row, column="ts",
        )
