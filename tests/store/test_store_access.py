"""Who may open the store, and how: files that are not stores, read-only commands, several processes, QuestDB
endpoints. Real DuckDB files, the real ``btlab`` console script in subprocesses (exit codes, stderr), real data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from btlab.errors import StoreConfigError, StoreNotFoundError, StoreUnavailableError
from btlab.store import open_store
from btlab.store.duckdb import DuckDBStore
from btlab.store.questdb_address import parse_address
from conftest import questdb_address, requires_questdb
from realdata import AAPL_1D, BTC_1H, BTC_1M, TESTS, btc_1h, btc_1m
from cliproc import btlab_cli, error_lines


# ---- a path that is not a DuckDB file ------------------------------------------------------------------------------
def test_a_csv_given_as_store_is_refused_and_left_alone(tmp_path):
    """DuckDB opens an existing CSV as an empty in-memory database: the import used to report 58,419 bars
    "-> some.csv", exit 0, and write nothing."""
    csv = tmp_path / "some.csv"
    csv.write_bytes(AAPL_1D.read_bytes())
    proc = btlab_cli("data", "import", str(BTC_1H), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h", "--store", str(csv))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(csv) in lines[0] and "is not a DuckDB database file" in lines[0]
    assert "58,419" not in proc.stdout
    assert csv.read_bytes() == AAPL_1D.read_bytes()
    proc = btlab_cli("runs", "list", store=csv)
    assert proc.returncode == 1 and "is not a DuckDB database file" in proc.stderr


@pytest.mark.parametrize("read_only", [False, True], ids=["read_write", "read_only"])
def test_open_store_refuses_files_that_are_not_stores(tmp_path, read_only):
    csv = tmp_path / "bars.csv"
    csv.write_bytes(AAPL_1D.read_bytes())
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.duckdb"
    folder.mkdir()
    for path, says in ((csv, "not a DuckDB database file"), (empty, "empty"), (folder, "is a folder")):
        with pytest.raises(StoreConfigError, match=says):
            open_store(str(path), read_only=read_only)
    assert csv.read_bytes() == AAPL_1D.read_bytes() and empty.read_bytes() == b""


# ---- read-only commands never create a store -----------------------------------------------------------------------
@pytest.mark.parametrize("args", [["runs", "list"], ["runs", "show", "r1"], ["data", "coverage"], ["report", "r1"]],
                         ids=["runs_list", "runs_show", "data_coverage", "report"])
def test_read_only_commands_create_nothing(tmp_path, args):
    store = tmp_path / "sub" / "none.duckdb"
    proc = btlab_cli(*args, store=store, extra_env={"BTLAB_REPORTS": str(tmp_path / "reports")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and f"no store at {store}" in lines[0]
    assert not (tmp_path / "sub").exists() and not (tmp_path / "reports").exists()


def test_missing_default_store_is_a_friendly_line(tmp_path):
    home = tmp_path / "home" / "btlab"
    env = {"BTLAB_HOME": str(home)}
    for args in (["runs", "list"], ["data", "coverage"]):  # listings: nothing yet is not an error
        proc = btlab_cli(*args, extra_env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"no store yet at {home / 'btlab.duckdb'} (the default)" in " ".join(proc.stdout.split())
    proc = btlab_cli("runs", "show", "r1", extra_env=env)
    assert proc.returncode == 1 and len(error_lines(proc)) == 1 and "no store yet at" in proc.stderr
    assert not (tmp_path / "home").exists()


def test_read_only_store_api(tmp_path):
    path = tmp_path / "deep" / "s.duckdb"
    with pytest.raises(StoreNotFoundError):
        open_store(str(path), read_only=True)
    assert not (tmp_path / "deep").exists()
    with DuckDBStore(path) as st:
        st.write_bars(btc_1h().iloc[:48], exchange="binance", symbol="BTC/USDT", timeframe="1h", source="t")
    before = path.read_bytes()
    with open_store(str(path), read_only=True) as ro:
        assert len(ro.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")) == 48
        with pytest.raises(StoreUnavailableError, match="read-only"):
            ro.write_bars(btc_1h().iloc[48:50], exchange="binance", symbol="BTC/USDT", timeframe="1h", source="t")
        with pytest.raises(StoreUnavailableError, match="read-only"):
            ro.delete_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert path.read_bytes() == before


def test_read_only_store_reads_an_older_file(tmp_path):
    """A file written by an older btlab (a bt_runs without the newer columns, no bt_orders table) is read as the
    current schema: missing columns are null, a missing table is empty -- and the file is not changed."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE bt_runs (ts TIMESTAMP, run_id VARCHAR, strategy VARCHAR, status VARCHAR, "
                "PRIMARY KEY (run_id))")
    con.execute("INSERT INTO bt_runs VALUES (TIMESTAMP '2024-01-02 03:04:05', 'old-1', 'sma_cross', 'finished')")
    con.close()
    before = path.read_bytes()
    with open_store(str(path), read_only=True) as ro:
        runs = ro.list_runs()
        assert runs["run_id"].tolist() == ["old-1"] and runs["heartbeat"].isna().all()
        assert runs["ts"].iloc[0] == pd.Timestamp("2024-01-02 03:04:05", tz="UTC")
        assert ro.read_orders("old-1").empty and ro.bar_series().empty
    assert path.read_bytes() == before


