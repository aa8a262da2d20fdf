"""Metrics checked against empyrical-reloaded and Backtrader's own analyzers on the same real runs."""

from __future__ import annotations

import empyrical
import numpy as np
import pandas as pd
import pytest

import btlab
from btlab.backtest.compat import bt
from btlab.backtest.metrics import compute_metrics, daily_returns, monthly_returns
from btlab.store.duckdb import DuckDBStore
from realdata import aapl_1d, btc_1h
from realdata import utc_daily_returns as _daily
from userstrats.longshort import LongShortCross


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with DuckDBStore(tmp_path_factory.mktemp("metrics") / "m.duckdb") as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        st.write_bars(aapl_1d(), exchange="nasdaq", symbol="AAPL", timeframe="1d", source="test")
        yield st


ANALYZERS = {"ta": bt.analyzers.TradeAnalyzer, "dd": bt.analyzers.DrawDown}


@pytest.fixture(scope="module")
def sma_run(store):
    return btlab.run_backtest("sma_cross", store=store, start="2020-01-01", end="2023-12-31",
                              params={"fast": 10, "slow": 30}, analyzers=ANALYZERS)


@pytest.fixture(scope="module")
def longshort_run(store):
    return btlab.run_backtest(LongShortCross, store=store, start="2019-01-01", end="2021-06-30", stake=None,
                              size_pct=None, analyzers=ANALYZERS)


@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_ratios_match_empyrical(run, request):
    result = request.getfixturevalue(run)
    m = result.summary
    r = _daily(result)
    ours = daily_returns(result.equity["value"], result.config.cash)
    np.testing.assert_allclose(ours.to_numpy(), r.to_numpy(), rtol=0, atol=1e-15)
    assert m.periods_per_year == 365 and m.n_days == len(r)
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(r, annualization=365), rel=1e-12)
    assert m.sortino == pytest.approx(empyrical.sortino_ratio(r, annualization=365), rel=1e-12)
    assert m.cagr == pytest.approx(empyrical.annual_return(r, annualization=365), rel=1e-12)
    assert m.volatility == pytest.approx(empyrical.annual_volatility(r, annualization=365), rel=1e-12)
    assert m.calmar == pytest.approx(empyrical.calmar_ratio(r, annualization=365), rel=1e-12)
    # per-bar max drawdown equals empyrical's on the per-bar return series (starting cash first)
    values = np.concatenate(([result.config.cash], result.equity["value"].to_numpy()))
    bar_returns = pd.Series(values[1:] / values[:-1] - 1.0)
    assert m.max_drawdown == pytest.approx(empyrical.max_drawdown(bar_returns), rel=1e-12)
    assert m.total_return == pytest.approx(empyrical.cum_returns_final(r), rel=1e-12)


@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_trade_and_drawdown_stats_match_backtrader(run, request):
    result = request.getfixturevalue(run)
    m, ta, dd = result.summary, result.analyzers["ta"], result.analyzers["dd"]
    assert m.n_trades == ta.total.closed > 50
    assert m.max_drawdown == pytest.approx(-dd.max.drawdown / 100.0, rel=1e-12)
    assert m.max_drawdown_bars == dd.max.len
    assert m.avg_trade == pytest.approx(ta.pnl.net.average, rel=1e-12)
    assert m.win_rate == pytest.approx(ta.won.total / ta.total.closed, rel=1e-12)  # no zero-PnL trade here
    assert m.profit_factor == pytest.approx(ta.won.pnl.total / -ta.lost.pnl.total, rel=1e-12)
    assert m.end_value == pytest.approx(result.strategy.broker.getvalue(), rel=1e-12)
    trades = result.trades
    assert (trades["direction"] == "long").sum() == ta.long.total
    assert (trades["direction"] == "short").sum() == ta.short.total
    assert trades["pnl_net"].sum() == pytest.approx(ta.pnl.net.total, rel=1e-9)
    assert trades["pnl"].sum() == pytest.approx(ta.pnl.gross.total, rel=1e-9)


def test_short_trades_exist_and_exit_prices_are_fills(longshort_run):
    trades, orders = longshort_run.trades, longshort_run.orders
    assert set(trades["direction"]) == {"long", "short"}
    fills = orders[orders["status"] == "Completed"].set_index("ts")["executed_price"]
    for trade in trades.itertuples():
        # a reversal order closes one trade and opens the next at the same fill price
        assert trade.exit_price == pytest.approx(fills.loc[trade.ts], rel=1e-9)
        assert trade.entry_price == pytest.approx(fills.loc[trade.entry_ts], rel=1e-9)
        sign = 1 if trade.direction == "long" else -1
        assert trade.pnl == pytest.approx(sign * abs(trade.size) * (trade.exit_price - trade.entry_price), rel=1e-9)


def test_equity_calendar_uses_252(store):
    result = btlab.run_backtest("sma_cross", store=store, exchange="nasdaq", symbol="AAPL", timeframe="1d",
                                params={"fast": 20, "slow": 50}, analyzers=ANALYZERS)
    m = result.summary
    assert m.calendar == "equity" and m.periods_per_year == 252
    r = _daily(result)
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(r, annualization=252), rel=1e-12)
    assert m.cagr == pytest.approx(empyrical.annual_return(r, annualization=252), rel=1e-12)
    assert m.max_drawdown == pytest.approx(-result.analyzers["dd"].max.drawdown / 100.0, rel=1e-12)
    assert m.n_trades == result.analyzers["ta"].total.closed


def test_drawdown_duration_on_real_equity(sma_run):
    eq = sma_run.equity
    values = np.concatenate(([sma_run.config.cash], eq["value"].to_numpy()))
    peak = np.maximum.accumulate(values)
    # brute force: longest stretch between a new high and the next time the high is reached again
    best_days, peak_i = 0.0, 0
    times = np.concatenate((eq.index[:1].asi8, eq.index.asi8))
    for i in range(1, len(values)):
        if values[i] >= peak[i - 1]:
            best_days = max(best_days, (times[i] - times[peak_i]) / 86_400e9)
            peak_i = i
    best_days = max(best_days, (times[-1] - times[peak_i]) / 86_400e9) if values[-1] < peak[-1] else best_days
    assert sma_run.summary.max_drawdown_days == pytest.approx(best_days, rel=1e-12)


def test_monthly_returns_compound_to_total(sma_run):
    table = monthly_returns(sma_run.equity["value"], sma_run.config.cash)
    months = table.drop(columns="year").to_numpy().ravel()
    growth = np.nanprod(1 + months)
    assert growth - 1 == pytest.approx(sma_run.summary.total_return, rel=1e-9)
    assert np.nanprod(1 + table["year"].to_numpy()) - 1 == pytest.approx(sma_run.summary.total_return, rel=1e-9)
    assert list(table.index) == [2020, 2021, 2022, 2023]


def test_no_trades_gives_undefined_trade_stats():
    bars = btc_1h().set_index("ts").loc["2021-01-01":"2021-03-31"]
    equity = pd.DataFrame({"value": 10_000.0, "position_value": 0.0}, index=bars.index)
    m = compute_metrics(equity, pd.DataFrame({"pnl_net": []}), start_value=10_000.0, calendar="crypto")
    assert m.n_trades == 0 and np.isnan(m.win_rate) and np.isnan(m.profit_factor)
    assert m.total_return == 0 and m.max_drawdown == 0 and m.exposure == 0
    assert np.isnan(m.sharpe)  # flat curve: undefined, as empyrical gives
    assert np.isnan(empyrical.sharpe_ratio(pd.Series(np.zeros(90)), annualization=365))
