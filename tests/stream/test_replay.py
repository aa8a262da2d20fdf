"""Replaying stored bars through a real broker (Tansu, tests/broker.py): order, sequence numbers, end markers,
pacing schedule, Ctrl-C. Real data: Binance BTC/USDT and ETH/USDT 1m klines (data/*_USDT-1m_2025-05-20_*.feather),
two days of each in a fresh DuckDB store."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from broker import kafka_bootstrap  # noqa: F401
from realdata import DATA

from btlab.errors import InvalidArgumentError, NoDataError
from btlab.model.timeframe import Timeframe
from btlab.store.duckdb import DuckDBStore
from btlab.stream import EndMarker, StreamConfig, StreamProducer, decode
from btlab.stream.replay import (
    ABORTED,
    REPLAY_HEADER,
    SEQ_HEADER,
    iter_replay_chunks,
    parse_speed,
    replay_bars,
    replay_ticks,
)

FROM, TO = "2025-06-01", "2025-06-02"  # inclusive dates: 2 days = 2,880 one-minute bars per instrument
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def minute_bars(symbol: str) -> pd.DataFrame:
    """Real 1m klines of ``symbol`` (2025-05-20 .. 2025-08-18) from data/."""
    name = symbol.replace("/", "_")
    frame = pd.read_feather(DATA / f"{name}-1m_2025-05-20_2025-08-18.feather").rename(columns={"date": "ts"})
    return frame


def fill_store(path: Path, start: str = "2025-05-31", end: str = "2025-06-04") -> DuckDBStore:
    """A DuckDB store holding both instruments' 1m bars between ``start`` and ``end``."""
    store = DuckDBStore(path)
    for symbol in SYMBOLS:
        bars = minute_bars(symbol)
        bars = bars[(bars["ts"] >= start) & (bars["ts"] < end)]
        store.write_bars(bars, exchange="binance", symbol=symbol, timeframe="1m", source="test")
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with fill_store(tmp_path_factory.mktemp("replay") / "store.duckdb") as st:
        yield st


@pytest.fixture
def config(kafka_bootstrap: str) -> StreamConfig:  # noqa: F811
    return StreamConfig(kafka_bootstrap, prefix=f"r{uuid.uuid4().hex[:10]}", partitions=3, connect_timeout_s=5,
                        delivery_timeout_s=15)


