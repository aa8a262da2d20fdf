"""History ingest through ccxt REST: OHLCV bars into ``ohlcv`` and trades into ``ticks``, resumable and idempotent.

:func:`ingest_ohlcv` and :func:`ingest_trades` page through ``fetch_ohlcv`` / ``fetch_trades`` of a ccxt client
(build one with :func:`btlab.marketdata.sources.ccxt.exchange.make_exchange`) on the resumable skeleton
(:mod:`btlab.marketdata.sources.resumable`), write every page to the store as soon as it arrives, and can be stopped (or killed) at any moment: the next run resumes after the last stored bar or trade,
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
Every request is retried on transient failures with backoff (:mod:`btlab.marketdata.sources.ccxt.retry`); after
the last retry :class:`~btlab.marketdata.sources.ccxt.exchange.ExchangeUnavailableError` is raised and the pages
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


from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

import ccxt

from btlab.errors import InvalidArgumentError
from btlab.marketdata.sources.ccxt.exchange import (
    ExchangeRequestError,
    check_symbol,
    check_timeframe,
    make_exchange,
)
from btlab.marketdata.sources.ccxt.retry import Counters, RetryPolicy, call
from btlab.marketdata.sources.ccxt.schemas import MS, Trade, ohlcv_to_bars, trade_problem, trades_to_ticks
from btlab.marketdata.sources.report import IngestReport, SeriesReport
from btlab.marketdata.sources.resumable import (
    Segment,
    SeriesPlan,
    Step,
    finish_bars,
    finish_trades,
    plan_bars,
    plan_trades,
    run_plans,
)
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store

__all__ = ["RetryPolicy", "ingest_ohlcv", "ingest_trades"]

log = logging.getLogger(__name__)

#: Default page size when the exchange does not state one (ccxt ``features``).
FALLBACK_PAGE_LIMIT = 1000
#: Exchanges that page trades by id: ccxt id -> (request parameter, time window of a ``since`` request in ms).
ID_PAGED_TRADES: dict[str, tuple[str, int]] = {"binance": ("fromId", 3_600_000)}

TimeArg = datetime | pd.Timestamp | str | int
Progress = Callable[[int, int], None]


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


def _session(exchange: Any, retry: RetryPolicy | None, max_retries: int) -> tuple[Any, RetryPolicy, Counters]:
    """The ccxt client, the retry policy and fresh request counters of one ingest run."""
    return _client(exchange), retry or RetryPolicy(max_retries=max_retries), Counters()


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


def _prepare(exchange: Any, symbols: list[str], policy: RetryPolicy, counters: Counters) -> dict[str, dict]:
    if not exchange.markets:
        call(exchange, policy, counters, "load_markets", exchange.load_markets)
    return {s: check_symbol(exchange, s) for s in symbols}


def _server_now(exchange: Any, now: TimeArg | None, policy: RetryPolicy, counters: Counters) -> int:
    if now is not None:
        return _to_ms(now, "now")
    if exchange.has.get("fetchTime"):
        value = call(exchange, policy, counters, "fetch_time", exchange.fetch_time)
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



@dataclass
class _Run:
    """One ingest run against one exchange: the client, its retry policy and counters, the exchange's time."""

    ex: Any
    policy: RetryPolicy
    counters: Counters
    markets: dict[str, dict]
    now_ms: int
    started: float

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return call(self.ex, self.policy, self.counters, what, fn, *args, **kwargs)

    def report(self, plans: Sequence[SeriesPlan]) -> IngestReport:
        return IngestReport([p.report for p in plans], self.counters.requests, self.counters.retries,
                            _ts(self.now_ms), time.perf_counter() - self.started)


def _open_run(exchange: Any, names: list[str], retry: RetryPolicy | None, max_retries: int,
              now: TimeArg | None, check: Callable[[Any], None] = lambda ex: None) -> _Run:
    """Client and policy, ``check(client)`` (before any request), markets loaded and symbols checked, then the
    exchange's time."""
    started = time.perf_counter()
    ex, policy, counters = _session(exchange, retry, max_retries)
    check(ex)
    markets = _prepare(ex, names, policy, counters)
    return _Run(ex, policy, counters, markets, _server_now(ex, now, policy, counters), started)


