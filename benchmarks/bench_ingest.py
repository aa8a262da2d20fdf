"""History ingest rate, rows/s end to end: the fake Binance (real recorded klines over HTTP, in its own process)
-> ccxt REST ``fetch_ohlcv`` pages of 1000 -> btlab :func:`ingest_ohlcv` (checks, finality, one upsert per page)
-> the store.

Measured with ccxt's rate limiter on (as against the real exchange; ccxt spaces Binance kline requests by their
weight, 20 ms for one page, so at most ~50,000 bars/s) and off (the pipeline's own cost). Each run ingests the
same 90 days of BTC/USDT 1m bars into an empty series (``resume=False``, a fresh DuckDB file).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

from btlab.marketdata.sources.ccxt.exchange import make_exchange
from btlab.marketdata.sources.ccxt.history import ingest_ohlcv
from btlab.store import open_store

NOW = "2025-08-18 18:27:30"  # inside the last recorded 1m bar
SINCE, UNTIL = "2025-05-20", "2025-08-18 18:00"
FAKE = ROOT / "tests" / "fakes" / "binance.py"


def _measure(base_url: str, address: str, *, rate_limit: bool) -> tuple[int, float, int]:
    ex = make_exchange("binance", origin=base_url, rate_limit=rate_limit)
    ex.load_markets()
    store = open_store(address)
    try:
        t0 = time.perf_counter()
        report = ingest_ohlcv(ex, "BTC/USDT", "1m", store, since=SINCE, until=UNTIL, resume=False)
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
    return report.written, elapsed, report.series[0].pages


def run(repeat: int = 3) -> list[str]:
    lines = [
        "| store | ccxt rate limiter | bars (BTC/USDT 1m) | pages | time (best of runs) | rows/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    fake = subprocess.Popen([sys.executable, str(FAKE), "--now", NOW], stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        base_url = fake.stdout.readline().split()[0]
        with tempfile.TemporaryDirectory() as tmp:
            stores = [("DuckDB (file)", None), ("QuestDB", os.environ.get("BTLAB_TEST_QUESTDB"))]
            for name, address in stores:
                if name == "QuestDB" and not address:
                    lines.append("| QuestDB | — | — | — | not measured: no QuestDB on this machine "
                                 "(set BTLAB_TEST_QUESTDB) | — |")
                    continue
                for rate_limit in (True, False):
                    best: tuple[int, float, int] | None = None
                    for i in range(repeat):
                        target = address or str(Path(tmp) / f"ingest-{rate_limit}-{i}.duckdb")
                        result = _measure(base_url, target, rate_limit=rate_limit)
                        if best is None or result[1] < best[1]:
                            best = result
                    assert best is not None
                    bars, elapsed, pages = best
                    lines.append(f"| {name} | {'on' if rate_limit else 'off'} | {bars:,} | {pages} | "
                                 f"{elapsed:.2f} s | {bars / elapsed:,.0f} |")
    finally:
        fake.terminate()
        fake.wait(10)
    return lines + [
        "",
        f"Best of {repeat} runs. End to end: HTTP to the fake exchange in a separate process (recorded Binance klines, "
        "Binance paging), ccxt parsing, btlab's checks and one upsert per 1000-bar page. ccxt's limiter waits only "
        "when a page takes less than its 20 ms weight interval, so on and off are close here; against the real "
        "exchange the network round trip dominates. Goal (issue 3): measured, none set.",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
