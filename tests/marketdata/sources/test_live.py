"""Live ingest against the local fake Binance replaying the recorded real trade stream (no mocks, no internet)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from btlab.marketdata.bars import aggregate_ticks
from btlab.marketdata.sources.ccxt.live import LiveIngest, _within
from btlab.store.duckdb import DuckDBStore
from fakes.binance import FakeBinance
from realdata import binance_klines, recorded_trades
from broker import kafka_bootstrap  # noqa: F401  (session fixture: a real Tansu broker)

FIRST_ID, LAST_ID = 3735683259, 3735703162
SERIES = {"exchange": "binance", "symbol": "BTC/USDT"}


def ws_origin(fake: FakeBinance) -> str:
    return fake.ws_url.rsplit("/ws", 1)[0]


def run_live(fake: FakeBinance, store, idle_timeout: float = 3.0, **kw) -> object:
    job = LiveIngest("binance", ["BTC/USDT"], ["1s", "1m"], store, origin=fake.base_url, ws_origin=ws_origin(fake),
                     allowed_lateness=1.0, **kw)
    return asyncio.run(job.run(idle_timeout=idle_timeout))


def assert_exact(store: DuckDBStore) -> None:
    """Stored ticks and bars equal the recording and Binance's klines: no gap, no duplicate."""
    ticks = store.query("SELECT trade_id, ts, price, amount FROM ticks ORDER BY ts, trade_id")
    ids = ticks["trade_id"].astype("int64")
    assert ids.is_unique
    rec = recorded_trades()
    # every trade up to the last one stored is there exactly once, with the recorded values
    assert ids.min() == FIRST_ID and ids.tolist() == list(range(FIRST_ID, ids.max() + 1))
    mine = rec[rec["id"] <= ids.max()]
    np.testing.assert_array_equal(ticks["price"].to_numpy(), mine["price"].to_numpy())
    np.testing.assert_array_equal(ticks["amount"].to_numpy(), mine["amount"].to_numpy())
    m1 = store.read_bars(**SERIES, timeframe="1m")
    assert m1["ts"].is_unique and m1["ts"].diff().dropna().eq(pd.Timedelta("1min")).all()
    k = binance_klines()
    got = m1.set_index("ts").loc[k["ts"]]
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[col].to_numpy(), k[col].to_numpy(), err_msg=col)
    # every stored bar equals the batch aggregation of the recorded trades
    for tf in ("1s", "1m"):
        stored = store.read_bars(**SERIES, timeframe=tf)
        batch = aggregate_ticks(mine.assign(trade_id=mine["id"].astype(str)), tf)
        batch = batch[batch["ts"].isin(stored["ts"])].reset_index(drop=True)
        assert len(batch) == len(stored)
        pd.testing.assert_frame_equal(stored, batch, check_exact=True)


def test_live_bars_equal_binance_klines(tmp_path):
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "live.duckdb") as store:
        fake.ws.speed = 100.0
        report = run_live(fake, store, watch_timeout=5)
        assert report.reconnects == 0 and report.duplicates == 0 and report.quarantined == 0
        assert report.bars_written["1m"] >= 10 and report.ticks_written >= 19_000
        assert_exact(store)


def test_faults_are_survived_exactly(tmp_path):
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "faults.duckdb") as store:
        fake.ws.speed = 100.0
        fake.ws.drop_after = [4000]          # connection dropped; the next one ...
        fake.ws.skip_on_reconnect = 300      # ... has lost 300 messages: filled from REST by trade id
        fake.ws.duplicate = {100, 7000}
        fake.ws.swap = {200, 9000}           # out of order within the lateness
        fake.ws.malformed = {500: "negative_price", 600: "zero_qty", 700: "bad_time",
                             12_000: "nan_price"}  # ccxt.pro's receive loop dies on NaN: silence -> reconnect
        report = run_live(fake, store, watch_timeout=2, idle_timeout=8)
        assert report.reconnects >= 2
        assert report.duplicates >= 2
        assert report.quarantined >= 3, report.quarantine_reasons
        assert report.backfilled >= 300 and report.ids_missing == 0  # what the drop lost came back over REST
        assert sum(report.late.values()) == 0
        assert_exact(store)


