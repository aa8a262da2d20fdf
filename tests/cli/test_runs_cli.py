"""``btlab runs list / show / cleanup`` and their Python API (:mod:`btlab.backtest.runs`): stale runs, settings on
screen, 80 columns, json/csv for scripts, short ids."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import btlab
from btlab.backtest.runs import (
    STALE_AFTER,
    cleanup_stale_runs,
    find_stale_runs,
    get_run,
    is_stale,
    list_runs,
    resolve_run_id,
    run_settings,
)
from btlab.cli.tables import RECORD_COLUMNS, WIDE_COLUMNS
from btlab.errors import RunNotFoundError
from btlab.store.duckdb import DuckDBStore
from realdata import BTC_1H
from cliproc import assert_one_line, btlab_cli

NOW = datetime.now(timezone.utc)  # rows are placed relative to it; the live run's heartbeat is renewed by beat()


def beat(path: Path, run_id: str) -> datetime:
    """Write the run's heartbeat now, as the recorder of a live run does every few seconds."""
    now = datetime.now(timezone.utc)
    with DuckDBStore(path) as store:
        store.write_run({**store.run_row(run_id), "heartbeat": now})
    return now


@pytest.fixture(scope="module")
def runs_store(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Real runs (sma_cross and buy_hold on the bundled BTC/USDT 1h bars, different settings) plus rows left as
    a killed run would leave them, written through the Store API."""
    path = tmp_path_factory.mktemp("runs") / "runs.duckdb"
    ids: dict[str, str] = {}
    with DuckDBStore(path) as store:
        btlab.import_bars(BTC_1H, store, exchange="binance", symbol="BTC/USDT", timeframe="1h")
        ids["sma"] = btlab.run_backtest("sma_cross", start="2021-01-01", end="2021-03-31",
                                        params={"fast": 5, "slow": 40}, store=store).run_id
        ids["stake"] = btlab.run_backtest("sma_cross", start="2021-01-01", end="2021-03-31", stake=0.05,
                                          slippage_pct=0.0005, store=store).run_id
        ids["hold"] = btlab.run_backtest("buy_hold", start="2021-01-01", end="2021-03-31", commission=0.002,
                                         store=store).run_id
        base = store.run_row(ids["sma"])
        rows = {
            "killed": dict(status="running", heartbeat=NOW - timedelta(minutes=10), finished_at=None, ts=NOW -
                           timedelta(minutes=30), metrics=None, total_return=None, sharpe=None),
            "alive": dict(status="running", heartbeat=NOW - timedelta(seconds=5), finished_at=None,
                          ts=NOW - timedelta(minutes=20), metrics=None, total_return=None),
            "ancient": dict(status="running", heartbeat=None, finished_at=None, ts=NOW - timedelta(days=3)),
            "margin": dict(status="finished", orders_margin=28, orders_rejected=2,
                           warnings="28 orders not filled: not enough cash (Margin)", ts=NOW - timedelta(days=4)),
        }
        for i, (name, change) in enumerate(rows.items()):
            row = {**base, **change, "run_id": f"{change['ts']:%Y%m%dT%H%M%S}-{i + 1:x}0000000"}
            store.write_run(row)
            ids[name] = row["run_id"]
    return path, ids


def _runs_json(store: Path, *args: str) -> list[dict]:
    proc = btlab_cli("runs", "list", "--format", "json", "--limit", "50", *args, store=store)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # nothing else on stdout


def test_stale_runs_are_shown_as_stale(runs_store):
    store, ids = runs_store
    beat(store, ids["alive"])
    runs = {r["run_id"]: r for r in _runs_json(store)}
    assert runs[ids["killed"]]["status"] == "stale" and runs[ids["killed"]]["recorded_status"] == "running"
    assert runs[ids["ancient"]]["status"] == "stale"  # no heartbeat at all: judged by its start time
    assert runs[ids["alive"]]["status"] == "running"
    assert runs[ids["sma"]]["status"] == "finished"
    shown = btlab_cli("runs", "list", store=store, columns="80").stdout
    assert "stale" in shown and "running" in shown


def test_stale_threshold_from_python():
    beat = NOW - STALE_AFTER
    row = {"status": "running", "heartbeat": beat + timedelta(seconds=1), "ts": NOW - timedelta(hours=1)}
    assert not is_stale(row, now=NOW)
    assert is_stale({**row, "heartbeat": beat - timedelta(seconds=1)}, now=NOW)
    assert is_stale({**row, "heartbeat": None}, now=NOW)  # old run without heartbeat: its start is too old
    assert not is_stale({**row, "heartbeat": None, "ts": NOW - timedelta(seconds=10)}, now=NOW)  # just started
    assert not is_stale({**row, "status": "finished", "heartbeat": None}, now=NOW)
    assert is_stale({**row, "heartbeat": NOW - timedelta(seconds=40)}, now=NOW, stale_after=timedelta(seconds=30))


def test_cleanup_marks_only_stale_runs_and_keeps_their_rows(runs_store, tmp_path):
    source, ids = runs_store
    store = tmp_path / "copy.duckdb"
    store.write_bytes(source.read_bytes())
    beat(store, ids["alive"])
    before = DuckDBStore(store)
    try:
        killed_before = before.run_row(ids["killed"])
    finally:
        before.close()

    proc = btlab_cli("runs", "cleanup", store=store)  # not a terminal, no --yes: lists, changes nothing
    assert proc.returncode == 1 and "confirm with --yes" in proc.stderr
    assert ids["killed"][-8:] in proc.stdout and ids["ancient"][-8:] in proc.stdout
    assert ids["alive"][-8:] not in proc.stdout
    assert {r["run_id"]: r["status"] for r in _runs_json(store)}[ids["killed"]] == "stale"

    proc = btlab_cli("runs", "cleanup", "--yes", store=store)
    assert proc.returncode == 0, proc.stderr
    assert "marked 2 run(s) interrupted" in proc.stdout
    with DuckDBStore(store) as st:
        killed = st.get_run(ids["killed"])
        ancient = st.get_run(ids["ancient"])
        alive = st.get_run(ids["alive"])
        after = st.run_row(ids["killed"])
    assert killed["status"] == ancient["status"] == "interrupted" and alive["status"] == "running"
    last = killed_before["heartbeat"]
    assert killed["error"].startswith(f"no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC, presumed killed")
    assert ancient["error"].startswith("no heartbeat (none recorded) since")
    assert killed["finished_at"] == last  # the last sign of life
    for key in ("ts", "strategy", "params", "config", "config_hash", "data_hash", "data_from", "data_to", "bars",
                "cash", "commission", "heartbeat"):
        assert after[key] == killed_before[key], key
    proc = btlab_cli("runs", "cleanup", "--yes", store=store)
    assert proc.returncode == 0 and "no stale runs" in proc.stdout


def test_cleanup_from_python_respects_older_than_and_fresh_heartbeats(runs_store, tmp_path):
    source, ids = runs_store
    path = tmp_path / "copy.duckdb"
    path.write_bytes(source.read_bytes())
    last_beat = beat(path, ids["alive"])
    with DuckDBStore(path) as store:
        stale = find_stale_runs(store, older_than=timedelta(hours=1), now=last_beat)
        assert [r["run_id"] for r in stale] == [ids["ancient"]]  # 10 minutes without a heartbeat is not an hour
        later = last_beat + timedelta(hours=1)  # an hour on, the live run has stopped beating too
        marked = cleanup_stale_runs(store, older_than=timedelta(minutes=2), now=later, run_ids=[ids["alive"]])
        assert [r["run_id"] for r in marked] == [ids["alive"]]
        assert store.get_run(ids["killed"])["status"] == "running"  # not asked for


def test_strategy_filter_without_runs_lists_strategies_with_runs(runs_store):
    store, _ = runs_store
    line = assert_one_line(btlab_cli("runs", "list", "--strategy", "nosuch", store=store))
    assert "no run of strategy 'nosuch'" in line and "buy_hold (1)" in line and "sma_cross (6)" in line
    assert "yet" not in line
    proc = btlab_cli("runs", "list", "--strategy", "buy_hold", store=store)
    assert proc.returncode == 0 and "buy_hold" in proc.stdout and "sma_cross" not in proc.stdout


def test_empty_store_says_no_runs_yet(tmp_path):
    DuckDBStore(tmp_path / "empty.duckdb").close()
    proc = btlab_cli("runs", "list", store=tmp_path / "empty.duckdb")
    assert proc.returncode == 0 and "no runs in" in proc.stdout and "yet" in proc.stdout
    proc = btlab_cli("runs", "list", "--format", "json", store=tmp_path / "empty.duckdb")
    assert proc.returncode == 0 and json.loads(proc.stdout) == []
    proc = btlab_cli("runs", "list", "--format", "csv", store=tmp_path / "empty.duckdb")
    assert proc.returncode == 0 and proc.stdout.splitlines() == [",".join(RECORD_COLUMNS)]


def test_list_at_80_columns_shows_key_columns_and_every_setting(runs_store):
    store, ids = runs_store
    proc = btlab_cli("runs", "list", store=store, columns="80")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    lines = out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, out
    assert "…" not in out
    header_line = next(line for line in lines if line.startswith("id ") or line.startswith("run "))  # the title
    for header in ("run", "strategy", "market", "data (UTC)", "return", "sharpe", "max dd", "trades"):  # (store
        assert header in header_line, header  # path included) can take more than one line at 80 columns
    for run_id in ids.values():
        assert run_id[-8:] in out
    assert "binance" in out and "BTC/USDT 1h" in out and "2021-01-01" in out and "2021-03-31" in out
    assert "fast=5 slow=40" in " ".join(out.split())
    # settings: shared ones once, differing ones per run through a letter and its legend
    assert "all listed runs: cash 10,000 · calendar crypto" in out
    assert "stake 0.05 units" in out and "slippage 0.05 %" in out and "commission 0.2 %" in out
    # rejected orders flagged with their counts
    assert "28 margin, 2 rejected, 1 warning" in out


def test_list_one_line_per_run_when_wide_enough_or_piped(runs_store):
    store, ids = runs_store
    for columns in ("300", None):  # a wide terminal, or a pipe without COLUMNS: natural width, nothing cut
        out = btlab_cli("runs", "list", store=store, columns=columns).stdout
        row = next(line for line in out.splitlines() if ids["sma"][-8:] in line)
        assert "sma_cross" in row and "fast=5 slow=40" in row and "binance BTC/USDT 1h" in row
        assert "2021-01-01 .. 2021-03-31" in row and "finished" in row
        stake_row = next(line for line in out.splitlines() if ids["stake"][-8:] in line)
        assert "stake 0.05 units" in stake_row and "slippage 0.05 %" in stake_row
        assert "…" not in out


def test_wide_shows_all_columns(runs_store):
    store, ids = runs_store
    out = btlab_cli("runs", "list", "--wide", store=store, columns=None).stdout
    header = next(line for line in out.splitlines() if line.startswith("run_id"))
    for col in WIDE_COLUMNS:
        assert col in header, col
    assert ids["sma"] in out  # full ids in the wide view


def test_json_and_csv_have_every_column_and_full_values(runs_store):
    store, ids = runs_store
    runs = _runs_json(store)
    assert len(runs) == 7
    by_id = {r["run_id"]: r for r in runs}
    stake = by_id[ids["stake"]]
    assert stake["stake"] == 0.05 and stake["size_pct"] is None and stake["slippage_pct"] == 0.0005
    assert stake["commission"] == 0.001 and stake["cash"] == 10_000 and stake["calendar"] == "crypto"
    assert by_id[ids["margin"]]["orders_margin"] == 28 and "Margin" in by_id[ids["margin"]]["warnings"]
    assert by_id[ids["sma"]]["params"] == {"fast": 5, "slow": 40}
    assert by_id[ids["sma"]]["data_from"] == "2021-01-01T00:00:00Z"
    assert isinstance(by_id[ids["sma"]]["metrics"], dict) and by_id[ids["sma"]]["metrics"]["n_trades"] >= 1
    for col in WIDE_COLUMNS:
        assert col in stake, col

    proc = btlab_cli("runs", "list", "--format", "csv", store=store, columns="40")  # narrow: still nothing cut
    assert proc.returncode == 0 and proc.stderr == ""
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 7 and set(WIDE_COLUMNS) <= set(rows[0])
    sma = next(r for r in rows if r["run_id"] == ids["sma"])
    assert json.loads(sma["params"]) == {"fast": 5, "slow": 40}
    assert float(sma["total_return"]) == pytest.approx(by_id[ids["sma"]]["total_return"], rel=1e-12)


def test_show_by_short_id_with_settings_and_stale_details(runs_store):
    store, ids = runs_store
    proc = btlab_cli("runs", "show", ids["stake"][-8:], store=store, columns="80")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"run {ids['stake']}" in out
    assert "cash 10,000 · commission 0.1 % · stake 0.05 units · slippage 0.05 % · calendar crypto" in out
    assert "binance BTC/USDT 1h" in out and "2021-01-01 00:00 .. 2021-03-31 23:00" in out and "Sharpe" in out
    assert max(len(line.rstrip()) for line in proc.stdout.splitlines()) <= 80

    out = " ".join(btlab_cli("runs", "show", ids["killed"], store=store).stdout.split())
    assert "stale: recorded as running, but no heartbeat since" in out and "btlab runs cleanup" in out
    out = " ".join(btlab_cli("runs", "show", ids["margin"], store=store).stdout.split())
    assert "28 margin, 2 rejected" in out and "not enough cash (Margin)" in out

    proc = btlab_cli("runs", "show", ids["sma"], "--format", "json", store=store)
    record = json.loads(proc.stdout)
    assert record["run_id"] == ids["sma"] and record["params"] == {"fast": 5, "slow": 40}


def test_ambiguous_and_unknown_short_ids(runs_store):
    store, ids = runs_store
    line = assert_one_line(btlab_cli("runs", "show", "0000000", store=store))  # suffix of several made-up ids
    assert "ambiguous" in line and ids["killed"] in line and ids["alive"] in line
    line = assert_one_line(btlab_cli("runs", "show", "ffffffff", store=store))
    assert "no run 'ffffffff'" in line


def test_report_takes_a_short_id(runs_store, tmp_path):
    store, ids = runs_store
    out = tmp_path / "r.html"
    proc = btlab_cli("report", ids["hold"][-8:], "-o", str(out), store=store)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10_000 and ids["hold"] in out.read_text()


def test_python_api(runs_store):
    store, ids = runs_store
    with DuckDBStore(store) as st:
        runs = list_runs(st, limit=3)
        assert [r["run_id"] for r in runs] == sorted((r["run_id"] for r in runs), key=lambda i: [
            x for x in list_runs(st, limit=50) if x["run_id"] == i][0]["ts"], reverse=True)
        assert resolve_run_id(st, ids["sma"][-8:]) == ids["sma"]
        assert resolve_run_id(st, ids["sma"]) == ids["sma"]
        with pytest.raises(RunNotFoundError, match="ambiguous"):
            resolve_run_id(st, "0000000")
        run = get_run(st, ids["stake"][-8:])
        assert run_settings(run) == {"cash": 10_000.0, "commission": 0.001, "size_pct": None, "stake": 0.05,
                                     "slippage_pct": 0.0005, "slippage_fixed": 0.0, "calendar": "crypto"}
        with pytest.raises(RunNotFoundError, match="strategies with runs: buy_hold"):
            list_runs(st, strategy="nosuch")


def test_query_rows_without_pandas_equals_the_generic_path(runs_store):
    """DuckDB's pandas-free ``query_rows`` gives what the generic path (``query`` -> DataFrame -> dicts, used by
    QuestDB) gives: same columns, None for nulls, timezone-aware UTC datetimes, plain numbers."""
    from btlab.store.base import Store

    store, _ = runs_store
    with DuckDBStore(store) as st:
        fast = st.query_rows("SELECT * FROM bt_runs ORDER BY run_id")
        generic = Store.query_rows(st, "SELECT * FROM bt_runs ORDER BY run_id")
    assert len(fast) == len(generic) == 7
    for a, b in zip(fast, generic, strict=True):
        assert list(a) == list(b)
        for key in a:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-15, nan_ok=True), key
            else:
                assert a[key] == b[key], key
        assert a["ts"].utcoffset() == timedelta(0)
        assert a["heartbeat"] is None or a["heartbeat"].utcoffset() == timedelta(0)
