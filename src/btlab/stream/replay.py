"""Replaying stored history through the broker as if live: :func:`replay_bars` and :func:`replay_ticks`.

What goes out: every stored bar (or trade) of the requested instruments and range, one record each, keyed
``exchange:symbol``, on one topic (default ``<prefix>.bars.<timeframe>`` or ``<prefix>.ticks``), followed by the
codec's end marker on every partition. Both share one publishing loop (:func:`_publish`); they differ only in how
the store is read and how a record is encoded.

* Event time: a bar's event time is its CLOSE, ``open + timeframe`` -- the moment it would be known live; a
  tick's event time is its trade time. Records are published in event-time order across instruments. Ties: bars
  closing at the same time go out ordered by symbol; trades at the same time by symbol, then by trade id
  (numerically when every id is a number, else as text) -- the aggregators' canonical order -- so the order is
  stable from run to run. The record timestamp is the bar OPEN time for bars and the trade time for ticks (the
  codec's convention, see :mod:`btlab.stream.codec`).
* Memory: the store is read in bounded windows (``Store.read_bars(start, end)`` of ``chunk_bars`` bar times, or
  ``Store.read_ticks(start, end)`` of ``chunk_seconds`` of trade time, per instrument), never the whole range at
  once. A window without trades is skipped to the next stored trade (``Store.tick_span``), so a gap of months
  costs one query, not one per window.
* Sequence numbers: header ``btlab-seq`` = 1, 2, 3, ... per key, header ``btlab-replay`` = the replay id (as in
  the end markers), so a reader detects a missing or repeated record.
* Pacing: record *i* is published at ``t0 + (event_i - event_0) / speed`` on :func:`time.monotonic` (the schedule is
  computed from the start each time, so no drift accumulates); ``speed=None`` publishes as fast as possible. The
  replay measures its own pacing error (``|actual - scheduled|`` per record, when paced) and reports p50/p99/max in
  :class:`ReplayResult`.
* Health (``health_interval_s``): ``bt_health`` rows of service ``replay`` through
  :class:`btlab.store.health.HealthWriter`: ``records_per_s`` and ``replay_lag_s``, subject = the topic.
* Ctrl-C (KeyboardInterrupt): nothing half-sent -- the records already handed over are flushed, then end markers
  with ``reason="aborted"`` are written and the interrupt is re-raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
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
        topic: the topic written.
        records: data records published (end markers not counted).
        per_key: records per key ``exchange:symbol``.
        markers: the end markers written (one per partition).
        first_event, last_event: event times (bar close or trade time, UTC) of the first and last record, or None.
        seconds: wall time of the replay.
        max_lag_s: largest delay of a record behind its schedule, in seconds (0 when unpaced).
        aborted: True when stopped early (markers carry ``reason="aborted"``).
        pacing: per-record ``|actual - scheduled|`` publish time summary (``records`` 0 when unpaced).
        health_rows: ``bt_health`` rows written (0 without ``health_interval_s``).
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
    ``(event_ns, symbol)``. Windows follow each other, so the concatenation is in order too.

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

    def records(chunk: pd.DataFrame) -> Iterable[tuple[bytes, bytes, int]]:
        return ((k, v, ts) for k, v, ts, _tf in iter_bar_records(chunk.drop(columns=["event_ns"]), timeframe=tf,
                                                               source="stored bars"))

    return _publish(store, chunks, records, lambda prefix: bars_topic(tf, prefix), config=config, producer=producer,
                    topic=topic, pace=pace, replay_id=replay_id, progress=progress,
                    progress_every_s=progress_every_s, health_interval_s=health_interval_s, clock=clock, sleep=sleep)


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

    def records(chunk: pd.DataFrame) -> Iterable[tuple[bytes, bytes, int]]:
        return iter_tick_records(chunk.drop(columns=["event_ns"]), source="stored ticks")

    return _publish(store, chunks, records, ticks_topic, config=config, producer=producer, topic=topic, pace=pace,
                    replay_id=replay_id, progress=progress, progress_every_s=progress_every_s,
                    health_interval_s=health_interval_s, clock=clock, sleep=sleep)


class _Health:
    """``records_per_s`` and ``replay_lag_s`` (subject = topic) through :class:`~btlab.store.health.HealthWriter`.

    The writer takes cumulative counts and writes their increase per interval; a rate or a gauge is therefore
    handed over as a running total that grows by exactly the interval's value.
    """

    def __init__(self, store: Any, topic: str, interval: float, clock: Callable[[], float]) -> None:
        from btlab.store.health import HealthWriter

        self.writer = HealthWriter(store, HEALTH_SERVICE, interval=interval, clock=clock)
        self.topic, self.clock = topic, clock
        self._at, self._sent = clock(), 0
        self._totals = {("records_per_s", topic): 0.0, ("replay_lag_s", topic): 0.0}

    def write(self, sent: int, lag: float) -> None:
        now = self.clock()
        rate = (sent - self._sent) / max(now - self._at, 1e-9)
        self._totals[("records_per_s", self.topic)] += rate
        self._totals[("replay_lag_s", self.topic)] += lag
        self.writer.write(self._totals, {})
        self._at, self._sent = now, sent


def _publish(
    store: Any,
    chunks: Iterator[pd.DataFrame],
    records: Callable[[pd.DataFrame], Iterable[tuple[bytes, bytes, int]]],
    default_topic: Callable[[str], str],
    *,
    config: StreamConfig | None,
    producer: StreamProducer | None,
    topic: str | None,
    pace: float | None,
    replay_id: str | None,
    progress: Callable[[ReplayProgress], None] | None,
    progress_every_s: float,
    health_interval_s: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> ReplayResult:
    """The publishing loop shared by bar and tick replays: ``chunks`` (frames with ``event_ns``, in publishing
    order) are encoded by ``records`` into ``(key, value, timestamp_ms)`` and published paced, with sequence
    headers, progress, health rows and end markers (see the module doc)."""
    if health_interval_s is not None and health_interval_s < 0:
        raise InvalidArgumentError(f"the health interval must be >= 0 seconds (0 = off), got {health_interval_s}")
    first_chunk = next(chunks)  # NoDataError before anything is opened on the broker
    own = producer is None
    prod = producer or StreamProducer(config)
    target = topic or default_topic(prod.config.prefix)
    seqs: dict[bytes, int] = {}
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
            health = _Health(store, target, health_interval_s, clock)
        t0 = clock()
        next_report = t0 + progress_every_s
        next_health = t0 + health_interval_s if health_interval_s else float("inf")
        lag = 0.0

        def report(now: float) -> None:
            if progress is not None and last_ns is not None:
                elapsed = max(now - t0, 1e-9)
                progress(ReplayProgress(pd.Timestamp(last_ns, unit="ns", tz="UTC"), sent, sent / elapsed, lag))

        try:
            for chunk in _chain(first_chunk, chunks):
                events = chunk["event_ns"].tolist()
                for (key, value, ts_ms), ev in zip(records(chunk), events):
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
                    seq = seqs.get(key, 0) + 1
                    seqs[key] = seq
                    prod.produce(target, key, value, ts_ms,
                                 headers=[(REPLAY_HEADER, rid_header), (SEQ_HEADER, str(seq).encode())])
                    sent += 1
                    last_ns = ev
                    # paced: a record may be seconds apart, so look every record; unpaced every 64 (cheap)
                    if (pace is not None or sent & 63 == 0) and (progress is not None or health is not None):
                        now = clock()
                        if now >= next_report:
                            report(now)
                            next_report = now + progress_every_s
                        if now >= next_health and health is not None:
                            health.write(sent, max(lag, 0.0))
                            next_health = now + health_interval_s  # type: ignore[operator]
        except KeyboardInterrupt:
            aborted = True
        markers = prod.end_replay([target], reason=ABORTED if aborted else None)
        if health is not None:
            health.write(sent, max(lag, 0.0))
        if not aborted:
            report(clock())
    finally:
        if own:
            prod.close()
    if aborted:
        raise KeyboardInterrupt(f"replay {rid} aborted after {sent} records; end markers say 'aborted'")
    return ReplayResult(
        replay_id=rid, topic=target, records=sent, per_key={k.decode(): v for k, v in seqs.items()},
        markers=markers.get(target, []),
        first_event=None if first_ns is None else pd.Timestamp(first_ns, unit="ns", tz="UTC"),
        last_event=None if last_ns is None else pd.Timestamp(last_ns, unit="ns", tz="UTC"),
        seconds=clock() - t0, max_lag_s=max(max_lag, 0.0), aborted=aborted, pacing=pacing.summary(),
        health_rows=0 if health is None else health.writer.written,
    )


def _chain(first: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield from rest
