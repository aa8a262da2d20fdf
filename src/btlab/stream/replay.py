"""Replaying stored history through the broker as if live: :func:`replay_bars`, :func:`replay_ticks`, and both
at once, :func:`replay_ticks_and_bars`.

What goes out: every stored bar (or trade, or both) of the requested instruments and range, one record each, keyed
``exchange:symbol``, on one topic per kind (default ``<prefix>.bars.<timeframe>`` and ``<prefix>.ticks``),
followed by the codec's end marker on every partition of every topic written. All share one publishing loop
(:func:`_publish`); they differ only in how the store is read and how a record is encoded.

* Event time: a bar's event time is its CLOSE, ``open + timeframe`` -- the moment it would be known live; a
  tick's event time is its trade time. Records are published in event-time order across instruments. Ties: bars
  closing at the same time go out ordered by symbol; trades at the same time by symbol, then by trade id
  (numerically when every id is a number, else as text) -- the aggregators' canonical order -- so the order is
  stable from run to run. Ticks and bars together (:func:`replay_ticks_and_bars`): one order across both kinds;
  at equal event time bars go first (a trade at exactly a bar's close belongs to the next window), then as
  above -- so no bar is published before the last trade of its window. The record timestamp is the bar OPEN
  time for bars and the trade time for ticks (the codec's convention, see :mod:`btlab.stream.codec`).
* Memory: the store is read in bounded windows (``Store.read_bars(start, end)`` of ``chunk_bars`` bar times, or
  ``Store.read_ticks(start, end)`` of ``chunk_seconds`` of trade time, per instrument), never the whole range at
  once; ticks and bars together are merged piece by piece (:func:`iter_merged_chunks`). A window without bars
  or trades is skipped to the next stored one (``Store.bar_span``, ``Store.tick_span``), so a gap of months
  costs one query, not one per window.
* Sequence numbers: header ``btlab-seq`` = 1, 2, 3, ... per key and topic, header ``btlab-replay`` = the replay id
  (as in the end markers), so a reader detects a missing or repeated record.
* Pacing: record *i* is published at ``t0 + (event_i - event_0) / speed`` on :func:`time.monotonic` (the schedule is
  computed from the start each time, so no drift accumulates); ``speed=None`` publishes as fast as possible. The
  replay measures its own pacing error (``|actual - scheduled|`` per record, when paced) and reports p50/p99/max in
  :class:`ReplayResult`.
* Health (``health_interval_s``): ``bt_health`` rows of service ``replay`` through
  :class:`btlab.store.health.HealthWriter`: ``records_per_s`` (a rate over the interval) and ``replay_lag_s``
  (a gauge: the last record's delay behind its schedule), one each per topic, subject = the topic.
* Ctrl-C (KeyboardInterrupt): nothing half-sent -- the records already handed over are flushed, then end markers
  with ``reason="aborted"`` are written and the interrupt is re-raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError, NoDataError
from btlab.model.tick import trade_ids_as_int
from btlab.model.timebounds import parse_range
from btlab.model.timeframe import Timeframe
from btlab.stream.codec import EndMarker, iter_bar_records, iter_tick_records
from btlab.stream.config import StreamConfig
from btlab.stream.producer import StreamProducer
from btlab.stream.topics import bars_topic, ticks_topic

#: record header carrying the replay id
REPLAY_HEADER = "btlab-replay"
#: record header carrying the per-key sequence number (decimal text, first record of a key = 1)
SEQ_HEADER = "btlab-seq"

#: end-marker reason of a replay stopped before its end
ABORTED = "aborted"

#: ``bt_health.service`` of a replay
HEALTH_SERVICE = "replay"


@dataclass(frozen=True)
class ReplayProgress:
    """State of a running replay, passed to the progress callback.

    Attributes:
        event_time: event time (bar close or trade time, UTC) of the last record published.
        records: records published so far.
        records_per_s: records published per second of wall time since the start.
        lag_s: seconds the last record went out after its scheduled time (0 when unpaced).
    """

    event_time: pd.Timestamp
    records: int
    records_per_s: float
    lag_s: float


@dataclass(frozen=True)
class PacingError:
    """Summary of ``|actual - scheduled|`` publish time over the records of a paced replay, in seconds.

    Measured by the replay on its own monotonic clock, right before each record is handed to the producer.
    Quantiles come from a histogram of 1 µs buckets up to 0.1 s (a quantile beyond that reads as the maximum).

    Attributes:
        records: records measured (0 when unpaced).
        p50_s, p99_s, max_s: median, 99th percentile and largest error.
    """

    records: int
    p50_s: float
    p99_s: float
    max_s: float


class _PacingStats:
    """Histogram of pacing errors in 1 µs buckets (bounded memory however long the replay)."""

    __slots__ = ("counts", "n", "max_s")
    _BUCKETS = 100_000

    def __init__(self) -> None:
        self.counts = np.zeros(self._BUCKETS + 1, dtype=np.int64)
        self.n = 0
        self.max_s = 0.0

    def add(self, err_s: float) -> None:
        err_s = abs(err_s)
        us = int(err_s * 1e6)
        self.counts[us if us < self._BUCKETS else self._BUCKETS] += 1
        self.n += 1
        if err_s > self.max_s:
            self.max_s = err_s

    def summary(self) -> PacingError:
        if not self.n:
            return PacingError(0, 0.0, 0.0, 0.0)
        cum = np.cumsum(self.counts)

        def q(frac: float) -> float:
            i = int(np.searchsorted(cum, max(1, int(np.ceil(frac * self.n)))))
            return self.max_s if i >= self._BUCKETS else min((i + 0.5) / 1e6, self.max_s)

        return PacingError(self.n, q(0.50), q(0.99), self.max_s)


@dataclass(frozen=True)
class ReplayResult:
    """Outcome of :func:`replay_bars` or :func:`replay_ticks`.

    Attributes:
        replay_id: id in the end markers and the ``btlab-replay`` header.
        topic: the topic written (a replay of ticks and bars: its bars topic; see ``topics``).
        records: data records published over all topics (end markers not counted).
        per_key: records per key ``exchange:symbol`` on ``topic``.
        markers: the end markers written to ``topic`` (one per partition).
        first_event, last_event: event times (bar close or trade time, UTC) of the first and last record, or None.
        seconds: wall time of the replay.
        max_lag_s: largest delay of a record behind its schedule, in seconds (0 when unpaced).
        aborted: True when stopped early (markers carry ``reason="aborted"``).
        pacing: per-record ``|actual - scheduled|`` publish time summary (``records`` 0 when unpaced).
        health_rows: ``bt_health`` rows written (0 without ``health_interval_s``).
        topics: every topic written, bars topic first (one for a bar or tick replay, two for ticks and bars).
        per_topic: records per key, per topic: ``{topic: {"exchange:symbol": n}}``.
        markers_by_topic: the end markers written, per topic.
    """

    replay_id: str
    topic: str
    records: int
    per_key: dict[str, int]
    markers: list[EndMarker]
    first_event: pd.Timestamp | None
    last_event: pd.Timestamp | None
    seconds: float
    max_lag_s: float
    aborted: bool = False
    pacing: PacingError = PacingError(0, 0.0, 0.0, 0.0)
    health_rows: int = 0
    topics: tuple[str, ...] = ()
    per_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    markers_by_topic: dict[str, list[EndMarker]] = field(default_factory=dict)


def parse_speed(value: str | float | None) -> float | None:
    """``"max"``/None/``""`` -> None (no pacing), else a positive finite factor (``"60"`` -> 60.0).

    Raises:
        InvalidArgumentError: not ``max`` and not a positive number.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "max")):
        return None
    try:
        speed = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"speed must be a positive number or 'max', got {str(value)[:40]!r}") from None
    if not (speed > 0 and speed != float("inf")):
        raise InvalidArgumentError(f"speed must be a positive number or 'max', got {str(value)[:40]!r}")
    return speed