def read_topic(bootstrap: str, topic: str, partitions: int) -> dict[int, list]:
    """Every record of every partition of ``topic`` (plain client, assigned from the beginning) until each
    partition's end marker."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out: dict[int, list] = {p: [] for p in range(partitions)}
    ended: set[int] = set()
    deadline = time.monotonic() + 30
    while len(ended) < partitions and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error() is not None:
                continue
            out[m.partition()].append(m)
            if m.key() is None and isinstance(decode(m.value()), EndMarker):
                ended.add(m.partition())
    c.close()
    assert len(ended) == partitions, "end markers missing"
    return out


def test_chunks_are_in_event_time_order_with_ties_by_symbol_and_hold_every_stored_bar(store) -> None:
    tf = Timeframe.parse("1m")
    lo, hi = pd.Timestamp(FROM, tz="UTC"), pd.Timestamp("2025-06-03", tz="UTC")
    chunks = list(iter_replay_chunks(store, "binance", list(SYMBOLS), tf, lo, hi, chunk_bars=700))
    assert len(chunks) > 4  # bounded windows, not one read
    merged = pd.concat(chunks, ignore_index=True)
    order = list(zip(merged["event_ns"], merged["symbol"]))
    assert order == sorted(order)
    assert (merged["event_ns"] == pd.DatetimeIndex(merged["ts"]).asi8 + tf.nanos).all()  # event time = close
    for symbol in SYMBOLS:
        stored = store.read_bars(exchange="binance", symbol=symbol, timeframe="1m", start=lo, end=hi)
        got = merged[merged["symbol"] == symbol].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[stored.columns.tolist()], stored)


def test_replay_publishes_every_bar_keyed_with_sequence_numbers_and_ends_with_markers(store, config) -> None:
    seen = []
    result = replay_bars(store, "binance", "BTC/USDT,ETH/USDT", "1m", FROM, TO, config=config, speed="max",
                         chunk_bars=500, progress=seen.append, progress_every_s=0.0)
    assert result.records == 2 * 2880 and result.per_key == {"binance:BTC/USDT": 2880, "binance:ETH/USDT": 2880}
    assert result.first_event == pd.Timestamp("2025-06-01 00:01", tz="UTC")
    assert result.last_event == pd.Timestamp("2025-06-03 00:00", tz="UTC")
    assert seen and seen[-1].records == result.records and seen[-1].event_time == result.last_event
    records = read_topic(config.bootstrap_servers, result.topic, 3)
    per_key: dict[str, list] = {}
    for p, msgs in records.items():
        data = [m for m in msgs if m.key() is not None]
        marker = decode(msgs[-1].value())
        assert marker == EndMarker(result.replay_id, p, 3, len(data), None)
        for m in data:
            per_key.setdefault(m.key().decode(), []).append(m)
    for symbol in SYMBOLS:
        msgs = per_key[f"binance:{symbol}"]
        headers = [dict(m.headers()) for m in msgs]
        assert [int(h[SEQ_HEADER]) for h in headers] == list(range(1, 2881))
        assert {h[REPLAY_HEADER].decode() for h in headers} == {result.replay_id}
        bars = [decode(m.value()) for m in msgs]
        stored = store.read_bars(exchange="binance", symbol=symbol, timeframe="1m", start=FROM, end="2025-06-03")
        assert [b.ts for b in bars] == pd.DatetimeIndex(stored["ts"]).asi8.tolist()
        assert [b.close for b in bars] == stored["close"].tolist()
        assert [m.timestamp()[1] for m in msgs] == [b.ts // 1_000_000 for b in bars]  # record ts = bar open


class FakeClock:
    """A monotonic clock that only moves when slept on: the schedule becomes exactly observable."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + 0.0004  # every sleep overshoots a little, as real sleeps do


def test_pacing_follows_the_schedule_from_the_start_so_overshoot_does_not_accumulate(store, config) -> None:
    clock = FakeClock()
    result = replay_bars(store, "binance", ["BTC/USDT"], "1m", "2025-06-01T00:00", "2025-06-01T01:39", config=config,
                         speed=60, clock=clock, sleep=clock.sleep)
    assert result.records == 100
    # 99 minutes of event time at 60x = 99 s after the first record; each sleep's 0.4 ms overshoot is absorbed
    assert clock.now - 1000.0 == pytest.approx(99.0004, abs=1e-9)
    assert result.max_lag_s == pytest.approx(0.0004, abs=1e-9)
    assert len(clock.sleeps) == 99 and clock.sleeps[0] == 1.0  # the first sleep: a full second
    assert all(s == pytest.approx(1.0 - 0.0004, abs=1e-9) for s in clock.sleeps[1:])  # then shortened by overshoot


def test_ctrl_c_ends_the_replay_with_aborted_markers_counting_what_was_sent(store, config) -> None:
    def stop(progress) -> None:
        if progress.records >= 640:
            raise KeyboardInterrupt

    topic = f"{config.prefix}.aborted"
    with pytest.raises(KeyboardInterrupt, match="aborted after 640 records"):
        replay_bars(store, "binance", SYMBOLS, "1m", FROM, TO, config=config, topic=topic, progress=stop,
                    progress_every_s=0.0)
    records = read_topic(config.bootstrap_servers, topic, 3)
    markers = [decode(msgs[-1].value()) for msgs in records.values()]
    assert {m.reason for m in markers} == {ABORTED}
    assert sum(m.count for m in markers) == 640 == sum(len(msgs) - 1 for msgs in records.values())


def test_bad_requests_are_refused_before_anything_is_sent(store, config) -> None:
    with pytest.raises(InvalidArgumentError, match="speed"):
        parse_speed("fast")
    with pytest.raises(InvalidArgumentError, match="speed"):
        parse_speed("-1")
    assert parse_speed("max") is None and parse_speed("60") == 60.0
    with pytest.raises(NoDataError, match="nothing to replay"):
        replay_bars(store, "binance", ["DOGE/USDT"], "1m", FROM, TO, config=config)
    with pytest.raises(NoDataError, match="nothing to replay"):
        replay_bars(store, "binance", ["BTC/USDT"], "1m", "2030-01-01", "2030-01-02", config=config)


