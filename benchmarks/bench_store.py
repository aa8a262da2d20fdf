"""The store at the speed of its engines (issue 8): ``write_bars`` / ``read_bars`` against each engine's own bulk path
on the same 1,045,664 real 1m bars, as ratios measured side by side in one run.

Bars: the 130,708 real BTC/USDT 1m bars of ``data/`` (gapless) repeated 8 times, each copy shifted right after the
previous one (a valid gapless 1m series of 1,045,664 bars).

DuckDB (a fresh file per round, best of ``repeat`` rounds, contenders alternating):

* ``write_bars`` (validation included) into an empty store, vs a bare ``INSERT OR REPLACE`` of the same rows
  (all 12 columns, ready in a pandas frame) into a table with the same primary key, vs a plain ``INSERT`` into a
  table without a key; also the generic path every backend shares (``Store.write_bars``: validate, ``bar_rows``,
  ``upsert``), which is what DuckDB ran before this issue;
* re-import (every key present, values unchanged): ``write_bars`` again vs the generic path again;
* ``read_bars`` of the whole series vs a bare ``SELECT .. ORDER BY ts`` to pandas.

QuestDB (``BTLAB_TEST_QUESTDB`` set, else "not measured"): ``write_bars`` vs the client's own
``Sender.dataframe`` of the same rows (one connection, the client's default auto-flush) into a table with the same
DDL, both until the rows are visible (WAL applied); ``read_bars`` (``/exp`` + pyarrow) vs QuestDB's own CSV
export of the same query (``/exp``, body read to memory) vs the PG-wire read (``Store.read_bars``, the path before).

Usage: ``python benchmarks/bench_store.py`` (prints the section of RESULTS.md), or via ``benchmarks/run.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import pandas as pd

from btlab.model.bar import validate_bars
from btlab.store.base import Store, conform
from btlab.store.marketdata import bar_rows
from btlab.store.duckdb import DuckDBStore, table_ddl
from btlab.store.schema import TABLES
from common import DATA, timeit

M1_FILE = DATA / "BTC_USDT-1m_2025-05-20_2025-08-18.feather"
COPIES = 8
SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m"}
COLS = ", ".join(TABLES["ohlcv"].column_names)
READ_SQL = ("SELECT ts, open, high, low, close, volume, trades, vwap FROM ohlcv WHERE exchange = ? AND symbol = ? "
            "AND timeframe = ? ORDER BY ts")


def bars_1m(copies: int = COPIES) -> pd.DataFrame:
    """The real 1m bars repeated ``copies`` times, each copy shifted by the span of the bars (gapless)."""
    bars = pd.read_feather(M1_FILE).rename(columns={"date": "ts"})
    span = pd.Timedelta(minutes=len(bars))
    return pd.concat([bars.assign(ts=bars["ts"] + i * span) for i in range(copies)], ignore_index=True)


def _rows(bars: pd.DataFrame) -> pd.DataFrame:
    """The ``ohlcv`` rows of the bars as a bare insert takes them (naive UTC ts)."""
    rows = conform(TABLES["ohlcv"], bar_rows(validate_bars(bars, "bench", "1m"), source="bench", **SERIES))
    rows["ts"] = rows["ts"].dt.tz_localize(None)
    return rows


def _duckdb(bars: pd.DataFrame, tmp: Path, repeat: int) -> dict[str, float]:
    rows = _rows(bars)
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for r in range(repeat):
        for name, generic in (("write_bars", False), ("generic", True)):
            path = tmp / f"{name}{r}.duckdb"
            with DuckDBStore(path) as store:
                write = (lambda s=store: Store.write_bars(s, bars, source="bench", **SERIES)) if generic else \
                    (lambda s=store: s.write_bars(bars, source="bench", **SERIES))
                keep(f"{name} first", timeit(write, 1)[0])
                keep(f"{name} again", timeit(write, 1)[0])
                if not generic:
                    keep("read_bars", timeit(lambda s=store: s.read_bars(**SERIES), 1)[0])
            path.unlink()
        for name, key, verb in (("bare keyed", True, "INSERT OR REPLACE"), ("bare plain", False, "INSERT")):
            path = tmp / f"bare{r}.duckdb"
            con = duckdb.connect(str(path))
            con.execute(table_ddl(TABLES["ohlcv"], primary_key=key))
            con.register("rows", rows)
            sql = f"{verb} INTO ohlcv ({COLS}) SELECT {COLS} FROM rows"
            keep(f"{name} first", timeit(lambda c=con, q=sql: c.execute(q), 1)[0])
            if key:
                keep(f"{name} again", timeit(lambda c=con, q=sql: c.execute(q), 1)[0])
                keep("bare select", timeit(lambda c=con: c.execute(READ_SQL, list(SERIES.values())).df(), 1)[0])
            con.close()
            path.unlink()
    return best


def _questdb(address: str, bars: pd.DataFrame, repeat: int) -> list[str]:
    import questdb

    from btlab.store.questdb import QuestDBStore
    from btlab.store.questdb_sql import export_bars_sql, ilp_frame
    from btlab.store.questdb_sql import table_ddl as questdb_ddl

    n = len(bars)
    best: dict[str, float] = {}
    with QuestDBStore.from_address(address) as store:
        for _ in range(repeat):
            exchange = f"bench{uuid.uuid4().hex[:8]}"
            best["write_bars"] = min(best.get("write_bars", 9e9), timeit(
                lambda: store.write_bars(bars, exchange=exchange, symbol="BTC/USDT", timeframe="1m", source="bench"),
                1)[0])
            table = f"ohlcv_bench_{uuid.uuid4().hex[:8]}"
            store._execute(questdb_ddl(TABLES["ohlcv"], name=table))
            frame, symbols = ilp_frame(TABLES["ohlcv"], bar_rows(validate_bars(bars, "bench", "1m"), exchange=exchange,
                                                                  symbol="BTC/USDT", timeframe="1m", source="bench"))

            def bare() -> None:
                with questdb.Sender.from_conf(store.config.ilp_conf) as sender:
                    sender.dataframe(frame, table_name=table, symbols=symbols, at="ts")
                store._wait_applied(table)

            best["bare sender"] = min(best.get("bare sender", 9e9), timeit(bare, 1)[0])
            store._execute(f"DROP TABLE {table}")
            ident = {"exchange": exchange, "symbol": "BTC/USDT", "timeframe": "1m"}
            sql = export_bars_sql(exchange, "BTC/USDT", "1m", None, None)
            for name, call in (("read_bars", lambda: store.read_bars(**ident)), ("exp csv", lambda: _csv_export(store, sql)),
                               ("pg wire", lambda: Store.read_bars(store, **ident))):
                best[name] = min(best.get(name, 9e9), timeit(call, 1)[0])
            store.delete_bars(**ident)
    return [
        f"| QuestDB | write_bars (validation included, until visible) | {best['write_bars']:.2f} s | "
        f"{n / best['write_bars']:,.0f} | {best['bare sender'] / best['write_bars']:.2f}x of Sender.dataframe |",
        f"| QuestDB | Sender.dataframe, one connection (until visible) | {best['bare sender']:.2f} s | "
        f"{n / best['bare sender']:,.0f} | 1.00x |",
        f"| QuestDB | read_bars (/exp parquet + pyarrow) | {best['read_bars']:.2f} s | {n / best['read_bars']:,.0f} | "
        f"{best['read_bars'] / best['exp csv']:.2f}x the time of /exp CSV |",
        f"| QuestDB | /exp CSV export of the same query (body to memory) | {best['exp csv']:.2f} s | "
        f"{n / best['exp csv']:,.0f} | 1.00x |",
        f"| QuestDB | PG-wire read (Store.read_bars, before) | {best['pg wire']:.2f} s | {n / best['pg wire']:,.0f} | "
        f"{best['pg wire'] / best['exp csv']:.2f}x the time of /exp CSV |",
    ]


def _csv_export(store: object, sql: str) -> bytes:
    """QuestDB's own CSV export of ``sql`` (``/exp`` without ``fmt``), read to memory."""
    import urllib.request
    from urllib.parse import urlencode

    from btlab.store.questdb_address import join_host_port
    from btlab.store.questdb_export import http_auth

    cfg = store.config  # type: ignore[attr-defined]
    headers, context = http_auth(cfg)
    url = (f"{'https' if cfg.tls else 'http'}://{join_host_port(cfg.http_host, cfg.http_port)}/exp?"
           + urlencode({"query": sql}))
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context) as response:
        return response.read()


