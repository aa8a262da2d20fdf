"""Bars from stored ticks (the batch aggregator on history and files), on real recorded trades."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from btlab.errors import InvalidArgumentError
from btlab.marketdata.bars import aggregate_ticks, resample_bars
from btlab.marketdata.sources.binance_vision.importer import file_span, import_binance_vision
from btlab.marketdata.bars.from_ticks import bars_from_ticks
from btlab.store.duckdb import DuckDBStore
from realdata import DATA, binance_klines, recorded_trades


@pytest.fixture
def store(tmp_path):
    with DuckDBStore(tmp_path / "tb.duckdb") as st:
        yield st


def _store_recorded(store) -> pd.DataFrame:
    rec = recorded_trades()
    ticks = pd.DataFrame({"ts": rec["ts"], "exchange": "binance", "symbol": "BTC/USDT",
                          "trade_id": rec["id"].astype(str), "price": rec["price"], "amount": rec["amount"],
                          "side": None})
    store.upsert("ticks", ticks)
    return rec


def test_bars_from_recorded_trades_equal_binance_klines(store):
    _store_recorded(store)
    written = bars_from_ticks(store, exchange="binance", symbol="BTC/USDT", timeframes=["1m"],
                              start="2024-08-08 23:55", end="2024-08-09 00:05")
    assert written == {"1m": 10}
    got = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    k = binance_klines()
    assert list(got["ts"]) == list(k["ts"])
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[col].to_numpy(), k[col].to_numpy(), err_msg=col)


def test_only_windows_inside_the_span_are_built(store):
    rec = _store_recorded(store)
    # a span starting and ending mid-minute: the partial minutes at both ends are left out
    written = bars_from_ticks(store, exchange="binance", symbol="BTC/USDT", timeframes=["1m", "1s"],
                              start="2024-08-08 23:55:30.5", end="2024-08-09 00:02:10")
    m1 = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert m1["ts"].iloc[0] == pd.Timestamp("2024-08-08 23:56", tz="UTC")
    assert m1["ts"].iloc[-1] == pd.Timestamp("2024-08-09 00:01", tz="UTC")
    s1 = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1s")
    assert s1["ts"].iloc[0] >= pd.Timestamp("2024-08-08 23:55:31", tz="UTC")
    assert s1["ts"].iloc[-1] <= pd.Timestamp("2024-08-09 00:02:09", tz="UTC")
    assert written == {"1m": len(m1), "1s": len(s1)}
    # and they equal the batch aggregation of the recorded trades
    direct = aggregate_ticks(rec.assign(trade_id=rec["id"].astype(str)), "1s")
    direct = direct[direct["ts"].isin(s1["ts"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(s1, direct, check_exact=True)
    with pytest.raises(InvalidArgumentError):
        bars_from_ticks(store, exchange="binance", symbol="BTC/USDT", timeframes=["1m"], start="2024-08-09",
                        end="2024-08-08")


def test_aggtrades_file_to_bars_across_days(store):
    path = DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
    (report,) = import_binance_vision(path, store)
    start, end = file_span(path, report.first, report.last)
    assert (start, end) == (report.first, report.last + pd.Timedelta(1, "us"))  # no single date in the name
    written = bars_from_ticks(store, exchange="binance", symbol="XRP/ETH", timeframes=["1m", "1h"], start=start,
                              end=end)
    m1 = store.read_bars(exchange="binance", symbol="XRP/ETH", timeframe="1m")
    h1 = store.read_bars(exchange="binance", symbol="XRP/ETH", timeframe="1h")
    assert written == {"1m": len(m1), "1h": len(h1)} and len(h1) > 50
    # slices are read a day at a time: bars across midnight equal one aggregation of the whole file
    ticks = store.query("SELECT ts, trade_id, price, amount FROM ticks ORDER BY ts")
    ticks["ts"] = pd.to_datetime(ticks["ts"], utc=True).astype("datetime64[ns, UTC]")
    whole = aggregate_ticks(ticks, "1m")
    whole = whole[whole["ts"].isin(m1["ts"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(m1, whole, check_exact=True)
    # hours built from the ticks equal hours resampled from the minutes
    resampled = resample_bars(m1, "1h")
    resampled = resampled[resampled["ts"].isin(h1["ts"])].reset_index(drop=True)
    for col in ("open", "high", "low", "close", "volume", "trades"):
        np.testing.assert_array_equal(h1[col].to_numpy(), resampled[col].to_numpy(), err_msg=col)


def test_file_span_from_vision_names():
    first, last = pd.Timestamp("2024-01-01 00:00:01", tz="UTC"), pd.Timestamp("2024-01-01 23:59:58", tz="UTC")
    assert file_span("BTCUSDT-trades-2024-01-01.zip", first, last) == (
        pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC"))
    assert file_span("BTCUSDT-aggTrades-2024-02.zip", first, last) == (
        pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC"))
