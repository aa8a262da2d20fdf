"""A Backtrader live feed over a btlab bar or tick topic: :class:`KafkaSource` (one consumer) and its
:class:`KafkaData` feeds.

How it works: :meth:`KafkaSource.open` starts one consumer thread that reads every partition of the topic from
the beginning, assigned directly (no consumer-group join, so no multi-second rebalance wait), decodes the records
(:func:`btlab.stream.codec.decode`) and puts each instrument's bars into its own queue. One :class:`KafkaData`
per instrument takes bars from its queue in Backtrader's ``_load``:

* ``None`` while the next bar is not yet known to be complete *across instruments* (see below), ``False`` after
  the replay's end marker has been seen on every partition and the queue is empty, ``True`` with a bar;
* ``islive()`` is True; the feed notifies ``DELAYED`` while the consumer catches up and ``LIVE`` once it has
  reached the end of every partition (the head of the topic).

Alignment across instruments: Backtrader's live loop advances with whatever feeds have a bar *now*, so a feed
whose bar at ``t`` arrives a moment later would be played one step late and the run would differ from the run on
the store. A bar ``(t, A)`` is therefore released only when every other instrument ``S`` either has delivered a bar
at or after ``t``, or can no longer have one at ``t``: every partition that has not ended has moved past
``(t, S)`` in the replay's publishing order (event time, then symbol; :mod:`btlab.stream.replay`). This makes
the stream path play exactly the steps the direct path plays.

Checks (errors raised from ``_load``, i.e. from ``cerebro.run()``, as :class:`~btlab.stream.errors.StreamError`):
per key, the ``btlab-seq`` header must go 1, 2, 3, ... (a missing or repeated record is an error, never a
silently different backtest); each partition's end marker ``count`` must equal the records read from it; an
unreadable record, an ``aborted`` replay, and records of a second replay mixed into the first are errors.

Memory: at most ``max_queued`` bars per partition are held; a partition with that many is paused (the broker keeps
the rest) and resumed below half of it.

Resampled timeframes: :meth:`KafkaSource.resample_feed` gives a further feed of an instrument (its own queue, bars
holding trades only) for ``cerebro.resampledata``, with btlab's ``ClosedWindowResampler`` as on the direct path.

Replayed timeframes (``cerebro.replaydata``): a :class:`KafkaData` takes Backtrader's own replay filter, as the
direct path's :class:`~btlab.backtest.feed.BarFrameData` does, so a strategy sees the same updates of the growing
higher-timeframe bar (one per base bar, same datetime and OHLCV) and the same fills on both paths, also while the
replay is still publishing (tests/backtest/test_kafka_feed.py). To have an instrument both as it is and replayed,
give the replay a second feed of it: ``KafkaData(source=source, symbol=s, bars_timeframe=tf, name=...)`` (a second
subscription, as :meth:`KafkaSource.resample_feed`). Note Backtrader's live loop runs the broker also on a step
where no feed had a bar yet: a margin rejection is then stamped at the bar the order was created on, not the next
one (fills are unaffected: a market order still fills on the next bar's open).

Tick topics (:func:`btlab.stream.replay.replay_ticks`): the consumer thread builds each instrument's bars of the
run's base timeframe with btlab's :class:`~btlab.marketdata.bars.StreamingAggregator` (no lateness, empty windows
skipped -- the same kernel and rules as :func:`~btlab.marketdata.bars.from_ticks.bars_from_ticks`, so the bars are
bit-identical to the ones built from the same stored trades). A window is final once the instrument's partition
has moved to a trade at or after its end (the replay publishes in trade-time order, so no trade of that window
can follow); at the end markers of a complete replay the still-open windows are final too (the replay covered
them: give the replay a range that ends on a bar boundary, e.g. whole days, or its last bar is partial). Higher
timeframes come from ``cerebro.resampledata`` as for bar topics. Trade ids must be numeric (the aggregator's
order and dedup key).

Only topics whose replay carries sequence headers (:mod:`btlab.stream.replay`) are supported in this version.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
import uuid
from collections import deque
from typing import Any

import pandas as pd
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from btlab.backtest.compat import bt
from btlab.backtest.feed import SESSION_END, ClosedWindowResampler, backtrader_timeframe
from btlab.errors import InvalidArgumentError, NoDataError
from btlab.marketdata.bars import StreamingAggregator
from btlab.model.bar import BAR_COLUMNS
from btlab.model.timeframe import Timeframe
from btlab.stream.codec import BarMessage, EndMarker, TickMessage, bars_frame, decode
from btlab.stream.config import StreamConfig, check_broker
from btlab.stream.errors import (
    BrokerUnavailableError,
    StreamError,
    UnreadableRecordError,
)
from btlab.stream.replay import ABORTED, REPLAY_HEADER, SEQ_HEADER

__all__ = ["KafkaData", "KafkaSource"]

_EPOCH = _dt.datetime(1970, 1, 1)


class KafkaSource:
    """Where a backtest reads its bars from a topic: ``run_backtest(..., source=KafkaSource("btlab.bars.1m"))``.

    Args:
        topic: the bar or tick topic a replay wrote (``btlab replay [--ticks]`` prints it; default there
            ``<prefix>.bars.<tf>`` / ``<prefix>.ticks``). From ticks, bars of the run's timeframe are built here.
        bootstrap: broker address ``host:port``; default ``BTLAB_KAFKA`` (via ``config``).
        config: broker settings instead of ``bootstrap`` (its ``connect_timeout_s`` bounds the wait for the broker).
        replay_id: the replay to play; default the first replay found on the topic.
        max_queued: bars held per partition before the partition is paused.
        idle_timeout_s: end the feed after this many seconds without a record (None: wait for the end marker).

    Attributes:
        at_head: the consumer has reached the end of every partition at least once (LIVE).
        records: data records taken from the topic.

    Raises (from :meth:`open`):
        StreamConfigError: no address given and ``BTLAB_KAFKA`` unset.
        BrokerUnavailableError: the broker did not answer within ``connect_timeout_s`` (exit code 2 in the CLI).
        NoDataError: the topic does not exist.
    """

    def __init__(self, topic: str, bootstrap: str | None = None, *, config: StreamConfig | None = None,
                 replay_id: str | None = None, max_queued: int = 20_000, idle_timeout_s: float | None = None) -> None:
        if config is None:
            config = StreamConfig(bootstrap) if bootstrap else StreamConfig.require()
        if max_queued < 2:
            raise InvalidArgumentError("max_queued must be >= 2")
        self.topic = topic
        self.config = config
        self.replay_id = replay_id
        self.max_queued = max_queued
        self.idle_timeout_s = idle_timeout_s
        self.at_head = False
        self.records = 0
        self._cond = threading.Condition()
        self._queues: dict[str, list[deque[BarMessage]]] = {}  # key -> one queue per subscribed feed
        self._symbols: dict[str, str] = {}
        self._last: dict[str, int] = {}  # key -> open ns of the last bar read
        self._base_played: dict[str, int] = {}  # key -> open ns of the last bar its base feed (queue 0) took
        self._seq: dict[str, int] = {}
        self._pos: dict[int, tuple[int, str]] = {}  # partition -> (open ns, symbol) of the last record read
        self._count: dict[int, int] = {}
        self._queued: dict[int, int] = {}
        self._key_partition: dict[str, int] = {}
        self._paused: set[int] = set()
        self._ended: set[int] = set()
        self._eof: set[int] = set()
        self._partitions: list[int] = []
        self._error: BaseException | None = None
        self._done = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._timeframe: Timeframe | None = None
        self._exchange = ""
        self._kind: type | None = None  # BarMessage or TickMessage: what the topic carries (from its first record)
        self._aggs: dict[str, StreamingAggregator] = {}  # tick topics: key -> bars of the run's timeframe
        self._tick_at: dict[int, int] = {}  # tick topics: partition -> trade time ns of the last record read

    # -- opening ----------------------------------------------------------------------------------------------
    def open(self, exchange: str, symbols: list[str], timeframe: str | Timeframe) -> None:
        """Check the broker and the topic, then start the consumer thread (idempotent).

        Raises: see the class docstring.
        """
        if self._consumer is not None:
            return
        self._timeframe = Timeframe.parse(timeframe)
        self._exchange = exchange
        for s in symbols:
            key = f"{exchange}:{s}"
            self._queues[key] = []
            self._symbols[key] = s
            self._last[key] = -1
            self._base_played[key] = -1
            self._seq[key] = 0
        check_broker(self.config)
        conf = {**self.config.common_conf(), "group.id": f"btlab-feed-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest"}
        consumer = Consumer(conf)
        try:
            meta = consumer.list_topics(self.topic, timeout=self.config.connect_timeout_s)
        except KafkaException as exc:
            consumer.close()
            raise BrokerUnavailableError(self.config.bootstrap_servers, exc.args[0].str(),
                                         self.config.connect_timeout_s) from None
        tmeta = meta.topics.get(self.topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            consumer.close()
            raise NoDataError(f"topic {self.topic!r} does not exist on the Kafka broker at "
                              f"{self.config.bootstrap_servers} (replay into it first: btlab replay ... --topic T)")
        self._partitions = sorted(tmeta.partitions)
        self._pos = {p: (-1, "") for p in self._partitions}
        self._count = dict.fromkeys(self._partitions, 0)
        self._queued = dict.fromkeys(self._partitions, 0)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self._partitions])
        self._consumer = consumer  # read from the first next_bar() on, once every feed has subscribed

    def subscribe(self, symbol: str) -> int:
        """Register one more feed of ``symbol`` (each gets every bar); returns its queue index. Before the run only.

        Raises:
            InvalidArgumentError: the source is not open for ``symbol``, or already reading.
        """
        key = f"{self._exchange}:{symbol}"
        with self._cond:
            if key not in self._queues or self._thread is not None:
                raise InvalidArgumentError(f"KafkaSource: cannot subscribe {key} (not opened for it, or already "
                                           f"reading)")
            self._queues[key].append(deque())
            return len(self._queues[key]) - 1

    def _start(self) -> None:
        if self._thread is None and self._consumer is not None:
            self._thread = threading.Thread(target=self._run, args=(self._consumer,), name="btlab-kafka-feed",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the consumer thread and close the consumer (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        elif self._consumer is not None:
            self._consumer.close()
        self._consumer = None

    def feeds(self, exchange: str, symbols: list[str], timeframe: str | Timeframe, start: Any = None,
              end: Any = None) -> list["KafkaData"]:
        """Open the source and return one :class:`KafkaData` per symbol (named by its symbol), in order.

        ``start``/``end``: UTC bounds ``start <= open time < end`` (None = unbounded); bars outside are skipped.
        """
        self.open(exchange, symbols, timeframe)
        return [KafkaData(source=self, symbol=s, bars_timeframe=Timeframe.parse(timeframe).value, name=s,
                          start=start, end=end) for s in symbols]

    def resample_feed(self, symbol: str, timeframe: str | Timeframe, name: str, start: Any = None,
                      end: Any = None) -> "KafkaData":
        """One more feed of ``symbol``'s bars (those holding trades only, as
        :func:`btlab.backtest.feed.traded_bars`), for ``cerebro.resampledata(feed, ...)``; call after :meth:`feeds`."""
        return KafkaData(source=self, symbol=symbol, bars_timeframe=Timeframe.parse(timeframe).value, name=name,
                         start=start, end=end, traded_only=True)

    # -- consumer thread --------------------------------------------------------------------------------------
    def _run(self, consumer: Consumer) -> None:
        last_record = time.monotonic()
        try:
            while not self._stop.is_set():
                self._resume_drained(consumer)
                msgs = consumer.consume(500, 0.1)
                if not msgs:
                    if self.idle_timeout_s is not None and time.monotonic() - last_record > self.idle_timeout_s:
                        with self._cond:
                            self._ended.update(self._partitions)
                            self._check_head()
                            self._cond.notify_all()
                        return
                    continue
                last_record = time.monotonic()
                decoded = [_decoded(m) for m in msgs]  # JSON decoding outside the lock: the feeds keep playing
                with self._cond:
                    for m, message in zip(msgs, decoded):
                        self._take(consumer, m, message)
                    if self._kind is TickMessage:
                        self._close_windows(final=len(self._ended) == len(self._partitions))
                    self._cond.notify_all()
                    if len(self._ended) == len(self._partitions):
                        return
        except BaseException as exc:  # handed to the feeds, raised in the main thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            consumer.close()

    def _resume_drained(self, consumer: Consumer) -> None:
        with self._cond:
            ready = [p for p in self._paused if self._queued[p] < self.max_queued // 2]
            for p in ready:
                self._paused.discard(p)
        if ready:
            consumer.resume([TopicPartition(self.topic, p) for p in ready])

    def _where(self, m: Any) -> str:
        return f"{self.topic}[{m.partition()}] offset {m.offset()}"

    def _take(self, consumer: Consumer, m: Any, message: Any) -> None:
        """Handle one consumed message (under the lock); ``message``: its value decoded (:func:`_decoded`)."""
        err = m.error()
        p = m.partition()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self._eof.add(p)
                self._check_head()
                return
            if err.fatal():
                raise StreamError(f"Kafka consumer error on {self.topic}: {err.str()}")
            return
        if p in self._ended:
            return  # after this replay's marker: another replay's records, left alone
        self._eof.discard(p)
        headers = dict(m.headers() or ())
        if isinstance(message, UnreadableRecordError):
            raise StreamError(f"{self._where(m)}: {message}")
        if isinstance(message, EndMarker):
            if self.replay_id is None:
                self.replay_id = message.replay_id  # every partition holds the first replay's part before others
            if message.replay_id != self.replay_id:
                return
            if message.reason == ABORTED:
                raise StreamError(f"replay {message.replay_id} on {self.topic} was aborted before its end: its "
                                  f"backtest would differ from the stored data (replay it again)")
            if message.count != self._count[p]:
                raise StreamError(f"{self._where(m)}: end marker of replay {message.replay_id} counts "
                                  f"{message.count} records in partition {p}, but {self._count[p]} were read")
            self._ended.add(p)
            self._check_head()
            return
        rid = headers.get(REPLAY_HEADER)
        seq_raw = headers.get(SEQ_HEADER)
        if rid is None or seq_raw is None:
            raise StreamError(f"{self._where(m)}: a record without {REPLAY_HEADER}/{SEQ_HEADER} headers: this feed "
                              f"reads topics written by btlab replay")
        rid_text = rid.decode("utf-8", "replace")
        if self.replay_id is None:
            self.replay_id = rid_text
        elif rid_text != self.replay_id:
            if self._count[p]:
                raise StreamError(f"{self._where(m)}: record of replay {rid_text[:40]!r} inside replay "
                                  f"{self.replay_id!r} (two replays written to one topic at once?)")
            return  # an earlier replay before ours
        kind = type(message)
        if self._kind is None:
            self._kind = kind
        elif kind is not self._kind:
            raise StreamError(f"{self._where(m)}: a {'tick' if kind is TickMessage else 'bar'} record among "
                              f"{'ticks' if self._kind is TickMessage else 'bars'}: a replay carries one or the other")
        key = message.key
        self._count[p] += 1
        self.records += 1
        if kind is BarMessage:
            self._pos[p] = (message.ts, message.symbol)
        else:
            self._tick_at[p] = message.ts
        if key not in self._queues:
            return  # an instrument this run does not trade
        try:
            seq = int(seq_raw)
        except ValueError:
            raise StreamError(f"{self._where(m)}: bad {SEQ_HEADER} header {seq_raw[:20]!r}") from None
        expected = self._seq[key] + 1
        if seq != expected:
            what = "repeated" if seq < expected else f"missing ({seq - expected} record(s))"
            raise StreamError(f"{self._where(m)}: {key} record {seq} after {expected - 1}: records {what}; the "
                              f"backtest would not see what was published")
        if kind is TickMessage:
            self._seq[key] = seq
            self._key_partition[key] = p
            self._add_tick(m, key, message)  # type: ignore[arg-type]
            return
        if message.timeframe != self._timeframe.value:  # type: ignore[union-attr]
            raise StreamError(f"{self._where(m)}: a {message.timeframe} bar, but the run is on "
                              f"{self._timeframe} bars")
        self._seq[key] = seq
        self._key_partition[key] = p
        self._enqueue(key, message)
        self._pause_full(consumer, p)

    def _enqueue(self, key: str, bar: BarMessage) -> None:
        self._last[key] = bar.ts
        for q in self._queues[key]:
            q.append(bar)
        self._queued[self._key_partition[key]] += 1

    def _pause_full(self, consumer: Consumer, p: int) -> None:
        if self._queued[p] >= self.max_queued and p not in self._paused:
            self._paused.add(p)
            consumer.pause([TopicPartition(self.topic, p)])

    def _add_tick(self, m: Any, key: str, tick: TickMessage) -> None:
        """Feed one trade of a run's instrument to its aggregator (under the lock)."""
        agg = self._aggs.get(key)
        if agg is None:
            agg = self._aggs[key] = StreamingAggregator([self._timeframe], allowed_lateness=0.0, empty="skip")
        try:
            trade_id = int(tick.trade_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise StreamError(f"{self._where(m)}: trade id {str(tick.trade_id)[:40]!r} of {key} is not a number: "
                              f"bars are built from trades with numeric ids") from None
        agg.add(tick.ts, tick.price, tick.amount, trade_id)

    def _close_windows(self, *, final: bool) -> None:
        """Tick topics: queue the bars whose windows have closed (under the lock, after each batch of records).

        A window ``[t, t + tf)`` of an instrument is closed once its partition has reached a trade at or after
        ``t + tf``; with ``final`` (every partition's end marker read) the open windows are closed too. Then each
        partition's position becomes the open time of its current window: no bar opening before it can follow.
        """
        tf = self._timeframe
        assert tf is not None
        name = tf.value
        for key, agg in self._aggs.items():
            p = self._key_partition[key]
            if agg.advance(self._tick_at[p]):
                self._queue_arrays(key, agg.pop_bar_arrays()[name])
            if final:
                last = agg.flush()[name]
                self._queue_arrays(key, {c: last[c].to_numpy() for c in last.columns})
        for p, at in self._tick_at.items():
            self._pos[p] = (at - (at - tf.origin_ns) % tf.nanos, "")
        consumer = self._consumer
        if consumer is not None:
            for p in self._tick_at:
                self._pause_full(consumer, p)

    def _queue_arrays(self, key: str, bars: dict[str, Any]) -> None:
        tf, ex, sym = self._timeframe.value, self._exchange, self._symbols[key]  # type: ignore[union-attr]
        for t, o, h, lo, c, v, n, w in zip(bars["ts"].tolist(), bars["open"].tolist(), bars["high"].tolist(),
                                           bars["low"].tolist(), bars["close"].tolist(), bars["volume"].tolist(),
                                           bars["trades"].tolist(), bars["vwap"].tolist()):
            self._enqueue(key, BarMessage(int(t.value) if isinstance(t, pd.Timestamp) else int(t), ex, sym, tf,
                                          o, h, lo, c, v, None if n is None else int(n),
                                          None if w is None or w != w else w))

    def _check_head(self) -> None:
        """LIVE from the moment every partition is read to its end (its end marker, or the broker's last record)."""
        if len(self._eof | self._ended) == len(self._partitions):
            self.at_head = True

    # -- feeds' side ------------------------------------------------------------------------------------------
    def _releasable(self, key: str, ts: int) -> bool:
        """May bar ``(ts, key)`` be played now (no other instrument can still have a bar at ``ts``)?"""
        low: Any = ()  # the lowest position of a partition still open; computed only when needed (per-bar path)
        for other, sym in self._symbols.items():
            if other == key or self._last[other] >= ts:
                continue
            if low == ():
                low = min((self._pos[p] for p in self._partitions if p not in self._ended), default=None)
            if low is not None and not low > (ts, sym):
                return False
        return True

    def _other_ready(self, key: str) -> bool:
        """Has another instrument a bar that may be played now? (``key``'s queue is empty: by the release rule that
        bar's time is one at which ``key`` can have no bar, so Backtrader may step without ``key``.)"""
        for other, queues in self._queues.items():
            if other != key and queues and queues[0] and self._releasable(other, queues[0][0].ts):
                return True
        return False

    def next_bar(self, key: str, sub: int = 0, wait_s: float = 0.05) -> BarMessage | bool | None:
        """The next bar of ``key`` if it may be played, False if the replay ended and none is left, else None
        (after waiting up to ``wait_s`` for one). ``sub``: the feed's queue (:meth:`subscribe`).

        Raises:
            StreamError (or what the consumer thread hit): see the module docstring.
        """
        deadline = None
        self._start()
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                q = self._queues[key][sub]
                if q and sub and q[0].ts > self._base_played[key]:
                    # a resampled feed never runs ahead of its base feed: Backtrader asks the base feeds first in
                    # each step, so a bar the base did not take in this step must wait for a later step (else a step
                    # may hold only resampled bars, which Backtrader's live loop cannot order)
                    return None
                if q:
                    bar = q[0]
                    if self._releasable(key, bar.ts):
                        q.popleft()
                        if sub == 0:  # the base feed's queue bounds the partition (the others follow it in step)
                            self._queued[self._key_partition[key]] -= 1
                            self._base_played[key] = bar.ts
                        return bar
                elif len(self._ended) == len(self._partitions):
                    return False
                elif self._other_ready(key):
                    return None  # another feed plays now, and this one has no bar at that time: no need to wait
                now = time.monotonic()
                deadline = deadline or now + wait_s
                if now >= deadline:
                    return None
                self._cond.wait(deadline - now)


class KafkaData(bt.feed.DataBase):
    """Backtrader live feed of one instrument's bars from a :class:`KafkaSource` (datetimes = bar CLOSE times,
    naive UTC, as :class:`btlab.backtest.feed.BarFrameData`).

    Params:
        source: the :class:`KafkaSource` (opened).
        symbol: the instrument (ccxt unified symbol).
        bars_timeframe: btlab timeframe of the bars (required).

    Attributes:
        btlab_timeframe, btlab_symbol: as :class:`~btlab.backtest.feed.BarFrameData`.
    """

    params: Any = (("source", None), ("symbol", None), ("bars_timeframe", None), ("start", None), ("end", None),
                   ("traded_only", False), ("sessionend", SESSION_END))

    def __init__(self) -> None:
        super().__init__()
        if self.p.source is None or self.p.bars_timeframe is None:
            raise InvalidArgumentError("KafkaData needs source=<KafkaSource> and bars_timeframe=<timeframe>")
        self._bars_tf = Timeframe.parse(self.p.bars_timeframe)
        self.btlab_timeframe = self._bars_tf
        self.p.timeframe, self.p.compression = backtrader_timeframe(self._bars_tf)
        self._timeframe, self._compression = self.p.timeframe, self.p.compression
        self.btlab_symbol = str(self.p.symbol or self.p.name or "").split("@")[0]
        self._key = f"{self.p.source._exchange}:{self.btlab_symbol}"
        self._sub = self.p.source.subscribe(self.btlab_symbol)
        self._played: list[BarMessage] = []
        self._frame: tuple[int, pd.DataFrame] | None = None  # load_bars() of the last call
        self._state: int | None = None
        self._lo = -(2**63) if self.p.start is None else pd.Timestamp(self.p.start).value
        self._hi = 2**63 - 1 if self.p.end is None else pd.Timestamp(self.p.end).value

    def resample(self, **kwargs: Any) -> None:
        """Used by ``cerebro.resampledata``: Backtrader's resampler without the incomplete last window (as
        :class:`btlab.backtest.feed.BarFrameData`)."""
        self.addfilter(ClosedWindowResampler, **kwargs)

    def islive(self) -> bool:
        """True: Backtrader runs bar by bar (no preload) and waits when ``_load`` returns None."""
        return True

    def load_bars(self) -> pd.DataFrame:
        """The bars played so far (:mod:`btlab.model.bar` layout, bar OPEN times UTC, ``trades``/``vwap`` as sent;
        a fresh copy each call, built once per number of bars played: the run's end asks several times)."""
        if self._frame is None or self._frame[0] != len(self._played):
            self._frame = (len(self._played), bars_frame(self._played)[list(BAR_COLUMNS)])
        return self._frame[1].copy()

    def _notify(self, state: int) -> None:
        if state != self._state:
            self._state = state
            self.put_notification(state)

    def _load(self) -> bool | None:
        src: KafkaSource = self.p.source
        self._notify(self.LIVE if src.at_head else self.DELAYED)
        while True:
            bar = src.next_bar(self._key, self._sub)
            if bar is None:
                return None
            if bar is False:
                if not self._played:
                    raise NoDataError(f"no {self.btlab_symbol} bars in replay {src.replay_id} on topic {src.topic} "
                                      f"(in the run's range; {src.records} records read)")
                return False
            if self._lo <= bar.ts < self._hi and (not self.p.traded_only or _traded(bar)):
                break
        close = _EPOCH + _dt.timedelta(microseconds=(bar.ts + self._bars_tf.nanos) // 1000)
        lines = self.lines
        lines.datetime[0] = bt.date2num(close)  # Backtrader's own conversion, as BarFrameData
        lines.open[0] = bar.open
        lines.high[0] = bar.high
        lines.low[0] = bar.low
        lines.close[0] = bar.close
        lines.volume[0] = bar.volume
        lines.openinterest[0] = 0.0
        self._played.append(bar)
        return True


def _decoded(m: Any) -> Any:
    """A consumed record's value decoded, the :class:`UnreadableRecordError` if it cannot be, None for a client
    event (error or end of partition)."""
    if m.error() is not None:
        return None
    try:
        return decode(m.value())
    except UnreadableRecordError as exc:
        return exc


def _traded(bar: BarMessage) -> bool:
    """The bar holds a trade: ``trades > 0``, or ``volume > 0`` when the count is unknown (as ``traded_bars``)."""
    return bar.trades > 0 if bar.trades is not None else bar.volume > 0
