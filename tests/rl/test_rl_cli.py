"""``btlab rl train`` / ``btlab rl evaluate`` end to end on a temporary DuckDB store holding the bundled real bars:
the files written, both runs recorded, refusals in one line (in process, typer's runner: torch is imported once),
the missing extra and SIGTERM (real processes)."""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from btlab.backtest.runs import list_runs
from btlab.cli.main import app
from btlab.strategies.tilt_policy import sidecar_path
from btlab.store.duckdb import DuckDBStore
from btlab.strategies.tilt_policy import EXTRA_HINT
from cliproc import assert_one_line
from rlsetup import SYMBOLS

runner = CliRunner()


def invoke(*args: str, store=None, columns: str = "200"):
    return runner.invoke(app, [*args, *(["--store", str(store)] if store else [])],
                         env={"COLUMNS": columns, "NO_COLOR": "1"}, catch_exceptions=False)


def one_line_error(result, code: int = 1) -> str:
    """The single ``error: ...`` line of a failed command (exit ``code``, no traceback)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]

TRAIN_ARGS = ["--symbols", ",".join(SYMBOLS), "--index", "^GSPC", "--from", "2013-02-08", "--to", "2016-12-31",
              "--seed", "0"]


@pytest.fixture
def store(sp_store, tmp_path):
    path = tmp_path / "store.duckdb"
    shutil.copy(sp_store, path)
    return path


def test_train_then_evaluate_records_both_runs(store, tmp_path):
    out = tmp_path / "models" / "tilt.zip"
    res = invoke("rl", "train", *TRAIN_ARGS, "--timesteps", "200", "--out", str(out), store=store)
    assert res.exit_code == 0, res.output
    assert out.is_file() and sidecar_path(out).is_file()
    assert "basket (" in res.output and "trained on 2013-02-08 .. 2016-12-30 (982 sessions)" in res.output
    meta = json.loads(sidecar_path(out).read_text())
    res = invoke("rl", "evaluate", "--model", str(out), "--from", "2017-01-01", "--to", "2018-02-07", "--format",
                 "json", store=store)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["row"] for r in rows] == ["rl_tilt", "untilted"]
    assert all(r["bars"] == rows[0]["bars"] > 150 and 0 < r["r2"] <= 1 and r["tracking_error"] > 0 for r in rows)
    with DuckDBStore(store, read_only=True) as st:
        runs = {r["run_id"]: r for r in list_runs(st, limit=10)}
    assert set(runs) == {r["run_id"] for r in rows}
    assert all(r["symbols"] == ",".join([*meta["spec"]["names"], "^GSPC"]) and r["status"] == "finished"
               for r in runs.values())
    report = invoke("report", rows[0]["run_id"], "--output", str(tmp_path / "rl.html"), store=store)
    assert report.exit_code == 0, report.output
    html = (tmp_path / "rl.html").read_text()
    assert 'id="tracking-table"' in html and 'data-row="untilted"' in html and "<b>rl_tilt</b> (this run)" in html
    for r in rows:  # the table in the report: the evaluation's own figures, both rows
        cell = re.search(rf'data-row="{r["row"]}">.*?data-col="tracking_error">([^<]+)<', html, re.S)[1]
        assert cell.strip() == f"{r['tracking_error'] * 100:.2f} %", (r["row"], cell)
    table = invoke("rl", "evaluate", "--model", str(out), "--to", "2018-02-07", store=store)
    assert table.exit_code == 0 and "out of sample 2017-04-27 .. 2018-02-07" in table.output
    assert "tracking error (ann.)" in table.output and "untilted" in table.output
    line = one_line_error(invoke("rl", "evaluate", "--model", str(out), "--from", "2016-01-04", store=store))
    assert "not after the model's training range" in line and "--allow-overlap" in line


def test_refusals_are_one_line(store, tmp_path):
    line = one_line_error(invoke("rl", "evaluate", "--model", str(tmp_path / "none.zip"), store=store))
    assert "model file not found" in line
    line = one_line_error(invoke("rl", "train", "--symbols", "AAPL,^GSPC", "--out", str(tmp_path / "x.zip"),
                                 store=store))
    assert "index apart" in line
    assert not (tmp_path / "x.zip").exists()


def test_help_teaches_in_80_columns():
    res = invoke("rl", "train", "--help", columns="80")
    assert res.exit_code == 0 and "btlab rl train --symbols $A,$B" in res.output and "--max-tilt FRACTION" in res.output
    text = res.output
    res = invoke("rl", "evaluate", "--help", columns="80")
    assert res.exit_code == 0 and "--allow-overlap" in res.output and "untilted basket" in res.output
    for shown in (text, res.output, invoke("rl", "--help", columns="80").output):
        assert max(len(line) for line in shown.splitlines()) <= 80, shown
        assert "[default: False]" not in shown and "TEXT" not in shown and "<str>" not in shown


def test_without_the_extra_one_line_exit_1(tmp_path):
    """torch made unimportable (as when the extra is not installed)."""
    code = ("import sys; sys.modules['torch'] = None; from btlab.cli.main import main; "
            "sys.argv = ['btlab', 'rl', 'train', '--symbols', 'AAPL']; main()")
    env = {**os.environ, "BTLAB_STORE": str(tmp_path / "none.duckdb"), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    line = assert_one_line(proc)
    assert EXTRA_HINT in line and "torch" in line


def test_sigterm_during_training_writes_nothing_exit_143(store, tmp_path):
    out = tmp_path / "big.zip"
    exe = os.path.join(os.path.dirname(sys.executable), "btlab")
    env = {**os.environ, "BTLAB_STORE": str(store), "NO_COLOR": "1"}
    proc = subprocess.Popen([exe, "rl", "train", *TRAIN_ARGS, "--timesteps", "10000000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for_sigterm_handler(proc.pid)  # btlab's handler is installed: training (or its data loading) runs
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, (stdout, stderr)
    assert "training stopped by SIGTERM" in stderr and "nothing written" in stderr
    assert list(tmp_path.glob("*.zip")) == [] and list(tmp_path.glob("*.json")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.duckdb"]  # no temporary file left either


def _wait_for_sigterm_handler(pid: int, timeout: float = 90) -> None:
    """Until process ``pid`` catches SIGTERM (Linux: bit 15 of SigCgt in /proc/PID/status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = open(f"/proc/{pid}/status").read()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
        if caught >> (signal.SIGTERM - 1) & 1:
            time.sleep(0.5)
            return
        time.sleep(0.1)
    raise AssertionError("the training process never installed its SIGTERM handler")
