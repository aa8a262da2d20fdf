"""Embedded backend: one DuckDB file (the default store; no server needed)."""

from __future__ import annotations

import atexit
import contextlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from btlab.errors import StoreConfigError, StoreLockedError, StoreNotFoundError, StoreUnavailableError
from btlab.model.timeframe import Timeframe
from btlab.store.base import RowFilter, Store, conform, utc_row
from btlab.store.rows import param_time
from btlab.store.schema import TABLES, Table

if TYPE_CHECKING:
    import pandas as pd

_TYPES = {"timestamp": "TIMESTAMP", "symbol": "VARCHAR", "string": "VARCHAR", "double": "DOUBLE", "long": "BIGINT"}

#: Every DuckDB database file carries these 4 bytes at offset 8 (after the header checksum).
DUCKDB_MAGIC = b"DUCK"
#: Seconds a connection attempt keeps retrying while another process holds the file's lock.
DEFAULT_LOCK_TIMEOUT = 10.0
#: Seconds a connection stays open after a call, so that calls in quick succession share it.
DEFAULT_LINGER = 0.2
#: Seconds of continuous holding after which the connection is released at the next pause between calls.
DEFAULT_MAX_HOLD = 2.0
#: Seconds a store waits before reopening after such a forced release, so that waiting processes get in.
HANDOFF = 0.1
#: Longest pause between two attempts to open a locked file (shorter than ``HANDOFF``, so a waiter gets its turn).
RETRY_MAX = 0.05
#: DuckDB's memory limit while staging rows or publishing them (its buffer cache would otherwise grow to 80 % of
#: the RAM during a big import); reset after each call. A step that runs out of memory under it (the primary-key
#: index of a big table may need more) is run again without it.
STAGING_MEMORY_LIMIT = "128MB"
#: Bars from which :meth:`DuckDBStore.write_bars` looks for stored bars in the batch's span (below: one plain
#: upsert, as cheap as it gets for a few bars).
WRITE_OVERLAP_ROWS = 10_000
#: Columns of ``ohlcv`` that :meth:`DuckDBStore.write_bars` binds as one value for the whole batch.
_SERIES_COLUMNS = ("exchange", "symbol", "timeframe", "source")

#: Open file-backed stores of this process, by file: a read-only and a read-write connection to one file cannot
#: coexist in one process, so one store gives up its lingering connection when another needs the file.
_LIVE: dict[str, "weakref.WeakSet[DuckDBStore]"] = {}
_LIVE_LOCK = threading.Lock()

_LOCK_CONFLICT = ("could not set lock on file", "conflicting lock is held")
_PID = re.compile(r"\(PID (\d+)\)")


