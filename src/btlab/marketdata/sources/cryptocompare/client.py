"""CryptoCompare's v1 ``histo*`` API: a small synchronous client (httpx) and its errors.

The PyPI ``cryptocompare`` package has no timeouts, prints errors and reads the key from one variable only, so
btlab talks to the API directly. The rows it returns are mapped to bars by
:mod:`btlab.marketdata.sources.cryptocompare.schemas`; :mod:`btlab.marketdata.sources.cryptocompare.history` ingests
them into the store.

API used (``https://min-api.cryptocompare.com``, v1)
----------------------------------------------------
``GET /data/histominute`` (1m), ``/data/histohour`` (1h), ``/data/histoday`` (1d) with ``fsym`` (base asset),
``tsym`` (quote asset), ``limit`` (1..2000), ``toTs`` (epoch seconds) and optionally ``e`` (an exchange; default
CryptoCompare's aggregate index CCCAGG). ``aggregate`` is never sent (only the 1-unit endpoints are used).
The API key, if any, goes in the ``authorization: Apikey <key>`` header -- never in the URL, so it appears in no
URL, log record or error message.

Semantics relied on (as documented by CryptoCompare and seen in the saved responses in ``data/cryptocompare/``):

* a response holds ``limit + 1`` rows in ascending time, the last one being the bar that contains ``toTs``
  (btlab always sends bar-aligned ``toTs``, so the last row is the bar OPENING at ``toTs``);
* ``time`` is the bar's OPEN time in epoch seconds (UTC; days open at 00:00 UTC);
* for times before a coin's history starts the API returns padding rows whose prices and volumes are all 0;
* errors come as HTTP 200 with ``{"Response": "Error", "Message": ...}``; rate limiting either as HTTP 429 or as
  such an error body with ``"Type": 99`` ("You are over your rate limit ...").
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import numpy as np

from btlab.errors import BtlabError, InvalidArgumentError
from btlab.model.timeframe import Timeframe
from btlab.store.rows import TimeLike, to_utc

__all__ = [
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "MAX_LIMIT",
    "CryptoCompareClient",
    "CryptoCompareError",
    "CryptoCompareRateLimitError",
    "CryptoCompareUnavailableError",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://min-api.cryptocompare.com"
#: Timeframe -> v1 endpoint.
ENDPOINTS: dict[str, str] = {"1m": "/data/histominute", "1h": "/data/histohour", "1d": "/data/histoday"}
#: Largest ``limit`` the API accepts (a response then holds 2001 rows).
MAX_LIMIT = 2000


# ---------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------
class CryptoCompareError(BtlabError):
    """CryptoCompare answered with an error (``"Response": "Error"``, or an HTTP error status).

    Attributes:
        message: the API's own message (or the HTTP status).
        endpoint: the path requested, e.g. ``/data/histoday``.
        params: the query parameters sent (no API key: it travels in a header).
        error_type: the API's ``Type`` code when it sent one (99 = rate limit), else None.
    """

    def __init__(self, message: str, *, endpoint: str = "", params: dict[str, Any] | None = None,
                 error_type: int | None = None) -> None:
        self.message = message
        self.endpoint = endpoint
        self.params = dict(params or {})
        self.error_type = error_type
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        where = f"{endpoint}?{query}" if query else endpoint
        super().__init__(f"CryptoCompare {where}: {message}" if where else f"CryptoCompare: {message}")


class CryptoCompareRateLimitError(CryptoCompareError):
    """Still rate limited (HTTP 429 or an error body of ``Type`` 99) after every retry."""


class CryptoCompareUnavailableError(CryptoCompareError, ConnectionError):
    """No usable answer after every retry: timeouts, network errors, HTTP 5xx, or a body that is not JSON."""

    exit_code = 2


# ---------------------------------------------------------------------------------------------------------------
# client
# ---------------------------------------------------------------------------------------------------------------
class CryptoCompareClient:
    """A synchronous client of CryptoCompare's v1 history endpoints.

    Args:
        api_key: the API key; None reads it from btlab's settings (``BTLAB_CRYPTOCOMPARE_API_KEY`` or
            ``CRYPTOCOMPARE_API_KEY``, see :mod:`btlab.settings`); ``""`` sends no key (the API then applies its
            anonymous limits). Sent only as the ``authorization: Apikey <key>`` header; never logged.
        base_url: API root (a test points it at a local fake).
        timeout: seconds for connecting, and for each read, of one request.
        max_retries: retries of one request after a 429 / rate-limit body / timeout / network error / 5xx
            (so at most ``max_retries + 1`` attempts); then a clear error is raised.
        backoff: first retry delay in seconds; doubled at each retry, capped at ``max_backoff``. A ``Retry-After``
            header (seconds) replaces the computed delay, also capped.
        max_backoff: longest single wait, seconds.
        transport: an optional :class:`httpx.BaseTransport` (tests, proxies).

    Use as a context manager or call :meth:`close`. Nothing is ever printed; requests are logged at DEBUG
    level on the ``btlab.marketdata.sources.cryptocompare.client`` logger without the key.

    Attributes:
        requests: number of HTTP requests made (attempts, retries included).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        *,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if api_key is None:
            from btlab.settings import get_settings

            api_key = get_settings().cryptocompare_api_key
        self._api_key = api_key or None
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.requests = 0
        headers = {"accept": "application/json", "user-agent": "btlab"}
        if self._api_key:
            headers["authorization"] = f"Apikey {self._api_key}"
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(self.timeout), headers=headers,
                                  transport=transport)

    @property
    def has_api_key(self) -> bool:
        """True if requests carry an API key."""
        return self._api_key is not None

    def __repr__(self) -> str:
        return f"CryptoCompareClient({self.base_url!r}, api_key={'set' if self._api_key else 'none'})"

    def close(self) -> None:
        """Close the HTTP connection pool. Idempotent."""
        self._http.close()

    def __enter__(self) -> "CryptoCompareClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- requests ------------------------------------------------------------------------------------------
    def histo(
        self,
        fsym: str,
        tsym: str,
        timeframe: Timeframe | str,
        to_ts: int | TimeLike = None,
        limit: int = MAX_LIMIT,
        exchange: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of history: the ``Data`` rows of ``/data/histominute|histohour|histoday``.

        Args:
            fsym, tsym: base and quote asset (``"BTC"``, ``"USD"``).
            timeframe: ``1m``, ``1h`` or ``1d``.
            to_ts: the newest bar wanted (epoch seconds, or a time); None = now (the API's default; the newest
                row is then the still-open bar).
            limit: 1..2000; the API returns ``limit + 1`` rows.
            exchange: CryptoCompare exchange name (``e``); None = the CCCAGG aggregate.

        Returns:
            The rows as sent (dicts with ``time, open, high, low, close, volumefrom, volumeto, ...``), oldest
            first, padding rows included.

        Raises:
            InvalidArgumentError: unsupported timeframe, ``limit`` out of range.
            CryptoCompareError: the API answered with an error (its message is in the error).
            CryptoCompareRateLimitError, CryptoCompareUnavailableError: retries exhausted.
        """
        tf = Timeframe.parse(timeframe)
        endpoint = ENDPOINTS.get(tf.value)
        if endpoint is None:
            raise InvalidArgumentError(
                f"CryptoCompare has no {tf.value} history endpoint: use one of {', '.join(ENDPOINTS)}"
            )
        if not 1 <= int(limit) <= MAX_LIMIT:
            raise InvalidArgumentError(f"limit must be 1..{MAX_LIMIT}, got {limit}")
        params: dict[str, Any] = {"fsym": fsym.upper(), "tsym": tsym.upper(), "limit": int(limit)}
        if to_ts is not None:
            params["toTs"] = _epoch_seconds(to_ts)
        if exchange:
            params["e"] = exchange
        body = self._get(endpoint, params)
        data = body.get("Data")
        if not isinstance(data, list) or not all(isinstance(r, dict) and "time" in r for r in data):
            raise CryptoCompareError("unexpected response: no Data list of rows", endpoint=endpoint, params=params)
        return data

    def _get(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        last = ""
        kind: type[CryptoCompareError] = CryptoCompareUnavailableError
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            self.requests += 1
            log.debug("GET %s %s (attempt %d)", endpoint, params, attempt + 1)
            try:
                resp = self._http.get(endpoint, params=params)
            except httpx.TimeoutException:
                last, kind = f"no answer within {self.timeout:g} s (timeout)", CryptoCompareUnavailableError
            except httpx.TransportError as exc:
                last, kind = f"network error ({type(exc).__name__}: {exc})", CryptoCompareUnavailableError
            else:
                status = resp.status_code
                if status == 429:
                    last, kind = "HTTP 429 Too Many Requests", CryptoCompareRateLimitError
                    retry_after = _retry_after(resp)
                elif status >= 500:
                    last, kind = f"HTTP {status}", CryptoCompareUnavailableError
                else:
                    body = _json_body(resp)
                    if body is None:
                        if status >= 400:
                            raise CryptoCompareError(f"HTTP {status}", endpoint=endpoint, params=params)
                        last, kind = f"HTTP {status} with a body that is not JSON", CryptoCompareUnavailableError
                    elif body.get("Response") == "Error" or status >= 400:
                        message = str(body.get("Message") or f"HTTP {status}")
                        error_type = body.get("Type") if isinstance(body.get("Type"), int) else None
                        if error_type == 99 or "rate limit" in message.lower():
                            last, kind = message, CryptoCompareRateLimitError
                        else:
                            raise CryptoCompareError(message, endpoint=endpoint, params=params,
                                                     error_type=error_type)
                    else:
                        return body
            if attempt >= self.max_retries:
                break
            delay = min(self.max_backoff, self.backoff * (2**attempt))
            if retry_after is not None:
                delay = min(self.max_backoff, retry_after)
            log.debug("%s %s: %s; retrying in %.3g s", endpoint, params, last, delay)
            time.sleep(delay)
        raise kind(f"{last} (gave up after {self.max_retries + 1} attempts)", endpoint=endpoint, params=params)


def _json_body(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _epoch_seconds(value: int | TimeLike) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    ts = to_utc(value)  # type: ignore[arg-type]
    assert ts is not None
    return int(ts.value // 1_000_000_000)
