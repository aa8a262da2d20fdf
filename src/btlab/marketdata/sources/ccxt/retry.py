"""Requests to a ccxt exchange with retries: :class:`RetryPolicy` and :func:`call`.

Every request goes through ccxt's rate limiter (``enableRateLimit``) and is retried on transient failures --
``ccxt.OperationFailed`` and subclasses: ``NetworkError``, ``RequestTimeout``, ``ExchangeNotAvailable``,
``DDoSProtection``, ``RateLimitExceeded`` (HTTP 418/429, 5xx, dropped connections, timeouts), and any error of a
response with HTTP status >= 500 -- with exponential backoff and jitter (:class:`RetryPolicy`), waiting at least
the server's ``Retry-After``. After ``max_retries`` retries
:class:`~btlab.marketdata.sources.ccxt.exchange.ExchangeUnavailableError` is raised; any other ccxt error (and an
answer ccxt cannot parse) is :class:`~btlab.marketdata.sources.ccxt.exchange.ExchangeRequestError` at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt

from btlab.errors import InvalidArgumentError
from btlab.marketdata.sources.ccxt.exchange import (
    ExchangeRequestError,
    ExchangeUnavailableError,
    failure_reason,
    last_http_status,
)

__all__ = ["Counters", "RetryPolicy", "call"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    The n-th retry (n = 0, 1, ...) waits ``min(max_delay, base_delay * 2**n)`` seconds scaled by a random factor
    in ``[1 - jitter, 1]`` ("equal jitter" spreads clients out), and never less than the server's
    ``Retry-After`` (honoured up to ``max_retry_after`` seconds; a longer ban gives up at once).

    Attributes:
        max_retries: retries per request before giving up (0: fail at once).
        base_delay, max_delay: backoff bounds in seconds.
        jitter: fraction of the delay that is random, 0..1.
        max_retry_after: the longest ``Retry-After`` (seconds) waited for.
    """

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise InvalidArgumentError(f"invalid retry policy {self}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        backoff = min(self.max_delay, self.base_delay * (2.0 ** attempt))
        backoff *= 1.0 - self.jitter * random.random()
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_retry_after))
        return backoff


def _retry_after(exchange: Any) -> float | None:
    headers = getattr(exchange, "last_response_headers", None) or {}
    value = None
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _transient(exchange: Any, exc: BaseException) -> bool:
    if isinstance(exc, ccxt.OperationFailed):
        return True
    status = last_http_status(exchange)
    return isinstance(exc, ccxt.ExchangeError) and status is not None and status >= 500


@dataclass
class Counters:
    """Requests made (attempts, retries included) and retries of one run."""

    requests: int = 0
    retries: int = 0


def call(exchange: Any, policy: RetryPolicy, counters: Counters, what: str, fn: Callable[..., Any],
         *args: Any, retry_log_level: int = logging.WARNING, **kwargs: Any) -> Any:
    """Call a ccxt method with retries (each logged at ``retry_log_level``); map ccxt's errors to btlab's."""
    attempt = 0
    while True:
        counters.requests += 1
        if hasattr(exchange, "_btlab_last_status"):
            exchange._btlab_last_status = None
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, KeyError) as exc:
            # ccxt could not parse the answer (e.g. a "NaN" price): the same request would fail again
            raise ExchangeRequestError(exchange.id, f"{what}: malformed response ({type(exc).__name__}: {exc})"
                                       ) from exc
        except ccxt.BaseError as exc:
            reason = f"{type(exc).__name__}: {failure_reason(exc)}"
            if not _transient(exchange, exc):
                raise ExchangeRequestError(exchange.id, f"{what}: {reason}") from exc
            retry_after = _retry_after(exchange) if isinstance(exc, ccxt.DDoSProtection) else None
            if attempt >= policy.max_retries:
                raise ExchangeUnavailableError(exchange.id, f"{what}: {reason} ({attempt} retries)") from exc
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise ExchangeUnavailableError(
                    exchange.id,
                    f"{what}: {reason} (Retry-After {retry_after:g} s exceeds {policy.max_retry_after:g} s)",
                ) from exc
            wait = policy.delay(attempt, retry_after)
            log.log(retry_log_level, "%s %s failed (%s); retry %d/%d in %.2f s", exchange.id, what, reason,
                    attempt + 1, policy.max_retries, wait)
            counters.retries += 1
            attempt += 1
            if wait > 0:
                time.sleep(wait)

