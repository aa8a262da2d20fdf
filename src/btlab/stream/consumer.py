"""Consuming ticks and bars (a thin layer over :class:`confluent_kafka.Consumer`), with dead letters and replay ends.

Semantics: at-least-once. Offsets are committed manually, synchronously, after the handler returned for a batch
(and after that batch's dead letters were acknowledged), so a crash re-delivers at most the batch in flight; btlab
sinks are idempotent (store natural keys), so a re-delivery changes nothing.

Unreadable records (not JSON, wrong schema version, a field missing or out of range, a key that is not the value's
``exchange:symbol``) are copied byte for byte to ``<topic>.dlq`` with the reason (at most
:data:`~btlab.stream.errors.REASON_LIMIT` characters) and origin in headers (:data:`DLQ_REASON`, :data:`DLQ_TOPIC`,
:data:`DLQ_PARTITION`, :data:`DLQ_OFFSET`, :data:`DLQ_GROUP`), counted in :attr:`ConsumeStats.dead_lettered`, and
the consumer keeps going. A copy the client or the broker refuses (a record bigger than the producer's
``message.max.bytes`` or the dead-letter topic's ``max.message.bytes``) is replaced by a small notice: a JSON
object ``{"topic", "partition", "offset", "reason", "key_bytes", "value_bytes", "copy_error"}`` with the same
headers plus :data:`DLQ_COPY_ERROR`, so one oversized record can never stop the consumer for good.

End of a replay: ``run(handler, until_end=replay_id)`` returns once it has seen that replay's end marker
(:class:`~btlab.stream.codec.EndMarker`) on every partition of every subscribed topic -- never on a timeout. Each
partition is paused at its marker and committed just past it, so records after the marker stay for the next run.
A group that already committed past a replay's markers will not see them again: read each replay with a fresh
``group_id`` (or ``until_end=True`` = any marker).

Example::

    with StreamConsumer([bars_topic("1m")], group_id="sink-questdb") as consumer:
        stats = consumer.run(lambda records: store.write_bars(bars_frame([r.message for r in records]), ...))
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_STORED, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from btlab.stream.codec import BarMessage, EndMarker, TickMessage, decode
from btlab.stream.config import StreamConfig, check_broker
from btlab.stream.errors import BrokerUnavailableError, StreamError, UnreadableRecordError, excerpt
from btlab.stream.producer import StreamProducer
from btlab.stream.topics import dead_letter_topic, ensure_topics

log = logging.getLogger(__name__)

#: Dead-letter header: why the record could not be read (UTF-8 text).
DLQ_REASON = "btlab-dlq-reason"
#: Dead-letter header: the topic the record came from.
DLQ_TOPIC = "btlab-dlq-topic"
#: Dead-letter header: its partition (decimal text).
DLQ_PARTITION = "btlab-dlq-partition"
#: Dead-letter header: its offset (decimal text).
DLQ_OFFSET = "btlab-dlq-offset"
#: Dead-letter header: the consumer group that rejected it.
DLQ_GROUP = "btlab-dlq-group"
#: Dead-letter header, only on a notice that replaces a refused copy: why the copy was refused (UTF-8 text).
DLQ_COPY_ERROR = "btlab-dlq-copy-error"
#: :attr:`ConsumeStats.reasons` counts this many distinct reasons; further ones are counted as :data:`OTHER_REASONS`
MAX_REASONS = 50
#: the :attr:`ConsumeStats.reasons` key of the reasons beyond :data:`MAX_REASONS`
OTHER_REASONS = "other"
#: a key longer than this (bytes) is left out of a dead-letter notice
_NOTICE_KEY_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a dead-lettered record came from (without its value: it can be megabytes)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value_bytes: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded data record.

    Attributes:
        topic, partition, offset: where it was read.
        key: record key (``exchange:symbol``).
        timestamp_ms: record timestamp = event time, integer ms since the Unix epoch (UTC).
        message: the decoded tick or bar.
    """

    topic: str
    partition: int
    offset: int
    key: str
    timestamp_ms: int
    message: TickMessage | BarMessage


