"""Topic names, record keys and idempotent topic creation.

Layout (``<prefix>`` is :attr:`StreamConfig.prefix`, ``btlab`` by default):

=================================  ==========================================  =================================
topic                              records                                      key
=================================  ==========================================  =================================
``<prefix>.ticks``                 trades of every exchange and symbol          ``exchange:symbol``
``<prefix>.bars.<timeframe>``      finished bars of one timeframe (``1m``...)   ``exchange:symbol``
``<topic>.dlq``                    dead letters of ``<topic>`` (raw bytes)      the original key
=================================  ==========================================  =================================

One topic per kind (and per timeframe for bars) rather than per exchange: the key ``exchange:symbol`` routes every
instrument to one partition, so order per instrument holds, and a consumer that wants all 1m bars subscribes to one
topic. The record timestamp is the event time (:mod:`btlab.stream.codec`).

Keys: exchange ids (ccxt) never contain ``:``, unified symbols may (``BTC/USDT:USDT`` for a linear swap), so a key
is split at its FIRST colon.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from btlab.errors import InvalidArgumentError
from btlab.model.timeframe import Timeframe
from btlab.stream.config import StreamConfig
from btlab.stream.errors import BrokerUnavailableError, StreamConfigError, StreamError

log = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = ".dlq"

# Retention. Record timestamps are EVENT times, and a replay of 2017 bars carries 2017 timestamps: time-based
# retention (which compares a segment's newest record timestamp with the clock) would delete a replay as soon as its
# segment rolls. Data topics are therefore bounded by size only (``retention.ms=-1``); the store is the system of
# record and topics are transport. Dead letters hold original timestamps too, so the same applies.
#: Bytes kept per partition of the ticks topic (1 GiB).
TICKS_RETENTION_BYTES = 1 << 30
#: Bytes kept per partition of a bars topic (256 MiB, ~1M bars).
BARS_RETENTION_BYTES = 256 << 20
#: Bytes kept in a dead-letter topic (256 MiB).
DEAD_LETTER_RETENTION_BYTES = 256 << 20


def ticks_topic(prefix: str = "btlab") -> str:
    """Topic of trades (ticks) of every exchange and symbol: ``<prefix>.ticks``."""
    return f"{prefix}.ticks"


def bars_topic(timeframe: str | Timeframe, prefix: str = "btlab") -> str:
    """Topic of finished bars of one timeframe: ``<prefix>.bars.<timeframe>``, e.g. ``btlab.bars.1m``.

    Raises:
        InvalidArgumentError: ``timeframe`` is not a ccxt timeframe (``1s``, ``1m``, ``1h``, ``1d``, ``1w``...).
    """
    return f"{prefix}.bars.{Timeframe.parse(timeframe).value}"


def dead_letter_topic(topic: str) -> str:
    """Dead-letter topic of ``topic``: ``<topic>.dlq``."""
    if topic.endswith(DEAD_LETTER_SUFFIX):
        raise StreamConfigError(f"{topic!r} is already a dead-letter topic")
    return topic + DEAD_LETTER_SUFFIX


def is_dead_letter_topic(topic: str) -> bool:
    """True for ``<topic>.dlq`` names."""
    return topic.endswith(DEAD_LETTER_SUFFIX)


def record_key(exchange: str, symbol: str) -> str:
    """The record key of an instrument: ``"exchange:symbol"``, e.g. ``"binance:BTC/USDT"``.

    Raises:
        InvalidArgumentError: empty exchange or symbol, or an exchange id containing ``:``.
    """
    if not exchange or not symbol:
        raise InvalidArgumentError(f"record key needs an exchange and a symbol, got {exchange!r}, {symbol!r}")
    if ":" in exchange:
        raise InvalidArgumentError(f"exchange id {exchange!r} must not contain ':'")
    return f"{exchange}:{symbol}"


def parse_key(key: str | bytes) -> tuple[str, str]:
    """Split a record key into ``(exchange, symbol)`` at the first ``:``.

    Raises:
        InvalidArgumentError: no ``:``, or an empty part.
    """
    text = key.decode("utf-8") if isinstance(key, bytes | bytearray) else key
    exchange, sep, symbol = text.partition(":")
    if not sep or not exchange or not symbol:
        raise InvalidArgumentError(f"record key {text!r} is not 'exchange:symbol'")
    return exchange, symbol


@dataclass(frozen=True)
class TopicSpec:
    """A topic btlab creates.

    Attributes:
        name: topic name.
        partitions: number of partitions.
        replication_factor: replicas per partition.
        config: topic configs (``cleanup.policy``, ``retention.ms``, ``message.timestamp.type``...).
    """

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def topic_spec(name: str, config: StreamConfig) -> TopicSpec:
    """The spec btlab uses for ``name``: data topics get ``config.partitions``; dead-letter topics 1 partition.

    All topics: ``cleanup.policy=delete``, ``message.timestamp.type=CreateTime`` (the producer sets the event
    time, the broker keeps it) and size-bounded retention only (``retention.ms=-1``; see the module source for
    why): ticks 1 GiB per partition, bars and dead letters 256 MiB per partition.
    """
    if is_dead_letter_topic(name):
        partitions, retention = 1, DEAD_LETTER_RETENTION_BYTES
    elif ".bars." in name:
        partitions, retention = config.partitions, BARS_RETENTION_BYTES
    else:
        partitions, retention = config.partitions, TICKS_RETENTION_BYTES
    return TopicSpec(
        name,
        partitions,
        config.replication_factor,
        {
            "cleanup.policy": "delete",
            "retention.ms": "-1",
            "retention.bytes": str(retention),
            "message.timestamp.type": "CreateTime",
        },
    )


def ensure_topics(
    config: StreamConfig,
    names: Iterable[str],
    *,
    admin: AdminClient | None = None,
    with_dead_letters: bool = True,
) -> list[str]:
    """Create the named topics (and their dead-letter topics) unless they exist. Idempotent.

    Args:
        config: broker address and partition/replication settings.
        names: topic names (see :func:`ticks_topic`, :func:`bars_topic`).
        admin: an AdminClient to reuse (default: a new one).
        with_dead_letters: also create ``<name>.dlq`` for every data topic.

    Returns:
        The names that were created by this call (empty when all existed).

    Raises:
        BrokerUnavailableError: the broker did not answer within ``config.connect_timeout_s``.
        StreamError: the broker refused to create a topic (reason included).
    """
    wanted: list[str] = []
    for name in names:
        if name not in wanted:
            wanted.append(name)
        if with_dead_letters and not is_dead_letter_topic(name) and dead_letter_topic(name) not in wanted:
            wanted.append(dead_letter_topic(name))
    if not wanted:
        return []
    admin = admin or AdminClient(config.admin_conf())
    try:
        existing = set(admin.list_topics(timeout=config.connect_timeout_s).topics)
    except KafkaException as exc:
        raise BrokerUnavailableError(config.bootstrap_servers, exc.args[0].str(), config.connect_timeout_s) from None
    missing = [topic_spec(n, config) for n in wanted if n not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor, config=s.config) for s in missing],
        request_timeout=config.connect_timeout_s,
        operation_timeout=config.connect_timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=config.connect_timeout_s + 5)
            created.append(name)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created concurrently by another client
            if err.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
                raise BrokerUnavailableError(config.bootstrap_servers, err.str(), config.connect_timeout_s) from None
            raise StreamError(f"cannot create topic {name!r} on {config.bootstrap_servers}: {err.str()}") from None
    if created:
        log.info("created topics %s on %s", ", ".join(sorted(created)), config.bootstrap_servers)
    return created


def partition_count(config: StreamConfig, topic: str, *, admin: AdminClient | None = None) -> int:
    """Number of partitions of ``topic`` (0 if it does not exist).

    Raises:
        BrokerUnavailableError: the broker did not answer within ``config.connect_timeout_s``.
    """
    admin = admin or AdminClient(config.admin_conf())
    try:
        metadata = admin.list_topics(timeout=config.connect_timeout_s)  # no per-topic request: it may auto-create
    except KafkaException as exc:
        raise BrokerUnavailableError(config.bootstrap_servers, exc.args[0].str(), config.connect_timeout_s) from None
    meta = metadata.topics.get(topic)
    if meta is None or meta.error is not None:
        return 0
    return len(meta.partitions)
