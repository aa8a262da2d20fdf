"""CryptoCompare's wire layout -- the ``histo*`` row -- and its one converter to btlab's bar frame.

As nautilus_trader's ``adapters/binance/common/schemas/market.py`` does for Binance klines: the row is a typed
record (:class:`HistoRow`), :func:`histo_to_bars` maps a page of them to a bar frame, columnar.

Mapping to btlab bars
---------------------
Mapping to btlab bars
---------------------
``time`` -> ``ts`` (bar open, UTC); ``open, high, low, close`` as sent; ``volume`` = ``volumefrom``, the traded
amount in the BASE asset (``fsym``), as btlab's volume is everywhere (``volumeto``, the quote-asset volume, is not
stored); ``trades`` = <NA> (CryptoCompare gives no trade count). Rows whose prices and volumes are ALL zero are
padding and dropped (anywhere they occur; the saved real responses hold none). Any other impossible row (a zero
price with a non-zero volume, ``high < low``, ...) fails validation with an error naming the request. Rows that
CryptoCompare derived through a conversion (``conversionType`` other than ``direct``/``force_direct``, e.g.
via BTC) are stored as sent and counted in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import pandas as pd

__all__ = ["HistoRow", "histo_to_bars", "map_rows"]

_DIRECT = frozenset({"direct", "force_direct", ""})
_PRICE = ("open", "high", "low", "close")


class HistoRow(TypedDict, total=False):
    """One row of ``Data`` in a ``/data/histominute|histohour|histoday`` answer.

    ``time``: bar OPEN time, epoch seconds (UTC); ``open, high, low, close``: prices in ``tsym``; ``volumefrom``:
    traded amount in ``fsym`` (base asset); ``volumeto``: in ``tsym``; ``conversionType``: ``direct``,
    ``force_direct`` or how CryptoCompare derived the row (e.g. ``multiply`` via BTC); ``conversionSymbol``.
    """

    time: int
    open: float
    high: float
    low: float
    close: float
    volumefrom: float
    volumeto: float
    conversionType: str
    conversionSymbol: str


def histo_to_bars(rows: Sequence[HistoRow]) -> tuple[pd.DataFrame, int, int]:
    """Map CryptoCompare rows to a bar frame (not yet validated), dropping all-zero padding rows.

    Returns:
        ``(bars, padding, converted)``: bars with ``ts`` (bar open, ``datetime64[ns, UTC]``), ``open, high, low,
        close``, ``volume`` (= ``volumefrom``, base asset) and ``trades`` (<NA>), in the rows' order; the number of
        padding rows dropped; the number of kept rows CryptoCompare derived through a conversion.
    """
    bars, padding, converted = map_rows(rows)
    return bars, padding, int(converted.sum())


def map_rows(rows: Sequence[HistoRow]) -> tuple[pd.DataFrame, int, np.ndarray]:
    """:func:`histo_to_bars`, with a per-bar "derived through a conversion" mask instead of the count."""
    cols = ["time", *_PRICE, "volumefrom", "volumeto"]
    frame = pd.DataFrame.from_records(list(rows), columns=[*cols, "conversionType"])
    values = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64") for c in cols}
    padding = np.ones(len(frame), dtype=bool)
    for c in cols[1:]:
        padding &= values[c] == 0
    keep = ~padding
    seconds = values["time"][keep]
    bars = pd.DataFrame({"ts": pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[ns, UTC]")})
    for c in _PRICE:
        bars[c] = values[c][keep]
    bars["volume"] = values["volumefrom"][keep]
    bars["trades"] = pd.array([pd.NA] * int(keep.sum()), dtype="Int64")
    kinds = frame["conversionType"].to_numpy(dtype=object)[keep]
    converted = np.array([(k if isinstance(k, str) else "") not in _DIRECT for k in kinds], dtype=bool)
    return bars, int(padding.sum()), converted
