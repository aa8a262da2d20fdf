"""The metrics added for the run report (benchmark, alpha/beta, distribution, trade quality, chart series),
each checked against an independent computation on real runs: empyrical-reloaded, scipy.stats, Backtrader's own
analyzers and broker, or a brute-force loop.
"""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
import scipy.stats

import btlab
from btlab.backtest.compat import bt
from btlab.backtest.feed import BarFrameData, StoreData
from btlab.backtest.metrics import (
    Metrics,
    benchmark_equity,
    compute_metrics,
    daily_returns,
    drawdown_periods,
    open_positions,
    rolling_sharpe,
    rolling_volatility,
    rolling_window,
    yearly_returns,
)
from btlab.backtest.recorder import Recorder
from btlab.store.duckdb import DuckDBStore
from realdata import DATA, aapl_1d, btc_1h, btc_1m
from realdata import utc_daily_returns as _daily
from userstrats.longshort import LongShortCross

CASH = 10_000.0


def eth_1m() -> pd.DataFrame:
    """Binance ETH/USDT 1m klines, 2025-05-20 .. 2025-08-18 (same minutes as btc_1m)."""
    return pd.read_feather(DATA / "ETH_USDT-1m_2025-05-20_2025-08-18.feather").rename(columns={"date": "ts"})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with DuckDBStore(tmp_path_factory.mktemp("metrics_ext") / "m.duckdb") as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        st.write_bars(aapl_1d(), exchange="nasdaq", symbol="AAPL", timeframe="1d", source="test")
        yield st


ANALYZERS = {"ta": bt.analyzers.TradeAnalyzer, "sqn": bt.analyzers.SQN}


@pytest.fixture(scope="module")
def sma_run(store):
    """The demo run: sma_cross 10/30 on BTC/USDT 1h 2020-2023 (ends with a position open)."""
    return btlab.run_backtest("sma_cross", store=store, start="2020-01-01", end="2023-12-31",
                              params={"fast": 10, "slow": 30}, analyzers=ANALYZERS)


@pytest.fixture(scope="module")
def longshort_run(store):
    return btlab.run_backtest(LongShortCross, store=store, start="2019-01-01", end="2021-06-30", stake=None,
                              size_pct=None, analyzers=ANALYZERS)


def _bench_daily(result) -> pd.Series:
    """The benchmark's daily returns, independently: units bought at the first open, valued at each day's close."""
    bars = result.bars.set_index("ts")
    value = CASH / bars["open"].iloc[0] * bars["close"]
    closes = value.resample("1D").last().dropna()
    start = pd.Series([CASH], index=[closes.index[0] - pd.Timedelta(days=1)])
    return pd.concat([start, closes]).pct_change().dropna()


# ---- benchmark -----------------------------------------------------------------------------------------------
class CheatOnOpenBuyHold(bt.Strategy):
    """Splits the cash equally and buys every feed at a bar's OPEN (cheat-on-open), then holds.

    Backtrader calls ``next_open`` first on the second bar, so the purchase happens at the second bar's open.
    """

    def __init__(self):
        self.values: list[float] = []
        self.bought_at: int | None = None

    def next_open(self):
        if self.bought_at is None:
            share = self.broker.getcash() / len(self.datas)
            for d in self.datas:
                self.buy(data=d, size=share / d.open[0])
            self.bought_at = len(self)  # still the previous bar's count: the buy fills at bar len(self)

    def next(self):
        self.values.append(self.broker.getvalue())


def test_benchmark_equity_equals_backtrader_buy_and_hold_of_two_instruments():
    """Equal weights, bought at the first bar's open, no costs: Backtrader's broker value, bar by bar."""
    btc = btc_1m().iloc[:4_000].reset_index(drop=True)
    eth = eth_1m().iloc[:4_000].reset_index(drop=True)
    assert btc["ts"].equals(eth["ts"])
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.adddata(BarFrameData(bars=btc, bars_timeframe="1m"), name="BTC/USDT")
    cerebro.adddata(BarFrameData(bars=eth, bars_timeframe="1m"), name="ETH/USDT")
    cerebro.broker.setcash(CASH)
    cerebro.broker.set_checksubmit(False)  # fractional units worth exactly the cash
    cerebro.addstrategy(CheatOnOpenBuyHold)
    strat = cerebro.run()[0]
    k = strat.bought_at
    assert k == 1 and strat.values[0] == CASH

    btc, eth = btc.iloc[k:].reset_index(drop=True), eth.iloc[k:].reset_index(drop=True)  # the run from bar k
    ours = benchmark_equity({"BTC/USDT": btc, "ETH/USDT": eth}, CASH)
    assert ours.index.equals(pd.DatetimeIndex(btc["ts"]))
    np.testing.assert_allclose(ours.to_numpy(), strat.values[k:], rtol=1e-12)
    half = CASH / 2
    expected = half / btc["open"][0] * btc["close"] + half / eth["open"][0] * eth["close"]
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-13)


