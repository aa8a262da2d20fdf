"""Ticks (trades): the column layout btlab uses, validation with quarantine, and the canonical trade order.

A tick frame is a :class:`pandas.DataFrame` with one row per trade:

=============  ==========================  ===========================================================
column         dtype                       meaning
=============  ==========================  ===========================================================
``ts``         ``datetime64[ns, UTC]``     the exchange's trade time (event time, never the local receive time)
``exchange``   str                         ccxt exchange id, e.g. ``binance``
``symbol``     str                         ccxt unified symbol, e.g. ``BTC/USDT``
``trade_id``   str                         the exchange's trade id (decimal digits on most exchanges); may be missing
``price``      float64                     trade price in the quote asset, > 0 and finite
``amount``     float64                     traded quantity in the base asset, > 0 and finite
``side``       str or missing              taker side: ``buy`` or ``sell`` (Binance ``m`` = buyer is maker -> ``sell``)
=============  ==========================  ===========================================================

Canonical trade order (used by every aggregation in btlab, batch and streaming alike): ascending ``ts``, then
ascending **numeric** trade id among trades with the same ``ts`` (Binance stamps many trades of one taker order
with the same millisecond; their ids give the exchange's matching order, and ``"999" < "1000"``). When the ids are
missing or not all integers (:func:`trade_ids_as_int`), trades with equal ``ts`` keep their input order (a stable
sort by ``ts``). The first trade in this order is a bar's open, the last its close. Trades repeating an earlier
trade's id are duplicates: the first one counts. The streaming aggregator needs integer ids.

A malformed trade (missing or unparsable time, missing / non-numeric / infinite / non-positive price or amount,
a side other than buy/sell) is never fatal: :func:`split_valid_ticks` moves it to a quarantine frame with the
reason, so callers can count and keep it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from btlab.errors import DataValidationError

TICK_COLUMNS: tuple[str, ...] = ("ts", "exchange", "symbol", "trade_id", "price", "amount", "side")
REQUIRED_TICK_COLUMNS: tuple[str, ...] = ("ts", "price", "amount")
SIDES: tuple[str, ...] = ("buy", "sell")

#: Quarantine reasons, in the order the rules are checked (a row gets the first that applies).
REASON_TIME = "missing or unparsable time"
REASON_PRICE_MISSING = "price missing or not a number"
REASON_PRICE_INFINITE = "price infinite"
REASON_PRICE_NONPOSITIVE = "price not positive"
REASON_AMOUNT_MISSING = "amount missing or not a number"
REASON_AMOUNT_INFINITE = "amount infinite"
REASON_AMOUNT_NONPOSITIVE = "amount not positive"
REASON_SIDE = "side not buy or sell"


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NAT_I8 = np.iinfo(np.int64).min


def _epoch_to_ns(values: np.ndarray, ok: np.ndarray, unit: str) -> np.ndarray:
    """int64 epoch ``unit`` values -> int64 ns (NaT where not ``ok`` or out of the ns range)."""
    factor = _UNIT_NS[unit]
    limit = np.iinfo(np.int64).max // factor
    ok = ok & (values != _NAT_I8) & (np.abs(values) <= limit)
    out = np.full(values.size, _NAT_I8, dtype=np.int64)
    out[ok] = values[ok] * factor
    return out


def _parse_time(values: pd.Series, time_unit: str) -> pd.Series:
    """``values`` as ``datetime64[ns, UTC]``; unparsable, missing or out-of-range entries become NaT (never raises).

    Vectorized for datetime, integer, float and text columns; a Python loop only for text that is not ISO 8601.
    """
    if time_unit not in _UNIT_NS:
        raise ValueError(f"time_unit must be one of {', '.join(_UNIT_NS)}, got {time_unit!r}")
    dtype = values.dtype
    index = values.index

    def as_series(ns: np.ndarray) -> pd.Series:
        return pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"), index=index)

    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        arr = values.array
        ints = np.asarray(arr.asi8) if hasattr(arr, "asi8") else values.to_numpy().view(np.int64)
        unit = dtype.unit if hasattr(dtype, "unit") else np.datetime_data(values.dtype)[0]
        return as_series(_epoch_to_ns(ints, np.ones(ints.size, dtype=bool), unit))  # naive values taken as UTC
    if pd.api.types.is_bool_dtype(dtype):
        return as_series(np.full(len(values), _NAT_I8, dtype=np.int64))
    if pd.api.types.is_integer_dtype(dtype):
        ok = values.notna().to_numpy()
        ints = values.to_numpy(dtype=np.int64, na_value=0)
        return as_series(_epoch_to_ns(ints, ok, time_unit))
    if pd.api.types.is_float_dtype(dtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(num) & (np.abs(num) < 9.2e18)
        ints = np.where(ok, np.round(np.where(ok, num, 0.0)), 0).astype(np.int64)
        return as_series(_epoch_to_ns(ints, ok, time_unit))
    # text / objects: numbers (and numeric text) are epoch time_unit, the rest is parsed as dates
    ns = np.full(len(values), _NAT_I8, dtype=np.int64)
    obj = values.astype(object)
    num = pd.to_numeric(obj, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    is_num = np.isfinite(num) & (np.abs(num) < 9.2e18)
    if is_num.any():
        ns[is_num] = _epoch_to_ns(np.round(num[is_num]).astype(np.int64), np.ones(int(is_num.sum()), bool), time_unit)
    rest = np.flatnonzero(~is_num & obj.notna().to_numpy())
    if rest.size:
        part = obj.iloc[rest]
        try:
            parsed = pd.to_datetime(part, utc=True, errors="coerce", format="ISO8601")
            ints = np.asarray(parsed.array.asi8)
            ns[rest] = _epoch_to_ns(ints, ints != _NAT_I8, parsed.dt.unit)
        except (TypeError, ValueError, OverflowError):
            pass
        for i in rest[ns[rest] == _NAT_I8]:  # not ISO 8601: let pandas try the element on its own
            value = obj.iloc[i]
            if not isinstance(value, str):
                continue
            try:
                ts = pd.Timestamp(value)
                ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
                ns[i] = ts.as_unit("ns").value
            except (TypeError, ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
                pass
    return as_series(ns)


def _text(values: pd.Series) -> pd.Series:
    """Values as pandas text (``str`` dtype), missing stays missing."""
    return values.astype("str")


def _trade_id_text(values: pd.Series) -> pd.Series:
    """Trade ids as text; integral numbers lose any ``.0``; missing stays missing."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64").astype("str")
    if pd.api.types.is_float_dtype(values.dtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        out = [None if not np.isfinite(v) else (str(int(v)) if float(v).is_integer() else repr(float(v))) for v in num]
        return pd.Series(out, index=values.index, dtype="str")
    text = values.astype("str").str.strip()
    floats = values.map(lambda v: isinstance(v, float) and np.isfinite(v) and float(v).is_integer()) if (
        values.dtype == object) else None
    if floats is not None and floats.any():
        text[floats] = [str(int(v)) for v in values[floats]]
    return text


def split_valid_ticks(
    frame: pd.DataFrame, source: str, *, time_unit: str = "ms"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a batch of trades into valid ticks (canonical layout) and quarantined rows (with the reason).

    Rules, checked in this order, the first failing one naming the reason (see the ``REASON_*`` constants):
    ``ts`` present and parsable (timezone-aware values are converted to UTC, naive ones are taken as UTC,
    numbers are epoch ``time_unit`` -- ccxt's ``timestamp`` is milliseconds -- and strings are parsed);
    ``price`` a finite number > 0; ``amount`` a finite number > 0; ``side`` missing or buy/sell
    (case-insensitive). Nothing here raises for a bad row.

    Args:
        frame: trades with at least ``ts, price, amount``; ``exchange, symbol, trade_id, side`` are optional
            (missing ones become null). Prices and amounts may be numbers or decimal strings
            (Binance sends ``"61837.63000000"``).
        source: where the trades came from (file, stream), written into the quarantine frame.
        time_unit: unit of numeric ``ts`` values (``"ms"``, ``"us"``, ``"ns"``, ``"s"``).

    Returns:
        ``(valid, quarantined)``. ``valid`` has exactly :data:`TICK_COLUMNS` (dtypes as in the module docstring,
        ``trade_id`` as text), in input order (not sorted), index reset. ``quarantined`` has the bad rows as
        given (original columns and values, original index), plus ``row`` (1-based position in ``frame``),
        ``reason`` and ``source``.

    Raises:
        DataValidationError: only when the whole input is unusable (a required column is missing).
    """
    missing = [c for c in REQUIRED_TICK_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            source, f"missing tick column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}"
        )
    n = len(frame)
    ts = _parse_time(frame["ts"], time_unit)
    price = pd.to_numeric(frame["price"], errors="coerce").astype("float64").to_numpy()
    amount = pd.to_numeric(frame["amount"], errors="coerce").astype("float64").to_numpy()
    if "side" in frame.columns:
        side = frame["side"].astype("str").str.strip().str.lower()
        bad_side = (side.notna() & ~side.isin(SIDES)).to_numpy()
    else:
        side = pd.Series([None] * n, index=frame.index, dtype="str")
        bad_side = np.zeros(n, dtype=bool)

    reason = np.full(n, None, dtype=object)
    checks = (
        (ts.isna().to_numpy(), REASON_TIME),
        (np.isnan(price), REASON_PRICE_MISSING),
        (np.isinf(price), REASON_PRICE_INFINITE),
        (price <= 0, REASON_PRICE_NONPOSITIVE),
        (np.isnan(amount), REASON_AMOUNT_MISSING),
        (np.isinf(amount), REASON_AMOUNT_INFINITE),
        (amount <= 0, REASON_AMOUNT_NONPOSITIVE),
        (bad_side, REASON_SIDE),
    )
    for mask, text in checks:
        reason[mask & (reason == None)] = text  # noqa: E711 (elementwise)
    bad = reason != None  # noqa: E711
    good = ~bad

    def column(col: str) -> pd.Series:
        if col in frame.columns:
            return _text(frame[col])
        return pd.Series([None] * n, index=frame.index, dtype="str")

    trade_id = _trade_id_text(frame["trade_id"]) if "trade_id" in frame.columns else column("trade_id")
    valid = pd.DataFrame(
        {
            "ts": ts[good].reset_index(drop=True),
            "exchange": column("exchange")[good].reset_index(drop=True),
            "symbol": column("symbol")[good].reset_index(drop=True),
            "trade_id": trade_id[good].reset_index(drop=True),
            "price": price[good],
            "amount": amount[good],
            "side": side[good].reset_index(drop=True),
        }
    )
    quarantined = frame.loc[bad].copy()
    quarantined["row"] = np.flatnonzero(bad) + 1
    quarantined["reason"] = reason[bad].astype(str) if bad.any() else pd.Series([], dtype="str")
    quarantined["source"] = source
    return valid, quarantined


def trade_ids_as_int(values: pd.Series | np.ndarray | None) -> np.ndarray | None:
    """Numeric trade ids as ``int64`` (for the canonical order and dedup), or ``None`` if not all numeric.

    Integer columns are returned as is (no copy when already ``int64``); text columns are parsed when every id is
    an optionally signed decimal integer that fits in int64 (an Arrow-backed ``str`` column is cast in C, about
    6 ns an id). Missing ids, spaces or any other character give ``None``: the caller then orders equal times by
    input order and cannot drop duplicates by id.
    """
    if values is None:
        return None
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iu":
            return values.astype(np.int64, copy=False)
        values = pd.Series(values)
    dtype = values.dtype
    if pd.api.types.is_integer_dtype(dtype):
        if values.hasnans if hasattr(values, "hasnans") else False:
            return None
        return values.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dtype):
        arr = values.to_numpy(dtype=np.float64)
        if not np.isfinite(arr).all() or not (arr == np.round(arr)).all() or (np.abs(arr) > 2**53).any():
            return None
        return arr.astype(np.int64)
    chunked = getattr(values.array, "_pa_array", None)
    try:
        if chunked is None:  # object column (text and/or numbers): its text form, Arrow-backed
            chunked = getattr(values.astype("str").array, "_pa_array", None)
            if chunked is None:
                return None
        if chunked.null_count:
            return None
        if not pa.types.is_integer(chunked.type):
            # Arrow's string -> int64 cast accepts exactly an optional sign and decimal digits, and fails on
            # overflow, spaces or anything else: one C pass instead of a Python loop.
            chunked = pc.cast(chunked, pa.int64())
        return np.asarray(chunked.to_numpy(), dtype=np.int64)
    except (TypeError, ValueError, pa.ArrowException):
        return None


def ticks_from_arrays(
    ts_ns: np.ndarray,
    price: np.ndarray,
    amount: np.ndarray,
    trade_id: np.ndarray | None = None,
    side: np.ndarray | None = None,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    trade_id_as_text: bool = True,
) -> pd.DataFrame:
    """Build a tick frame (:data:`TICK_COLUMNS`) from arrays of equal length ``n``.

    Args:
        ts_ns: trade times, int64 nanoseconds since the epoch (UTC).
        price, amount: float64 price (quote asset) and amount (base asset).
        trade_id: int64 trade ids (or None).
        side: ``"buy"``/``"sell"``/None per trade, or a bool array ``buyer_is_maker`` (True -> ``"sell"``).
        exchange, symbol: constant identity columns.
        trade_id_as_text: keep the layout's text ids (default); ``False`` keeps int64 ids, which
            :func:`btlab.marketdata.bars.aggregate_ticks` accepts as a faster equivalent.

    The values are not validated here (see :func:`split_valid_ticks`).
    """
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    n = len(ts_ns)
    if side is None:
        side_col = pd.Series([None] * n, dtype="str")
    else:
        side = np.asarray(side)
        if side.dtype == bool:
            side_col = pd.Series(np.where(side, "sell", "buy"), dtype="str")
        else:
            side_col = pd.Series(side, dtype="str")
    if trade_id is None:
        ids = pd.Series([None] * n, dtype="str")
    else:
        ids_arr = np.asarray(trade_id, dtype=np.int64)
        if trade_id_as_text:
            ids = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(ids_arr).cast(pa.large_string())])))
            ids = ids.astype("str")
        else:
            ids = pd.Series(ids_arr)
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC"),
            "exchange": pd.Series([exchange] * n, dtype="str"),
            "symbol": pd.Series([symbol] * n, dtype="str"),
            "trade_id": ids,
            "price": np.asarray(price, dtype=np.float64),
            "amount": np.asarray(amount, dtype=np.float64),
            "side": side_col,
        }
    )