@dataclass
class ConsumeStats:
    """What :meth:`StreamConsumer.run` did (cumulative over runs of one consumer).

    Attributes:
        records: data records handed to the handler.
        dead_lettered: unreadable records sent to dead-letter topics (as copies or notices).
        dead_letter_notices: of those, records whose copy was refused (too large), sent as a small notice.
        reasons: dead-letter count per reason (reason text truncated to its first 80 characters); at most
            :data:`MAX_REASONS` distinct reasons, the rest counted under :data:`OTHER_REASONS`.
        per_partition: data records handed over, per ``(topic, partition)``.
        markers: the end markers seen, per ``(topic, partition)`` (the last one wins).
        end_markers: end markers read (every one, also those of other replays).
        dead_per_topic: dead-letter count per source topic.
        batches: handler calls.
        ended: the last run stopped because the replay ended (``until_end``), not on a limit.
    """

    records: int = 0
    dead_lettered: int = 0
    dead_letter_notices: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    per_partition: Counter[tuple[str, int]] = field(default_factory=Counter)
    markers: dict[tuple[str, int], EndMarker] = field(default_factory=dict)
    end_markers: int = 0
    dead_per_topic: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    ended: bool = False


class StreamConsumer:
    """Reads btlab topics as a member of a consumer group, with manual commits and dead letters.

    Args:
        topics: topics to subscribe to (:func:`~btlab.stream.topics.ticks_topic`, ``bars_topic``); created
            with their dead-letter topics if missing.
        group_id: consumer group (committed offsets are kept per group).
        config: broker settings (default :meth:`StreamConfig.require`, i.e. ``BTLAB_KAFKA``).
        from_beginning: a group without committed offsets starts at the earliest record (else the latest).
        check: check the broker answers (bounded by ``config.connect_timeout_s``) before subscribing.
        assign: read ALL partitions of ``topics`` without joining the group (no rebalance, no ~3 s initial
            rebalance delay of Redpanda/Kafka/Tansu); offsets are still committed under ``group_id``. For one
            reader of a replay (:func:`read_until_end`); do not run two assigned consumers with one ``group_id``.
        reject: called with each decoded tick or bar; a reason (text) it returns dead-letters that record like an
            unreadable one (for a reader that cannot take a valid record, e.g. the sink and a tick without trade
            id); None keeps it.

    Raises:
        BrokerUnavailableError: the broker did not answer in ``connect_timeout_s`` (message names the address).
        StreamConfigError: no config and ``BTLAB_KAFKA`` unset.
    """

    def __init__(
        self,
        topics: Sequence[str],
        *,
        group_id: str,
        config: StreamConfig | None = None,
        from_beginning: bool = True,
        check: bool = True,
        assign: bool = False,
        reject: Callable[[TickMessage | BarMessage], str | None] | None = None,
    ) -> None:
        if isinstance(topics, str):
            topics = [topics]
        self.config = config or StreamConfig.require()
        self.topics = list(dict.fromkeys(topics))
        self.group_id = group_id
        self._reject = reject
        admin = self._admin = AdminClient(self.config.admin_conf())
        self._down_since: float | None = None
        self._committed_at_assignment: dict[tuple[str, int], int] = {}  # for lag(): partitions not read yet
        if check:
            check_broker(self.config, admin)
        ensure_topics(self.config, self.topics, admin=admin)
        self._dlq: StreamProducer | None = None
        self._refused: list[tuple[_Origin, str, str]] = []
        self.stats = ConsumeStats()
        self._stop = False
        self._closed = False
        conf = self.config.consumer_conf(group_id, from_beginning=from_beginning)
        conf["error_cb"] = self._on_error
        self._fatal: str | None = None
        self._consumer = Consumer(conf)
        if assign:
            try:
                metadata = admin.list_topics(timeout=self.config.connect_timeout_s)
            except KafkaException as exc:
                self._consumer.close()
                raise BrokerUnavailableError(
                    self.config.bootstrap_servers, exc.args[0].str(), self.config.connect_timeout_s
                ) from None
            self._consumer.assign(
                [
                    TopicPartition(t, p, OFFSET_STORED)
                    for t in self.topics
                    for p in sorted(metadata.topics[t].partitions)
                ]
            )
        else:
            self._consumer.subscribe(self.topics)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
        elif err.code() == KafkaError._ALL_BROKERS_DOWN and self._down_since is None:
            self._down_since = time.monotonic()
        level = logging.INFO if err.code() == KafkaError._TRANSPORT else logging.WARNING
        log.log(level, "Kafka consumer %s (%s): %s", self.group_id, self.config.bootstrap_servers, err.str())

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch (callable from the handler)."""
        self._stop = True

    def assignment(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs assigned to this consumer now (empty while the group join is pending)."""
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def lag(self, timeout_s: float | None = None) -> dict[str, int] | None:
        """Records behind the end of each topic, over the partitions assigned to this consumer now: per partition
        the high watermark minus the consumer's position (before it read anything: the group's committed offset,
        else the partition's first offset). The high watermarks come from the last fetch responses (no request);
        the broker is asked (bounded by ``timeout_s``, default ``config.connect_timeout_s``) only for a partition
        not fetched yet, and for the committed offsets once per assignment. A partition the broker does not answer
        for is left out.

        Returns:
            ``{topic: records}`` for every subscribed topic with an assigned partition; None while nothing is
            assigned (the group join is in progress, or every partition went to other members).
        """
        timeout = self.config.connect_timeout_s if timeout_s is None else timeout_s
        consumer = self._consumer
        assigned = consumer.assignment()
        if not assigned:
            return None
        try:
            positions = consumer.position(assigned)
            now = {(tp.topic, tp.partition) for tp in assigned}
            if set(self._committed_at_assignment) != now:  # a new assignment: ask for its committed offsets once
                self._committed_at_assignment = {pair: -1 for pair in now}
                unknown = [TopicPartition(tp.topic, tp.partition) for tp in positions if tp.offset < 0]
                for tp in consumer.committed(unknown, timeout=timeout) if unknown else []:
                    self._committed_at_assignment[(tp.topic, tp.partition)] = tp.offset
            committed = self._committed_at_assignment
        except KafkaException as exc:
            log.debug("lag of group %s unknown: %s", self.group_id, exc)
            return None
        lag: dict[str, int] = {}
        for tp in positions:
            part = TopicPartition(tp.topic, tp.partition)
            offset = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            try:
                # the high watermark of the last fetch response when there is one (no request), else ask the broker
                low, high = consumer.get_watermark_offsets(part, cached=True)
                if high < 0:
                    low, high = consumer.get_watermark_offsets(part, timeout=timeout, cached=False)
            except KafkaException as exc:
                log.debug("watermarks of %s [%d] unknown: %s", tp.topic, tp.partition, exc)
                continue
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - (offset if offset >= 0 else low))
        return lag

    # -- dead letters -----------------------------------------------------------------------------------------
    def _dead_letter(self, msg: Message, reason: str) -> None:
        """Copy ``msg`` to its dead-letter topic with ``reason`` (cut to ``REASON_LIMIT``); a copy the client
        refuses at once is replaced by a notice here, one the broker refuses in :meth:`_flush_dead_letters`."""
        if self._dlq is None:
            self._dlq = StreamProducer(self.config, check=False)
        reason = excerpt(reason)
        value = msg.value()
        ts_type, ts = msg.timestamp()
        if ts_type == 0 or ts < 0:  # TIMESTAMP_NOT_AVAILABLE
            ts = int(time.time() * 1000)
        origin = _Origin(msg.topic(), msg.partition(), msg.offset(), msg.key(), len(value or b""), ts)
        headers = [*(msg.headers() or []), *self._dlq_headers(origin, reason)]

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:  # the broker refused the copy (e.g. larger than the topic's max.message.bytes)
                self._refused.append((origin, reason, err.str()))

        try:
            self._dlq.produce(dead_letter_topic(origin.topic), origin.key, value, ts, headers=headers,
                              on_delivery=delivered)
        except KafkaException as exc:  # refused at once, e.g. MSG_SIZE_TOO_LARGE (over message.max.bytes)
            self._dead_letter_notice(origin, reason, exc.args[0].str() if exc.args else str(exc))
        self.stats.dead_lettered += 1
        self.stats.dead_per_topic[origin.topic] += 1
        key = reason[:80]
        if key not in self.stats.reasons and len(self.stats.reasons) >= MAX_REASONS:
            key = OTHER_REASONS
        self.stats.reasons[key] += 1
        log.warning("dead-lettered %s [%d] @%d: %s", origin.topic, origin.partition, origin.offset, reason)

    def _dlq_headers(self, origin: _Origin, reason: str) -> list[tuple[str, bytes]]:
        return [
            (DLQ_REASON, reason.encode("utf-8", "replace")),
            (DLQ_TOPIC, origin.topic.encode()),
            (DLQ_PARTITION, str(origin.partition).encode()),
            (DLQ_OFFSET, str(origin.offset).encode()),
            (DLQ_GROUP, self.group_id.encode()),
        ]

    def _dead_letter_notice(self, origin: _Origin, reason: str, error: str) -> None:
        """A small dead letter in place of a refused copy: origin, reason and why the copy was refused."""
        assert self._dlq is not None
        key = origin.key if origin.key is not None and len(origin.key) <= _NOTICE_KEY_LIMIT else None
        error = excerpt(error, 200)
        notice = {"topic": origin.topic, "partition": origin.partition, "offset": origin.offset, "reason": reason,
                  "key_bytes": None if origin.key is None else len(origin.key), "value_bytes": origin.value_bytes,
                  "copy_error": error}
        headers = [*self._dlq_headers(origin, reason), (DLQ_COPY_ERROR, error.encode("utf-8", "replace"))]
        # failures of the notice (a broker down) are the producer's: flush raises DeliveryError, nothing committed
        self._dlq.produce(dead_letter_topic(origin.topic), key, json.dumps(notice).encode(), origin.timestamp_ms,
                          headers=headers)
        self.stats.dead_letter_notices += 1
        log.warning("dead letter of %s [%d] @%d refused (%s): sent a notice instead", origin.topic,
                    origin.partition, origin.offset, error)

    def _flush_dead_letters(self) -> None:
        """Wait until every dead letter is acknowledged; copies the broker refused are replaced by notices.

        Raises:
            DeliveryError: a notice (or a copy, by timeout) was not acknowledged.
        """
        if self._dlq is None:
            return
        self._dlq.flush()
        while self._refused:
            refused, self._refused = self._refused, []
            for origin, reason, error in refused:
                self._dead_letter_notice(origin, reason, error)
            self._dlq.flush()

    # -- main loop --------------------------------------------------------------------------------------------
    def run(
        self,
        handler: Callable[[list[Record]], Any],
        *,
        until_end: str | bool | None = None,
        max_records: int | None = None,
        max_seconds: float | None = None,
        batch_size: int = 1000,
        poll_timeout_s: float = 0.1,
    ) -> ConsumeStats:
        """Consume, decode, hand batches of records to ``handler``, then commit; repeat until a stop condition.

        Args:
            handler: called with each non-empty batch of decoded data records, in partition order (records of one
                key are in the order they were produced). If it raises, nothing of that batch is committed and
                the error propagates.
            until_end: a replay id: return once that replay's end marker was seen on every partition of every
                subscribed topic (or, for a group with several members, of every assigned partition). ``True``:
                any replay's marker. ``None``: markers are only recorded in the stats.
            max_records: return once at least this many records were handled in this call (live tailing).
            max_seconds: return after this many seconds (live tailing; NOT a way to detect a replay's end).
            batch_size: maximum records fetched per batch.
            poll_timeout_s: how long one fetch waits to fill a batch, in seconds (bounds the added latency).

        Returns:
            :attr:`stats` (cumulative).

        Raises:
            BrokerUnavailableError: the client lost all broker connections and the broker still does not answer
                a metadata request: after about ``2 * config.connect_timeout_s`` -- a run never hangs on a dead
                broker.
            DeliveryError: dead letters could not be written (the batch is not committed).
            StreamError: a fatal client error, or the consumer is closed.
        """
        if self._closed:
            raise StreamError("consumer is closed")
        self._stop = False
        self.stats.ended = False
        ended: set[tuple[str, int]] = set()
        resume_at: dict[tuple[str, int], int] = {}
        topic_partitions: dict[str, int] = {}
        start_records = self.stats.records
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        consumer = self._consumer
        try:
            self._loop(handler, until_end, max_records, deadline, batch_size, poll_timeout_s, start_records, ended,
                       resume_at, topic_partitions)
        finally:
            # partitions paused at an end marker: rewind to just past the marker (records fetched after it were
            # dropped) and resume, so a later run() reads what follows
            for (topic, partition), offset in resume_at.items():
                tp = TopicPartition(topic, partition, offset)
                try:
                    consumer.seek(tp)
                except KafkaException as exc:  # partition no longer assigned: its new owner starts at the commit
                    log.debug("seek %s failed: %s", tp, exc)
                consumer.resume([TopicPartition(topic, partition)])
        return self.stats

    def _loop(
        self,
        handler: Callable[[list[Record]], Any],
        until_end: str | bool | None,
        max_records: int | None,
        deadline: float | None,
        batch_size: int,
        poll_timeout_s: float,
        start_records: int,
        ended: set[tuple[str, int]],
        resume_at: dict[tuple[str, int], int],
        topic_partitions: dict[str, int],
    ) -> None:
        consumer = self._consumer
        while not self._stop:
            if self._fatal is not None:
                raise StreamError(f"fatal Kafka consumer error ({self.config.bootstrap_servers}): {self._fatal}")
            if deadline is not None and time.monotonic() >= deadline:
                break
            if max_records is not None and self.stats.records - start_records >= max_records:
                break
            msgs = consumer.consume(batch_size, poll_timeout_s)
            if not msgs:
                if self._down_since is not None and time.monotonic() - self._down_since > self.config.connect_timeout_s:
                    # the client lost every broker connection a while ago: confirm with a bounded metadata request
                    check_broker(self.config, self._admin)  # raises BrokerUnavailableError naming the address
                    self._down_since = None
                continue
            self._down_since = None
            batch, commit, dead = self._decode(msgs, until_end, ended, resume_at, topic_partitions)
            if batch:
                try:
                    handler(batch)
                except BaseException:
                    self._rewind(msgs)  # the batch was not committed: a later run() re-reads it
                    raise
                self.stats.batches += 1
                self.stats.records += len(batch)
                self.stats.per_partition.update((r.topic, r.partition) for r in batch)
            if dead:
                self._flush_dead_letters()  # dead letters durable before the originals' offsets are committed
            if commit:
                self._commit(commit)
            if until_end is not None and ended and self._replay_done(ended, topic_partitions):
                self.stats.ended = True
                break

    def _decode(self, msgs: list[Message], until_end: str | bool | None, ended: set[tuple[str, int]],
                resume_at: dict[tuple[str, int], int], topic_partitions: dict[str, int]
                ) -> tuple[list[Record], dict[tuple[str, int], int], int]:
        """One step of :meth:`_loop`: the fetched messages as ``(records, offsets to commit per partition, dead
        letters sent)``. End markers are recorded (and, when they end this replay, their partitions paused and
        remembered in ``ended``/``resume_at``/``topic_partitions``); unreadable records go to the dead-letter
        topic; records after this replay's end marker are neither returned nor committed."""
        consumer = self._consumer
        batch: list[Record] = []
        commit: dict[tuple[str, int], int] = {}
        dead = 0
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise StreamError(f"Kafka consumer error ({self.config.bootstrap_servers}): {err.str()}")
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("Kafka consumer %s: %s", self.group_id, err.str())
                continue
            tp = (msg.topic(), msg.partition())
            if tp in ended:
                continue  # after this replay's end marker: left for the next run (not committed)
            commit[tp] = msg.offset() + 1
            try:
                message = decode(msg.value())
                if isinstance(message, EndMarker):
                    self.stats.markers[tp] = message
                    self.stats.end_markers += 1
                    if until_end is True or (until_end is not None and message.replay_id == until_end):
                        ended.add(tp)
                        resume_at[tp] = msg.offset() + 1
                        topic_partitions[tp[0]] = message.partitions
                        consumer.pause([TopicPartition(*tp)])
                    continue
                raw_key = msg.key()
                key = raw_key.decode("utf-8") if raw_key is not None else None
                if key != message.key:
                    raise UnreadableRecordError(f"record key {excerpt(repr(key), 120)} is not the value's "
                                                f"{excerpt(repr(message.key), 120)}")
                if self._reject is not None and (why := self._reject(message)) is not None:
                    raise UnreadableRecordError(why)
            except UnreadableRecordError as exc:
                self._dead_letter(msg, exc.reason)
                dead += 1
                continue
            except UnicodeDecodeError:
                self._dead_letter(msg, "record key is not UTF-8")
                dead += 1
                continue
            batch.append(Record(tp[0], tp[1], msg.offset(), key, msg.timestamp()[1], message))
        return batch, commit, dead

    def _rewind(self, msgs: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for msg in msgs:
            if msg.error() is None:
                first.setdefault((msg.topic(), msg.partition()), msg.offset())
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                log.debug("rewind of %s [%d] failed: %s", topic, partition, exc)

    def _replay_done(self, ended: set[tuple[str, int]], topic_partitions: dict[str, int]) -> bool:
        if all(
            t in topic_partitions and sum(1 for (tt, _) in ended if tt == t) >= topic_partitions[t]
            for t in self.topics
        ):
            return True
        assignment = self._consumer.assignment()
        return bool(assignment) and all((tp.topic, tp.partition) in ended for tp in assignment)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                raise StreamError(f"cannot commit offsets on {self.config.bootstrap_servers}: {err.str()}") from None
            # e.g. a rebalance took the partitions away: the new owner re-reads the batch (at-least-once)
            log.warning("commit failed for group %s (records will be re-delivered): %s", self.group_id, err.str())

    def close(self) -> None:
        """Leave the group (partitions are handed to other members at once) and flush dead letters."""
        if self._closed:
            return
        self._closed = True
        try:
            self._flush_dead_letters()
        finally:
            self._consumer.close()

    def __enter__(self) -> "StreamConsumer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_until_end(
    topics: Sequence[str],
    replay_id: str | bool,
    *,
    config: StreamConfig | None = None,
    group_id: str | None = None,
) -> tuple[list[Record], ConsumeStats]:
    """Read a whole replay from ``topics`` into memory: every data record until the replay's end markers.

    Args:
        topics: topics of the replay.
        replay_id: the replay id (``True`` = stop at any replay's end).
        config: broker settings (default from ``BTLAB_KAFKA``).
        group_id: consumer group whose offsets are used and committed (default: a new unique group, so the replay
            is read from the topics' beginning). All partitions are assigned directly (no group join).

    Returns:
        ``(records, stats)``, records in the order read (per key: produced order).
    """
    import uuid

    records: list[Record] = []
    group = group_id or f"btlab-read-{uuid.uuid4().hex[:12]}"
    with StreamConsumer(topics, group_id=group, config=config, assign=True) as c:
        stats = c.run(records.extend, until_end=replay_id)
    return records, stats
