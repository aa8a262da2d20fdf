"""``btlab sweep list/show/top/report`` as a user runs them (subprocess, real exit codes), on a DuckDB store holding
REAL sma_cross runs of the bundled BTC/USDT 1h bars recorded as one sweep (plus one combination that failed).

Expected values are read from the store the test filled, never written by hand.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from cliproc import assert_one_line, btlab_cli

import btlab
from btlab.store.duckdb import DuckDBStore
from btlab.strategies.sma_cross import SmaCross
from btlab.sweep.top import FULL_SUFFIX
from realdata import btc_1h

SWEEP = "cli-sweep-1"
COMBOS = ((10, 50), (20, 50), (10, 100), (30, 100))


class BrokenSma(SmaCross):
    """sma_cross that raises after 100 bars (a combination that fails)."""

    def next(self) -> None:
        super().next()
        if len(self) > 100:
            raise ValueError("combination exploded on purpose")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweepcli") / "s.duckdb"
    common = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "start": "2022-01-01",
              "end": "2022-09-30", "sweep_id": SWEEP}
    with DuckDBStore(path) as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        for i, (fast, slow) in enumerate(COMBOS):
            btlab.run_backtest("sma_cross", params={"fast": fast, "slow": slow}, run_id=f"{SWEEP}-c{i}", store=st,
                               **common)
        with pytest.raises(ValueError):
            btlab.run_backtest(BrokenSma, params={"fast": 40, "slow": 100}, run_id=f"{SWEEP}-cx", store=st, **common)
        runs = st.sweep_runs(SWEEP, status="finished")
        st.write_sweep({
            "ts": datetime(2026, 1, 2, tzinfo=timezone.utc), "sweep_id": SWEEP, "strategy": "sma_cross",
            "grid": {"params": {"fast": [10, 20, 30, 40], "slow": [50, 100]}}, "params": ["fast", "slow"],
            "exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1h", "calendar": "crypto",
            "data_from": runs["data_from"].min(), "data_to": runs["data_to"].max(), "data_hash": runs["data_hash"][0],
            "engine": "backtrader", "config": {"cash": 10000.0, "commission": 0.001, "size_pct": 95.0},
            "total": 5, "done": 5, "failed": 1, "status": "finished", "btlab_version": btlab.__version__,
        })
    return path


def _finished(store_path) -> pd.DataFrame:
    with DuckDBStore(store_path, read_only=True) as st:
        return st.sweep_runs(SWEEP, status="finished")


def test_list_shows_the_sweep_and_its_counts(store_path):
    done = btlab_cli("sweep", "list", store=store_path)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if SWEEP in line)
    assert re.search(r"sma_cross .*binance:BTC/USDT 1h .*backtrader .*\b5 .*\b5 .*\b1 .*finished", line), line
    as_json = btlab_cli("sweep", "list", "--format", "json", store=store_path)
    (row,) = json.loads(as_json.stdout)
    assert (row["sweep_id"], row["total"], row["done"], row["failed"]) == (SWEEP, 5, 5, 1)


def test_show_ranks_by_the_metric_and_lists_the_failure(store_path):
    finished = _finished(store_path)
    for by, ascending in (("sharpe", False), ("volatility", True)):
        done = btlab_cli("sweep", "show", SWEEP, "--by", by, "-n", "3", store=store_path)
        assert done.returncode == 0, done.stderr
        shown = re.findall(rf"^\s*│?\s*\d+\s*│?\s*({SWEEP}-c\d)\b", done.stdout, re.M)
        expected = finished.sort_values([by, "run_id"], ascending=[ascending, True])["run_id"].head(3).tolist()
        assert shown == expected, done.stdout
    assert "status finished: 5 combinations, 5 done (1 failed; stored runs: 1 failed, 4 finished)" in done.stdout
    assert f"{SWEEP}-cx (fast=40, slow=100): ValueError: combination exploded on purpose" in done.stdout


def test_unknown_sweep_and_metric_are_one_line_errors(store_path):
    line = assert_one_line(btlab_cli("sweep", "show", "no-such-sweep", store=store_path))
    assert "no sweep 'no-such-sweep'" in line and "btlab sweep list" in line
    line = assert_one_line(btlab_cli("sweep", "top", SWEEP, "--by", "bogus", store=store_path))
    assert "unknown metric 'bogus'" in line
    line = assert_one_line(btlab_cli("sweep", "report", SWEEP, "--x", "nope", "-o", str(store_path.parent / "r.html"),
                                     store=store_path))
    assert "--x 'nope' is not a parameter of this sweep" in line
    assert not (store_path.parent / "r.html").exists()
    assert assert_one_line(btlab_cli("sweep", "list", store="http::addr=127.0.0.1:9;"), code=2)


def test_top_reruns_the_best_in_full_with_the_same_metrics_and_the_report_draws_them(store_path, tmp_path):
    done = btlab_cli("sweep", "top", SWEEP, "--by", "sharpe", "-n", "2", store=store_path)
    assert done.returncode == 0, done.stderr
    finished = _finished(store_path)
    best = finished.sort_values("sharpe", ascending=False).head(2)
    with DuckDBStore(store_path, read_only=True) as st:
        for row in best.itertuples():
            full = st.get_run(f"{row.run_id}{FULL_SUFFIX}")
            assert full["status"] == "finished" and full["sweep_id"] is None
            for metric in ("sharpe", "total_return", "max_drawdown", "n_trades", "end_value"):
                assert full[metric] == getattr(row, metric), metric  # same data and config: the same run
            assert len(st.read_equity(full["run_id"])) == full["bars"]
            assert f"{row.run_id}{FULL_SUFFIX}" in done.stdout
        assert len(st.sweep_runs(SWEEP)) == 5  # the sweep's own runs are unchanged
    out = tmp_path / "rep" / "sweep.html"
    rep = btlab_cli("sweep", "report", SWEEP, "--output", str(out), "--metric", "sharpe", store=store_path)
    assert rep.returncode == 0, rep.stderr
    assert rep.stdout.strip() == f"report: {out.resolve()}"
    document = out.read_text(encoding="utf-8")
    at = document.index('"chart-equity-top",')
    traces, _ = json.JSONDecoder().raw_decode(document[document.index("[", at):])
    params = [json.loads(p) for p in best["params"]]
    assert [t["name"] for t in traces] == [f"fast={p['fast']}, slow={p['slow']}" for p in params]
    assert 'id="failed-table"' in document and "combination exploded on purpose" in document


def test_run_stores_every_combination_then_resumes_without_rerunning(store_path, tmp_path):
    """btlab sweep run on a local Dask cluster: a grid file plus an inline spec and a constraint; every combination
    is a bt_runs row whose metrics equal a plain backtest of it; the same command again skips them all."""
    grid = tmp_path / "grid.yaml"
    grid.write_text("params:\n  fast: [5, 10, 30]\n  slow: {range: [20, 40, 20]}\n", encoding="utf-8")
    args = ("sweep", "run", "--strategy", "sma_cross", "--grid", str(grid), "--grid-param", "fast=5,10",
            "--constraint", "fast * 4 <= slow", "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1h",
            "--from", "2023-01-01", "--to", "2023-03-31", "--workers", "1", "--sweep-id", "cli-run-1")
    first = btlab_cli(*args, store=store_path)
    assert first.returncode == 0, first.stderr
    assert re.match(r"sweep cli-run-1 finished: 3 of 3 combinations run \(0 failed\) in ", first.stdout), first.stdout
    with DuckDBStore(store_path, read_only=True) as st:
        sweep = st.get_sweep("cli-run-1")
        runs = st.sweep_runs("cli-run-1")
    assert (sweep["status"], sweep["total"], sweep["done"], sweep["failed"]) == ("finished", 3, 3, 0)
    assert sorted(tuple(json.loads(p).values()) for p in runs["params"]) == [(5, 20), (5, 40), (10, 40)]
    direct = btlab.run_backtest("sma_cross", exchange="binance", symbol="BTC/USDT", timeframe="1h",
                                start="2023-01-01", end="2023-03-31", params={"fast": 10, "slow": 40},
                                store=str(store_path), record=False)
    row = runs[runs["params"].map(json.loads) == {"fast": 10, "slow": 40}].iloc[0]
    assert (row["sharpe"], row["end_value"]) == (direct.summary.sharpe, direct.summary.end_value)
    best = runs.loc[runs["sharpe"].astype(float).idxmax()]
    params = json.loads(best["params"])
    assert f"best Sharpe {best['sharpe']:,.2f} with fast={params['fast']}, slow={params['slow']};" in first.stdout
    again = btlab_cli(*args, store=store_path)
    assert again.returncode == 0, again.stderr
    assert "0 of 3 combinations run (0 failed, 3 skipped (finished earlier))" in again.stdout, again.stdout
    top = btlab_cli("sweep", "top", "cli-run-1", "--by", "calmar", "-n", "1", store=store_path)
    assert top.returncode == 0, top.stderr
    best = runs.sort_values(["calmar", "run_id"], ascending=[False, True]).iloc[0]
    with DuckDBStore(store_path, read_only=True) as st:  # the sweep row's range and config give the same run
        full = st.get_run(f"{best['run_id']}{FULL_SUFFIX}")
    assert [full[k] for k in ("calmar", "sharpe", "end_value", "n_trades", "data_from", "data_to")] == \
        [best[k] for k in ("calmar", "sharpe", "end_value", "n_trades", "data_from", "data_to")]


def test_run_refuses_a_bad_grid_in_one_line(store_path, tmp_path):
    common = ("--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1h")
    line = assert_one_line(btlab_cli("sweep", "run", "--strategy", "sma_cross", *common, store=store_path))
    assert "no grid" in line
    line = assert_one_line(btlab_cli("sweep", "run", "--strategy", "sma_cross", "--grid-param", "fastt=5:10:5",
                                     *common, store=store_path))
    assert "fastt" in line
    missing = tmp_path / "nope.yaml"
    line = assert_one_line(btlab_cli("sweep", "run", "--strategy", "sma_cross", "--grid", str(missing), *common,
                                     store=store_path))
    assert str(missing) in line


def test_sigterm_stops_the_sweep_with_an_honest_status_and_exit_143(store_path, tmp_path):
    """SIGTERM mid-sweep: one line on stderr, exit 143, the sweep stored interrupted, every stored combination
    counted (done = its stored runs), and the same command then resumes the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["sweep", "run", "--strategy", "sma_cross", "--grid-param", "fast=5:60:5", "--grid-param", "slow=100,200",
            "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1h", "--from", "2021-01-01",
            "--to", "2022-12-31", "--workers", "1", "--sweep-id", "cli-sigterm"]
    env = {**os.environ, "NO_COLOR": "1", "BTLAB_STORE": str(store_path)}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("btlab")), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(12)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 143, (proc.returncode, out, err)
    assert "Traceback" not in err and len(errors) == 1 and "interrupted by SIGTERM" in errors[0], err
    with DuckDBStore(store_path, read_only=True) as st:
        sweep = st.get_sweep("cli-sigterm")
        runs = st.sweep_runs("cli-sigterm")
    assert sweep["status"] == "interrupted" and sweep["total"] == 24
    assert sweep["done"] == len(runs) < 24 and set(runs["status"]) <= {"finished"}
    resumed = btlab_cli(*args, store=store_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{24 - len(runs)} of 24 combinations run (0 failed, {len(runs)} skipped" in resumed.stdout, resumed.stdout


def test_unreachable_scheduler_is_one_line_exit_2(store_path):
    proc = btlab_cli("sweep", "run", "--strategy", "sma_cross", "--grid-param", "fast=5,10", "--grid-param", "slow=50",
                     "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1h", "--from", "2023-01-01",
                     "--to", "2023-01-31", "--sweep-id", "cli-noscheduler", store=store_path,
                     extra_env={"BTLAB_DASK_SCHEDULER": "tcp://127.0.0.1:9"}, timeout=300)
    assert "tcp://127.0.0.1:9" in assert_one_line(proc, code=2)
    with DuckDBStore(store_path, read_only=True) as st:
        assert st.get_sweep("cli-noscheduler")["status"] == "failed"


def test_resampled_sweep_runs_and_its_top_reruns_with_the_same_feeds(store_path):
    """btlab sweep run --resample 1d (regime_fsm: a 1h and a 1d machine): each stored combination equals a direct run
    with timeframes [1h, 1d], and btlab sweep top re-runs the best with the 1d feed again (same metrics)."""
    sid = "cli-resample"
    proc = btlab_cli("sweep", "run", "--strategy", "regime_fsm", "--grid-param", "period=10,20", "--exchange",
                     "binance", "--symbols", "BTC/USDT", "--timeframe", "1h", "--resample", "1d", "--from",
                     "2022-01-01", "--to", "2022-09-30", "--workers", "1", "--sweep-id", sid, store=store_path,
                     timeout=600)
    assert proc.returncode == 0, proc.stderr
    with DuckDBStore(store_path, read_only=True) as st:
        runs = st.sweep_runs(sid)
        assert st.get_sweep(sid)["config"]["resample"] == ["1d"]
    assert len(runs) == 2 and set(runs["status"]) == {"finished"}
    for row in runs.itertuples():
        params = row.params if isinstance(row.params, dict) else json.loads(row.params)
        direct = btlab.run_backtest("regime_fsm", exchange="binance", symbol="BTC/USDT", timeframes=["1h", "1d"],
                                    start="2022-01-01", end="2022-09-30", params=params, store=str(store_path),
                                    record=False)
        assert (row.sharpe, row.n_trades) == (direct.summary.sharpe, direct.summary.n_trades), params
    top = btlab_cli("sweep", "top", sid, "--by", "sharpe", "-n", "1", store=store_path)
    assert top.returncode == 0, top.stderr
    best = runs.sort_values("sharpe", ascending=False).iloc[0]
    with DuckDBStore(store_path, read_only=True) as st:
        full = st.get_run(f"{best['run_id']}{FULL_SUFFIX}")
    assert (full["sharpe"], full["n_trades"], full["end_value"]) == (best["sharpe"], best["n_trades"], best["end_value"])
