"""Runner, recorder, feed and registry on real BTC/USDT bars."""

from __future__ import annotations

import collections
import collections.abc
import textwrap
import uuid

import pandas as pd
import pytest

import btlab
from btlab.backtest.compat import bt
from btlab.backtest.feed import StoreData
from btlab.errors import NoDataError, StrategyParameterError, UnknownStrategyError
from conftest import STORE_BACKENDS, open_backend
from btlab.strategies.sma_cross import SmaCross
from realdata import TESTS, btc_1h



@pytest.fixture(scope="module", params=STORE_BACKENDS)
def store(request, tmp_path_factory):
    """The real BTC/USDT 1h bars in each backend (QuestDB only with BTLAB_TEST_QUESTDB)."""
    with open_backend(request.param, tmp_path_factory.mktemp("bt")) as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        yield st


def _plain_backtrader(bars: pd.DataFrame, strategy, params, analyzers=()):
    cerebro = bt.Cerebro(stdstats=False)
    frame = bars.set_index(bars["ts"].dt.tz_localize(None))[["open", "high", "low", "close", "volume"]]
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60))
    cerebro.addstrategy(strategy, **params)
    cerebro.broker.setcash(10_000.0)
    cerebro.broker.setcommission(commission=0.001)
    cerebro.addsizer(bt.sizers.PercentSizer, percents=95)
    cerebro.addanalyzer(bt.analyzers.Transactions, _name="tx")
    return cerebro.run()[0]


def test_same_result_as_plain_backtrader_on_pandasdata(store):
    result = btlab.run_backtest("sma_cross", store=store, start="2021-01-01", end="2022-12-31",
                                params={"fast": 12, "slow": 48})
    bars = btc_1h().set_index("ts").loc["2021-01-01":"2022-12-31"].reset_index()
    plain = _plain_backtrader(bars, SmaCross, {"fast": 12, "slow": 48})
    assert result.summary.end_value == plain.broker.getvalue()  # bit for bit
    tx = plain.analyzers.tx.get_analysis()
    fills = result.orders[result.orders["status"] == "Completed"]
    assert len(fills) == sum(len(v) for v in tx.values())
    ours = [(ts.tz_localize(None).to_pydatetime(), size, price)
            for ts, size, price in zip(fills["ts"], fills["executed_size"], fills["executed_price"])]
    theirs = [(dt, amount, price) for dt, rows in sorted(tx.items()) for amount, price, *_ in rows]
    assert [(dt, size) for dt, size, _ in ours] == [(dt, size) for dt, size, _ in theirs]
    # executed.price is Backtrader's running average over fills: equal up to float rounding
    assert [p for *_, p in ours] == pytest.approx([p for *_, p in theirs], rel=1e-13)


def test_run_is_recorded_with_provenance(store):
    result = btlab.run_backtest("sma_cross", store=store, start="2020-01-01", end="2020-12-31",
                                params={"fast": "10", "slow": "30"}, commission=0.00075)
    run = store.get_run(result.run_id)
    assert run["status"] == "finished" and run["error"] is None
    assert run["strategy"] == "sma_cross" and run["params"] == {"fast": 10, "slow": 30}
    assert run["data_from"] == pd.Timestamp("2020-01-01", tz="UTC")
    assert run["data_to"] == pd.Timestamp("2020-12-31 23:00", tz="UTC")
    assert run["bars"] == len(result.bars) == len(result.equity)
    assert run["backtrader_version"] == bt.__version__ and run["btlab_version"] == btlab.__version__
    assert len(run["config_hash"]) == 16 and len(run["data_hash"]) == 16
    assert run["sharpe"] == pytest.approx(result.summary.sharpe) and run["n_trades"] == result.summary.n_trades
    assert run["metrics"]["max_drawdown"] == pytest.approx(result.summary.max_drawdown)
    equity = store.read_equity(result.run_id).set_index("ts")
    pd.testing.assert_frame_equal(equity, result.equity, check_names=False, check_freq=False)
    trades = store.read_trades(result.run_id)
    assert len(trades) == result.summary.n_trades
    assert trades["pnl_net"].tolist() == pytest.approx(result.trades["pnl_net"].tolist())
    assert len(store.read_orders(result.run_id)) == len(result.orders) > 0
    # same data and config -> same hashes; another range -> another data hash
    again = btlab.run_backtest("sma_cross", store=store, start="2020-01-01", end="2020-12-31",
                               params={"fast": 10, "slow": 30}, commission=0.00075, record=False)
    assert again.run_id != result.run_id
    assert again.config.hash() == run["config_hash"]
    other = btlab.run_backtest("sma_cross", store=store, start="2020-01-01", end="2020-11-30", record=False)
    assert other.config.hash() != run["config_hash"]


class Watcher(SmaCross):
    """SmaCross that looks at the store while it runs, as a dashboard would."""

    seen: list = []

    def next(self):
        super().next()
        if len(self) % 1000 == 0:
            rec = self.analyzers.btlab_recorder
            store = rec.p.store
            n = store.query("SELECT count(*) AS n FROM bt_equity WHERE run_id = ?", [rec.run_id])["n"].iloc[0]
            status = store.get_run(rec.run_id)["status"]
            Watcher.seen.append((len(self), int(n), status))


