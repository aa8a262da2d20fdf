"""The backtest engine on real bars: bar times and resampling, several instruments and timeframes in one run,
orders that end without a fill, gaps, warm-up, settings refused before any work, and "no data" errors that say
what is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import asdict, replace

import pandas as pd
import pytest

import btlab
from btlab.backtest.compat import bt
from btlab.errors import (
    DataGapError,
    InvalidArgumentError,
    NoDataError,
    StrategyParameterError,
    WarmupError,
)
from btlab.marketdata.bars import resample_bars
from conftest import STORE_BACKENDS, open_backend
from realdata import BTC_1M, DATA, btc_1h

ETH_1M = DATA / "ETH_USDT-1m_2025-05-20_2025-08-18.feather"


def _feather(path) -> pd.DataFrame:
    return pd.read_feather(path).rename(columns={"date": "ts"})


@pytest.fixture(scope="module")
def m1() -> dict[str, pd.DataFrame]:
    """Real Binance 1m bars of BTC/USDT and ETH/USDT, 2025-05-20 .. 2025-08-18 (no missing minute)."""
    return {"BTC/USDT": _feather(BTC_1M), "ETH/USDT": _feather(ETH_1M)}


def _fill(st, m1) -> None:
    st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
    for symbol, frame in m1.items():
        st.write_bars(frame, exchange="binance", symbol=symbol, timeframe="1m", source="test")


@pytest.fixture(scope="module")
def store(tmp_path_factory, m1):
    """DuckDB with the real BTC/USDT 1h bars and the BTC/USDT and ETH/USDT 1m bars."""
    with open_backend("duckdb", tmp_path_factory.mktemp("engine")) as st:
        _fill(st, m1)
        yield st


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def any_store(request, tmp_path_factory, m1):
    """The same bars in each backend (QuestDB only with BTLAB_TEST_QUESTDB)."""
    with open_backend(request.param, tmp_path_factory.mktemp("engine-any")) as st:
        _fill(st, m1)
        yield st


class Watch(bt.Strategy):
    """Collects, at every step (warm-up included), each bar every feed delivers and the base bars' close time."""

    params = (("n_base", 1),)

    def __init__(self):
        self.seen = {d._name: [] for d in self.datas}
        self._lens = [0] * len(self.datas)

    def prenext(self):
        self.next()

    def next(self):
        base_close = max(d.datetime[0] for d in self.datas[: self.p.n_base] if len(d))
        for i, d in enumerate(self.datas):
            if len(d) > self._lens[i]:
                self._lens[i] = len(d)
                self.seen[d._name].append((d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0],
                                           base_close))


def _seen_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["dt", "open", "high", "low", "close", "volume", "base_close"])
    for col in ("dt", "base_close"):
        frame[col] = pd.to_datetime([bt.num2date(x) for x in frame[col]]).round("ms").tz_localize("UTC")
    return frame


def _assert_seen_equals(seen: pd.DataFrame, expected: pd.DataFrame, timeframe: str) -> None:
    """Bars a strategy saw (Backtrader close times) == ``expected`` (btlab open times), value for value."""
    length = pd.Timedelta(timeframe.replace("m", "min").replace("d", "D"))
    assert len(seen) == len(expected) > 0
    assert (seen["dt"] - length).tolist() == expected["ts"].tolist()
    for col in ("open", "high", "low", "close"):
        assert seen[col].tolist() == expected[col].tolist(), col  # bit for bit
    assert seen["volume"].to_numpy() == pytest.approx(expected["volume"].to_numpy(), rel=1e-12, abs=1e-8)
    # no look-ahead: when a bar is first visible its window has closed (window end <= current base close)
    assert (seen["dt"] <= seen["base_close"]).all()


def _complete(expected: pd.DataFrame, timeframe: str, data_end: pd.Timestamp) -> pd.DataFrame:
    """The windows that closed by ``data_end`` (the last base bar's close): a window the data ends inside is
    not a finished bar."""
    length = pd.Timedelta(timeframe.replace("m", "min").replace("d", "D"))
    return expected[expected["ts"] + length <= data_end].reset_index(drop=True)


