"""Producing ticks, bars and end-of-replay markers (a thin layer over :class:`confluent_kafka.Producer`).

Guarantees: idempotent producer (``enable.idempotence=true``, ``acks=all``), so retries neither duplicate nor
reorder records within a partition; key ``exchange:symbol`` keeps each instrument in one partition, hence in
order; the record timestamp is the event time in ms. Delivery is asynchronous: failures are collected from the
delivery reports and raised as one :class:`~btlab.stream.errors.DeliveryError` by :meth:`StreamProducer.flush`
(which :meth:`StreamProducer.end_replay` and ``close``/``with`` exit call).

Example::

    config = StreamConfig.require()                    # BTLAB_KAFKA
    with StreamProducer(config) as producer:
        producer.send_ticks(ticks)                      # frame with the tick layout
        producer.send_bars(bars, exchange="binance", symbol="BTC/USDT", timeframe="1m")
        with producer.replay("bt-2024-08-08") as replay_id:   # markers at the end of the block
            producer.send_bars(history_bars, timeframe="1h")
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from btlab.model.timeframe import Timeframe
from btlab.stream.codec import BarMessage, EndMarker, TickMessage, encode, iter_bar_records, iter_tick_records
from btlab.stream.config import StreamConfig, check_broker
from btlab.stream.errors import DeliveryError, StreamError
from btlab.stream.topics import bars_topic, ensure_topics, partition_count, ticks_topic

log = logging.getLogger(__name__)

_POLL_EVERY = 2_000
_MAX_REASONS = 10


class StreamProducer:
    """Sends btlab messages to the broker with btlab's producer settings (see :meth:`StreamConfig.producer_conf`).

    Topics are created on first use (idempotent, :func:`btlab.stream.topics.ensure_topics`). Not thread-safe: use
    one producer per thread.

    Args:
        config: broker settings (default: :meth:`StreamConfig.require`, i.e. ``BTLAB_KAFKA``).
        check: check that the broker answers (bounded by ``config.connect_timeout_s``) before returning.

    Raises:
        StreamConfigError: no config given and ``BTLAB_KAFKA`` unset.
        BrokerUnavailableError: ``check`` and the broker did not answer in time (message names the address).
    """

    def __init__(self, config: StreamConfig | None = None, *, check: bool = True) -> None:
        self.config = config or StreamConfig.require()
        self._admin = AdminClient(self.config.admin_conf())
        if check:
            check_broker(self.config, self._admin)
        conf = self.config.producer_conf()
        conf["on_delivery"] = self._on_delivery
        conf["error_cb"] = self._on_error
        self._producer = Producer(conf)
        self._ensured: set[str] = set()
        self._failed = 0
        self._reasons: list[str] = []
        self._fatal: str | None = None
        self._since_poll = 0
        self._replay_counts: Counter[tuple[str, int]] | None = None
        self._replay_topics: set[str] = set()
        self._replay_last_ms: dict[str, int] = {}
        self._replay_id = ""
        self.sent = 0
        """Records handed to the client so far (delivered or pending)."""

    # -- callbacks (run inside poll/flush on this thread) ---------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed += 1
            if len(self._reasons) < _MAX_REASONS:
                reason = f"{msg.topic()} [{msg.partition()}]: {err.str()}"
                if reason not in self._reasons:
                    self._reasons.append(reason)
        elif self._replay_counts is not None:
            topic = msg.topic()
            self._replay_counts[(topic, msg.partition())] += 1
            ts = msg.timestamp()[1]
            if ts > self._replay_last_ms.get(topic, -1):
                self._replay_last_ms[topic] = ts

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
            log.error("fatal Kafka producer error (%s): %s", self.config.bootstrap_servers, err.str())
        else:  # librdkafka recovers by itself (e.g. an idle connection closed by the broker); flush reports losses
            level = logging.INFO if err.code() == KafkaError._TRANSPORT else logging.WARNING
            log.log(level, "Kafka producer (%s): %s", self.config.bootstrap_servers, err.str())

    # -- topics -----------------------------------------------------------------------------------------------
    def ticks_topic(self) -> str:
        """This producer's ticks topic (``<prefix>.ticks``)."""
        return ticks_topic(self.config.prefix)

    def bars_topic(self, timeframe: str | Timeframe) -> str:
        """This producer's bars topic for ``timeframe`` (``<prefix>.bars.<timeframe>``)."""
        return bars_topic(timeframe, self.config.prefix)

    def ensure_topic(self, topic: str) -> None:
        """Create ``topic`` and its dead-letter topic unless known to exist (cached per producer)."""
        if topic not in self._ensured:
            ensure_topics(self.config, [topic], admin=self._admin)
            self._ensured.add(topic)

    # -- sending ----------------------------------------------------------------------------------------------
    def produce(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int, *,
                partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
                on_delivery: Callable[[KafkaError | None, Message], None] | None = None) -> None:
        """Hand one already-encoded record to the client (asynchronous; see :meth:`flush`).

        Waits (serving delivery reports) while the client's queue is full.

        Args:
            on_delivery: called with ``(error or None, message)`` once the broker acknowledged or refused this
                record (inside :meth:`flush` or a later ``produce``). With it, a failure of this record is the
                caller's business: it is neither counted nor raised by :meth:`flush`.

        Raises:
            DeliveryError: earlier records already failed, or the producer hit a fatal error.
            KafkaException: the client refused the record at once (e.g. ``MSG_SIZE_TOO_LARGE``: bigger than
                ``message.max.bytes``); nothing was queued.
        """
        self._raise_if_fatal()
        if topic not in self._ensured:
            self.ensure_topic(topic)
        if self._replay_counts is not None:
            self._replay_topics.add(topic)
        kwargs: dict[str, Any] = {"timestamp": timestamp_ms}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        while True:
            try:
                self._producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)
                if self._failed:
                    raise self._delivery_error() from None
        self.sent += 1
        self._since_poll += 1
        if self._since_poll >= _POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    def send(self, message: TickMessage | BarMessage, topic: str | None = None) -> None:
        """Send one tick or bar to its topic (ticks topic, or the bars topic of ``message.timeframe``).

        Raises:
            DataValidationError: the message breaks the schema (nothing sent).
            DeliveryError: see :meth:`produce`.
        """
        if isinstance(message, TickMessage):
            topic = topic or self.ticks_topic()
        elif isinstance(message, BarMessage):
            topic = topic or self.bars_topic(message.timeframe)
        else:
            raise TypeError(f"send() takes a TickMessage or BarMessage, not {type(message).__name__}")
        self.produce(topic, message.key.encode(), encode(message), message.timestamp_ms)

    def send_ticks(self, ticks: pd.DataFrame, *, topic: str | None = None, source: str = "ticks") -> int:
        """Send every row of a tick frame (columns ``ts, exchange, symbol, trade_id, price, amount[, side]``).

        Rows go out in frame order; rows of one instrument keep that order on the topic.

        Returns:
            Number of records handed to the client (call :meth:`flush` to wait for the broker).

        Raises:
            DataValidationError: a row breaks the schema -- checked before anything is sent.
            DeliveryError: see :meth:`produce`.
        """
        topic = topic or self.ticks_topic()
        records = iter_tick_records(ticks, source)
        return self._send_all(topic, records)

    def send_bars(
        self,
        bars: pd.DataFrame,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        timeframe: str | Timeframe | None = None,
        topic: str | None = None,
        source: str = "bars",
    ) -> int:
        """Send finished bars (:mod:`btlab.model.bar` layout, optional ``trades``/``vwap``).

        ``exchange``, ``symbol`` and ``timeframe`` come from the frame's columns, else from the arguments. Each
        bar goes to the bars topic of its timeframe unless ``topic`` is given.

        Returns:
            Number of records handed to the client.

        Raises:
            DataValidationError: a row breaks the schema (checked before anything is sent).
            DeliveryError: see :meth:`produce`.
        """
        sent = 0
        topics: dict[str, str] = {}
        # the generator validates the whole frame before yielding its first record: nothing is sent on bad input
        for key, value, ts_ms, tf in iter_bar_records(
            bars, exchange=exchange, symbol=symbol, timeframe=timeframe, source=source
        ):
            target = topic or topics.get(tf) or topics.setdefault(tf, self.bars_topic(tf))
            self.produce(target, key, value, ts_ms)
            sent += 1
        return sent

    def _send_all(self, topic: str, records: Iterable[tuple[bytes, bytes, int]]) -> int:
        # the generator validates the whole frame before yielding its first record: nothing is sent on bad input
        produce = self.produce
        n = 0
        for key, value, ts_ms in records:
            produce(topic, key, value, ts_ms)
            n += 1
        return n

    # -- replays ----------------------------------------------------------------------------------------------
    def begin_replay(self, replay_id: str | None = None) -> str:
        """Start counting delivered records per partition for a replay; returns the replay id.

        Flushes first so records sent before the replay are not counted.

        Raises:
            StreamError: a replay is already open on this producer.
            DeliveryError: see :meth:`flush`.
        """
        if self._replay_counts is not None:
            raise StreamError("a replay is already open on this producer; end it first")
        self.flush()
        self._replay_counts = Counter()
        self._replay_topics = set()
        self._replay_last_ms = {}
        self._replay_id = replay_id or f"replay-{uuid.uuid4().hex[:12]}"
        return self._replay_id

    def end_replay(self, topics: Iterable[str] = (), *, reason: str | None = None) -> dict[str, list[EndMarker]]:
        """Flush, then write an end marker to EVERY partition of each topic of the replay, and flush again.

        A marker's record timestamp is the largest event time the replay sent to that topic (so event time never
        jumps to the wall clock), or the wall clock for a topic that got no record.

        Args:
            topics: topics to mark in addition to those the replay sent records to (so a consumer of a topic that
                got no record still sees the end).
            reason: written into the markers: ``None`` for a complete replay, ``"aborted"`` for one stopped early.

        Returns:
            The markers written, per topic (``count`` = the replay's records in that partition).

        Raises:
            StreamError: no replay open.
            DeliveryError: records or markers were not delivered.
        """
        if self._replay_counts is None:
            raise StreamError("no replay open: call begin_replay() first")
        try:
            self.flush()
            counts, replay_id = self._replay_counts, self._replay_id
            targets = sorted(self._replay_topics | set(topics))
            markers: dict[str, list[EndMarker]] = {}
            now_ms = int(time.time() * 1000)
            for topic in targets:
                # a marker's timestamp is the replay's last event time on that topic (wall clock if it sent none)
                marker_ms = self._replay_last_ms.get(topic, now_ms)
                self.ensure_topic(topic)
                n = partition_count(self.config, topic, admin=self._admin)
                markers[topic] = [EndMarker(replay_id, p, n, counts.get((topic, p), 0), reason) for p in range(n)]
                for marker in markers[topic]:
                    self.produce(topic, None, encode(marker), marker_ms, partition=marker.partition)
        finally:
            self._replay_counts = None
        self.flush()
        return markers

    @contextmanager
    def replay(self, replay_id: str | None = None, topics: Iterable[str] = ()) -> Iterator[str]:
        """``with producer.replay(id) as replay_id:`` -- :meth:`begin_replay`, and :meth:`end_replay` on a clean exit.

        On an exception no marker is written (consumers must not see an incomplete replay as complete).
        """
        replay_id = self.begin_replay(replay_id)
        try:
            yield replay_id
        except BaseException:
            self._replay_counts = None
            raise
        self.end_replay(topics)

    # -- delivery ---------------------------------------------------------------------------------------------
    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise DeliveryError(self.config.bootstrap_servers, self._failed, [f"fatal producer error: {self._fatal}"])

    def _delivery_error(self) -> DeliveryError:
        failed, reasons = self._failed, self._reasons
        self._failed, self._reasons = 0, []
        return DeliveryError(self.config.bootstrap_servers, failed, reasons)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until the broker acknowledged every record handed over so far.

        Args:
            timeout_s: bound in seconds (default ``config.delivery_timeout_s + 5``; records time out after
                ``delivery_timeout_s`` anyway).

        Raises:
            DeliveryError: some records failed or are still pending after the wait (count and reasons included).
        """
        timeout = self.config.delivery_timeout_s + 5 if timeout_s is None else timeout_s
        remaining = self._producer.flush(timeout)
        if remaining:
            self._failed += remaining
            self._reasons.append(f"{remaining} still waiting for acknowledgement after {timeout:g} s")
        self._raise_if_fatal()
        if self._failed:
            raise self._delivery_error()

    def close(self, timeout_s: float | None = None) -> None:
        """Flush (raising :class:`DeliveryError` on failures). The producer can still be used afterwards."""
        self.flush(timeout_s)

    def __enter__(self) -> "StreamProducer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.flush()
        else:  # do not hide the original error behind a delivery error
            try:
                self._producer.flush(min(5.0, self.config.delivery_timeout_s))
            except KafkaException:
                pass


def open_producer(config: StreamConfig | None = None, *, settings: Any = None) -> StreamProducer | None:
    """A producer for the configured broker, or ``None`` when no broker is configured.

    Jobs call this and skip the topics when it returns ``None`` ("ticks and bars go to topics when a broker is
    configured").

    Args:
        config: explicit settings; default :meth:`StreamConfig.from_settings` of ``settings``.
        settings: a :class:`btlab.settings.Settings` (default: the process-wide settings, i.e. ``BTLAB_KAFKA``).

    Raises:
        BrokerUnavailableError: a broker is configured but does not answer in ``connect_timeout_s``.
    """
    config = config or StreamConfig.from_settings(settings)
    if config is None:
        return None
    return StreamProducer(config)


__all__ = ["StreamProducer", "open_producer"]
