"""Embedded backend: one DuckDB file (the default store; no server needed)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from btlab.errors import StoreConfigError, StoreLockedError, StoreNotFoundError, StoreUnavailableError
from btlab.store.base import RowFilter, Store, conform
from btlab.store.schema import TABLES, Table

_TYPES = {"timestamp": "TIMESTAMP", "symbol": "VARCHAR", "string": "VARCHAR", "double": "DOUBLE", "long": "BIGINT"}

#: Every DuckDB database file carries these 4 bytes at offset 8 (after the header checksum).
DUCKDB_MAGIC = b"DUCK"
#: Seconds a connection attempt keeps retrying while another process holds the file's lock.
DEFAULT_LOCK_TIMEOUT = 10.0

_LOCK_CONFLICT = ("could not set lock on file", "conflicting lock is held")
_PID = re.compile(r"\(PID (\d+)\)")


def table_ddl(table: Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for DuckDB; the natural key is the primary key (timestamps are UTC, naive)."""
    cols = ", ".join(f"{c.name} {_TYPES[c.kind]}" for c in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({cols}, PRIMARY KEY ({', '.join(table.key)}))"


def is_duckdb_file(path: str | Path) -> bool:
    """True if ``path`` is a regular file that starts like a DuckDB database (its magic bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[8:12] == DUCKDB_MAGIC


def process_command(pid: int) -> str | None:
    """The command line of process ``pid`` from ``/proc/PID/cmdline`` (Linux), shortened to 200 characters; None
    when it cannot be read (another OS, another user's process, or the process is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    text = " ".join(" ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part).split())
    if not text:
        return None
    return text if len(text) <= 200 else text[:197] + "..."


class DuckDBStore(Store):
    """A :class:`~btlab.store.base.Store` in a local DuckDB file (or ``:memory:``).

    Upserts are ``INSERT OR REPLACE`` on the primary key inside one transaction per batch, so a failed batch
    leaves nothing behind; of rows with the same key in one batch the last one is kept. Deletes
    (:meth:`delete_rows`) are ``DELETE`` statements with bound values, all filters in one transaction.

    Several processes, one file: DuckDB lets one process open a file read-write, or any number of processes open
    it read-only, never both at once (https://duckdb.org/docs/stable/connect/concurrency). So this store holds
    no connection between calls: every call (or :meth:`session` block) opens the file, does its work and closes
    it, and a process that finds the file locked retries for up to ``lock_timeout`` seconds. A reader
    (``btlab runs list``) thus gets in between the write batches of a running backtest or import. Cost: reopening
    (tens of ms, more on a big file: the primary-key index is reloaded at the first write); a :meth:`session`
    shares one connection across the calls of a batch. If the lock is still held after ``lock_timeout`` seconds,
    :class:`~btlab.errors.StoreLockedError` names the process holding it (PID and command line).

    ``:memory:`` keeps its one connection for the store's life (its data lives in it).

    Args:
        path: database file, or ``":memory:"``. A new file's parent folders are created (not in read-only mode).
        read_only: open read-only: never create the file, its folders or tables, never write; the file must
            exist. Tables or columns missing from an older file read as empty / null.
        lock_timeout: seconds to keep retrying while another process holds the file's lock.

    Raises:
        StoreConfigError: ``path`` exists but is not a DuckDB database file (e.g. a CSV: DuckDB itself would open
            it as an empty in-memory database, silently losing every write), or is a folder.
        StoreNotFoundError: read-only and the file does not exist.
        StoreUnavailableError: the file cannot be opened (no access, corrupt; locked: its subclass
            :class:`~btlab.errors.StoreLockedError`).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.path = str(path)
        self.address = self.path
        self.read_only = bool(read_only)
        self.lock_timeout = float(lock_timeout)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._depth = 0
        self._closed = False
        self._shadow: list[str] = []  # read-only: views standing in for tables/columns an older file lacks
        if self.path == ":memory:":
            if self.read_only:
                raise StoreConfigError("a read-only :memory: store would always be empty; give a DuckDB file")
            self._con = self._open()
            self._depth = 1  # held for the store's life
            self.ensure_schema()
            return
        file = Path(self.path).expanduser()
        self.path = str(file)
        self._check_file(file)
        if not self.read_only:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailableError(self.address, f"cannot create its folder: {exc.strerror or exc}") from None
        with self.session() as _:
            if self.read_only:
                self._shadow = self._shadow_views()
                if self._shadow:  # this connection was opened before the views were known
                    self._create_views(self._connection())
            else:
                self.ensure_schema()

    # ---- connections --------------------------------------------------------------------------------------
    def _check_file(self, file: Path) -> None:
        if file.exists():
            if file.is_dir():
                raise StoreConfigError(f"store {self.address} is a folder, not a DuckDB file")
            if not is_duckdb_file(file):
                size = file.stat().st_size
                raise StoreConfigError(
                    f"{self.address} is not a DuckDB database file ({'empty' if size == 0 else f'{size:,} bytes'}; "
                    f"a store is a DuckDB file, e.g. --store btlab.duckdb): refusing to use it"
                )
        elif self.read_only:
            raise StoreNotFoundError(self.address, f"no store at {self.address} (nothing imported or recorded there)")

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Connect, retrying while another process holds the lock (backoff 10 ms .. 200 ms, ``lock_timeout`` s)."""
        started = time.monotonic()
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(self.path, read_only=self.read_only)
                break
            except duckdb.Error as exc:
                message = str(exc)
                waited = time.monotonic() - started
                if not any(m in message.lower() for m in _LOCK_CONFLICT):
                    raise self._open_error(message) from None
                if waited >= self.lock_timeout:
                    match = _PID.search(message)
                    pid = int(match.group(1)) if match else None
                    raise StoreLockedError(self.address, pid=pid, command=process_command(pid) if pid else None,
                                           waited=round(waited, 1)) from None
                time.sleep(min(delay, max(0.0, self.lock_timeout - waited)))
                delay = min(delay * 2, 0.2)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if self.path != ":memory:":
                # DuckDB opens an existing CSV/Parquet/JSON file as an in-memory database with a view over it
                ((db_path,),) = con.execute(
                    "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                ).fetchall()
                if db_path is None:
                    raise StoreConfigError(f"{self.address} is not a DuckDB database file: refusing to use it")
            if self._shadow:
                self._create_views(con)
        except BaseException:
            con.close()
            raise
        return con

    def _open_error(self, message: str) -> Exception:
        first = message.splitlines()[0]
        if "not a valid DuckDB database file" in first:
            return StoreConfigError(f"{self.address} is not a DuckDB database file: refusing to use it")
        if self.read_only and not Path(self.path).exists():
            return StoreNotFoundError(self.address, f"no store at {self.address}")
        if "different configuration" in first:
            first += " (this process already has the file open in the other mode)"
        return StoreUnavailableError(self.address, first)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError(f"store {self.address}: no connection outside a session")
        return self._con

    @contextmanager
    def session(self) -> Iterator["DuckDBStore"]:
        """Hold one connection (and the file's lock) for the block; see :meth:`Store.session`."""
        if self._closed:
            raise RuntimeError(f"store {self.address} is closed")
        if self._depth == 0:
            self._con = self._open()
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                con, self._con = self._con, None
                if con is not None:
                    con.close()

    # ---- read-only stand-ins for an older file --------------------------------------------------------------
    def _shadow_views(self) -> list[str]:
        """``CREATE TEMP VIEW`` statements making an older file look like the current schema (read-only mode)."""
        con = self._connection()
        ((db,),) = con.execute("SELECT current_database()").fetchall()
        have: dict[str, set[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_catalog = ? "
            "AND table_schema = 'main'", [db]
        ).fetchall():
            have.setdefault(table, set()).add(column)
        views = []
        for table in TABLES.values():
            cols = have.get(table.name)
            if cols is not None and all(c.name in cols for c in table.columns):
                continue
            select = ", ".join(
                (f'"{c.name}"' if cols is not None and c.name in cols else f'NULL::{_TYPES[c.kind]} AS "{c.name}"')
                for c in table.columns
            )
            source = f' FROM "{db}".main.{table.name}' if cols is not None else " WHERE false"
            views.append(f"CREATE OR REPLACE TEMP VIEW {table.name} AS SELECT {select}{source}")
        return views

    def _create_views(self, con: duckdb.DuckDBPyConnection) -> None:
        for sql in self._shadow:
            con.execute(sql)

    # ---- primitives ---------------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        if self.read_only:
            return
        with self.session():
            con = self._connection()
            for table in TABLES.values():
                con.execute(table_ddl(table))
                have = {r[0] for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table.name]
                ).fetchall()}
                for col in table.columns:
                    if col.name not in have:  # additive migration
                        con.execute(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {_TYPES[col.kind]}")

    def _writable(self) -> None:
        if self.read_only:
            raise StoreUnavailableError(self.address, "opened read-only: cannot write")

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        spec = TABLES[table]
        if frame.empty:
            return 0
        self._writable()
        # within one batch the last row of a key wins, as in QuestDB (INSERT OR REPLACE would keep the first)
        batch = conform(spec, frame).drop_duplicates(subset=list(spec.key), keep="last").reset_index(drop=True)
        for col in spec.kinds("timestamp"):
            batch[col] = batch[col].dt.tz_localize(None)
        cols = ", ".join(spec.column_names)
        with self.session():
            con = self._connection()
            con.register("_btlab_batch", batch)
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(f"INSERT OR REPLACE INTO {spec.name} ({cols}) SELECT {cols} FROM _btlab_batch")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.unregister("_btlab_batch")
        return len(batch)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.session():
            return self._connection().execute(sql, list(params)).df()

    def delete_rows(self, filters: Sequence[RowFilter]) -> list[int]:
        """``DELETE FROM table WHERE ...`` (values bound) for every filter, all in one transaction: either every
        filter's rows are gone or none are. Cost: proportional to the rows deleted (primary-key index updated)."""
        self._writable()
        statements = [(f"DELETE FROM {TABLES[f.table].name} WHERE {where}", params)
                      for f in filters for where, params in [f.where()]]
        counts: list[int] = []
        with self.session():
            con = self._connection()
            con.execute("BEGIN TRANSACTION")
            try:
                for sql, params in statements:
                    rows = con.execute(sql, params).fetchall()
                    counts.append(int(rows[0][0]) if rows else 0)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return counts

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        con, self._con = self._con, None
        self._depth = 0
        if con is not None:
            con.close()
