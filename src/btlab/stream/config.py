"""Connection and client settings for the Kafka-protocol broker (Redpanda in production).

:class:`StreamConfig` holds everything the producer, the consumer and topic creation need; build it from btlab's
settings with :meth:`StreamConfig.from_settings` (bootstrap servers from ``BTLAB_KAFKA``) or directly.
:func:`check_broker` is the bounded reachability check every client runs before use, so an unreachable broker is
a :class:`~btlab.stream.errors.BrokerUnavailableError` naming the address after ``connect_timeout_s`` -- never a hang.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from btlab.stream.errors import BrokerUnavailableError, StreamConfigError

#: Python logger that receives librdkafka's log lines (instead of stderr).
KAFKA_LOGGER = logging.getLogger("btlab.stream.kafka")

_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class StreamConfig:
    """Broker address and client settings.

    Attributes:
        bootstrap_servers: ``host:port[,host:port...]`` of the broker(s), e.g. ``127.0.0.1:19092``.
        prefix: first part of every topic name (``<prefix>.ticks``, ``<prefix>.bars.<timeframe>``); tests use a
            unique prefix to share one broker. Letters, digits, ``_``, ``-`` and dots between parts.
        partitions: partitions of each data topic created by btlab (order holds per key, i.e. per instrument,
            so partitions only bound consumer parallelism). Dead-letter topics get one partition.
        replication_factor: replicas per partition: 1 for a single-node Redpanda (the compose stack), 3 for a
            production cluster.
        connect_timeout_s: bounded wait, in seconds, for the broker to answer a metadata request before
            :class:`~btlab.stream.errors.BrokerUnavailableError` (and for admin operations).
        delivery_timeout_s: seconds a produced record may wait for the broker's acknowledgement before it counts
            as failed (librdkafka ``message.timeout.ms``); ``flush`` waits at most this plus a margin.
        linger_ms: producer batching delay in milliseconds (throughput vs. latency; 20 ms suits live ticks).
        batch_bytes: maximum producer batch size in bytes (``batch.size``).
        compression: producer compression codec (``lz4``, ``zstd``, ``snappy``, ``gzip`` or ``none``); JSON
            values compress well and Redpanda stores batches compressed.
        client_id: client id the broker sees (logs, quotas).
        extra: further librdkafka properties for every client (e.g. ``security.protocol``, ``sasl.*``); they
            override btlab's choices.
    """

    bootstrap_servers: str
    prefix: str = "btlab"
    partitions: int = 6
    replication_factor: int = 1
    connect_timeout_s: float = 10.0
    delivery_timeout_s: float = 30.0
    linger_ms: int = 20
    batch_bytes: int = 1_000_000
    compression: str = "lz4"
    client_id: str = "btlab"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bootstrap_servers or not self.bootstrap_servers.strip():
            raise StreamConfigError("Kafka bootstrap servers are empty: set BTLAB_KAFKA=host:port")
        if not _PREFIX.match(self.prefix) or len(self.prefix) > 180:
            raise StreamConfigError(
                f"invalid topic prefix {self.prefix!r}: use letters, digits, '_', '-' and dots between parts"
            )
        if self.partitions < 1 or self.replication_factor < 1:
            raise StreamConfigError("partitions and replication_factor must be >= 1")
        if self.connect_timeout_s <= 0 or self.delivery_timeout_s <= 0:
            raise StreamConfigError("connect_timeout_s and delivery_timeout_s must be > 0")

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> "StreamConfig | None":
        """The config for the broker named by btlab's settings, or ``None`` when no broker is configured.

        Args:
            settings: a :class:`btlab.settings.Settings` (default: :func:`btlab.settings.get_settings`).
            **overrides: any other :class:`StreamConfig` field (e.g. ``prefix``).

        Returns:
            ``None`` if ``settings.kafka`` (``BTLAB_KAFKA``) is unset or blank: jobs then write to the store only.
        """
        if settings is None:
            from btlab.settings import get_settings

            settings = get_settings()
        servers = (settings.kafka or "").strip()
        if not servers:
            return None
        return cls(bootstrap_servers=servers, **overrides)

    @classmethod
    def require(cls, settings: Any = None, **overrides: Any) -> "StreamConfig":
        """Like :meth:`from_settings`, but raise :class:`StreamConfigError` when no broker is configured."""
        config = cls.from_settings(settings, **overrides)
        if config is None:
            raise StreamConfigError("no Kafka broker configured: set BTLAB_KAFKA=host:port (e.g. 127.0.0.1:19092)")
        return config

    def with_(self, **changes: Any) -> "StreamConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)

    # librdkafka property dicts -------------------------------------------------------------------------------
    def common_conf(self) -> dict[str, Any]:
        """Properties shared by every client: address, client id, timeouts, logging to :data:`KAFKA_LOGGER`."""
        connect_ms = max(1000, int(self.connect_timeout_s * 1000))
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "socket.connection.setup.timeout.ms": connect_ms,
            "logger": KAFKA_LOGGER,
            **dict(self.extra),
        }

    def producer_conf(self) -> dict[str, Any]:
        """Producer properties: idempotent (``enable.idempotence``, ``acks=all``), batched, compressed, bounded.

        Idempotence makes librdkafka's retries safe: no duplicates and per-partition order kept, which with
        ``exchange:symbol`` keys means per-instrument order.
        """
        conf = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_bytes,
            "compression.type": self.compression,
            "message.timeout.ms": int(self.delivery_timeout_s * 1000),
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 512 * 1024,
        }
        return {**conf, **self.common_conf()}

    def consumer_conf(self, group_id: str, *, from_beginning: bool = True) -> dict[str, Any]:
        """Consumer properties: manual commits, ``session.timeout.ms=6000``, start at the earliest offset.

        Args:
            group_id: consumer group; committed offsets are kept per group.
            from_beginning: where a group without committed offsets starts (``earliest``; else ``latest``).
        """
        conf = {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 2000,
            "isolation.level": "read_committed",
        }
        return {**conf, **self.common_conf()}

    def admin_conf(self) -> dict[str, Any]:
        """AdminClient properties."""
        return self.common_conf()


def check_broker(config: StreamConfig, admin: AdminClient | None = None, timeout_s: float | None = None) -> int:
    """Wait at most ``timeout_s`` (default ``config.connect_timeout_s``) for the broker to answer metadata.

    Returns:
        The number of brokers in the cluster metadata.

    Raises:
        BrokerUnavailableError: no answer within the bounded wait; the message names the address.
    """
    timeout = config.connect_timeout_s if timeout_s is None else timeout_s
    admin = admin or AdminClient(config.admin_conf())
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        reason = err.str() if hasattr(err, "str") else str(err)
        raise BrokerUnavailableError(config.bootstrap_servers, reason, timeout) from None
    if not metadata.brokers:
        raise BrokerUnavailableError(config.bootstrap_servers, "metadata lists no brokers", timeout)
    return len(metadata.brokers)
