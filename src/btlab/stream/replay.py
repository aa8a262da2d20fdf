"""Replaying stored bars through the broker as if live: :func:`replay_bars`.

What goes out: every stored bar of the requested instruments and range, one record each, keyed ``exchange:symbol``,
on one topic (default ``<prefix>.bars.<timeframe>``), followed by the codec's end marker on every partition.

* Event time: a bar's event time is its CLOSE, ``open + timeframe`` -- the moment it would be known live. Records
  are published in event-time order across instruments; bars closing at the same time go out ordered by symbol
  (then exchange), a stable order a reader can rely on. The record timestamp stays the bar OPEN time (the codec's
  convention for bars, see :mod:`btlab.stream.codec`).
* Memory: the store is read in bounded windows of ``chunk_bars`` bar times per instrument
  (``Store.read_bars(start, end)`` per window), never the whole range at once.
* Sequence numbers: header ``btlab-seq`` = 1, 2, 3, ... per key, header ``btlab-replay`` = the replay id (as in
  the end markers), so a reader detects a missing or repeated record.
* Pacing: record *i* is published at ``t0 + (event_i - event_0) / speed`` on :func:`time.monotonic` (the schedule is
  computed from the start each time, so no drift accumulates); ``speed=None`` publishes as fast as possible.
* Ctrl-C (KeyboardInterrupt): nothing half-sent -- the records already handed over are flushed, then end markers
  with ``reason="aborted"`` are written and the interrupt is re-raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from btlab.errors import InvalidArgumentError, NoDataError
from btlab.model.timebounds import parse_range
from btlab.model.timeframe import Timeframe
from btlab.stream.codec import EndMarker, iter_bar_records
from btlab.stream.config import StreamConfig
from btlab.stream.producer import StreamProducer
from btlab.stream.topics import bars_topic

#: record header carrying the replay id
REPLAY_HEADER = "btlab-replay"
#: record header carrying the per-key sequence number (decimal text, first record of a key = 1)
SEQ_HEADER = "btlab-seq"

#: end-marker reason of a replay stopped before its end
ABORTED = "aborted"


@dataclass(frozen=True)
class ReplayProgress:
    """State of a running replay, passed to the progress callback.

    Attributes:
        event_time: event time (bar close, UTC) of the last record published.
        records: records published so far.
        records_per_s: records published per second of wall time since the start.
        lag_s: seconds the last record went out after its scheduled time (0 when unpaced).
    """

    event_time: pd.Timestamp
    records: int
    records_per_s: float
    lag_s: float


@dataclass(frozen=True)
class ReplayResult:
    """Outcome of :func:`replay_bars`.

    Attributes:
        replay_id: id in the end markers and the ``btlab-replay`` header.
        topic: the topic written.
        records: data records published (end markers not counted).
        per_key: records per key ``exchange:symbol``.
        markers: the end markers written (one per partition).
        first_event, last_event: event times (bar close, UTC) of the first and last record, or None if none.
        seconds: wall time of the replay.
        max_lag_s: largest delay of a record behind its schedule, in seconds (0 when unpaced).
        aborted: True when stopped early (markers carry ``reason="aborted"``).
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
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Publish stored bars to a topic in event-time order, paced, and end with the end marker (see module doc).

    Args:
        store: an open :class:`btlab.store.Store`.
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
    names = [s.strip() for s in (symbols.split(",") if isinstance(symbols, str) else symbols) if s and s.strip()]
    if not names:
        raise InvalidArgumentError("no symbols to replay: give at least one, e.g. BTC/USDT")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"symbol listed twice in {','.join(names)}")
    tf = Timeframe.parse(timeframe)
    pace = parse_speed(speed)
    if chunk_bars < 1:
        raise InvalidArgumentError("chunk_bars must be >= 1")
    lo, hi = parse_range(start, end)
    chunks = iter_replay_chunks(store, exchange, names, tf, lo, hi, chunk_bars)
    first_chunk = next(chunks)  # NoDataError before anything is opened on the broker
    own = producer is None
    prod = producer or StreamProducer(config)
    target = topic or bars_topic(tf, prod.config.prefix)
    rid = prod.begin_replay(replay_id)
    seqs: dict[bytes, int] = {}
    sent = 0
    max_lag = 0.0
    first_ns: int | None = None
    last_ns: int | None = None
    aborted = False
    t0 = clock()
    next_report = t0 + progress_every_s
    rid_header = rid.encode()

    def report(now: float, lag: float) -> None:
        if progress is not None and last_ns is not None:
            elapsed = max(now - t0, 1e-9)
            progress(ReplayProgress(pd.Timestamp(last_ns, unit="ns", tz="UTC"), sent, sent / elapsed, lag))

    lag = 0.0
    try:
        try:
            for chunk in _chain(first_chunk, chunks):
                events = chunk["event_ns"].tolist()
                records = iter_bar_records(chunk.drop(columns=["event_ns"]), timeframe=tf, source="stored bars")
                for (key, value, ts_ms, _tf), ev in zip(records, events):
                    if first_ns is None:
                        first_ns = ev
                    if pace is not None:
                        due = t0 + (ev - first_ns) / 1e9 / pace
                        now = clock()
                        if now < due:
                            sleep(due - now)
                            now = clock()
                        lag = max(0.0, now - due)
                        max_lag = max(max_lag, lag)
                    seq = seqs.get(key, 0) + 1
                    seqs[key] = seq
                    prod.produce(target, key, value, ts_ms,
                                 headers=[(REPLAY_HEADER, rid_header), (SEQ_HEADER, str(seq).encode())])
                    sent += 1
                    last_ns = ev
                    if progress is not None and sent & 63 == 0:
                        now = clock()
                        if now >= next_report:
                            report(now, lag)
                            next_report = now + progress_every_s
        except KeyboardInterrupt:
            aborted = True
        markers = prod.end_replay([target], reason=ABORTED if aborted else None)
        if not aborted:
            report(clock(), lag)
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
        seconds=clock() - t0, max_lag_s=max_lag, aborted=aborted,
    )


def _chain(first: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield from rest
