"""One report type for every history ingest: :class:`IngestReport`, made of one :class:`SeriesReport` per series.

ccxt bars and trades (:mod:`btlab.marketdata.sources.ccxt.history`) and CryptoCompare bars
(:mod:`btlab.marketdata.sources.cryptocompare.history`) all return an :class:`IngestReport`; the resumable
skeleton (:mod:`btlab.marketdata.sources.resumable`) fills it. File imports report per file instead
(:class:`~btlab.marketdata.sources.files.importer.ImportReport`,
:class:`~btlab.marketdata.sources.binance_vision.importer.VisionImportReport`): what they count (quarantined lines,
staged rows) is about a file, not about a series fetched page by page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from btlab.marketdata.quality.gaps import GAP_COLUMNS, find_gaps

__all__ = ["IngestReport", "SeriesReport", "empty_gaps"]


def empty_gaps() -> pd.DataFrame:
    """A gap frame without rows (:data:`~btlab.marketdata.quality.gaps.GAP_COLUMNS`)."""
    return find_gaps(pd.DatetimeIndex([], tz="UTC"), "1m")[list(GAP_COLUMNS)]


@dataclass
class SeriesReport:
    """One series of an ingest run: bars of one timeframe, or the trades (``timeframe`` None) of one symbol.

    Attributes:
        exchange, symbol: the series in the store (ccxt id or ``cryptocompare[:<e>]``; unified ``BASE/QUOTE``).
        timeframe: ccxt timeframe of the bars; None for trades (ticks).
        start, end: the range considered, ``start <= ts < end`` (UTC): bar open times (``end`` at most the open time
            of the source's current, unfinished bar) or trade times. None when the request held no closed bar.
        resumed_from: bars: the open time the run continued from after already stored bars (None: from ``start``).
        resumed_after: trades: the id of the stored trade the run continued after (None: from ``start``).
        expected: bar slots the run set out to fetch (bars; the progress total of this series).
        written: bars or trades received and written by this run (re-written ones included, which changes nothing).
        rejected: rows received but not stored because they were invalid (non-finite, non-positive price, ...).
        rejected_examples: up to 5 reasons, for the log (trades).
        pages: fetch calls that returned.
        requests: requests made for this series, retries included (None when only the run's total is known).
        padding: rows the source sends for times before its history starts, dropped (CryptoCompare).
        converted: written bars the source derived through a currency conversion (CryptoCompare).
        id_gaps: trades: missing ids in the sequence this run received (numeric ids, from the resumed trade).
        stored, first, last: rows now stored in ``[start, end)`` and the first/last time (None if none).
        gaps: bars: missing bars between ``first`` and ``last`` (:func:`~btlab.marketdata.quality.gaps.find_gaps`).
    """

    exchange: str
    symbol: str
    timeframe: str | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    resumed_from: pd.Timestamp | None = None
    resumed_after: str | None = None
    expected: int = 0
    written: int = 0
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    pages: int = 0
    requests: int | None = None
    padding: int = 0
    converted: int = 0
    id_gaps: int = 0
    stored: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    gaps: pd.DataFrame = field(default_factory=empty_gaps, repr=False, compare=False)

    @property
    def kind(self) -> str:
        """``bars`` or ``trades``."""
        return "trades" if self.timeframe is None else "bars"

    @property
    def missing(self) -> int:
        """Missing bars between the first and last stored bar (0 for trades: see ``id_gaps``)."""
        return int(self.gaps["missing_bars"].sum()) if len(self.gaps) else 0

    def reject(self, reason: str, count: int = 1) -> None:
        """Count ``count`` rejected rows, keeping the first 5 reasons."""
        self.rejected += count
        if len(self.rejected_examples) < 5:
            self.rejected_examples.append(reason)

    def __str__(self) -> str:
        span = f"{self.first} .. {self.last}" if self.first is not None else "nothing stored"
        pages = f" in {self.pages} pages" if self.pages else ""
        requests = f", {self.requests} requests" if self.requests is not None else ""
        if self.timeframe is None:
            return (f"{self.exchange} {self.symbol} trades: {self.written} written{pages}, {self.stored} stored "
                    f"({span}), {self.id_gaps} missing ids, {self.rejected} rejected{requests}")
        return (f"{self.exchange} {self.symbol} {self.timeframe}: {self.written} bars written{pages}, "
                f"{self.stored} stored ({span}), {self.missing} missing in {len(self.gaps)} gaps"
                + (f", {self.rejected} rejected" if self.rejected else "")
                + (f", {self.padding} padding rows dropped" if self.padding else "")
                + (f", {self.converted} converted" if self.converted else "") + requests)


@dataclass
class IngestReport:
    """What one ingest run did: the sequence of its :class:`SeriesReport` (iterate it, index it) and the totals.

    Attributes:
        series: one :class:`SeriesReport` per series, in the order given.
        requests: requests made (retries included; ccxt: markets and server time included).
        retries: requests that failed transiently and were retried.
        server_time: the time that decided which bars are final (UTC).
        elapsed: wall-clock seconds.
        clock: what ``server_time`` is, for the summary line (``exchange time``: the exchange's own clock).
    """

    series: list[SeriesReport]
    requests: int
    retries: int
    server_time: pd.Timestamp
    elapsed: float
    clock: str = "exchange time"

    def __iter__(self) -> Iterator[SeriesReport]:
        return iter(self.series)

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index: int) -> SeriesReport:
        return self.series[index]

    @property
    def written(self) -> int:
        """Rows (bars or trades) written by the run."""
        return sum(s.written for s in self.series)

    @property
    def missing(self) -> int:
        """Missing bars over every series."""
        return sum(s.missing for s in self.series)

    def __str__(self) -> str:
        kinds = {s.kind for s in self.series}
        what = kinds.pop() if len(kinds) == 1 else "rows"
        lines = [str(s) for s in self.series]
        lines.append(f"{self.written} {what} in {self.elapsed:.1f} s, {self.requests} requests, "
                     f"{self.retries} retried; {self.clock} {self.server_time}")
        return "\n".join(lines)
