"""Parameter sweeps on Dask (btlab.sweep.run), on the real BTC/USDT 1h bars in a real DuckDB store, with real Dask
clusters: a LocalCluster of worker processes shared by the module, a real ``dask scheduler`` + two ``dask worker``
processes on loopback (one is SIGKILLed mid-sweep), and a sweep in a subprocess stopped by SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from btlab.backtest.runner import hash_bars, run_backtest
from btlab.errors import InvalidArgumentError
from btlab.store.duckdb import DuckDBStore
from btlab.sweep.grid import Grid
from btlab.sweep.run import SweepProgress, run_sweep
from realdata import BTC_1H

#: one year of hourly bars: a Backtrader run takes about a second
START, END = "2022-01-01", "2022-12-31"
REQUEST = {"exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1h", "start": START, "end": END}
GRID = Grid.from_specs(["fast=10,20", "slow=30,60"])
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "store.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(pd.read_feather(BTC_1H).rename(columns={"date": "ts"}), exchange="binance",
                      symbol="BTC/USDT", timeframe="1h", source="test")
    return path


@pytest.fixture
def store(store_path, tmp_path):
    """A private copy of the module's store (each test sees only its own sweeps)."""
    path = tmp_path / "store.duckdb"
    path.write_bytes(store_path.read_bytes())
    with DuckDBStore(path) as st:
        yield st