def test_recorder_writes_while_running(store):
    Watcher.seen = []
    result = btlab.run_backtest(Watcher, store=store, start="2019-01-01", end="2020-12-31", flush_bars=1024,
                                flush_seconds=3600)
    counts = [n for _, n, _ in Watcher.seen]
    assert all(status == "running" for *_, status in Watcher.seen)
    assert counts == sorted(counts) and counts[0] < counts[-1] < len(result.equity)
    assert counts[-1] >= len(result.equity) - 2 * 1024  # batches of ~1024 bars, not one write at the end
    assert store.get_run(result.run_id)["status"] == "finished"
    # written in ~17 batches, the stored curve (drawdown from the running peak included) equals the run's
    stored = store.read_equity(result.run_id).set_index("ts")
    pd.testing.assert_frame_equal(stored, result.equity, check_names=False, check_freq=False)
    assert stored["drawdown"].min() == pytest.approx(result.summary.max_drawdown, rel=1e-12)


class Exploding(SmaCross):
    def next(self):
        super().next()
        if len(self) == 3000:
            raise ZeroDivisionError("strategy bug at bar 3000")


def test_failed_run_is_recorded_with_error(store):
    run_id = f"failing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ZeroDivisionError):
        btlab.run_backtest(Exploding, store=store, start="2019-01-01", end="2019-12-31", run_id=run_id,
                           flush_bars=256, flush_seconds=3600)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == "ZeroDivisionError: strategy bug at bar 3000"
    n = len(store.read_equity(run_id))
    assert 2500 <= n < 3000  # what was recorded up to the failure stays


def test_user_strategies_by_module_and_file(store, tmp_path):
    by_module = btlab.run_backtest("userstrats.momentum:Momentum", store=store, start="2022-01-01",
                                   end="2022-06-30", params={"lookback": "48"}, record=False)
    assert by_module.config.strategy == "userstrats.momentum:Momentum"
    assert by_module.config.params == {"lookback": 48, "threshold": 0.0}
    assert by_module.summary.n_trades > 0
    path = tmp_path / "mystrat.py"
    path.write_text(textwrap.dedent((TESTS / "userstrats" / "momentum.py").read_text()))
    by_file = btlab.run_backtest(f"{path}:Momentum", store=store, start="2022-01-01", end="2022-06-30",
                                 params={"lookback": 48}, record=False)
    assert by_file.summary.end_value == by_module.summary.end_value


def test_unknown_strategy_and_parameters_list_what_exists(store):
    with pytest.raises(UnknownStrategyError, match=r"bundled strategies: buy_hold, (\w+, )*orb, (\w+, )*regime_fsm, "
                                                   r"(\w+, )*sma_cross"):
        btlab.run_backtest("sma_crosss", store=store)
    with pytest.raises(UnknownStrategyError, match="strategies in it: Momentum"):
        btlab.run_backtest("userstrats.momentum:Nope", store=store)
    with pytest.raises(UnknownStrategyError, match="cannot import module"):
        btlab.run_backtest("no_such_package.x:Y", store=store)
    with pytest.raises(StrategyParameterError, match=r"fast=10, slow=30"):
        btlab.run_backtest("sma_cross", store=store, params={"fsat": 5})
    with pytest.raises(StrategyParameterError, match="expected int"):
        btlab.run_backtest("sma_cross", store=store, params={"fast": "ten"})
    assert store.list_runs(strategy="sma_crosss").empty


def test_no_data_is_a_clear_error(store):
    with pytest.raises(NoDataError, match="no 1h bars for binance:ETH/USDT"):
        btlab.run_backtest("sma_cross", store=store, symbol="ETH/USDT")
    with pytest.raises(NoDataError, match="btlab data import"):
        btlab.run_backtest("sma_cross", store=store, start="2030-01-01")


def test_store_feed_reads_any_range(store):
    cerebro = bt.Cerebro(stdstats=False)
    feed = StoreData(store=store, exchange="binance", symbol="BTC/USDT", bars_timeframe="1h",
                     start=pd.Timestamp("2018-03-01", tz="UTC"), end=pd.Timestamp("2018-03-02 12:00", tz="UTC"))
    cerebro.adddata(feed)
    closes = []

    class Collect(bt.Strategy):
        def next(self):
            closes.append((self.data.datetime.datetime(0), self.data.close[0]))

    cerebro.addstrategy(Collect)
    cerebro.run()
    expected = btc_1h().set_index("ts").loc["2018-03-01":"2018-03-02 11:00", "close"]
    assert [c for _, c in closes] == expected.tolist()
    # Backtrader sees each bar at its CLOSE time (open + 1h), the moment the bar is complete
    closes_at = expected.index.tz_localize(None) + pd.Timedelta(hours=1)
    assert [d for d, _ in closes] == list(closes_at.to_pydatetime())
    assert feed.p.timeframe == bt.TimeFrame.Minutes and feed.p.compression == 60


def test_python311_backtrader_breakages_are_mended():
    assert collections.Iterable is collections.abc.Iterable

    class Bound(bt.Indicator):
        lines = ("mid",)

        def __init__(self):
            sma = bt.ind.SMA(self.data, period=3)
            sma.plotinfo.plot = False
            self.l.mid = sma
            self.bindlines(owner=None, own=None)  # uses collections.Iterable inside Backtrader

    cerebro = bt.Cerebro(stdstats=False)
    frame = btc_1h().iloc[:50].set_index("ts")
    frame.index = frame.index.tz_localize(None)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))

    class UseBound(bt.Strategy):
        def __init__(self):
            self.ind = Bound(self.data)

    cerebro.addstrategy(UseBound)
    cerebro.run()
    # plotting: either matplotlib is absent (clear ImportError) or it plots without forcing TkAgg
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="btlab report"):
            cerebro.plot()