def test_benchmark_holds_cash_before_an_instruments_first_bar_and_values_on_other_times():
    btc = btc_1m().iloc[:600].reset_index(drop=True)
    eth = eth_1m().iloc[300:900].reset_index(drop=True)  # starts 300 minutes later, ends later
    ours = benchmark_equity({"BTC/USDT": btc, "ETH/USDT": eth}, CASH)
    assert len(ours) == 900  # the union of bar times
    half = CASH / 2
    early = ours.iloc[:300].to_numpy()
    np.testing.assert_allclose(early, half / btc["open"][0] * btc["close"][:300].to_numpy() + half, rtol=1e-13)
    late = ours.iloc[600:].to_numpy()  # BTC's last close carried forward
    np.testing.assert_allclose(late, half / btc["open"][0] * btc["close"].iloc[-1]
                               + half / eth["open"][0] * eth["close"][300:].to_numpy(), rtol=1e-13)
    # valued on another index (e.g. hourly equity times): the last close at or before each time
    hours = pd.date_range(btc["ts"][0], periods=10, freq="1h")
    on_hours = benchmark_equity(btc, CASH, index=hours)
    by_hand = CASH / btc["open"][0] * btc.set_index("ts")["close"].reindex(hours)
    np.testing.assert_allclose(on_hours.to_numpy(), by_hand.to_numpy(), rtol=1e-13)
    with pytest.raises(ValueError, match="no bars"):
        benchmark_equity({"BTC/USDT": btc.iloc[:0]}, CASH)
    with pytest.raises(ValueError, match="at least one"):
        benchmark_equity({}, CASH)


def test_recorder_benchmarks_every_instrument_of_a_multi_feed_run():
    """A run over two feeds (symbols 'BTC/USDT,ETH/USDT'): the benchmark is the equal-weight basket."""
    btc = btc_1m().iloc[:3_000].reset_index(drop=True)
    eth = eth_1m().iloc[:3_000].reset_index(drop=True)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(BarFrameData(bars=btc, bars_timeframe="1m"), name="BTC/USDT")
    cerebro.adddata(BarFrameData(bars=eth, bars_timeframe="1m"), name="ETH/USDT")
    cerebro.broker.setcash(CASH)
    cerebro.addstrategy(bt.Strategy)
    cerebro.addanalyzer(Recorder, _name="rec", run={"run_id": "x", "symbols": "BTC/USDT,ETH/USDT"})
    m = cerebro.run()[0].analyzers.rec.metrics
    half = CASH / 2
    end = half / btc["open"][0] * btc["close"].iloc[-1] + half / eth["open"][0] * eth["close"].iloc[-1]
    assert m.benchmark_total_return == pytest.approx(end / CASH - 1, rel=1e-12)
    assert m.total_return == 0 and m.beta == 0 and m.alpha == 0  # never traded: flat against the basket


@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_alpha_beta_information_ratio_match_empyrical(run, request):
    result = request.getfixturevalue(run)
    m = result.summary
    r, b = _daily(result), _bench_daily(result)
    assert r.index.equals(b.index) and len(r) == m.n_days
    alpha, beta = empyrical.alpha_beta(r, b, annualization=365)
    assert m.beta == pytest.approx(beta, rel=1e-10)
    assert m.alpha == pytest.approx(alpha, rel=1e-10)
    assert m.information_ratio == pytest.approx(empyrical.excess_sharpe(r, b) * math.sqrt(365), rel=1e-10)
    assert m.tracking_error == pytest.approx((r - b).std(ddof=1) * math.sqrt(365), rel=1e-10)
    assert m.benchmark_sharpe == pytest.approx(empyrical.sharpe_ratio(b, annualization=365), rel=1e-10)
    assert m.benchmark_cagr == pytest.approx(empyrical.annual_return(b, annualization=365), rel=1e-10)
    assert m.benchmark_volatility == pytest.approx(empyrical.annual_volatility(b, annualization=365), rel=1e-10)
    bars = result.bars
    assert m.benchmark_total_return == pytest.approx(bars["close"].iloc[-1] / bars["open"].iloc[0] - 1, rel=1e-12)
    per_bar = np.concatenate(([CASH], CASH / bars["open"].iloc[0] * bars["close"].to_numpy()))
    assert m.benchmark_max_drawdown == pytest.approx(
        empyrical.max_drawdown(pd.Series(per_bar[1:] / per_bar[:-1] - 1)), rel=1e-12)
    # stored with the run
    stored = btlab.open_store(result.store_address)
    try:
        assert stored.get_run(result.run_id)["metrics"]["alpha"] == pytest.approx(m.alpha, rel=1e-15)
    finally:
        stored.close()


