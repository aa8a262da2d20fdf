"""Walk-forward of the research strategies on small slices of the bundled real data, in a real DuckDB store:
``regime_fsm`` (BTC/USDT 1h with a 1d machine built by resampling), ``mp_tracker`` (20 S&P 500 constituents and
^GSPC daily, chosen by tracking error) and ``orb`` (SPY 1m, NYSE regular sessions, vector engine).

Expected values come from independent computations on the same data: the stored sweep rows, direct
``run_backtest`` runs, ``tracking_metrics``, the raw files' bars -- never written by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from btlab.backtest.metrics import daily_returns
from btlab.backtest.runner import run_backtest
from btlab.backtest.tracking import tracking_metrics
from btlab.errors import InvalidArgumentError
from btlab.evaluation.overfitting import pbo
from btlab.evaluation.walkforward import evaluate_walkforward, pbo_splits, walkforward_windows
from btlab.marketdata.sources.files.folder import bar_files, symbol_of_file
from btlab.marketdata.sources.files.importer import import_bars
from btlab.store.duckdb import DuckDBStore
from btlab.sweep.grid import Grid
from btlab.sweep.walkforward import run_walkforward
from realdata import DATA, btc_1h

STOCKS = DATA / "sp500_daily" / "individual_stocks_5yr"
GSPC = DATA / "sp500_daily" / "index" / "GSPC_2013-02-08_2018-02-07.csv.gz"
SPY_1M = DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz"
MEMBERS = sorted(f.name.split("_")[0] for f in STOCKS.glob("*_data.csv.gz"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with DuckDBStore(tmp_path_factory.mktemp("research") / "store.duckdb") as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        for f in bar_files([STOCKS]):
            import_bars(f, st, exchange="nyse", symbol=symbol_of_file(f), timeframe="1d")
        import_bars(GSPC, st, exchange="nyse", symbol="^GSPC", timeframe="1d")
        import_bars(SPY_1M, st, exchange="nyse", symbol="SPY", timeframe="1m")
        yield st


def _params(value) -> dict:
    return json.loads(value) if isinstance(value, str) else dict(value)


def _check_chain(run, result) -> None:
    """The chained OOS curve is exactly the test segments' bars, in order, each inside its test window; the
    statistics of every window are finite probabilities."""
    for w in run.windows:
        idx = w.oos_equity.index
        assert idx.min() >= w.window.test_start and idx.max() <= w.window.test_end
    expected = np.concatenate([w.oos_equity.index.to_numpy() for w in run.windows])
    assert (result.equity["ts"].to_numpy() == expected).all()
    assert result.equity["ts"].is_monotonic_increasing
    for row in result.windows.to_dict("records"):
        assert 0.0 <= row["dsr"] <= 1.0 and 0.0 <= row["pbo"] <= 1.0


# ---- regime_fsm: one instrument, 1h base + 1d machine ------------------------------------------------------------
@pytest.fixture(scope="module")
def regime(store):
    windows = walkforward_windows("2021-01-01", "2021-12-31", train="6m", test="3m")
    grid = Grid.from_specs(["period=10,20", "enter_pct=0.02,0.04"])
    run = run_walkforward("regime_fsm", grid, windows=windows, exchange="binance", symbols="BTC/USDT",
                          timeframe="1h", resample="1d", workers=1, store=store)
    return run, evaluate_walkforward(run)


def test_regime_fsm_chooses_the_best_stored_trial_and_chains_the_test_windows(regime, store):
    run, result = regime
    assert len(run.windows) == 2
    _check_chain(run, result)
    bars = btc_1h().set_index("ts").index
    for w in run.windows:
        stored = store.sweep_runs(w.sweep_id, status="finished")
        assert len(stored) == 4 == w.n_trials
        assert _params(store.get_sweep(w.sweep_id)["config"])["resample"] == ["1d"]
        assert w.params == _params(stored.loc[stored["sharpe"].idxmax(), "params"])
        # every 1h bar of the test window is in the segment
        inside = bars[(bars >= w.window.test_start) & (bars <= w.window.test_end)]
        assert (w.oos_equity.index == inside).all()


def test_regime_fsm_test_run_warms_up_its_daily_machine_on_whole_days(regime, store):
    """The 1d SMA needs ``period`` whole days before the test start: the test run starts at midnight ``period``
    days before it, and a direct run from there with the same feeds is the segment."""
    run, _ = regime
    bars = btc_1h().set_index("ts").index
    for w in run.windows:
        start = w.window.test_start - pd.Timedelta(days=w.params["period"])
        # W: the file's 1h bars in those days (24 a day where Binance has no gap)
        assert w.warmup_start == start and w.warmup_bars == ((bars >= start) & (bars < w.window.test_start)).sum()
        direct = run_backtest("regime_fsm", symbol="BTC/USDT", timeframes=["1h", "1d"], start=start.isoformat(),
                              end=w.window.test[1], params=w.params, cash=w.oos_cash, store=store, record=False)
        seg = direct.equity[direct.equity.index >= w.window.test_start]
        assert np.allclose(seg["value"].to_numpy(), w.oos_equity["value"].to_numpy())
        early = direct.orders[pd.to_datetime(direct.orders["ts"], utc=True) < w.window.test_start]
        assert early.empty


def test_regime_fsm_pbo_from_every_trial_s_train_returns(regime, store):
    """The workers' daily returns of a trial equal a direct run's on the train window; the window's PBO is CSCV
    on all of them."""
    run, result = regime
    w = run.windows[0]
    first = _params(store.sweep_runs(w.sweep_id, status="finished")["params"].iloc[0])
    direct = run_backtest("regime_fsm", symbol="BTC/USDT", timeframes=["1h", "1d"], start=w.window.train[0],
                          end=w.window.train[1], params=first, store=store, record=False)
    want = daily_returns(direct.equity["value"], direct.config.cash)
    got = w.trial_returns[json.dumps(first, sort_keys=True, default=str)]
    assert np.allclose(got.to_numpy(), want.to_numpy())
    assert w.trial_returns.shape == (len(want), 4)
    assert result.windows["pbo"].iloc[0] == pbo(w.trial_returns, n_splits=16).pbo


# ---- mp_tracker: 20 constituents + ^GSPC, chosen by tracking error -----------------------------------------------
@pytest.fixture(scope="module")
def tracker(store):
    windows = walkforward_windows("2013-03-01", "2015-02-28", train="1y", test="6m")
    grid = Grid.from_specs(["k=5,10", "lookback=63,126"])
    run = run_walkforward("mp_tracker", grid, windows=windows, exchange="nyse", symbols=[*MEMBERS, "^GSPC"],
                          timeframe="1d", by="tracking_error", cash=1_000_000, workers=1, store=store)
    return run, evaluate_walkforward(run)


def test_mp_tracker_chooses_the_lowest_stored_tracking_error(tracker, store):
    run, result = tracker
    assert len(run.windows) == 2
    _check_chain(run, result)
    for w, row in zip(run.windows, result.windows.to_dict("records")):
        stored = store.sweep_runs(w.sweep_id, status="finished")
        te = [json.loads(m)["tracking_error"] for m in stored["metrics"]]
        assert all(math.isfinite(x) for x in te)
        assert w.params == _params(stored["params"].iloc[int(np.argmin(te))])
        assert row["is_tracking_error"] == min(te) == w.is_metrics["tracking_error"]


def test_mp_tracker_test_run_rebalances_on_the_first_test_bar(tracker, store):
    """Warm-up = lookback index bars, so the first rebalance is decided on the first test bar (filled at the next
    open); the OOS tracking error is tracking_metrics of the test run from the test start."""
    run, result = tracker
    for w in run.windows:
        assert w.warmup_bars == w.params["lookback"]
        test = run_backtest("mp_tracker", symbols=[*MEMBERS, "^GSPC"], exchange="nyse", timeframe="1d",
                            start=w.warmup_start.isoformat(), end=w.window.test[1], params=w.params,
                            cash=w.oos_cash, store=store, record=False)
        assert test.strategy.rebalances[0]["ts"] >= w.window.test_start.to_pydatetime()
        first_bar = w.oos_equity.index[0]
        assert test.strategy.rebalances[0]["ts"] < first_bar + pd.Timedelta(days=2)
        equity = test.equity[test.equity.index >= w.window.test_start]
        want = tracking_metrics(equity, test.orders, test.bars_by_symbol["^GSPC"])["tracking_error"]
        assert w.oos_metrics["tracking_error"] == pytest.approx(want, rel=1e-12)
    side = result.side_by_side.loc["tracking_error"]
    assert 0 < side["in_sample"] < 0.2 and 0 < side["out_of_sample"] < 0.2


def test_tracking_error_ranks_only_index_trackers(store):
    windows = walkforward_windows("2013-03-01", "2015-02-28", train="1y", test="6m")
    with pytest.raises(InvalidArgumentError, match="unknown metric 'tracking'"):
        run_walkforward("mp_tracker", {"params": {"k": [5]}}, windows=windows, exchange="nyse",
                        symbols=[*MEMBERS, "^GSPC"], timeframe="1d", by="tracking", store=store)
    with pytest.raises(InvalidArgumentError, match="vector engine runs the base timeframe only"):
        run_walkforward("sma_cross", {"params": {"fast": [10]}}, windows=windows, exchange="binance",
                        symbols="BTC/USDT", timeframe="1h", resample="1d", engine="vector", store=store)


# ---- orb: SPY 1m, regular sessions, vector engine ----------------------------------------------------------------
@pytest.fixture(scope="module")
def orb(store):
    windows = walkforward_windows("2024-02-20", "2024-04-15", train="4w", test="2w")
    grid = Grid.from_specs(["range_minutes=15,30", "stop_pct=0.5,1.0"])
    run = run_walkforward("orb", grid, windows=windows, exchange="nyse", symbols="SPY", timeframe="1m",
                          engine="vector", workers=1, store=store)
    return run, evaluate_walkforward(run)


def test_orb_segments_are_the_regular_session_bars_of_the_test_windows(orb, store):
    run, result = orb
    assert len(run.windows) == 2
    _check_chain(run, result)
    for w in run.windows:
        stored = store.sweep_runs(w.sweep_id, status="finished")
        assert w.params == _params(stored.loc[stored["sharpe"].idxmax(), "params"])
        direct = run_backtest("orb", symbol="SPY", exchange="nyse", timeframe="1m", start=w.window.test[0],
                              end=w.window.test[1], params=w.params, cash=w.oos_cash, store=store, record=False)
        assert (direct.equity.index == w.oos_equity.index).all()  # regular session only, as a backtest
        ny = w.oos_equity.index.tz_convert("America/New_York")
        minutes = ny.hour * 60 + ny.minute
        assert minutes.min() >= 9 * 60 + 30 and minutes.max() < 16 * 60
        assert np.allclose(direct.equity["value"].to_numpy(), w.oos_equity["value"].to_numpy())


def test_orb_pbo_on_a_short_train_window_uses_fewer_blocks(orb):
    run, result = orb
    for w, value in zip(run.windows, result.windows["pbo"]):
        days = len(w.trial_returns)
        assert 16 <= days < 32 and pbo_splits(days) < 16
        assert value == pbo(w.trial_returns, n_splits=pbo_splits(days)).pbo
