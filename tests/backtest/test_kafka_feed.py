"""Backtests read from a replayed topic (real broker: Tansu, tests/broker.py) equal the same backtests read from
the store: trades, orders, equity, final value and metrics. Real data: Binance BTC/USDT and ETH/USDT 1m klines
(data/*_USDT-1m_2025-05-20_*.feather), two days of each, in a fresh DuckDB store."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stream"))

from broker import kafka_bootstrap  # noqa: E402, F401
from test_replay import BTC_SPAN, SYMBOLS, TICK_SYMBOLS, fill_store, fill_tick_store  # noqa: E402

from btlab.backtest.compat import bt  # noqa: E402
from btlab.backtest.kafka_feed import KafkaData, KafkaSource  # noqa: E402
from btlab.backtest.runner import run_backtest  # noqa: E402
from btlab.errors import InvalidArgumentError, NoDataError  # noqa: E402
from btlab.marketdata.bars.from_ticks import bars_from_ticks  # noqa: E402
from btlab.stream import StreamConfig, StreamError, StreamProducer  # noqa: E402
from btlab.stream.replay import REPLAY_HEADER, SEQ_HEADER, replay_bars, replay_ticks  # noqa: E402

FROM, TO = "2025-06-01", "2025-06-02"
PARAMS = {"fast": 10, "slow": 30}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with fill_store(tmp_path_factory.mktemp("kfeed") / "store.duckdb") as st:
        yield st


@pytest.fixture
def config(kafka_bootstrap: str) -> StreamConfig:  # noqa: F811
    return StreamConfig(kafka_bootstrap, prefix=f"k{uuid.uuid4().hex[:10]}", partitions=3, connect_timeout_s=5,
                        delivery_timeout_s=15)


class PairCross(bt.Strategy):
    """SMA crossover on EVERY feed (sma_cross trades the first only), recording what each step saw: the
    (bar count, datetime) of every feed, so a feed played one step late would show."""

    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        self.cross = [bt.indicators.CrossOver(bt.indicators.SMA(d.close, period=self.p.fast),
                                              bt.indicators.SMA(d.close, period=self.p.slow)) for d in self.datas]
        self.steps: list[tuple] = []

    def next(self) -> None:
        self.steps.append(tuple((len(d), d.datetime[0]) for d in self.datas))
        for d, cross in zip(self.datas, self.cross):
            if not self.getposition(d).size and cross > 0:
                self.buy(data=d)
            elif self.getposition(d).size and cross < 0:
                self.close(data=d)


def _run(store, symbols, source=None, strategy="sma_cross", **kw):
    return run_backtest(strategy, symbols=list(symbols), exchange="binance", timeframe="1m", start=FROM, end=TO,
                        params=PARAMS, store=store, source=source, **kw)


def _same(direct, streamed) -> None:
    # Backtrader numbers orders and trades with process-wide counters: refs differ between runs, nothing else
    pd.testing.assert_frame_equal(streamed.trades.drop(columns="trade_ref"), direct.trades.drop(columns="trade_ref"))
    pd.testing.assert_frame_equal(streamed.orders.drop(columns="order_ref"), direct.orders.drop(columns="order_ref"))
    pd.testing.assert_frame_equal(streamed.equity, direct.equity)
    assert streamed.summary.as_dict() == direct.summary.as_dict()
    assert streamed.equity["value"].iloc[-1] == direct.equity["value"].iloc[-1]
    for s, bars in direct.bars_by_symbol.items():
        pd.testing.assert_frame_equal(streamed.bars_by_symbol[s].reset_index(drop=True), bars.reset_index(drop=True))


@pytest.mark.parametrize("symbols", [SYMBOLS[:1], SYMBOLS], ids=["BTC", "BTC+ETH"])
def test_backtest_from_a_replayed_topic_equals_the_backtest_from_the_store(store, config, symbols) -> None:
    replay = replay_bars(store, "binance", symbols, "1m", FROM, TO, config=config, chunk_bars=700)
    direct = _run(store, symbols)
    assert len(direct.trades) > 20
    source = KafkaSource(replay.topic, config=config, max_queued=200)  # small queues: partitions get paused
    streamed = _run(store, symbols, source=source)
    assert source.replay_id == replay.replay_id and source.records == replay.records
    _same(direct, streamed)
    if len(symbols) == 2:  # a strategy trading both, with every step's view of both feeds compared
        direct2 = _run(store, symbols, strategy=PairCross, size_pct=45)
        streamed2 = _run(store, symbols, strategy=PairCross, size_pct=45,
                         source=KafkaSource(replay.topic, config=config, max_queued=200))
        assert set(direct2.trades["symbol"]) == set(symbols)
        assert streamed2.strategy.steps == direct2.strategy.steps
        _same(direct2, streamed2)
    runs = [store.get_run(r) for r in (direct.run_id, streamed.run_id)]
    fields = ("data_from", "data_to", "bars", "data_hash", "status", "total_return")
    assert [runs[1][f] for f in fields] == [runs[0][f] for f in fields]  # the streamed run's row: the same data
    assert runs[1]["status"] == "finished" and runs[1]["bars"] == sum(len(b) for b in direct.bars_by_symbol.values())


def test_a_second_replay_on_the_topic_is_played_when_named(store, config) -> None:
    topic = f"{config.prefix}.twice"
    replay_bars(store, "binance", ["BTC/USDT"], "1m", "2025-05-31", "2025-05-31", config=config, topic=topic)
    second = replay_bars(store, "binance", ["BTC/USDT"], "1m", FROM, TO, config=config, topic=topic)
    direct = _run(store, ["BTC/USDT"])
    first = run_backtest("sma_cross", symbol="BTC/USDT", timeframe="1m", store=store, record=False,
                         source=KafkaSource(topic, config=config))  # default: the first replay on the topic
    assert first.bars["ts"].iloc[0] == pd.Timestamp("2025-05-31", tz="UTC") and len(first.bars) == 1440
    with pytest.raises(NoDataError, match="no BTC/USDT bars in replay"):  # the first replay is outside the range
        _run(store, ["BTC/USDT"], source=KafkaSource(topic, config=config), record=False)
    named = _run(store, ["BTC/USDT"], source=KafkaSource(topic, config=config, replay_id=second.replay_id))
    _same(direct, named)


class MultiScale(bt.Strategy):
    """SMA crossover on each instrument's 15m feed, trading the 1m base feed; records every step's view of every
    feed (base and resampled)."""

    def __init__(self) -> None:
        n = len(self.datas) // 3  # base feeds, then @15m feeds, then @1h feeds
        self.pairs = [(self.datas[i], bt.indicators.CrossOver(bt.indicators.SMA(self.datas[n + i].close, period=3),
                                                              bt.indicators.SMA(self.datas[n + i].close, period=8)))
                      for i in range(n)]
        self.steps: list[tuple] = []

    def next(self) -> None:
        self.steps.append(tuple((len(d), d.datetime[0], d.close[0]) for d in self.datas))
        for d, cross in self.pairs:
            if not self.getposition(d).size and cross > 0:
                self.buy(data=d)
            elif self.getposition(d).size and cross < 0:
                self.close(data=d)


def test_resampled_timeframes_on_the_live_feed_equal_the_direct_run(store, config) -> None:
    replay = replay_bars(store, "binance", SYMBOLS, "1m", FROM, TO, config=config)
    args = dict(symbols=list(SYMBOLS), exchange="binance", timeframes=["1m", "15m", "1h"], start=FROM, end=TO,
                store=store, record=False, size_pct=45)
    direct = run_backtest(MultiScale, **args)
    streamed = run_backtest(MultiScale, **args, source=KafkaSource(replay.topic, config=config))
    assert [d._name for d in streamed.strategy.datas] == [d._name for d in direct.strategy.datas]
    assert len(direct.trades) > 5 and set(direct.trades["symbol"]) == set(SYMBOLS)
    assert streamed.strategy.steps == direct.strategy.steps
    _same(direct, streamed)


class _Statuses(bt.Strategy):
    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.live = [d.islive() for d in self.datas]

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.statuses.append(data._getstatusname(status))


def test_feed_is_live_and_reports_delayed_then_live(store, config) -> None:
    replay = replay_bars(store, "binance", ["BTC/USDT"], "1m", FROM, FROM, config=config)
    result = run_backtest(_Statuses, symbol="BTC/USDT", exchange="binance", timeframe="1m", store=store,
                          record=False, source=KafkaSource(replay.topic, config=config))
    assert result.strategy.live == [True]
    assert result.strategy.statuses[0] == "DELAYED" and "LIVE" in result.strategy.statuses
    assert len(result.bars) == 1440


def _publish(config: StreamConfig, topic: str, store, seqs: list[int], *, abort: bool = False) -> None:
    """BTC/USDT bars of FROM, sent with the given sequence numbers (a broken replay), then end markers."""
    bars = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=FROM, end="2025-06-01T01:00")
    from btlab.stream.codec import iter_bar_records

    records = list(iter_bar_records(bars, exchange="binance", symbol="BTC/USDT", timeframe="1m"))
    with StreamProducer(config) as producer:
        rid = producer.begin_replay()
        for seq in seqs:
            key, value, ts_ms, _ = records[min(seq, len(records)) - 1]
            producer.produce(topic, key, value, ts_ms, headers=[(REPLAY_HEADER, rid.encode()),
                                                                (SEQ_HEADER, str(seq).encode())])
        producer.end_replay([topic], reason="aborted" if abort else None)


@pytest.mark.parametrize(
    ("seqs", "abort", "message"),
    [
        ([1, 2, 4, 5], False, r"record 4 after 2: records missing \(1 record"),
        ([1, 2, 3, 3, 4], False, r"record 3 after 3: records repeated"),
        ([1, 2, 3], True, r"was aborted before its end"),
    ],
    ids=["missing", "repeated", "aborted"],
)
def test_missing_repeated_or_aborted_records_are_an_error_not_a_different_backtest(store, config, seqs, abort,
                                                                                   message) -> None:
    topic = f"{config.prefix}.broken"
    _publish(config, topic, store, seqs, abort=abort)
    with pytest.raises(StreamError, match=message):
        run_backtest("buy_hold", symbol="BTC/USDT", exchange="binance", timeframe="1m", store=store, record=False,
                     source=KafkaSource(topic, config=config))


def test_unknown_topic_unreachable_broker_and_unsupported_requests_are_clear_errors(store, config) -> None:
    with pytest.raises(NoDataError, match="does not exist"):
        run_backtest("buy_hold", symbol="BTC/USDT", timeframe="1m", store=store, record=False,
                     source=KafkaSource(f"{config.prefix}.nothing", config=config))
    from btlab.stream import BrokerUnavailableError
    from broker import free_port

    down = StreamConfig(f"127.0.0.1:{free_port()}", connect_timeout_s=1)
    with pytest.raises(BrokerUnavailableError, match="cannot reach the Kafka broker"):
        run_backtest("buy_hold", symbol="BTC/USDT", timeframe="1m", store=store, record=False,
                     source=KafkaSource("t", config=down))
    with pytest.raises(InvalidArgumentError, match="not supported with a Kafka source"):
        run_backtest("buy_hold", symbol="SPY", exchange="nyse", timeframe="1m", session="regular", store=store,
                     record=False, source=KafkaSource("t", config=config))


# ------------------------------------------------------------------------------------- bars built from ticks --
#: the XRP/ETH file ends at 2019-10-13 11:19:xx: both paths take its trades as complete to the end of that minute
XRP_BARS = (pd.Timestamp("2019-10-11", tz="UTC"), pd.Timestamp("2019-10-13 11:20", tz="UTC"))


@pytest.fixture(scope="module")
def tick_store(tmp_path_factory):
    """Real trades (see fill_tick_store) and the 1m bars built from them by the batch path, in one DuckDB store."""
    with fill_tick_store(tmp_path_factory.mktemp("kticks") / "ticks.duckdb") as st:
        bars_from_ticks(st, exchange="binance", symbol="XRP/ETH", timeframes=["1m"], start=XRP_BARS[0],
                        end=XRP_BARS[1])
        bars_from_ticks(st, exchange="binance", symbol="BTC/USDT", timeframes=["1m"], start=BTC_SPAN[0],
                        end=BTC_SPAN[1])
        yield st


def test_backtest_from_a_tick_topic_equals_the_backtest_on_bars_built_from_the_same_ticks(tick_store, config) -> None:
    # both instruments in the replay (BTC/USDT's trades come years later), the run trades XRP/ETH
    replay = replay_ticks(tick_store, "binance", TICK_SYMBOLS, "2019-10-11", "2024-08-09", config=config,
                          chunk_seconds=3600)
    args = dict(symbols=["XRP/ETH"], exchange="binance", timeframe="1m", start="2019-10-11", end="2019-10-13",
                params={"fast": 3, "slow": 8}, store=tick_store, allow_gaps=True)  # sparse trades: empty minutes
    direct = run_backtest("sma_cross", **args)
    assert len(direct.trades) > 100 and len(direct.bars) == 2469
    source = KafkaSource(replay.topic, config=config, max_queued=200)  # small queues: partitions get paused
    streamed = run_backtest("sma_cross", **args, source=source)
    assert source.records == replay.records == sum(replay.per_key.values())
    _same(direct, streamed)
    runs = [tick_store.get_run(r) for r in (direct.run_id, streamed.run_id)]
    fields = ("data_from", "data_to", "bars", "data_hash", "status", "total_return", "sharpe")
    assert [runs[1][f] for f in fields] == [runs[0][f] for f in fields]


class StaggeredCross(bt.Strategy):
    """SMA crossover on every feed, trading each from its own first bars (``prenext`` too: the two instruments'
    data lie years apart, so Backtrader never sees both at once); records every step's view of every feed."""

    params = (("fast", 2), ("slow", 4))

    def __init__(self) -> None:
        self.smas = [(bt.indicators.SMA(d.close, period=self.p.fast), bt.indicators.SMA(d.close, period=self.p.slow))
                     for d in self.datas]
        self.steps: list[tuple] = []

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        self.steps.append(tuple((len(d), d.datetime[0] if len(d) else None) for d in self.datas))
        for d, (fast, slow) in zip(self.datas, self.smas):
            if len(d) <= self.p.slow:
                continue
            held = self.getposition(d).size
            if not held and fast[0] > slow[0] and fast[-1] <= slow[-1]:
                self.buy(data=d)
            elif held and fast[0] < slow[0] and fast[-1] >= slow[-1]:
                self.close(data=d)