def test_equity_calendar_benchmark_uses_252(store):
    result = btlab.run_backtest("sma_cross", store=store, exchange="nasdaq", symbol="AAPL", timeframe="1d",
                                params={"fast": 20, "slow": 50})
    m = result.summary
    r, b = _daily(result), _bench_daily(result)
    alpha, beta = empyrical.alpha_beta(r, b, annualization=252)
    assert m.periods_per_year == 252
    assert m.alpha == pytest.approx(alpha, rel=1e-10) and m.beta == pytest.approx(beta, rel=1e-10)
    assert m.information_ratio == pytest.approx(empyrical.excess_sharpe(r, b) * math.sqrt(252), rel=1e-10)
    assert m.benchmark_sharpe == pytest.approx(empyrical.sharpe_ratio(b, annualization=252), rel=1e-10)


def test_without_benchmark_its_fields_are_nan():
    bars = btc_1h().set_index("ts").loc["2021-01-01":"2021-03-31"]
    equity = pd.DataFrame({"value": CASH * bars["close"] / bars["close"].iloc[0], "position_value": 1.0})
    m = compute_metrics(equity, pd.DataFrame({"pnl_net": []}), start_value=CASH, calendar="crypto")
    for name in ("alpha", "beta", "information_ratio", "tracking_error", "benchmark_total_return",
                 "benchmark_sharpe", "benchmark_max_drawdown"):
        assert math.isnan(getattr(m, name)), name
    assert math.isnan(m.sqn) and math.isnan(m.expectancy) and math.isnan(m.avg_holding_days)  # no trades
    assert not math.isnan(m.skew)
    # the new fields come last and have defaults: Metrics built with the first 24 fields only still works
    assert Metrics.names()[:24] == tuple(list(m.as_dict())[:24])
    assert math.isnan(Metrics(*[getattr(m, n) for n in Metrics.names()[:24]]).alpha)


# ---- distribution of daily returns ---------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_return_distribution_matches_scipy_and_empyrical(run, request):
    result = request.getfixturevalue(run)
    m = result.summary
    r = _daily(result)
    assert m.skew == pytest.approx(scipy.stats.skew(r), rel=1e-9)  # biased moment estimator (scipy default)
    assert m.kurtosis == pytest.approx(scipy.stats.kurtosis(r, fisher=True, bias=True), rel=1e-9)  # excess
    assert m.var_95 == pytest.approx(empyrical.value_at_risk(r, cutoff=0.05), rel=1e-12)
    assert m.cvar_95 == pytest.approx(empyrical.conditional_value_at_risk(r, cutoff=0.05), rel=1e-12)
    assert m.best_day == r.max() and m.worst_day == r.min()
    assert m.cvar_95 <= m.var_95 < 0 < m.best_day


# ---- trade quality -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_sqn_is_backtraders_with_sample_std(run, request):
    result = request.getfixturevalue(run)
    sqn = result.analyzers["sqn"]
    n = sqn.trades
    assert n == result.summary.n_trades > 50
    # Backtrader's SQN divides by the population std (ddof=0); ours by the sample std (ddof=1)
    assert result.summary.sqn == pytest.approx(sqn.sqn * math.sqrt((n - 1) / n), rel=1e-9)


def test_expectancy_and_holding_time_from_the_order_fills(sma_run):
    """sma_cross is long-only: its Completed orders alternate buy (entry) / sell (exit)."""
    fills = sma_run.orders[sma_run.orders["status"] == "Completed"].sort_values(["ts", "order_ref"])
    buys, sells = fills[fills["side"] == "buy"], fills[fills["side"] == "sell"]
    n = len(sells)
    assert n == sma_run.summary.n_trades and len(buys) == n + 1  # the last buy is still open
    buys = buys.iloc[:n]
    size = buys["executed_size"].to_numpy()
    np.testing.assert_allclose(-sells["executed_size"].to_numpy(), size, rtol=1e-12)
    entry_value = size * buys["executed_price"].to_numpy()
    net = (size * (sells["executed_price"].to_numpy() - buys["executed_price"].to_numpy())
           - buys["commission"].to_numpy() - sells["commission"].to_numpy())
    assert sma_run.summary.expectancy == pytest.approx(np.mean(net / entry_value), rel=1e-9)
    held = (sells["ts"].to_numpy() - buys["ts"].to_numpy()).astype("timedelta64[s]").astype(float) / 86_400
    assert sma_run.summary.avg_holding_days == pytest.approx(held.mean(), rel=1e-12)
    # and Backtrader's bar counts agree on 1h bars up to the few missing hours inside trades
    ta = sma_run.analyzers["ta"]
    assert sma_run.summary.avg_holding_days == pytest.approx(ta.len.average / 24, rel=2e-3)


