"""`btlab data resample`, `btlab data delete` and `btlab runs delete` end to end: real BTC/USDT bars, real DuckDB
files, real backtests, the real console script in subprocesses (exit codes, prompts, stderr)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import btlab
from btlab.errors import InvalidArgumentError, NoDataError
from btlab.marketdata.bars.from_bars import resample_stored_bars
from btlab.store.duckdb import DuckDBStore
from realdata import BTC_1H, btc_1h
from cliproc import btlab_cli, error_lines

SERIES = ["--exchange", "binance", "--symbol", "BTC/USDT"]


@pytest.fixture
def h1_store(tmp_path: Path) -> Path:
    path = tmp_path / "h1.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source=BTC_1H.name)
    return path


def complete_4h(h1: pd.DataFrame) -> pd.DataFrame:
    """Independent expectation with pandas: 4h windows holding all 4 of their hours; first open, max high, min
    low, last close, summed volume."""
    window = h1["ts"].dt.floor("4h")
    groups = h1.groupby(window)
    out = groups.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
                     volume=("volume", "sum"), n=("open", "size"))
    return out[out["n"] == 4].drop(columns="n").rename_axis("ts").reset_index()


# ---- resample -----------------------------------------------------------------------------------------------------------
def test_resample_builds_complete_4h_windows_idempotently(h1_store):
    h1 = btc_1h()
    expected = complete_4h(h1)
    proc = btlab_cli("data", "resample", *SERIES, "--source-timeframe", "1h", "--timeframe", "4h", store=h1_store)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert f"{len(expected):,} 4h bars built from 58,416 1h bars" in text  # the last 3 hours: an open window
    n_incomplete = int((h1.groupby(h1["ts"].dt.floor("4h")).size() < 4).sum())
    assert f"{n_incomplete} incomplete 4h window(s) skipped" in text
    with DuckDBStore(h1_store, read_only=True) as st:
        got = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="4h")
        sources = st.query("SELECT DISTINCT source FROM ohlcv WHERE timeframe = '4h'")["source"].tolist()
    assert got["ts"].tolist() == expected["ts"].tolist()
    for col in ("open", "high", "low", "close"):
        assert np.array_equal(got[col].to_numpy(), expected[col].to_numpy()), col
    np.testing.assert_allclose(got["volume"].to_numpy(), expected["volume"].to_numpy(), rtol=1e-12, atol=5e-9)
    assert sources == ["resample:1h"]
    # again: the same bars, nothing added
    proc = btlab_cli("data", "resample", *SERIES, "--source-timeframe", "1h", "--timeframe", "4h", store=h1_store)
    assert proc.returncode == 0
    with DuckDBStore(h1_store, read_only=True) as st:
        again = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="4h")
    pd.testing.assert_frame_equal(again, got, check_exact=True)


def test_resample_range_builds_only_windows_inside_it(h1_store):
    with DuckDBStore(h1_store) as st:
        report = resample_stored_bars(st, exchange="binance", symbol="BTC/USDT", source_timeframe="1h",
                                      timeframe="1d", start="2020-01-01 06:00", end="2020-02-01")
        days = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1d")
    # 2020-01-01 is cut by the start (06:00): not built; January 2..31 are whole
    assert days["ts"].iloc[0] == pd.Timestamp("2020-01-02", tz="UTC")
    assert days["ts"].iloc[-1] == pd.Timestamp("2020-01-31", tz="UTC")
    assert report.bars == len(days) == 30 and report.incomplete == 1
    h1 = btc_1h()
    jan2 = h1[(h1["ts"] >= "2020-01-02") & (h1["ts"] < "2020-01-03")]
    assert (days["open"].iloc[0], days["close"].iloc[0]) == (jan2["open"].iloc[0], jan2["close"].iloc[-1])
    assert (days["high"].iloc[0], days["low"].iloc[0]) == (jan2["high"].max(), jan2["low"].min())


def test_resample_refuses_bad_requests(h1_store, tmp_path):
    proc = btlab_cli("data", "resample", *SERIES, "--source-timeframe", "1h", "--timeframe", "90m", store=h1_store)
    assert proc.returncode == 1 and "must be a whole multiple of --source-timeframe 1h" in proc.stderr
    proc = btlab_cli("data", "resample", "--exchange", "binance", "--symbol", "ETH/USDT", "--source-timeframe", "1h",
                     "--timeframe", "4h", store=h1_store)
    assert proc.returncode == 1
    (line,) = error_lines(proc)
    assert "no 1h bars of binance:ETH/USDT" in line
    missing = tmp_path / "none" / "s.duckdb"
    proc = btlab_cli("data", "resample", *SERIES, "--source-timeframe", "1h", "--timeframe", "4h", store=missing)
    assert proc.returncode == 1 and f"no store at {missing}" in proc.stderr and not missing.parent.exists()
    with DuckDBStore(h1_store) as st:
        with pytest.raises(InvalidArgumentError):
            resample_stored_bars(st, exchange="binance", symbol="BTC/USDT", source_timeframe="4h", timeframe="1h")
        with pytest.raises(NoDataError):
            resample_stored_bars(st, exchange="binance", symbol="BTC/USDT", source_timeframe="1h", timeframe="4h",
                                 start="2030-01-01")


# ---- data delete ---------------------------------------------------------------------------------------------------------
def test_data_delete_a_range_after_confirmation(h1_store):
    h1 = btc_1h()
    january = h1[(h1["ts"] >= "2020-01-01") & (h1["ts"] < "2020-02-01")]
    n = len(january)
    args = ("data", "delete", *SERIES, "--timeframe", "1h", "--from", "2020-01-01", "--to", "2020-01-31")
    proc = btlab_cli(*args, store=h1_store, input="n\n")
    assert proc.returncode == 1 and "nothing deleted" in proc.stdout
    assert f"delete {n:,} 1h bars of binance:BTC/USDT" in proc.stderr  # the question shows how many go
    proc = btlab_cli(*args, store=h1_store)  # no answer (end of input) is no
    assert proc.returncode == 1 and "nothing deleted" in proc.stdout
    with DuckDBStore(h1_store, read_only=True) as st:
        assert st.bar_span(exchange="binance", symbol="BTC/USDT", timeframe="1h").bars == 58_419
    proc = btlab_cli(*args, store=h1_store, input="y\n")
    assert proc.returncode == 0, proc.stderr
    assert f"deleted {n:,} 1h bars of binance:BTC/USDT" in proc.stdout
    with DuckDBStore(h1_store, read_only=True) as st:
        left = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert len(left) == 58_419 - n
    assert not ((left["ts"] >= "2020-01-01") & (left["ts"] < "2020-02-01")).any()
    assert left["ts"].isin([january["ts"].iloc[0] - pd.Timedelta("1h"),
                            january["ts"].iloc[-1] + pd.Timedelta("1h")]).sum() == 2  # its neighbours stay
    proc = btlab_cli(*args, store=h1_store, input="y\n")
    assert proc.returncode == 1 and "no 1h bars of binance:BTC/USDT from 2020-01-01 to 2020-01-31" in proc.stderr


def test_data_delete_a_whole_series_with_yes(h1_store):
    with DuckDBStore(h1_store) as st:
        resample_stored_bars(st, exchange="binance", symbol="BTC/USDT", source_timeframe="1h", timeframe="1d")
        days = st.bar_span(exchange="binance", symbol="BTC/USDT", timeframe="1d").bars
    proc = btlab_cli("data", "delete", *SERIES, "--timeframe", "1h", "--yes", store=h1_store)
    assert proc.returncode == 0 and "deleted 58,419 1h bars" in proc.stdout
    with DuckDBStore(h1_store, read_only=True) as st:
        series = st.bar_series()
    assert series[["timeframe", "bars"]].values.tolist() == [["1d", days]]  # the other timeframe stays
    proc = btlab_cli("data", "delete", *SERIES, "--timeframe", "1h", "--from", "2021-01-01", "--to", "2020-01-01",
                     "--yes", store=h1_store)
    assert proc.returncode == 1 and "--from 2021-01-01 is after --to 2020-01-01" in proc.stderr


# ---- runs delete ---------------------------------------------------------------------------------------------------------
def test_runs_delete(h1_store):
    with DuckDBStore(h1_store) as st:
        ids = [btlab.run_backtest("sma_cross", symbol="BTC/USDT", timeframe="1h", start="2020-01-01",
                                  end="2020-03-31", params={"fast": f, "slow": 30}, store=st).run_id
               for f in (5, 10)]
        before = {r: (len(st.read_equity(r)), len(st.read_trades(r)), len(st.read_orders(r))) for r in ids}
    assert all(e > 2000 and t > 0 and o > 0 for e, t, o in before.values())

    proc = btlab_cli("runs", "delete", ids[0], "no-such-run", "--yes", store=h1_store)
    assert proc.returncode == 1 and "no run 'no-such-run'" in proc.stderr
    proc = btlab_cli("runs", "delete", ids[0], store=h1_store, input="n\n")
    assert proc.returncode == 1 and "nothing deleted" in proc.stdout
    assert f"delete 1 run(s) ({ids[0]}) with {before[ids[0]][0]:,} bt_equity" in " ".join(proc.stderr.split())
    with DuckDBStore(h1_store, read_only=True) as st:
        assert set(st.list_runs()["run_id"]) == set(ids)

    proc = btlab_cli("runs", "delete", ids[0], "--yes", store=h1_store)
    assert proc.returncode == 0, proc.stderr
    e, t, o = before[ids[0]]
    assert f"deleted 1 run(s): {e:,} bt_equity row(s), {t:,} bt_trades row(s), {o:,} bt_orders row(s)" in proc.stdout
    with DuckDBStore(h1_store, read_only=True) as st:
        assert st.list_runs()["run_id"].tolist() == [ids[1]]
        assert st.read_equity(ids[0]).empty and st.read_trades(ids[0]).empty and st.read_orders(ids[0]).empty
        kept = ids[1]
        assert (len(st.read_equity(kept)), len(st.read_trades(kept)), len(st.read_orders(kept))) == before[kept]
    listing = btlab_cli("runs", "list", "--format", "csv", store=h1_store)  # full run ids
    assert listing.returncode == 0 and ids[1] in listing.stdout and ids[0] not in listing.stdout


@pytest.mark.parametrize("command", [["data", "resample"], ["data", "delete"], ["runs", "delete"]])
def test_new_commands_help_teaches(command):
    proc = btlab_cli(*command, "--help")
    assert proc.returncode == 0 and "Usage" in proc.stdout
    text = " ".join(proc.stdout.split())
    assert ("--yes" in text) == (command[1] == "delete")
    assert "--from" in text if command != ["runs", "delete"] else "RUN_ID..." in text