def test_two_instruments_and_resampled_timeframes_from_a_tick_topic_equal_the_direct_runs(tick_store,
                                                                                          config) -> None:
    replay = replay_ticks(tick_store, "binance", TICK_SYMBOLS, "2019-10-11", "2024-08-09", config=config)
    both = dict(symbols=["XRP/ETH", "BTC/USDT"], exchange="binance", timeframe="1m", start="2019-10-11",
                end="2024-08-09", store=tick_store, allow_gaps=True, record=False, size_pct=45)
    direct = run_backtest(StaggeredCross, **both)
    streamed = run_backtest(StaggeredCross, **both, source=KafkaSource(replay.topic, config=config, max_queued=300))
    assert set(direct.trades["symbol"]) == {"XRP/ETH", "BTC/USDT"}
    assert {s: len(b) for s, b in direct.bars_by_symbol.items()} == {"XRP/ETH": 2469, "BTC/USDT": 10}
    assert streamed.strategy.steps == direct.strategy.steps
    _same(direct, streamed)
    # several timeframes: 1m bars from the ticks, 15m and 1h by cerebro.resampledata, as on the direct path
    multi = dict(symbols=["XRP/ETH"], exchange="binance", timeframes=["1m", "15m", "1h"], start="2019-10-11",
                 end="2019-10-13", store=tick_store, allow_gaps=True, record=False)
    direct = run_backtest(MultiScale, **multi)
    streamed = run_backtest(MultiScale, **multi, source=KafkaSource(replay.topic, config=config))
    assert len(direct.trades) > 5 and len(direct.strategy.datas) == 3
    assert streamed.strategy.steps == direct.strategy.steps
    _same(direct, streamed)


