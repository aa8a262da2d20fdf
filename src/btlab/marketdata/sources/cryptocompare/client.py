"""CryptoCompare history: a small client of the v1 ``histo*`` API (httpx) and a resumable ingest into the store.

The PyPI ``cryptocompare`` package has no timeouts, prints errors and reads the key from one variable only, so
btlab talks to the API directly.

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

Mapping to btlab bars
---------------------
``time`` -> ``ts`` (bar open, UTC); ``open, high, low, close`` as sent; ``volume`` = ``volumefrom``, the traded
amount in the BASE asset (``fsym``), as btlab's volume is everywhere (``volumeto``, the quote-asset volume, is not
stored); ``trades`` = <NA> (CryptoCompare gives no trade count). Rows whose prices and volumes are ALL zero are
padding and dropped (anywhere they occur; the saved real responses hold none). Any other impossible row (a zero
price with a non-zero volume, ``high < low``, ...) fails validation with an error naming the request. Rows that
CryptoCompare derived through a conversion (``conversionType`` other than ``direct``/``force_direct``, e.g.
via BTC) are stored as sent and counted in the report.

Series identity in the store: exchange ``cryptocompare`` for the CCCAGG index, or ``cryptocompare:<e>`` (``e``
lower-cased, e.g. ``cryptocompare:coinbase``) for one exchange's data as CryptoCompare reports it; symbol the
ccxt-style ``BASE/QUOTE`` (``BTC/USD``); source ``cryptocompare``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd

from btlab.errors import BtlabError, InvalidArgumentError
from btlab.marketdata.quality.gaps import GAP_COLUMNS, find_gaps
from btlab.model.bar import validate_bars
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store, TimeLike, to_utc

__all__ = [
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "MAX_LIMIT",
    "CryptoCompareClient",
    "CryptoCompareError",
    "CryptoCompareIngestReport",
    "CryptoCompareRateLimitError",
    "CryptoCompareUnavailableError",
    "histo_to_bars",
    "ingest_cryptocompare",
    "series_exchange",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://min-api.cryptocompare.com"
#: Timeframe -> v1 endpoint.
ENDPOINTS: dict[str, str] = {"1m": "/data/histominute", "1h": "/data/histohour", "1d": "/data/histoday"}
#: Largest ``limit`` the API accepts (a response then holds 2001 rows).
MAX_LIMIT = 2000
SOURCE = "cryptocompare"
_DIRECT = frozenset({"direct", "force_direct", ""})
_PRICE = ("open", "high", "low", "close")


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
    level on the ``btlab.marketdata.sources.cryptocompare.history`` logger without the key.

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


# ---------------------------------------------------------------------------------------------------------------
# rows -> bars
# ---------------------------------------------------------------------------------------------------------------
def histo_to_bars(rows: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, int, int]:
    """Map CryptoCompare rows to a bar frame (not yet validated), dropping all-zero padding rows.

    Returns:
        ``(bars, padding, converted)``: bars with ``ts`` (bar open, ``datetime64[ns, UTC]``), ``open, high, low,
        close``, ``volume`` (= ``volumefrom``, base asset) and ``trades`` (<NA>), in the rows' order; the number of
        padding rows dropped; the number of kept rows CryptoCompare derived through a conversion.
    """
    bars, padding, converted = _map_rows(rows)
    return bars, padding, int(converted.sum())


def _map_rows(rows: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, int, np.ndarray]:
    """:func:`histo_to_bars`, with a per-bar "derived through a conversion" mask instead of the count."""
    cols = ["time", *_PRICE, "volumefrom", "volumeto"]
    frame = pd.DataFrame.from_records(list(rows), columns=[*cols, "conversionType"])
    values = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64") for c in cols}
    padding = np.ones(len(frame), dtype=bool)
    for c in cols[1:]:
        padding &= values[c] == 0
    keep = ~padding
    seconds = values["time"][keep]
    bars = pd.DataFrame({"ts": pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[ns, UTC]")})
    for c in _PRICE:
        bars[c] = values[c][keep]
    bars["volume"] = values["volumefrom"][keep]
    bars["trades"] = pd.array([pd.NA] * int(keep.sum()), dtype="Int64")
    kinds = frame["conversionType"].to_numpy(dtype=object)[keep]
    converted = np.array([(k if isinstance(k, str) else "") not in _DIRECT for k in kinds], dtype=bool)
    return bars, int(padding.sum()), converted


# ---------------------------------------------------------------------------------------------------------------
# ingest
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CryptoCompareIngestReport:
    """What :func:`ingest_cryptocompare` did for one symbol.

    Attributes:
        exchange, symbol, timeframe: the series written.
        range_start, range_end: open times of the first and last bar slot of the requested range (``since`` ..
            ``until``, clipped to the last CLOSED bar); None if the range holds no closed bar.
        requests: HTTP requests made for this series (retries included).
        written: bars written by this run (re-written bars included, which changes nothing).
        padding: all-zero padding rows dropped.
        converted: written bars CryptoCompare derived through a conversion (``conversionType`` not direct).
        first, last, bars: the stored series within the requested range after the run (None/0 if empty).
        gaps: missing bars between ``first`` and ``last`` (:func:`btlab.marketdata.quality.gaps.find_gaps` layout).
        missing: total missing bars (``gaps["missing_bars"].sum()``).
    """

    exchange: str
    symbol: str
    timeframe: str
    range_start: pd.Timestamp | None
    range_end: pd.Timestamp | None
    requests: int
    written: int
    padding: int
    converted: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    bars: int
    gaps: pd.DataFrame = field(repr=False, compare=False)
    missing: int = 0

    def __str__(self) -> str:
        span = f"{self.first} .. {self.last}" if self.first is not None else "no bars"
        return (f"{self.exchange} {self.symbol} {self.timeframe}: {self.written} bars written, {self.bars} stored "
                f"({span}), {self.missing} missing, {self.requests} requests")


def series_exchange(exchange: str | None = None) -> str:
    """The store's exchange id for CryptoCompare data: ``cryptocompare`` (CCCAGG) or ``cryptocompare:<e>``."""
    if exchange is None or exchange.strip() == "" or exchange.strip().upper() == "CCCAGG":
        return "cryptocompare"
    return f"cryptocompare:{exchange.strip().lower()}"


