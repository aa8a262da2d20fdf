"""Message codec: btlab ticks, bars and end-of-replay markers as compact JSON record values (schema version 1).

Why JSON: readable with any Kafka tool (``rpk topic consume``), no schema registry needed, and the stdlib codec
round-trips float64 exactly (shortest repr). Values are UTF-8 JSON objects without spaces; every value carries
``"v": 1`` (schema version) and ``"type"``. Readers ignore unknown fields, so adding a field keeps ``v`` = 1;
renaming or changing a field's meaning needs ``v`` = 2.

Values (``ts`` is an integer of nanoseconds since the Unix epoch, UTC):

``tick``
    ``{"v":1,"type":"tick","ts":<trade time ns>,"exchange":"binance","symbol":"BTC/USDT","trade_id":"3735683259",
    "price":61837.63,"amount":0.02,"side":"sell"}`` -- ``side`` is the taker side, ``"buy"``, ``"sell"`` or
    ``null``; ``trade_id`` text or ``null`` (exchanges without trade ids); ``price`` in quote currency, ``amount``
    in base currency, both > 0.
``bar``
    ``{"v":1,"type":"bar","ts":<bar OPEN time ns>,"exchange":..,"symbol":..,"timeframe":"1m","open":..,"high":..,
    "low":..,"close":..,"volume":..,"trades":<int|null>,"vwap":<float|null>}`` -- a FINISHED bar; volume in base
    currency; ``vwap`` null when the bar had no volume or the source gives none.
``end``
    ``{"v":1,"type":"end","replay_id":"r-42","partition":2,"partitions":6,"count":1234,"reason":null}`` -- end of
    a replay, written to EVERY partition of a topic after all of the replay's records (see
    :meth:`btlab.stream.producer.StreamProducer.end_replay`): ``count`` = data records of that replay in that
    partition, ``partitions`` = partitions of the topic, so a reader knows when it has seen them all; ``reason``
    is ``null`` for a complete replay, ``"aborted"`` when it was stopped early (Ctrl-C) -- added without a version
    bump (older markers have no such field and read as complete).

Replays (:func:`btlab.stream.replay.replay_bars`, :func:`~btlab.stream.replay.replay_ticks`,
:func:`~btlab.stream.replay.replay_ticks_and_bars`) add two record headers to each data record: ``btlab-replay``
(the replay id, as in its end markers) and ``btlab-seq`` (1, 2, 3, ... per key and topic within the replay, decimal
text), so a reader can check that it saw exactly what was published. A replay of ticks and bars together writes
trades to the ticks topic and bars to the bars topic in ONE order of event time (trade time; bar CLOSE time), bars
before trades at equal time (a trade at exactly a bar's close opens the next window), so no bar goes out before
the last trade of its window; each topic gets its own end markers.

Record key: ``exchange:symbol`` (:func:`btlab.stream.topics.record_key`) for ticks and bars, none for end markers.

Record timestamp (``CreateTime``, integer milliseconds, floor of the value's ``ts``; the value keeps full
nanosecond precision):

* ticks: the exchange's TRADE time. That is the tick's event time -- the moment the trade happened and became
  known -- so the broker's time index (``offsets_for_times``, retention by time, ``rpk topic consume -o @T``) finds
  trades by when they happened, the same time a replay paces them by and the ``ticks`` table keys them on; it
  is never the wall clock of publishing, which would make a replayed day look like a few seconds of today.
* bars: the bar OPEN time -- the bar's own timestamp (as Binance and ccxt give it, and the ``ohlcv`` key), so a
  record and its stored row carry the same time and a seek by time lands on the bar of that window. Note that
  this is NOT the bar's event time: a bar is known only at its CLOSE (open + timeframe), which is what replays
  pace by and order by; a reader needing the event time adds the timeframe.
* end markers: the largest record timestamp the replay sent to that topic (see
  :meth:`btlab.stream.producer.StreamProducer.end_replay`).

:func:`decode` validates everything it returns and raises :class:`~btlab.stream.errors.UnreadableRecordError` with
the reason for anything else; the consumer dead-letters such records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pandas as pd

from btlab.errors import DataValidationError, InvalidArgumentError
from btlab.model.bar import BAR_COLUMNS, PRICE_COLUMNS, check_aligned, check_bar_values
from btlab.model.tick import TICK_COLUMNS
from btlab.model.timeframe import Timeframe
from btlab.stream.errors import UnreadableRecordError, excerpt
from btlab.stream.topics import record_key

SCHEMA_VERSION = 1

#: Columns of a bar frame on a stream: :data:`btlab.model.bar.BAR_COLUMNS` (VWAP included) plus instrument and timeframe.
STREAM_BAR_COLUMNS: tuple[str, ...] = (*BAR_COLUMNS, "exchange", "symbol", "timeframe")

_SIDES = ("buy", "sell", None)
_NS_PER_MS = 1_000_000
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode
_scan = json.JSONDecoder().scan_once


def _loads(text: str) -> Any:
    """``json.loads`` without its per-call wrapper and whitespace regexes; falls back to it for error messages."""
    try:
        obj, end = _scan(text, 0)
        if end == len(text):
            return obj
    except StopIteration:
        pass
    return json.loads(text)  # leading/trailing whitespace, or raises the precise JSONDecodeError


class _InstrumentRecord:
    """Key and record timestamp of a tick or bar message (event time ``ts`` in ns, UTC)."""

    __slots__ = ()
    ts: int
    exchange: str
    symbol: str

    @property
    def key(self) -> str:
        """Record key ``exchange:symbol``."""
        return f"{self.exchange}:{self.symbol}"

    @property
    def timestamp_ms(self) -> int:
        """Record timestamp: the event time (trade time, bar open time) in integer milliseconds (floor)."""
        return self.ts // _NS_PER_MS


@dataclass(frozen=True, slots=True)
class TickMessage(_InstrumentRecord):
    """One trade.

    Attributes:
        ts: exchange trade time, integer nanoseconds since the Unix epoch (UTC).
        exchange: ccxt exchange id (``binance``).
        symbol: ccxt unified symbol (``BTC/USDT``).
        trade_id: the exchange's trade id, as text, or ``None`` when the exchange gives none.
        price: trade price in quote currency (> 0).
        amount: traded amount in base currency (> 0).
        side: taker side, ``"buy"``, ``"sell"`` or ``None`` when unknown.
    """

    ts: int
    exchange: str
    symbol: str
    trade_id: str | None
    price: float
    amount: float
    side: str | None = None


@dataclass(frozen=True, slots=True)
class BarMessage(_InstrumentRecord):
    """One finished bar.

    Attributes:
        ts: bar OPEN time, integer nanoseconds since the Unix epoch (UTC); the window is ``[ts, ts + timeframe)``.
        exchange: ccxt exchange id.
        symbol: ccxt unified symbol.
        timeframe: ccxt timeframe string (``1m``).
        open, high, low, close: prices in quote currency (> 0).
        volume: traded amount in base currency (>= 0).
        trades: number of trades, or ``None`` when the source does not say.
        vwap: volume-weighted average price, or ``None`` (no volume, or unknown).
    """

    ts: int
    exchange: str
    symbol: str
    timeframe: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int | None = None
    vwap: float | None = None


@dataclass(frozen=True, slots=True)
class EndMarker:
    """End of a replay in one partition.

    Attributes:
        replay_id: id of the replay this marker ends.
        partition: the partition it was written to.
        partitions: number of partitions of the topic when the replay ended (a reader that sees a marker of
            this replay from each of them has seen the whole replay).
        count: data records of this replay written to this partition before the marker.
        reason: ``None`` for a complete replay, ``"aborted"`` when the replay was stopped before its end.
    """

    replay_id: str
    partition: int
    partitions: int
    count: int
    reason: str | None = None


Message = Union[TickMessage, BarMessage, EndMarker]


# ------------------------------------------------------------------------------------------------ encoding --
def encode(message: Message) -> bytes:
    """Encode one message as a schema-v1 JSON value (UTF-8 bytes).

    Raises:
        DataValidationError: the message breaks the schema (NaN, non-positive price, unknown side, ...).
    """
    # round-trip through the validating decoder's field checks: encoding garbage would poison the topic
    if isinstance(message, TickMessage):
        payload = {"v": SCHEMA_VERSION, "type": "tick", **_slots(message)}
        check = _tick_from
    elif isinstance(message, BarMessage):
        payload = {"v": SCHEMA_VERSION, "type": "bar", **_slots(message)}
        check = _bar_from
    elif isinstance(message, EndMarker):
        payload = {"v": SCHEMA_VERSION, "type": "end", **_slots(message)}
        check = _end_from
    else:
        raise TypeError(f"cannot encode {type(message).__name__}")
    try:
        check(payload)
        return _dumps(payload).encode("utf-8")
    except (UnreadableRecordError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, UnreadableRecordError) else str(exc)
        raise DataValidationError(type(message).__name__, reason) from None


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _utc_ns(frame: pd.DataFrame, source: str) -> np.ndarray:
    ts = frame["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise DataValidationError(source, f"timestamps must be timezone-aware datetimes, got {ts.dtype}", column="ts")
    ns = pd.DatetimeIndex(ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")).asi8
    bad = np.flatnonzero(pd.isna(ts).to_numpy() | (ns < 0))
    if bad.size:
        raise DataValidationError(source, "missing timestamp or one before 1970", row=int(bad[0]) + 1, column="ts")
    return ns


def _texts(
    frame: pd.DataFrame, column: str, source: str, default: str | None = None, *, optional: bool = False
) -> list[Any]:
    if column not in frame.columns:
        if default is None and not optional:
            raise DataValidationError(source, f"missing column {column!r} (and no {column}= given)")
        return [default] * len(frame)
    values = frame[column].tolist()
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value == "":
            if optional:
                values[i] = None
                continue
            raise DataValidationError(source, "missing value", row=i + 1, column=column)
        if not isinstance(value, str):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            values[i] = str(value)
    return values


def _floats(frame: pd.DataFrame, column: str, source: str, *, positive: bool, optional: bool = False) -> np.ndarray:
    if column not in frame.columns:
        if optional:
            return np.full(len(frame), np.nan)
        raise DataValidationError(source, f"missing column {column!r}")
    try:
        values = pd.to_numeric(frame[column], errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    except (ValueError, TypeError):
        raise DataValidationError(source, "not a number", column=column) from None
    finite = np.isfinite(values)
    bad = ~finite if not optional else (np.isinf(values))
    bad |= finite & ((values <= 0) if positive else (values < 0))
    if (idx := np.flatnonzero(bad)).size:
        rule = "a positive finite number" if positive else "a finite number >= 0"
        raise DataValidationError(source, f"must be {rule}, got {values[idx[0]]}", row=int(idx[0]) + 1, column=column)
    return values


def iter_tick_records(frame: pd.DataFrame, source: str = "ticks") -> Iterator[tuple[bytes, bytes, int]]:
    """Validate a tick frame, then yield ``(key, value, timestamp_ms)`` per row, in frame order.

    Args:
        frame: :data:`TICK_COLUMNS` (``trade_id`` and ``side`` may be absent or missing = unknown); ``ts``
            timezone-aware.
        source: names the input in errors.

    Raises:
        DataValidationError: (before anything is yielded) naming the 1-based row and column at fault.
    """
    if len(frame) == 0:
        return
    ns = _utc_ns(frame, source)
    exchanges = _texts(frame, "exchange", source)
    symbols = _texts(frame, "symbol", source)
    trade_ids = _texts(frame, "trade_id", source, optional=True)
    prices = _floats(frame, "price", source, positive=True).tolist()
    amounts = _floats(frame, "amount", source, positive=True).tolist()
    if "side" in frame.columns:
        sides = [None if (s is None or s is pd.NA or (isinstance(s, float) and math.isnan(s))) else s
                 for s in frame["side"].tolist()]
        for i, s in enumerate(sides):
            if s not in _SIDES:
                raise DataValidationError(source, f"side must be 'buy', 'sell' or missing, got {s!r}", row=i + 1,
                                          column="side")
    else:
        sides = [None] * len(frame)
    for ex in set(exchanges):
        if ":" in ex:
            raise DataValidationError(source, f"exchange id {ex!r} must not contain ':'", column="exchange")
    keys: dict[tuple[str, str], bytes] = {}
    for t, ex, sym, tid, p, a, side in zip(ns.tolist(), exchanges, symbols, trade_ids, prices, amounts, sides):
        key = keys.get((ex, sym))
        if key is None:
            key = keys[(ex, sym)] = f"{ex}:{sym}".encode()
        value = _dumps({"v": 1, "type": "tick", "ts": t, "exchange": ex, "symbol": sym, "trade_id": tid,
                        "price": p, "amount": a, "side": side})
        yield key, value.encode("utf-8"), t // _NS_PER_MS


def iter_bar_records(
    frame: pd.DataFrame,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    timeframe: str | Timeframe | None = None,
    source: str = "bars",
) -> Iterator[tuple[bytes, bytes, int, str]]:
    """Validate a bar frame, then yield ``(key, value, timestamp_ms, timeframe)`` per row, in frame order.

    Args:
        frame: :data:`btlab.model.bar.BAR_COLUMNS` (``trades`` optional), optionally ``exchange``, ``symbol``,
            ``timeframe`` and ``vwap`` columns (NaN vwap / NA trades = unknown).
        exchange, symbol, timeframe: used when the frame has no such column.
        source: names the input in errors.

    Raises:
        DataValidationError: (before anything is yielded) missing column/value, non-positive or non-finite
            price, negative volume, high/low not bracketing open and close, ``ts`` not a bar open time of its
            timeframe.
    """
    if len(frame) == 0:
        return
    ns = _utc_ns(frame, source)
    exchanges = _texts(frame, "exchange", source, exchange)
    symbols = _texts(frame, "symbol", source, symbol)
    tf_default = Timeframe.parse(timeframe).value if timeframe is not None else None
    try:
        tfs = [Timeframe.parse(t).value for t in _texts(frame, "timeframe", source, tf_default)]
    except InvalidArgumentError as exc:
        raise DataValidationError(source, str(exc), column="timeframe") from None
    o, h, l, c = (_floats(frame, col, source, positive=True) for col in PRICE_COLUMNS)
    vol = _floats(frame, "volume", source, positive=False)
    vwap = _floats(frame, "vwap", source, positive=True, optional=True)
    check_bar_values(o, h, l, c, vol, source)
    if "trades" in frame.columns:
        trades_num = pd.to_numeric(frame["trades"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad = np.flatnonzero((trades_num < 0) | (np.isfinite(trades_num) & (trades_num != np.round(trades_num)))
                             | (pd.isna(trades_num) & frame["trades"].notna().to_numpy()))
        if bad.size:
            raise DataValidationError(source, "trades must be a count >= 0", row=int(bad[0]) + 1, column="trades")
        trades = [None if math.isnan(x) else int(x) for x in trades_num.tolist()]
    else:
        trades = [None] * len(frame)
    tf_array = np.asarray(tfs, dtype=object)
    for tf in sorted(set(tfs)):
        rows = np.flatnonzero(tf_array == tf)
        check_aligned(ns[rows], tf, source, rows + 1)
    vwaps = [None if math.isnan(x) else x for x in vwap.tolist()]
    keys: dict[tuple[str, str], bytes] = {}
    for t, ex, sym, tf, op, hi, lo, cl, vo, tr, vw in zip(
        ns.tolist(), exchanges, symbols, tfs, o.tolist(), h.tolist(), l.tolist(), c.tolist(), vol.tolist(), trades,
        vwaps,
    ):
        key = keys.get((ex, sym))
        if key is None:
            key = keys[(ex, sym)] = record_key(ex, sym).encode()
        value = _dumps({"v": 1, "type": "bar", "ts": t, "exchange": ex, "symbol": sym, "timeframe": tf, "open": op,
                        "high": hi, "low": lo, "close": cl, "volume": vo, "trades": tr, "vwap": vw})
        yield key, value.encode("utf-8"), t // _NS_PER_MS, tf


# ------------------------------------------------------------------------------------------------ decoding --
def decode(value: bytes | bytearray | memoryview | str | None) -> Message:
    """Decode and validate one record value.

    Returns:
        A :class:`TickMessage`, :class:`BarMessage` or :class:`EndMarker`.

    Raises:
        UnreadableRecordError: empty value, not UTF-8 text, not JSON, not an object, unsupported ``v``, unknown
            ``type``, a missing or mistyped field, or a value out of range (non-positive price, NaN, high < low,
            a bar ``ts`` that is not an open time of its timeframe, ...).
    """
    if value is None:
        raise UnreadableRecordError("empty value (tombstone)")
    if not isinstance(value, str):
        try:
            value = bytes(value).decode("utf-8")  # strictly UTF-8 (json.loads would guess UTF-16/32 from bytes)
        except UnicodeDecodeError as exc:
            raise UnreadableRecordError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        obj = _loads(value)
    except ValueError as exc:
        raise UnreadableRecordError(f"not JSON: {str(exc)[:120]}") from None
    if type(obj) is not dict:
        raise UnreadableRecordError(f"not a JSON object but {type(obj).__name__}")
    version = obj.get("v")
    if version != SCHEMA_VERSION or type(version) is not int:
        raise UnreadableRecordError(f"unsupported schema version {excerpt(repr(version), 80)} (this btlab reads "
                                    f"v={SCHEMA_VERSION})")
    kind = obj.get("type")
    if kind == "tick":
        return _tick_from(obj)
    if kind == "bar":
        return _bar_from(obj)
    if kind == "end":
        return _end_from(obj)
    raise UnreadableRecordError(f"unknown record type {excerpt(repr(kind), 80)}")


def _missing(obj: dict, name: str) -> UnreadableRecordError:
    if name not in obj:
        return UnreadableRecordError(f"missing field {name!r}")
    return UnreadableRecordError(f"field {name!r} has a bad value {excerpt(repr(obj[name]), 80)}")


def _int(obj: dict, name: str, minimum: int = 0) -> int:
    x = obj.get(name)
    if type(x) is not int or x < minimum:
        raise _missing(obj, name)
    return x


def _text(obj: dict, name: str) -> str:
    x = obj.get(name)
    if type(x) is not str or not x:
        raise _missing(obj, name)
    return x


def _num(obj: dict, name: str, *, positive: bool = True, optional: bool = False) -> Any:
    x = obj.get(name)
    if x is None and optional:
        return None
    if type(x) is float:
        pass
    elif type(x) is int:
        x = float(x)
    else:
        raise _missing(obj, name)
    if not math.isfinite(x) or (x <= 0 if positive else x < 0):
        raise _missing(obj, name)
    return x


def _tick_from(obj: dict) -> TickMessage:
    side = obj.get("side")
    if side not in _SIDES:
        raise _missing(obj, "side")
    exchange = _text(obj, "exchange")
    if ":" in exchange:
        raise _missing(obj, "exchange")
    trade_id = obj.get("trade_id")
    if trade_id is not None and (type(trade_id) is not str or not trade_id):
        raise _missing(obj, "trade_id")
    return TickMessage(
        _int(obj, "ts"), exchange, _text(obj, "symbol"), trade_id, _num(obj, "price"), _num(obj, "amount"), side
    )


def _bar_from(obj: dict) -> BarMessage:
    exchange = _text(obj, "exchange")
    if ":" in exchange:
        raise _missing(obj, "exchange")
    tf = _text(obj, "timeframe")
    try:
        tfo = Timeframe.parse(tf)
    except InvalidArgumentError:
        raise _missing(obj, "timeframe") from None
    ts = _int(obj, "ts")
    if not tfo.is_aligned(ts):
        raise UnreadableRecordError(f"ts {ts} is not a {tf} bar open time")
    o, h, l, c = (_num(obj, k) for k in PRICE_COLUMNS)
    if h < max(o, c) or l > min(o, c):
        raise UnreadableRecordError(f"high/low do not bracket open/close: o={o} h={h} l={l} c={c}")
    trades = obj.get("trades")
    if trades is not None and (type(trades) is not int or trades < 0):
        raise _missing(obj, "trades")
    return BarMessage(
        ts, exchange, _text(obj, "symbol"), tfo.value, o, h, l, c, _num(obj, "volume", positive=False), trades,
        _num(obj, "vwap", optional=True),
    )


def _end_from(obj: dict) -> EndMarker:
    reason = obj.get("reason")
    if reason is not None and (type(reason) is not str or not reason):
        raise _missing(obj, "reason")
    return EndMarker(_text(obj, "replay_id"), _int(obj, "partition"), _int(obj, "partitions", 1), _int(obj, "count"),
                     reason)


# ---------------------------------------------------------------------------------------------- to frames --
def ticks_frame(messages: Sequence[TickMessage]) -> pd.DataFrame:
    """Ticks as a frame in the :mod:`btlab.model.tick` layout (:data:`TICK_COLUMNS`): ``ts`` datetime64[ns, UTC],
    ``exchange``/``symbol``/``trade_id``/``side`` pandas ``str`` (missing trade id / side = NaN), float64
    ``price``/``amount``."""
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(np.fromiter((m.ts for m in messages), "int64", len(messages)), unit="ns", utc=True),
            "exchange": pd.Series([m.exchange for m in messages], dtype="str"),
            "symbol": pd.Series([m.symbol for m in messages], dtype="str"),
            "trade_id": pd.Series([m.trade_id for m in messages], dtype="str"),
            "price": np.fromiter((m.price for m in messages), "float64", len(messages)),
            "amount": np.fromiter((m.amount for m in messages), "float64", len(messages)),
            "side": pd.Series([m.side for m in messages], dtype="str"),
        },
        columns=list(TICK_COLUMNS),
    )


def bars_frame(messages: Sequence[BarMessage]) -> pd.DataFrame:
    """Bars as a frame with :data:`STREAM_BAR_COLUMNS`: ``ts`` datetime64[ns, UTC] (open time), float64 OHLCV,
    nullable Int64 ``trades``, ``exchange``/``symbol``/``timeframe`` text, float64 ``vwap`` (NaN = unknown)."""
    n = len(messages)
    data: dict[str, Any] = {
        "ts": pd.to_datetime(np.fromiter((m.ts for m in messages), "int64", n), unit="ns", utc=True)
    }
    for col in (*PRICE_COLUMNS, "volume"):
        data[col] = np.fromiter((getattr(m, col) for m in messages), "float64", n)
    data["trades"] = pd.array([m.trades for m in messages], dtype="Int64")
    data["exchange"] = pd.Series([m.exchange for m in messages], dtype="str")
    data["symbol"] = pd.Series([m.symbol for m in messages], dtype="str")
    data["timeframe"] = pd.Series([m.timeframe for m in messages], dtype="str")
    data["vwap"] = np.fromiter((np.nan if m.vwap is None else m.vwap for m in messages), "float64", n)
    return pd.DataFrame(data, columns=list(STREAM_BAR_COLUMNS))