# ---- 1. bar times and resampling -------------------------------------------------------------------------------
def test_resampled_1h_and_1d_bars_equal_resample_bars_and_klines_without_lookahead(store, m1):
    result = btlab.run_backtest(Watch, store=store, symbol="BTC/USDT", timeframes=["1m", "1h", "1d"],
                                start="2025-05-20", end="2025-06-15", record=False)
    strat = result.strategy
    assert [d._name for d in strat.datas] == ["BTC/USDT", "BTC/USDT@1h", "BTC/USDT@1d"]
    assert strat.getdatabyname("BTC/USDT@1h") is strat.datas[1]
    bars = result.bars
    data_end = bars["ts"].iloc[-1] + pd.Timedelta(minutes=1)
    hours = _seen_frame(strat.seen["BTC/USDT@1h"])
    days = _seen_frame(strat.seen["BTC/USDT@1d"])
    _assert_seen_equals(hours, resample_bars(bars, "1h"), "1h")
    _assert_seen_equals(days, resample_bars(bars, "1d"), "1d")
    # the true 00:00-01:00 hour of 2025-05-20 (Binance's 1h kline), which open-time bars made 105705.43
    assert hours["close"].iloc[0] == 105727.27 and hours["open"].iloc[0] == 105573.73
    # every window closes on a base bar here (no missing minute): each bar is seen exactly at its window's end
    assert (hours["dt"] == hours["base_close"]).all() and (days["dt"] == days["base_close"]).all()
    assert days["dt"].iloc[0] == pd.Timestamp("2025-05-21", tz="UTC") and len(days) == 27
    base = _seen_frame(strat.seen["BTC/USDT"])
    assert (base["dt"] - pd.Timedelta(minutes=1)).tolist() == bars["ts"].tolist() and base["dt"].iloc[-1] == data_end


def test_resampling_across_gaps_and_flat_bars_equals_resample_bars(store):
    """The 1h file has 28 gaps (a 33-hour exchange outage among them) and bars without volume: Backtrader's
    resampler, as btlab configures it, still builds exactly resample_bars' 4h and 1d bars, and never early."""
    result = btlab.run_backtest(Watch, store=store, timeframes=["1h", "4h", "1d"], end="2020-12-31", record=False)
    bars = result.bars
    assert any("largest 33 bar(s)" in w for w in result.warnings)
    assert (bars["volume"] == 0).sum() >= 2  # flat bars: they set no price of a longer bar
    data_end = bars["ts"].iloc[-1] + pd.Timedelta(hours=1)
    for tf in ("4h", "1d"):
        seen = _seen_frame(result.strategy.seen[f"BTC/USDT@{tf}"])
        _assert_seen_equals(seen, _complete(resample_bars(bars, tf), tf, data_end), tf)
    four = _seen_frame(result.strategy.seen["BTC/USDT@4h"]).set_index("dt")
    # the 4h window 2018-02-08 00:00-04:00 holds one bar before the outage: stamped at its own end, seen after it
    outage = four.loc[pd.Timestamp("2018-02-08 04:00", tz="UTC")]
    assert outage["base_close"] == pd.Timestamp("2018-02-09 11:00", tz="UTC")


def test_data_ending_inside_a_window_does_not_show_that_window(store):
    result = btlab.run_backtest(Watch, store=store, timeframes=["1m", "1h", "1d"], start="2025-08-17",
                                record=False)
    bars = result.bars
    assert bars["ts"].iloc[-1] == pd.Timestamp("2025-08-18 18:27", tz="UTC")  # data ends inside 18:00-19:00
    hours = _seen_frame(result.strategy.seen["BTC/USDT@1h"])
    days = _seen_frame(result.strategy.seen["BTC/USDT@1d"])
    assert hours["dt"].iloc[-1] == pd.Timestamp("2025-08-18 18:00", tz="UTC")
    assert days["dt"].tolist() == [pd.Timestamp("2025-08-18", tz="UTC")]
    data_end = bars["ts"].iloc[-1] + pd.Timedelta(minutes=1)
    _assert_seen_equals(hours, _complete(resample_bars(bars, "1h"), "1h", data_end), "1h")