# ------------------------------------------------------------------------------------------------- replaydata --
class ReplayWatch(bt.Strategy):
    """Records what every next() sees of every feed: (bar count, datetime, OHLCV) -- with ``replaydata`` the
    current higher-timeframe bar is updated in place, minute by minute -- and trades an SMA cross on the first
    (``size`` units, one order at a time)."""

    params = (("size", 0.01), ("fast", 3), ("slow", 8))

    def __init__(self) -> None:
        self.pending = None
        self.cross = bt.indicators.CrossOver(bt.indicators.SMA(self.data.close, period=self.p.fast),
                                             bt.indicators.SMA(self.data.close, period=self.p.slow))
        self.steps: list[tuple] = []

    def prenext(self) -> None:
        self.steps.append(self._seen())

    def _seen(self) -> tuple:
        return tuple((len(d), d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0])
                     for d in self.datas)

    def next(self) -> None:
        self.steps.append(self._seen())
        if self.pending:
            return
        if not self.position and self.cross > 0:
            self.pending = self.buy(size=self.p.size)
        elif self.position and self.cross < 0:
            self.pending = self.close()

    def notify_order(self, order) -> None:
        if not order.alive():
            self.pending = None


def _replayed_run(feeds, compression: int = 60, **params) -> tuple[list[tuple], list[tuple]]:
    """Cerebro with every feed replayed 1m -> ``compression`` minutes (``cerebro.replaydata``), run:
    (every step's view, the orders' (created, executed time, price, size))."""
    cerebro = bt.Cerebro(stdstats=False)
    for feed in feeds:
        cerebro.replaydata(feed, timeframe=bt.TimeFrame.Minutes, compression=compression, name=feed._name)
    cerebro.addstrategy(ReplayWatch, **params)
    strat = cerebro.run()[0]
    fills = [(o.created.dt, o.executed.dt, o.executed.price, o.executed.size) for o in strat._orders
             if o.status == o.Completed]
    return strat.steps, fills


