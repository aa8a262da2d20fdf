"""``btlab walkforward`` as a user runs it (subprocess, real exit codes) on a DuckDB store holding the bundled real
BTC/USDT 1h bars. Expected values are read from what the command stored, never written by hand."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from cliproc import assert_one_line, btlab_cli

from btlab.backtest.metrics import compute_metrics
from btlab.store.duckdb import DuckDBStore
from realdata import btc_1h

ARGS = ("walkforward", "--strategy", "sma_cross", "--grid-param", "fast=10,20", "--grid-param", "slow=50,100",
        "--symbols", "BTC/USDT", "--timeframe", "1h", "--from", "2019-01-01", "--to", "2020-09-30",
        "--train", "1y", "--test", "6m", "--engine", "vector", "--workers", "1")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("wfcli") / "s.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
    return path


@pytest.fixture(scope="module")
def ran(store_path):
    return btlab_cli(*ARGS, store=store_path)


def test_walkforward_prints_windows_side_by_side_and_where_it_stored(ran, store_path):
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout
    wf_id = re.search(r"walk-forward (wf-sma_cross-[0-9a-f]{10}):", out).group(1)
    assert "1 rolling window(s): train 1y, test 6m, step 6m" in out
    assert re.search(r"2019-01-01\.\.2019-12-31 .*\n.*2020-01-01\.\.2020-06-30", out)
    assert "2020-07-01..2020-12-31" not in out  # the partial second test window is dropped
    assert "untested (no full test window): 2020-07-01 .. 2020-09-30" in out
    assert f"stored in {store_path}" in out
    with DuckDBStore(store_path, read_only=True) as st:
        for k in range(1):
            runs = st.sweep_runs(f"{wf_id}-w{k:02d}", status="finished")
            assert len(runs) == 4
            best = json.loads(runs.loc[runs["sharpe"].idxmax(), "params"])
            assert f"fast={best['fast']}, slow={best['slow']}" in out
            oos = st.run_row(f"{wf_id}-w{k:02d}-oos")
            assert oos["status"] == "finished"
        equity = st.read_equity(f"{wf_id}-w00-oos").set_index("ts")
        trades = st.read_trades(f"{wf_id}-w00-oos")
    end = equity["value"].iloc[-1]
    segment = equity[equity.index >= pd.Timestamp("2020-01-01", tz="UTC")]
    oos = compute_metrics(segment, trades, start_value=10_000.0, calendar="24/7")
    assert re.search(rf"│ sharpe\s+│[^│\n]+│\s+{oos.sharpe:.2f} │", out)
    assert f"10,000.00 -> {end:,.2f}" in out  # one window of OOS: the chain ends where its only segment ends
    for metric in ("sharpe", "sortino", "cagr", "max_drawdown"):
        assert re.search(rf"│ {metric}\s+│[^│\n]*\d[^│\n]*│[^│\n]*\d", out), metric
    assert "window 1/1: chose" in ran.stderr and "running it on the test range" in ran.stderr


def test_walkforward_twice_resumes(ran, store_path):
    again = btlab_cli(*ARGS, store=store_path)
    assert again.returncode == 0, again.stderr
    assert "4 finished earlier" in again.stderr
    first = re.search(r"walk-forward (\S+): .*", ran.stdout).group(0)
    assert re.search(r"walk-forward (\S+): .*", again.stdout).group(0) == first


@pytest.mark.parametrize(("extra", "message"), [
    (("--train", "2x"), "--train '2x'"),
    (("--step", "1m"), "--step 1m is shorter than --test 6m"),
    (("--by", "sharp"), "unknown metric 'sharp'"),
    (("--to", "2019-06-30"), "too short for one window"),
    (("--engine", "gpu"), "unknown engine 'gpu'"),
])
def test_bad_arguments_are_one_line_errors(store_path, extra, message):
    line = assert_one_line(btlab_cli(*ARGS, *extra, store=store_path))
    assert message in line


def test_missing_to_is_one_line(store_path):
    args = [a for a in ARGS]
    i = args.index("--to")
    del args[i:i + 2]
    assert "needs both --from and --to" in assert_one_line(btlab_cli(*args, store=store_path))


def test_sigterm_stops_with_143_and_a_rerun_resumes(store_path, tmp_path):
    """SIGTERM once window 1's choice is printed (its test run or the step after it): one line, exit 143; the
    same command again skips window 1's finished combinations."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    store = tmp_path / "s.duckdb"
    store.write_bytes(Path(store_path).read_bytes())
    args = [*ARGS[:ARGS.index("--to") + 1], "2020-12-31", *ARGS[ARGS.index("--to") + 2:]]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "BTLAB_STORE": str(store)}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("btlab")), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("window 1/2: chose"):
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 143, (seen, rest)
    errors = [line for line in rest.splitlines() if line.strip()]
    assert "Traceback" not in rest and len(errors) == 1 and errors[0].startswith("error: "), rest
    assert "interrupted by SIGTERM" in errors[0]
    again = btlab_cli(*args, store=store)
    assert again.returncode == 0, again.stderr
    assert "window 1/2: sweeping 4 combinations on the train range, 4 finished earlier" in again.stderr


def test_walkforward_resamples_for_regime_fsm(store_path):
    """--resample 1d reaches every sweep run and the recorded test run (regime_fsm's daily machine)."""
    done = btlab_cli("walkforward", "--strategy", "regime_fsm", "--grid-param", "period=10",
                     "--grid-param", "enter_pct=0.02,0.04", "--symbols", "BTC/USDT", "--timeframe", "1h",
                     "--resample", "1d", "--from", "2021-01-01", "--to", "2021-06-30", "--train", "3m",
                     "--test", "3m", "--workers", "1", store=store_path)
    assert done.returncode == 0, done.stderr
    wf_id = re.search(r"walk-forward (wf-regime_fsm-[0-9a-f]+)", done.stdout)[1]
    with DuckDBStore(store_path, read_only=True) as st:
        test_run = st.get_run(f"{wf_id}-w00-oos")
        sweep = st.sweep_runs(f"{wf_id}-w00", status="finished")
    assert test_run["config"]["resample"] == ["1d"] and test_run["status"] == "finished"
    assert len(sweep) == 2 and all(json.loads(c)["resample"] == ["1d"] for c in sweep["config"])


@pytest.mark.parametrize(("extra", "message"), [
    (("--resample", "7m"), "7m"),
    (("--resample", "1d", "--engine", "vector"), "vector engine runs the base timeframe only"),
    (("--by", "tracking"), "unknown metric 'tracking'"),
])
def test_bad_resample_or_ranking_is_one_line(store_path, extra, message):
    args = [a for a in ARGS if a not in ("--engine", "vector")]
    line = assert_one_line(btlab_cli(*args, *extra, store=store_path))
    assert message in line
