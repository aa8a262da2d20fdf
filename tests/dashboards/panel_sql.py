"""Every SQL statement of the generated Grafana files, expanded as Grafana would, and checks of it.

Shared by test_panel_sql.py (QuestDB's parser, no server) and test_panel_sql_questdb.py (a real QuestDB).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from grafana_sql import ALL, expand

from btlab.dashboards import REGISTRY, alert_rules_file, dashboard_json
from btlab.store.schema import TABLES

HERE = Path(__file__).resolve().parent
PARSER_DIR = HERE.parent / "store" / "questdb_sql"

#: btlab's tables and their columns, bt_health included (what the SQL may name).
SCHEMA: dict[str, set[str]] = {name: set(t.column_names) for name, t in TABLES.items()}

#: Values for the dashboards' variables: a multi-valued variable (as its dashboard defines it) gets them all, a
#: single-valued one the first; ``ALL`` cases are added per statement.
SAMPLE_VALUES: dict[str, list[str]] = {
    "run_id": ["3f2a9c1e5b7d40aa8e11c0d2b4f6a8e0"], "exchange": ["binance", "kraken"], "symbol": ["BTC/USDT"],
    "timeframe": ["1h"], "strategy": ["sma_cross", "buy_hold"], "status": ["finished", "failed"],
    "symbols": ["BTC/USDT", "ETH/USDT,BTC/USDT"], "service": ["ingest-live"],
    "compare": ["3f2a9c1e5b7d40aa8e11c0d2b4f6a8e0", "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"],
    "sweep_id": ["sma-grid-2f9c1e"], "metric": ["sharpe"], "x": ["fast"], "y": ["slow"],
}
START = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2023, 3, 31, 23, 59, 59, 999000, tzinfo=dt.timezone.utc)
INTERVAL = dt.timedelta(hours=2)


@dataclass(frozen=True)
class Statement:
    """One SQL text of a generated file: where it is, its kind (panel/variable/alert) and its raw SQL."""

    where: str
    kind: str
    panel_type: str
    sql: str
    fmt: int
    multi: frozenset[str] = frozenset()

    def values(self, all_selected: bool = False) -> dict[str, Any]:
        """Variable values for this statement's dashboard (multi variables as lists, or ``ALL``)."""
        return {k: ((ALL if all_selected else v) if k in self.multi else v[0]) for k, v in SAMPLE_VALUES.items()}


def statements() -> list[Statement]:
    """Every panel target, query variable and alert rule query of the generated files."""
    out: list[Statement] = []
    for uid in REGISTRY:
        board = dashboard_json(uid)
        variables = board.get("templating", {}).get("list", [])
        multi = frozenset(v["name"] for v in variables if v.get("multi"))
        for var in variables:
            if var.get("type") == "query":
                out.append(Statement(f"{uid} variable {var['name']}", "variable", "variable", var["query"], 1,
                                     multi))
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                out.append(Statement(f"{uid} panel {panel['title']!r} target {target['refId']}", "panel",
                                     panel["type"], target["rawSql"], target["format"], multi))
    for group in alert_rules_file()["groups"]:
        for rule in group["rules"]:
            for query in rule["data"]:
                if query["datasourceUid"] != "__expr__":
                    out.append(Statement(f"alert {rule['uid']} query {query['refId']}", "alert", "alert",
                                         query["model"]["rawSql"], query["model"]["format"]))
    return out


def expansions(stmt: Statement) -> list[tuple[str, str]]:
    """``(case, expanded SQL)``: with the sample values, and with every multi variable at All when it matters."""
    cases = [("values", expand(stmt.sql, stmt.values(), start=START, end=END, interval=INTERVAL))]
    if "$__conditionalAll" in stmt.sql:
        cases.append(("All", expand(stmt.sql, stmt.values(all_selected=True), start=START, end=END,
                                    interval=INTERVAL, options=SAMPLE_VALUES)))
    return cases


def parser_missing() -> str | None:
    """Why QuestDB's parser cannot run here, or ``None``."""
    if shutil.which("node") is None:
        return "Node.js not found (needed for QuestDB's SQL parser)"
    if not (PARSER_DIR / "node_modules" / "@questdb" / "sql-parser").is_dir():
        return "@questdb/sql-parser not installed: run `npm ci --prefix tests/store/questdb_sql` (make test does)"
    return None


def analyse(sqls: list[str]) -> list[dict[str, Any]]:
    """QuestDB's parser on each statement: errors, functions (and those not in its grammar), tables, columns."""
    reason = parser_missing()
    if reason:
        if os.environ.get("BTLAB_REQUIRE_SQLPARSER"):
            pytest.fail(f"BTLAB_REQUIRE_SQLPARSER is set but {reason}")
        pytest.skip(reason)
    done = subprocess.run(["node", str(HERE / "check_sql.mjs"), str(PARSER_DIR)], input=json.dumps(sqls),
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def problems(report: dict[str, Any]) -> list[str]:
    """What is wrong with one analysed statement: parse errors, unknown functions, tables or columns."""
    found = [f"parse: {e}" for e in report["errors"]]
    found += [f"function not in QuestDB's grammar: {f}" for f in report["unknown_functions"]]
    aliases = set(report["aliases"])
    tables = [t for t in report["tables"] if t not in aliases]
    found += [f"unknown table: {t}" for t in tables if t not in SCHEMA]
    known = set().union(*(SCHEMA.get(t, set()) for t in tables)) | aliases
    found += [f"unknown column: {c}" for c in report["columns"] if c.split(".")[-1] not in known]
    return found