@pytest.mark.parametrize("symbols", [SYMBOLS[:1], SYMBOLS], ids=["BTC", "BTC+ETH"])
def test_replaydata_on_the_live_feed_gives_the_direct_runs_updates(store, config, symbols) -> None:
    from btlab.backtest.feed import StoreData

    replay = replay_bars(store, "binance", symbols, "1m", FROM, FROM, config=config)
    lo, hi = pd.Timestamp(FROM, tz="UTC"), pd.Timestamp("2025-06-02", tz="UTC")
    direct = [StoreData(store=store, exchange="binance", symbol=s, bars_timeframe="1m", start=lo, end=hi, name=s)
              for s in symbols]
    d_steps, d_fills = _replayed_run(direct, fast=2, slow=4)
    source = KafkaSource(replay.topic, config=config, max_queued=200)  # small queues: partitions get paused
    try:
        s_steps, s_fills = _replayed_run(source.feeds("binance", list(symbols), "1m", lo, hi), fast=2, slow=4)
    finally:
        source.close()
    assert len(d_steps) == 1440  # one step per 1m bar, the 1h bar growing in place
    assert len({step[0][0] for step in d_steps}) == 24  # ... over 24 hourly bars
    assert len(d_fills) > 2  # a strategy that trades on the growing bars
    assert s_steps == d_steps
    assert s_fills == d_fills


