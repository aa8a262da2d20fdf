"""The ``bt_states`` table and Store.write_states/read_states on every backend (the ``store`` fixture: DuckDB always,
QuestDB when ``BTLAB_TEST_QUESTDB`` names a server)."""

from __future__ import annotations

import pandas as pd

from btlab.store.questdb_sql import table_ddl
from btlab.store.schema import TABLES

T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


def _states(run_id: str) -> pd.DataFrame:
    return pd.DataFrame({
        "ts": [T0, T0, T0 + pd.Timedelta(hours=5), T0 + pd.Timedelta(days=1)],
        "run_id": run_id, "machine": ["1h", "1d", "1h", "1d"],
        "from_state": ["warmup", "warmup", "neutral", "neutral"],
        "to_state": ["neutral", "neutral", "bullish", "bearish"],
    })


def test_bt_states_schema_key_and_questdb_ddl():
    table = TABLES["bt_states"]
    assert table.key == ("ts", "run_id", "machine")
    assert table.column_names == ("ts", "run_id", "machine", "from_state", "to_state")
    assert table_ddl(table).endswith('WAL DEDUP UPSERT KEYS("ts", "run_id", "machine")')


def test_write_read_states_round_trip_idempotent_and_deleted_with_the_run(store, uid):
    run_id = f"st-{uid}"
    store.write_run({"ts": T0, "run_id": run_id, "strategy": "regime_fsm", "status": "finished"})
    assert store.write_states(_states(run_id)) == 4
    store.write_states(_states(run_id))  # re-written: nothing added
    got = store.read_states(run_id)
    want = _states(run_id).drop(columns="run_id").sort_values(["ts", "machine"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert store.read_states(f"other-{uid}").empty
    assert int(store.run_row_counts([run_id])["bt_states"].iloc[0]) == 4
    assert store.delete_runs([run_id])["bt_states"] == 4
    assert store.read_states(run_id).empty
