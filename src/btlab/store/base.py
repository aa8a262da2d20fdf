"""The :class:`Store` interface: market data and backtest results, same tables on every backend.

Backends implement five primitives (:meth:`Store.ensure_schema`, :meth:`Store.upsert`, :meth:`Store.query`,
:meth:`Store.delete_rows`, :meth:`Store.close`); everything a caller uses (bars, runs, equity, trades, orders, and
deleting them) is written once on top of them, so the backends cannot drift apart: backtest results here, market
data (bars, ticks, the ingest planners' reads) in :mod:`btlab.store.marketdata` (a mixin of :class:`Store`), row
selection and time bounds in :mod:`btlab.store.rows`. Both backends pass ``tests/store/test_store_conformance.py``. Staging (:meth:`Store.staging`: rows collected in a private table, then
published) is written here too, on four small backend hooks (create, append, run the copies, drop).

SQL here uses ``?`` placeholders for every value (never string formatting of user input); a backend whose
driver uses another style translates them. Only plain SELECT/WHERE/GROUP BY/ORDER BY/LIMIT is used, which
DuckDB and QuestDB both document.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from btlab.errors import InvalidArgumentError, RunNotFoundError
from btlab.store.marketdata import MarketDataStore
from btlab.store.rows import RowFilter, TimeLike
from btlab.store.schema import TABLES, Table

if TYPE_CHECKING:
    import pandas as pd

# pandas (and numpy) are imported where used: opening a store and reading runs (``btlab runs list``) stays fast.

#: Tables that hold backtest runs: ``bt_runs`` first, then every other table with a ``run_id`` column.
RUN_TABLES: tuple[str, ...] = ("bt_runs",) + tuple(
    name for name, table in TABLES.items() if name != "bt_runs" and "run_id" in table.column_names
)



def conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly ``table``'s columns in order and canonical dtypes.

    Missing columns become nulls; timestamps become ``datetime64[ns, UTC]`` (naive values are taken as UTC);
    ``long`` columns become nullable ``Int64``; ``string``/``symbol`` columns become ``object`` with ``None``
    for nulls. Extra columns raise ``ValueError`` (a typo would otherwise be dropped silently).
    """
    import pandas as pd

    extra = set(frame.columns) - set(table.column_names)
    if extra:
        raise ValueError(f"unknown column(s) for table {table.name}: {sorted(extra)}")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in table.columns:
        values = frame[col.name].reset_index(drop=True) if col.name in frame.columns else pd.Series(
            [None] * len(frame), dtype="object"
        )
        if col.kind == "timestamp":
            ts = pd.to_datetime(values, utc=True)
            out[col.name] = ts.astype("datetime64[ns, UTC]")
        elif col.kind == "double":
            out[col.name] = pd.to_numeric(values).astype("float64")
        elif col.kind == "long":
            out[col.name] = pd.to_numeric(values).astype("Int64")
        else:
            out[col.name] = values.astype("object").where(values.notna(), None)
    return out


#: Marks the name of a staging table: ``<table>_btlab_stage_<12 hex digits>`` (see :meth:`Store.staging`).
STAGE_INFIX = "_btlab_stage_"


def staging_statements(table: Table, name: str, verb: str) -> dict[str, str]:
    """The SQL :class:`Staging` runs for staging table ``name`` of ``table`` (``?`` placeholders).

    Keys: ``copy`` (the staged rows with ``? <= ts < ?`` into the table), ``copy_from`` (those with ``ts >= ?``),
    ``drop`` (the staging table). ``verb`` is the backend's upsert verb (``INSERT OR REPLACE`` for DuckDB, whose
    primary key would refuse a re-written row; ``INSERT`` for QuestDB, whose DEDUP UPSERT KEYS replace it).
    Identifiers come from the schema and :meth:`Store.staging` only.
    """
    cols = ", ".join(f'"{c.name}"' for c in table.columns)
    copy = f"{verb} INTO {table.name} ({cols}) SELECT {cols} FROM {name} WHERE"
    return {
        "copy": f'{copy} "ts" >= ? AND "ts" < ?',
        "copy_from": f'{copy} "ts" >= ?',
        "drop": f"DROP TABLE IF EXISTS {name}",
    }