def test_replaydata_from_a_tick_topic_gives_the_direct_runs_updates_on_bars_built_from_the_ticks(tick_store,
                                                                                                  config) -> None:
    from btlab.backtest.feed import StoreData

    replay = replay_ticks(tick_store, "binance", ["XRP/ETH"], "2019-10-11", "2019-10-12", config=config)
    lo, hi = XRP_BARS[0], pd.Timestamp("2019-10-13", tz="UTC")  # sparse trades: many minutes without a bar
    direct = StoreData(store=tick_store, exchange="binance", symbol="XRP/ETH", bars_timeframe="1m", start=lo, end=hi,
                       name="XRP/ETH")
    d_steps, d_fills = _replayed_run([direct], compression=15)
    source = KafkaSource(replay.topic, config=config)
    try:
        s_steps, s_fills = _replayed_run(source.feeds("binance", ["XRP/ETH"], "1m", lo, hi), compression=15)
    finally:
        source.close()
    assert len(d_steps) == len(direct.load_bars()) == 1995 and len(d_fills) > 10  # a step per 1m bar
    assert s_steps == d_steps
    assert s_fills == d_fills


def test_replaydata_beside_the_plain_1m_feeds_on_the_live_feed_gives_the_direct_runs_updates(store, config) -> None:
    """Both instruments' 1m feeds as they are, plus BTC/USDT again replayed 1m -> 15m (a second subscription of
    the same instrument on the Kafka path, a second store feed on the direct one)."""
    from btlab.backtest.feed import StoreData

    replay = replay_bars(store, "binance", SYMBOLS, "1m", FROM, FROM, config=config)
    lo, hi = pd.Timestamp(FROM, tz="UTC"), pd.Timestamp("2025-06-02", tz="UTC")

    def run(feeds, btc_again) -> tuple[list[tuple], list[tuple]]:
        cerebro = bt.Cerebro(stdstats=False)
        for feed in feeds:
            cerebro.adddata(feed, name=feed._name)
        cerebro.replaydata(btc_again, timeframe=bt.TimeFrame.Minutes, compression=15, name="BTC/USDT@15m")
        cerebro.addstrategy(ReplayWatch)
        strat = cerebro.run()[0]
        return strat.steps, [(o.executed.dt, o.executed.price, o.executed.size) for o in strat._orders
                             if o.status == o.Completed]

    def stored(symbol: str, name: str) -> StoreData:
        return StoreData(store=store, exchange="binance", symbol=symbol, bars_timeframe="1m", start=lo, end=hi,
                         name=name)

    d_steps, d_fills = run([stored(s, s) for s in SYMBOLS], stored("BTC/USDT", "BTC/USDT@15m"))
    source = KafkaSource(replay.topic, config=config, max_queued=200)
    try:
        feeds = source.feeds("binance", list(SYMBOLS), "1m", lo, hi)
        s_steps, s_fills = run(feeds, KafkaData(source=source, symbol="BTC/USDT", bars_timeframe="1m",
                                                name="BTC/USDT@15m", start=lo, end=hi))
    finally:
        source.close()
    assert len(d_steps) == 1440 and {step[2][0] for step in d_steps} == set(range(1, 97))  # 96 growing 15m bars
    assert len(d_fills) > 2
    assert s_steps == d_steps
    assert s_fills == d_fills


