"""stream: btlab's Kafka-protocol topics (Redpanda in production; any Kafka-compatible broker works).

Contract (ARCHITECTURE.md, "Topics"):

* topics ``<prefix>.ticks`` and ``<prefix>.bars.<timeframe>`` (:mod:`btlab.stream.topics`), keys ``exchange:symbol``
  so order per instrument holds, record timestamp = event time (trade time / bar open time, ms);
* values are compact JSON carrying a schema version ``"v": 1`` (:mod:`btlab.stream.codec`);
* the end of a replay is an explicit marker record on every partition, never a timeout;
* unreadable records go to ``<topic>.dlq`` with the reason in headers; the consumer keeps going and counts them.

Entry points: :class:`StreamConfig` (from ``BTLAB_KAFKA``), :class:`StreamProducer` / :func:`open_producer`,
:class:`StreamConsumer` / :func:`read_until_end`. This package never touches SQL; sinks into the store call the
store's API with :func:`ticks_frame` / :func:`bars_frame` of consumed records.
"""

from btlab.stream.codec import (
    SCHEMA_VERSION,
    STREAM_BAR_COLUMNS,
    TICK_COLUMNS,
    BarMessage,
    EndMarker,
    Message,
    TickMessage,
    bars_frame,
    decode,
    encode,
    ticks_frame,
)
from btlab.stream.config import StreamConfig, check_broker
from btlab.stream.consumer import ConsumeStats, Record, StreamConsumer, read_until_end
from btlab.stream.errors import (
    BrokerUnavailableError,
    DeliveryError,
    StreamConfigError,
    StreamError,
    UnreadableRecordError,
)
from btlab.stream.producer import StreamProducer, open_producer
from btlab.stream.topics import (
    bars_topic,
    dead_letter_topic,
    ensure_topics,
    parse_key,
    record_key,
    ticks_topic,
)

__all__ = [
    "SCHEMA_VERSION",
    "STREAM_BAR_COLUMNS",
    "TICK_COLUMNS",
    "BarMessage",
    "BrokerUnavailableError",
    "ConsumeStats",
    "DeliveryError",
    "EndMarker",
    "Message",
    "Record",
    "StreamConfig",
    "StreamConfigError",
    "StreamConsumer",
    "StreamError",
    "StreamProducer",
    "TickMessage",
    "UnreadableRecordError",
    "bars_frame",
    "bars_topic",
    "check_broker",
    "dead_letter_topic",
    "decode",
    "encode",
    "ensure_topics",
    "open_producer",
    "parse_key",
    "read_until_end",
    "record_key",
    "ticks_frame",
    "ticks_topic",
]
