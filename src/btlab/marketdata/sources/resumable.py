"""The resumable-ingest skeleton every history source runs on: plan what is missing, page, write, report.

A history ingest of one or more series is, for every source (ccxt bars and trades, CryptoCompare bars):

1. **plan** -- ask the store what the request still needs (:func:`plan_bars`: the edges of the stored range,
   :meth:`Store.missing_ranges <btlab.store.marketdata.MarketDataStore.missing_ranges>`; :func:`plan_trades`: after
   the last stored trade, :meth:`Store.last_trade <btlab.store.marketdata.MarketDataStore.last_trade>`), as
   :class:`Segment` s of a :class:`SeriesPlan`;
2. **page** -- call the source's ``fetch_page(cursor)`` from the segment's first cursor until it says the segment
   is done (:func:`page_through`); ``fetch_page`` writes its page to the store before it returns, so a run stopped
   at any moment keeps every page it fetched and the next run plans from there;
3. **report** -- read back what is stored in the range and its gaps (:func:`finish_bars`, :func:`finish_trades`)
   into the series' :class:`~btlab.marketdata.sources.report.SeriesReport`.

:func:`run_plans` strings the three together with one progress callback over all series. Cursors and segment
bounds are plain ints in the source's own unit (ccxt: ms, CryptoCompare: s); progress is counted in units the
source chooses (bar slots, or ms of trades), the total known before the first request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from btlab.marketdata.quality.gaps import find_gaps
from btlab.marketdata.sources.report import SeriesReport
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store

__all__ = ["Progress", "Segment", "SeriesPlan", "Step", "Tally", "finish_bars", "finish_trades", "page_through",
           "plan_bars", "plan_trades", "run_plans"]

#: ``progress(done, total)``: units covered so far, units the run set out to cover.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Segment:
    """One stretch of a series to fetch.

    Attributes:
        start, end: the stretch, ``start <= t < end``, in the source's unit (ints).
        size: its progress units (bar slots, ms, ...).
        after: trades: the stored trade id to continue after (None: from ``start``).
        backward: page from ``end`` towards ``start`` (a source that pages by "up to" time).
    """

    start: int
    end: int
    size: int
    after: str | None = None
    backward: bool = False


@dataclass
class SeriesPlan:
    """What one series of a run fetches: its report (filled while paging) and its segments, in order."""

    report: SeriesReport
    segments: list[Segment] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Progress units of all segments."""
        return sum(s.size for s in self.segments)


@dataclass(frozen=True)
class Step:
    """What one ``fetch_page(cursor)`` did.

    Attributes:
        next: the cursor of the next page; None when the segment is done (reached, or the source has no more).
        covered: progress units of the segment covered so far (from its paging start).
    """

    next: int | None
    covered: int


class Tally:
    """Progress over every series of a run: calls ``progress(done, total)`` at the start and after each page."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress
        self._report()

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.done, self.total)

    def update(self, done: int) -> None:
        """Set the units done (never backwards) and report."""
        self.done = max(self.done, done)
        self._report()


def page_through(first: int, fetch_page: Callable[[int], Step], size: int, tally: Tally) -> None:
    """Page one segment: ``fetch_page(first)``, then ``fetch_page(step.next)`` until ``step.next`` is None.

    Progress goes to ``tally`` after every page; at the end the whole segment (``size`` units) counts as covered
    (what the source did not return, it does not have).
    """
    base = tally.done
    cursor: int | None = first
    while cursor is not None:
        step = fetch_page(cursor)
        tally.update(base + min(step.covered, size))
        cursor = step.next
    tally.update(base + size)


def run_plans(plans: Sequence[SeriesPlan],
              pager: Callable[[SeriesPlan, Segment], tuple[int, Callable[[int], Step]]],
              finish: Callable[[SeriesPlan], None], progress: Progress | None = None) -> None:
    """Page every segment of every plan, then ``finish`` each plan (in order).

    Args:
        plans: the series, planned (see :func:`plan_bars`, :func:`plan_trades`).
        pager: ``pager(plan, segment)`` -> ``(first cursor, fetch_page)`` for one segment.
        finish: fills a plan's report once its segments are paged (e.g. :func:`finish_bars`).
        progress: ``progress(done, total)`` over all plans (units of :attr:`Segment.size`).
    """
    tally = Tally(sum(p.size for p in plans), progress)
    for plan in plans:
        for segment in plan.segments:
            first, fetch_page = pager(plan, segment)
            page_through(first, fetch_page, segment.size, tally)
        finish(plan)


def plan_bars(store: Store, report: SeriesReport, timeframe: Timeframe, *, resume: bool = True
              ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The bar open-time ranges ``[from, to)`` of ``report``'s series still to fetch in ``[report.start,
    report.end)``: the edges of the stored range (:meth:`~btlab.store.marketdata.MarketDataStore.missing_ranges`),
    or the whole request with ``resume=False``. Sets ``report.resumed_from`` when a range continues after stored
    bars."""
    start, end = report.start, report.end
    if start is None or end is None or end <= start:
        return []
    if not resume:
        return [(start, end)]
    ranges = store.missing_ranges(exchange=report.exchange, symbol=report.symbol, timeframe=timeframe,
                                  start=start, end=end)
    report.resumed_from = next((a for a, _ in ranges if a > start), None)
    return ranges


def plan_trades(store: Store, report: SeriesReport, *, resume: bool = True
                ) -> list[tuple[pd.Timestamp, pd.Timestamp, str | None]]:
    """The trade-time ranges ``[from, to)`` of ``report``'s instrument still to fetch in ``[report.start,
    report.end)``, each with the stored trade id to continue after: before the first stored trade, and from the
    time of the last one (more trades may share it) after its id. Sets ``report.resumed_after``."""
    start, end = report.start, report.end
    if start is None or end is None or end <= start:
        return []
    last = store.last_trade(exchange=report.exchange, symbol=report.symbol, start=start, end=end) if resume else None
    if last is None:
        return [(start, end, None)]
    report.resumed_after = last.trade_id
    head = [(start, last.first, None)] if last.first > start else []
    return [*head, (last.last, end, last.trade_id)]


def finish_bars(store: Store, report: SeriesReport) -> None:
    """Fill ``report``'s stored count, first/last open time and gaps from the bars stored in its range."""
    if report.start is None or report.end is None:
        return
    assert report.timeframe is not None
    stamps = store.bar_times(exchange=report.exchange, symbol=report.symbol, timeframe=report.timeframe,
                             start=report.start, end=report.end)
    report.stored = len(stamps)
    if report.stored:
        report.first, report.last = stamps[0], stamps[-1]
        report.gaps = find_gaps(stamps, report.timeframe)


def finish_trades(store: Store, report: SeriesReport) -> None:
    """Fill ``report``'s stored count and first/last trade time from the ticks stored in its range."""
    if report.start is None or report.end is None:
        return
    span = store.tick_span(exchange=report.exchange, symbol=report.symbol, start=report.start, end=report.end)
    if span.ticks:
        report.stored, report.first, report.last = span.ticks, span.first, span.last