def test_replaydata_while_the_replay_is_still_publishing_gives_the_direct_runs_updates(store, config) -> None:
    """The live case: the backtest reads the topic while a paced replay writes it (a day of 1m bars of both
    instruments at 14,400x: about 6 s), so the feeds keep returning None (no bar yet) between bars."""
    import threading

    from btlab.backtest.feed import StoreData

    lo, hi = pd.Timestamp(FROM, tz="UTC"), pd.Timestamp("2025-06-02", tz="UTC")
    direct = [StoreData(store=store, exchange="binance", symbol=s, bars_timeframe="1m", start=lo, end=hi, name=s)
              for s in SYMBOLS]
    d_steps, d_fills = _replayed_run(direct, fast=2, slow=4)
    topic = f"{config.prefix}.live"
    with StreamProducer(config) as producer:
        producer.ensure_topic(topic)  # the feed opens before the first record is written
    outcome: list = []

    def publish() -> None:
        try:
            outcome.append(replay_bars(store, "binance", SYMBOLS, "1m", FROM, FROM, config=config, topic=topic,
                                       speed=14_400))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=publish)
    source = KafkaSource(topic, config=config)
    try:
        feeds = source.feeds("binance", list(SYMBOLS), "1m", lo, hi)
        thread.start()
        s_steps, s_fills = _replayed_run(feeds, fast=2, slow=4)
    finally:
        thread.join(60)
        source.close()
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    assert outcome[0].seconds > 4  # it was paced: the run waited for bars
    assert len(d_fills) > 2
    assert s_steps == d_steps
    assert s_fills == d_fills