# ---- several processes ------------------------------------------------------------------------------------------------
def test_runs_list_works_while_a_backtest_writes(tmp_path):
    """`runs list` used to exit 2 ("cannot reach the store") for the whole length of a backtest."""
    store = tmp_path / "busy.duckdb"
    with DuckDBStore(store) as st:
        st.write_bars(btc_1m(), exchange="binance", symbol="BTC/USDT", timeframe="1m", source=BTC_1M.name)
    env = {**os.environ, "BTLAB_STORE": str(store), "COLUMNS": "200", "NO_COLOR": "1"}
    exe = str(Path(sys.executable).with_name("btlab"))
    backtest = subprocess.Popen([exe, "backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe",
                                 "1m", "--no-report"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    listings = []
    try:
        while backtest.poll() is None:
            alive_before = backtest.poll() is None
            proc = btlab_cli("runs", "list", store=store)
            listings.append((alive_before and backtest.poll() is None, proc))
    finally:
        out, err = backtest.communicate(timeout=300)
    assert backtest.returncode == 0, err
    assert listings, "the backtest ended before a listing started"
    assert all(proc.returncode == 0 for _, proc in listings), [p.stderr for _, p in listings if p.returncode]
    during = [proc for inside, proc in listings if inside]
    assert during, "no listing ran entirely while the backtest was running"
    assert any("running" in proc.stdout for proc in during)
    final = btlab_cli("runs", "list", store=store)
    assert final.returncode == 0 and "finished" in final.stdout


def _hold_lock(path: Path, script: Path, *, read_only: bool = False, seconds: float = 60) -> subprocess.Popen:
    """A process (running ``script``, written here) holding the DuckDB file open -- the write lock, or a read
    lock -- until killed or ``seconds`` pass."""
    script.write_text(
        "import sys, time, duckdb\n"
        f"con = duckdb.connect(sys.argv[1], read_only={read_only})\n"
        "print('ready', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def test_a_store_locked_by_another_process_names_it(tmp_path):
    store = tmp_path / "locked.duckdb"
    DuckDBStore(store).close()
    script = tmp_path / "btlab_test_lock_holder.py"
    holder = _hold_lock(store, script)
    try:
        proc = btlab_cli("runs", "list", store=store, extra_env={"BTLAB_LOCK_TIMEOUT": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"cannot reach the store at {store}" in lines[0]
    command = f"{sys.executable} {script} {store}"  # its command line, cut to 200 characters as the message does
    command = command if len(command) <= 200 else command[:197] + "..."
    assert f"locked by process {holder.pid} ({command})" in lines[0]
    assert "waited 1" in lines[0]


def test_an_invalid_lock_timeout_setting_is_one_line(tmp_path):
    store = tmp_path / "s.duckdb"
    DuckDBStore(store).close()
    proc = btlab_cli("runs", "list", store=store, extra_env={"BTLAB_LOCK_TIMEOUT": "soon"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = error_lines(proc)
    assert "invalid BTLAB_LOCK_TIMEOUT" in line


def test_a_writer_waits_for_a_reader_to_finish(tmp_path):
    """A read-only opener holds a shared lock; the writer retries instead of failing."""
    store = tmp_path / "shared.duckdb"
    DuckDBStore(store).close()
    reader = _hold_lock(store, tmp_path / "reader.py", read_only=True, seconds=1.5)
    try:
        assert reader.poll() is None
        with DuckDBStore(store, lock_timeout=30) as st:
            written = st.write_bars(btc_1h().iloc[:24], exchange="binance", symbol="BTC/USDT", timeframe="1h",
                                    source="t")
        assert written == 24
    finally:
        reader.kill()
        reader.wait()
    with DuckDBStore(store, read_only=True) as ro:
        assert ro.bar_span(exchange="binance", symbol="BTC/USDT", timeframe="1h").bars == 24


def test_session_holds_the_lock_and_releases_it(tmp_path):
    store = tmp_path / "session.duckdb"
    code = ("import sys\nfrom btlab.store.duckdb import DuckDBStore\nfrom btlab.errors import StoreLockedError\n"
            "try:\n    DuckDBStore(sys.argv[1], read_only=True, lock_timeout=0.3).close()\n"
            "except StoreLockedError:\n    sys.exit(3)\n")
    probe = [sys.executable, "-c", code, str(store)]
    with DuckDBStore(store) as st:
        with st.session():
            assert subprocess.run(probe, timeout=60).returncode == 3
        assert subprocess.run(probe, timeout=60).returncode == 0  # between calls the file is free


def test_a_reader_gets_in_while_a_writer_writes_continuously(tmp_path):
    """A writer whose calls follow each other with no pause (so its connection never lingers idle) still lets go
    of the file every ``max_hold`` seconds: a reader waiting for it gets in."""
    store = tmp_path / "busy.duckdb"
    DuckDBStore(store).close()
    script = tmp_path / "writer.py"
    script.write_text(
        "import sys, time\n"
        "from btlab.store.duckdb import DuckDBStore\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from realdata import btc_1m\n"
        "bars = btc_1m()\n"
        "st = DuckDBStore(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "end, i = time.monotonic() + 8, 0\n"
        "while time.monotonic() < end:\n"
        "    st.write_bars(bars.iloc[i:i + 60], exchange='binance', symbol='BTC/USDT', timeframe='1m', source='w')\n"
        "    i += 60\n"
        "st.close()\n"
        "print(i, flush=True)\n"
    )
    writer = subprocess.Popen([sys.executable, str(script), str(store), str(TESTS)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc = btlab_cli("data", "coverage", store=store, extra_env={"BTLAB_LOCK_TIMEOUT": "5"})
        still_writing = writer.poll() is None
        out, _ = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert proc.returncode == 0, proc.stderr
    assert still_writing, "the writer ended before the reader finished"
    assert "binance" in proc.stdout and int(out.strip()) > 0


def test_stores_of_one_process_share_a_file_in_both_modes(tmp_path):
    """A read-write store's connection lingering after a write does not stop a read-only store of the same process
    (DuckDB refuses two configurations of one file in one process): it is released for it."""
    path = tmp_path / "both.duckdb"
    writer = DuckDBStore(path, linger=60)
    try:
        writer.write_bars(btc_1h().iloc[:10], exchange="binance", symbol="BTC/USDT", timeframe="1h", source="t")
        with DuckDBStore(path, read_only=True) as reader:
            assert reader.bar_span(exchange="binance", symbol="BTC/USDT", timeframe="1h").bars == 10
        writer.write_bars(btc_1h().iloc[10:20], exchange="binance", symbol="BTC/USDT", timeframe="1h", source="t")
        assert writer.bar_span(exchange="binance", symbol="BTC/USDT", timeframe="1h").bars == 20
    finally:
        writer.close()


# ---- QuestDB addresses ----------------------------------------------------------------------------------------------
def test_questdb_address_names_one_port_the_other_is_completed_on_the_same_host():
    cfg = parse_address("http::addr=127.0.0.1:9;")
    assert (cfg.http_host, cfg.http_port, cfg.pg_host, cfg.pg_port) == ("127.0.0.1", 9, "127.0.0.1", 8812)
    assert cfg.completed == ("PG wire port",)
    assert cfg.resolved == ("ILP/HTTP http://127.0.0.1:9, PG wire 127.0.0.1:8812 "
                            "(PG wire port not given: QuestDB's default 8812 on the same host)")
    cfg = parse_address("questdb://db.example?pg_port=5433")
    assert (cfg.http_host, cfg.http_port, cfg.pg_host, cfg.pg_port) == ("db.example", 9000, "db.example", 5433)
    assert cfg.completed == ("HTTP port",)
    cfg = parse_address("http::addr=db:9001;pg_port=8813;password=secret;")
    assert cfg.completed == () and cfg.resolved == "ILP/HTTP http://db:9001, PG wire db:8813"
    assert "secret" not in cfg.resolved


def test_questdb_unreachable_http_port_fails_naming_both_endpoints():
    """`runs list` used to read a QuestDB on the default PG port while writes to port 9 failed."""
    proc = btlab_cli("runs", "list", store="http::addr=127.0.0.1:9;")
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "ILP/HTTP at http://127.0.0.1:9" in lines[0]
    assert "; resolved: ILP/HTTP http://127.0.0.1:9, PG wire 127.0.0.1:8812 (PG wire port not given" in lines[0]


# ---- QuestDB server (only with BTLAB_TEST_QUESTDB) -------------------------------------------------------------------

@requires_questdb
def test_questdb_read_only_store_writes_nothing(uid):
    from btlab.store.questdb import QuestDBStore

    address = questdb_address()
    QuestDBStore.from_address(address).close()  # the tables exist
    with QuestDBStore.from_address(address, read_only=True) as ro:
        assert ro.list_runs(strategy=f"none-{uid}").empty
        with pytest.raises(StoreUnavailableError, match="read-only"):
            ro.write_bars(btc_1h().iloc[:5], exchange=f"x{uid}", symbol="BTC/USDT", timeframe="1h", source="t")
        with pytest.raises(StoreUnavailableError, match="read-only"):
            ro.delete_rows([])


@requires_questdb
def test_questdb_leftover_delete_copy_is_dropped_when_the_table_is_intact(uid):
    """A delete cut short after building its copy (before DROP) leaves ``<table>_btlab_keep`` beside the intact
    table: the next read-write open drops the copy and keeps the table."""
    from btlab.store.questdb import QuestDBStore
    from btlab.store.questdb_sql import KEEP_SUFFIX, table_ddl
    from btlab.store.schema import TABLES

    address = questdb_address()
    with QuestDBStore.from_address(address) as st:
        bars = btc_1h().iloc[:24]
        st.write_bars(bars, exchange=f"x{uid}", symbol="BTC/USDT", timeframe="1h", source="t")
        st._execute(table_ddl(TABLES["bt_orders"], name="bt_orders" + KEEP_SUFFIX))
    with QuestDBStore.from_address(address) as again:
        assert "bt_orders" + KEEP_SUFFIX not in again._wal_status()
        assert again.bar_span(exchange=f"x{uid}", symbol="BTC/USDT", timeframe="1h").bars == 24