def _split_symbol(symbol: str) -> tuple[str, str]:
    parts = symbol.strip().upper().split("/")
    if len(parts) != 2 or not all(parts):
        raise InvalidArgumentError(f"invalid symbol {symbol!r}: use BASE/QUOTE such as BTC/USD")
    return parts[0], parts[1]


@dataclass
class _Plan:
    symbol: str
    fsym: str
    tsym: str
    lo: int  # first wanted bar open, epoch s
    hi: int  # last wanted (closed) bar open, epoch s
    segments: list[tuple[str, int, int]]  # (direction, first, last) bar opens, epoch s
    step: int  # bar length, s

    @property
    def slots(self) -> int:
        """Bar slots to fetch."""
        return sum((b - a) // self.step + 1 for _, a, b in self.segments)


def ingest_cryptocompare(
    symbols: str | Iterable[str],
    timeframe: Timeframe | str,
    store: Store,
    *,
    since: TimeLike,
    until: TimeLike = None,
    exchange: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: CryptoCompareClient | None = None,
    now: TimeLike = None,
    limit: int = MAX_LIMIT,
) -> list[CryptoCompareIngestReport]:
    """Fill the store with CryptoCompare bars of ``symbols`` for ``since <= ts < until``; resumable, idempotent.

    Only CLOSED bars are stored: the newest bar requested opens at ``floor(now / tf) * tf - tf`` at the latest, so
    the still-open bar is never asked for (and any row the API sends past it is dropped).

    Paging and resume. The stored series (``exchange``/``symbol``/``timeframe``, see
    :func:`series_exchange`) decides what is fetched:

    * nothing stored: page BACKWARDS from the newest wanted bar with ``toTs``, ``limit + 1`` rows per request
      (the next ``toTs`` is the bar before the oldest row of the page), down to ``since``; a page made only of
      all-zero padding rows means the coin's history has started and ends the paging;
    * bars stored from ``first`` to ``last``: fetch only what is missing BEFORE ``first`` (paged backwards
      from ``first - tf``, as above) and AFTER ``last`` (paged FORWARDS from ``last + tf``: ``toTs = start +
      limit * tf``), within ``[since, until)``. Gaps between ``first`` and ``last`` are not re-fetched; they are
      reported (``gaps``).

    Every page is written as soon as it arrives (one idempotent upsert), and each segment grows the stored range
    contiguously from its edge, so a run killed at any moment leaves no hole that the next run would not fill,
    and re-running writes no duplicate.

    Args:
        symbols: ``"BTC/USD"`` or a list of ``BASE/QUOTE`` symbols.
        timeframe: ``1m``, ``1h`` or ``1d`` (CryptoCompare keeps minute history for a limited time only).
        store: where bars go (``ohlcv``; source ``cryptocompare``).
        since: first bar open time wanted (inclusive; rounded up to a bar open).
        until: end (exclusive); None = now.
        exchange: a CryptoCompare exchange (``e``, e.g. ``Coinbase``); None = the CCCAGG index.
        progress: called as ``progress(bar_slots_done, bar_slots_total)`` after every page.
        client: a :class:`CryptoCompareClient` (default: a new one with the key from the settings, closed at the
            end).
        now: the current time (default: the wall clock); decides which bars are closed.
        limit: rows per request minus one (1..2000).

    Returns:
        One :class:`CryptoCompareIngestReport` per symbol, in the order given.

    Raises:
        InvalidArgumentError: bad symbol, timeframe, range or limit.
        DataValidationError: a page holds an impossible bar (the message names the request); pages written
            before it stay (they are valid and the next run resumes after them).
        CryptoCompareError (and its rate-limit / unavailable subclasses): the API failed.
    """
    tf = Timeframe.parse(timeframe)
    if tf.value not in ENDPOINTS:
        raise InvalidArgumentError(
            f"CryptoCompare has no {tf.value} history endpoint: use one of {', '.join(ENDPOINTS)}"
        )
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise InvalidArgumentError(f"limit must be 1..{MAX_LIMIT}, got {limit}")
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    if not names:
        raise InvalidArgumentError("no symbols given")
    step = tf.seconds
    step_ns = tf.nanos
    since_ts = to_utc(since)
    if since_ts is None:
        raise InvalidArgumentError("since is required")
    now_ts = to_utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
    until_ts = to_utc(until)
    if until_ts is not None and until_ts <= since_ts:
        raise InvalidArgumentError(f"until ({until_ts}) must be after since ({since_ts})")
    last_closed = (now_ts.value // step_ns) * step - step  # the bar opening at floor(now) is still open
    lo = -(-since_ts.value // step_ns) * step
    hi = last_closed if until_ts is None else min(last_closed, -(-until_ts.value // step_ns) * step - step)
    series = series_exchange(exchange)

    plans = []
    for name in names:
        fsym, tsym = _split_symbol(name)
        symbol = f"{fsym}/{tsym}"
        plans.append(_Plan(symbol, fsym, tsym, lo, hi, _segments(store, series, symbol, tf, lo, hi), step))
    total = sum(p.slots for p in plans)
    done = 0

    own = client is None
    cc = client if client is not None else CryptoCompareClient()
    reports = []
    try:
        for plan in plans:
            before = cc.requests
            counts = {"written": 0, "padding": 0, "converted": 0}
            for direction, a, b in plan.segments:
                if direction == "backward":
                    to = b
                    while to >= a:
                        lim = max(1, min(limit, (to - a) // step))
                        only_padding = _page(cc, store, plan, tf, series, exchange, to, lim, a, to, counts)
                        done += min(lim, (to - a) // step) + 1
                        to -= (lim + 1) * step
                        if only_padding and to >= a:  # before the coin's history: nothing older exists
                            done += (to - a) // step + 1
                            to = a - step
                        if progress:
                            progress(done, total)
                else:
                    start = a
                    while start <= b:
                        to = min(start + limit * step, b)
                        lim = max(1, (to - start) // step)
                        _page(cc, store, plan, tf, series, exchange, to, lim, start, to, counts)
                        done += (to - start) // step + 1
                        if progress:
                            progress(done, total)
                        start = to + step
            reports.append(_report(store, series, plan, tf, cc.requests - before, counts))
    finally:
        if own:
            cc.close()
    return reports


def _page(cc: CryptoCompareClient, store: Store, plan: _Plan, tf: Timeframe, series: str, exchange: str | None,
          to_ts: int, lim: int, first: int, last: int, counts: dict[str, int]) -> bool:
    """Fetch ``lim + 1`` rows ending at ``to_ts`` and store the bars opening in ``[first, last]``.

    Returns: True if the page held rows and all of them were padding.
    """
    rows = cc.histo(plan.fsym, plan.tsym, tf, to_ts=to_ts, limit=lim, exchange=exchange)
    bars, padding, converted = _map_rows(rows)
    counts["padding"] += padding
    secs = bars["ts"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    inside = (secs >= first) & (secs <= last) & (secs <= plan.hi)
    chunk = bars[inside].reset_index(drop=True)
    if len(chunk):
        where = (f"CryptoCompare {ENDPOINTS[tf.value]} fsym={plan.fsym} tsym={plan.tsym}"
                 f"{' e=' + exchange if exchange else ''} toTs={to_ts}")
        validate_bars(chunk, where, tf)  # the error names the request; write_bars validates again (cheap)
        store.write_bars(chunk, exchange=series, symbol=plan.symbol, timeframe=tf, source=SOURCE)
        counts["written"] += len(chunk)
        counts["converted"] += int(converted[inside].sum())
    return bool(rows) and len(bars) == 0


def _segments(store: Store, exchange: str, symbol: str, tf: Timeframe, lo: int, hi: int) -> list[tuple[str, int, int]]:
    """What to fetch for ``[lo, hi]`` given what is stored (see :func:`ingest_cryptocompare`)."""
    if lo > hi:
        return []
    stored = store.bar_span(exchange=exchange, symbol=symbol, timeframe=tf)
    if stored.bars == 0:
        return [("backward", lo, hi)]
    first, last = stored.first.value // 1_000_000_000, stored.last.value // 1_000_000_000
    step = tf.seconds
    out = []
    newer = (max(lo, last + step), hi)
    if newer[0] <= newer[1]:
        out.append(("forward", *newer))
    older = (lo, min(hi, first - step))
    if older[0] <= older[1]:
        out.append(("backward", *older))
    return out


def _report(store: Store, exchange: str, plan: _Plan, tf: Timeframe, requests: int,
            counts: dict[str, int]) -> CryptoCompareIngestReport:
    def ts(sec: int) -> pd.Timestamp:
        return pd.Timestamp(sec * 1_000_000_000, tz="UTC")

    if plan.lo > plan.hi:
        gaps = find_gaps(pd.DatetimeIndex([], tz="UTC"), tf)
        return CryptoCompareIngestReport(exchange, plan.symbol, tf.value, None, None, requests, counts["written"],
                                         counts["padding"], counts["converted"], None, None, 0, gaps, 0)
    stamps = store.bar_times(exchange=exchange, symbol=plan.symbol, timeframe=tf, start=ts(plan.lo),
                             end=ts(plan.hi) + pd.Timedelta(1, "us"))  # plan.hi inclusive
    gaps = find_gaps(stamps, tf)
    assert tuple(gaps.columns) == GAP_COLUMNS
    return CryptoCompareIngestReport(
        exchange=exchange,
        symbol=plan.symbol,
        timeframe=tf.value,
        range_start=ts(plan.lo),
        range_end=ts(plan.hi),
        requests=requests,
        written=counts["written"],
        padding=counts["padding"],
        converted=counts["converted"],
        first=stamps[0] if len(stamps) else None,
        last=stamps[-1] if len(stamps) else None,
        bars=len(stamps),
        gaps=gaps,
        missing=int(gaps["missing_bars"].sum()),
    )