# ---------------------------------------------------------------------------------------------------------------
# OHLCV
# ---------------------------------------------------------------------------------------------------------------
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
        An :class:`~btlab.marketdata.sources.report.IngestReport` (bars written, requests, retries, and per series
        the stored range and its gaps).

    Raises:
        UnknownExchangeError: ``exchange`` is an unknown id.
        UnknownSymbolError: a symbol is not a market of the exchange (checked before anything is fetched).
        UnsupportedTimeframeError: the exchange does not offer ``timeframe``.
        InvalidArgumentError: bad ``timeframe``, time bound, ``page_limit`` or ``since >= until``.
        ExchangeUnavailableError: a request kept failing transiently after all retries (earlier pages are stored).
        ExchangeRequestError: the exchange rejected a request, or ccxt could not parse its answer (not retried).
        DataValidationError: never for a bad bar from the exchange (those are counted as ``rejected``).
    """
    names = _as_list(symbols)
    tf = Timeframe.parse(timeframe)
    start, until_ms = _span(since, until, tf)
    run = _open_run(exchange, names, retry, max_retries, now, lambda ex: check_timeframe(ex, tf.value))
    open_bar = _align_down(run.now_ms, tf)  # open time of the bar containing now: not final
    end = open_bar if until_ms is None else min(until_ms, open_bar)
    step = tf.seconds * 1000
    plans = []
    for symbol in names:
        report = SeriesReport(run.ex.id, symbol, tf.value, _ts(start), _ts(max(start, end)))
        ranges = [(_ms_of(a), _ms_of(b)) for a, b in plan_bars(store, report, tf, resume=resume)]
        plan = SeriesPlan(report, [Segment(a, b, _slots(a, b, step)) for a, b in ranges])
        report.expected = plan.size
        plans.append(plan)

    def pager(plan: SeriesPlan, segment: Segment) -> tuple[int, Callable[[int], Step]]:
        limit = _page_limit(run.ex, run.markets[plan.report.symbol], "fetchOHLCV", page_limit)
        return segment.start, _ohlcv_pages(run, store, plan.report, tf, segment, limit, source or f"ccxt:{run.ex.id}")

    run_plans(plans, pager, lambda plan: _finish(store, plan.report, finish_bars, "bars from the exchange were not"
                                                 " stored"), progress)
    return run.report(plans)


def _ohlcv_pages(run: _Run, store: Store, report: SeriesReport, tf: Timeframe, segment: Segment, limit: int,
                 source: str) -> Callable[[int], Step]:
    """``fetch_page(cursor)`` of one segment of bars: ``fetch_ohlcv(since=cursor)``, write the final bars of the
    segment, go on after the last bar received (stop when the exchange has nothing newer)."""
    a, b, step = segment.start, segment.end, tf.seconds * 1000

    def fetch_page(cursor: int) -> Step:
        rows = run.call(f"fetch_ohlcv {report.symbol} {tf.value}", run.ex.fetch_ohlcv, report.symbol, tf.value,
                        since=cursor, limit=limit)
        report.pages += 1
        timed = [r for r in rows or [] if r and isinstance(r[0], (int, np.integer))]
        report.rejected += len(rows or []) - len(timed)  # no parsable open time
        rows = sorted((r for r in timed if r[0] >= cursor), key=lambda r: r[0])
        if not rows:
            return Step(None, 0)
        page = [r for r in rows if r[0] < b]
        if page:
            frame, bad = ohlcv_to_bars(page, tf)
            report.rejected += bad
            if len(frame):
                store.write_bars(frame, exchange=run.ex.id, symbol=report.symbol, timeframe=tf, source=source)
                report.written += len(frame)
        last = int(rows[-1][0])
        done = last + step >= b or last + step <= cursor
        return Step(None if done else last + step, _slots(a, min(b, last + step), step))

    return fetch_page


def _finish(store: Store, report: SeriesReport, finish: Callable[[Store, SeriesReport], None], what: str) -> None:
    finish(store, report)
    if report.rejected:
        examples = f" ({'; '.join(report.rejected_examples)})" if report.rejected_examples else ""
        log.warning("%s %s%s: %d invalid %s%s", report.exchange, report.symbol,
                    f" {report.timeframe}" if report.timeframe else "", report.rejected, what, examples)


# ---------------------------------------------------------------------------------------------------------------
# trades
# ---------------------------------------------------------------------------------------------------------------
def _trade_frame(trades: list[Trade], exchange_id: str, symbol: str, report: SeriesReport) -> pd.DataFrame:
    """ccxt trades -> ``ticks`` rows (valid ones, unique by id); invalid ones are counted in ``report``."""
    good = []
    for t in trades:
        reason = trade_problem(t)
        if reason is None:
            good.append(t)
        else:
            report.reject(f"trade {t.get('id')!r}: {reason}")
    frame = trades_to_ticks(good, exchange_id, symbol)
    if not len(frame):
        return frame
    frame["ts"] = pd.to_datetime(frame["ts"].to_numpy(dtype=np.int64) * MS, utc=True).astype("datetime64[ns, UTC]")
    for col in ("price", "amount"):
        frame[col] = frame[col].astype(np.float64)
    frame["side"] = [s if s in ("buy", "sell") else None for s in frame["side"]]
    return frame.drop_duplicates("trade_id", keep="last").reset_index(drop=True)


def _numeric(tid: str | None) -> int | None:
    try:
        return int(tid)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


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
) -> IngestReport:
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
        An :class:`~btlab.marketdata.sources.report.IngestReport` (its series have ``timeframe`` None).

    Raises:
        as :func:`ingest_ohlcv` (but no timeframe check); an exchange without ``fetchTrades`` raises
        :class:`~btlab.marketdata.sources.ccxt.exchange.ExchangeRequestError`.
    """
    names = _as_list(symbols)
    start, until_ms = _span(since, until, None)

    def has_trades(ex: Any) -> None:
        if not ex.has.get("fetchTrades"):
            raise ExchangeRequestError(ex.id, "fetch_trades is not supported by this exchange in ccxt")

    run = _open_run(exchange, names, retry, max_retries, now, has_trades)
    end = run.now_ms if until_ms is None else min(until_ms, run.now_ms)
    plans = []
    for symbol in names:
        report = SeriesReport(run.ex.id, symbol, None, _ts(start), _ts(max(start, end)))
        ranges = [(_ms_of(a), _ms_of(b), after) for a, b, after in plan_trades(store, report, resume=resume)]
        plans.append(SeriesPlan(report, [Segment(a, b, b - a, after) for a, b, after in ranges if a < b]))
    pagers: dict[str, _TradePages] = {}

    def pager(plan: SeriesPlan, segment: Segment) -> tuple[int, Callable[[int], Step]]:
        symbol = plan.report.symbol
        if symbol not in pagers:  # one per symbol: the last id seen carries over from segment to segment
            limit = _page_limit(run.ex, run.markets[symbol], "fetchTrades", page_limit)
            pagers[symbol] = _TradePages(run, store, plan.report, limit, dict(params or {}))
        return segment.start, pagers[symbol].segment(segment)

    run_plans(plans, pager, lambda plan: _finish(store, plan.report, finish_trades, "trades quarantined"),
              progress)
    return run.report(plans)