def test_short_trades_expectancy_signs(longshort_run):
    trades = longshort_run.trades
    shorts = trades[trades["direction"] == "short"]
    ret = shorts["pnl_net"] / (shorts["size"].abs() * shorts["entry_price"])
    # a short that made money has exit < entry and a positive return
    assert ((ret > 0) == (shorts["exit_price"] < shorts["entry_price"] - shorts["commission"]
                          / shorts["size"].abs())).all()
    all_ret = trades["pnl_net"] / (trades["size"].abs() * trades["entry_price"])
    assert longshort_run.summary.expectancy == pytest.approx(all_ret.mean(), rel=1e-12)


# ---- chart series --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_rolling_sharpe_and_volatility_match_empyrical(run, request):
    result = request.getfixturevalue(run)
    r = daily_returns(result.equity["value"], CASH)
    window = rolling_window("crypto")
    assert window == 90 and rolling_window("equity") == 63
    ours_s = rolling_sharpe(r, window, 365)
    ours_v = rolling_volatility(r, window, 365)
    assert ours_s.index.equals(r.index) and ours_s.iloc[: window - 1].isna().all()
    emp_s = empyrical.roll_sharpe_ratio(r, window, annualization=365)
    emp_v = empyrical.roll_annual_volatility(r, window, annualization=365)
    assert emp_s.index.equals(r.index[window - 1:])
    finite = np.isfinite(emp_s.to_numpy())
    np.testing.assert_allclose(ours_s.iloc[window - 1:].to_numpy()[finite], emp_s.to_numpy()[finite], rtol=1e-9)
    assert ours_s.iloc[window - 1:][~finite].isna().all()  # zero-variance windows: undefined, not infinite
    np.testing.assert_allclose(ours_v.iloc[window - 1:].to_numpy(), emp_v.to_numpy(), rtol=1e-9, atol=1e-15)


def _brute_force_drawdowns(values: np.ndarray, times: np.ndarray) -> list[dict]:
    """Every drawdown period by walking the curve bar by bar (values[0] = starting cash at times[0])."""
    out, peak_i, in_dd = [], 0, False
    for i in range(1, len(values)):
        if values[i] >= values[peak_i]:
            if in_dd:
                seg = values[peak_i:i]
                out.append({"peak": times[peak_i], "trough": times[peak_i + int(np.argmin(seg))],
                            "recovery": times[i], "depth": seg.min() / values[peak_i] - 1, "bars": i - peak_i - 1})
                in_dd = False
            peak_i = i
        else:
            in_dd = True
    if in_dd:
        seg = values[peak_i:]
        out.append({"peak": times[peak_i], "trough": times[peak_i + int(np.argmin(seg))], "recovery": None,
                    "depth": seg.min() / values[peak_i] - 1, "bars": len(values) - peak_i - 1})
    return sorted(out, key=lambda p: p["depth"])


@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_drawdown_periods_match_a_brute_force_walk_and_the_metrics(run, request):
    result = request.getfixturevalue(run)
    m, eq = result.summary, result.equity
    values = np.concatenate(([CASH], eq["value"].to_numpy()))
    times = np.concatenate((eq.index[:1], eq.index))
    expected = _brute_force_drawdowns(values, times)
    table = drawdown_periods(eq["value"], CASH)
    assert len(table) == 5
    for row, exp in zip(table.itertuples(), expected[:5]):
        assert row.peak == exp["peak"] and row.trough == exp["trough"]
        assert (pd.isna(row.recovery) and exp["recovery"] is None) or row.recovery == exp["recovery"]
        assert row.depth == pytest.approx(exp["depth"], rel=1e-12) and row.bars == exp["bars"]
    every = drawdown_periods(eq["value"], CASH, top=None)
    assert len(every) == len(expected)
    assert every["depth"].iloc[0] == pytest.approx(m.max_drawdown, rel=1e-12)
    assert every["days"].max() == pytest.approx(m.max_drawdown_days, rel=1e-12)
    assert every["bars"].max() == m.max_drawdown_bars
    assert (every["days_to_trough"] + every["days_to_recovery"].fillna(0) <= every["days"] + 1e-9).all()


