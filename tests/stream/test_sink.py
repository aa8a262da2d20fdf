"""The sink (topics -> store) against a real broker (Tansu, tests/broker.py) and a real DuckDB store.

Real data: the Binance BTC/USDT trades recorded on 2024-08-08 (``data/btcusdt_20240808.gz``, 9,757 trades) on the
ticks topic, and Binance BTC/USDT 1m klines on the bars topic (``data/BTC_USDT-1m_2024-08-08T2352_*.csv`` and one day
of ``data/BTC_USDT-1m_2025-05-20_*.feather``), all published with btlab's producer. Each test has its own topic
prefix and consumer group.
"""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from broker import kafka_bootstrap  # noqa: F401
from realdata import DATA, btc_1m
from test_stream import _real_ticks

from btlab.errors import InvalidArgumentError
from btlab.store.duckdb import DuckDBStore
from btlab.store.health import HealthWriter
from btlab.stream import StreamConfig, StreamProducer, TickMessage, bars_topic, dead_letter_topic, ticks_topic
from btlab.stream.consumer import DLQ_REASON
from btlab.stream.sink import NO_TRADE_ID, SERVICE, SinkReport, run_sink


POISON = b"\x00\x01 not a record"


def real_bars() -> pd.DataFrame:
    """Real BTC/USDT 1m klines: the 15 minutes around the tick recording plus 2025-06-01 (1,440 bars)."""
    csv = pd.read_csv(DATA / "BTC_USDT-1m_2024-08-08T2352_2024-08-09T0006.csv")
    csv["ts"] = pd.to_datetime(csv.pop("date"), utc=True).astype("datetime64[ns, UTC]")
    day = btc_1m()
    day = day[(day["ts"] >= "2025-06-01") & (day["ts"] < "2025-06-02")]
    cols = ["ts", "open", "high", "low", "close", "volume"]
    return pd.concat([csv[cols], day[cols]], ignore_index=True)


def publish(config: StreamConfig, *, poison: bytes | None = None, marker: bool = False) -> tuple[pd.DataFrame,
                                                                                                pd.DataFrame]:
    """Publish the real ticks and bars to ``config``'s ticks and 1m bars topics (optionally one unreadable
    record in the middle of the ticks, and an end marker after everything); returns ``(ticks, bars)``."""
    ticks, bars = _real_ticks(), real_bars()
    with StreamProducer(config) as producer:
        half = len(ticks) // 2
        producer.send_ticks(ticks.iloc[:half], topic=ticks_topic(config.prefix))
        if poison is not None:
            producer.produce(ticks_topic(config.prefix), b"binance:BTC/USDT", poison, 1723161255342)
            # valid on a stream, but the store's ticks key needs a trade id: dead-lettered too, never a crash
            producer.send(TickMessage(1723161255342000000, "binance", "BTC/USDT", None, 61837.5, 0.5, None),
                          topic=ticks_topic(config.prefix))
        producer.send_ticks(ticks.iloc[half:], topic=ticks_topic(config.prefix))
        producer.send_bars(bars, exchange="binance", symbol="BTC/USDT", timeframe="1m",
                           topic=bars_topic("1m", config.prefix))
        if marker:
            producer.begin_replay("r-sink")
            producer.end_replay([ticks_topic(config.prefix), bars_topic("1m", config.prefix)])
        producer.flush()
    return ticks, bars


def assert_store_equals_source(store: DuckDBStore, ticks: pd.DataFrame, bars: pd.DataFrame) -> None:
    """Every published tick and bar is in the store once, with its values (no gap, no duplicate)."""
    stored = store.read_ticks(exchange="binance", symbol="BTC/USDT")
    assert len(stored) == len(ticks)
    expected = ticks.sort_values(["ts", "trade_id"]).reset_index(drop=True)
    got = stored.sort_values(["ts", "trade_id"]).reset_index(drop=True)
    assert got["trade_id"].tolist() == expected["trade_id"].tolist()
    assert got["ts"].tolist() == expected["ts"].tolist()
    assert got["price"].tolist() == expected["price"].tolist() and got["amount"].tolist() == expected["amount"].tolist()
    stored_bars = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert len(stored_bars) == len(bars)
    for col in ("ts", "open", "high", "low", "close", "volume"):
        assert stored_bars[col].tolist() == bars[col].tolist(), col


@pytest.fixture
def config(kafka_bootstrap: str) -> StreamConfig:  # noqa: F811
    return StreamConfig(kafka_bootstrap, prefix=f"s{uuid.uuid4().hex[:10]}", partitions=3, connect_timeout_s=5,
                        delivery_timeout_s=15)


def topics(config: StreamConfig) -> list[str]:
    return [ticks_topic(config.prefix), bars_topic("1m", config.prefix)]


