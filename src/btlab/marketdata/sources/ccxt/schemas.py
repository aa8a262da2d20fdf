"""ccxt's wire layouts -- the unified OHLCV row and trade dict -- and their one converter each to btlab's frames.

Like nautilus_trader's ``adapters/binance/common/schemas/market.py`` (``BinanceKline``/``BinanceTrade`` and their
``parse_to_*`` methods), each layout is a typed record here with the function that maps it to the domain frame:

* :class:`OhlcvRow` -> :func:`ohlcv_to_bars` (a bar frame, :mod:`btlab.model.bar`), columnar over a page;
* :class:`Trade` -> :func:`trades_to_ticks` (a tick frame, :mod:`btlab.model.tick` layout, not yet validated);
  :func:`trade_problem` names what makes one trade unusable for the history ingest.

Units: ccxt times are integer milliseconds since the epoch (UTC); frames carry ``datetime64[ns, UTC]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypedDict

import numpy as np
import pandas as pd

from btlab.model.timeframe import Timeframe

__all__ = ["MS", "OHLCV_COLUMNS", "OhlcvRow", "Trade", "ohlcv_to_bars", "trade_problem", "trades_to_ticks"]

MS = 1_000_000  # ns per ms


class OhlcvRow(NamedTuple):
    """One row of ``fetch_ohlcv``: ``[timestamp, open, high, low, close, volume]``.

    ``timestamp`` is the bar's OPEN time in ms (UTC); prices in the quote asset; ``volume`` in the base asset.
    Exchanges may send None for a missing value.
    """

    timestamp: int
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None


class Trade(TypedDict, total=False):
    """The fields btlab reads of a ccxt unified trade (``fetch_trades``, ``watch_trades``, ``parse_trades``).

    ``id``: the exchange's trade id (text; Binance: consecutive integers per symbol); ``timestamp``: trade time in
    ms (UTC); ``price`` (quote asset), ``amount`` (base asset); ``side``: the taker side, ``buy``/``sell``.
    """

    id: str | None
    timestamp: int | None
    price: float | None
    amount: float | None
    side: str | None


#: Column order of a ccxt OHLCV row (also the layout of a headerless 6-column bar CSV).
OHLCV_COLUMNS: tuple[str, ...] = OhlcvRow._fields


def ohlcv_to_bars(rows: Sequence[Sequence[Any]], tf: Timeframe) -> tuple[pd.DataFrame, int]:
    """ccxt OHLCV rows -> a bar frame of the valid, aligned, unique bars (sorted by ``ts``), and how many were rejected.

    A row is rejected when its open time is missing or not on a ``tf`` boundary, a value is missing or not
    finite, a price is not positive, the volume is negative, or ``high``/``low`` do not bound ``open``/``close``.
    Of rows with the same open time the last wins. Columns: ``ts`` (``datetime64[ns, UTC]``), ``open, high, low,
    close, volume`` (float64).
    """
    ms = np.array([r[0] if r and r[0] is not None else -1 for r in rows], dtype=np.int64)
    vals = np.array([[np.nan if v is None else v for v in (list(r[1:6]) + [None] * 5)[:5]] for r in rows],
                    dtype=np.float64).reshape(len(rows), 5)
    o, h, l, c, v = vals.T
    step, origin = tf.seconds * 1000, tf.origin_ns // MS
    ok = (ms >= 0) & ((ms - origin) % step == 0) & np.isfinite(vals).all(axis=1)
    ok &= (o > 0) & (h > 0) & (l > 0) & (c > 0) & (v >= 0)
    ok &= (h >= np.maximum(o, c)) & (l <= np.minimum(o, c))
    frame = pd.DataFrame({
        "ts": pd.to_datetime(ms[ok] * MS, utc=True).astype("datetime64[ns, UTC]"),
        "open": o[ok], "high": h[ok], "low": l[ok], "close": c[ok], "volume": v[ok],
    })
    frame = frame.drop_duplicates("ts", keep="last").sort_values("ts", kind="stable").reset_index(drop=True)
    return frame, int((~ok).sum())


def trades_to_ticks(trades: Sequence[Trade], exchange: str, symbol: str) -> pd.DataFrame:
    """ccxt unified trades -> a tick frame (:mod:`btlab.model.tick` layout, not yet validated).

    ``timestamp`` (ms) becomes ``ts`` as sent (validation parses it, see
    :func:`btlab.model.tick.split_valid_ticks`); ``trade_id`` is the id as text; ``side`` is ccxt's taker side.
    Missing values stay missing so that validation can quarantine them.
    """
    frame = pd.DataFrame(
        {
            "ts": [t.get("timestamp") for t in trades],
            "trade_id": [None if t.get("id") is None else str(t.get("id")) for t in trades],
            "price": [t.get("price") for t in trades],
            "amount": [t.get("amount") for t in trades],
            "side": [t.get("side") for t in trades],
        }
    )
    frame.insert(1, "exchange", exchange)
    frame.insert(2, "symbol", symbol)
    return frame


def trade_problem(t: Trade) -> str | None:
    """Why a trade cannot be stored by the history ingest (None: it can): a missing id, a time that is not a
    positive integer of ms, a price or amount that is not a finite positive number."""
    tid, ms, price, amount = t.get("id"), t.get("timestamp"), t.get("price"), t.get("amount")
    if tid is None or str(tid) == "":
        return "missing id"
    if not isinstance(ms, (int, np.integer)) or isinstance(ms, bool) or ms <= 0:
        return f"unparsable time {ms!r}"
    try:
        price, amount = float(price), float(amount)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"non-numeric price/amount {price!r}/{amount!r}"
    if not (np.isfinite(price) and np.isfinite(amount)) or price <= 0 or amount <= 0:
        return f"impossible price/amount {price!r}/{amount!r}"
    return None
