"""QuestDB's SQL dialect as btlab writes it: DDL, the statements of deletes and WAL checks, ``?`` -> ``%s``
placeholder translation, and the frame the ILP client sends (:func:`ilp_frame`).

Every statement here is listed by :func:`questdb_only_statements`, which ``tests/store/test_questdb_sql.py`` parses with
QuestDB's own SQL parser. Identifiers come from :data:`btlab.store.schema.TABLES` only (checked by
:func:`_check_name`); values are always bound parameters, except in :func:`export_bars_sql` (see there).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from btlab.store.base import RUN_TABLES, STAGE_INFIX, RowFilter, conform, staging_statements
from btlab.store.schema import TABLES, Table

#: QuestDB column type of each :data:`btlab.store.schema.ColumnKind`.
QUESTDB_TYPES = {"timestamp": "TIMESTAMP", "symbol": "SYMBOL", "string": "VARCHAR", "double": "DOUBLE", "long": "LONG"}
#: Suffix of the temporary copy a delete builds (see :meth:`QuestDBStore.delete_rows`).
KEEP_SUFFIX = "_btlab_keep"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Values :func:`export_bars_sql` writes into a query: no quote, backslash or control character can occur, so a
#: value can never end its string literal (exchange ids, unified symbols such as ``BTC/USDT:USDT``, timeframes).
_LITERAL_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/:._@+\- ]{0,99}$")
#: The columns a bar read selects, in order.
BAR_SELECT = "SELECT ts, open, high, low, close, volume, trades, vwap FROM ohlcv"


def table_ddl(table: Table, name: str | None = None) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for QuestDB: designated timestamp ``ts``, partitioned, WAL, deduplicated.

    The dedup keys are ``ts`` followed by the table's other key columns (QuestDB requires the designated
    timestamp among them; for ``bt_runs``, keyed by ``run_id``, that is ``(ts, run_id)`` -- a run keeps its ``ts``).
    ``name`` creates the same table under another name (default: the table's own).
    """
    name = name or table.name
    _check_name(name)
    cols = ", ".join(f"{_ident(c.name)} {QUESTDB_TYPES[c.kind]}" for c in table.columns)
    keys = ", ".join(_ident(k) for k in dedup_keys(table))
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({cols}) TIMESTAMP({_ident('ts')}) "
        f"PARTITION BY {table.partition_by} WAL DEDUP UPSERT KEYS({keys})"
    )


def add_column_ddl(table: Table, column: str) -> str:
    """``ALTER TABLE .. ADD COLUMN`` for one column of ``table`` (the additive migration of :meth:`ensure_schema`)."""
    _check_name(table.name)
    kind = next(c.kind for c in table.columns if c.name == column)
    return f"ALTER TABLE {table.name} ADD COLUMN {_ident(column)} {QUESTDB_TYPES[kind]}"


def dedup_ddl(table: Table) -> str:
    """``ALTER TABLE .. DEDUP ENABLE UPSERT KEYS(..)`` with :func:`dedup_keys` of ``table``."""
    _check_name(table.name)
    return f"ALTER TABLE {table.name} DEDUP ENABLE UPSERT KEYS({', '.join(_ident(k) for k in dedup_keys(table))})"


def table_columns_sql(table: Table) -> str:
    """The ``table_columns()`` query describing ``table`` (its name is checked, so it may be inlined)."""
    _check_name(table.name)
    return f"SELECT * FROM table_columns('{table.name}')"


#: WAL state of every table (``wal_tables()``): applied (writerTxn) versus committed (sequencerTxn) transactions.
WAL_TABLES_SQL = "SELECT name, suspended, writerTxn, sequencerTxn FROM wal_tables()"


def questdb_only_statements() -> list[str]:
    """Every statement the QuestDB backend sends besides the shared :class:`~btlab.store.base.Store` SQL.

    Used by ``tests/store/test_questdb_sql.py``, which parses them with QuestDB's own SQL parser.
    """
    out = [WAL_TABLES_SQL, WAL_TABLES_SQL + " WHERE name = ?"]
    for table in TABLES.values():
        out += [table_ddl(table), dedup_ddl(table), table_columns_sql(table)]
        out += [add_column_ddl(table, c.name) for c in table.columns if c.name != "ts"]
    samples = {"ohlcv": RowFilter("ohlcv", {"exchange": "x", "symbol": "y", "timeframe": "1h"}, "2024-01-01",
                                  "2024-02-01")}
    samples.update({name: RowFilter(name, {"run_id": ["a", "b"]}) for name in RUN_TABLES})
    for name, row_filter in samples.items():
        out += list(delete_statements(TABLES[name], row_filter.where()[0]).values())
    out.append(export_bars_sql("binance", "BTC/USDT:USDT", "1m", pd.Timestamp("2024-01-01"),
                               pd.Timestamp("2024-02-01 00:00:00.000001")))
    out.append(export_bars_sql("cryptocompare:kraken", "ETH/USD", "1h", None, None))
    stage = f"ohlcv{STAGE_INFIX}0123456789ab"
    out += [table_ddl(TABLES["ohlcv"], name=stage), *staging_statements(TABLES["ohlcv"], stage, "INSERT").values()]
    return out


