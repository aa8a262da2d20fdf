"""``btlab data coverage`` at 80 columns: bar and tick tables with full headers, trade-id gaps listed readably."""

from __future__ import annotations

from pathlib import Path

import pytest

from realdata import BTC_1H, DATA
from cliproc import btlab_cli

AGG = DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
REMOVED = [*range(13_519_900, 13_519_905), 13_520_500, *range(13_521_000, 13_521_010)]  # 3 gaps, 16 ids


@pytest.fixture(scope="module")
def coverage_store(tmp_path_factory) -> Path:
    """Real bars and real aggregate trades, with 16 trade ids cut out of the trades file (3 gaps)."""
    tmp = tmp_path_factory.mktemp("coverage")
    lines = AGG.read_text().splitlines(keepends=True)
    kept = [line for line in lines if int(line.split(",", 1)[0]) not in REMOVED]
    assert len(lines) - len(kept) == len(REMOVED)
    trades = tmp / "XRPETH-aggTrades-2019-10-11.csv"
    trades.write_text("".join(kept))
    store = tmp / "coverage.duckdb"
    for args in (["data", "import", str(BTC_1H), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h"],
                 ["ingest", "binance-vision", str(trades)]):
        proc = btlab_cli(*args, store=store)
        assert proc.returncode == 0, proc.stderr
    return store


def test_coverage_at_80_columns(coverage_store):
    proc = btlab_cli("data", "coverage", "--gaps", "2", store=coverage_store, columns="80")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Empty DataFrame" not in out and "…" not in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80, out
    lines = out.splitlines()
    bar_header = next(line for line in lines if line.startswith("series") and "bars" in line)
    tick_header = next(line for line in lines if line.startswith("series") and "ticks" in line)
    for col in ("first", "last", "bars", "missing", "gaps"):
        assert col in bar_header.split(), col
    for col in ("first", "last", "ticks", "trade", "ids", "missing", "dupl.", "gaps"):
        assert col in tick_header.split(), col
    assert "binance:BTC/USDT 1h 2017-08-17 04:00 2024-04-21 14:00 58,419     128   28" in out
    tick_row = next(line for line in lines if line.startswith("binance:XRP/ETH"))
    assert tick_row.split()[-3:] == ["16", "0", "3"]  # missing ids, duplicates, gaps
    assert f"{12_477 - len(REMOVED):,}" in tick_row
    assert "trade-id gaps in binance:XRP/ETH (first 2 of 3):" in out
    assert "  ids 13,519,900 .. 13,519,904: 5 missing" in out and "  ids 13,520,500 .. 13,520,500: 1 missing" in out
    assert "13,521,000" not in out  # only the first 2 gaps listed


def test_coverage_piped_is_one_line_per_series(coverage_store):
    out = btlab_cli("data", "coverage", store=coverage_store, columns=None).stdout
    tick_row = next(line for line in out.splitlines() if line.startswith("binance:XRP/ETH"))
    assert "2019-10-11 00:00:11 2019-10-13 11:19:28" in tick_row and "13,519,807 .. 13,532,283" in tick_row
    assert "ids 13,521,000 .. 13,521,009: 10 missing" in out
