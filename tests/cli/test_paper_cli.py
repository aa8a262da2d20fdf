"""``btlab paper`` as a user runs it (a subprocess, real signals and exit codes) against the local fake Binance
replaying the recorded real BTCUSDT trades, the real broker (Tansu, tests/broker.py) and a DuckDB store file that
the test reads through the Store API while the run goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from broker import free_port, kafka_bootstrap  # noqa: F401
from cliproc import assert_one_line, btlab_cli
from fakes.binance import FakeBinance

from btlab.store.duckdb import DuckDBStore


def _start(fake: FakeBinance, store: Path, bootstrap: str, *extra: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("btlab")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("BTLAB_STORE", None)
    args = [str(exe), "paper", "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1s",
            "--strategy", "sma_cross", "-p", "fast=3", "-p", "slow=10", "--store", str(store), "--kafka", bootstrap,
            "--topic", f"cli{uuid.uuid4().hex[:8]}.paper", "--api-url", fake.base_url, "--ws-url", fake.ws_origin,
            "--lateness", "1", "--health-interval", "1", *extra]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_trades(proc: subprocess.Popen, store: Path, timeout: float = 90) -> dict:
    """Poll the store (read-only, through the Store API) until the running run has trades and orders."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if store.exists():
            with DuckDBStore(store, read_only=True) as st:
                runs = st.list_runs(limit=5)
                if len(runs):
                    rid = runs["run_id"].iloc[0]
                    trades, orders, equity = st.read_trades(rid), st.read_orders(rid), st.read_equity(rid)
                    if len(trades) and len(orders):
                        return {"run_id": rid, "status": st.get_run(rid)["status"], "trades": len(trades),
                                "equity": len(equity)}
        time.sleep(0.3)
    raise AssertionError("no trades recorded in time")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_paper_run_as_stopped_with_one_line(tmp_path, kafka_bootstrap, sig, code):  # noqa: F811
    store = tmp_path / "paper.duckdb"
    with FakeBinance(now="2024-08-09 00:10:00") as fake:
        fake.ws.speed = 20.0  # the recording lasts ~33 s: the run is still going when it is stopped
        proc = _start(fake, store, kafka_bootstrap, "--idle-timeout", "60")
        try:
            seen = _wait_for_trades(proc, store)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert seen["status"] == "running" and seen["equity"] > 0
    assert proc.returncode == code, err
    assert err.strip() == "", err
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert f"stopped ({signal.Signals(sig).name})" in last and seen["run_id"] in last, out
    with DuckDBStore(store, read_only=True) as st:
        row = st.get_run(seen["run_id"])
        assert row["status"] == "stopped"
        assert len(st.read_trades(seen["run_id"])) >= seen["trades"]
        assert not st.read_health(service="paper", metric="heartbeat").empty


def test_broker_down_is_one_line_exit_2_and_creates_nothing(tmp_path):
    store = tmp_path / "none.duckdb"
    proc = btlab_cli("paper", "--symbols", "BTC/USDT", "--kafka", f"127.0.0.1:{free_port()}", "--connect-timeout",
                     "1", "--store", str(store))
    line = assert_one_line(proc, 2)
    assert "127.0.0.1" in line and not store.exists()


def test_bad_arguments_are_one_line_exit_1(tmp_path):
    store = tmp_path / "none.duckdb"
    no_broker = btlab_cli("paper", "--symbols", "BTC/USDT", "--store", str(store),
                          extra_env={"BTLAB_KAFKA": ""})
    assert "--kafka" in assert_one_line(no_broker, 1)
    bad = btlab_cli("paper", "--symbols", "BTC/USDT", "-p", "fast=30", "-p", "slow=10", "--kafka", "127.0.0.1:1",
                    "--store", str(store))
    assert "fast" in assert_one_line(bad, 1)
    assert not store.exists()


def test_exchange_down_is_one_line_exit_2_and_the_run_is_failed(tmp_path, kafka_bootstrap):  # noqa: F811
    store = tmp_path / "down.duckdb"
    down = f"127.0.0.1:{free_port()}"
    proc = btlab_cli("paper", "--symbols", "BTC/USDT", "--kafka", kafka_bootstrap, "--topic",
                     f"cli{uuid.uuid4().hex[:8]}.down", "--api-url", f"http://{down}", "--ws-url", f"ws://{down}",
                     "--store", str(store))
    line = assert_one_line(proc, 2)
    assert "binance" in line and down in line
    with DuckDBStore(store, read_only=True) as st:
        runs = st.list_runs(limit=5)
        assert list(runs["status"]) == ["failed"]