def test_drawdown_periods_of_a_curve_that_never_falls():
    idx = pd.date_range("2021-01-01", periods=48, freq="1h", tz="UTC")
    table = drawdown_periods(pd.Series(np.linspace(CASH, 2 * CASH, 48), index=idx), CASH)
    assert table.empty and list(table.columns)[:4] == ["peak", "trough", "recovery", "depth"]


def test_yearly_returns_against_prices(sma_run):
    eq, bars = sma_run.equity, sma_run.bars.set_index("ts")
    bench = benchmark_equity(sma_run.bars, CASH, index=eq.index)
    table = yearly_returns(eq["value"], CASH, bench)
    assert list(table.index) == [2020, 2021, 2022, 2023]
    year_end_close = bars["close"].groupby(bars.index.year).last()
    expected_2020 = year_end_close[2020] / bars["open"].iloc[0] - 1  # bought at the first open
    assert table.loc[2020, "benchmark"] == pytest.approx(expected_2020, rel=1e-12)
    for year in (2021, 2022, 2023):
        assert table.loc[year, "benchmark"] == pytest.approx(year_end_close[year] / year_end_close[year - 1] - 1,
                                                              rel=1e-12)
    assert np.prod(1 + table["strategy"]) - 1 == pytest.approx(sma_run.summary.total_return, rel=1e-9)
    assert np.prod(1 + table["benchmark"]) - 1 == pytest.approx(sma_run.summary.benchmark_total_return, rel=1e-9)
    np.testing.assert_allclose(table["excess"], table["strategy"] - table["benchmark"])
    assert yearly_returns(eq["value"], CASH)["benchmark"].isna().all()


# ---- the position left open ----------------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["sma_run", "longshort_run"])
def test_open_position_rebuilt_from_orders_equals_backtraders(run, request):
    result = request.getfixturevalue(run)
    data = result.strategy.datas[0]
    position = result.strategy.getposition(data)
    assert position.size != 0  # both runs end in the market
    last = float(result.bars["close"].iloc[-1])
    table = open_positions(result.orders, {"BTC/USDT": last})
    assert list(table["symbol"]) == ["BTC/USDT"]
    row = table.iloc[0]
    assert row["size"] == pytest.approx(position.size, rel=1e-12)
    assert row["avg_price"] == pytest.approx(position.price, rel=1e-12)
    assert row["market_value"] == pytest.approx(result.equity["position_value"].iloc[-1], rel=1e-9)
    assert row["unrealized_pnl"] == pytest.approx(position.size * (last - position.price), rel=1e-9)
    # opened by the last fill that started it from flat (or reversed it)
    fills = result.orders[result.orders["status"] == "Completed"]
    assert row["opened"] in set(fills["ts"])
    assert row["opened"] >= result.trades["ts"].max()  # a reversal opens it at the last exit


def test_no_open_position_after_a_final_close(store):
    class CloseAtEnd(bt.Strategy):
        def next(self):
            if len(self) == 10:
                self.buy(size=0.01)
            if len(self) == 20:
                self.buy(size=0.02)
            if len(self) == 30:
                self.sell(size=0.03)

    result = btlab.run_backtest(CloseAtEnd, store=store, start="2022-01-01", end="2022-01-05", record=False)
    assert result.strategy.getposition(result.strategy.datas[0]).size == 0
    assert open_positions(result.orders).empty
    assert open_positions(result.orders.iloc[:0]).empty


def test_open_position_uses_each_orders_final_state():
    """A partly filled order notified twice (cumulative executed size) counts once."""
    ts = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00"], utc=True)
    orders = pd.DataFrame({"ts": ts, "order_ref": [1, 1, 2], "symbol": "BTC/USDT",
                           "status": ["Partial", "Completed", "Completed"],
                           "executed_size": [0.5, 1.0, -0.25], "executed_price": [100.0, 110.0, 120.0]})
    row = open_positions(orders, {"BTC/USDT": 130.0}).iloc[0]
    assert row["size"] == 0.75 and row["avg_price"] == 110.0 and row["opened"] == ts[1]
    assert row["unrealized_pnl"] == pytest.approx(0.75 * 20.0)


def test_feed_bars_reach_the_benchmark_from_the_store(store, sma_run):
    """run_backtest's StoreData feed hands its bars to the recorder's benchmark."""
    assert isinstance(sma_run.strategy.datas[0], StoreData)
    bars = sma_run.bars
    assert sma_run.summary.benchmark_total_return == pytest.approx(
        bars["close"].iloc[-1] / bars["open"].iloc[0] - 1, rel=1e-12)
