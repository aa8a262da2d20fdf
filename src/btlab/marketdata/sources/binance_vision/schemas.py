"""data.binance.vision's wire layouts -- kline, trade and aggTrade CSV columns -- and their converters to btlab frames.

As nautilus_trader's ``adapters/binance/common/schemas/market.py`` maps ``BinanceKline``/``BinanceTrade`` to domain
types, each layout is typed here with one converter; because these files hold millions of rows, a layout is column
names and positions, and its converter runs columnar over a whole Arrow block:

* klines: :data:`KLINE_COLUMNS` (``open_time`` ms or us, prices and volumes as decimal text, ``count`` -> ``trades``),
  read by :class:`btlab.marketdata.sources.files.reader.BarChunks` (the generic bar-file converter: it knows these
  names);
* trades (:data:`TRADE_COLUMNS`) and aggTrades (:data:`AGG_TRADE_COLUMNS`): a :class:`TickLayout` (where the id,
  price, quantity, time and ``is_buyer_maker`` fields are) and :func:`to_ticks`, which turns a block into valid
  ticks and, for every other row, the reason it cannot be one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from btlab.errors import DataValidationError
from btlab.marketdata.sources.files.csvio import EPOCH_UNIT_NAMES, epoch_units, excerpt
from btlab.model.tick import split_valid_ticks

__all__ = ["AGG_TRADE_COLUMNS", "BLANK", "KLINE_COLUMNS", "TRADE_COLUMNS", "TickBlock", "TickLayout", "to_ticks"]

#: Column order of data.binance.vision kline CSVs (their newer files carry this as a header line).
KLINE_COLUMNS: tuple[str, ...] = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
#: Spot trades (futures files lack ``is_best_match``).
TRADE_COLUMNS: tuple[str, ...] = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
#: Spot aggTrades (futures files lack ``is_best_match``).
AGG_TRADE_COLUMNS: tuple[str, ...] = (
    "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
    "is_best_match",
)
#: The "reason" of an empty line: not a quarantine reason (blank lines are skipped).
BLANK = "blank line"

# header aliases of the columns a tick needs (data.binance.vision names; websocket letters for convenience)
_TICK_FIELDS = {
    "id": ("id", "agg_trade_id", "a", "t"),
    "price": ("price", "p"),
    "qty": ("qty", "quantity", "q"),
    "time": ("time", "transact_time", "timestamp", "T"),
    "ibm": ("is_buyer_maker", "m"),
}
_POSITIONS = {  # positional layouts: kind -> {field count: field index of id, price, qty, time, ibm}
    "trades": {7: (0, 1, 2, 4, 5), 6: (0, 1, 2, 4, 5)},
    "aggTrades": {8: (0, 1, 2, 5, 6), 7: (0, 1, 2, 5, 6)},
}
_DIGITS = r"^[0-9]+$"
_UNIT_CODES = ("s", "ms", "us", "ns")


@dataclass(frozen=True)
class TickLayout:
    """Field indexes, in a trades or aggTrades row, of the trade id, price, quantity, time and ``is_buyer_maker``."""

    id: int
    price: int
    qty: int
    time: int
    ibm: int

    @classmethod
    def positional(cls, kind: str, width: int) -> TickLayout:
        """The layout of a headerless ``kind`` file (``trades``/``aggTrades``) with ``width`` fields a row.

        Raises: KeyError for a width no such file has (callers detect the kind from it first).
        """
        return cls(*_POSITIONS[kind][width])

    @classmethod
    def from_header(cls, head: list[str], src: str) -> TickLayout:
        """The layout named by a header line (data.binance.vision names, or websocket letters; names match
        case-insensitively, single letters exactly: ``T`` is a time, ``t`` an id).

        Raises: DataValidationError naming the column that is missing.
        """
        lowered = [h.lower() for h in head]
        out = []
        for key in ("id", "price", "qty", "time", "ibm"):
            aliases = _TICK_FIELDS[key]
            found = next((i for i, h in enumerate(head) if h in aliases), None)  # exact (T vs t)
            if found is None:
                long_names = {a.lower() for a in aliases if len(a) > 1}
                found = next((i for i, h in enumerate(lowered) if h in long_names), None)
            if found is None:
                raise DataValidationError(
                    src, f"header {excerpt(','.join(head))}: no {'/'.join(a for a in aliases if len(a) > 1)} column"
                )
            out.append(found)
        return cls(*out)


@dataclass
class TickBlock:
    """One block of a trades/aggTrades file, converted.

    Attributes:
        ticks: the valid rows as ticks: ``ts`` (``datetime64[ns, UTC]``), ``trade_id`` (text), ``price``,
            ``amount`` (float64), ``side`` (taker side: ``sell`` when ``is_buyer_maker``, else ``buy``), in file
            order; ``exchange``/``symbol`` are the caller's.
        reason: per row of the block: None (a tick), :data:`BLANK` (an empty line) or why it was set aside.
        ids: the integer trade ids of ``ticks``.
        unit: the file's epoch unit (index into ``EPOCH_UNIT_NAMES``), fixed by the first block with good times.
    """

    ticks: pd.DataFrame
    reason: np.ndarray
    ids: np.ndarray
    unit: int | None


def _integers(col: pa.Array, ok: np.ndarray, what: str, mark: object) -> np.ndarray:
    """The ``ok`` cells of a text column of whole numbers as int64 (0 elsewhere); cells beyond int64 are marked."""
    n = len(col)
    target = np.zeros(n, dtype=np.int64)
    if ok.any():
        good_text = pc.utf8_trim_whitespace(pc.filter(col, pa.array(ok)))
        try:
            target[ok] = pc.cast(good_text, pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # more digits than int64 holds: find them one by one (rare)
            for i in np.flatnonzero(ok):
                try:
                    target[i] = np.int64(int(col[i].as_py()))
                except OverflowError:
                    mark(np.arange(n) == i, f"{what} out of range")  # type: ignore[operator]
    return target


def to_ticks(batch: pa.RecordBatch, layout: TickLayout, unit: int | None, src: str) -> TickBlock:
    """Convert one Arrow block (all columns text) of a trades/aggTrades file, columnar.

    Checks, the first failing naming the row's reason: an empty line (:data:`BLANK`), a trade id or time that is
    not a whole number (or beyond int64), ``is_buyer_maker`` not true/false, a time in another epoch unit than the
    file's (``unit``; the first block's majority decides when None) or not positive, then
    :func:`btlab.model.tick.split_valid_ticks` (price and amount finite and > 0).
    """
    n = batch.num_rows
    reason = np.full(n, None, dtype=object)

    def mark(mask: np.ndarray, text: str) -> None:
        reason[mask & (reason == None)] = text  # noqa: E711 (elementwise)

    blank = np.ones(n, dtype=bool)  # an empty line: every field empty or absent
    for c in range(batch.num_columns):
        column = batch.column(c)
        blank &= pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True).to_numpy(zero_copy_only=False)
    mark(blank, BLANK)
    ids_col, time_col = batch.column(layout.id), batch.column(layout.time)
    id_ok = pc.match_substring_regex(pc.utf8_trim_whitespace(ids_col), _DIGITS).to_numpy(zero_copy_only=False)
    mark(~id_ok, "trade id not a whole number")
    time_ok = pc.match_substring_regex(pc.utf8_trim_whitespace(time_col), _DIGITS).to_numpy(zero_copy_only=False)
    mark(~time_ok, "time not a whole number")
    ibm = pc.utf8_lower(pc.utf8_trim_whitespace(batch.column(layout.ibm)))
    maker = pc.equal(ibm, "true").to_numpy(zero_copy_only=False)
    ibm_ok = maker | pc.equal(ibm, "false").to_numpy(zero_copy_only=False)
    mark(~ibm_ok, "is_buyer_maker not true/false")
    ids = _integers(ids_col, id_ok, "trade id", mark)
    times = _integers(time_col, time_ok, "time", mark)

    time_ok &= reason == None  # noqa: E711
    if unit is None and time_ok.any():
        unit = int(np.bincount(epoch_units(times[time_ok]), minlength=len(EPOCH_UNIT_NAMES)).argmax())
    if unit is not None:
        mark(time_ok & (epoch_units(times) != unit), f"time not in {EPOCH_UNIT_NAMES[unit]} like the rest of the file")
        mark(time_ok & (times <= 0), "time not positive")

    pre_ok = reason == None  # noqa: E711
    frame = pd.DataFrame({
        "ts": times[pre_ok],
        "price": batch.column(layout.price).filter(pa.array(pre_ok)).to_pandas(),
        "amount": batch.column(layout.qty).filter(pa.array(pre_ok)).to_pandas(),
        "trade_id": ids[pre_ok],
    })
    valid, bad = split_valid_ticks(frame, src, time_unit=_UNIT_CODES[unit] if unit is not None else "ms")
    if len(bad):
        reason[np.flatnonzero(pre_ok)[bad["row"].to_numpy() - 1]] = bad["reason"].to_numpy()
    good = reason == None  # noqa: E711
    valid["side"] = np.where(maker[good], "sell", "buy")
    return TickBlock(valid, reason, ids[good], unit)