# ------------------------------------------------------------------------------------------------ tick replay --
XRP_FILE = DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
TICK_SYMBOLS = ("BTC/USDT", "XRP/ETH")
#: the minutes the BTC/USDT recording covers completely
BTC_SPAN = (pd.Timestamp("2024-08-08 23:55", tz="UTC"), pd.Timestamp("2024-08-09 00:05", tz="UTC"))


def fill_tick_store(path: Path, *, trade_on_close: bool = False) -> DuckDBStore:
    """A DuckDB store holding real trades of two instruments: Binance XRP/ETH aggTrades of 2019-10-11 .. 13
    (12,477, imported by the data.binance.vision importer) and the recorded Binance BTC/USDT trades of the
    minutes the WebSocket recording covers completely, 2024-08-08 23:55 .. 2024-08-09 00:05 (no importer reads that
    recording, so they are written as tick rows, as tests/marketdata/bars/test_from_ticks.py does).

    ``trade_on_close``: the first BTC/USDT trade after 2024-08-09 00:01 (at 00:01:00.0xx) is moved to exactly
    00:01:00.000, the close of the 00:00 bar: real trades at exactly a minute boundary happen, but none is in this
    recording, and the tie order (bar first, the trade opens the next window) needs one."""
    from realdata import recorded_trades

    from btlab.marketdata.sources.binance_vision.importer import import_binance_vision

    store = DuckDBStore(path)
    import_binance_vision(XRP_FILE, store)
    rec = recorded_trades()
    rec = rec[(rec["ts"] >= BTC_SPAN[0]) & (rec["ts"] < BTC_SPAN[1])].copy()
    if trade_on_close:
        boundary = pd.Timestamp("2024-08-09 00:01", tz="UTC")
        first = rec.index[rec["ts"] >= boundary][0]
        assert rec.at[first, "ts"] - boundary < pd.Timedelta(1, "s")
        rec.at[first, "ts"] = boundary
    store.upsert("ticks", pd.DataFrame({"ts": rec["ts"], "exchange": "binance", "symbol": "BTC/USDT",
                                        "trade_id": rec["id"].astype(str), "price": rec["price"],
                                        "amount": rec["amount"], "side": None}))
    return store


@pytest.fixture(scope="module")
def tick_store(tmp_path_factory):
    with fill_tick_store(tmp_path_factory.mktemp("ticks") / "ticks.duckdb") as st:
        yield st


def _stored_ticks(store, symbol: str, start=None, end=None) -> pd.DataFrame:
    return store.read_ticks(exchange="binance", symbol=symbol, start=start, end=end)


def test_tick_chunks_are_in_trade_time_order_ties_by_symbol_then_id_and_jump_over_gaps(tick_store) -> None:
    from btlab.stream.replay import iter_tick_chunks

    reads = []
    original = tick_store.read_ticks

    class Counting:  # the real store, its reads counted (a 5-year gap must not cost a read per window)
        def __getattr__(self, name):
            return getattr(tick_store, name)

        def read_ticks(self, **kw):
            reads.append(kw)
            return original(**kw)

    chunks = list(iter_tick_chunks(Counting(), "binance", list(TICK_SYMBOLS), None, None, chunk_seconds=600))
    assert len(chunks) > 10 and len(reads) < 2 * 450  # 3 days + 11 minutes of 10-minute windows, 2 reads each
    merged = pd.concat(chunks, ignore_index=True)
    ids = merged["trade_id"].astype("int64")
    order = list(zip(merged["event_ns"], merged["symbol"], ids))
    assert order == sorted(order)
    assert (merged["event_ns"] == pd.DatetimeIndex(merged["ts"]).asi8).all()  # event time = trade time
    assert merged["ts"].duplicated().any()  # real ties at the same time exist, ordered by id above
    for symbol in TICK_SYMBOLS:
        stored = _stored_ticks(tick_store, symbol)
        got = merged[merged["symbol"] == symbol].reset_index(drop=True)
        assert len(got) == len(stored) > 10_000
        assert set(got["trade_id"]) == set(stored["trade_id"])
        pd.testing.assert_series_equal(got["ts"], stored["ts"].sort_values(ignore_index=True), check_names=False)