def run(repeat: int = 5) -> list[str]:
    if not M1_FILE.exists():
        return [f"not measured: {M1_FILE.name} missing"]
    bars = bars_1m()
    n = len(bars)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        d = _duckdb(bars, Path(tmp), repeat)

    def line(what: str, key: str, versus: str, label: str) -> str:
        return (f"| DuckDB | {what} | {d[key]:.2f} s | {n / d[key]:,.0f} | {d[versus] / d[key]:.2f}x {label} |")

    lines = [
        f"{n:,} real BTC/USDT 1m bars (8 shifted copies of the 130,708 of `data/`); best of {repeat} rounds, fresh "
        "files, contenders alternating. Ratio = contender's rate / reference rate (above 1: faster).",
        "",
        "| store | path | time | rows/s | ratio |",
        "|---|---|---:|---:|---:|",
        line("write_bars, empty store (validation included)", "write_bars first", "bare keyed first",
             "of bare keyed INSERT OR REPLACE"),
        line("bare INSERT OR REPLACE, same primary key", "bare keyed first", "bare keyed first", ""),
        line("bare plain INSERT, no key", "bare plain first", "bare keyed first", "of bare keyed"),
        line("generic Store.write_bars (before)", "generic first", "bare keyed first", "of bare keyed"),
        line("write_bars re-import (all keys present)", "write_bars again", "generic again",
             "of the generic path's re-import"),
        line("generic Store.write_bars re-import (before)", "generic again", "generic again", ""),
        line("bare INSERT OR REPLACE re-import", "bare keyed again", "generic again", "of the generic re-import"),
        line("read_bars", "read_bars", "bare select", "of a bare SELECT to pandas"),
        line("bare SELECT .. ORDER BY ts to pandas", "bare select", "bare select", ""),
    ]
    address = os.environ.get("BTLAB_TEST_QUESTDB", "").strip()
    if address:
        lines += _questdb(address, bars, repeat)
    else:
        lines.append("| QuestDB | write_bars, Sender.dataframe, read_bars, /exp CSV | — | — | not measured (no server: "
                     "set BTLAB_TEST_QUESTDB) |")
    lines += ["", f"Run time {time.perf_counter() - started:.0f} s."]
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
