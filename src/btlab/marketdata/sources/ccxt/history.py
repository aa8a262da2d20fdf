"""History ingest through ccxt REST: OHLCV bars into ``ohlcv`` and trades into ``ticks``, resumable and idempotent.

:func:`ingest_ohlcv` and :func:`ingest_trades` page through ``fetch_ohlcv`` / ``fetch_trades`` of a ccxt client
(build one with :func:`btlab.marketdata.sources.ccxt.exchange.make_exchange`), write every page to the store as soon as it
arrives, and can be stopped (or killed) at any moment: the next run resumes after the last stored bar or trade,
and re-written rows are upserts on the natural key, so no run creates a gap or a duplicate.

Units: ccxt speaks integer milliseconds since the epoch (UTC); the store and every timestamp this module returns
are ``datetime64[ns, UTC]`` / :class:`pandas.Timestamp` in UTC. Time bounds (``since``, ``until``, ``now``) are
datetimes, pandas Timestamps or strings (naive means UTC), or ints taken as milliseconds since the epoch (ccxt's
convention).

Final bars
----------
A bar's timestamp is its OPEN time. A bar is final when ``open + timeframe <= now``, where ``now`` is the
exchange's own clock (``fetch_time``; the local clock only for exchanges without it, or the ``now`` argument).
Bars from ``since`` (rounded up to a bar open time) up to, not including, ``min(until, first non-final bar)`` are
ingested; the still-open current bar -- which exchanges such as Binance return as the last kline -- is never
stored, so a stored bar never changes later.

Resume
------
Before fetching, the stored bars of the series in ``[since, end)`` are looked up (one ``min/max`` query; nothing is
added to the store). Only ``[since, first stored)`` and ``(last stored, end)`` are fetched; holes INSIDE the stored
range are not refetched, they are reported as gaps (run with ``resume=False`` to refetch everything). A range
before the exchange's first bar costs one request per run. Trades resume the same way from the last stored trade
(by trade id where the exchange pages by id, see below).

Retries
-------
Every request goes through ccxt's rate limiter (``enableRateLimit``) and is retried on transient failures --
``ccxt.OperationFailed`` and subclasses: ``NetworkError``, ``RequestTimeout``, ``ExchangeNotAvailable``,
``DDoSProtection``, ``RateLimitExceeded`` (HTTP 418/429, 5xx, dropped connections, timeouts), and any error of a
response with HTTP status >= 500 -- with exponential backoff and jitter (:class:`RetryPolicy`), waiting at least
the server's ``Retry-After``. After ``max_retries`` retries :class:`ExchangeUnavailableError` is raised; pages
written before stay written (the next run resumes).

Trade paging
------------
Exchanges that page trades by id (Binance: ``fromId``; ids are consecutive per symbol) are paged by id after the
first page, which is found by time (``since``; Binance's aggregate-trades window is one hour, so empty hours are
stepped over). Other exchanges are paged by time: ``since`` = the last trade's time, overlapping trades dropped by
id; this is best effort (more trades in one millisecond than a page holds cannot be paged past).
Trades with a missing id or time, a non-finite or non-positive price or amount are quarantined: not stored,
counted in the report. Binance's ``fetch_trades`` returns AGGREGATE trades (``aggTrades``: ``trade_id`` is the
aggregate id); pass ``params={"fetchTradesMethod": ...}`` to use another endpoint.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

import ccxt

from btlab.errors import InvalidArgumentError
from btlab.marketdata.sources.ccxt.exchange import (
    ExchangeRequestError,
    ExchangeUnavailableError,
    check_symbol,
    check_timeframe,
    failure_reason,
    last_http_status,
    make_exchange,
)
from btlab.marketdata.quality.gaps import GAP_COLUMNS, find_gaps
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store

__all__ = [
    "IngestReport",
    "RetryPolicy",
    "SeriesReport",
    "TradeSeriesReport",
    "TradesReport",
    "ingest_ohlcv",
    "ingest_trades",
]

log = logging.getLogger(__name__)

MS = 1_000_000  # ns per ms
#: Default page size when the exchange does not state one (ccxt ``features``).
FALLBACK_PAGE_LIMIT = 1000
#: Exchanges that page trades by id: ccxt id -> (request parameter, time window of a ``since`` request in ms).
ID_PAGED_TRADES: dict[str, tuple[str, int]] = {"binance": ("fromId", 3_600_000)}

TimeArg = datetime | pd.Timestamp | str | int
Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------------------------
# retries
# ---------------------------------------------------------------------------------------------------------------
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
class _Counters:
    requests: int = 0
    retries: int = 0


def _call(exchange: Any, policy: RetryPolicy, counters: _Counters, what: str, fn: Callable[..., Any],
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


# ---------------------------------------------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------------------------------------------
def _empty_gaps() -> pd.DataFrame:
    return find_gaps(pd.DatetimeIndex([], tz="UTC"), "1m")[list(GAP_COLUMNS)]


@dataclass
class SeriesReport:
    """One series of an :func:`ingest_ohlcv` run.

    Attributes:
        exchange, symbol, timeframe: the series (ccxt id, unified symbol, ccxt timeframe).
        start, end: the range considered: bar open times ``start <= ts < end`` (UTC); ``end`` is at most the
            open time of the exchange's current (unfinished) bar.
        resumed_from: open time the run continued from after already stored bars (``None``: fetched from start).
        expected: bar slots the run set out to fetch (the progress total for this series).
        bars_written: bars received and written by this run (re-written ones included).
        rejected: bars received but not stored because they were invalid (non-finite, non-positive price, ...).
        pages: ``fetch_ohlcv`` calls that returned.
        stored, first, last: bars now stored in ``[start, end)`` and the first/last open time (``None`` if none).
        gaps: missing bars between ``first`` and ``last`` (:func:`btlab.marketdata.quality.gaps.find_gaps` columns).
    """

    exchange: str
    symbol: str
    timeframe: str
    start: pd.Timestamp
    end: pd.Timestamp
    resumed_from: pd.Timestamp | None = None
    expected: int = 0
    bars_written: int = 0
    rejected: int = 0
    pages: int = 0
    stored: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    gaps: pd.DataFrame = field(default_factory=_empty_gaps)

    @property
    def missing_bars(self) -> int:
        """Total missing bars between the first and last stored bar."""
        return int(self.gaps["missing_bars"].sum()) if len(self.gaps) else 0

    def __str__(self) -> str:
        span = f"{self.first} .. {self.last}" if self.first is not None else "nothing stored"
        return (f"{self.exchange} {self.symbol} {self.timeframe}: {self.bars_written} bars written in {self.pages} "
                f"pages, {self.stored} stored ({span}), {self.missing_bars} missing in {len(self.gaps)} gaps"
                + (f", {self.rejected} rejected" if self.rejected else ""))


@dataclass
class IngestReport:
    """What :func:`ingest_ohlcv` did.

    Attributes:
        series: one :class:`SeriesReport` per symbol, in the order given.
        requests: REST requests made (retried ones included), markets and server time included.
        retries: requests that failed transiently and were retried.
        server_time: the exchange's clock used to decide which bars are final (UTC).
        elapsed: wall-clock seconds.
    """

    series: list[SeriesReport]
    requests: int
    retries: int
    server_time: pd.Timestamp
    elapsed: float

    @property
    def bars_written(self) -> int:
        return sum(s.bars_written for s in self.series)

    @property
    def missing_bars(self) -> int:
        return sum(s.missing_bars for s in self.series)

    def __str__(self) -> str:
        lines = [str(s) for s in self.series]
        lines.append(f"{self.bars_written} bars in {self.elapsed:.1f} s, {self.requests} requests, "
                     f"{self.retries} retried; exchange time {self.server_time}")
        return "\n".join(lines)


@dataclass
class TradeSeriesReport:
    """One symbol of an :func:`ingest_trades` run.

    Attributes:
        exchange, symbol: ccxt id and unified symbol.
        start, end: trade times ``start <= ts < end`` (UTC) considered.
        resumed_after: id of the stored trade the run continued after (``None``: fetched from start).
        trades_written: valid trades received and written (re-written ones included).
        rejected: trades quarantined (not stored): missing id/time, non-finite or non-positive price/amount.
        rejected_examples: up to 5 reasons, for the log.
        pages: ``fetch_trades`` calls that returned.
        id_gaps: missing ids in the sequence this run received (numeric ids only, counted from the resumed trade).
        stored, first, last: trades now stored in ``[start, end)`` and the first/last trade time.
    """

    exchange: str
    symbol: str
    start: pd.Timestamp
    end: pd.Timestamp
    resumed_after: str | None = None
    trades_written: int = 0
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    pages: int = 0
    id_gaps: int = 0
    stored: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None

    def __str__(self) -> str:
        span = f"{self.first} .. {self.last}" if self.first is not None else "nothing stored"
        return (f"{self.exchange} {self.symbol} trades: {self.trades_written} written in {self.pages} pages, "
                f"{self.stored} stored ({span}), {self.id_gaps} missing ids, {self.rejected} rejected")


@dataclass
class TradesReport:
    """What :func:`ingest_trades` did (fields as in :class:`IngestReport`)."""

    series: list[TradeSeriesReport]
    requests: int
    retries: int
    server_time: pd.Timestamp
    elapsed: float

    @property
    def trades_written(self) -> int:
        return sum(s.trades_written for s in self.series)

    def __str__(self) -> str:
        lines = [str(s) for s in self.series]
        lines.append(f"{self.trades_written} trades in {self.elapsed:.1f} s, {self.requests} requests, "
                     f"{self.retries} retried; exchange time {self.server_time}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def _to_ms(value: TimeArg, name: str) -> int:
    """A time argument in ms since the epoch (ints are ms already)."""
    if isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name}: expected a time, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"{name}: cannot parse time {value!r} ({exc})") from None
    if ts is pd.NaT:
        raise InvalidArgumentError(f"{name}: missing time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // MS) + (1 if ts.value % MS else 0)  # rounded up: a bound ">= since"


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(int(ms) * MS, tz="UTC")


def _align_up(ms: int, tf: Timeframe) -> int:
    step, origin = tf.seconds * 1000, tf.origin_ns // MS
    return origin + -(-(ms - origin) // step) * step


def _align_down(ms: int, tf: Timeframe) -> int:
    step, origin = tf.seconds * 1000, tf.origin_ns // MS
    return origin + ((ms - origin) // step) * step


def _slots(a: int, b: int, step: int) -> int:
    return max(0, -(-(b - a) // step))


def _as_list(symbols: str | Sequence[str]) -> list[str]:
    items = [symbols] if isinstance(symbols, str) else list(symbols)
    items = [s.strip() for s in items if s and s.strip()]
    if not items:
        raise InvalidArgumentError("no symbols given")
    return list(dict.fromkeys(items))


def _session(exchange: Any, retry: RetryPolicy | None, max_retries: int) -> tuple[Any, RetryPolicy, _Counters]:
    """The ccxt client, the retry policy and fresh request counters of one ingest run."""
    return _client(exchange), retry or RetryPolicy(max_retries=max_retries), _Counters()


def _span(since: TimeArg, until: TimeArg | None, tf: Timeframe | None) -> tuple[int, int | None]:
    """``since`` (rounded up to a bar boundary of ``tf`` if given) and ``until`` in ms.

    Raises:
        InvalidArgumentError: unparsable bound, or ``until`` not after ``since``.
    """
    start = _to_ms(since, "since")
    if tf is not None:
        start = _align_up(start, tf)
    until_ms = None if until is None else _to_ms(until, "until")
    if until_ms is not None and until_ms <= start:
        raise InvalidArgumentError(f"until ({_ts(until_ms)}) must be after since ({_ts(start)})")
    return start, until_ms


def _client(exchange: Any) -> Any:
    if isinstance(exchange, str):
        return make_exchange(exchange)
    if not isinstance(exchange, ccxt.Exchange):
        raise InvalidArgumentError(
            f"expected a ccxt exchange id or a synchronous ccxt client, got {type(exchange).__name__}"
        )
    return exchange


def _prepare(exchange: Any, symbols: list[str], policy: RetryPolicy, counters: _Counters) -> dict[str, dict]:
    if not exchange.markets:
        _call(exchange, policy, counters, "load_markets", exchange.load_markets)
    return {s: check_symbol(exchange, s) for s in symbols}


def _server_now(exchange: Any, now: TimeArg | None, policy: RetryPolicy, counters: _Counters) -> int:
    if now is not None:
        return _to_ms(now, "now")
    if exchange.has.get("fetchTime"):
        value = _call(exchange, policy, counters, "fetch_time", exchange.fetch_time)
        if value is not None:
            return int(value)
    return int(exchange.milliseconds())


def _page_limit(exchange: Any, market: Mapping[str, Any], method: str, page_limit: int | None) -> int:
    if page_limit is not None:
        if int(page_limit) <= 0:
            raise InvalidArgumentError(f"page_limit must be positive, got {page_limit}")
        return int(page_limit)
    features = getattr(exchange, "features", None) or {}
    kind = market.get("type") or "spot"
    spec = features.get(kind) or {}
    if kind in ("swap", "future") and isinstance(spec, dict):
        spec = spec.get("linear" if market.get("linear") else "inverse") or {}
    try:
        limit = (spec.get(method) or {}).get("limit")
    except AttributeError:
        limit = None
    return int(limit) if limit else FALLBACK_PAGE_LIMIT


def _ms_of(ts: pd.Timestamp) -> int:
    return int(ts.value // MS)


# ---------------------------------------------------------------------------------------------------------------
# OHLCV
# ---------------------------------------------------------------------------------------------------------------
def _bar_frame(rows: list[list[Any]], tf: Timeframe) -> tuple[pd.DataFrame, int]:
    """ccxt OHLCV rows -> a bar frame of the valid, aligned, unique bars; also the number rejected."""
    ms = np.array([r[0] if r and r[0] is not None else -1 for r in rows], dtype=np.int64)
    vals = np.array([[np.nan if v is None else v for v in (list(r[1:6]) + [None] * 5)[:5]] for r in rows],
                    dtype=np.float64).reshape(len(rows), 5)
    o, h, l, c, v = vals.T
    step, origin = tf.seconds * 1000, tf.origin_ns // MS
    ok = (ms >= 0) & ((ms - origin) % step == 0) & np.isfinite(vals).all(axis=1)
    ok &= (o > 0) & (h > 0) & (l > 0) & (c > 0) & (v >= 0)
    ok &= (h >= np.maximum(o, c)) & (l <= np.minimum(o, c))
    frame = pd.DataFrame({
        "ts": pd.to_datetime(ms[ok] * MS, utc=True).astype("datetime64[ns, UTC]"),
        "open": o[ok], "high": h[ok], "low": l[ok], "close": c[ok], "volume": v[ok],
    })
    frame = frame.drop_duplicates("ts", keep="last").sort_values("ts", kind="stable").reset_index(drop=True)
    return frame, int((~ok).sum())


def ingest_ohlcv(
    exchange: Any,
    symbols: str | Sequence[str],
    timeframe: Timeframe | str,
    store: Store,
    *,
    since: TimeArg,
    until: TimeArg | None = None,
    progress: Progress | None = None,
    page_limit: int | None = None,
    max_retries: int = 5,
    retry: RetryPolicy | None = None,
    now: TimeArg | None = None,
    resume: bool = True,
    source: str | None = None,
) -> IngestReport:
    """Fetch the final OHLCV bars of ``symbols`` from ``since`` to ``until`` (or now) into ``store``.

    Pages through ``exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=page_limit)`` oldest first; each
    page's final bars are written at once with :meth:`Store.write_bars <btlab.store.base.Store.write_bars>`
    (``exchange`` = the ccxt id, ``source='ccxt:<id>'``). See the module docs for final bars, resume and retries.

    Args:
        exchange: a synchronous ccxt client (see :func:`~btlab.marketdata.sources.ccxt.exchange.make_exchange`) or a ccxt
            id (a client is built with btlab's defaults). Markets are loaded if needed.
        symbols: ccxt unified symbols (``"BTC/USDT"`` or a list).
        timeframe: a ccxt timeframe the exchange offers (``"1m"``, ``"1h"``, ...).
        store: where to write.
        since: first bar open time wanted (rounded up to a bar boundary).
        until: bars opening before this time only (exclusive); default: up to the current, unfinished bar.
        progress: called as ``progress(done, total)`` after each page: bar slots covered so far and the bar slots
            the run set out to fetch (all symbols; ``total`` is known from the start, so ``elapsed * (total - done)
            / done`` is an ETA). ``done`` reaches ``total`` at the end.
        page_limit: bars per request; default: the exchange's maximum from ccxt ``features`` (Binance 1000), else
            1000.
        max_retries: retries per request (ignored when ``retry`` is given).
        retry: the full :class:`RetryPolicy`.
        now: the exchange time to decide which bars are final; default the exchange's clock (``fetch_time``).
        resume: continue after the bars already stored (default); ``False`` refetches ``[since, until)``.
        source: provenance stored with each bar; default ``ccxt:<exchange id>``.

    Returns:
        An :class:`IngestReport` (bars written, requests, retries, and per series the stored range and its gaps).

    Raises:
        UnknownExchangeError: ``exchange`` is an unknown id.
        UnknownSymbolError: a symbol is not a market of the exchange (checked before anything is fetched).
        UnsupportedTimeframeError: the exchange does not offer ``timeframe``.
        InvalidArgumentError: bad ``timeframe``, time bound, ``page_limit`` or ``since >= until``.
        ExchangeUnavailableError: a request kept failing transiently after all retries (earlier pages are stored).
        ExchangeRequestError: the exchange rejected a request, or ccxt could not parse its answer (not retried).
        DataValidationError: never for a bad bar from the exchange (those are counted as ``rejected``).
    """
    t_start = time.perf_counter()
    ex, policy, counters = _session(exchange, retry, max_retries)
    tf = Timeframe.parse(timeframe)
    check_timeframe(ex, tf.value)
    names = _as_list(symbols)
    start, until_ms = _span(since, until, tf)
    markets = _prepare(ex, names, policy, counters)
    now_ms = _server_now(ex, now, policy, counters)
    open_bar = _align_down(now_ms, tf)  # open time of the bar containing now: not final
    end = open_bar if until_ms is None else min(until_ms, open_bar)
    src = source or f"ccxt:{ex.id}"
    step = tf.seconds * 1000

    plans: list[tuple[str, list[tuple[int, int]], SeriesReport]] = []
    for symbol in names:
        report = SeriesReport(ex.id, symbol, tf.value, _ts(start), _ts(max(start, end)))
        segments: list[tuple[int, int]] = []
        if end > start:
            stored = store.bar_span(exchange=ex.id, symbol=symbol, timeframe=tf, start=_ts(start),
                                    end=_ts(end)) if resume else None
            if stored is None or stored.bars == 0:
                segments = [(start, end)]
            else:
                first, last = _ms_of(stored.first), _ms_of(stored.last)
                if first > start:
                    segments.append((start, first))
                if last + step < end:
                    segments.append((last + step, end))
                    report.resumed_from = _ts(last + step)
        report.expected = sum(_slots(a, b, step) for a, b in segments)
        plans.append((symbol, segments, report))

    total = sum(r.expected for _, _, r in plans)
    done = 0
    if progress is not None:
        progress(0, total)
    for symbol, segments, report in plans:
        limit = _page_limit(ex, markets[symbol], "fetchOHLCV", page_limit)
        for a, b in segments:
            cursor = a
            covered = 0
            while cursor < b:
                rows = _call(ex, policy, counters, f"fetch_ohlcv {symbol} {tf.value}", ex.fetch_ohlcv, symbol,
                             tf.value, since=cursor, limit=limit)
                report.pages += 1
                timed = [r for r in rows or [] if r and isinstance(r[0], (int, np.integer))]
                report.rejected += len(rows or []) - len(timed)  # no parsable open time
                rows = sorted((r for r in timed if r[0] >= cursor), key=lambda r: r[0])
                if not rows:
                    break
                page = [r for r in rows if r[0] < b]
                if page:
                    frame, bad = _bar_frame(page, tf)
                    report.rejected += bad
                    if len(frame):
                        store.write_bars(frame, exchange=ex.id, symbol=symbol, timeframe=tf, source=src)
                        report.bars_written += len(frame)
                last = int(rows[-1][0])
                reached = min(b, last + step)
                now_covered = _slots(a, reached, step)
                done += now_covered - covered
                covered = now_covered
                if progress is not None:
                    progress(done, total)
                if last + step >= b or last + step <= cursor:
                    break
                cursor = last + step
            done += _slots(a, b, step) - covered  # the rest of the segment has no bars on the exchange
            if progress is not None:
                progress(done, total)
        stored_ts = store.bar_times(exchange=ex.id, symbol=symbol, timeframe=tf, start=_ts(start),
                                    end=_ts(max(start, end)))
        report.stored = len(stored_ts)
        if report.stored:
            report.first, report.last = stored_ts[0], stored_ts[-1]
            report.gaps = find_gaps(stored_ts, tf)
        if report.rejected:
            log.warning("%s %s %s: %d invalid bars from the exchange were not stored", ex.id, symbol, tf.value,
                        report.rejected)
    return IngestReport([p[2] for p in plans], counters.requests, counters.retries, _ts(now_ms),
                        time.perf_counter() - t_start)


# ---------------------------------------------------------------------------------------------------------------
# trades
# ---------------------------------------------------------------------------------------------------------------
def _trade_frame(trades: list[dict[str, Any]], exchange_id: str, symbol: str, report: TradeSeriesReport
                 ) -> pd.DataFrame:
    """ccxt trades -> ``ticks`` rows (valid ones, unique by id); invalid ones are counted in ``report``."""
    rows = []
    for t in trades:
        tid, ms, price, amount = t.get("id"), t.get("timestamp"), t.get("price"), t.get("amount")
        reason = None
        if tid is None or str(tid) == "":
            reason = "missing id"
        elif not isinstance(ms, (int, np.integer)) or isinstance(ms, bool) or ms <= 0:
            reason = f"unparsable time {ms!r}"
        else:
            try:
                price, amount = float(price), float(amount)
            except (TypeError, ValueError):
                reason = f"non-numeric price/amount {price!r}/{amount!r}"
            else:
                if not (np.isfinite(price) and np.isfinite(amount)) or price <= 0 or amount <= 0:
                    reason = f"impossible price/amount {price!r}/{amount!r}"
        if reason is not None:
            report.rejected += 1
            if len(report.rejected_examples) < 5:
                report.rejected_examples.append(f"trade {tid!r}: {reason}")
            continue
        side = t.get("side")
        rows.append((int(ms), str(tid), price, amount, side if side in ("buy", "sell") else None))
    if not rows:
        return pd.DataFrame(columns=["ts", "exchange", "symbol", "trade_id", "price", "amount", "side"])
    ms_arr = np.array([r[0] for r in rows], dtype=np.int64)
    frame = pd.DataFrame({
        "ts": pd.to_datetime(ms_arr * MS, utc=True).astype("datetime64[ns, UTC]"),
        "exchange": exchange_id,
        "symbol": symbol,
        "trade_id": [r[1] for r in rows],
        "price": np.array([r[2] for r in rows], dtype=np.float64),
        "amount": np.array([r[3] for r in rows], dtype=np.float64),
        "side": [r[4] for r in rows],
    })
    return frame.drop_duplicates("trade_id", keep="last").reset_index(drop=True)


def _reject(report: TradeSeriesReport, trades: list[dict[str, Any]], reason: str) -> None:
    report.rejected += len(trades)
    for t in trades[: max(0, 5 - len(report.rejected_examples))]:
        report.rejected_examples.append(f"trade {t.get('id')!r}: {reason} {t.get('timestamp')!r}")


def _numeric(tid: str) -> int | None:
    try:
        return int(tid)
    except (TypeError, ValueError):
        return None


def _last_stored_trade(store: Store, exchange_id: str, symbol: str, start: int, end: int
                       ) -> tuple[int, int, str] | None:
    """(first ms, last ms, last trade id) stored in ``[start, end)``; the last id is the largest at the last ms."""
    rng = store.tick_span(exchange=exchange_id, symbol=symbol, start=_ts(start), end=_ts(end))
    if rng.ticks == 0:
        return None
    last_ms = _ms_of(rng.last)
    ids = store.trade_ids(exchange=exchange_id, symbol=symbol, start=_ts(last_ms),
                          end=_ts(last_ms + 1)).astype(str).tolist()
    nums = [n for n in map(_numeric, ids) if n is not None]
    last_id = str(max(nums)) if len(nums) == len(ids) and nums else max(ids)
    return _ms_of(rng.first), last_ms, last_id


def ingest_trades(
    exchange: Any,
    symbols: str | Sequence[str],
    store: Store,
    *,
    since: TimeArg,
    until: TimeArg | None = None,
    progress: Progress | None = None,
    page_limit: int | None = None,
    max_retries: int = 5,
    retry: RetryPolicy | None = None,
    now: TimeArg | None = None,
    resume: bool = True,
    params: Mapping[str, Any] | None = None,
) -> TradesReport:
    """Fetch the trades of ``symbols`` with ``since <= time < until`` (or now) into the ``ticks`` table.

    Each page is written at once with ``store.upsert("ticks", ...)``: columns ``ts`` (trade time, UTC),
    ``exchange`` (ccxt id), ``symbol``, ``trade_id`` (the exchange's id as text), ``price``, ``amount`` (base
    asset), ``side`` (taker side ``buy``/``sell``). Upserts on ``(ts, exchange, symbol, trade_id)``: re-runs and
    overlapping pages add nothing twice. Paging, resume, retries and quarantine: see the module docs.

    Args:
        exchange, symbols, store, since, until, page_limit, max_retries, retry, now, resume: as in
            :func:`ingest_ohlcv` (``until`` exclusive; default the exchange's current time, exclusive).
        progress: ``progress(done, total)`` in milliseconds of exchange time covered / to cover (all symbols).
        params: extra ccxt ``fetch_trades`` parameters (e.g. ``{"fetchTradesMethod": "publicGetTrades"}``).

    Returns:
        A :class:`TradesReport`.

    Raises:
        as :func:`ingest_ohlcv` (but no timeframe check); an exchange without ``fetchTrades`` raises
        :class:`~btlab.marketdata.sources.ccxt.exchange.ExchangeRequestError`.
    """
    t_start = time.perf_counter()
    ex, policy, counters = _session(exchange, retry, max_retries)
    if not ex.has.get("fetchTrades"):
        raise ExchangeRequestError(ex.id, "fetch_trades is not supported by this exchange in ccxt")
    names = _as_list(symbols)
    start, until_ms = _span(since, until, None)
    markets = _prepare(ex, names, policy, counters)
    now_ms = _server_now(ex, now, policy, counters)
    end = now_ms if until_ms is None else min(until_ms, now_ms)
    id_paging = ID_PAGED_TRADES.get(ex.id)
    extra = dict(params or {})

    plans: list[tuple[str, list[tuple[int, int, str | None]], TradeSeriesReport]] = []
    for symbol in names:
        report = TradeSeriesReport(ex.id, symbol, _ts(start), _ts(max(start, end)))
        segments: list[tuple[int, int, str | None]] = []  # (from ms, to ms, resume after this id)
        if end > start:
            stored = _last_stored_trade(store, ex.id, symbol, start, end) if resume else None
            if stored is None:
                segments = [(start, end, None)]
            else:
                first_ms, last_ms, last_id = stored
                if first_ms > start:
                    segments.append((start, first_ms, None))
                segments.append((last_ms, end, last_id))
                report.resumed_after = last_id
        plans.append((symbol, segments, report))

    total = sum(b - a for _, segs, _ in plans for a, b, _ in segs)
    done = 0
    if progress is not None:
        progress(0, total)

    for symbol, segments, report in plans:
        limit = _page_limit(ex, markets[symbol], "fetchTrades", page_limit)
        prev_id: int | None = None
        for a, b, after_id in segments:
            cursor = a
            base = done
            seen_at_cursor: set[str] = {after_id} if after_id is not None else set()
            from_id: int | None = None
            if after_id is not None:
                prev_id = _numeric(after_id)
            if id_paging is None:
                mode = "time"
            elif prev_id is not None and after_id is not None:
                mode, from_id = "id", prev_id + 1
            else:
                mode = "window"
            while cursor < b:
                if mode == "id":
                    assert id_paging is not None and from_id is not None
                    trades = _call(ex, policy, counters, f"fetch_trades {symbol}", ex.fetch_trades, symbol,
                                   None, limit, {**extra, id_paging[0]: from_id})
                else:
                    trades = _call(ex, policy, counters, f"fetch_trades {symbol}", ex.fetch_trades, symbol,
                                   cursor, limit, dict(extra))
                report.pages += 1
                got = len(trades or [])
                timed = [t for t in trades or [] if isinstance(t.get("timestamp"), (int, np.integer))]
                if len(timed) < got:
                    _reject(report, [t for t in trades if t not in timed], "unparsable time")
                trades = sorted(timed, key=lambda t: (t["timestamp"], _numeric(t.get("id")) or 0))
                fresh = [t for t in trades if t["timestamp"] >= cursor and not (
                    t["timestamp"] == cursor and str(t.get("id")) in seen_at_cursor)]
                if not fresh:
                    if mode == "window" and got == 0:
                        # a `since` request covers one window (Binance: 1 h): step over an empty window
                        assert id_paging is not None
                        cursor = min(b, cursor + id_paging[1])
                        done = base + (cursor - a)
                        if progress is not None:
                            progress(done, total)
                        continue
                    break
                page = [t for t in fresh if t["timestamp"] < b]
                if page:
                    frame = _trade_frame(page, ex.id, symbol, report)
                    if len(frame):
                        store.upsert("ticks", frame)
                        report.trades_written += len(frame)
                        for n in map(_numeric, frame["trade_id"]):
                            if n is None:
                                continue
                            if prev_id is not None and n > prev_id + 1:
                                report.id_gaps += n - prev_id - 1
                            prev_id = n if prev_id is None else max(prev_id, n)
                last_ms = int(fresh[-1]["timestamp"])
                new_cursor = min(b, max(cursor, last_ms))
                done = base + (new_cursor - a)
                if progress is not None:
                    progress(done, total)
                if last_ms >= b:
                    break
                if mode in ("id", "window") and prev_id is not None:
                    if mode == "id" and got < limit:
                        break  # fewer than a page from this id: nothing newer exists yet
                    mode, from_id = "id", prev_id + 1
                else:
                    if got < limit:
                        break  # the exchange returned everything it has from `cursor`
                    if new_cursor == cursor:
                        log.warning("%s %s: more than %d trades at %s; paging past that millisecond", ex.id,
                                    symbol, limit, _ts(cursor))
                        new_cursor = cursor + 1
                    seen_at_cursor = {str(t.get("id")) for t in fresh if t["timestamp"] == new_cursor}
                cursor = new_cursor
            done = base + (b - a)
            if progress is not None:
                progress(done, total)
        rng = store.tick_span(exchange=ex.id, symbol=symbol, start=_ts(start), end=_ts(max(start, end)))
        if rng.ticks:
            report.first, report.last, report.stored = rng.first, rng.last, rng.ticks
        if report.rejected:
            log.warning("%s %s: %d invalid trades quarantined (%s)", ex.id, symbol, report.rejected,
                        "; ".join(report.rejected_examples))
    return TradesReport([p[2] for p in plans], counters.requests, counters.retries, _ts(now_ms),
                        time.perf_counter() - t_start)
