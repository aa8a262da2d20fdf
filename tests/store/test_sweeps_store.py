"""The ``bt_sweeps`` table and the Store's sweep methods, on every backend (the ``store`` fixture: DuckDB always,
QuestDB when ``BTLAB_TEST_QUESTDB`` names a server). Names carry the ``uid`` token so reruns on a persistent QuestDB
do not see each other's rows."""

from __future__ import annotations

import pandas as pd
import pytest

from btlab.errors import InvalidArgumentError, RunNotFoundError
from btlab.store.questdb_sql import table_ddl
from btlab.store.schema import TABLES

STARTED = pd.Timestamp("2024-07-01 10:00:00", tz="UTC")


def _sweep(uid: str, ts: pd.Timestamp = STARTED, **extra: object) -> dict:
    row = {
        "ts": ts, "sweep_id": f"sw-{uid}", "strategy": "sma_cross",
        "grid": {"params": {"fast": {"range": [5, 20, 5]}, "slow": [30, 60]}, "constraints": ["fast < slow"]},
        "params": ["fast", "slow"], "exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1h",
        "calendar": "24/7", "data_from": pd.Timestamp("2017-08-17 04:00", tz="UTC"),
        "data_to": pd.Timestamp("2024-04-21 00:00", tz="UTC"), "data_hash": "abc123", "engine": "vector",
        "config": {"cash": 10_000.0, "commission": 0.001, "size_pct": 95.0}, "total": 8, "done": 0, "failed": 0,
        "status": "running", "heartbeat": ts, "btlab_version": "0.test",
    }
    row.update(extra)
    return row


def _run(uid: str, i: int, status: str, sweep: str | None = None, **extra: object) -> dict:
    row = {
        "ts": STARTED, "run_id": f"sw-{uid}-c{i}", "sweep_id": sweep or f"sw-{uid}", "strategy": "sma_cross",
        "params": {"fast": 5 * (i + 1), "slow": 30}, "status": status, "sharpe": 0.1 * i, "n_trades": 10 + i,
    }
    row.update(extra)
    return row


def test_bt_sweeps_schema_key_and_questdb_ddl():
    table = TABLES["bt_sweeps"]
    assert table.key == ("sweep_id",)
    assert table.column_names[:3] == ("ts", "sweep_id", "strategy")
    assert {"total", "done", "failed"} <= set(table.kinds("long"))
    assert table_ddl(table).endswith('WAL DEDUP UPSERT KEYS("ts", "sweep_id")')


def test_write_and_get_sweep_round_trip_and_upsert(store, uid):
    row = _sweep(uid)
    store.write_sweep(row)
    got = store.get_sweep(f"sw-{uid}")
    assert got["grid"] == row["grid"] and got["params"] == ["fast", "slow"] and got["config"] == row["config"]
    assert got["ts"] == STARTED and got["data_from"] == row["data_from"]
    assert (got["total"], got["done"], got["failed"], got["status"]) == (8, 0, 0, "running")
    assert got["finished_at"] is None and got["error"] is None
    finished = STARTED + pd.Timedelta(minutes=3)
    store.write_sweep(_sweep(uid, done=8, failed=1, status="finished", finished_at=finished, heartbeat=finished))
    again = store.get_sweep(f"sw-{uid}")
    assert (again["done"], again["failed"], again["status"], again["finished_at"]) == (8, 1, "finished", finished)
    listed = store.list_sweeps(limit=1000)
    assert listed["sweep_id"].tolist().count(f"sw-{uid}") == 1  # replaced, not duplicated


def test_get_sweep_of_unknown_id_names_it(store, uid):
    with pytest.raises(RunNotFoundError, match=f"no sweep 'nope-{uid}'"):
        store.get_sweep(f"nope-{uid}")


def test_list_sweeps_newest_first_with_limit(store, uid):
    for i in (1, 0, 2):
        store.write_sweep(_sweep(f"{uid}-{i}", ts=STARTED + pd.Timedelta(days=400 + i)))
    listed = store.list_sweeps(limit=3)
    assert listed["sweep_id"].tolist() == [f"sw-{uid}-2", f"sw-{uid}-1", f"sw-{uid}-0"]
    assert list(listed.columns) == list(TABLES["bt_sweeps"].column_names)
    assert str(listed["ts"].dtype) == "datetime64[ns, UTC]"
    with pytest.raises(InvalidArgumentError):
        store.list_sweeps(limit=0)


def test_sweep_runs_and_finished_run_ids(store, uid):
    written = store.write_runs([_run(uid, 0, "finished"), _run(uid, 1, "failed", error="ZeroDivisionError: x"),
                                _run(uid, 2, "finished"), _run(uid, 9, "finished", sweep=f"other-{uid}")])
    assert written == 4
    runs = store.sweep_runs(f"sw-{uid}")
    assert runs["run_id"].tolist() == [f"sw-{uid}-c0", f"sw-{uid}-c1", f"sw-{uid}-c2"]
    assert runs["params"].iloc[1] == '{"fast": 10, "slow": 30}'
    assert runs["error"].iloc[1] == "ZeroDivisionError: x" and runs["sharpe"].iloc[2] == pytest.approx(0.2)
    failed = store.sweep_runs(f"sw-{uid}", status="failed")
    assert failed["run_id"].tolist() == [f"sw-{uid}-c1"]
    assert store.finished_run_ids(f"sw-{uid}") == {f"sw-{uid}-c0", f"sw-{uid}-c2"}
    # a failed combination re-run and finished replaces its row (same ts and run_id)
    store.write_runs([_run(uid, 1, "finished")])
    assert store.finished_run_ids(f"sw-{uid}") == {f"sw-{uid}-c0", f"sw-{uid}-c1", f"sw-{uid}-c2"}
    assert len(store.sweep_runs(f"sw-{uid}")) == 3
    assert store.sweep_runs(f"missing-{uid}").empty
    assert store.finished_run_ids(f"missing-{uid}") == set()
    assert store.write_runs([]) == 0