def table_ddl(table: Table, name: str | None = None, *, primary_key: bool = True) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for DuckDB; the natural key is the primary key (timestamps are UTC, naive).

    ``name`` creates the same columns under another name (a staging table); ``primary_key=False`` leaves the key
    out (rows are appended without an index to maintain).
    """
    cols = ", ".join(f"{c.name} {_TYPES[c.kind]}" for c in table.columns)
    key = f", PRIMARY KEY ({', '.join(table.key)})" if primary_key else ""
    return f"CREATE TABLE IF NOT EXISTS {name or table.name} ({cols}{key})"


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
    it read-only, never both at once (https://duckdb.org/docs/stable/connect/concurrency). So this store does not
    keep the file open: a call opens it (or reuses the connection of a call that ended less than ``linger``
    seconds ago, so a burst of calls shares one connection), and the connection is closed ``linger`` seconds
    after the last call -- or, when calls keep coming, at the first pause after ``max_hold`` seconds, followed by
    a short hand-off pause so that waiting processes get their turn. A process that finds the file locked retries
    for up to ``lock_timeout`` seconds. So a reader (``btlab runs list``) gets in between the write batches of a
    running backtest, import or ingest. Cost: reopening the file (tens of ms; on a big file the primary-key index
    is reloaded at the first write, and closing checkpoints the write-ahead log into the file). A :meth:`session`
    holds one connection for a block of calls and releases it at once at its end. If the lock is still held
    after ``lock_timeout`` seconds, :class:`~btlab.errors.StoreLockedError` names the process holding it (PID and
    command line). Calls are serialized by a lock, so threads may share a store.

    ``:memory:`` keeps its one connection for the store's life (its data lives in it).

    Staging (:meth:`~btlab.store.base.Store.staging`): a staging table is a plain table in the same file (no
    primary key); each append is one call (other processes get in between), and the publish copies
    :attr:`publish_slice_rows` rows per transaction, so memory does not grow with the rows staged (one transaction
    for all rows keeps their primary-key index entries in memory: about 200 bytes a row). Both run under DuckDB's
    memory limit :attr:`staging_memory_limit` (its buffer cache would otherwise grow to 80 % of the RAM); a step
    that runs out of memory under it runs again without it.

    Args:
        path: database file, or ``":memory:"``. A new file's parent folders are created (not in read-only mode).
        read_only: open read-only: never create the file, its folders or tables, never write; the file must
            exist. Tables or columns missing from an older file read as empty / null.
        lock_timeout: seconds to keep retrying while another process holds the file's lock.
        linger: seconds the connection stays open after a call (0: closed at the end of every call).
        max_hold: seconds of continuous use after which the connection is released at the next pause.

    Raises:
        StoreConfigError: ``path`` exists but is not a DuckDB database file (e.g. a CSV: DuckDB itself would open
            it as an empty in-memory database, silently losing every write), or is a folder.
        StoreNotFoundError: read-only and the file does not exist.
        StoreUnavailableError: the file cannot be opened (no access, corrupt; locked: its subclass
            :class:`~btlab.errors.StoreLockedError`).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 linger: float = DEFAULT_LINGER, max_hold: float = DEFAULT_MAX_HOLD) -> None:
        self.path = str(path)
        self.address = self.path
        self.read_only = bool(read_only)
        self.lock_timeout = float(lock_timeout)
        self.linger = max(0.0, float(linger))
        self.max_hold = max(0.0, float(max_hold))
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._depth = 0  # calls and sessions in progress
        self._held_since = 0.0  # when the open connection was opened
        self._last_use = 0.0  # when the last call ended
        self._forced = False  # the last release was forced by max_hold: pause before reopening
        self._closer: threading.Thread | None = None
        self._closed = False
        self._verified = False  # the opened file was checked to be a real database (not a CSV opened as one)
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
        with _LIVE_LOCK:
            _LIVE.setdefault(self.path, weakref.WeakSet()).add(self)
        with self._use(linger=True) as con:  # the first call that follows reuses this connection
            if self.read_only:
                self._shadow = self._shadow_views(con)
                if self._shadow:  # this connection was opened before the views were known
                    self._create_views(con)
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
        """Connect, retrying while another process holds the lock (backoff 5 ms .. ``RETRY_MAX``, for
        ``lock_timeout`` s). Other stores of this process lingering on the same file let go of it first."""
        if self.path != ":memory:":
            self._release_siblings()
        started = time.monotonic()
        delay = 0.005
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
                delay = min(delay * 2, RETRY_MAX)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if self.path != ":memory:" and not self._verified:
                # DuckDB opens an existing CSV/Parquet/JSON file as an in-memory database with a view over it
                ((db_path,),) = con.execute(
                    "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                ).fetchall()
                if db_path is None:
                    raise StoreConfigError(f"{self.address} is not a DuckDB database file: refusing to use it")
                self._verified = True
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

    def _release_siblings(self) -> None:
        """Close the lingering (idle) connections of other stores of this process on the same file."""
        with _LIVE_LOCK:
            others = [s for s in _LIVE.get(self.path, ()) if s is not self]
        for other in others:
            other._release_if_idle()

    def _release_if_idle(self) -> None:
        if self._lock.acquire(timeout=1.0):  # its closer thread may hold the lock for a moment
            try:
                if self._depth == 0 and self._con is not None:
                    self._drop()
            finally:
                self._lock.release()

    def _drop(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()

    @contextmanager
    def session(self) -> Iterator["DuckDBStore"]:
        """Hold one connection (and the file's lock) for the block, released at its end; see
        :meth:`Store.session`. Nested sessions and calls inside share it."""
        with self._use(linger=False):
            yield self

    @contextmanager
    def _use(self, *, linger: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection for one call (``linger``: kept open briefly afterwards) or one session."""
        if self._closed:
            raise RuntimeError(f"store {self.address} is closed")
        with self._lock:
            if self._con is None:
                if self._forced:
                    self._forced = False
                    time.sleep(HANDOFF)  # let a process waiting for the file take its turn
                self._con = self._open()
                self._held_since = time.monotonic()
            self._depth += 1
            try:
                yield self._con
            finally:
                self._depth -= 1
                self._last_use = time.monotonic()
                if self._depth == 0 and self.path != ":memory:":
                    self._after_use(linger)

    def _after_use(self, linger: bool) -> None:
        """Outermost call or session ended: close now, or leave the connection to the closer thread."""
        if not linger or self.linger == 0:
            self._drop()
        elif self._last_use - self._held_since >= self.max_hold:
            self._drop()
            self._forced = True
        elif self._closer is None:
            self._closer = threading.Thread(target=self._close_when_idle, name="btlab-duckdb-linger",
                                            daemon=True)
            self._closer.start()
        else:
            self._idle.notify()

    def _close_when_idle(self) -> None:
        with self._lock:
            try:
                while self._con is not None and not self._closed:
                    if self._depth == 0:
                        idle = time.monotonic() - self._last_use
                        if idle >= self.linger:
                            self._drop()
                            break
                        self._idle.wait(self.linger - idle)
                    else:
                        self._idle.wait(self.linger)
            finally:
                self._closer = None

    # ---- read-only stand-ins for an older file --------------------------------------------------------------
    def _shadow_views(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """``CREATE TEMP VIEW`` statements making an older file look like the current schema (read-only mode)."""
        have: dict[str, set[str]] = {}
        db = ""  # the file's catalog name (only needed when it holds a table)
        for db, table, column in con.execute(  # one catalog query: half the cost of information_schema's view
            "SELECT database_name, table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main'"
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
            quoted = '"' + str(db).replace('"', '""') + '"'
            source = f" FROM {quoted}.main.{table.name}" if cols is not None else " WHERE false"
            views.append(f"CREATE OR REPLACE TEMP VIEW {table.name} AS SELECT {select}{source}")
        return views

    def _create_views(self, con: duckdb.DuckDBPyConnection) -> None:
        for sql in self._shadow:
            con.execute(sql)

    # ---- primitives ---------------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        if self.read_only:
            return
        with self._use(linger=True) as con:
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
        return self._insert(spec, batch, spec.name, "INSERT OR REPLACE")

    def _insert(self, spec: Table, batch: pd.DataFrame, target: str, verb: str,
                memory_limit: str | None = None) -> int:
        """``verb INTO target`` every row of a conformed ``batch`` of ``spec``'s columns, in one transaction
        (:meth:`_transaction`)."""
        batch = batch.copy(deep=False)
        for col in spec.kinds("timestamp"):
            batch[col] = batch[col].dt.tz_localize(None)
        cols = ", ".join(spec.column_names)
        sql = f"{verb} INTO {target} ({cols}) SELECT {cols} FROM _btlab_batch"
        self._transaction(lambda con: con.execute(sql), memory_limit, batch)
        return len(batch)

    def _transaction(self, work: Callable[[duckdb.DuckDBPyConnection], Any], memory_limit: str | None,
                     batch: pd.DataFrame | None = None) -> None:
        """``work(con)`` in one transaction (one call: other processes get the file before and after), with
        ``batch`` registered as ``_btlab_batch`` and DuckDB's ``memory_limit`` set to ``memory_limit`` meanwhile (a
        checkpoint follows the commit, under the limit too). If DuckDB runs out of memory under that limit (e.g. the
        primary-key index of a big table needs more), the transaction is rolled back and run once more without it."""
        for limit in (memory_limit, None) if memory_limit is not None else (None,):
            with self._use(linger=True) as con, self._memory_limit(con, limit):
                if batch is not None:
                    con.register("_btlab_batch", batch)
                try:
                    con.execute("BEGIN TRANSACTION")
                    try:
                        work(con)
                        con.execute("COMMIT")
                    except BaseException as exc:
                        con.execute("ROLLBACK")
                        if limit is not None and isinstance(exc, duckdb.OutOfMemoryException):
                            continue  # once more, without the limit
                        raise
                finally:
                    if batch is not None:
                        con.unregister("_btlab_batch")
                if limit is not None:  # now, under the limit (closing the file would do it without); committed
                    with contextlib.suppress(duckdb.Error):  # anyway: a checkpoint that fails comes again later
                        con.execute("CHECKPOINT")
                return

    @staticmethod
    @contextmanager
    def _memory_limit(con: duckdb.DuckDBPyConnection, limit: str | None) -> Iterator[None]:
        """DuckDB's ``memory_limit`` set to ``limit`` for a block (None, or DuckDB cannot free that much: unchanged),
        then reset."""
        try:
            if limit is not None:
                con.execute(f"SET memory_limit = '{limit}'")  # a setting of this store, not input
        except duckdb.Error:
            limit = None
        try:
            yield
        finally:
            if limit is not None:
                con.execute("RESET memory_limit")

    # ---- bars -------------------------------------------------------------------------------------------------
    #: batches of at least this many bars are checked against the stored bars of their span (see :meth:`write_bars`)
    write_overlap_rows = WRITE_OVERLAP_ROWS

    def write_bars(
        self, bars: pd.DataFrame, *, exchange: str, symbol: str, timeframe: Timeframe | str, source: str
    ) -> int:
        """Validate and upsert bars of one series, as :meth:`Store.write_bars <btlab.store.base.Store.write_bars>`
        (same arguments, result and errors: nothing is written from an invalid batch), at the speed of DuckDB's own
        keyed insert.

        How, in ONE transaction:

        * only the bar columns are handed to DuckDB; the series' identity and ``source`` are bound once (not
          scanned as a million Python strings, as :func:`~btlab.store.marketdata.bar_rows` would make them);
        * bars without a ``trades`` column get an all-null one before :func:`~btlab.model.bar.validate_bars` (the
          column it would add, built without a Python list of a million nulls);
        * when a batch of at least :attr:`write_overlap_rows` bars meets stored bars of the series within its
          span (a re-import, an overlapping page), only the bars that are new or whose values or ``source`` differ
          from the stored ones are written (an anti-join on ``ts``): an unchanged bar costs a join instead of a
          delete and a re-insert. Smaller batches are upserted whole.

        Raises:
            DataValidationError: the batch is invalid; nothing was written.
            StoreUnavailableError: read-only store.
        """
        import numpy as np
        import pandas as pd

        from btlab.model.bar import REQUIRED_COLUMNS, validate_bars

        tf = Timeframe.parse(timeframe)
        self._writable()
        if "trades" not in bars.columns and all(c in bars.columns for c in REQUIRED_COLUMNS):
            n = len(bars)
            bars = bars.assign(trades=pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)))
        valid = validate_bars(bars, source, tf)
        series = (exchange, symbol, tf.value, source)

        def write(con: duckdb.DuckDBPyConnection) -> None:
            overlap = len(valid) >= self.write_overlap_rows and self._stored_span(con, series, valid["ts"])
            self._insert_bars(con, valid, series, overlap)

        self._transaction(write, None)
        return len(valid)

    def _stored_span(self, con: duckdb.DuckDBPyConnection, series: tuple[str, str, str, str], ts: pd.Series) -> bool:
        """Whether the series holds bars between the first and the last of ``ts`` (validated bar times, sorted)."""
        sql = "SELECT count(*) FROM ohlcv WHERE exchange = ? AND symbol = ? AND timeframe = ? AND ts >= ? AND ts <= ?"
        params = [*series[:3], param_time(ts.iloc[0]), param_time(ts.iloc[-1])]
        ((count,),) = con.execute(sql, params).fetchall()
        return bool(count)

    @staticmethod
    def _insert_bars(con: duckdb.DuckDBPyConnection, valid: pd.DataFrame, series: tuple[str, str, str, str],
                     overlap: bool) -> None:
        """``INSERT OR REPLACE`` validated bars (:data:`~btlab.model.bar.BAR_COLUMNS`) of ``series`` (exchange,
        symbol, timeframe, source: bound values) into ``ohlcv``; with ``overlap``, only the bars not stored with
        the same values (see :meth:`write_bars`). Runs inside the caller's transaction."""
        frame = valid.copy(deep=False)
        frame["ts"] = frame["ts"].dt.tz_localize(None)
        spec = TABLES["ohlcv"]
        cols = ", ".join(spec.column_names)
        values = ", ".join("?" if c in _SERIES_COLUMNS else f"n.{c}" for c in spec.column_names)
        params: list[Any] = [series[_SERIES_COLUMNS.index(c)] for c in spec.column_names if c in _SERIES_COLUMNS]
        sql = f"INSERT OR REPLACE INTO ohlcv ({cols}) SELECT {values} FROM _btlab_bars n"
        if overlap:
            bar_cols = [c for c in spec.column_names if c not in _SERIES_COLUMNS and c != "ts"]
            stored = ", ".join(["ts", *bar_cols, "source"])
            changed = " OR ".join([*(f"n.{c} IS DISTINCT FROM o.{c}" for c in bar_cols), "o.source IS DISTINCT FROM ?"])
            sql += (f" LEFT JOIN (SELECT {stored} FROM ohlcv WHERE exchange = ? AND symbol = ? AND timeframe = ? "
                    f"AND ts >= ? AND ts <= ?) o ON o.ts = n.ts WHERE o.ts IS NULL OR {changed}")
            bounds = [frame["ts"].iloc[0].to_pydatetime(), frame["ts"].iloc[-1].to_pydatetime()]
            params += [*series[:3], *bounds, series[3]]
        con.register("_btlab_bars", frame)
        try:
            con.execute(sql, params)
        finally:
            con.unregister("_btlab_bars")

    # ---- staging hooks (see Store.staging) -------------------------------------------------------------------
    upsert_verb = "INSERT OR REPLACE"
    #: rows per publish transaction (see the class docstring)
    publish_slice_rows = 100_000
    #: DuckDB's memory limit while staging or publishing (None: none); see :data:`STAGING_MEMORY_LIMIT`
    staging_memory_limit: str | None = STAGING_MEMORY_LIMIT

    def _stage_create(self, table: Table, name: str) -> None:
        self._writable()
        with self._use(linger=True) as con:
            con.execute(table_ddl(table, name, primary_key=False))

    def _stage_append(self, table: Table, name: str, frame: pd.DataFrame) -> int:
        self._writable()
        return self._insert(table, conform(table, frame), name, "INSERT", self.staging_memory_limit)

    def _stage_copy(self, table: Table, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self._writable()
        for sql, params in steps:  # one transaction each: other processes get the file between them
            self._transaction(lambda con, sql=sql, params=params: con.execute(sql, list(params)),
                              self.staging_memory_limit)

    def _stage_drop(self, sql: str) -> None:
        self._writable()
        with self._use(linger=True) as con:
            con.execute(sql)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self._use(linger=True) as con:
            return con.execute(sql, list(params)).df()

    def _read_bar_rows(self, sql: str, params: Sequence[Any]) -> pd.DataFrame:
        """:meth:`read_bars`' rows as numpy arrays (``fetchnumpy``), unsorted, made into its frame by
        :func:`~btlab.store.marketdata.bars_from_columns`: the same frame as ``ORDER BY ts`` through
        :meth:`query`, a third of the time (bench_vector.py)."""
        from btlab.store.marketdata import bars_from_columns

        with self._use(linger=True) as con:
            columns = con.execute(sql, list(params)).fetchnumpy()
        return bars_from_columns(columns)

    def delete_rows(self, filters: Sequence[RowFilter]) -> list[int]:
        """``DELETE FROM table WHERE ...`` (values bound) for every filter, all in one transaction: either every
        filter's rows are gone or none are. Cost: proportional to the rows deleted (primary-key index updated)."""
        self._writable()
        statements = [(f"DELETE FROM {TABLES[f.table].name} WHERE {where}", params)
                      for f in filters for where, params in [f.where()]]
        counts: list[int] = []
        with self._use(linger=True) as con:
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

    def query_rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts straight from DuckDB (no pandas); timestamps timezone-aware UTC, nulls None."""
        with self._use(linger=True) as con:
            cursor = con.execute(sql, list(params))
            names = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall()
        return [utc_row(dict(zip(names, row, strict=True))) for row in rows]

    def close(self) -> None:
        """Close the connection (if one is open). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._depth = 0
            self._drop()
            self._idle.notify_all()
        with _LIVE_LOCK:
            live = _LIVE.get(self.path)
            if live is not None:
                live.discard(self)
                if not live:
                    del _LIVE[self.path]


@atexit.register
def _close_lingering() -> None:
    """At interpreter exit, close connections still lingering (their data is committed; this checkpoints it)."""
    with _LIVE_LOCK:
        stores = [s for live in _LIVE.values() for s in live]
    for store in stores:
        store._release_if_idle()