@pytest.fixture(scope="module")
def scheduler():
    """A LocalCluster of two single-threaded worker processes for the module: its scheduler address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def direct(store_path) -> dict[tuple[int, int], pd.Series]:
    """Each combination of GRID run directly with run_backtest (not recorded): its metrics."""
    with DuckDBStore(store_path, read_only=True) as st:
        return {(c["fast"], c["slow"]): run_backtest("sma_cross", params=c, store=st, record=False,
                                                     **{k: v for k, v in REQUEST.items() if k != "symbols"},
                                                     symbol="BTC/USDT").metrics
                for c in GRID.combinations()}


METRICS = ["end_value", "total_return", "sharpe", "sortino", "max_drawdown", "n_trades", "win_rate", "exposure"]


@pytest.mark.parametrize("engine", ["backtrader", "vector"])
def test_sweep_stores_the_metrics_of_direct_runs(store, scheduler, direct, engine):
    seen: list[SweepProgress] = []
    result = run_sweep("sma_cross", GRID, **REQUEST, engine=engine, scheduler=scheduler, store=store,
                       progress=seen.append, batch_size=1)
    assert (result.status, result.total, result.done, result.failed, result.skipped) == ("finished", 4, 4, 0, 0)
    assert seen[0].done == 0 and seen[-1].done == 4 and seen[-1].eta_s == 0 and seen[-1].rate > 0
    assert [p.done for p in seen] == [0, 1, 2, 3, 4]  # one progress per stored batch
    runs = store.sweep_runs(result.sweep_id)
    assert len(runs) == 4 and set(runs["status"]) == {"finished"}
    assert runs["ts"].nunique() == 1 and runs["error"].isna().all()
    for _, run in runs.iterrows():
        params = json.loads(run["params"])
        expected = direct[(params["fast"], params["slow"])]
        for name in METRICS:
            if engine == "backtrader":  # the same engine: the same numbers to the bit
                assert run[name] == expected[name] or (pd.isna(run[name]) and pd.isna(expected[name])), name
            else:
                assert run[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name
        assert json.loads(run["config"])["engine"] == engine
    sweep = store.get_sweep(result.sweep_id)
    bars = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h", start=START, end="2023-01-01")
    assert sweep["status"] == "finished" and (sweep["total"], sweep["done"], sweep["failed"]) == (4, 4, 0)
    assert sweep["data_hash"] == hash_bars(bars) == runs["data_hash"].iloc[0]
    assert sweep["grid"] == GRID.spec and sweep["params"] == ["fast", "slow"] and sweep["engine"] == engine
    assert sweep["finished_at"] is not None and sweep["ts"] == runs["ts"].iloc[0]
    best = max(direct.items(), key=lambda kv: kv[1]["sharpe"])
    assert result.best["params"] == {"fast": best[0][0], "slow": best[0][1]}


def test_resume_skips_finished_and_reruns_only_what_is_missing(store, scheduler):
    first = run_sweep("sma_cross", GRID, **REQUEST, engine="vector", scheduler=scheduler, store=store)
    started = store.get_sweep(first.sweep_id)["ts"]
    again = run_sweep("sma_cross", GRID, **REQUEST, engine="vector", scheduler=scheduler, store=store)
    assert again.sweep_id == first.sweep_id  # derived from the request: the same command resumes
    assert (again.done, again.skipped, again.status) == (0, 4, "finished")
    gone = store.sweep_runs(first.sweep_id)["run_id"].iloc[2]
    store.delete_runs([gone])
    before = store.sweep_runs(first.sweep_id).set_index("run_id")["finished_at"]
    third = run_sweep("sma_cross", GRID, **REQUEST, engine="vector", scheduler=scheduler, store=store)
    assert (third.done, third.skipped) == (1, 3)
    runs = store.sweep_runs(first.sweep_id).set_index("run_id")
    assert len(runs) == 4 and gone in runs.index and set(runs["status"]) == {"finished"}
    assert (runs.loc[before.index, "finished_at"] == before).all()  # the others were not run again
    sweep = store.get_sweep(first.sweep_id)
    assert sweep["ts"] == started and sweep["done"] == 4 and len(store.list_sweeps()) == 1


def test_a_failing_combination_is_stored_failed_and_the_others_finish(store, scheduler):
    grid = Grid.from_specs(["fast=10,40", "slow=30"])  # fast 40 >= slow 30: sma_cross refuses it
    result = run_sweep("sma_cross", grid, **REQUEST, engine="backtrader", scheduler=scheduler, store=store)
    assert (result.done, result.failed, result.status) == (2, 1, "finished")
    failed = store.sweep_runs(result.sweep_id, status="failed")
    assert len(failed) == 1 and json.loads(failed["params"].iloc[0]) == {"fast": 40, "slow": 30}
    assert failed["error"].iloc[0].startswith("StrategyParameterError: strategy SmaCross: needs 0 < fast < slow")
    ok = store.sweep_runs(result.sweep_id, status="finished")
    assert len(ok) == 1 and ok["end_value"].iloc[0] > 0
    assert store.get_sweep(result.sweep_id)["failed"] == 1
    # resuming runs the failed one again (it fails again), not the finished one
    again = run_sweep("sma_cross", grid, **REQUEST, engine="backtrader", scheduler=scheduler, store=store)
    assert (again.done, again.failed, again.skipped) == (1, 1, 1)


def test_bad_requests_are_refused_before_anything_is_stored(store):
    with pytest.raises(InvalidArgumentError, match="strategy buy_hold has no vector kernel"):
        run_sweep("buy_hold", Grid.from_specs(["x=1"]), **REQUEST, engine="vector", store=store)
    with pytest.raises(InvalidArgumentError, match="has no parameter.* slwo"):
        run_sweep("sma_cross", Grid.from_specs(["slwo=30"]), **REQUEST, store=store)
    with pytest.raises(InvalidArgumentError, match="unknown engine"):
        run_sweep("sma_cross", GRID, **REQUEST, engine="numpy", store=store)
    assert store.list_sweeps().empty


# ---- a real scheduler and workers; a worker killed mid-sweep ---------------------------------------------------------
def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_worker_loses_no_combination(store, tmp_path):
    from distributed import Client

    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        _wait_for(lambda: sched_file.exists() and sched_file.stat().st_size > 0, 60, "the scheduler file")
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(sched_file), "--nthreads",
                                           "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        workers = procs[1:]
        killed: list[int] = []

        def kill_one(p: SweepProgress) -> None:
            if p.done >= 1 and not killed:
                workers[0].send_signal(signal.SIGKILL)
                killed.append(workers[0].wait(timeout=30))

        grid = Grid.from_specs(["fast=5,10,15,20", "slow=30,60"])
        result = run_sweep("sma_cross", grid, **REQUEST, engine="backtrader", scheduler=address, store=store,
                           progress=kill_one, batch_size=1)
        assert killed == [-signal.SIGKILL]
        assert (result.status, result.done, result.failed) == ("finished", 8, 0)
        runs = store.sweep_runs(result.sweep_id)
        assert len(runs) == 8 and runs["run_id"].is_unique and set(runs["status"]) == {"finished"}
        assert sorted(tuple(json.loads(p).values()) for p in runs["params"]) == sorted(
            tuple(c.values()) for c in grid.combinations())
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


# ---- Ctrl-C --------------------------------------------------------------------------------------------------------------
SWEEP_SCRIPT = textwrap.dedent(
    """
    import sys

    from btlab.errors import RunInterruptedError
    from btlab.sweep.grid import Grid
    from btlab.sweep.run import run_sweep


    def progress(p):
        print(f"progress {p.done}", flush=True)


    if __name__ == "__main__":
        grid = Grid.from_specs(["fast=5:40:5", "slow=50,60"])
        try:
            run_sweep("sma_cross", grid, exchange="binance", symbols="BTC/USDT", timeframe="1h", start="2022-01-01",
                      end="2022-12-31", store=sys.argv[1], workers=1, batch_size=1, progress=progress)
        except RunInterruptedError as exc:
            print(exc, file=sys.stderr)
            sys.exit(exc.exit_code)
    """
)


def test_sigint_stops_the_sweep_and_keeps_what_finished(store_path, tmp_path):
    path = tmp_path / "store.duckdb"
    path.write_bytes(store_path.read_bytes())
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        for line in proc.stdout:
            if line.strip() == "progress 1":
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("sweep sma_cross-") and "interrupted by SIGINT" in err
    with DuckDBStore(path, read_only=True) as st:
        sweep = st.list_sweeps().iloc[0]
        runs = st.sweep_runs(sweep["sweep_id"])
        assert sweep["status"] == "interrupted" and sweep["total"] == 16
        assert 1 <= len(runs) < 16 and set(runs["status"]) == {"finished"}
        assert sweep["done"] == len(runs) and sweep["error"].startswith("SIGINT: stopped after")


def test_a_signal_after_the_last_combination_leaves_the_sweep_finished(store):
    """Ctrl-C that comes when every combination is already stored stops nothing: the sweep is finished, not
    interrupted (the signal is sent from the progress callback of the last combination, in the main thread)."""
    total = len(GRID)

    def progress(p) -> None:
        if p.done == total:
            os.kill(os.getpid(), signal.SIGINT)

    result = run_sweep("sma_cross", GRID, **REQUEST, engine="vector", store=store, workers=1, progress=progress)
    assert (result.status, result.done) == ("finished", total)
    sweep = store.get_sweep(result.sweep_id)
    assert (sweep["status"], sweep["done"]) == ("finished", total) and not sweep["error"]


def test_an_unreachable_scheduler_is_one_error_and_the_sweep_is_stored_failed(store, monkeypatch):
    import socket

    from btlab.errors import ClusterUnavailableError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("BTLAB_DASK_SCHEDULER", f"tcp://127.0.0.1:{port}")
    with pytest.raises(ClusterUnavailableError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}") as info:
        run_sweep("sma_cross", GRID, **REQUEST, engine="vector", store=store)
    assert info.value.exit_code == 2
    sweep = store.list_sweeps().iloc[0]
    assert sweep["status"] == "failed" and "cannot reach the Dask scheduler" in sweep["error"]
    assert store.sweep_runs(sweep["sweep_id"]).empty
