"""CryptoCompare history into the store: resumable and idempotent, on :mod:`btlab.marketdata.sources.resumable`.

The client is :mod:`btlab.marketdata.sources.cryptocompare.client`, the row -> bar mapping
:mod:`btlab.marketdata.sources.cryptocompare.schemas`.

Series identity in the store: exchange ``cryptocompare`` for the CCCAGG index, or ``cryptocompare:<e>`` (``e``
lower-cased, e.g. ``cryptocompare:coinbase``) for one exchange's data as CryptoCompare reports it; symbol the
ccxt-style ``BASE/QUOTE`` (``BTC/USD``); source ``cryptocompare``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError
from btlab.marketdata.sources.cryptocompare.client import ENDPOINTS, MAX_LIMIT, CryptoCompareClient
from btlab.marketdata.sources.cryptocompare.schemas import map_rows
from btlab.marketdata.sources.report import IngestReport, SeriesReport
from btlab.marketdata.sources.resumable import Segment, SeriesPlan, Step, finish_bars, plan_bars, run_plans
from btlab.model.bar import validate_bars
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store
from btlab.store.rows import TimeLike, to_utc

__all__ = ["SOURCE", "ingest_cryptocompare", "series_exchange"]

SOURCE = "cryptocompare"
NS = 1_000_000_000


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


def _ts(sec: int) -> pd.Timestamp:
    return pd.Timestamp(sec * NS, tz="UTC")


def _check(tf: Timeframe, limit: int) -> None:
    if tf.value not in ENDPOINTS:
        raise InvalidArgumentError(
            f"CryptoCompare has no {tf.value} history endpoint: use one of {', '.join(ENDPOINTS)}"
        )
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise InvalidArgumentError(f"limit must be 1..{MAX_LIMIT}, got {limit}")


def _bounds(tf: Timeframe, since: TimeLike, until: TimeLike, now: TimeLike) -> tuple[int, int, pd.Timestamp]:
    """``(lo, hi, now)``: the first wanted and the last wanted CLOSED bar open (epoch s, inclusive)."""
    step, step_ns = tf.seconds, tf.nanos
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
    return lo, hi, now_ts


@dataclass
class _Series:
    """The request of one symbol: what to ask CryptoCompare for and where the bars go."""

    fsym: str
    tsym: str
    e: str | None  # CryptoCompare's exchange name, None = CCCAGG
    hi: int  # last wanted (closed) bar open, epoch s
    report: SeriesReport


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
) -> IngestReport:
    """Fill the store with CryptoCompare bars of ``symbols`` for ``since <= ts < until``; resumable, idempotent.

    Only CLOSED bars are stored: the newest bar requested opens at ``floor(now / tf) * tf - tf`` at the latest, so
    the still-open bar is never asked for (and any row the API sends past it is dropped).

    Paging and resume. The stored series (``exchange``/``symbol``/``timeframe``, see
    :func:`series_exchange`) decides what is fetched:

    * nothing stored: page BACKWARDS from the newest wanted bar with ``toTs``, ``limit + 1`` rows per request
      (the next ``toTs`` is the bar before the oldest row of the page), down to ``since``; a page made only of
      all-zero padding rows means the coin's history has started and ends the paging;
    * bars stored in the request from ``first`` to ``last``: fetch only what is missing BEFORE ``first`` (paged backwards
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
        An :class:`~btlab.marketdata.sources.report.IngestReport`: one series per symbol, in the order given
        (``start``/``end``: the bar open times requested, ``end`` exclusive; ``requests``, ``padding`` and
        ``converted`` per series). It iterates over its series.

    Raises:
        InvalidArgumentError: bad symbol, timeframe, range or limit.
        DataValidationError: a page holds an impossible bar (the message names the request); pages written
            before it stay (they are valid and the next run resumes after them).
        CryptoCompareError (and its rate-limit / unavailable subclasses): the API failed.
    """
    tf = Timeframe.parse(timeframe)
    _check(tf, limit)
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    if not names:
        raise InvalidArgumentError("no symbols given")
    started = time.perf_counter()
    lo, hi, now_ts = _bounds(tf, since, until, now)
    requests = [_request(name, exchange, lo, hi, tf) for name in names]  # every symbol checked first
    plans = [SeriesPlan(r.report, _segments(store, r.report, tf)) for r in requests]
    by_report = {id(r.report): r for r in requests}
    own = client is None
    cc = client if client is not None else CryptoCompareClient()
    try:
        def pager(plan: SeriesPlan, segment: Segment) -> tuple[int, Callable[[int], Step]]:
            return _pages(cc, store, by_report[id(plan.report)], tf, segment, limit)

        run_plans(plans, pager, lambda plan: finish_bars(store, plan.report), progress)
    finally:
        if own:
            cc.close()
    reports = [p.report for p in plans]
    total = sum(r.requests or 0 for r in reports)
    return IngestReport(reports, total, total - sum(r.pages for r in reports), now_ts,
                        time.perf_counter() - started, clock="closed bars as of")


def _request(name: str, exchange: str | None, lo: int, hi: int, tf: Timeframe) -> _Series:
    """One symbol's request, with its (empty) report: the bars opening in ``[lo, hi]`` (None when lo > hi)."""
    fsym, tsym = _split_symbol(name)
    report = SeriesReport(series_exchange(exchange), f"{fsym}/{tsym}", tf.value, _ts(lo) if lo <= hi else None,
                          _ts(hi + tf.seconds) if lo <= hi else None, requests=0)
    return _Series(fsym, tsym, exchange, hi, report)


def _segments(store: Store, report: SeriesReport, tf: Timeframe) -> list[Segment]:
    """What to fetch (see :func:`ingest_cryptocompare`): the range after the stored bars FORWARDS first, then the
    range before them (or the whole request) BACKWARDS; bounds in epoch seconds, sizes in bar slots."""
    ranges = [(a.value // NS, b.value // NS) for a, b in plan_bars(store, report, tf)]
    after = None if report.resumed_from is None else report.resumed_from.value // NS
    segments = [Segment(a, b, (b - a) // tf.seconds, backward=a != after) for a, b in ranges]
    return sorted(segments, key=lambda s: s.backward)  # forward (newer) first, as stable order


def _pages(cc: CryptoCompareClient, store: Store, series: _Series, tf: Timeframe, segment: Segment, limit: int
           ) -> tuple[int, Callable[[int], Step]]:
    """The first cursor (``toTs``) and ``fetch_page`` of one segment.

    Backwards: ``toTs`` from the segment's last bar down, ``limit + 1`` rows a page; a page of padding only means
    the coin's history has started: the segment ends. Forwards: ``toTs = start + limit * tf`` from the first bar.
    """
    step, a, last = tf.seconds, segment.start, segment.end - tf.seconds  # last: the segment's last bar open

    def backward(to: int) -> Step:
        lim = max(1, min(limit, (to - a) // step))
        only_padding = _page(cc, store, series, tf, to, lim, a, to)
        nxt = to - (lim + 1) * step
        if only_padding or nxt < a:  # before the coin's history: nothing older exists
            return Step(None, segment.size)
        return Step(nxt, (last - nxt) // step)

    def forward(start: int) -> Step:
        to = min(start + limit * step, last)
        _page(cc, store, series, tf, to, max(1, (to - start) // step), start, to)
        nxt = to + step
        return Step(nxt if nxt <= last else None, (nxt - a) // step)

    return (last, backward) if segment.backward else (a, forward)


def _page(cc: CryptoCompareClient, store: Store, series: _Series, tf: Timeframe, to_ts: int, lim: int, first: int,
          last: int) -> bool:
    """Fetch ``lim + 1`` rows ending at ``to_ts`` and store the bars opening in ``[first, last]``.

    Returns: True if the page held rows and all of them were padding.
    """
    report = series.report
    before = cc.requests
    rows = cc.histo(series.fsym, series.tsym, tf, to_ts=to_ts, limit=lim, exchange=series.e)
    report.requests = (report.requests or 0) + cc.requests - before
    report.pages += 1
    bars, padding, converted = map_rows(rows)
    report.padding += padding
    secs = bars["ts"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    inside = (secs >= first) & (secs <= last) & (secs <= series.hi)
    chunk = bars[inside].reset_index(drop=True)
    if len(chunk):
        where = (f"CryptoCompare {ENDPOINTS[tf.value]} fsym={series.fsym} tsym={series.tsym}"
                 f"{' e=' + series.e if series.e else ''} toTs={to_ts}")
        validate_bars(chunk, where, tf)  # the error names the request; write_bars validates again (cheap)
        store.write_bars(chunk, exchange=report.exchange, symbol=report.symbol, timeframe=tf, source=SOURCE)
        report.written += len(chunk)
        report.converted += int(converted[inside].sum())
    return bool(rows) and len(bars) == 0
