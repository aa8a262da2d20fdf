"""Import rate into each store, rows/s: the 58k-bar 1h file and the 130k-row 1m files (read + validate + write)."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from btlab.marketdata.sources.files.importer import import_bars
from btlab.store import open_store

from common import DATA, timeit

FILES = [
    ("BTC/USDT", "1h", DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"),
    ("BTC/USDT", "1m", DATA / "BTC_USDT-1m_2025-05-20_2025-08-18.feather"),
    ("ETH/USDT", "1m", DATA / "ETH_USDT-1m_2025-05-20_2025-08-18.feather"),
]


def _stores(tmp: Path) -> list[tuple[str, str | None]]:
    stores: list[tuple[str, str | None]] = [("DuckDB (file)", str(tmp / "import.duckdb"))]
    questdb = os.environ.get("BTLAB_TEST_QUESTDB")
    stores.append(("QuestDB", questdb))
    return stores


def run(repeat: int = 3) -> list[str]:
    lines = ["| store | file | rows | first import | re-import (no change) | rows/s (first) |", "|---|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for store_name, address in _stores(Path(tmp)):
            if address is None:
                lines.append(f"| {store_name} | — | — | not measured: no QuestDB on this machine (set BTLAB_TEST_QUESTDB) | — | — |")
                continue
            for symbol, tf, path in FILES:
                if not path.exists():
                    lines.append(f"| {store_name} | {path.name} | — | skipped: file not present | — | — |")
                    continue
                firsts, agains = [], []
                rows = 0
                for _ in range(repeat):
                    exchange = f"bench{uuid.uuid4().hex[:8]}"  # a fresh series each round (a 24/7 venue of its own)
                    with open_store(address) as store:
                        def once() -> object:
                            return import_bars(path, store, exchange=exchange, symbol=symbol, timeframe=tf,
                                               calendar="24/7")

                        best, _ = timeit(once, 1)
                        again, _ = timeit(once, 1)
                        rows = int(store.query("SELECT count(*) AS n FROM ohlcv WHERE exchange = ?", [exchange])["n"].iloc[0])
                    firsts.append(best)
                    agains.append(again)
                lines.append(f"| {store_name} | {path.name} | {rows:,} | {min(firsts):.2f} s | {min(agains):.2f} s | "
                             f"{rows / min(firsts):,.0f} |")
    lines += ["", f"Best of {repeat}, each into a fresh series; the re-import writes the same rows again (idempotent upsert)."]
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
