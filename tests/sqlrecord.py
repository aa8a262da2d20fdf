"""Records every SQL statement btlab sends through ``Store.query``/``query_rows`` during the test session.

``tests/store/test_questdb_sql.py`` parses all of them (with the ``?`` placeholders bound to literals of the values that
were really bound) with QuestDB's own SQL parser: the shared :class:`~btlab.store.base.Store` SQL runs unchanged
on QuestDB (placeholders translated to ``%s``), so every statement the suite exercises on DuckDB must be QuestDB
SQL too. The store is real; the recorder only looks at what passes through.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: ``{(sql, literal kinds of its parameters): bound example}`` of every statement seen so far.
STATEMENTS: dict[tuple[str, tuple[str, ...]], str] = {}


def literal(value: Any) -> tuple[str, str]:
    """``(kind, QuestDB SQL literal)`` for one bound parameter value."""
    if value is None:
        return "null", "null"
    if isinstance(value, (bool, np.bool_)):
        return "bool", "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return "int", str(int(value))
    if isinstance(value, (float, np.floating)):
        return ("float", "null") if not math.isfinite(float(value)) else ("float", repr(float(value)))
    if isinstance(value, (pd.Timestamp, _dt.datetime)):
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return "timestamp", "'" + ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"
    text = str(value)
    return "text", "'" + text.replace("'", "''") + "'"


def bind(sql: str, params: Sequence[Any]) -> str:
    """``sql`` with each ``?`` outside quotes replaced by the literal of the matching parameter."""
    values = iter(params)
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            quote = None if ch == quote else quote
            out.append(ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append(literal(next(values))[1])
        else:
            out.append(ch)
    return "".join(out)


def record(sql: str, params: Sequence[Any] = ()) -> None:
    """Remember one executed statement (first example per statement text and parameter kinds)."""
    params = list(params)
    key = (" ".join(sql.split()), tuple(literal(p)[0] for p in params))
    if key not in STATEMENTS:
        try:
            STATEMENTS[key] = bind(sql, params)
        except StopIteration:  # fewer parameters than placeholders: the driver rejects it anyway
            STATEMENTS[key] = sql


def install() -> None:
    """Wrap ``query``/``query_rows`` of the real store backends so that every statement is recorded, then run."""
    from btlab.store.duckdb import DuckDBStore
    from btlab.store.questdb import QuestDBStore

    for cls in (DuckDBStore, QuestDBStore):
        for name in ("query", "query_rows"):  # every read entry point of the Store API
            original = cls.__dict__.get(name)
            if original is None or getattr(original, "_btlab_recorded", False):
                continue

            def wrapper(self, sql, params=(), _original=original):  # type: ignore[no-untyped-def]
                record(sql, params)
                return _original(self, sql, params)

            wrapper._btlab_recorded = True  # type: ignore[attr-defined]
            setattr(cls, name, wrapper)