class Staging:
    """Rows of one table collected in a private staging table, then published into the table (see
    :meth:`Store.staging`, which makes one).

    Attributes:
        table: the table the rows are for; name: the staging table's name.
        rows: rows added so far.
        published: whether :meth:`publish` completed.
    """

    def __init__(self, store: "Store", table: Table, name: str) -> None:
        self.store = store
        self.table = table
        self.name = name
        self.rows = 0
        self.published = False
        self._starts: list[tuple[Any, int]] = []  # first ts (naive UTC datetime) and rows of every add()
        self._last: Any = None

    def add(self, frame: pd.DataFrame) -> int:
        """Append rows (the table's columns, as for :meth:`Store.upsert`); returns how many.

        Frames must come in ``ts`` order: each frame sorted by ``ts`` and starting after the previous frame's last
        ``ts`` (the publish copies ``ts`` ranges).

        Raises:
            ValueError: a frame out of ``ts`` order, or a row with a null ``ts``.
        """
        if frame.empty:
            return 0
        import pandas as pd

        ts = pd.to_datetime(frame["ts"], utc=True)
        if ts.isna().any() or not ts.is_monotonic_increasing:
            raise ValueError(f"staging {self.table.name}: rows must come sorted by ts, without null ts")
        first, last = ts.iloc[0], ts.iloc[-1]
        if self._last is not None and not first > self._last:
            raise ValueError(f"staging {self.table.name}: a frame starts at {first}, not after {self._last}")
        n = self.store._stage_append(self.table, self.name, frame)
        # the range bounds of the publish, floored to the stores' microseconds: every staged row is in one range
        self._starts.append((first.floor("us").tz_localize(None).to_pydatetime(), n))
        self._last = last
        self.rows += n
        return n

    def publish(self, *, slice_rows: int | None = None) -> int:
        """Copy every staged row into the table (an upsert on its key), then drop the staging table; returns the
        rows published.

        The copy runs as ``ts`` ranges of about ``slice_rows`` rows (default: the backend's
        :attr:`Store.publish_slice_rows`; None: one statement), each one transaction on DuckDB (so memory does not
        grow with the rows staged); QuestDB commits an ``INSERT .. SELECT`` in batches of its own
        (https://questdb.com/docs/reference/sql/insert/). So a reader may see the rows arrive during the publish,
        and a publish cut short leaves part of them written: publishing the same rows again completes it (writes
        are upserts).
        """
        if self.published:
            raise RuntimeError(f"staging table {self.name} was already published")
        sql = staging_statements(self.table, self.name, self.store.upsert_verb)
        size = self.store.publish_slice_rows if slice_rows is None else slice_rows
        steps: list[tuple[str, list[Any]]] = []
        lo, count = None, 0
        for start, n in self._starts:
            if lo is None:
                lo = start
            elif size is not None and count >= size:
                steps.append((sql["copy"], [lo, start]))
                lo, count = start, 0
            count += n
        if lo is not None:
            steps.append((sql["copy_from"], [lo]))
        self.store._stage_copy(self.table, steps)
        self.store._stage_drop(sql["drop"])
        self.published = True
        return self.rows

    def discard(self) -> None:
        """Drop the staging table and what it holds (the table itself was not touched). Idempotent."""
        self.store._stage_drop(staging_statements(self.table, self.name, self.store.upsert_verb)["drop"])



