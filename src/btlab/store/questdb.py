"""Server backend: QuestDB (writes over ILP/HTTP, reads over the PostgreSQL wire protocol).

Layout in QuestDB (from :data:`btlab.store.schema.TABLES`): every table has the designated timestamp ``ts``
(``TIMESTAMP``, microsecond precision, UTC), is partitioned (``table.partition_by``), is a WAL table and
deduplicates on ``DEDUP UPSERT KEYS(ts, <other key columns>)`` so a re-written key replaces its row. Column kinds
map to ``symbol`` -> ``SYMBOL``, ``string`` -> ``VARCHAR``, ``timestamp`` -> ``TIMESTAMP``, ``double`` ->
``DOUBLE``, ``long`` -> ``LONG``. Tables are created over SQL before any write, so ILP never auto-creates them.

How it uses QuestDB (documented features only):

* DDL and deduplication -- https://questdb.com/docs/reference/sql/create-table/ (``TIMESTAMP(ts) PARTITION BY
  .. WAL DEDUP UPSERT KEYS(..)``; the designated timestamp must be one of the keys),
  https://questdb.com/docs/concept/deduplication/, https://questdb.com/docs/reference/sql/alter-table-add-column/,
  https://questdb.com/docs/reference/sql/alter-table-enable-deduplication/.
* Writes -- the official client (https://py-questdb-client.readthedocs.io/, ``Sender.from_conf`` and
  ``Sender.dataframe(df, table_name=.., symbols=[..], at='ts')``), ILP over HTTP with auto-flush off and
  ``flush(transactional=True)``. https://questdb.com/docs/reference/api/ilp/overview/#http-transaction-semantics:
  one HTTP request holding rows of one table is one transaction.
* Visibility -- a WAL commit becomes readable once the WAL apply job has applied it:
  ``wal_tables()`` (``name, suspended, writerTxn, sequencerTxn``,
  https://questdb.com/docs/reference/function/meta/#wal_tables) is polled until ``writerTxn >= sequencerTxn``;
  a suspended table is reported (https://questdb.com/docs/reference/sql/alter-table-resume-wal/).
* Reads -- PGWire with psycopg 3 (https://questdb.com/docs/pgwire/python/: port 8812, user ``admin``, password
  ``quest``, database ``qdb``, ``autocommit=True``), parameters always bound, results in binary format.
  ``base.py`` binds ``LIMIT ?``: use QuestDB >= 8.2.2 (bind variables in ``LIMIT`` fixed there, questdb#5377).
* Deletes -- QuestDB has no row ``DELETE``; :meth:`QuestDBStore.delete_rows` uses the documented "replace table"
  pattern (https://questdb.com/docs/operations/modifying-data/#replace-table: copy the rows to keep into a new
  table, ``DROP TABLE``, ``RENAME TABLE``), see its docstring for the costs.

Addresses (parsing, redaction, PG-wire connection parameters) live in :mod:`btlab.store.questdb_address`, the SQL
dialect (DDL, placeholders, the statements listed for QuestDB's parser, the ILP frame) in
:mod:`btlab.store.questdb_sql`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

from btlab.errors import StoreConfigError, StoreNotFoundError, StoreUnavailableError
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store
from btlab.store.rows import RowFilter, TimeLike, to_utc
from btlab.store.questdb_address import QuestDBConfig, join_host_port, one_line, parse_address, pg_connect_params
from btlab.store.questdb_export import ExportError, ExportTimeout, decode_export, fetch_export
from btlab.store.questdb_sql import (
    KEEP_SUFFIX,
    WAL_TABLES_SQL,
    add_column_ddl,
    dedup_ddl,
    dedup_keys,
    delete_statements,
    export_bars_sql,
    ilp_frame,
    table_columns_sql,
    table_ddl,
    to_pyformat,
)
from btlab.store.schema import TABLES, Table

#: Seconds past ``pg_timeout`` the client-side watchdog waits (the server's own ``statement_timeout`` fires first).
WATCHDOG_GRACE = 2.0

# ---- store ---------------------------------------------------------------------------------------------------
_INT_OIDS = frozenset({20, 21, 23})  # int8, int2, int4
_FLOAT_OIDS = frozenset({700, 701})  # float4, float8
_TS_OIDS = frozenset({1114, 1184})  # timestamp, timestamptz


class QuestDBStore(Store):
    """A :class:`~btlab.store.base.Store` in a QuestDB server.

    Writes go through the official ``questdb`` client over ILP/HTTP, reads and DDL through the PostgreSQL wire
    protocol (psycopg 3). Timestamps are stored as QuestDB ``TIMESTAMP`` (UTC, microsecond precision: sub-
    microsecond parts are truncated); reads return them as ``datetime64[ns, UTC]`` through the base class.

    Upserts: :meth:`upsert` sends the batch for one table as one HTTP request when it has at most
    ``rows_per_request`` rows, which QuestDB commits as one transaction (all rows or none). A larger batch is
    sent as several requests of ``rows_per_request`` rows, each its own transaction: if one fails, the earlier
    ones stay written. Every table deduplicates on its natural key, so running the same write again completes
    it without duplicates. After the requests, :meth:`upsert` waits until QuestDB has applied them (WAL), so a
    following :meth:`query` sees the rows.

    Opening checks BOTH endpoints (a TCP connection to the HTTP port, then the PG wire login), so an address
    whose two ports lead to different places fails at once instead of reading one server while writes fail on
    the other; connection errors name both resolved endpoints (:attr:`QuestDBConfig.resolved`). A statement that
    gets no answer within the address's ``pg_timeout`` (default 300 s) ends in :class:`StoreUnavailableError`
    instead of blocking forever (see :func:`pg_connect_params`). No message names a credential of the address.

    Not thread-safe: use one store per thread.

    Args:
        config: from :func:`parse_address`.
        connect_timeout: seconds to wait for each endpoint (libpq rounds up to >= 2).
        wal_timeout: seconds :meth:`upsert` waits for written rows to become visible.
        rows_per_request: rows per ILP/HTTP request (one QuestDB transaction each).
        read_only: no DDL (tables are not created or migrated) and no writes; at least one btlab table must exist.

    Raises:
        StoreUnavailableError: the server cannot be reached (naming the address without credentials), or its
            tables are unusable (not WAL, suspended, another designated timestamp).
        StoreNotFoundError: ``read_only`` and the server holds no btlab table yet.
    """

    def __init__(
        self,
        config: QuestDBConfig,
        *,
        connect_timeout: float = 5.0,
        wal_timeout: float = 30.0,
        rows_per_request: int = 100_000,
        read_only: bool = False,
    ) -> None:
        if rows_per_request <= 0:
            raise ValueError("rows_per_request must be positive")
        self.config = config
        self.address = config.display
        self.connect_timeout = connect_timeout
        self.wal_timeout = wal_timeout
        self.rows_per_request = int(rows_per_request)
        self.read_only = bool(read_only)
        self._conn: Any = None
        self._sender: Any = None
        self._closed = False
        self._check_http()
        self._connect()
        try:
            if self.read_only:
                if not set(self._wal_status()) & set(TABLES):
                    raise StoreNotFoundError(
                        self.address, f"no btlab tables in the QuestDB at {self.address} yet (nothing written there)"
                    )
            else:
                self.ensure_schema()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_address(cls, address: str, **kwargs: Any) -> "QuestDBStore":
        """Open the store at ``address`` (see :func:`parse_address` for the forms); ``kwargs`` go to ``__init__``.

        Raises:
            StoreConfigError: the address is malformed.
            StoreUnavailableError: the server cannot be reached.
        """
        return cls(parse_address(address), **kwargs)

    # ---- connections --------------------------------------------------------------------------------------
    def _unavailable(self, reason: str) -> StoreUnavailableError:
        return StoreUnavailableError(self.address, f"{self.config.scrub(reason)}; resolved: {self.config.resolved}")

    def _check_http(self) -> None:
        """Open (and close) a TCP connection to the ILP/HTTP endpoint, so a wrong HTTP port fails at open."""
        cfg = self.config
        try:
            with socket.create_connection((cfg.http_host, cfg.http_port), timeout=max(0.5, self.connect_timeout)):
                pass
        except OSError as exc:
            scheme = "https" if cfg.tls else "http"
            raise self._unavailable(
                f"ILP/HTTP at {scheme}://{join_host_port(cfg.http_host, cfg.http_port)}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None

    def _connect(self) -> None:
        import psycopg

        cfg = self.config
        try:
            self._conn = psycopg.connect(
                **pg_connect_params(cfg, self.connect_timeout), autocommit=True, prepare_threshold=None
            )
        except psycopg.Error as exc:
            hint = ""
            if cfg.pg_sslmode not in (None, "disable", "allow", "prefer") and "SSL" in str(exc):
                hint = " (QuestDB Open Source has no TLS on PG wire: add pg_sslmode=disable if none is in front of it)"
            raise self._unavailable(
                f"PostgreSQL wire at {join_host_port(cfg.pg_host, cfg.pg_port)}: {one_line(exc)}{hint}"
            ) from None

    @property
    def _connection(self) -> Any:
        if self._closed:
            raise RuntimeError(f"store {self.address} is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = None
            self._connect()
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, list[tuple]]:
        """Run ``sql`` (psycopg ``%s`` style); returns ``(description, rows)``. Reconnects once if the link broke.

        A statement whose answer (all its rows) has not arrived after ``pg_timeout`` + 2 s is given up: a watchdog
        shuts the connection's socket down, so the wait ends even on a server that accepts data but never answers.

        Raises:
            StoreUnavailableError: the connection broke and cannot be re-established, or no answer in time.
        """
        import psycopg

        args = tuple(_bind(p) for p in params)
        for attempt in (1, 2):
            conn = self._connection
            watchdog = _Watchdog(conn, self.config.pg_timeout + WATCHDOG_GRACE)
            try:
                with watchdog, conn.cursor(binary=True) as cur:
                    cur.execute(sql, args)
                    if cur.description is None:
                        return None, []
                    return cur.description, cur.fetchall()
            except psycopg.OperationalError as exc:
                if watchdog.fired:
                    self._conn = None
                    conn.close()
                    raise self._unavailable(
                        f"PostgreSQL wire at {join_host_port(self.config.pg_host, self.config.pg_port)}: no answer "
                        f"within {self.config.pg_timeout:g} s (pg_timeout)"
                    ) from None
                if conn.broken and attempt == 1:
                    continue  # connection lost (e.g. server restart): statements here are read-only or idempotent
                if conn.broken:
                    raise self._unavailable(one_line(exc)) from None
                raise
        raise AssertionError("unreachable")

    def _get_sender(self) -> Any:
        if self._sender is None:
            import questdb

            try:
                sender = questdb.Sender.from_conf(self.config.ilp_conf, auto_flush=False)
            except Exception:  # noqa: BLE001 -- checked by parse_address with placeholders; the real values differ
                raise StoreConfigError(
                    f"QuestDB address {self.address!r}: the QuestDB client refuses its credentials"
                ) from None
            try:
                sender.establish()
            except questdb.QuestDBError as exc:
                sender.close(flush=False)
                raise self._ilp_error(exc) from None
            self._sender = sender
        return self._sender

    def _ilp_error(self, exc: Exception) -> Exception:
        """A :class:`StoreUnavailableError` for connection-type client errors, else ``exc`` unchanged."""
        import questdb

        code = getattr(exc, "code", None)
        names = (
            "CouldNotResolveAddr", "SocketError", "AuthError", "TlsError", "HttpNotSupported",
            "ProtocolVersionError", "ConnectTimeout", "HandshakeError",
        )
        unavailable = {getattr(questdb.QuestDBErrorCode, n) for n in names if hasattr(questdb.QuestDBErrorCode, n)}
        if code in unavailable:
            cfg = self.config
            scheme = "https" if cfg.tls else "http"
            return self._unavailable(
                f"ILP at {scheme}://{join_host_port(cfg.http_host, cfg.http_port)}: {one_line(exc)}"
            )
        return exc

    # ---- primitives ---------------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create missing tables, add missing columns, and make sure each table is WAL with the right dedup keys.

        Also finishes or undoes a :meth:`delete_rows` that was cut short (see there).

        Raises:
            StoreUnavailableError: a table exists but is not a WAL table, is suspended, or has another designated
                timestamp than ``ts`` (e.g. it was auto-created by ILP from other data).
        """
        if self.read_only:
            return
        self._recover_deletes()
        for table in TABLES.values():
            self._execute(table_ddl(table))
        wal = self._wal_status()
        for table in TABLES.values():
            if table.name not in wal:
                raise StoreUnavailableError(
                    self.address,
                    f"table {table.name} exists but is not a WAL table; btlab needs WAL + DEDUP "
                    f"(rename or drop it so btlab can create it)",
                )
            desc, rows = self._execute(table_columns_sql(table))
            names = [d.name.lower() for d in desc]
            info = {r[names.index("column")]: dict(zip(names, r)) for r in rows}
            designated = [c for c, r in info.items() if r.get("designated")]
            if designated != ["ts"]:
                raise StoreUnavailableError(
                    self.address,
                    f"table {table.name} has designated timestamp {designated or None}, expected ['ts'] "
                    f"(created outside btlab?)",
                )
            changed = False
            for col in table.columns:
                if col.name not in info:  # additive migration
                    self._execute(add_column_ddl(table, col.name))
                    changed = True
            have_keys = {c for c, r in info.items() if r.get("upsertkey")}
            if have_keys != set(dedup_keys(table)):
                self._execute(dedup_ddl(table))
                changed = True
            if changed:
                self._wait_applied(table.name)

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert or replace rows of ``table`` by its dedup keys; returns the number of rows sent.

        See the class docstring for atomicity (one transaction per ``rows_per_request`` rows). Returns after the
        rows are visible to :meth:`query`.

        Raises:
            KeyError: unknown table.
            ValueError: unknown columns, or a null in a key column (nothing was sent).
            StoreUnavailableError: the server cannot be reached, the table is suspended, or the rows did not
                become visible within ``wal_timeout`` seconds.
            questdb.QuestDBError: the server rejected the data (e.g. a column of another type).
        """
        spec = TABLES[table]
        if frame.empty:
            return 0
        self._writable()
        return self._send(spec, frame, spec.name)

    def _send(self, spec: Table, frame: pd.DataFrame, target: str) -> int:
        """Send rows of ``spec`` to table ``target`` over ILP (``rows_per_request`` rows a request), wait until
        they are applied; return how many (see :meth:`upsert`)."""
        import questdb

        batch, symbols = ilp_frame(spec, frame)
        sender = self._get_sender()
        step = self.rows_per_request
        try:
            for lo in range(0, len(batch), step):
                chunk = batch.iloc[lo : lo + step]
                sender.dataframe(chunk, table_name=target, symbols=symbols, at="ts")
                sender.flush(transactional=True)
        except questdb.QuestDBError as exc:
            err = self._ilp_error(exc)
            if isinstance(err, StoreUnavailableError):
                self._drop_sender()
                raise err from None
            raise
        self._wait_applied(target)
        return len(batch)

    # ---- staging hooks (see Store.staging) -------------------------------------------------------------------
    def _stage_create(self, table: Table, name: str) -> None:
        """The staging table: ``table``'s own DDL under ``name`` (WAL, so ILP can write to it)."""
        self._writable()
        self._execute(table_ddl(table, name=name))

    def _stage_append(self, table: Table, name: str, frame: pd.DataFrame) -> int:
        self._writable()
        return self._send(table, frame, name)

    def _stage_copy(self, table: Table, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """``INSERT INTO table SELECT .. FROM staging`` (QuestDB commits it in batches; dedup keys make a repeat
        complete it); waits until applied."""
        self._writable()
        for sql, params in steps:
            self._execute(to_pyformat(sql), params)
        self._wait_applied(table.name)

    def _stage_drop(self, sql: str) -> None:
        self._writable()
        self._execute(sql)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run read-only SQL with ``?`` placeholders over PGWire; returns every row.

        Columns are named from the cursor description. Integer columns are ``int64`` (``Int64`` when they hold
        nulls), floating-point columns ``float64`` (nulls as NaN), timestamps naive ``datetime64`` in UTC,
        text ``object`` with ``None`` for nulls.

        Raises:
            StoreUnavailableError: the connection is lost and cannot be re-established.
            psycopg.Error: the SQL is invalid for QuestDB.
        """
        desc, rows = self._execute(to_pyformat(sql), params)
        if desc is None:
            return pd.DataFrame()
        return _frame(desc, rows)

    def read_bars(
        self, *, exchange: str, symbol: str, timeframe: Timeframe | str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DataFrame:
        """Bars with ``start <= ts < end``, sorted by ``ts``: the frame of :meth:`Store.read_bars
        <btlab.store.base.Store.read_bars>` (same columns, dtypes, UTC timestamps), read through QuestDB's own
        export.

        How: one ``GET /exp`` with ``fmt=parquet`` on the HTTP endpoint (the address's credentials and TLS
        settings), decoded column-wise by pyarrow (:mod:`btlab.store.questdb_export`): QuestDB's bulk path instead
        of one Python object per value over PG wire. ``/exp`` has no bind variables, so this is used only when
        exchange, symbol and timeframe are plain enough to sit in a SQL string literal
        (:func:`~btlab.store.questdb_sql.export_bars_sql`); otherwise, and whenever ``/exp`` fails (an HTTP
        error, an answer it cannot decode), the read goes over PG wire with bound values, as before.

        Raises:
            InvalidArgumentError: ``timeframe`` is not a ccxt timeframe.
            StoreUnavailableError: no answer within the address's ``pg_timeout``, or the server cannot be reached.
        """
        tf = Timeframe.parse(timeframe)
        sql = export_bars_sql(exchange, symbol, tf.value, to_utc(start), to_utc(end))
        if sql is not None:
            try:
                return decode_export(fetch_export(self.config, sql, self.config.pg_timeout))
            except ExportTimeout as exc:
                raise self._unavailable(str(exc)) from None
            except ExportError as exc:
                log.debug("QuestDB %s: %s; reading over PG wire", self.address, exc)
        return super().read_bars(exchange=exchange, symbol=symbol, timeframe=tf, start=start, end=end)

    def delete_rows(self, filters: Sequence[RowFilter]) -> list[int]:
        """Delete rows by rewriting each affected table without them (QuestDB has no row ``DELETE``).

        For each filter (in order), following QuestDB's documented "replace table" pattern
        (https://questdb.com/docs/operations/modifying-data/#replace-table): count the rows it selects (none: the
        table is left alone); create ``<table>_btlab_keep`` with the table's own DDL (same columns, designated
        timestamp, partitioning, WAL and DEDUP UPSERT KEYS); ``INSERT INTO`` it every row NOT selected (values
        bound); wait until applied; check that it holds exactly the table's rows minus the selected ones (if a
        writer changed the table meanwhile: drop the copy, raise, nothing deleted); then ``DROP TABLE`` the table
        and ``RENAME TABLE`` the copy to its name.

        Costs: every remaining row of the table is copied (time and, until the drop, disk space proportional to
        the whole table, not to the rows deleted); rows written to the table by another process between the copy
        and the drop are lost, so do not delete while something writes to that table (live ingest, a running
        backtest for the run tables); readers see the table missing for the moment between ``DROP`` and
        ``RENAME``. Filters on different tables are separate operations (no transaction spans them). If the
        process dies between ``DROP`` and ``RENAME``, the next read-write open renames the copy back
        (:meth:`ensure_schema`); a copy left beside an intact table is dropped there.

        Raises:
            StoreUnavailableError: read-only store, server gone, or the table changed during the copy.
        """
        self._writable()
        return [self._delete(f) for f in filters]

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        _, rows = self._execute(to_pyformat(sql), params)
        return int(rows[0][0]) if rows else 0

    def _delete(self, rows: RowFilter) -> int:
        spec = TABLES[rows.table]
        where, params = rows.where()
        sql = delete_statements(spec, where)
        self._wait_applied(spec.name)
        selected = self._scalar(sql["count"], params)
        if selected == 0:
            return 0
        total = self._scalar(sql["count_all"])
        keep = spec.name + KEEP_SUFFIX
        self._execute(sql["drop_keep"])
        self._execute(sql["create_keep"])
        self._execute(to_pyformat(sql["copy"]), params)
        self._wait_applied(keep)
        kept = self._scalar(sql["count_keep"])
        self._wait_applied(spec.name)
        if kept != total - selected or self._scalar(sql["count_all"]) != total:
            self._execute(sql["drop_keep"])
            raise self._unavailable(
                f"table {spec.name} changed while deleting from it (another writer?): nothing deleted; retry when "
                f"nothing writes to it"
            )
        self._execute(sql["drop"])
        self._execute(sql["rename"])
        self._wait_applied(spec.name)
        return selected

    def _recover_deletes(self) -> None:
        """Finish or undo a :meth:`delete_rows` cut short: a ``<table>_btlab_keep`` copy without its table takes the
        table's name (the drop happened, the rename did not); beside an intact table it is dropped."""
        tables = set(self._wal_status())
        for table in TABLES.values():
            keep = table.name + KEEP_SUFFIX
            if keep not in tables:
                continue
            sql = delete_statements(table, "true")
            self._execute(sql["drop_keep"] if table.name in tables else sql["rename"])

    def _writable(self) -> None:
        if self.read_only:
            raise StoreUnavailableError(self.address, "opened read-only: cannot write")

    def close(self) -> None:
        """Close the ILP sender and the PostgreSQL wire connection. Idempotent."""
        self._closed = True
        self._drop_sender()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # ---- internals ----------------------------------------------------------------------------------------
    def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            try:
                sender.close(flush=False)
            except Exception:  # noqa: BLE001 -- closing a broken sender must not hide the original error
                pass

    def _wal_status(self, name: str | None = None) -> dict[str, tuple[bool, int, int]]:
        desc, rows = self._execute(to_pyformat(WAL_TABLES_SQL + " WHERE name = ?"), [name]) if name else \
            self._execute(WAL_TABLES_SQL)
        return {r[0]: (bool(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}

    def _wait_applied(self, table: str) -> None:
        """Block until every WAL transaction of ``table`` committed so far is applied (visible to readers).

        Polls ``wal_tables()`` with a short, growing interval (5 ms .. 100 ms), at most ``wal_timeout`` seconds.
        """
        deadline = time.monotonic() + self.wal_timeout
        target: int | None = None
        delay = 0.005
        while True:
            status = self._wal_status(table).get(table)
            if status is None:
                raise StoreUnavailableError(self.address, f"table {table} is not listed by wal_tables()")
            suspended, writer_txn, sequencer_txn = status
            if suspended:
                raise StoreUnavailableError(
                    self.address,
                    f"table {table} is suspended (applying a WAL transaction failed; see the server log, "
                    f"SELECT * FROM wal_tables() and ALTER TABLE {table} RESUME WAL)",
                )
            if target is None:
                target = sequencer_txn  # includes our commits; later writers do not extend the wait
            if writer_txn >= target:
                return
            if time.monotonic() >= deadline:
                raise StoreUnavailableError(
                    self.address,
                    f"rows written to {table} not visible after {self.wal_timeout:g} s "
                    f"(writerTxn {writer_txn} < sequencerTxn {target}; the WAL apply job is lagging)",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


class _Watchdog:
    """Context manager: if the block still runs after ``seconds``, shut the connection's socket down (both ways).

    The blocked read then ends at once (psycopg raises ``OperationalError``, the connection is broken) and
    :attr:`fired` says why. Only a socket call happens on the timer thread, never a psycopg call.
    """

    def __init__(self, conn: Any, seconds: float) -> None:
        self.fired = False
        self._fd = conn.pgconn.socket
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        try:
            sock = socket.socket(fileno=os.dup(self._fd))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()

    def __enter__(self) -> "_Watchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()


def _bind(value: Any) -> Any:
    """A Python value psycopg binds with a type QuestDB understands (ints as int8, times as naive UTC)."""
    from psycopg.types.numeric import Int8

    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return Int8(int(value))
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _frame(description: Sequence[Any], rows: list[tuple]) -> pd.DataFrame:
    names = [d.name for d in description]
    columns = list(zip(*rows)) if rows else [()] * len(names)
    data: dict[int, Any] = {}
    for i, (desc, values) in enumerate(zip(description, columns)):
        oid = desc.type_code
        if oid in _INT_OIDS:
            arr = pd.array(list(values), dtype="Int64")
            data[i] = arr if arr.isna().any() else arr.astype("int64")
        elif oid in _FLOAT_OIDS:
            data[i] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        elif oid in _TS_OIDS:
            ts = pd.to_datetime(pd.Series(list(values), dtype="object"), utc=oid == 1184)
            data[i] = ts.dt.tz_localize(None) if oid == 1184 else ts
            if not len(values):
                data[i] = pd.Series([], dtype="datetime64[ns]")
        else:
            data[i] = pd.Series(list(values), dtype="object")
    out = pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
    out.columns = names
    return out