def test_tick_replay_publishes_every_trade_keyed_with_trade_time_and_sequence_numbers(tick_store, config) -> None:
    seen = []
    result = replay_ticks(tick_store, "binance", "XRP/ETH,BTC/USDT", "2019-10-12", "2024-08-09", config=config,
                          chunk_seconds=300, progress=seen.append, progress_every_s=0.0)
    xrp = _stored_ticks(tick_store, "XRP/ETH", "2019-10-12")
    btc = _stored_ticks(tick_store, "BTC/USDT")
    assert result.topic == f"{config.prefix}.ticks"
    assert result.per_key == {"binance:XRP/ETH": len(xrp), "binance:BTC/USDT": len(btc)}
    assert result.first_event == xrp["ts"].iloc[0] and result.last_event == btc["ts"].iloc[-1]
    assert seen[-1].records == result.records and seen[-1].event_time == result.last_event
    assert result.pacing.records == 0  # unpaced
    records = read_topic(config.bootstrap_servers, result.topic, 3)
    per_key: dict[str, list] = {}
    for p, msgs in records.items():
        data = [m for m in msgs if m.key() is not None]
        assert decode(msgs[-1].value()) == EndMarker(result.replay_id, p, 3, len(data), None)
        for m in data:
            per_key.setdefault(m.key().decode(), []).append(m)
    for symbol, stored in (("XRP/ETH", xrp), ("BTC/USDT", btc)):
        msgs = per_key[f"binance:{symbol}"]
        assert [int(dict(m.headers())[SEQ_HEADER]) for m in msgs] == list(range(1, len(stored) + 1))
        ticks = [decode(m.value()) for m in msgs]
        stored = stored.assign(n=stored["trade_id"].astype("int64")).sort_values(["ts", "n"], kind="stable")
        assert [t.trade_id for t in ticks] == stored["trade_id"].tolist()
        assert [t.ts for t in ticks] == pd.DatetimeIndex(stored["ts"]).asi8.tolist()
        assert [t.price for t in ticks] == stored["price"].tolist()
        assert [t.amount for t in ticks] == stored["amount"].tolist()
        assert [m.timestamp()[1] for m in msgs] == [t.ts // 1_000_000 for t in ticks]  # record ts = trade time


def test_tick_pacing_is_scheduled_by_trade_time_and_the_replay_measures_its_error(tick_store, config) -> None:
    clock = FakeClock()
    result = replay_ticks(tick_store, "binance", ["BTC/USDT"], "2024-08-09T00:00", "2024-08-09T00:00:20",
                          config=config, speed=1, clock=clock, sleep=clock.sleep)
    ticks = _stored_ticks(tick_store, "BTC/USDT", "2024-08-09T00:00", "2024-08-09T00:00:20.001")
    assert result.records == len(ticks) > 100
    span = (ticks["ts"].iloc[-1] - ticks["ts"].iloc[0]).total_seconds()
    assert clock.now - 1000.0 == pytest.approx(span + 0.0004, abs=1e-6)  # real time; overshoot not accumulated
    assert result.pacing.records == result.records
    # every record's error is the 0.4 ms overshoot of its sleep (of the sleep before, for trades at the same time)
    assert result.pacing.p99_s == pytest.approx(0.0004, abs=1e-6) and result.pacing.max_s == pytest.approx(0.0004)


def test_ticks_refused_when_nothing_stored(tick_store, config) -> None:
    with pytest.raises(NoDataError, match="nothing to replay"):
        replay_ticks(tick_store, "binance", ["DOGE/USDT"], config=config)
    with pytest.raises(NoDataError, match="nothing to replay"):
        replay_ticks(tick_store, "binance", ["BTC/USDT"], "2030-01-01", "2030-01-02", config=config)


def test_replay_writes_records_per_s_and_lag_to_bt_health_for_the_dashboard(store, config) -> None:
    t0 = pd.Timestamp.now(tz="UTC")
    result = replay_bars(store, "binance", ["BTC/USDT"], "1m", "2025-06-01T00:00", "2025-06-01T02:29", config=config,
                         speed=9000, health_interval_s=0.25)  # 150 bars, one every 6.7 ms: about 1 s
    rows = store.read_health(service="replay", start=t0)
    assert result.health_rows == len(rows) > 0
    rate = rows[rows["metric"] == "records_per_s"]
    lag = rows[rows["metric"] == "replay_lag_s"]
    # each interval, and the end: about 4 intervals plus the end (fewer when bt_health writes are slow, as each
    # interval starts after the previous write)
    assert len(rate) == len(lag) == len(rows[rows["metric"] == "heartbeat"]) >= 2
    assert set(rate["subject"]) == set(lag["subject"]) == {result.topic}
    # records/s per interval: about 150 per second while publishing (the last, short interval may be lower; an
    # interval after a slow bt_health write catches up, faster): a rate, not a count per interval
    assert 50 <= rate["value"].iloc[:-1].median() <= 400, rate
    assert lag["value"].between(0, 0.05).all(), lag
    assert list(rows["service"].unique()) == ["replay"]


# ------------------------------------------------------------------------------------- ticks and bars together --
#: the XRP/ETH file ends at 2019-10-13 11:19:xx: bars are built for the minutes it covers completely
XRP_BARS = (pd.Timestamp("2019-10-11", tz="UTC"), pd.Timestamp("2019-10-13 11:20", tz="UTC"))


@pytest.fixture(scope="module")
def tick_bar_store(tmp_path_factory):
    """The real trades of :func:`fill_tick_store` (one on a bar close) and the 1m bars built from them by the batch
    path."""
    from btlab.marketdata.bars.from_ticks import bars_from_ticks

    with fill_tick_store(tmp_path_factory.mktemp("tickbars") / "tb.duckdb", trade_on_close=True) as st:
        bars_from_ticks(st, exchange="binance", symbol="XRP/ETH", timeframes=["1m"], start=XRP_BARS[0],
                        end=XRP_BARS[1])
        bars_from_ticks(st, exchange="binance", symbol="BTC/USDT", timeframes=["1m"], start=BTC_SPAN[0],
                        end=BTC_SPAN[1])
        yield st


def _published_order(pieces) -> pd.DataFrame:
    """The publishing order of merged pieces as one frame (kind 0 = bars, 1 = ticks): piece by piece, rows by
    event time, equal times bars first (what _publish does with each piece)."""
    rows = []
    for bars, ticks in pieces:
        both = pd.concat([bars.assign(kind=0), ticks.assign(kind=1)], ignore_index=True)
        rows.append(both.sort_values("event_ns", kind="stable"))
    return pd.concat(rows, ignore_index=True)


def _check_windows(order: pd.DataFrame) -> int:
    """Per symbol, every bar (event = close) comes after every trade before its close and before every trade at or
    after it: each trade is preceded by exactly the bars that closed at or before it. Returns the number of trades
    at exactly a bar's close (the tie case: they must follow the bar)."""
    at_close = 0
    for symbol, rows in order.reset_index(drop=True).groupby("symbol", sort=False):
        pos = rows.index.to_numpy()
        is_bar = (rows["kind"] == 0).to_numpy()
        ev = rows["event_ns"].to_numpy()
        bar_pos, bar_close = pos[is_bar], ev[is_bar]
        trade_pos, trade_ev = pos[~is_bar], ev[~is_bar]
        assert len(bar_pos) and len(trade_pos)
        before = np.searchsorted(bar_pos, trade_pos)  # bars published before each trade
        closed = np.searchsorted(bar_close, trade_ev, side="right")  # bars closed at or before each trade
        assert (before == closed).all(), (symbol, trade_ev[before != closed][:3])
        at_close += int(np.isin(trade_ev, bar_close).sum())
    return at_close


def test_merged_ticks_and_bars_never_show_a_bar_before_the_last_trade_of_its_window(tick_bar_store) -> None:
    from btlab.stream.replay import iter_merged_chunks, iter_tick_chunks

    tf = Timeframe.parse("1m")
    lo, hi = pd.Timestamp("2019-10-11", tz="UTC"), pd.Timestamp("2024-08-10", tz="UTC")
    pieces = list(iter_merged_chunks([iter_replay_chunks(tick_bar_store, "binance", list(TICK_SYMBOLS), tf, lo, hi,
                                                         chunk_bars=600),
                                      iter_tick_chunks(tick_bar_store, "binance", list(TICK_SYMBOLS), lo, hi,
                                                       chunk_seconds=1800)]))
    assert len(pieces) > 10  # merged piece by piece, never the whole range at once
    order = _published_order(pieces)
    assert order["event_ns"].is_monotonic_increasing
    for symbol in TICK_SYMBOLS:  # every stored bar and trade exactly once
        rows = order[order["symbol"] == symbol]
        bars = tick_bar_store.read_bars(exchange="binance", symbol=symbol, timeframe="1m")
        assert pd.DatetimeIndex(rows.loc[rows["kind"] == 0, "ts"]).asi8.tolist() == \
            pd.DatetimeIndex(bars["ts"]).asi8.tolist()
        trades = _stored_ticks(tick_bar_store, symbol)
        assert sorted(rows.loc[rows["kind"] == 1, "trade_id"]) == sorted(trades["trade_id"])
    assert _check_windows(order) == 1  # the trade at exactly a close follows that bar


class RecordingProducer(StreamProducer):
    """The real producer, noting the order in which records are handed to the broker."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.log: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic, key, value, timestamp_ms, **kw) -> None:
        self.log.append((topic, key, value))
        super().produce(topic, key, value, timestamp_ms, **kw)


def test_ticks_and_bars_replay_publishes_both_topics_in_one_event_order_with_markers_on_both(tick_bar_store,
                                                                                               config) -> None:
    from btlab.stream.replay import replay_ticks_and_bars

    producer = RecordingProducer(config)
    seen = []
    result = replay_ticks_and_bars(tick_bar_store, "binance", TICK_SYMBOLS, "1m", "2019-10-11", "2024-08-09",
                                   producer=producer, chunk_bars=600, chunk_seconds=1800, progress=seen.append,
                                   progress_every_s=0.0)
    bars_t, ticks_t = f"{config.prefix}.bars.1m", f"{config.prefix}.ticks"
    assert result.topics == (bars_t, ticks_t) and result.topic == bars_t
    stored = {s: (tick_bar_store.read_bars(exchange="binance", symbol=s, timeframe="1m"),
                  _stored_ticks(tick_bar_store, s)) for s in TICK_SYMBOLS}
    assert result.per_topic == {bars_t: {f"binance:{s}": len(b) for s, (b, _) in stored.items()},
                                ticks_t: {f"binance:{s}": len(t) for s, (_, t) in stored.items()}}
    assert result.records == sum(len(b) + len(t) for b, t in stored.values()) == seen[-1].records
    # the order the records went to the broker: one event-time order across both topics
    data = [(topic, decode(value)) for topic, key, value in producer.log if key is not None]
    order = pd.DataFrame({"kind": [0 if t == bars_t else 1 for t, _ in data],
                          "symbol": [m.symbol for _, m in data],
                          "event_ns": [m.ts + (60_000_000_000 if t == bars_t else 0) for t, m in data]})
    assert order["event_ns"].is_monotonic_increasing
    assert _check_windows(order) == 1
    # each topic read back: every record, sequence numbers per key, end markers counting them
    for topic in result.topics:
        records = read_topic(config.bootstrap_servers, topic, 3)
        per_key: dict[str, list[int]] = {}
        for p, msgs in records.items():
            body = [m for m in msgs if m.key() is not None]
            assert decode(msgs[-1].value()) == EndMarker(result.replay_id, p, 3, len(body), None)
            assert result.markers_by_topic[topic][p] == decode(msgs[-1].value())
            for m in body:
                per_key.setdefault(m.key().decode(), []).append(int(dict(m.headers())[SEQ_HEADER]))
        assert per_key == {k: list(range(1, n + 1)) for k, n in result.per_topic[topic].items()}


def test_ticks_and_bars_replay_is_paced_on_one_schedule_and_aborts_on_both_topics(tick_bar_store, config) -> None:
    from btlab.stream.replay import replay_ticks_and_bars

    clock = FakeClock()
    result = replay_ticks_and_bars(tick_bar_store, "binance", ["BTC/USDT"], "1m", "2024-08-09T00:00",
                                   "2024-08-09T00:01:59", config=config, speed=60, clock=clock, sleep=clock.sleep)
    from btlab.model.timebounds import parse_range

    trades = _stored_ticks(tick_bar_store, "BTC/USDT", *parse_range("2024-08-09T00:00", "2024-08-09T00:01:59"))
    assert result.per_topic[result.topics[0]] == {"binance:BTC/USDT": 2}
    assert result.per_topic[result.topics[1]] == {"binance:BTC/USDT": len(trades)}
    # the last record is the 00:02 close of the 00:01 bar: (00:02 - first trade) / 60 after the start
    span = (pd.Timestamp("2024-08-09 00:02", tz="UTC") - trades["ts"].iloc[0]).total_seconds()
    assert result.last_event == pd.Timestamp("2024-08-09 00:02", tz="UTC")
    assert clock.now - 1000.0 == pytest.approx(span / 60 + 0.0004, abs=1e-6)

    def stop(progress) -> None:
        if progress.records >= 512:  # unpaced, progress is looked at every 64 records
            raise KeyboardInterrupt

    topics = (f"{config.prefix}.ab.bars", f"{config.prefix}.ab.ticks")
    with pytest.raises(KeyboardInterrupt, match="aborted after 512 records"):
        replay_ticks_and_bars(tick_bar_store, "binance", TICK_SYMBOLS, "1m", config=config, bars_topic=topics[0],
                              ticks_topic=topics[1], progress=stop, progress_every_s=0.0)
    counts = 0
    for topic in topics:
        records = read_topic(config.bootstrap_servers, topic, 3)
        markers = [decode(msgs[-1].value()) for msgs in records.values()]
        assert {m.reason for m in markers} == {ABORTED}
        counts += sum(m.count for m in markers)
    assert counts == 512
    with pytest.raises(InvalidArgumentError, match="two topics"):
        replay_ticks_and_bars(tick_bar_store, "binance", TICK_SYMBOLS, "1m", config=config, bars_topic="t",
                              ticks_topic="t")
    with pytest.raises(NoDataError, match="nothing to replay"):  # bars stored, but no trade in the range
        replay_ticks_and_bars(tick_bar_store, "binance", ["XRP/ETH"], "1m", "2019-10-13T11:20", "2019-10-14",
                              config=config)


def test_ticks_and_bars_replay_writes_health_per_topic(tick_bar_store, config) -> None:
    from btlab.stream.replay import replay_ticks_and_bars

    t0 = pd.Timestamp.now(tz="UTC")
    result = replay_ticks_and_bars(tick_bar_store, "binance", ["BTC/USDT"], "1m", "2024-08-09T00:00",
                                   "2024-08-09T00:01:59", config=config, speed=60, health_interval_s=0.25)
    rows = tick_bar_store.read_health(service="replay", start=t0)
    assert result.health_rows == len(rows) and result.seconds > 1.5  # 2 minutes of event time at 60x
    bars_t, ticks_t = result.topics
    for metric in ("records_per_s", "replay_lag_s"):
        per = rows[rows["metric"] == metric]
        assert set(per["subject"]) == {bars_t, ticks_t}
        assert (per["subject"] == bars_t).sum() == (per["subject"] == ticks_t).sum() >= 5  # each write: both
    rate = rows[rows["metric"] == "records_per_s"]
    trades_per_s = rate[rate["subject"] == ticks_t]["value"]
    bars_per_s = rate[rate["subject"] == bars_t]["value"]
    # about 4,700 trades over about 2 s, 2 bars: rates, not running totals
    assert trades_per_s.mean() == pytest.approx(result.per_topic[ticks_t]["binance:BTC/USDT"] / result.seconds, rel=0.5)
    # each of the 2 bars is counted in exactly one interval (a running total would stay > 0 after the first bar);
    # the last interval can be shorter than 0.25 s, so no bound on the rate itself
    assert 1 <= (bars_per_s > 0).sum() <= 2
    assert rows[rows["metric"] == "replay_lag_s"]["value"].between(0, 0.05).all()
