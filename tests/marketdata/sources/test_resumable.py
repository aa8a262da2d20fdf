"""The resumable-ingest skeleton on its own: a source that serves real BTC/USDT 1h bars page by page (a plain
function over the recorded klines, as a venue's REST endpoint would) into a real DuckDB store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from btlab.marketdata.sources.report import IngestReport, SeriesReport
from btlab.marketdata.sources.resumable import (
    Segment,
    SeriesPlan,
    Step,
    finish_bars,
    plan_bars,
    run_plans,
)
from btlab.model.timeframe import Timeframe
from btlab.store.duckdb import DuckDBStore

TF = Timeframe.parse("1h")
HOUR = 3_600_000_000_000  # ns
PAGE = 100


class Killed(Exception):
    """The process "dies" after a number of pages."""


def ingest(store: DuckDBStore, bars: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, *,
           die_after: int | None = None) -> tuple[SeriesReport, list[int]]:
    """Ingest ``[start, end)`` of ``bars`` through the skeleton; returns the report and every cursor requested."""
    report = SeriesReport("vault", "BTC/USDT", "1h", start, end)
    ranges = plan_bars(store, report, TF)
    plan = SeriesPlan(report, [Segment(a.value, b.value, (b.value - a.value) // HOUR) for a, b in ranges])
    opens = bars["ts"].astype("int64").to_numpy()
    asked: list[int] = []

    def pager(plan: SeriesPlan, segment: Segment) -> tuple[int, Callable[[int], Step]]:
        def fetch_page(cursor: int) -> Step:
            if die_after is not None and len(asked) >= die_after:
                raise Killed
            asked.append(cursor)
            page = bars[(opens >= cursor) & (opens < segment.end)].iloc[:PAGE]
            if page.empty:
                return Step(None, 0)
            store.write_bars(page, exchange="vault", symbol="BTC/USDT", timeframe=TF, source="test")
            report.written += len(page)
            report.pages += 1
            nxt = page["ts"].iloc[-1].value + HOUR
            return Step(nxt if nxt < segment.end else None, (nxt - segment.start) // HOUR)

        return segment.start, fetch_page

    progress: list[tuple[int, int]] = []
    run_plans([plan], pager, lambda p: finish_bars(store, p.report), lambda d, t: progress.append((d, t)))
    assert progress[0][0] == 0 and progress[-1][0] == progress[-1][1] == plan.size
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    return report, asked


def test_a_killed_ingest_resumes_where_it_stopped(tmp_path: Path, btc_1h: pd.DataFrame) -> None:
    bars = btc_1h.iloc[36000:38000].reset_index(drop=True)  # no hole in the recorded klines here
    start, end = bars["ts"].iloc[0], bars["ts"].iloc[-1] + pd.Timedelta(1, "h")
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(Killed):
            ingest(store, bars, start, end, die_after=7)
        assert store.bar_span(exchange="vault", symbol="BTC/USDT", timeframe="1h").bars == 7 * PAGE
        report, asked = ingest(store, bars, start, end)
        assert asked[0] == bars["ts"].iloc[7 * PAGE].value  # no page fetched twice
        assert report.resumed_from == bars["ts"].iloc[7 * PAGE]
        assert (report.written, report.pages, report.stored, report.missing) == (1300, 13, 2000, 0)
        stored = store.read_bars(exchange="vault", symbol="BTC/USDT", timeframe="1h")
        pd.testing.assert_series_equal(stored["close"], bars["close"], check_names=False)
        again, asked = ingest(store, bars, start, end)
        assert asked == [] and again.written == 0 and again.stored == 2000


def test_the_report_counts_the_gaps_the_source_has(tmp_path: Path, btc_1h: pd.DataFrame) -> None:
    bars = btc_1h.iloc[36000:36600].drop(index=range(36250, 36260)).reset_index(drop=True)  # the venue lacks 10 h
    start, end = bars["ts"].iloc[0], bars["ts"].iloc[-1] + pd.Timedelta(1, "h")
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        report, _ = ingest(store, bars, start, end)
    assert (report.stored, report.missing, len(report.gaps)) == (590, 10, 1)
    run = IngestReport([report], requests=report.pages, retries=0, server_time=end, elapsed=0.0)
    assert list(run) == [report] and run.written == 590 and run.missing == 10
    assert "10 missing in 1 gaps" in str(run) and str(run).endswith(f"exchange time {end}")