def iter_replay_chunks(store: Any, exchange: str, symbols: Sequence[str], timeframe: Timeframe, start: Any, end: Any,
                       chunk_bars: int) -> Iterator[pd.DataFrame]:
    """Bars of ``symbols`` in ``[start, end)`` in publishing order, window by window.

    Each yielded frame holds the bars of every instrument opening in one window of ``chunk_bars`` bar times, with
    columns of the bar layout plus ``exchange``, ``symbol`` and ``event_ns`` (close time, int ns), sorted by
    ``(event_ns, symbol)``. Windows follow each other, so the concatenation is in order too; when no instrument
    has a bar in a window, the next window starts at the next stored bar (``Store.bar_span``), so a gap of years
    costs one query, not one per window.

    Raises:
        NoDataError: none of the instruments has a bar in the range.
    """
    # the span from the store's series summary (one small query), never by reading the whole range
    series = store.bar_series()
    same = series[(series["exchange"] == exchange) & (series["symbol"].isin(list(symbols)))
                  & (series["timeframe"] == timeframe.value)]
    if same.empty:
        raise NoDataError(f"no {timeframe} bars for {exchange}:{','.join(symbols)} in the store: nothing to replay")
    lo = same["first"].min() if start is None else max(same["first"].min(), pd.Timestamp(start))
    hi = same["last"].max()  # last stored open time; reads stop at `end` (exclusive) too
    step = pd.Timedelta(timeframe.nanos * chunk_bars, "ns")
    w = lo
    any_bar = False
    while w <= hi and (end is None or w < pd.Timestamp(end)):
        w_end = w + step
        parts = []
        for symbol in symbols:
            frame = store.read_bars(exchange=exchange, symbol=symbol, timeframe=timeframe, start=w,
                                    end=w_end if end is None else min(w_end, pd.Timestamp(end)))
            if len(frame):
                frame["exchange"] = exchange
                frame["symbol"] = symbol
                parts.append(frame)
        if parts:
            any_bar = True
            chunk = pd.concat(parts, ignore_index=True)
            chunk["event_ns"] = pd.DatetimeIndex(chunk["ts"]).asi8 + timeframe.nanos
            yield chunk.sort_values(["event_ns", "symbol"], kind="stable").reset_index(drop=True)
            w = w_end
        else:  # jump over the gap to the next stored bar of any of the instruments
            nxt = [span.first for s in symbols
                   if (span := store.bar_span(exchange=exchange, symbol=s, timeframe=timeframe, start=w_end,
                                              end=end)).first is not None]
            if not nxt:
                break
            w = max(w_end, min(nxt))
    if not any_bar:
        raise NoDataError(f"no {timeframe} bars for {exchange}:{','.join(symbols)} in that range: nothing to replay")


