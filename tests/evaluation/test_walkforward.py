"""Walk-forward evaluation: the windows (pure arithmetic) and a real walk-forward of sma_cross on the bundled Binance
BTC/USDT 1h bars (vector engine for the train sweeps, Backtrader for the recorded test runs) in a real DuckDB store.

Every expected value comes from an independent computation on the same data: direct run_backtest runs, the stored
sweeps, compute_metrics and deflated_sharpe_ratio -- never written by hand."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from btlab.backtest.metrics import compute_metrics, daily_returns
from btlab.backtest.runner import run_backtest
from btlab.errors import InvalidArgumentError
from btlab.evaluation.sharpe import deflated_sharpe_ratio
from btlab.evaluation.walkforward import bound_text, evaluate_walkforward, walkforward_windows
from btlab.store.duckdb import DuckDBStore
from btlab.sweep.grid import Grid
from btlab.sweep.top import best_runs
from btlab.sweep.walkforward import WalkForwardProgress, run_walkforward
from realdata import btc_1h

UTC = "UTC"
NS = pd.Timedelta(1, "ns")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# ---- windows ------------------------------------------------------------------------------------------------------
def test_rolling_windows_cover_the_range_with_adjacent_test_windows():
    w = walkforward_windows("2018-01-01", "2023-12-31", train="2y", test="6m")
    assert len(w) == 8 and w.untested is None and not w.anchored and w.step == "6m"
    assert (w[0].train_start, w[0].train_end) == (ts("2018-01-01"), ts("2020-01-01") - NS)
    assert (w[0].test_start, w[0].test_end) == (ts("2020-01-01"), ts("2020-07-01") - NS)
    assert w[0].train == ("2018-01-01", "2019-12-31") and w[0].test == ("2020-01-01", "2020-06-30")
    assert w[-1].test == ("2023-07-01", "2023-12-31") and w[-1].train == ("2021-07-01", "2023-06-30")
    for a, b in zip(w, list(w)[1:]):
        assert b.test_start == a.test_end + NS  # test windows adjacent, never overlapping
        assert b.train_start == a.train_start + pd.DateOffset(months=6)  # rolling: the train window moves
    for x in w:
        assert x.test_start == x.train_end + NS and x.train_start + pd.DateOffset(years=2) == x.test_start


def test_anchored_windows_grow_the_train_window_from_the_start():
    w = walkforward_windows("2018-01-01", "2021-12-31", train="1y", test="1y", anchored=True)
    assert [x.train for x in w] == [("2018-01-01", "2018-12-31"), ("2018-01-01", "2019-12-31"),
                                    ("2018-01-01", "2020-12-31")]
    assert [x.test for x in w] == [("2019-01-01", "2019-12-31"), ("2020-01-01", "2020-12-31"),
                                   ("2021-01-01", "2021-12-31")]


def test_a_partial_last_test_window_is_dropped_and_reported_untested():
    w = walkforward_windows("2018-01-01", "2023-10-15", train="2y", test="6m")
    assert w[-1].test == ("2023-01-01", "2023-06-30")
    assert w.untested == (ts("2023-07-01"), ts("2023-10-16") - NS)


def test_step_longer_than_test_leaves_gaps_and_days_weeks_work():
    w = walkforward_windows("2020-01-01", "2020-03-31", train="4w", test="10d", step="3w")
    assert [x.test for x in w] == [("2020-01-29", "2020-02-07"), ("2020-02-19", "2020-02-28"),
                                   ("2020-03-11", "2020-03-20")]
    assert w.untested == (ts("2020-03-21"), ts("2020-04-01") - NS)


def test_months_count_from_the_start_without_drifting():
    w = walkforward_windows("2020-01-31", "2020-06-30", train="1m", test="1m")
    # 2020-01-31 + 1m = 2020-02-29, + 2m = 2020-03-31 (not 2020-03-29)
    assert [x.test_start for x in w][:2] == [ts("2020-02-29"), ts("2020-03-31")]


def test_bounds_off_whole_days_are_iso_times():
    w = walkforward_windows("2020-01-01T12:00Z", "2020-03-01", train="2w", test="1w")
    assert w[0].train == ("2020-01-01T12:00:00+00:00", "2020-01-15T11:59:59.999999999+00:00")
    assert bound_text(ts("2020-01-15") - NS, end=True) == "2020-01-14"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train": "2x", "test": "6m"}, "--train '2x'"),
    ({"train": "0y", "test": "6m"}, "--train '0y'"),
    ({"train": "2y", "test": "6m", "step": "1m"}, "--step 1m is shorter than --test 6m"),
    ({"train": "5y", "test": "1y"}, "too short for one window"),
])
def test_bad_window_requests_are_one_line_errors(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message) as info:
        walkforward_windows("2018-01-01", "2021-12-31", **kwargs)
    assert "\n" not in str(info.value)


def test_both_bounds_are_required_and_ordered():
    with pytest.raises(InvalidArgumentError, match="needs both --from and --to"):
        walkforward_windows("2018-01-01", None, train="1y", test="1y")
    with pytest.raises(InvalidArgumentError, match="--from 2020-01-01 is after --to 2019-01-01"):
        walkforward_windows("2020-01-01", "2019-01-01", train="1y", test="1y")


# ---- a real walk-forward ------------------------------------------------------------------------------------------
GRID = Grid.from_specs(["fast=10,20", "slow=50,100"])
REQUEST = {"exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1h"}
CASH = 10_000.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with DuckDBStore(tmp_path_factory.mktemp("walkforward") / "store.duckdb") as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        yield st


@pytest.fixture(scope="module")
def windows():
    return walkforward_windows("2019-01-01", "2021-06-30", train="1y", test="6m")


@pytest.fixture(scope="module")
def walk(store, windows):
    seen: list[WalkForwardProgress] = []
    run = run_walkforward("sma_cross", GRID, windows=windows, **REQUEST, engine="vector", workers=1, store=store,
                          cash=CASH, progress=seen.append)
    return run, evaluate_walkforward(run), seen


def test_three_windows_ran_with_progress(walk, windows):
    run, result, seen = walk
    assert len(windows) == 3 and len(run.windows) == 3 and len(result.windows) == 3
    stages = [(p.window, p.stage) for p in seen if p.stage != "train"]
    assert stages == [(0, "test"), (0, "done"), (1, "test"), (1, "done"), (2, "test"), (2, "done")]
    assert all(p.sweep.total == 4 for p in seen if p.stage == "train")


def test_the_chosen_combination_is_the_best_of_its_stored_sweep(walk, store):
    run, result, _ = walk
    for w, row in zip(run.windows, result.windows.to_dict("records")):
        stored = store.sweep_runs(w.sweep_id, status="finished")
        assert len(stored) == 4 == w.n_trials == row["n_trials"]
        assert store.get_sweep(w.sweep_id)["data_from"] == w.window.train_start
        top = stored.loc[stored["sharpe"].idxmax()]
        assert w.params == json.loads(top["params"])
        assert row["is_sharpe"] == stored["sharpe"].max()
        assert best_runs(stored, "sharpe", 1)["run_id"].iloc[0] == top["run_id"]


def test_each_oos_segment_is_a_direct_run_from_the_warm_up_start(walk, store):
    """The comparison: run_backtest of the chosen params from ``warmup_start`` (the ``slow`` bars before the test
    start: SMA(slow) plus one bar for CrossOver = Backtrader's minimum period slow + 1) to the test end, with the
    segment's cash: it is flat at that cash on every warm-up bar, orders nothing before the test start, and its
    equity from the test start IS the segment (and the recorded test run)."""
    run, _, _ = walk
    bars = btc_1h().set_index("ts")
    for w in run.windows:
        win = w.window
        assert w.warmup_bars == w.params["slow"]
        before = bars.index[bars.index < win.test_start]
        assert w.warmup_start == before[-w.warmup_bars]
        direct = run_backtest("sma_cross", symbol="BTC/USDT", exchange="binance", timeframe="1h",
                              start=w.warmup_start.isoformat(), end=win.test[1], params=w.params, cash=w.oos_cash,
                              store=store, record=False)
        eq = direct.equity
        assert len(eq[eq.index < win.test_start]) == w.warmup_bars
        assert (eq.loc[eq.index < win.test_start, "value"] == w.oos_cash).all()
        assert (pd.to_datetime(direct.orders["ts"], utc=True) >= win.test_start).all()
        assert (pd.to_datetime(direct.trades["entry_ts"], utc=True) >= win.test_start).all()
        segment = eq[eq.index >= win.test_start]
        pd.testing.assert_frame_equal(w.oos_equity, segment)
        assert segment.index[0] == win.test_start and segment.index[-1] <= win.test_end
        assert len(w.oos_trades) == len(direct.trades) and len(direct.trades) > 0
        stored = store.read_equity(w.oos_run_id)
        np.testing.assert_allclose(stored["value"].to_numpy(), eq["value"].to_numpy(), rtol=1e-12)
        assert store.run_row(w.oos_run_id)["status"] == "finished"


def test_segments_chain_by_ending_equity_and_metrics_are_compute_metrics_of_the_chain(walk):
    run, result, _ = walk
    assert run.windows[0].oos_cash == CASH
    for prev, nxt in zip(run.windows, run.windows[1:]):
        assert nxt.oos_cash == prev.oos_equity["value"].iloc[-1]
    chain = pd.concat([w.oos_equity for w in run.windows])
    assert chain.index.is_monotonic_increasing and chain.index.is_unique
    np.testing.assert_array_equal(result.equity["value"].to_numpy(), chain["value"].to_numpy())
    assert list(result.equity["ts"]) == list(chain.index)
    trades = pd.concat([w.oos_trades for w in run.windows])
    expected = compute_metrics(chain, trades, start_value=CASH, calendar="24/7")
    assert result.metrics == expected
    assert result.metrics.end_value == run.windows[-1].oos_equity["value"].iloc[-1]
    growth = np.prod([w.oos_equity["value"].iloc[-1] / w.oos_cash for w in run.windows])
    assert result.metrics.total_return == pytest.approx(growth - 1.0, rel=1e-12)
    assert result.side_by_side.loc["sharpe", "out_of_sample"] == expected.sharpe
    assert result.side_by_side.loc["sharpe", "in_sample"] == pytest.approx(
        np.mean([w.is_metrics["sharpe"] for w in run.windows]), rel=1e-12)
    for w, row in zip(run.windows, result.windows.to_dict("records")):
        alone = compute_metrics(w.oos_equity, w.oos_trades, start_value=w.oos_cash, calendar="24/7")
        assert row["oos_sharpe"] == alone.sharpe and row["oos_return"] == alone.total_return


def test_dsr_of_each_window_from_its_train_returns_and_its_trials(walk, store):
    run, result, _ = walk
    for w, row in zip(run.windows, result.windows.to_dict("records")):
        direct = run_backtest("sma_cross", symbol="BTC/USDT", exchange="binance", timeframe="1h",
                              start=w.window.train[0], end=w.window.train[1], params=w.params, cash=CASH,
                              store=store, record=False)
        # the vector engine's sweep row and a Backtrader run of the same combination agree (fill parity)
        assert direct.summary.sharpe == pytest.approx(row["is_sharpe"], rel=1e-9)
        returns = daily_returns(direct.equity["value"], CASH)
        trials = store.sweep_runs(w.sweep_id, status="finished")["sharpe"].to_numpy() / math.sqrt(365)
        expected = deflated_sharpe_ratio(returns.to_numpy(), trial_srs=trials)
        assert row["dsr"] == pytest.approx(expected.dsr, rel=1e-12) and 0.0 <= row["dsr"] <= 1.0


def test_pbo_of_each_window_from_every_combination_s_train_returns(walk, store):
    """The vector engine's trial returns: one column per combination; each column's annualized Sharpe ratio is the
    sweep row's (the same daily series), the chosen one's column is the Backtrader train run's daily returns, and
    the window's PBO is CSCV (S = 16) on them."""
    from btlab.evaluation.overfitting import pbo

    run, result, _ = walk
    for w, row in zip(run.windows, result.windows.to_dict("records")):
        returns = w.trial_returns
        assert returns.shape[1] == 4 and returns.index.is_monotonic_increasing
        stored = store.sweep_runs(w.sweep_id, status="finished")
        for params, sharpe in zip(stored["params"], stored["sharpe"]):
            column = returns[json.dumps(json.loads(params), sort_keys=True)]
            assert column.mean() / column.std(ddof=1) * math.sqrt(365) == pytest.approx(sharpe, rel=1e-9)
        assert row["pbo"] == pbo(returns, n_splits=16).pbo and 0.0 <= row["pbo"] <= 1.0
    direct = run_backtest("sma_cross", symbol="BTC/USDT", exchange="binance", timeframe="1h",
                          start=run.windows[0].window.train[0], end=run.windows[0].window.train[1],
                          params=run.windows[0].params, cash=CASH, store=store, record=False)
    chosen = run.windows[0].trial_returns[json.dumps(run.windows[0].params, sort_keys=True)]
    np.testing.assert_allclose(chosen.to_numpy(), daily_returns(direct.equity["value"], CASH).to_numpy(), rtol=1e-9)


def test_the_windows_table_names_the_ranking_metric(walk):
    """Ranked by another metric, the table holds ``is_<by>``/``oos_<by>`` beside the Sharpe ratios."""
    from dataclasses import replace

    run, _, _ = walk
    table = evaluate_walkforward(replace(run, by="calmar")).windows
    assert {"is_calmar", "oos_calmar", "is_sharpe", "oos_sharpe"} <= set(table.columns)
    for w, row in zip(run.windows, table.to_dict("records")):
        assert row["is_calmar"] == w.is_metrics["calmar"] and row["oos_calmar"] == w.oos_metrics["calmar"]


def test_running_it_again_resumes_the_same_walk_forward(walk, store, windows):
    run, result, _ = walk
    seen: list[WalkForwardProgress] = []
    again = run_walkforward("sma_cross", GRID, windows=windows, **REQUEST, engine="vector", workers=1, store=store,
                            cash=CASH, progress=seen.append)
    assert again.walkforward_id == run.walkforward_id
    assert all(p.sweep.skipped == 4 for p in seen if p.stage == "train")  # no combination ran twice
    assert [w.params for w in again.windows] == [w.params for w in run.windows]
    assert evaluate_walkforward(again).metrics == result.metrics
    assert len(store.sweep_runs(f"{run.walkforward_id}-w00")) == 4


def test_a_reused_id_with_another_grid_counts_only_the_current_grid(walk, store, windows):
    """--walkforward-id given again with a smaller grid: the window's sweep keeps the older rows, but the trials
    (and the choice) are those of the current grid only."""
    run, _, _ = walk
    small = Grid.from_specs(["fast=20", "slow=50,100"])
    again = run_walkforward("sma_cross", small, windows=walkforward_windows("2019-01-01", "2020-06-30", train="1y",
                                                                             test="6m"),
                            **REQUEST, engine="vector", workers=1, store=store, walkforward_id=run.walkforward_id)
    w = again.windows[0]
    assert len(store.sweep_runs(w.sweep_id, status="finished")) == 4 and w.n_trials == 2
    assert w.params["fast"] == 20 and len(w.trial_sharpes) == 2


def test_a_strategy_ordering_in_its_warm_up_is_refused(store, tmp_path):
    path = tmp_path / "early.py"
    path.write_text(textwrap.dedent("""
        from btlab.strategies.sma_cross import SmaCross

        class EarlyBird(SmaCross):
            '''sma_cross that buys during its warm-up (in prenext).'''

            def prenext(self):
                if not self.position:
                    self.buy()
    """))
    windows = walkforward_windows("2020-01-01", "2020-12-31", train="6m", test="6m")
    with pytest.raises(InvalidArgumentError, match="orders during its warm-up") as info:
        run_walkforward(f"{path}:EarlyBird", Grid.from_specs(["fast=10", "slow=50,60"]), windows=windows,
                        **REQUEST, workers=1, store=store)
    assert "\n" not in str(info.value)


def test_bad_requests_are_refused_before_anything_runs(store, windows):
    with pytest.raises(InvalidArgumentError, match="unknown metric 'sharp'"):
        run_walkforward("sma_cross", GRID, windows=windows, **REQUEST, by="sharp", store=store)
    with pytest.raises(InvalidArgumentError, match="unknown engine"):
        run_walkforward("sma_cross", GRID, windows=windows, **REQUEST, engine="gpu", store=store)
