"""The btlab command, end to end on real data: what a user types and sees."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from btlab.cli.main import app
from btlab.store import open_store
from btlab.store.duckdb import DuckDBStore
from realdata import BTC_1H, DATA
from cliproc import btlab_cli

runner = CliRunner()


def invoke(*args: str) -> "CliRunner.Result":
    return runner.invoke(app, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)


def test_import_backtest_list_show_report(tmp_path):
    store = tmp_path / "cli.duckdb"
    res = invoke("data", "import", str(BTC_1H), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h",
                 "--store", str(store))
    assert res.exit_code == 0, res.output
    assert "58,419 1h bars for binance:BTC/USDT" in res.output and "128 missing bar(s)" in res.output

    res = invoke("data", "coverage", "--store", str(store))
    assert res.exit_code == 0 and "58,419" in res.output and "128" in res.output
    assert "2018-02-08 01:00:00+00:00 .. 2018-02-09 09:00:00+00:00: 33 bar(s)" in res.output

    report_dir = tmp_path / "reports"
    res = runner.invoke(app, ["backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "1h",
                              "--from", "2020-01-01", "--to", "2023-12-31", "--param", "fast=10", "--param", "slow=30",
                              "--cash", "10000", "--commission", "0.001", "--store", str(store)],
                        env={"COLUMNS": "200", "BTLAB_REPORTS": str(report_dir)}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run_id = re.search(r"run id: (\S+)", res.output).group(1)
    with DuckDBStore(store) as st:
        run = st.get_run(run_id)
    assert run["status"] == "finished" and run["params"] == {"fast": 10, "slow": 30}
    assert f"{run['total_return'] * 100:,.2f} %" in res.output
    assert "annualization 365 (crypto)" in res.output
    report = re.search(r"report: (\S+\.html)", res.output).group(1)
    assert Path(report).is_file() and Path(report).parent == report_dir.resolve()

    res = invoke("runs", "list", "--store", str(store))  # the list shows the run id's 8 hex digits
    assert res.exit_code == 0 and run_id.rsplit("-", 1)[1] in res.output and "finished" in res.output
    res = invoke("runs", "show", run_id, "--store", str(store))
    assert res.exit_code == 0 and "Sharpe" in res.output and run["data_hash"] in res.output
    out = tmp_path / "r.html"
    res = invoke("report", run_id, "-o", str(out), "--store", str(store))
    assert res.exit_code == 0 and out.stat().st_size > 100_000


def test_bad_file_is_one_line_and_writes_nothing(tmp_path):
    store = tmp_path / "bad.duckdb"
    frame = pd.read_feather(BTC_1H).iloc[:500]
    frame.loc[300, "low"] = frame.loc[300, "high"] + 1.0
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    proc = btlab_cli("data", "import", str(bad), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h",
                     store=store)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    # data row 301 is file line 302 (errors name the file line, header counted)
    assert len(lines) == 1 and str(bad) in lines[0] and "row 302" in lines[0] and "column 'high'" in lines[0]
    with DuckDBStore(store) as st:
        assert st.bar_series().empty


def test_unreachable_store_is_one_line_with_address():
    address = "http::addr=127.0.0.1:9;pg_port=9;"
    proc = btlab_cli("runs", "list", "--store", address)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "cannot reach the store" in lines[0] and "127.0.0.1" in lines[0]


def test_locked_duckdb_file_is_a_clear_error(tmp_path):
    store = tmp_path / "locked.duckdb"
    with DuckDBStore(store) as st, st.session():  # this process holds the write lock for the whole block
        proc = btlab_cli("runs", "list", store=store, extra_env={"BTLAB_LOCK_TIMEOUT": "1"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and str(store) in proc.stderr
    assert f"locked by process {os.getpid()}" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backtest", "--strategy", "nope"], "bundled strategies: buy_hold, mp_tracker, orb, regime_fsm, rl_tilt, sma_cross"),
        (["backtest", "--param", "fats=3"], "its parameters: fast=10, slow=30"),
        (["backtest", "--param", "fast"], "expected name=value"),
        (["backtest", "--timeframe", "1x"], "invalid timeframe '1x'"),
        (["backtest", "--from", "yesterday-ish"], "cannot parse --from"),
        (["backtest", "--symbol", "DOGE/USDT"], "no 1h bars for binance:DOGE/USDT"),
    ],
)
def test_user_errors_are_explained(tmp_path, args, message):
    store = tmp_path / "e.duckdb"
    open_store(str(store)).close()  # an empty store
    res = runner.invoke(app, [*args, "--store", str(store)], env={"COLUMNS": "300"})
    assert res.exit_code == 1, res.output
    assert message in " ".join(res.output.split()), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("args", [["runs", "show", "no-such-run"], ["report", "no-such-run"], ["runs", "list"],
                                  ["data", "coverage"], ["backtest"], ["runs", "cleanup", "--yes"],
                                  ["data", "resample", "--exchange", "binance", "--symbol", "BTC/USDT",
                                   "--source-timeframe", "1h", "--timeframe", "4h"]])
def test_a_missing_store_is_an_error_and_never_created(tmp_path, args):
    """Commands that read, or write into what is stored (a backtest, marking stale runs), never create a store:
    a store path that does not exist is the error (``runs cleanup`` and ``backtest`` created one before)."""
    store = tmp_path / "new" / "e.duckdb"
    res = runner.invoke(app, [*args, "--store", str(store)], env={"COLUMNS": "300"})
    assert res.exit_code == 1, res.output
    assert f"no store at {store}" in " ".join(res.output.split()), res.output
    assert not store.parent.exists()


@pytest.mark.parametrize("command", [[], ["data"], ["data", "import"], ["backtest"], ["runs"], ["runs", "list"],
                                     ["runs", "show"], ["report"], ["strategies"], ["data", "coverage"],
                                     ["ingest"], ["ingest", "history"], ["ingest", "binance-vision"], ["ingest", "live"]])
def test_help_teaches(command):
    res = invoke(*command, "--help")
    assert res.exit_code == 0 and "Usage" in res.output


def test_strategies_lists_bundled_with_parameters():
    res = invoke("strategies")
    assert res.exit_code == 0 and "sma_cross" in res.output and "fast=10, slow=30" in res.output


def test_ingest_commands_end_to_end(tmp_path):
    """ingest history (ccxt and CryptoCompare) and binance-vision through the real console script, against the
    local fakes serving recorded real data."""
    from fakes.binance import FakeBinance
    from fakes.cryptocompare import FakeCryptoCompare

    store = tmp_path / "ingest.duckdb"
    with FakeBinance(now="2025-05-21 00:00:30") as fake:
        proc = btlab_cli("ingest", "history", "--source", "ccxt", "--exchange", "binance", "--symbols",
                         "BTC/USDT,ETH/USDT", "--timeframe", "1m", "--since", "2025-05-20 18:00", "--api-url",
                         fake.base_url, store=store)
        assert proc.returncode == 0, proc.stderr
        proc = btlab_cli("ingest", "history", "--trades", "--bars", "1m", "--symbols", "XRP/ETH", "--since",
                         "2019-10-11 00:00", "--until", "2019-10-11 06:00", "--api-url", fake.base_url, store=store)
        assert proc.returncode == 0, proc.stderr
        assert "binance:XRP/ETH: bars from trades:" in proc.stdout
        with DuckDBStore(store) as st:
            m1 = st.read_bars(exchange="binance", symbol="XRP/ETH", timeframe="1m")
        assert m1["ts"].min() >= pd.Timestamp("2019-10-11", tz="UTC")
        assert m1["ts"].max() <= pd.Timestamp("2019-10-11 05:59", tz="UTC") and len(m1) > 100
        proc = btlab_cli("ingest", "history", "--symbols", "NOPE/USDT", "--since", "2025-05-20", "--api-url",
                         fake.base_url, store=store)
        assert proc.returncode == 1 and "NOPE/USDT" in proc.stderr and "Traceback" not in proc.stderr
    with FakeCryptoCompare(api_key="secret-test-key") as cc:
        cc.add_saved("/data/histoday", "BTC", "USD", DATA / "cryptocompare"
                     / "histoday_BTC-USD_2015-05-04_2020-10-24.json")
        proc = btlab_cli("ingest", "history", "--source", "cryptocompare", "--symbols", "BTC/USD", "--timeframe",
                         "1d", "--since", "2020-01-01", "--until", "2020-07-01", "--api-url", cc.url, store=store,
                         extra_env={"CRYPTOCOMPARE_API_KEY": "secret-test-key"})
        assert proc.returncode == 0, proc.stderr
        assert "secret-test-key" not in proc.stdout + proc.stderr
    zipped = tmp_path / "XRPETH-aggTrades-2019-10-11.csv"
    zipped.write_bytes((DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv").read_bytes())
    proc = btlab_cli("ingest", "binance-vision", str(zipped), "--bars", "1m,1h", store=store)
    assert proc.returncode == 0, proc.stderr
    assert "bars from its trades" in proc.stdout
    with DuckDBStore(store) as st:
        series = st.bar_series().set_index(["exchange", "symbol", "timeframe"])["bars"]
        ticks = int(st.query("SELECT count(*) AS n FROM ticks")["n"].iloc[0])
    assert series[("binance", "BTC/USDT", "1m")] == series[("binance", "ETH/USDT", "1m")] == 6 * 60  # 18:00..23:59
    assert series[("cryptocompare", "BTC/USD", "1d")] == 182  # 2020-01-01 .. 2020-06-30
    assert ticks == 12_477
    # the file is named as the day 2019-10-11: only that day's windows are built
    assert series[("binance", "XRP/ETH", "1h")] == 24 and 500 < series[("binance", "XRP/ETH", "1m")] <= 1440
    proc = btlab_cli("data", "coverage", store=store)
    assert proc.returncode == 0 and "cryptocompare" in proc.stdout and "XRP/ETH" in proc.stdout
