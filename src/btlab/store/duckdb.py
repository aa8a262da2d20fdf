"""Embedded backend: one DuckDB file (the default store; no server needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from btlab.errors import StoreUnavailableError
from btlab.store.base import Store, conform, utc_row
from btlab.store.schema import TABLES, Table

if TYPE_CHECKING:
    import pandas as pd

_TYPES = {"timestamp": "TIMESTAMP", "symbol": "VARCHAR", "string": "VARCHAR", "double": "DOUBLE", "long": "BIGINT"}


def table_ddl(table: Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for DuckDB; the natural key is the primary key (timestamps are UTC, naive)."""
    cols = ", ".join(f"{c.name} {_TYPES[c.kind]}" for c in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({cols}, PRIMARY KEY ({', '.join(table.key)}))"


class DuckDBStore(Store):
    """A :class:`~btlab.store.base.Store` in a local DuckDB file (or ``:memory:``).

    Upserts are ``INSERT OR REPLACE`` on the primary key inside one transaction per batch, so a failed batch
    leaves nothing behind; of rows with the same key in one batch the last one is kept. DuckDB allows one
    writing process per file: a second process gets :class:`~btlab.errors.StoreUnavailableError` naming the file.

    Args:
        path: database file (parent folders are created) or ``":memory:"``.

    Raises:
        StoreUnavailableError: the file cannot be opened (locked by another process, not a DuckDB file, no access).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.address = self.path
        try:
            if self.path != ":memory:":
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                self.path = str(Path(self.path).expanduser())
            self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(self.path)
            self._con.execute("SET TimeZone = 'UTC'")
        except (duckdb.Error, OSError) as exc:
            raise StoreUnavailableError(self.address, str(exc).splitlines()[0]) from None
        self.ensure_schema()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError(f"store {self.address} is closed")
        return self._con

    def ensure_schema(self) -> None:
        for table in TABLES.values():
            self.con.execute(table_ddl(table))
            have = {r[0] for r in self.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table.name]
            ).fetchall()}
            for col in table.columns:
                if col.name not in have:  # additive migration
                    self.con.execute(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {_TYPES[col.kind]}")

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        spec = TABLES[table]
        if frame.empty:
            return 0
        # within one batch the last row of a key wins, as in QuestDB (INSERT OR REPLACE would keep the first)
        batch = conform(spec, frame).drop_duplicates(subset=list(spec.key), keep="last").reset_index(drop=True)
        for col in spec.kinds("timestamp"):
            batch[col] = batch[col].dt.tz_localize(None)
        cols = ", ".join(spec.column_names)
        con = self.con
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
        return self.con.execute(sql, list(params)).df()

    def query_rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts straight from DuckDB (no pandas); timestamps timezone-aware UTC, nulls None."""
        cursor = self.con.execute(sql, list(params))
        names = [d[0] for d in cursor.description or ()]
        return [utc_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
