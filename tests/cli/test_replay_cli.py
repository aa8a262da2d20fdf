"""``btlab replay`` and ``btlab backtest --source kafka`` as a user runs them (subprocesses, real exit codes), with the
real broker (Tansu, tests/broker.py) and real BTC/USDT + ETH/USDT 1m klines from data/."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stream"))

from broker import free_port, kafka_bootstrap  # noqa: E402, F401
from cliproc import assert_one_line, btlab_cli  # noqa: E402
from test_replay import fill_store, fill_tick_store, read_topic  # noqa: E402

from btlab.stream import decode  # noqa: E402
from btlab.stream.replay import ABORTED  # noqa: E402


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("replaycli") / "store.duckdb"
    fill_store(path).close()
    return path


def test_replay_then_backtest_from_the_topic_equals_the_backtest_from_the_store(store_path, kafka_bootstrap) -> None:  # noqa: F811
    topic = f"cli{uuid.uuid4().hex[:8]}.bars"
    rng = ["--symbols", "BTC/USDT,ETH/USDT", "--timeframe", "1m", "--from", "2025-06-01", "--to", "2025-06-01"]
    proc = btlab_cli("replay", *rng, "--speed", "max", "--topic", topic, "--kafka", kafka_bootstrap, store=store_path)
    assert proc.returncode == 0, proc.stderr
    assert "replayed 2,880 1m bars of binance:BTC/USDT,ETH/USDT" in proc.stdout and f"topic {topic}" in proc.stdout
    common = ["backtest", "--strategy", "sma_cross", *rng, "--no-report"]
    direct = btlab_cli(*common, store=store_path)
    streamed = btlab_cli(*common, "--source", "kafka", "--topic", topic, "--kafka", kafka_bootstrap, store=store_path)
    assert direct.returncode == 0 and streamed.returncode == 0, streamed.stderr

    def figures(out: str) -> str:  # everything but the run id line
        return "\n".join(line for line in out.splitlines() if "run id" not in line and "run_id" not in line)

    assert figures(streamed.stdout) == figures(direct.stdout)
    assert re.search(r"Closed trades\s*│\s*[1-9]", direct.stdout), direct.stdout  # a run that trades


def _wait_published(bootstrap: str, topic: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Until ``topic`` holds a record (on a loaded machine the command may need many seconds to start)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            try:
                meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
                parts = list(meta.partitions) if meta is not None and meta.error is None else []
                if any(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] > 0 for p in parts):
                    return
            except KafkaException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"nothing published to {topic} within {timeout_s:.0f} s")
    finally:
        consumer.close()


def test_ctrl_c_ends_the_replay_with_aborted_markers_and_exit_130(store_path, kafka_bootstrap) -> None:  # noqa: F811
    topic = f"cli{uuid.uuid4().hex[:8]}.slow"
    exe = Path(sys.executable).with_name("btlab")
    import os

    env = {**os.environ, "BTLAB_STORE": str(store_path), "NO_COLOR": "1"}
    proc = subprocess.Popen([str(exe), "replay", "--symbols", "BTC/USDT", "--timeframe", "1m", "--speed", "600",
                             "--topic", topic, "--kafka", kafka_bootstrap], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_published(kafka_bootstrap, topic, proc)  # started and publishing (10 bars per second)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "aborted" in err
    records = read_topic(kafka_bootstrap, topic, 6)
    markers = [decode(msgs[-1].value()) for msgs in records.values()]
    assert {m.reason for m in markers} == {ABORTED} and sum(m.count for m in markers) > 0


def test_broker_down_is_one_line_and_exit_2_within_the_bounded_wait(store_path) -> None:
    down = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = btlab_cli("replay", "--symbols", "BTC/USDT", "--timeframe", "1m", "--kafka", down, "--connect-timeout",
                     "1", store=store_path)
    line = assert_one_line(proc, 2)
    assert down in line and "cannot reach the Kafka broker" in line and time.monotonic() - t0 < 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "BTC/USDT", "--speed", "fast"], "speed must be a positive number or 'max'"),
        (["--symbols", "DOGE/USDT", "--timeframe", "1m"], "nothing to replay"),
        (["--symbols", "BTC/USDT", "--from", "2025-13-01"], "--from"),
    ],
)
def test_bad_requests_are_one_line_errors(store_path, kafka_bootstrap, args, message) -> None:  # noqa: F811
    proc = btlab_cli("replay", *args, "--kafka", kafka_bootstrap, store=store_path)
    assert message in assert_one_line(proc, 1)


def test_backtest_source_kafka_needs_a_broker(store_path) -> None:
    proc = btlab_cli("backtest", "--timeframe", "1m", "--source", "kafka", "--no-report", store=store_path,
                     extra_env={"BTLAB_KAFKA": ""})
    assert "needs a broker" in assert_one_line(proc, 1)


def test_replay_ticks_then_backtest_builds_bars_from_the_tick_topic_and_health_rows_are_written(
        tmp_path, kafka_bootstrap) -> None:  # noqa: F811
    from btlab.marketdata.bars.from_ticks import bars_from_ticks
    from btlab.store.duckdb import DuckDBStore

    path = tmp_path / "ticks.duckdb"
    with fill_tick_store(path) as st:  # real XRP/ETH aggTrades (and BTC/USDT trades, not replayed here)
        bars_from_ticks(st, exchange="binance", symbol="XRP/ETH", timeframes=["1m"], start="2019-10-11",
                        end="2019-10-12")
    topic = f"cli{uuid.uuid4().hex[:8]}.ticks"
    rng = ["--symbols", "XRP/ETH", "--from", "2019-10-11", "--to", "2019-10-11"]
    proc = btlab_cli("replay", "--ticks", *rng, "--topic", topic, "--kafka", kafka_bootstrap, "--health-interval",
                     "5", store=path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"replayed [\d,]+ trades of binance:XRP/ETH .*event = trade time", proc.stdout), proc.stdout
    assert "bt_health rows written" in proc.stdout
    with DuckDBStore(path) as st:
        health = st.read_health(service="replay")
    assert set(health[health["metric"] != "heartbeat"]["subject"]) == {topic}
    assert {"records_per_s", "replay_lag_s", "heartbeat"} <= set(health["metric"])
    common = ["backtest", "--strategy", "sma_cross", *rng, "--timeframe", "1m", "-p", "fast=3", "-p", "slow=8",
              "--allow-gaps", "--no-report"]
    direct = btlab_cli(*common, store=path)
    streamed = btlab_cli(*common, "--source", "kafka", "--topic", topic, "--kafka", kafka_bootstrap, store=path)
    assert direct.returncode == 0 and streamed.returncode == 0, streamed.stderr

    def figures(out: str) -> str:
        return "\n".join(line for line in out.splitlines() if "run id" not in line and "run_id" not in line)

    assert figures(streamed.stdout) == figures(direct.stdout)
    assert re.search(r"Closed trades\s*│\s*[1-9]", direct.stdout), direct.stdout
    off = btlab_cli("replay", "--ticks", *rng, "--topic", topic + "2", "--kafka", kafka_bootstrap,
                    "--health-interval", "0", store=path)
    assert off.returncode == 0 and "bt_health" not in off.stdout


def test_replay_ticks_and_bars_fills_both_topics_each_giving_the_direct_backtest(tmp_path, kafka_bootstrap) -> None:  # noqa: F811
    from btlab.marketdata.bars.from_ticks import bars_from_ticks
    from btlab.store.duckdb import DuckDBStore

    path = tmp_path / "tb.duckdb"
    with fill_tick_store(path) as st:  # real XRP/ETH aggTrades and the 1m bars built from them
        bars_from_ticks(st, exchange="binance", symbol="XRP/ETH", timeframes=["1m"], start="2019-10-11",
                        end="2019-10-12")
    name = f"cli{uuid.uuid4().hex[:8]}"
    rng = ["--symbols", "XRP/ETH", "--from", "2019-10-11", "--to", "2019-10-11"]
    proc = btlab_cli("replay", "--ticks", "--with-bars", *rng, "--timeframe", "1m", "--topic", f"{name}.bars",
                     "--tick-topic", f"{name}.ticks", "--kafka", kafka_bootstrap, "--health-interval", "5",
                     store=path)
    assert proc.returncode == 0, proc.stderr
    said = rf"replayed [\d,]+ 1m bars and trades \([\d,]+ \+ [\d,]+\) of binance:XRP/ETH .*event = bar close, "
    assert re.search(said + rf"trade time\) to topic {name}.bars and {name}.ticks", proc.stdout), proc.stdout
    with DuckDBStore(path) as st:
        health = st.read_health(service="replay")
    assert set(health[health["metric"] == "records_per_s"]["subject"]) == {f"{name}.bars", f"{name}.ticks"}
    common = ["backtest", "--strategy", "sma_cross", *rng, "--timeframe", "1m", "-p", "fast=3", "-p", "slow=8",
              "--allow-gaps", "--no-report"]
    direct = btlab_cli(*common, store=path)
    assert direct.returncode == 0 and re.search(r"Closed trades\s*│\s*[1-9]", direct.stdout), direct.stdout

    def figures(out: str) -> str:
        return "\n".join(line for line in out.splitlines() if "run id" not in line and "run_id" not in line)

    for topic in (f"{name}.bars", f"{name}.ticks"):  # the bars as stored, and bars built from the trades
        streamed = btlab_cli(*common, "--source", "kafka", "--topic", topic, "--kafka", kafka_bootstrap, store=path)
        assert streamed.returncode == 0, streamed.stderr
        assert figures(streamed.stdout) == figures(direct.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--with-bars"], "--with-bars goes with --ticks"),
        (["--ticks", "--tick-topic", "t"], "--tick-topic goes with --ticks --with-bars"),
        (["--ticks", "--with-bars", "--topic", "t", "--tick-topic", "t"], "--topic and --tick-topic must differ"),
    ],
)
def test_ticks_and_bars_flags_misused_are_one_line_errors(store_path, kafka_bootstrap, args, message) -> None:  # noqa: F811
    proc = btlab_cli("replay", "--symbols", "BTC/USDT", *args, "--kafka", kafka_bootstrap, store=store_path)
    assert message in assert_one_line(proc, 1)