def iter_tick_chunks(store: Any, exchange: str, symbols: Sequence[str], start: Any, end: Any,
                     chunk_seconds: float) -> Iterator[pd.DataFrame]:
    """Trades of ``symbols`` with ``start <= ts < end`` in publishing order, window by window.

    Each yielded frame holds the trades of every instrument in one window of ``chunk_seconds`` of trade time:
    ``ts`` (UTC), ``trade_id`` (text as stored), ``price``, ``amount``, ``exchange``, ``symbol`` and ``event_ns``
    (trade time, int ns), sorted by ``(event_ns, symbol, trade id)`` -- the id numerically when every id of the
    window is a decimal integer, else as text. Windows follow each other, so the concatenation is in order too;
    when no instrument has a trade in a window, the next window starts at the next stored trade.

    Raises:
        NoDataError: none of the instruments has a trade in the range.
    """
    series = store.tick_series(exchange=exchange)
    same = series[series["symbol"].isin(list(symbols))]
    if same.empty:
        raise NoDataError(f"no trades of {exchange}:{','.join(symbols)} in the store: nothing to replay")
    hi_ts = pd.Timestamp(end) if end is not None else same["last"].max() + pd.Timedelta(1, "ns")
    w = same["first"].min() if start is None else max(same["first"].min(), pd.Timestamp(start))
    step = pd.Timedelta(int(chunk_seconds * 1e9), "ns")
    any_tick = False
    while w < hi_ts:
        w_end = min(w + step, hi_ts)
        parts = []
        for symbol in symbols:
            frame = store.read_ticks(exchange=exchange, symbol=symbol, start=w, end=w_end)
            if len(frame):
                frame["exchange"] = exchange
                frame["symbol"] = symbol
                parts.append(frame)
        if parts:
            any_tick = True
            chunk = pd.concat(parts, ignore_index=True)
            chunk["event_ns"] = pd.DatetimeIndex(chunk["ts"]).asi8
            ids = trade_ids_as_int(chunk["trade_id"])
            chunk["_id"] = ids if ids is not None else chunk["trade_id"].astype(str)
            yield (chunk.sort_values(["event_ns", "symbol", "_id"], kind="stable").drop(columns="_id")
                   .reset_index(drop=True))
            w = w_end
        else:  # jump over the gap to the next stored trade of any of the instruments
            nxt = [span.first for s in symbols
                   if (span := store.tick_span(exchange=exchange, symbol=s, start=w_end, end=hi_ts)).first is not None]
            if not nxt:
                break
            w = max(w_end, min(nxt))
    if not any_tick:
        raise NoDataError(f"no trades of {exchange}:{','.join(symbols)} in that range: nothing to replay")