def test_late_trades_are_counted_not_merged(tmp_path):
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "late.duckdb") as store:
        fake.ws.speed = 100.0
        fake.ws.swap = set(range(3000, 6000, 7))  # trades sent after the next one: with 0 s lateness some are late
        job = LiveIngest("binance", ["BTC/USDT"], ["1s"], store, origin=fake.base_url, ws_origin=ws_origin(fake),
                         allowed_lateness=0.0, backfill=False)
        report = asyncio.run(job.run(idle_timeout=3))
        late = job.late_trades("BTC/USDT")
        stored = store.read_bars(**SERIES, timeframe="1s")
        ticks = store.query("SELECT count(*) AS n FROM ticks")["n"].iloc[0]
    assert report.late["1s"] == len(late) > 0
    assert ticks == report.ticks_written  # late trades are still stored as ticks ...
    # ... but never merged into a finished bar: each stored bar equals the batch bar of the trades that were on time
    rec = recorded_trades()
    on_time = rec[~rec["id"].isin(late["trade_id"])]
    batch = aggregate_ticks(on_time.assign(trade_id=on_time["id"].astype(str)), "1s")
    batch = batch[batch["ts"].isin(stored["ts"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, batch, check_exact=True)
    with_late = aggregate_ticks(rec.assign(trade_id=rec["id"].astype(str)), "1s")
    with_late = with_late[with_late["ts"].isin(stored["ts"])].reset_index(drop=True)
    assert not with_late.equals(stored)  # the late trades would have changed some bars


def test_killed_and_restarted_leaves_no_gap_or_duplicate(tmp_path):
    db = tmp_path / "kill.duckdb"
    exe = Path(sys.executable).with_name("btlab")
    with FakeBinance(now="2024-08-09 00:10:00") as fake:
        fake.ws.speed = 100.0
        fake.ws.skip_on_reconnect = 500  # what the exchange sent while we were down
        args = [str(exe), "ingest", "live", "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframes", "1s,1m",
                "--lateness", "1", "--api-url", fake.base_url, "--ws-url", ws_origin(fake), "--store", str(db)]
        proc = subprocess.Popen([*args, "--duration", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "COLUMNS": "200"})
        deadline = time.monotonic() + 60
        while len(fake.ws_trade_log) < 8000 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert len(fake.ws_trade_log) >= 8000, proc.stderr.read()
        done = subprocess.run([*args, "--idle-timeout", "3"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 0, done.stderr
        out = " ".join(done.stdout.split())
        reloaded = int(re.search(r"\(([\d,]+) reloaded", out).group(1).replace(",", ""))
        backfilled = int(re.search(r"([\d,]+) backfilled", out).group(1).replace(",", ""))
        assert reloaded > 0, out  # the open windows were rebuilt from the stored ticks ...
        assert backfilled >= 500, out  # ... and what was traded while the job was down came over REST
    with DuckDBStore(db) as store:
        assert_exact(store)
        assert store.query("SELECT count(*) AS n FROM ticks")["n"].iloc[0] > 19_000


def test_ticks_and_bars_also_go_to_topics(tmp_path, kafka_bootstrap):
    from btlab.stream.config import StreamConfig
    from btlab.stream.consumer import StreamConsumer
    from btlab.stream.producer import StreamProducer
    from btlab.stream.topics import bars_topic, ticks_topic

    config = StreamConfig(kafka_bootstrap, prefix=f"live{os.getpid()}{int(time.time())}", partitions=1)
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "k.duckdb") as store:
        fake.ws.speed = 100.0
        report = run_live(fake, store, producer=StreamProducer(config))
        stored_1m = store.read_bars(**SERIES, timeframe="1m")
        stored_ticks = int(store.query("SELECT count(*) AS n FROM ticks")["n"].iloc[0])
    got: dict[str, list] = {"ticks": [], "1m": []}
    for name, topic in (("ticks", ticks_topic(config.prefix)), ("1m", bars_topic("1m", config.prefix))):
        consumer = StreamConsumer([topic], group_id=f"t-{name}-{time.time()}", config=config, assign=True)
        want = stored_ticks if name == "ticks" else len(stored_1m)
        consumer.run(lambda batch, n=name: got[n].extend(batch), max_records=want, max_seconds=30)
        consumer.close()
    assert len(got["ticks"]) == report.ticks_written == stored_ticks
    assert {r.key for r in got["ticks"]} == {"binance:BTC/USDT"}
    assert [r.timestamp_ms for r in got["ticks"]] == sorted(r.timestamp_ms for r in got["ticks"])
    bars = got["1m"]
    assert [pd.Timestamp(r.message.ts, tz="UTC") for r in bars] == list(stored_1m["ts"])
    assert [r.message.close for r in bars] == stored_1m["close"].tolist()


def test_stopping_is_not_lost_when_a_message_arrives_at_the_same_moment():
    """The job stops its subscriptions by cancelling them; a trade batch that completes in the same loop turn
    must not swallow that cancellation (``asyncio.wait_for`` in Python 3.11 does, and the job then hung in CI)."""
    async def scenario() -> None:
        batch = asyncio.get_running_loop().create_future()
        watcher = asyncio.create_task(_within(batch, 30))
        await asyncio.sleep(0)  # the watcher now waits for the batch
        batch.set_result(["trade"])
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher

    asyncio.run(scenario())


def test_a_failing_backfill_does_not_stall_the_loop(tmp_path):
    """Backfill retries wait on the loop's clock (the exchange answers 500 four times: 0.5+1+2+4 s of backoff):
    meanwhile the loop keeps turning, so flushes, other symbols and Ctrl-C are not held up."""
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            lags.append(time.monotonic() - before - 0.05)

    async def scenario(job: LiveIngest) -> object:
        tick = asyncio.create_task(ticker())
        try:
            return await job.run(idle_timeout=12)
        finally:
            tick.cancel()

    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "stall.duckdb") as store:
        fake.ws.speed = 100.0
        fake.ws.drop_after = [3000]
        fake.ws.skip_on_reconnect = 300
        fake.fail_next(4, status=500, path="/api/v3/historicalTrades")
        job = LiveIngest("binance", ["BTC/USDT"], ["1s", "1m"], store, origin=fake.base_url,
                         ws_origin=ws_origin(fake), allowed_lateness=1.0, watch_timeout=10, max_backoff=8)
        report = asyncio.run(scenario(job))
        assert fake.count("/api/v3/historicalTrades", status=500) == 4  # the retries did happen ...
        assert report.backfilled >= 300 and report.ids_missing == 0  # ... and the fifth attempt filled the hole
        assert_exact(store)
    assert max(lags) < 3.0, max(lags)  # blocking sleeps held the loop for the whole 7.5 s of backoff


def test_pipeline_figures_go_to_bt_health_per_interval(tmp_path):
    """ingest live writes bt_health every interval: heartbeats, and per-interval counts that add up to its report."""
    from btlab.store.health import HealthWriter

    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "health.duckdb") as store:
        fake.ws.speed = 100.0
        fake.ws.swap = set(range(3000, 6000, 7))                 # late with 0 s lateness
        fake.ws.malformed = {500: "negative_price", 600: "zero_qty"}  # quarantined
        fake.ws.drop_after = [4000]                              # a reconnect
        health = HealthWriter(store, "ingest-live", interval=0.5)
        job = LiveIngest("binance", ["BTC/USDT"], ["1s"], store, origin=fake.base_url, ws_origin=ws_origin(fake),
                         allowed_lateness=0.0, watch_timeout=2, backfill=False, health=health)
        report = asyncio.run(job.run(idle_timeout=4))
        rows = store.read_health(service="ingest-live")
    beats = rows[rows["metric"] == "heartbeat"]
    assert len(beats) >= 4 and beats["ts"].is_monotonic_increasing and (beats["value"] == 1).all()
    assert health.written == len(rows)
    total = rows.groupby(["metric", "subject"])["value"].sum()
    assert report.late["1s"] > 0 and report.quarantined >= 2 and report.reconnects >= 1  # (backfill: see faults)
    assert total["late_trades", "binance:BTC/USDT"] == report.late["1s"]
    assert total["quarantined_trades", "binance:BTC/USDT"] == report.quarantined
    assert total["trade_id_gaps_filled", "binance:BTC/USDT"] == report.backfilled
    assert total["reconnects", "binance"] == report.reconnects
    # per interval, not cumulative: no single row holds the whole count of a figure spread over several intervals
    late = rows[rows["metric"] == "late_trades"]["value"]
    assert (late > 0).sum() >= 2 and late.max() < report.late["1s"]
    ticks_rate = rows[(rows["metric"] == "rows_per_s") & (rows["subject"] == "ticks")]["value"]
    assert ticks_rate.max() > 0 and set(rows["subject"][rows["metric"] == "rows_per_s"]) == {"ticks", "ohlcv"}
