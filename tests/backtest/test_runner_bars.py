"""``run_backtest(bars=...)`` and ``load_backtest_bars``: a run on bars already loaded equals the run that reads
them from the store (the entry a parameter sweep's workers use), on the real BTC/USDT 1h bars in a real DuckDB."""

from __future__ import annotations

import pandas as pd
import pytest

from btlab.backtest.runner import hash_bars, load_backtest_bars, run_backtest
from btlab.errors import InvalidArgumentError, NoDataError
from btlab.store.duckdb import DuckDBStore
from realdata import BTC_1H

REQUEST = {"exchange": "binance", "timeframe": "1h", "start": "2021-01-01", "end": "2021-12-31"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("bars") / "store.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(pd.read_feather(BTC_1H).rename(columns={"date": "ts"}), exchange="binance",
                      symbol="BTC/USDT", timeframe="1h", source="test")
        yield st


def test_a_run_on_loaded_bars_equals_the_run_from_the_store(store, tmp_path):
    config, bars, warnings = load_backtest_bars("sma_cross", symbols="BTC/USDT", store=store, **REQUEST)
    assert list(bars) == ["BTC/USDT"] and config.params == {"fast": 10, "slow": 30}
    assert len(warnings) == 1 and "6 gap(s) inside the range, 13 missing bar(s)" in warnings[0]  # the real data's
    frame = bars["BTC/USDT"]
    assert frame["ts"].iloc[0] == pd.Timestamp("2021-01-01", tz="UTC") and len(frame) == 8760 - 13
    params = {"fast": 12, "slow": 40}
    from_store = run_backtest("sma_cross", symbol="BTC/USDT", params=params, store=store, record=False, **REQUEST)
    # no store is opened for a run on given bars that records nothing: an address that cannot exist is not touched
    given = run_backtest("sma_cross", symbol="BTC/USDT", params=params, bars=bars, record=False,
                         store=str(tmp_path / "missing" / "nothing.duckdb"), **REQUEST)
    assert not (tmp_path / "missing").exists()
    assert given.summary == from_store.summary
    # (trade_ref is Backtrader's process-wide trade counter)
    pd.testing.assert_frame_equal(given.trades.drop(columns="trade_ref"), from_store.trades.drop(columns="trade_ref"))
    pd.testing.assert_frame_equal(given.equity, from_store.equity)
    assert given.config == from_store.config and given.config.hash() == from_store.config.hash()
    recorded = run_backtest("sma_cross", symbol="BTC/USDT", params=params, bars=bars, store=store, run_id="given-1",
                            **REQUEST)
    row = store.get_run("given-1")
    assert row["status"] == "finished" and row["data_hash"] == hash_bars(frame) and row["bars"] == len(frame)
    assert row["end_value"] == recorded.summary.end_value == from_store.summary.end_value


def test_given_bars_must_match_the_symbols(store):
    _, bars, _ = load_backtest_bars("sma_cross", symbols="BTC/USDT", store=store, **REQUEST)
    with pytest.raises(InvalidArgumentError, match="bars are given for BTC/USDT; the run's symbols are ETH/USDT"):
        run_backtest("sma_cross", symbol="ETH/USDT", bars=bars, record=False, **REQUEST)
    with pytest.raises(NoDataError, match="no bars given for binance:BTC/USDT"):
        run_backtest("sma_cross", symbol="BTC/USDT", bars={"BTC/USDT": bars["BTC/USDT"].iloc[:0]}, record=False,
                     **REQUEST)


def test_orb_on_loaded_spy_bars_equals_the_run_from_the_store(tmp_path):
    """The feed over given bars carries the exchange (orb's calendar=auto -> XNYS sessions), and the bars loaded
    for session=regular are the session's: the same trades as the run that reads the store."""
    from btlab.marketdata.sources.files.importer import import_bars
    from realdata import DATA

    with DuckDBStore(tmp_path / "spy.duckdb") as st:
        import_bars(DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz", st, exchange="nyse", symbol="SPY",
                    timeframe="1m")
        request = {"exchange": "nyse", "timeframe": "1m", "start": "2024-03-01", "end": "2024-03-31"}
        params = {"range_minutes": 15, "stop_pct": 0.15, "take_profit_pct": 0.6}
        config, bars, _ = load_backtest_bars("orb", symbols="SPY", store=st, **request)
        assert config.venue_calendar == "XNYS" and config.session == "regular"
        local = bars["SPY"]["ts"].dt.tz_convert("America/New_York")
        assert local.dt.time.min() >= pd.Timestamp("09:30").time() and local.dt.time.max() < pd.Timestamp("16:00").time()
        from_store = run_backtest("orb", symbol="SPY", params=params, store=st, record=False, **request)
        given = run_backtest("orb", symbol="SPY", params=params, bars=bars, record=False, **request)
    assert from_store.summary.n_trades > 10 and given.summary == from_store.summary
    pd.testing.assert_frame_equal(given.trades.drop(columns="trade_ref"), from_store.trades.drop(columns="trade_ref"))