class Store(MarketDataStore, ABC):
    """Durable storage of bars, ticks and backtest results.

    Use as a context manager or call :meth:`close`. Every write is an idempotent upsert on the table's natural
    key (see :mod:`btlab.store.schema`): writing the same rows again changes nothing. Reads return
    ``datetime64[ns, UTC]`` timestamps.

    Attributes:
        address: where the store lives, printable (no credentials).
        upsert_verb: how the backend's SQL writes rows that may exist (``INSERT OR REPLACE`` or ``INSERT``).
        publish_slice_rows: rows per transaction when :meth:`Staging.publish` copies staged rows (None: one
            statement).
    """

    address: str
    upsert_verb: str = "INSERT"
    publish_slice_rows: int | None = None

    # ---- backend primitives -------------------------------------------------------------------------------
    @abstractmethod
    def ensure_schema(self) -> None:
        """Create missing tables (and add missing columns) from :data:`btlab.store.schema.TABLES`."""

    @abstractmethod
    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert or replace rows of ``table`` keyed by its natural key, atomically for the batch.

        ``frame`` has the table's columns (missing ones are null). Returns the number of rows written.
        After it returns, a :meth:`query` sees the rows (a backend with delayed visibility waits for it).
        """

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a read-only SQL query with ``?`` placeholders bound to ``params``; return all rows."""

    @abstractmethod
    def delete_rows(self, filters: Sequence[RowFilter]) -> list[int]:
        """Delete the rows each :class:`RowFilter` selects, in order; return how many rows each one deleted.

        Each backend states its atomicity and cost (DuckDB: one transaction for all filters).
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent."""

    # ---- staging hooks (see :meth:`staging`) ----------------------------------------------------------------
    @abstractmethod
    def _stage_create(self, table: Table, name: str) -> None:
        """Create the empty staging table ``name`` with ``table``'s columns (refusing a read-only store)."""

    @abstractmethod
    def _stage_append(self, table: Table, name: str, frame: pd.DataFrame) -> int:
        """Append rows (``table``'s columns) to staging table ``name``; return how many."""

    @abstractmethod
    def _stage_copy(self, table: Table, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run the copy statements of :meth:`Staging.publish` in order (``?`` placeholders); return once the rows
        are visible to :meth:`query`."""

    @abstractmethod
    def _stage_drop(self, sql: str) -> None:
        """Run a ``DROP TABLE IF EXISTS`` of a staging table."""

    @contextmanager
    def staging(self, table: str) -> Iterator[Staging]:
        """A private staging table for rows of ``table``, to publish them at once after checking them all.

        Rows added with :meth:`Staging.add` go to a new table ``<table>_btlab_stage_<random>`` with the same
        columns; nothing of ``table`` changes until :meth:`Staging.publish`. Leaving the block without publishing
        (an error, Ctrl-C) drops the staging table. Memory does not grow with the rows staged: they live in the
        store. A process killed while staging leaves its staging table behind; it is never read (drop it with SQL).

        Raises:
            KeyError: unknown table.
            StoreUnavailableError: read-only store, or the server cannot be reached.
        """
        spec = TABLES[table]
        name = f"{spec.name}{STAGE_INFIX}{uuid.uuid4().hex[:12]}"
        self._stage_create(spec, name)
        stage = Staging(self, spec, name)
        try:
            yield stage
        except BaseException:
            with contextlib.suppress(Exception):  # the store may be gone: the first error is the one to report
                stage.discard()
            raise
        if not stage.published:
            stage.discard()

    def query_rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only query like :meth:`query`; return the rows as dicts in column order.

        Nulls are None, timestamps timezone-aware UTC :class:`datetime.datetime`, numbers plain ``int``/``float``.
        Backends may answer without pandas (the DuckDB backend does: it keeps ``btlab runs list`` fast).
        """
        return [_plain_row(row) for row in self.query(sql, params).to_dict("records")]
    @contextmanager
    def session(self) -> Iterator["Store"]:
        """Hold the backend's connection for a block of calls (one batch of writes), then release it.

        DuckDB opens a connection per call by default, so that other processes can read between writes; a session
        keeps one connection (and the file's lock) for the whole block instead, saving the reopening cost. Keep
        sessions short: other processes wait while one is open. Nested sessions share the outer one. Other
        backends hold their connection anyway: no effect.
        """
        yield self

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    # ---- helpers ---------------------------------------------------------------------------------------------
    def _select(self, table: str, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        import pandas as pd

        frame = self.query(sql, params)
        for col in TABLES[table].kinds("timestamp"):
            if col in frame.columns:
                frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
        return frame

    def write_run(self, run: Mapping[str, Any]) -> None:
        """Upsert one ``bt_runs`` row (start it with status ``running``; write it again to finish it).

        ``ts`` (the run's start time) must stay the same across writes of the same ``run_id``. Dict values of
        ``params``/``metrics``/``config`` are stored as JSON text.
        """
        import pandas as pd

        self.upsert("bt_runs", pd.DataFrame([_json_columns(run, ("params", "metrics", "config"))]))

    def write_equity(self, frame: pd.DataFrame) -> int:
        """Upsert equity points: ``ts, run_id, value, cash, drawdown, position_value``."""
        return self.upsert("bt_equity", frame)

    def write_trades(self, frame: pd.DataFrame) -> int:
        """Upsert closed trades (``bt_trades`` columns; ``ts`` is the exit time)."""
        return self.upsert("bt_trades", frame)

    def write_orders(self, frame: pd.DataFrame) -> int:
        """Upsert order events (``bt_orders`` columns)."""
        return self.upsert("bt_orders", frame)

    def write_states(self, frame: pd.DataFrame) -> int:
        """Upsert state changes: ``ts, run_id, machine, from_state, to_state`` (``bt_states``, see
        :data:`btlab.store.schema.BT_STATES`; ``ts`` = close time of the deciding bar, UTC)."""
        return self.upsert("bt_states", frame)

    def read_states(self, run_id: str) -> pd.DataFrame:
        """The state changes of a run, sorted by ``ts`` then ``machine``: ``ts`` (UTC), ``machine, from_state,
        to_state`` (empty, with these columns, for a run without state machines)."""
        return self._select(
            "bt_states", "SELECT ts, machine, from_state, to_state FROM bt_states WHERE run_id = ? ORDER BY ts, machine",
            [run_id],
        )

    def write_health(self, frame: pd.DataFrame) -> int:
        """Upsert pipeline figures: ``ts, service, metric, subject, value`` (``bt_health``, see
        :data:`btlab.store.schema.BT_HEALTH`; written by :class:`btlab.store.health.HealthWriter`)."""
        return self.upsert("bt_health", frame)

    def read_health(self, *, service: str, metric: str | None = None, start: TimeLike = None,
                    end: TimeLike = None) -> pd.DataFrame:
        """One service's ``bt_health`` rows (optionally one metric, ``start <= ts < end``), sorted by ``ts``,
        metric, subject: ``ts`` (UTC), ``service, metric, subject, value``."""
        equals = {"service": service} if metric is None else {"service": service, "metric": metric}
        where, params = RowFilter("bt_health", equals, start, end).where()
        return self._select("bt_health", f"SELECT * FROM bt_health WHERE {where} ORDER BY ts, metric, subject",
                            params)

    def list_runs(self, *, limit: int = 50, strategy: str | None = None) -> pd.DataFrame:
        """Most recent runs first: the ``bt_runs`` rows (``limit`` at most, >= 1), optionally of one strategy.

        Raises:
            InvalidArgumentError: ``limit`` < 1.
        """
        sql, params = "SELECT * FROM bt_runs", []
        if strategy:
            sql += " WHERE strategy = ?"
            params.append(strategy)
        sql += " ORDER BY ts DESC LIMIT ?"
        params.append(_check_limit(limit))
        return self._select("bt_runs", sql, params)

    def run_rows(self, *, limit: int | None = 50, strategy: str | None = None,
                 status: str | None = None) -> list[dict[str, Any]]:
        """Like :meth:`list_runs`, as :meth:`query_rows` dicts (``params``/``config``/``metrics`` stay JSON text).

        Args:
            limit: at most this many runs, newest first (>= 1; None: all).
            strategy, status: only runs of this strategy reference / with this stored status.

        Raises:
            InvalidArgumentError: ``limit`` < 1.
        """
        sql, params = "SELECT * FROM bt_runs", []
        where = [(col, value) for col, value in (("strategy", strategy), ("status", status)) if value]
        if where:
            sql += " WHERE " + " AND ".join(f"{col} = ?" for col, _ in where)
            params.extend(value for _, value in where)
        sql += " ORDER BY ts DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(_check_limit(limit))
        return self.query_rows(sql, params)

    def run_row(self, run_id: str) -> dict[str, Any]:
        """The ``bt_runs`` row of ``run_id`` as a :meth:`query_rows` dict (JSON columns as text).

        Raises:
            RunNotFoundError: no such run.
        """
        rows = self.query_rows("SELECT * FROM bt_runs WHERE run_id = ?", [run_id])
        if not rows:
            raise RunNotFoundError(f"no run {run_id!r} in the store at {self.address} (see: btlab runs list)")
        return rows[0]

    def run_strategies(self) -> dict[str, int]:
        """Number of recorded runs per strategy reference, by name."""
        rows = self.query_rows("SELECT strategy, count(*) AS runs FROM bt_runs GROUP BY strategy ORDER BY strategy")
        return {str(r["strategy"]): int(r["runs"]) for r in rows}

    def find_run_ids(self, ref: str, *, min_part: int = 6) -> list[str]:
        """Run ids equal to ``ref``, else starting or ending with it (a short id such as the last 8 hex digits).

        Args:
            ref: a run id or a part of one.
            min_part: shortest ``ref`` matched as a prefix or suffix.

        Returns: the matching run ids, sorted; ``[ref]`` if it is a run id; empty if nothing matches.
        """
        text = str(ref).strip()
        if not text:
            return []
        if len(text) < min_part or not all(c.isalnum() or c in "-_" for c in text):
            rows = self.query_rows("SELECT run_id FROM bt_runs WHERE run_id = ?", [text])
            return [str(r["run_id"]) for r in rows]
        if self.query_rows("SELECT run_id FROM bt_runs WHERE run_id = ?", [text]):
            return [text]
        # prefixes and suffixes are matched here rather than with LIKE: QuestDB documents LIKE with a literal
        # pattern only, and SQL is never built from user input (one column of the runs table is read)
        rows = self.query_rows("SELECT run_id FROM bt_runs ORDER BY run_id")
        return [i for i in (str(r["run_id"]) for r in rows) if i.startswith(text) or i.endswith(text)]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The ``bt_runs`` row of ``run_id`` as a dict, with ``params``/``metrics``/``config`` parsed from JSON.

        Raises:
            RunNotFoundError: no such run.
        """
        frame = self._select("bt_runs", "SELECT * FROM bt_runs WHERE run_id = ?", [run_id])
        if frame.empty:
            raise RunNotFoundError(f"no run {run_id!r} in the store at {self.address} (see: btlab runs list)")
        row = {k: (None if _isnull(v) else v) for k, v in frame.iloc[0].to_dict().items()}
        for key in ("params", "metrics", "config"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        return row

    def write_runs(self, runs: Sequence[Mapping[str, Any]]) -> int:
        """Upsert many ``bt_runs`` rows in one write (a sweep's finished batch); returns how many.

        Each row as for :meth:`write_run` (dict/list values of ``params``/``metrics``/``config`` stored as JSON).
        """
        if not runs:
            return 0
        import pandas as pd

        rows = [_json_columns(r, ("params", "metrics", "config")) for r in runs]
        return self.upsert("bt_runs", pd.DataFrame(rows))

    # ---- sweeps (bt_sweeps; their runs are bt_runs rows with the sweep_id) --------------------------------------
    def write_sweep(self, row: Mapping[str, Any]) -> None:
        """Upsert one ``bt_sweeps`` row (a full replacement of the sweep's row; see
        :data:`btlab.store.schema.BT_SWEEPS`).

        ``ts`` (the sweep's start, UTC) must stay the same across writes of the same ``sweep_id``. Dict/list values
        of ``grid``/``params``/``config`` are stored as JSON text.
        """
        import pandas as pd

        self.upsert("bt_sweeps", pd.DataFrame([_json_columns(row, ("grid", "params", "config"))]))

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """The ``bt_sweeps`` row of ``sweep_id`` as a dict: ``grid``/``params``/``config`` parsed from JSON, nulls
        None, timestamps UTC :class:`pandas.Timestamp`, counts ``int``.

        Raises:
            RunNotFoundError: no such sweep (naming the id).
        """
        frame = self._select("bt_sweeps", "SELECT * FROM bt_sweeps WHERE sweep_id = ?", [sweep_id])
        if frame.empty:
            raise RunNotFoundError(f"no sweep {sweep_id!r} in the store at {self.address} (see: btlab sweep list)")
        row = {k: (None if _isnull(v) else v) for k, v in frame.iloc[0].to_dict().items()}
        for key in ("grid", "params", "config"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        for key in ("total", "done", "failed"):
            if row.get(key) is not None:
                row[key] = int(row[key])
        return row

    def list_sweeps(self, *, limit: int = 50) -> pd.DataFrame:
        """Most recent sweeps first (by start ``ts``): the ``bt_sweeps`` rows, ``limit`` at most (>= 1); JSON
        columns stay text.

        Raises:
            InvalidArgumentError: ``limit`` < 1.
        """
        return self._select("bt_sweeps", "SELECT * FROM bt_sweeps ORDER BY ts DESC LIMIT ?", [_check_limit(limit)])

    def sweep_runs(self, sweep_id: str, *, status: str | None = None) -> pd.DataFrame:
        """The ``bt_runs`` rows of a sweep (every ``bt_runs`` column: ``run_id, ts, params`` JSON text, ``status,
        error``, the metric columns, ...), optionally only those with ``status``, sorted by ``run_id``.

        An unknown sweep gives an empty frame (with the columns); use :meth:`get_sweep` to check it exists.
        """
        equals = {"sweep_id": sweep_id} if status is None else {"sweep_id": sweep_id, "status": status}
        where, params = RowFilter("bt_runs", equals).where()
        return self._select("bt_runs", f"SELECT * FROM bt_runs WHERE {where} ORDER BY run_id", params)

    def finished_run_ids(self, sweep_id: str) -> set[str]:
        """The ``run_id`` of every run of the sweep whose stored status is ``finished`` (what a resume skips)."""
        where, params = RowFilter("bt_runs", {"sweep_id": sweep_id, "status": "finished"}).where()
        return {str(r["run_id"]) for r in self.query_rows(f"SELECT run_id FROM bt_runs WHERE {where}", params)}

    def read_equity(self, run_id: str) -> pd.DataFrame:
        """The equity curve of a run, sorted by ``ts``."""
        return self._select(
            "bt_equity",
            "SELECT ts, value, cash, drawdown, position_value FROM bt_equity WHERE run_id = ? ORDER BY ts",
            [run_id],
        )

    def read_trades(self, run_id: str) -> pd.DataFrame:
        """Closed trades of a run, sorted by exit time then ``trade_ref``."""
        return self._select(
            "bt_trades", "SELECT * FROM bt_trades WHERE run_id = ? ORDER BY ts, trade_ref", [run_id]
        ).drop(columns=["run_id"])

    def read_orders(self, run_id: str) -> pd.DataFrame:
        """Order events of a run, sorted by time then ``order_ref``."""
        return self._select(
            "bt_orders", "SELECT * FROM bt_orders WHERE run_id = ? ORDER BY ts, order_ref", [run_id]
        ).drop(columns=["run_id"])

    def run_row_counts(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """How many rows each run has in every table that holds runs (``bt_runs`` and those with a ``run_id``).

        Returns: one row per run id that exists, in the order given: ``run_id`` and one ``int64`` column per table.

        Raises:
            RunNotFoundError: a run id is not in the store (naming every missing one).
        """
        import pandas as pd

        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return pd.DataFrame({"run_id": pd.Series([], dtype=object)})
        where, params = RowFilter("bt_runs", {"run_id": ids}).where()
        found = set(self.query(f"SELECT run_id FROM bt_runs WHERE {where}", params)["run_id"])
        missing = [r for r in ids if r not in found]
        if missing:
            raise RunNotFoundError(
                f"no run {', '.join(map(repr, missing))} in the store at {self.address} (see: btlab runs list)"
            )
        out = pd.DataFrame({"run_id": ids})
        for table in RUN_TABLES:
            where, params = RowFilter(table, {"run_id": ids}).where()
            counts = self.query(f"SELECT run_id, count(*) AS n FROM {table} WHERE {where} GROUP BY run_id", params)
            by_id = dict(zip(counts["run_id"], counts["n"])) if len(counts) else {}
            out[table] = [int(by_id.get(r, 0)) for r in ids]
        return out

    def delete_runs(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Delete runs: their ``bt_runs`` rows and their rows in every other table with a ``run_id`` (equity,
        trades, orders, ...).

        Every id is checked first: if one is unknown nothing is deleted. The run rows go last, so a delete cut
        short (e.g. a server gone away) leaves the runs listed and can simply be repeated.

        Returns: rows deleted per table.

        Raises:
            RunNotFoundError: a run id is not in the store (nothing was deleted).
        """
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        self.run_row_counts(ids)  # raises for unknown ids before anything is deleted
        tables = [t for t in RUN_TABLES if t != "bt_runs"] + ["bt_runs"]
        counts = self.delete_rows([RowFilter(t, {"run_id": ids}) for t in tables])
        return dict(zip(tables, counts))


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgumentError(f"limit must be a whole number >= 1, got {limit!r}")
    return limit


def utc_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with naive datetimes (the stores' UTC timestamps) made timezone-aware UTC, in place."""
    for key, value in row.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            row[key] = value.replace(tzinfo=timezone.utc)
    return row


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    out: dict[str, Any] = {}
    for key, value in row.items():
        if _isnull(value):
            value = None
        elif isinstance(value, pd.Timestamp):
            value = (value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")).to_pydatetime()
        elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()  # numpy scalar
        out[str(key)] = value
    return utc_row(out)


def _json_columns(row: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """A copy of ``row`` with the dict/list values of ``keys`` as canonical JSON text (sorted keys)."""
    out = dict(row)
    for key in keys:
        if isinstance(out.get(key), (dict, list)):
            out[key] = json.dumps(out[key], sort_keys=True, default=_json_default)
    return out


def _isnull(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _json_default(value: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    return str(value)
