"""``btlab sink`` as a service runs (subprocesses, real signals and exit codes), with the real broker (Tansu,
tests/broker.py), a real DuckDB store and real data: the Binance BTC/USDT trades of 2024-08-08 and BTC/USDT 1m
klines, published with btlab's producer (see tests/stream/test_sink.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stream"))

from broker import free_port, kafka_bootstrap  # noqa: E402, F401
from cliproc import assert_one_line, btlab_cli  # noqa: E402
from test_sink import assert_store_equals_source, publish, topics  # noqa: E402

from btlab.store.duckdb import DuckDBStore  # noqa: E402
from btlab.stream import StreamConfig  # noqa: E402

EXE = Path(sys.executable).with_name("btlab")


@pytest.fixture
def config(kafka_bootstrap: str) -> StreamConfig:  # noqa: F811
    return StreamConfig(kafka_bootstrap, prefix=f"c{uuid.uuid4().hex[:10]}", partitions=3, connect_timeout_s=5,
                        delivery_timeout_s=15)


def committed(config: StreamConfig, group: str) -> int:
    """Records committed by ``group`` over every partition of the test's topics (a plain client that does not
    join the group)."""
    c = Consumer({"bootstrap.servers": config.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(t, p) for t in topics(config) for p in range(config.partitions)]
        return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=5))
    finally:
        c.close()


def start_sink(config: StreamConfig, group: str, store: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "BTLAB_STORE": str(store), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen([str(EXE), "sink", "--topics", ",".join(topics(config)), "--group", group,
                             "--kafka", config.bootstrap_servers, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_committed(config: StreamConfig, group: str, proc: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = committed(config, group)
        if done >= at_least:
            return done
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"group {group} committed fewer than {at_least} records in 60 s")


def test_a_sink_killed_with_sigkill_mid_stream_and_restarted_leaves_no_gap_and_no_duplicate(config, tmp_path) -> None:
    ticks, bars = publish(config)
    total = len(ticks) + len(bars)
    group, store = f"g{uuid.uuid4().hex[:8]}", tmp_path / "sink.duckdb"
    proc = start_sink(config, group, store, "--batch-size", "50")
    try:
        wait_committed(config, group, proc, 1000)  # some batches are in the store and committed
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = committed(config, group)
    assert 1000 <= before < total, "the sink was not killed mid-stream"
    again = btlab_cli("sink", "--topics", ",".join(topics(config)), "--group", group, "--kafka",
                      config.bootstrap_servers, "--idle-exit", "2", store=store)
    assert again.returncode == 0, again.stderr
    written = re.search(r"wrote ([\d,]+) ticks and ([\d,]+) bars", again.stdout)
    assert written, again.stdout
    resumed = sum(int(n.replace(",", "")) for n in written.groups())
    assert 0 < resumed <= total - before + 50 < total  # resumed at the commit (at most the batch in flight again)
    assert committed(config, group) == total and "lag 0" in again.stdout
    with DuckDBStore(store, read_only=True) as st:
        assert_store_equals_source(st, ticks, bars)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_after_the_batch_with_one_line_and_128_plus_the_signal(config, tmp_path, sig,
                                                                                       code) -> None:
    ticks, bars = publish(config)
    group, store = f"g{uuid.uuid4().hex[:8]}", tmp_path / "sink.duckdb"
    proc = start_sink(config, group, store, "--health-interval", "0.5")
    try:
        wait_committed(config, group, proc, len(ticks) + len(bars))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: sink stopped by " + sig.name) and "committed" in lines[0]
    assert f"wrote {len(ticks):,} ticks and {len(bars):,} bars" in out
    with DuckDBStore(store, read_only=True) as st:
        assert_store_equals_source(st, ticks, bars)
        beats = st.read_health(service="sink", metric="heartbeat")
    assert len(beats) >= 2


def test_broker_down_is_one_line_and_exit_2_within_the_bounded_wait(tmp_path) -> None:
    down = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = btlab_cli("sink", "--kafka", down, "--connect-timeout", "1", store=tmp_path / "s.duckdb")
    line = assert_one_line(proc, 2)
    assert down in line and "cannot reach the Kafka broker" in line and time.monotonic() - t0 < 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--topics", " , "], "--topics must not be empty"),
        (["--topics", "btlab.ticks.dlq", "--kafka", "127.0.0.1:9"], "is a dead-letter topic"),
        (["--idle-exit", "0", "--kafka", "127.0.0.1:9"], "--idle-exit must be > 0"),
        (["--health-interval", "-1", "--kafka", "127.0.0.1:9"], "--health-interval must be > 0"),
        ([], "no Kafka broker"),
    ],
)
def test_bad_requests_are_one_line_errors(tmp_path, args, message) -> None:
    proc = btlab_cli("sink", *args, store=tmp_path / "s.duckdb", extra_env={"BTLAB_KAFKA": ""})
    assert message in assert_one_line(proc, 1)
    assert not (tmp_path / "s.duckdb").exists()  # refused before the store was opened
