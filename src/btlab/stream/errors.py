"""Errors of the stream package (all :class:`btlab.errors.BtlabError` subclasses, so the CLI prints one line).

* :class:`BrokerUnavailableError` -- the Kafka-protocol broker at the configured address did not answer a metadata
  request within the bounded wait (``StreamConfig.connect_timeout_s``).
* :class:`DeliveryError` -- records were not acknowledged by the broker (raised at ``flush``).
* :class:`UnreadableRecordError` -- a record's value (or key) cannot be decoded or fails validation; the consumer
  catches it, dead-letters the record and keeps going.
* :class:`StreamConfigError` -- no broker configured, or a malformed topic name / setting.

Bad market data handed to a producer (NaN price, naive timestamps, ...) raises
:class:`btlab.errors.DataValidationError`, the same error the store raises for it.
"""

from __future__ import annotations

from btlab.errors import BtlabError

#: the longest reason an :class:`UnreadableRecordError` (hence a dead letter's reason header) carries, in characters
REASON_LIMIT = 500


def excerpt(text: str, limit: int = REASON_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, the cut marked ``... (N chars)`` -- for quoting input in a
    message: a record's value can be megabytes."""
    if len(text) <= limit:
        return text
    tail = f"... ({len(text):,} chars)"
    return text[: max(0, limit - len(tail))] + tail


class StreamError(BtlabError):
    """Base class of errors raised by :mod:`btlab.stream`."""


class StreamConfigError(StreamError, ValueError):
    """No broker is configured (``BTLAB_KAFKA`` unset), or a stream setting / topic name is malformed."""


class BrokerUnavailableError(StreamError, ConnectionError):
    """The broker at ``address`` did not answer within ``timeout_s`` seconds.

    Attributes:
        address: the bootstrap servers as configured (``host:port[,host:port...]``).
        reason: the underlying client error in one line.
        timeout_s: how long btlab waited, in seconds.
    """

    exit_code = 2

    def __init__(self, address: str, reason: str, timeout_s: float | None = None) -> None:
        self.address = address
        self.reason = reason
        self.timeout_s = timeout_s
        waited = f" within {timeout_s:g} s" if timeout_s is not None else ""
        super().__init__(f"cannot reach the Kafka broker at {address}{waited}: {reason}")


class DeliveryError(StreamError):
    """The broker did not acknowledge some produced records.

    Attributes:
        address: bootstrap servers of the producer.
        failed: number of records whose delivery failed or timed out.
        reasons: up to 10 distinct failure reasons, e.g. ``"btlab.ticks [2]: Local: Message timed out"``.
    """

    exit_code = 2

    def __init__(self, address: str, failed: int, reasons: list[str]) -> None:
        self.address = address
        self.failed = failed
        self.reasons = list(reasons)
        detail = "; ".join(self.reasons) if self.reasons else "no reason reported"
        super().__init__(f"{failed} record(s) not delivered to the Kafka broker at {address}: {detail}")


class UnreadableRecordError(StreamError, ValueError):
    """A record cannot be decoded into a btlab message.

    Attributes:
        reason: what is wrong, in words, at most :data:`REASON_LIMIT` characters (this text goes into the dead
            letter's ``btlab-dlq-reason`` header; a longer reason is cut, see :func:`excerpt`).
    """

    def __init__(self, reason: str) -> None:
        reason = excerpt(str(reason))
        self.reason = reason
        super().__init__(f"unreadable record: {reason}")