def delete_statements(table: Table, where: str) -> dict[str, str]:
    """The statements :meth:`QuestDBStore.delete_rows` sends for one table (``?`` placeholders; ``where`` is
    built by :meth:`btlab.store.base.RowFilter.where` from schema identifiers only).

    Keys: ``count`` (rows selected), ``count_all``, ``drop_keep`` (a leftover copy), ``create_keep`` (the copy,
    same DDL), ``copy`` (``INSERT INTO`` the copy every row not selected), ``count_keep``, ``drop`` (the table),
    ``rename`` (the copy to the table's name).
    """
    _check_name(table.name)
    keep = table.name + KEEP_SUFFIX
    cols = ", ".join(_ident(c.name) for c in table.columns)
    return {
        "count": f"SELECT count(*) AS n FROM {table.name} WHERE {where}",
        "count_all": f"SELECT count(*) AS n FROM {table.name}",
        "drop_keep": f"DROP TABLE IF EXISTS {keep}",
        "create_keep": table_ddl(table, name=keep),
        "copy": f"INSERT INTO {keep} ({cols}) SELECT {cols} FROM {table.name} WHERE NOT ({where})",
        "count_keep": f"SELECT count(*) AS n FROM {keep}",
        "drop": f"DROP TABLE {table.name}",
        "rename": f"RENAME TABLE {keep} TO {table.name}",
    }


def dedup_keys(table: Table) -> tuple[str, ...]:
    """The QuestDB ``UPSERT KEYS`` of ``table``: ``ts`` first, then its other natural-key columns."""
    return ("ts", *(k for k in table.key if k != "ts"))


def to_pyformat(sql: str) -> str:
    """Translate ``?`` placeholders to psycopg's ``%s`` (and escape literal ``%`` as ``%%``).

    ``?`` inside single-quoted literals or double-quoted identifiers is left alone.
    """
    out: list[str] = []
    quote_char: str | None = None
    for ch in sql:
        if quote_char is not None:
            if ch == quote_char:
                quote_char = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote_char = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def _ident(name: str) -> str:
    _check_name(name)
    return f'"{name}"'  # quoted: some column names (e.g. ``type``) are QuestDB keywords


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"invalid identifier {name!r}")


def ilp_frame(table: Table, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Prepare rows for :meth:`questdb.Sender.dataframe`: returns ``(frame, symbol_columns)``.

    The frame is :func:`btlab.store.base.conform`-ed and reduced to the last row of each key (QuestDB would keep
    the last one too; this makes the returned row count match DuckDB's), then sorted by ``ts``. Text columns
    hold ``str`` or ``None``. Columns that are null in every row are dropped: ILP has no null literal (an absent
    column is null) and the client does not accept an all-null object column as a SYMBOL column. Timestamps are
    ``datetime64[ns, UTC]`` (QuestDB keeps microseconds).

    Raises:
        ValueError: a key column (``ts`` included) holds a null -- QuestDB would otherwise stamp rows with the
            server time or store null keys, where DuckDB refuses the batch -- or a timestamp is before
            1970-01-01 UTC, which the client cannot send. Nothing is sent then.
    """
    batch = conform(table, frame)
    for key in table.key:
        if batch[key].isna().any():
            row = int(np.flatnonzero(batch[key].isna().to_numpy())[0]) + 1
            raise ValueError(f"table {table.name}: key column {key!r} is null in row {row}")
    epoch = pd.Timestamp(0, tz="UTC")
    for col in table.kinds("timestamp"):
        early = (batch[col] < epoch).to_numpy()
        if early.any():
            row = int(np.flatnonzero(early)[0])
            raise ValueError(
                f"table {table.name}: {col} {batch[col].iloc[row]} in row {row + 1} is before 1970-01-01 UTC"
            )
    text_cols = [c.name for c in table.columns if c.kind in ("symbol", "string")]
    for col in text_cols:
        values = batch[col]
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):  # C loop; str or None only
            batch[col] = values.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    ns = batch["ts"].array.asi8 if "ts" in table.key else None
    if ns is None or len(ns) < 2 or not (ns[1:] > ns[:-1]).all():  # strictly increasing ts: keys unique, sorted
        batch = batch.drop_duplicates(subset=list(table.key), keep="last")  # last of a key wins, in any backend
        batch = batch.sort_values("ts", kind="stable")
    keep = [c for c in batch.columns if c == "ts" or batch[c].notna().any()]
    batch = batch[keep].reset_index(drop=True)
    symbols = [c for c in table.kinds("symbol") if c in batch.columns]
    return batch, symbols


def export_bars_sql(exchange: str, symbol: str, timeframe: str, start: pd.Timestamp | None,
                    end: pd.Timestamp | None) -> str | None:
    """The bar read of :meth:`QuestDBStore.read_bars` as ONE query text for ``/exp`` (which has no bind variables):
    ``start <= ts < end`` (naive UTC or aware; either optional, compared as ISO timestamps with microseconds).

    Values go into string literals only when they match a strict pattern (letters, digits and ``/ : . _ @ + -``
    and space; no quote can occur); for anything else it returns None and the caller binds them over PG wire.
    """
    values = (exchange, symbol, timeframe)
    if not all(isinstance(v, str) and _LITERAL_SAFE.match(v) for v in values):
        return None
    sql = BAR_SELECT + " WHERE exchange = '{}' AND symbol = '{}' AND timeframe = '{}'".format(*values)
    for op, bound in ((">=", start), ("<", end)):
        if bound is not None:
            ts = pd.Timestamp(bound)
            ts = ts.tz_localize(None) if ts.tzinfo is None else ts.tz_convert("UTC").tz_localize(None)
            sql += f" AND ts {op} '{ts.ceil('us'):%Y-%m-%dT%H:%M:%S.%f}Z'"
    return sql + " ORDER BY ts"