class HourlyTrader(bt.Strategy):
    """Buys on the 1h feed at its 2nd bar and closes at its 6th: orders on a resampled feed."""

    def __init__(self):
        self.acted = set()

    def next(self):
        hourly = self.getdatabyname("BTC/USDT@1h")
        if len(hourly) in (2, 6) and len(hourly) not in self.acted:
            self.acted.add(len(hourly))
            if len(hourly) == 2:
                self.buy(data=hourly, size=0.01)
            else:
                self.close(data=hourly)


def test_stored_times_are_bar_open_times_for_base_and_resampled_feeds(store):
    result = btlab.run_backtest(HourlyTrader, store=store, timeframes=["1m", "1h"], start="2025-06-01",
                                end="2025-06-01")
    bars = result.bars
    assert result.equity.index.tolist() == bars["ts"].tolist()  # one row per base bar, at its open time
    hours = resample_bars(bars, "1h").set_index("ts")
    fills = store.read_orders(result.run_id)
    fills = fills[fills["status"] == "Completed"]
    assert len(fills) == 2 and set(fills["symbol"]) == {"BTC/USDT"}
    # a market order on the 1h feed fills at the open of the next 1h bar; stored ts = that bar's open time
    assert fills["ts"].tolist() == [pd.Timestamp("2025-06-01 02:00", tz="UTC"), pd.Timestamp("2025-06-01 06:00", tz="UTC")]
    assert fills["executed_price"].tolist() == hours.loc[fills["ts"], "open"].tolist()
    trade = store.read_trades(result.run_id).iloc[0]
    assert trade["entry_ts"] == fills["ts"].iloc[0] and trade["ts"] == fills["ts"].iloc[1]
    assert trade["symbol"] == "BTC/USDT" and trade["bars_held"] == 4


# ---- 2. several instruments and timeframes ---------------------------------------------------------------------
class Basket(bt.Strategy):
    """Each symbol: long 45 % of value while its 1h close is above the 12-hour SMA of 1h closes, decided once per
    new 1h bar, orders on the 1m base feed. Feeds found by name."""

    params = (("period", 12),)

    def __init__(self):
        n = len(self.datas) // 2
        self.pairs = [(d, self.getdatabyname(f"{d._name}@1h")) for d in self.datas[:n]]
        self.sma = [bt.ind.SMA(h.close, period=self.p.period) for _, h in self.pairs]
        self.hours = [0] * n

    def next(self):
        for i, ((base, hourly), sma) in enumerate(zip(self.pairs, self.sma)):
            if len(hourly) == self.hours[i]:
                continue
            self.hours[i] = len(hourly)
            held = self.getposition(base).size
            if hourly.close[0] > sma[0] and not held:  # fractional units (Backtrader's own sizing rounds down)
                self.buy(base, size=round(0.45 * self.broker.getvalue() / base.close[0], 6))
            elif hourly.close[0] < sma[0] and held:
                self.close(base)