def test_every_record_lands_once_markers_are_skipped_and_a_second_run_adds_nothing(config, tmp_path) -> None:
    ticks, bars = publish(config, marker=True)
    group = f"g{uuid.uuid4().hex[:8]}"
    seen: list[SinkReport] = []
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        report = run_sink(store, topics(config), group, config, batch_size=1000, idle_exit_s=2,
                          progress=lambda r: seen.append(r), progress_interval_s=0.2)
        assert report.stopped == "idle" and report.signal is None
        assert (report.ticks, report.bars) == (len(ticks), len(bars))
        assert report.end_markers == 6 and report.dead_letters == 0  # a marker on each of 3 partitions x 2 topics
        assert report.lag == {t: 0 for t in topics(config)} and seen
        assert_store_equals_source(store, ticks, bars)
        # the same group again: everything was committed, nothing is read or written
        again = run_sink(store, topics(config), group, config, idle_exit_s=2)
        assert again.records == 0 and again.rows == 0
        # a NEW group re-reads the whole topics: the store's keys make the second write change nothing
        other = run_sink(store, topics(config), f"{group}-2", config, idle_exit_s=2)
        assert other.records == len(ticks) + len(bars)
        assert_store_equals_source(store, ticks, bars)


def test_a_poison_record_goes_to_the_dead_letter_topic_and_is_counted(config, tmp_path, kafka_bootstrap) -> None:  # noqa: F811
    ticks, bars = publish(config, poison=POISON)
    group = f"g{uuid.uuid4().hex[:8]}"
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        health = HealthWriter(store, SERVICE, interval=0.5)
        report = run_sink(store, topics(config), group, config, batch_size=500, idle_exit_s=2, health=health)
        assert report.dead_letters == 2 and sum(report.reasons.values()) == 2
        assert {r.split(":")[0] for r in report.reasons} == {"not JSON", "tick without trade_id"}
        assert "2 records dead-lettered" in str(report)
        assert_store_equals_source(store, ticks, bars)  # the records around it all landed
        rows = store.read_health(service=SERVICE)
    dlq = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"raw-{uuid.uuid4().hex}"})
    dlq.assign([TopicPartition(dead_letter_topic(ticks_topic(config.prefix)), 0, OFFSET_BEGINNING)])
    msgs, deadline = [], time.monotonic() + 10
    while len(msgs) < 2 and time.monotonic() < deadline:
        msgs += [m for m in dlq.consume(10, 0.5) if m.error() is None]
    dlq.close()
    assert len(msgs) == 2 and msgs[0].value() == POISON
    assert "not JSON" in dict(msgs[0].headers())[DLQ_REASON].decode()
    assert dict(msgs[1].headers())[DLQ_REASON].decode() == NO_TRADE_ID and b'"trade_id":null' in msgs[1].value()
    # bt_health: the contract's stream figures with subject "topic (group)", per table rows/s and heartbeats
    ticks_subject = f"{ticks_topic(config.prefix)} ({group})"
    by_metric = {m: g for m, g in rows.groupby("metric")}
    assert {"heartbeat", "records_per_s", "consumer_lag", "dead_letters", "rows_per_s"} <= set(by_metric)
    assert by_metric["dead_letters"].query("subject == @ticks_subject")["value"].sum() == 2
    assert set(by_metric["records_per_s"]["subject"]) == {ticks_subject, f"{bars_topic('1m', config.prefix)} ({group})"}
    assert by_metric["records_per_s"]["value"].max() > 0
    assert by_metric["consumer_lag"].sort_values("ts").groupby("subject")["value"].last().tolist() == [0, 0]
    assert set(by_metric["rows_per_s"]["subject"]) == {"ticks", "ohlcv"}


def test_max_records_stops_after_whole_batches_and_the_next_run_resumes(config, tmp_path) -> None:
    ticks, bars = publish(config)
    group = f"g{uuid.uuid4().hex[:8]}"
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        first = run_sink(store, topics(config), group, config, batch_size=700, max_records=2000)
        assert first.stopped == "max-records" and 2000 <= first.records < len(ticks) + len(bars)
        assert first.lag is not None and sum(first.lag.values()) == len(ticks) + len(bars) - first.records
        rest = run_sink(store, topics(config), group, config, idle_exit_s=2)
        assert first.records + rest.records == len(ticks) + len(bars)  # resumed at the commit: nothing twice
        assert_store_equals_source(store, ticks, bars)


def test_bad_arguments_are_refused_before_connecting(tmp_path) -> None:
    nowhere = StreamConfig("127.0.0.1:9", connect_timeout_s=0.5)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        for args, message in (([], "at least one topic"), (["btlab.ticks.dlq"], "dead-letter topic")):
            with pytest.raises(InvalidArgumentError, match=message):
                run_sink(store, args, "g", nowhere)
        with pytest.raises(InvalidArgumentError, match="batch size"):
            run_sink(store, ["btlab.ticks"], "g", nowhere, batch_size=0)