def _names(symbols: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in (symbols.split(",") if isinstance(symbols, str) else symbols) if s and s.strip()]
    if not names:
        raise InvalidArgumentError("no symbols to replay: give at least one, e.g. BTC/USDT")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"symbol listed twice in {','.join(names)}")
    return names


def replay_bars(
    store: Any,
    exchange: str,
    symbols: str | Sequence[str],
    timeframe: str | Timeframe,
    start: Any = None,
    end: Any = None,
    *,
    config: StreamConfig | None = None,
    producer: StreamProducer | None = None,
    topic: str | None = None,
    speed: float | str | None = None,
    replay_id: str | None = None,
    chunk_bars: int = 10_000,
    progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 0.5,
    health_interval_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Publish stored bars to a topic in event-time order, paced, and end with the end marker (see module doc).

    Args:
        store: an open :class:`btlab.store.Store` (writable when ``health_interval_s`` is given).
        exchange, symbols: the instruments (a list or comma-separated text of ccxt symbols).
        timeframe: the stored bar timeframe.
        start, end: inclusive UTC bounds as for backtests (``YYYY-MM-DD`` dates or ISO times, a date ``end``
            includes that day; see :func:`btlab.model.timebounds.parse_range`), on bar OPEN times; None = all.
        config: broker settings (default ``BTLAB_KAFKA``) when no ``producer`` is given.
        producer: an open producer to use (kept open); default: one opened here and closed at the end.
        topic: default ``<prefix>.bars.<timeframe>``.
        speed: event-time seconds per wall second (1 = real time, 60 = a minute per second); None/``"max"`` =
            as fast as possible.
        replay_id: default a new unique id.
        chunk_bars: bar times per instrument per store read (bounds memory).
        progress: called with a :class:`ReplayProgress` at most every ``progress_every_s`` and at the end.
        health_interval_s: write ``bt_health`` rows (service ``replay``) every this many seconds and at the end;
            None or 0 = none.
        clock, sleep: the monotonic clock and sleep used for pacing (seconds).

    Returns:
        :class:`ReplayResult`.

    Raises:
        InvalidArgumentError: bad speed, bounds, timeframe or empty symbol list.
        NoDataError: nothing stored in the range.
        BrokerUnavailableError: the broker did not answer within ``config.connect_timeout_s``.
        DeliveryError: records were not acknowledged.
        KeyboardInterrupt: re-raised after writing ``"aborted"`` end markers.
    """
    names = _names(symbols)
    tf = Timeframe.parse(timeframe)
    pace = parse_speed(speed)
    if chunk_bars < 1:
        raise InvalidArgumentError("chunk_bars must be >= 1")
    lo, hi = parse_range(start, end)
    chunks = iter_replay_chunks(store, exchange, names, tf, lo, hi, chunk_bars)
    return _publish(store, ([c] for c in chunks), [_bar_kind(tf, topic)], config=config, producer=producer,
                    pace=pace, replay_id=replay_id, progress=progress, progress_every_s=progress_every_s,
                    health_interval_s=health_interval_s, clock=clock, sleep=sleep)


def replay_ticks(
    store: Any,
    exchange: str,
    symbols: str | Sequence[str],
    start: Any = None,
    end: Any = None,
    *,
    config: StreamConfig | None = None,
    producer: StreamProducer | None = None,
    topic: str | None = None,
    speed: float | str | None = None,
    replay_id: str | None = None,
    chunk_seconds: float = 600.0,
    progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 0.5,
    health_interval_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Publish stored trades to a topic in trade-time order, paced, and end with the end marker (see module doc).

    Arguments as :func:`replay_bars`, except: ``start``/``end`` bound trade times (``start <= ts``, a date
    ``end`` includes that day); ``topic`` defaults to ``<prefix>.ticks``; ``chunk_seconds`` of trade time are read
    per store read (bounds memory). Each record is a codec ``tick`` (``side`` null: the store's read gives none).

    Returns:
        :class:`ReplayResult` (event times = trade times).

    Raises:
        As :func:`replay_bars` (``NoDataError`` when no trade is stored in the range).
    """
    names = _names(symbols)
    pace = parse_speed(speed)
    if not chunk_seconds > 0:
        raise InvalidArgumentError("chunk_seconds must be > 0")
    lo, hi = parse_range(start, end)
    chunks = iter_tick_chunks(store, exchange, names, lo, hi, chunk_seconds)
    return _publish(store, ([c] for c in chunks), [_tick_kind(topic)], config=config, producer=producer, pace=pace,
                    replay_id=replay_id, progress=progress, progress_every_s=progress_every_s,
                    health_interval_s=health_interval_s, clock=clock, sleep=sleep)


def replay_ticks_and_bars(
    store: Any,
    exchange: str,
    symbols: str | Sequence[str],
    timeframe: str | Timeframe,
    start: Any = None,
    end: Any = None,
    *,
    config: StreamConfig | None = None,
    producer: StreamProducer | None = None,
    bars_topic: str | None = None,
    ticks_topic: str | None = None,
    speed: float | str | None = None,
    replay_id: str | None = None,
    chunk_bars: int = 10_000,
    chunk_seconds: float = 600.0,
    progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 0.5,
    health_interval_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Publish the stored trades to the ticks topic AND the stored bars to the bars topic, in ONE event-time
    order across both kinds and all instruments, paced, ending with end markers on both topics.

    Order: by event time -- a bar's CLOSE (open + timeframe), a trade's trade time. At equal event time bars go
    before trades (the bar of ``[t - tf, t)`` is complete at ``t``, and a trade at exactly ``t`` belongs to the next
    window), then, within a kind, as :func:`replay_bars` (symbol) and :func:`replay_ticks` (symbol, trade id). So
    no bar is ever published before the last trade of its window, and every trade of a window goes out before the
    window's bar. One replay id, one sequence (``btlab-seq``) per key per topic, one pacing schedule.

    Args:
        store, exchange, symbols, timeframe, config, producer, speed, replay_id, progress, progress_every_s,
        clock, sleep: as :func:`replay_bars`.
        start, end: inclusive UTC bounds (as :func:`replay_bars`), on bar OPEN times and on trade times.
        bars_topic, ticks_topic: default ``<prefix>.bars.<timeframe>`` and ``<prefix>.ticks``.
        chunk_bars, chunk_seconds: store read windows of bars and of trades (bound memory; see
            :func:`iter_merged_chunks`).
        health_interval_s: as :func:`replay_bars`; the rows' subject is each topic.

    Returns:
        :class:`ReplayResult` with ``topics`` = (bars topic, ticks topic), per-topic counts and markers.

    Raises:
        InvalidArgumentError: bad arguments, or the two topics are the same.
        NoDataError: no bar, or no trade, stored in the range.
        BrokerUnavailableError, DeliveryError, KeyboardInterrupt: as :func:`replay_bars`.
    """
    names = _names(symbols)
    tf = Timeframe.parse(timeframe)
    pace = parse_speed(speed)
    if chunk_bars < 1 or not chunk_seconds > 0:
        raise InvalidArgumentError("chunk_bars must be >= 1 and chunk_seconds > 0")
    if bars_topic is not None and bars_topic == ticks_topic:
        raise InvalidArgumentError(f"ticks and bars need two topics, got {bars_topic!r} for both")
    lo, hi = parse_range(start, end)
    merged = iter_merged_chunks([iter_replay_chunks(store, exchange, names, tf, lo, hi, chunk_bars),
                                 iter_tick_chunks(store, exchange, names, lo, hi, chunk_seconds)])
    return _publish(store, merged, [_bar_kind(tf, bars_topic), _tick_kind(ticks_topic)], config=config,
                    producer=producer, pace=pace, replay_id=replay_id, progress=progress,
                    progress_every_s=progress_every_s, health_interval_s=health_interval_s, clock=clock, sleep=sleep)


def iter_merged_chunks(streams: Sequence[Iterator[pd.DataFrame]]) -> Iterator[list[pd.DataFrame]]:
    """Merge several chunk streams, each in its own publishing order, into one event-time order, piece by piece.

    Args:
        streams: iterators of frames with an ``event_ns`` column (int ns), each stream's concatenation sorted by
            it (as :func:`iter_replay_chunks` and :func:`iter_tick_chunks` yield them).

    Yields:
        Lists with one frame per stream (in ``streams`` order, possibly empty), each a contiguous run of that
        stream's rows. Every row of a list has an event time below every row of the lists after it, so the
        publishing order is: list by list, and within a list the rows of all frames by ``event_ns``, equal times
        in stream order (a stable sort over the frames concatenated in stream order, see :func:`_interleave`),
        each stream's own order kept.

    How: each stream's rows are buffered until the smallest last-buffered event time of the streams not yet
    exhausted (the horizon): rows before it can be followed by no earlier row of any stream and go out; then the
    stream that set the horizon is read further. Memory: about one chunk per stream.

    Raises:
        What the streams raise (``NoDataError`` from their first read).
    """
    its = [iter(s) for s in streams]
    none = pd.DataFrame({"event_ns": np.empty(0, dtype=np.int64)})
    bufs: list[pd.DataFrame] = [none] * len(its)
    live = [True] * len(its)

    def pull(i: int) -> None:
        try:
            frame = next(its[i])
        except StopIteration:
            live[i] = False
            return
        bufs[i] = pd.concat([bufs[i], frame], ignore_index=True) if len(bufs[i]) else frame

    for i in range(len(its)):
        pull(i)
    while True:
        open_ = [i for i in range(len(its)) if live[i]]
        starved = [i for i in open_ if not len(bufs[i])]
        if starved:
            pull(starved[0])
            continue
        if not open_:
            if any(len(b) for b in bufs):
                yield [b.reset_index(drop=True) for b in bufs]
            return
        limit = min(open_, key=lambda i: int(bufs[i]["event_ns"].iat[-1]))
        horizon = int(bufs[limit]["event_ns"].iat[-1])
        out = []
        for i, buf in enumerate(bufs):
            k = int(np.searchsorted(buf["event_ns"].to_numpy(), horizon, side="left"))
            out.append(buf.iloc[:k].reset_index(drop=True))
            bufs[i] = buf.iloc[k:]
        if any(len(o) for o in out):
            yield out
        pull(limit)


@dataclass(frozen=True)
class _Kind:
    """One kind of record a replay publishes: how its rows are encoded, and its topic.

    ``encode`` turns a frame of that kind's rows (``event_ns`` dropped) into ``(key, value, timestamp_ms)`` in row
    order; ``default_topic`` maps the configured topic prefix to the default topic; ``topic`` overrides it.
    """

    encode: Callable[[pd.DataFrame], Iterable[tuple[bytes, bytes, int]]]
    default_topic: Callable[[str], str]
    topic: str | None


def _bar_kind(tf: Timeframe, topic: str | None) -> _Kind:
    def encode(frame: pd.DataFrame) -> Iterable[tuple[bytes, bytes, int]]:
        return ((k, v, ts) for k, v, ts, _tf in iter_bar_records(frame, timeframe=tf, source="stored bars"))

    return _Kind(encode, lambda prefix: bars_topic(tf, prefix), topic)


def _tick_kind(topic: str | None) -> _Kind:
    return _Kind(lambda frame: iter_tick_records(frame, source="stored ticks"), ticks_topic, topic)


def _records(parts: Sequence[pd.DataFrame], kinds: Sequence[_Kind]) -> Iterator[tuple[int, int, bytes, bytes, int]]:
    """``(kind index, event ns, key, value, timestamp_ms)`` of one merged piece, in publishing order: the rows of
    all ``parts`` by ``event_ns``, equal times in kind order (stable sort over the parts in kind order)."""
    encoded = [iter(kind.encode(part.drop(columns=["event_ns"]))) if len(part) else iter(())
               for kind, part in zip(kinds, parts)]
    if len(parts) == 1:
        for ev, (key, value, ts_ms) in zip(parts[0]["event_ns"].tolist(), encoded[0]):
            yield 0, ev, key, value, ts_ms
        return
    events = np.concatenate([part["event_ns"].to_numpy(dtype=np.int64) for part in parts])
    slots = np.concatenate([np.full(len(part), i, dtype=np.int64) for i, part in enumerate(parts)])
    order = np.argsort(events, kind="stable")
    for slot, ev in zip(slots[order].tolist(), events[order].tolist()):
        key, value, ts_ms = next(encoded[slot])
        yield slot, ev, key, value, ts_ms


class _Health:
    """Per topic ``records_per_s`` (a rate: records published in the interval / its seconds) and ``replay_lag_s``
    (a gauge: the last record's delay behind its schedule) through :class:`~btlab.store.health.HealthWriter`."""

    def __init__(self, store: Any, topics: Sequence[str], interval: float, clock: Callable[[], float]) -> None:
        from btlab.store.health import HealthWriter

        self.writer = HealthWriter(store, HEALTH_SERVICE, interval=interval, clock=clock)
        self.topics = list(topics)

    def write(self, sent: Sequence[int], lag: float) -> None:
        self.writer.write({}, {}, rates={("records_per_s", t): float(n) for t, n in zip(self.topics, sent)},
                          gauges={("replay_lag_s", t): lag for t in self.topics})


def _publish(
    store: Any,
    pieces: Iterator[list[pd.DataFrame]],
    kinds: Sequence[_Kind],
    *,
    config: StreamConfig | None,
    producer: StreamProducer | None,
    pace: float | None,
    replay_id: str | None,
    progress: Callable[[ReplayProgress], None] | None,
    progress_every_s: float,
    health_interval_s: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> ReplayResult:
    """The publishing loop shared by every replay: ``pieces`` (lists of one frame per kind, with ``event_ns``, in
    publishing order, see :func:`iter_merged_chunks`) are encoded by their kind (:func:`_records`) and published
    paced to the kind's topic, with sequence headers per key and topic, progress, health rows and end markers on
    every topic (see the module doc)."""
    if health_interval_s is not None and health_interval_s < 0:
        raise InvalidArgumentError(f"the health interval must be >= 0 seconds (0 = off), got {health_interval_s}")
    first_piece = next(pieces)  # NoDataError before anything is opened on the broker
    own = producer is None
    prod = producer or StreamProducer(config)
    targets = [kind.topic or kind.default_topic(prod.config.prefix) for kind in kinds]
    if len(set(targets)) != len(targets):
        raise InvalidArgumentError(f"each kind of record needs its own topic, got {', '.join(targets)}")
    seqs: list[dict[bytes, int]] = [{} for _ in kinds]
    sent_to = [0] * len(kinds)
    sent = 0
    max_lag = 0.0
    first_ns: int | None = None
    last_ns: int | None = None
    aborted = False
    pacing = _PacingStats()
    health: _Health | None = None
    try:
        rid = prod.begin_replay(replay_id)
        rid_header = rid.encode()
        if health_interval_s:
            health = _Health(store, targets, health_interval_s, clock)
        t0 = clock()
        next_report = t0 + progress_every_s
        next_health = t0 + health_interval_s if health_interval_s else float("inf")
        lag = 0.0

        def report(now: float) -> None:
            if progress is not None and last_ns is not None:
                elapsed = max(now - t0, 1e-9)
                progress(ReplayProgress(pd.Timestamp(last_ns, unit="ns", tz="UTC"), sent, sent / elapsed, lag))

        try:
            for piece in _chain(first_piece, pieces):
                for slot, ev, key, value, ts_ms in _records(piece, kinds):
                    if first_ns is None:
                        first_ns = ev
                    if pace is not None:
                        due = t0 + (ev - first_ns) / 1e9 / pace
                        now = clock()
                        if now < due:
                            sleep(due - now)
                            now = clock()
                        lag = now - due
                        pacing.add(lag)
                        if lag > max_lag:
                            max_lag = lag
                    kseq = seqs[slot]
                    seq = kseq.get(key, 0) + 1
                    kseq[key] = seq
                    prod.produce(targets[slot], key, value, ts_ms,
                                 headers=[(REPLAY_HEADER, rid_header), (SEQ_HEADER, str(seq).encode())])
                    sent += 1
                    sent_to[slot] += 1
                    last_ns = ev
                    # paced: a record may be seconds apart, so look every record; unpaced every 64 (cheap)
                    if (pace is not None or sent & 63 == 0) and (progress is not None or health is not None):
                        now = clock()
                        if now >= next_report:
                            report(now)
                            next_report = now + progress_every_s
                        if now >= next_health and health is not None:
                            health.write(sent_to, max(lag, 0.0))
                            # from the end of the write: a slow store write must not leave the next interval
                            # with next to no publishing time (its rate would read as a stall of the replay)
                            next_health = clock() + health_interval_s  # type: ignore[operator]
        except KeyboardInterrupt:
            aborted = True
        markers = prod.end_replay(targets, reason=ABORTED if aborted else None)
        if health is not None:
            health.write(sent_to, max(lag, 0.0))
        if not aborted:
            report(clock())
    finally:
        if own:
            prod.close()
    if aborted:
        raise KeyboardInterrupt(f"replay {rid} aborted after {sent} records; end markers say 'aborted'")
    per_topic = {t: {k.decode(): n for k, n in kseq.items()} for t, kseq in zip(targets, seqs)}
    return ReplayResult(
        replay_id=rid, topic=targets[0], records=sent, per_key=per_topic[targets[0]],
        markers=markers.get(targets[0], []),
        first_event=None if first_ns is None else pd.Timestamp(first_ns, unit="ns", tz="UTC"),
        last_event=None if last_ns is None else pd.Timestamp(last_ns, unit="ns", tz="UTC"),
        seconds=clock() - t0, max_lag_s=max(max_lag, 0.0), aborted=aborted, pacing=pacing.summary(),
        health_rows=0 if health is None else health.writer.written, topics=tuple(targets), per_topic=per_topic,
        markers_by_topic={t: markers.get(t, []) for t in targets},
    )


def _chain(first: list[pd.DataFrame], rest: Iterator[list[pd.DataFrame]]) -> Iterator[list[pd.DataFrame]]:
    yield first
    yield from rest