def _plain_basket(m1, start, end):
    """Plain Backtrader: PandasData built the same way (close-time index, session ending at midnight UTC)."""
    cerebro = bt.Cerebro(stdstats=False)
    feeds = []
    for symbol, frame in m1.items():
        part = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
        index = (part["ts"] + pd.Timedelta(minutes=1)).dt.tz_localize(None)
        data = bt.feeds.PandasData(dataname=part.set_index(index)[["open", "high", "low", "close", "volume"]],
                                   timeframe=bt.TimeFrame.Minutes, compression=1, sessionend=dt.time(0, 0))
        cerebro.adddata(data, name=symbol)
        feeds.append((symbol, data))
    for symbol, data in feeds:
        cerebro.resampledata(data, name=f"{symbol}@1h", timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.addstrategy(Basket)
    cerebro.broker.setcash(10_000.0)
    cerebro.broker.setcommission(commission=0.001)
    cerebro.addanalyzer(bt.analyzers.Transactions, _name="tx")
    return cerebro.run()[0]


def test_two_symbols_with_resampled_feeds_match_plain_backtrader(any_store, m1):
    from btlab.backtest.runner import hash_bars

    st = any_store
    result = btlab.run_backtest(Basket, store=st, symbols=["BTC/USDT", "ETH/USDT"], timeframes=["1m", "1h"],
                                start="2025-06-01", end="2025-06-10")
    plain = _plain_basket(m1, pd.Timestamp("2025-06-01", tz="UTC"), pd.Timestamp("2025-06-11", tz="UTC"))
    assert [d._name for d in result.strategy.datas] == ["BTC/USDT", "ETH/USDT", "BTC/USDT@1h", "ETH/USDT@1h"]
    assert round(result.summary.end_value, 2) == round(plain.broker.getvalue(), 2)
    assert result.summary.end_value == pytest.approx(plain.broker.getvalue(), rel=1e-12)
    tx = plain.analyzers.tx.get_analysis()
    theirs = sorted((dtime, amount, price, sym) for dtime, rows in tx.items() for amount, price, _, sym, _ in rows)
    fills = result.orders[result.orders["status"] == "Completed"]
    assert len(fills) == len(theirs) > 10
    # ours at bar open times, theirs at Backtrader's close times: one minute apart, same sizes and prices
    ours = sorted(((ts + pd.Timedelta(minutes=1)).tz_localize(None).to_pydatetime(), size, price, sym)
                  for ts, size, price, sym in zip(fills["ts"], fills["executed_size"], fills["executed_price"],
                                                  fills["symbol"]))
    assert [(t, s, sym) for t, s, _, sym in ours] == [(t, s, sym) for t, s, _, sym in theirs]
    assert [p for *_, p, _ in ours] == pytest.approx([p for *_, p, _ in theirs], rel=1e-13)
    assert set(result.trades["symbol"]) == {"BTC/USDT", "ETH/USDT"}

    run = st.get_run(result.run_id)
    assert run["status"] == "finished" and run["symbols"] == "BTC/USDT,ETH/USDT" and run["timeframe"] == "1m"
    assert run["bars"] == 2 * 10 * 1440 and run["config"]["resample"] == ["1h"]
    assert run["data_from"] == pd.Timestamp("2025-06-01", tz="UTC")
    assert run["data_to"] == pd.Timestamp("2025-06-10 23:59", tz="UTC")
    equity = st.read_equity(result.run_id)
    assert len(equity) == 10 * 1440 and equity["ts"].is_monotonic_increasing  # one row per base bar time
    assert equity["value"].iloc[-1] == pytest.approx(plain.broker.getvalue(), rel=1e-12)
    stored = st.read_orders(result.run_id)
    filled = stored[stored["status"] == "Completed"]
    # every market fill's stored ts is the open time of its instrument's 1m bar, and its price that bar's open
    for symbol, frame in m1.items():
        mine = filled[filled["symbol"] == symbol]
        opens = frame.set_index("ts").loc[mine["ts"], "open"].to_numpy()
        assert len(mine) > 2 and mine["executed_price"].to_numpy() == pytest.approx(opens, rel=1e-13)
    assert len(st.read_trades(result.run_id)) == len(result.trades) > 4
    single = btlab.run_backtest(Basket, store=st, symbols="BTC/USDT", timeframes="1m,1h", start="2025-06-01",
                                end="2025-06-10", record=False)
    assert st.get_run(result.run_id)["data_hash"] != hash_bars(single.bars)
    assert single.config.symbols == ("BTC/USDT",) and result.config.symbols == ("BTC/USDT", "ETH/USDT")


def test_single_symbol_run_hashes_as_before(store):
    from btlab.backtest.runner import hash_bars

    result = btlab.run_backtest("sma_cross", store=store, start="2021-01-01", end="2021-03-31", record=False)
    config = result.config
    assert config.resample == () and config.symbol == "BTC/USDT" and config.symbols == ("BTC/USDT",)
    # a run without resampled timeframes hashes its config as before ``resample`` existed
    fields = asdict(config)
    del fields["resample"]
    old = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert config.hash() == old
    assert replace(config, resample=("4h",)).hash() != old
    assert hash_bars({"BTC/USDT": result.bars}) == hash_bars(result.bars)


def test_symbol_and_timeframe_arguments_are_checked(store):
    runs = len(store.list_runs(limit=10_000))
    with pytest.raises(InvalidArgumentError, match="not both"):
        btlab.run_backtest(store=store, symbol="BTC/USDT", symbols=["ETH/USDT"])
    with pytest.raises(InvalidArgumentError, match="listed twice"):
        btlab.run_backtest(store=store, symbols="BTC/USDT,BTC/USDT")
    with pytest.raises(InvalidArgumentError, match="timeframes\\[0\\] is the stored base"):
        btlab.run_backtest(store=store, timeframe="1m", timeframes=["1h", "4h"])
    with pytest.raises(InvalidArgumentError, match="cannot resample to 3d"):  # 1w is exact (ISO weeks), 3d not
        btlab.run_backtest(store=store, timeframes=["1h", "3d"])
    with pytest.raises(InvalidArgumentError, match="whole multiple of 1h"):
        btlab.run_backtest(store=store, timeframes=["1h", "90m"])
    assert len(store.list_runs(limit=10_000)) == runs


# ---- 3. orders that end without a fill --------------------------------------------------------------------------
def test_orders_without_fill_are_counted_and_warned(store):
    result = btlab.run_backtest("sma_cross", store=store, start="2020-01-01", end="2023-12-31", stake=100)
    assert result.summary.n_trades == 0
    n = result.order_counts["orders_margin"]
    assert n > 20 and result.order_counts["orders_rejected"] == 0 and result.order_counts["orders_canceled"] == 0
    assert len(result.warnings) == 2 and "15 gap(s) inside the range" in result.warnings[0]  # gaps come first
    line = result.warnings[1]
    assert f"{n:,} of {n:,} order(s) ended Margin" in line and "buy 100 BTC/USDT" in line and "\n" not in line
    run = store.get_run(result.run_id)
    assert run["orders_margin"] == n and run["orders_rejected"] == 0 and run["orders_canceled"] == 0
    assert run["warnings"] == "\n".join(result.warnings) and run["status"] == "finished"
    margin = store.read_orders(result.run_id)
    assert (margin["status"] == "Margin").sum() == n
    ok = btlab.run_backtest("sma_cross", store=store, start="2021-01-01", end="2021-01-31", record=False)
    assert ok.warnings == [] and ok.order_counts == {"orders_rejected": 0, "orders_margin": 0, "orders_canceled": 0}


class CancelEverything(bt.Strategy):
    """Every 50 bars a limit buy far below the market, canceled one bar later."""

    def __init__(self):
        self.order = None

    def next(self):
        if self.order is not None:
            self.cancel(self.order)
            self.order = None
        if len(self) % 50 == 1:
            self.order = self.buy(exectype=bt.Order.Limit, price=self.data.close[0] * 0.5, size=0.01)


def test_canceled_orders_are_counted(store):
    result = btlab.run_backtest(CancelEverything, store=store, start="2021-01-01", end="2021-01-31")
    assert result.order_counts["orders_canceled"] == math.ceil(len(result.equity) / 50) > 10
    assert "were Canceled or Expired before filling" in result.warnings[0]
    assert store.get_run(result.run_id)["orders_canceled"] == result.order_counts["orders_canceled"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"commission": 1.5}, "commission must be a fraction of traded value in [0, 1)"),
        ({"commission": 1.0}, "commission must be a fraction"),
        ({"cash": float("nan")}, "cash must be a finite number, got nan"),
        ({"cash": float("inf")}, "cash must be a finite number, got inf"),
        ({"commission": float("nan")}, "commission must be a finite number"),
        ({"size_pct": float("nan")}, "size_pct must be a finite number"),
        ({"stake": float("inf")}, "stake must be a finite number"),
        ({"slippage_pct": float("nan")}, "slippage_pct must be a finite number"),
        ({"slippage_fixed": float("-inf")}, "slippage_fixed must be a finite number"),
        ({"slippage_pct": 0.5}, "slippage_pct must be a fraction of price in [0, 0.5)"),
        ({"slippage_fixed": 1e6}, "slippage_fixed 1e+06 is at least the median close of BTC/USDT"),
        ({"params": {"fast": 50, "slow": 10}}, "needs 0 < fast < slow"),
    ],
)
def test_settings_that_cannot_work_are_refused_before_any_work(store, kwargs, message):
    expected = StrategyParameterError if "params" in kwargs else InvalidArgumentError
    runs = len(store.list_runs(limit=10_000))
    with pytest.raises(expected) as info:
        btlab.run_backtest("sma_cross", store=store, start="2020-01-01", end="2020-12-31", **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert len(store.list_runs(limit=10_000)) == runs  # nothing recorded


# ---- 4. gaps ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def holed(tmp_path_factory, m1):
    """BTC/USDT 1m stored as two spans with a 65-day hole (2025-05-27 .. 2025-08-01), as two imports leave it."""
    frame = m1["BTC/USDT"]
    spans = frame[(frame["ts"] < "2025-05-27") | (frame["ts"] >= "2025-08-01")]
    with open_backend("duckdb", tmp_path_factory.mktemp("holed")) as st:
        st.write_bars(spans, exchange="binance", symbol="BTC/USDT", timeframe="1m", source="test")
        yield st


def test_a_hole_between_stored_spans_is_refused_unless_allowed(holed):
    with pytest.raises(DataGapError) as info:
        btlab.run_backtest("sma_cross", store=holed, timeframe="1m")
    text = str(info.value)
    missing = int((pd.Timestamp("2025-08-01") - pd.Timestamp("2025-05-27")) / pd.Timedelta(minutes=1))
    assert f"1 gap(s) inside the range, {missing:,} missing bar(s)" in text
    assert "from 2025-05-27 00:00 to 2025-07-31 23:59 UTC" in text and "--allow-gaps" in text and "\n" not in text
    assert holed.list_runs().empty  # refused before anything was recorded
    result = btlab.run_backtest("sma_cross", store=holed, timeframe="1m", allow_gaps=True)
    assert len(result.warnings) == 1 and f"{missing:,} missing bar(s)" in result.warnings[0]
    assert holed.get_run(result.run_id)["warnings"] == result.warnings[0]
    # a range inside one span has no gap: no warning
    inside = btlab.run_backtest("sma_cross", store=holed, timeframe="1m", start="2025-08-01", record=False)
    assert inside.warnings == []


def test_gaps_under_the_limit_are_a_warning_and_over_five_percent_missing_is_refused(store, tmp_path):
    seen = []
    result = btlab.run_backtest("sma_cross", store=store, record=False, on_warning=seen.append)
    assert seen == result.warnings and len(seen) == 1
    assert "28 gap(s) inside the range, 128 missing bar(s)" in seen[0]
    assert "largest 33 bar(s) (1 d 9 h) from 2018-02-08 01:00 to 2018-02-09 09:00 UTC" in seen[0]
    thinned = btc_1h()
    thinned = thinned[thinned.index % 10 != 0]  # every 10th hour missing: short gaps, 10 % of the range
    from btlab.store.duckdb import DuckDBStore

    with DuckDBStore(tmp_path / "thin.duckdb") as st:
        st.write_bars(thinned, exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        with pytest.raises(DataGapError, match=r"\(10\.\d\d% of"):
            btlab.run_backtest("sma_cross", store=st, start="2020-01-01", end="2020-12-31")


# ---- 5. warm-up ---------------------------------------------------------------------------------------------------
def test_range_shorter_than_warmup_is_refused_before_recording(store):
    runs = len(store.list_runs(limit=10_000))
    with pytest.raises(WarmupError) as info:
        btlab.run_backtest("sma_cross", store=store, start="2020-01-01 00:00", end="2020-01-01 19:00")
    assert str(info.value) == (
        "strategy sma_cross needs 31 BTC/USDT 1h bars of warm-up before its first next(), but the range holds "
        "only 20: start earlier (--from) or use shorter indicator periods"
    )
    assert len(store.list_runs(limit=10_000)) == runs  # no failed run stored
    # exactly the warm-up: one next(), a finished run
    ok = btlab.run_backtest("sma_cross", store=store, start="2020-01-01 00:00", end="2020-01-02 06:00",
                            record=False)
    assert len(ok.equity) == 31


class DailySma(bt.Strategy):
    def __init__(self):
        self.sma = bt.ind.SMA(self.getdatabyname("BTC/USDT@1d").close, period=10)


def test_warmup_on_a_resampled_feed_counts_its_bars(store):
    with pytest.raises(WarmupError, match="needs 10 BTC/USDT 1d bars .* holds only 7"):
        btlab.run_backtest(DailySma, store=store, timeframes=["1h", "1d"], start="2021-01-01", end="2021-01-07")
    ok = btlab.run_backtest(DailySma, store=store, timeframes=["1h", "1d"], start="2021-01-01", end="2021-01-10",
                            record=False)
    assert len(ok.equity) == 240


# ---- 7. unknown data ---------------------------------------------------------------------------------------------
def test_missing_timeframe_lists_what_is_stored_and_offers_resample(store):
    with pytest.raises(NoDataError) as info:
        btlab.run_backtest("sma_cross", store=store, timeframe="4h")
    text = str(info.value)
    assert "no 4h bars for binance:BTC/USDT" in text and "\n" not in text
    assert "1h 2017-08-17 04:00 .. 2024-04-21 14:00 UTC (58,419 bars)" in text
    assert "1m 2025-05-20 00:00 .. 2025-08-18 18:27 UTC (130,708 bars)" in text
    assert ("btlab data resample --exchange binance --symbol BTC/USDT --source-timeframe 1h --timeframe 4h"
            in text)
    with pytest.raises(NoDataError, match="--source-timeframe 1m --timeframe 5m"):
        btlab.run_backtest("sma_cross", store=store, timeframe="5m")
    with pytest.raises(NoDataError) as info:  # ETH/USDT is stored as 1m only
        btlab.run_backtest("sma_cross", store=store, symbol="ETH/USDT", timeframe="1h")
    assert "stored for binance:ETH/USDT: 1m" in str(info.value)
    assert "--symbol ETH/USDT --source-timeframe 1m --timeframe 1h" in str(info.value)


def test_wrong_case_symbol_names_the_stored_one(store):
    with pytest.raises(NoDataError) as info:
        btlab.run_backtest("sma_cross", store=store, symbol="btc/usdt")
    text = str(info.value)
    assert "no 1h bars for binance:btc/usdt" in text and "did you mean --exchange binance --symbol BTC/USDT?" in text
    assert "resample" not in text  # 1h itself is stored (under BTC/USDT)
    with pytest.raises(NoDataError, match="stored for binance: BTC/USDT, ETH/USDT"):
        btlab.run_backtest("sma_cross", store=store, symbol="DOGE/USDT")
    with pytest.raises(NoDataError, match="nothing is stored for exchange kraken; stored exchanges: binance"):
        btlab.run_backtest("sma_cross", store=store, exchange="kraken")
    with pytest.raises(NoDataError, match="stored for binance:BTC/USDT: 1h 2017-08-17"):
        btlab.run_backtest("sma_cross", store=store, start="2030-01-01")