class _TradePages:
    """``fetch_page(cursor)`` for the trades of one symbol, in one of three paging modes (see the module docs):

    ``time`` (``since`` = cursor; overlapping trades dropped by id), ``window`` (exchanges paging by id, until the
    first trade is found: a ``since`` request covers one window, empty windows are stepped over) and ``id``
    (``fromId`` = the last id + 1).
    """

    def __init__(self, run: _Run, store: Store, report: SeriesReport, limit: int, extra: dict[str, Any]) -> None:
        self.run, self.store, self.report, self.limit, self.extra = run, store, report, limit, extra
        self.id_paging = ID_PAGED_TRADES.get(run.ex.id)
        self.prev_id: int | None = None  # the largest numeric id received (or resumed after)

    def segment(self, segment: Segment) -> Callable[[int], Step]:
        """Start paging ``segment``; returns the ``fetch_page`` for it."""
        self.a, self.b = segment.start, segment.end
        self.seen_at_cursor: set[str] = {segment.after} if segment.after is not None else set()
        self.from_id: int | None = None
        if segment.after is not None:
            self.prev_id = _numeric(segment.after)
        if self.id_paging is None:
            self.mode = "time"
        elif self.prev_id is not None and segment.after is not None:
            self.mode, self.from_id = "id", self.prev_id + 1
        else:
            self.mode = "window"
        return self.fetch_page

    def _fetch(self, cursor: int) -> list[Trade]:
        run, symbol = self.run, self.report.symbol
        if self.mode == "id":
            assert self.id_paging is not None and self.from_id is not None
            return run.call(f"fetch_trades {symbol}", run.ex.fetch_trades, symbol, None, self.limit,
                            {**self.extra, self.id_paging[0]: self.from_id})
        return run.call(f"fetch_trades {symbol}", run.ex.fetch_trades, symbol, cursor, self.limit, dict(self.extra))

    def _write(self, page: list[Trade]) -> None:
        """Store the valid trades of ``page`` and count the ids missing before them."""
        frame = _trade_frame(page, self.run.ex.id, self.report.symbol, self.report)
        if not len(frame):
            return
        self.store.upsert("ticks", frame)
        self.report.written += len(frame)
        for n in map(_numeric, frame["trade_id"]):
            if n is None:
                continue
            if self.prev_id is not None and n > self.prev_id + 1:
                self.report.id_gaps += n - self.prev_id - 1
            self.prev_id = n if self.prev_id is None else max(self.prev_id, n)

    def fetch_page(self, cursor: int) -> Step:
        """One page from ``cursor`` (ms): fetch, quarantine, write; where the next page starts."""
        a, b, report = self.a, self.b, self.report
        trades = self._fetch(cursor) or []
        report.pages += 1
        got = len(trades)
        timed = [t for t in trades if isinstance(t.get("timestamp"), (int, np.integer))]
        for t in trades:
            if t not in timed:
                report.reject(f"trade {t.get('id')!r}: unparsable time {t.get('timestamp')!r}")
        trades = sorted(timed, key=lambda t: (t["timestamp"], _numeric(t.get("id")) or 0))
        fresh = [t for t in trades if t["timestamp"] >= cursor and not (
            t["timestamp"] == cursor and str(t.get("id")) in self.seen_at_cursor)]
        if not fresh:
            if self.mode == "window" and got == 0:
                # a `since` request covers one window (Binance: 1 h): step over an empty window
                assert self.id_paging is not None
                nxt = min(b, cursor + self.id_paging[1])
                return Step(nxt if nxt < b else None, nxt - a)
            return Step(None, 0)
        page = [t for t in fresh if t["timestamp"] < b]
        if page:
            self._write(page)
        last_ms = int(fresh[-1]["timestamp"])
        new_cursor = min(b, max(cursor, last_ms))
        covered = new_cursor - a
        if last_ms >= b:
            return Step(None, covered)
        if self.mode in ("id", "window") and self.prev_id is not None:
            if self.mode == "id" and got < self.limit:
                return Step(None, covered)  # fewer than a page from this id: nothing newer exists yet
            self.mode, self.from_id = "id", self.prev_id + 1
        else:
            if got < self.limit:
                return Step(None, covered)  # the exchange returned everything it has from `cursor`
            if new_cursor == cursor:
                log.warning("%s %s: more than %d trades at %s; paging past that millisecond", self.run.ex.id,
                            report.symbol, self.limit, _ts(cursor))
                new_cursor = cursor + 1
            self.seen_at_cursor = {str(t.get("id")) for t in fresh if t["timestamp"] == new_cursor}
        return Step(new_cursor if new_cursor < b else None, covered)
