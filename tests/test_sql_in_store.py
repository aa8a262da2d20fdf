"""Every SQL statement lives in ``src/btlab/store/`` (ARCHITECTURE.md, README): no string constant of any other
module under ``src/btlab`` looks like SQL.

Every ``.py`` file outside ``store/`` is read with :mod:`ast`; each string constant -- plain, implicitly
concatenated, and each f-string (its literal parts joined, each ``{...}`` read as a name) -- is matched against
:data:`SQL_SHAPES`: statement shapes in upper-case keywords, btlab's convention for SQL (``SELECT``, ``INSERT INTO``,
``UPDATE t SET``, ``DELETE FROM``, ``CREATE/DROP/ALTER/TRUNCATE TABLE``, ``WITH x AS (``, QuestDB's ``SAMPLE BY`` and
``LATEST ON``, ``FROM``/``JOIN``/``INTO`` one of btlab's tables, ``WHERE col =``). Upper case keeps English text
("delete 3 runs from questdb?", an HTML ``<select>``) out of it.

Allowlist: docstrings only (the first statement of a module, class or function when it is a string). They explain
SQL to a reader (e.g. marketdata/quality/coverage.py shows the gap query it asks the store to run) and are never
executed. Nothing else is exempt.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from btlab.store.schema import TABLES

SRC = Path(__file__).resolve().parents[1] / "src" / "btlab"
STORE = SRC / "store"

_TABLES = "|".join(sorted(map(re.escape, TABLES), key=len, reverse=True))
#: What SQL looks like in btlab's code (upper-case keywords; see the module docstring).
SQL_SHAPES = re.compile("|".join([
    r"\bSELECT\b",
    r"\bINSERT\s+INTO\b",
    r"\bUPDATE\s+\w+\s+SET\b",
    r"\bDELETE\s+FROM\b",
    r"\b(?:CREATE|DROP|ALTER|TRUNCATE)\s+(?:TABLE|VIEW|INDEX|MATERIALIZED)\b",
    r"\bWITH\s+\w+\s+AS\s*\(",
    r"\bSAMPLE\s+BY\b",
    r"\bLATEST\s+ON\b",
    rf"\b(?:FROM|JOIN|INTO)\s+(?:{_TABLES})\b",
    r"\bWHERE\s+\w+\s*(?:=|<|>|\bIN\b|\bIS\b)",
]))


def _docstrings(tree: ast.AST) -> set[int]:
    """``id`` of every docstring node (first statement of a module, class or function, a string)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _texts(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, text)`` of every string constant and f-string of ``tree`` except docstrings."""
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            out.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)))
    return out


def sql_strings(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, first 80 characters)`` of the non-docstring strings of ``source`` that look like SQL, one per line
    (an f-string and its literal parts report once), by line."""
    tree = ast.parse(source, filename=filename)
    hits: dict[int, str] = {}
    for line, text in _texts(tree):
        if SQL_SHAPES.search(text) and len(text) > len(hits.get(line, "")):
            hits[line] = text
    return [(line, hits[line][:80]) for line in sorted(hits)]


def test_no_sql_outside_store():
    files = [p for p in sorted(SRC.rglob("*.py")) if STORE not in p.parents]
    assert len(files) > 50
    found = [f"{p.relative_to(SRC.parent)}:{line}: {text!r}" for p in files
             for line, text in sql_strings(p.read_text(encoding="utf-8"), str(p))]
    assert not found, "SQL outside src/btlab/store/ (move it there):\n" + "\n".join(found)


def test_the_scan_finds_the_sql_the_store_holds():
    """The same scan finds the statements of store/ (the dashboards' queries among them): the shapes match the SQL
    btlab really writes, for both backends."""
    found = {name: sql_strings((STORE / name).read_text(encoding="utf-8"))
             for name in ("base.py", "duckdb.py", "marketdata.py", "questdb_sql.py", "grafana_sql.py")}
    assert all(found.values()), [name for name, hits in found.items() if not hits]
    assert len(found["grafana_sql.py"]) >= 40


def test_the_scan_catches_sql_and_spares_docstrings_and_prose():
    source = '''
"""Module docstring: SELECT ts FROM ohlcv WHERE symbol = ? is how it reads."""
PANEL = "SELECT ts AS time, last(value) FROM bt_equity"
SPLIT = ("SELECT run_id "
         "FROM bt_runs")
WHERE = "exchange = '$exchange' AND ts > 0 LATEST ON ts PARTITION BY symbol"
FRAGMENT = "FROM ohlcv"
COND = "WHERE run_id = ?"


def lowercase_and_prose(table):
    """Docstring: DELETE FROM bt_runs WHERE run_id = ?."""
    sql = f"DELETE FROM {table} WHERE run_id = ?"
    message = f"delete 3 run(s) from {table}? select a timeframe from the list"
    html = '<select id="trades-size"></select>'
    return sql, message, html
'''
    assert [line for line, _ in sql_strings(source)] == [3, 4, 6, 7, 8, 13]
