"""Every SQL statement btlab sends to QuestDB parses with QuestDB's own SQL parser (``@questdb/sql-parser``).

QuestDB itself cannot run here (ARCHITECTURE.md). What can be checked without it: the statements. The session
records every statement that went through ``Store.query`` (tests/sqlrecord.py: the shared Store SQL runs unchanged
on QuestDB), and the QuestDB backend lists the statements only it sends (DDL, migrations, ``wal_tables()``). This
module runs last (conftest.py), adds a real import/backtest/report/coverage flow of its own so that it also works
alone, and parses everything in one call of ``tests/store/questdb_sql/parse.mjs`` (Node.js).

Set up by ``make test`` (``npm ci`` in tests/store/questdb_sql). Without Node.js or those packages the tests skip, saying
so, unless ``BTLAB_REQUIRE_SQLPARSER`` is set (CI sets it: there they must run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import sqlrecord
from btlab.store.questdb_sql import questdb_only_statements
from realdata import DATA

HERE = Path(__file__).resolve().parent / "questdb_sql"


def _parser_missing() -> str | None:
    if shutil.which("node") is None:
        return "Node.js not found (needed for QuestDB's SQL parser)"
    if not (HERE / "node_modules" / "@questdb" / "sql-parser").is_dir():
        return "@questdb/sql-parser not installed: run `npm ci --prefix tests/store/questdb_sql` (make test does)"
    return None


@pytest.fixture(scope="module")
def parse():
    """``parse(statements) -> [errors per statement]`` through QuestDB's parser."""
    reason = _parser_missing()
    if reason:
        if os.environ.get("BTLAB_REQUIRE_SQLPARSER"):
            pytest.fail(f"BTLAB_REQUIRE_SQLPARSER is set but {reason}")
        pytest.skip(reason)

    def run(statements: list[str]) -> list[list[str]]:
        out = subprocess.run(["node", str(HERE / "parse.mjs")], input=json.dumps(statements), capture_output=True,
                             text=True, timeout=120, check=True)
        return json.loads(out.stdout)

    return run


def test_the_parser_rejects_what_questdb_rejects(parse):
    """The check can fail: malformed SQL and SQL QuestDB does not have (row DELETE, ``?`` placeholders) are errors."""
    errors = parse([
        "SELECT ts FROM ohlcv WHERE",
        "DELETE FROM bt_runs WHERE run_id = 'x'",
        "SELECT ts FROM ohlcv WHERE symbol = ?",
        "SELECT ts, close FROM ohlcv WHERE symbol = 'BTC/USDT' ORDER BY ts LIMIT 10",
    ])
    assert errors[0] and errors[1] and errors[2]
    assert errors[3] == []


def _exercise_store(tmp_path: Path) -> None:
    """A real flow through the Store API on DuckDB: import, backtest (recorded), runs, report, coverage, ticks."""
    from btlab.backtest.runner import run_backtest
    from btlab.marketdata.sources.binance_vision.importer import import_binance_vision
    from btlab.marketdata.quality.coverage import coverage, tick_coverage
    from btlab.marketdata.sources.files.importer import import_bars
    from btlab.report import write_report
    from btlab.store.duckdb import DuckDBStore

    with DuckDBStore(tmp_path / "sql.duckdb") as st:
        import_bars(DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather", st, exchange="binance", symbol="BTC/USDT",
                    timeframe="1h")
        import_binance_vision([DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"], st, symbol="XRP/ETH")
        result = run_backtest("sma_cross", symbol="BTC/USDT", timeframe="1h", start="2023-01-01", end="2023-03-31",
                              params={"fast": 10, "slow": 30}, store=st)
        st.list_runs(limit=5)
        st.list_runs(limit=5, strategy="sma_cross")
        st.run_rows(limit=5)
        st.run_strategies()
        st.get_run(result.run_id)
        write_report(result.run_id, tmp_path / "r.html", store=st)
        coverage(st)
        coverage(st, exchange="binance", symbol="BTC/USDT", timeframe="1h")
        tick_coverage(st)
        tick_coverage(st, exchange="binance", symbol="XRP/ETH")
        st.missing_ranges(exchange="binance", symbol="BTC/USDT", timeframe="1h", start="2017-01-01", end="2025-01-01")
        st.last_trade(exchange="binance", symbol="XRP/ETH")
        st.read_health(service="ingest-live", metric="heartbeat", start="2024-01-01")


def test_every_questdb_statement_parses(parse, tmp_path):
    _exercise_store(tmp_path)
    shared = dict(sqlrecord.STATEMENTS)
    own = {sql: sqlrecord.bind(sql, ["ohlcv"] * sql.count("?")) for sql in questdb_only_statements()}
    statements = {**{f"{sql} -- params {kinds}": bound for (sql, kinds), bound in shared.items()}, **own}
    assert len(shared) >= 10, f"only {len(shared)} Store statements were recorded: is the recorder installed?"
    errors = parse(list(statements.values()))
    bad = [f"{name}\n    bound: {bound}\n    errors: {errs}"
           for (name, bound), errs in zip(statements.items(), errors) if errs]
    assert not bad, f"{len(bad)} of {len(statements)} statements do not parse as QuestDB SQL:\n" + "\n".join(bad)
