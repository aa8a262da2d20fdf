"""Every panel's, variable's and alert rule's SQL, expanded as Grafana and the QuestDB plugin expand it, is QuestDB
SQL: parsed by QuestDB's own parser (@questdb/sql-parser), its functions in the parser's grammar list, its tables
and columns those of btlab's schema (plus bt_health). No QuestDB server needed (test_panel_sql_questdb.py runs them).
"""

from __future__ import annotations

import datetime as dt

import pytest
from grafana_sql import (
    ALL,
    backend_macros,
    conditional_all,
    sample_by_interval,
    template,
)
from panel_sql import analyse, expansions, problems, statements

UTC = dt.timezone.utc


def test_macros_expand_as_the_plugin_documents():
    """Outputs from the plugin's README table and macros.go."""
    start = dt.datetime.fromtimestamp(1706263425.598, UTC)
    end = dt.datetime.fromtimestamp(1706285057.560, UTC)
    assert backend_macros("WHERE $__timeFilter(timestamp)", start, end, dt.timedelta(seconds=20)) == (
        "WHERE timestamp >= cast(1706263425598000 as timestamp) AND timestamp <= cast(1706285057560000 as timestamp)")
    assert backend_macros("$__fromTime $__toTime", start, end, dt.timedelta(seconds=1)) == (
        "cast(1706263425598000 as timestamp) cast(1706285057560000 as timestamp)")
    assert [sample_by_interval(dt.timedelta(**kw)) for kw in
            ({"seconds": 20}, {"milliseconds": 1}, {"microseconds": 10}, {"hours": 5}, {"days": 1}, {"hours": 36},
             {"hours": 48})] == ["20s", "1T", "1T", "5h", "1d", "1d", "2d"]  # 36 h: whole days, as macros.go
    assert conditional_all("WHERE $__conditionalAll(s IN ($s), $s)", {"s": ALL}) == "WHERE 1=1"
    assert conditional_all("WHERE $__conditionalAll(s IN ($s), $s)", {"s": ["a"]}) == "WHERE s IN ($s)"
    assert template("s IN ($s) AND r = '${r}'", {"s": ["a", "b"], "r": "x"}) == "s IN ('a','b') AND r = 'x'"
    with pytest.raises(KeyError):
        template("r = '$nope'", {})


def test_the_checks_catch_typos():
    """The check can fail: a misspelt column, function or table and broken SQL are each reported."""
    reports = analyse([
        "SELECT ts, closee FROM ohlcv",
        "SELECT lastt(close) FROM ohlcv SAMPLE BY 1h",
        "SELECT ts FROM bt_run",
        "SELECT ts FROM ohlcv WHERE",
        "SELECT ts AS time, last(close) AS c FROM ohlcv SAMPLE BY 1h ORDER BY time",
    ])
    found = [problems(r) for r in reports]
    assert found[0] == ["unknown column: closee"]
    assert found[1] == ["function not in QuestDB's grammar: lastt"]
    assert found[2][0] == "unknown table: bt_run"
    assert found[3] and found[3][0].startswith("parse:")
    assert found[4] == []


def test_every_generated_statement_is_questdb_sql_on_btlabs_schema():
    stmts = statements()
    kinds = {s.kind for s in stmts}
    assert kinds == {"panel", "variable", "alert"} and len(stmts) >= 40, (kinds, len(stmts))
    cases = [(s, case, sql) for s in stmts for case, sql in expansions(s)]
    reports = analyse([sql for _, _, sql in cases])
    bad = [f"{s.where} [{case}]\n    {sql}\n    " + "; ".join(problems(r))
           for (s, case, sql), r in zip(cases, reports) if problems(r)]
    assert not bad, f"{len(bad)} of {len(cases)} statements are not QuestDB SQL on btlab's schema:\n" + "\n".join(bad)


def test_values_reach_the_sql_only_through_variables():
    """No panel or variable SQL holds a literal run id, instrument or exchange: they come from variables."""
    for s in statements():
        if s.kind == "alert":
            assert "$" not in s.sql.replace("$__timeFilter", ""), f"{s.where}: alert SQL cannot use variables"
            continue
        for literal in ("'BTC/USDT'", "'binance'", "'sma_cross'", "'finished'"):
            assert literal not in s.sql, f"{s.where} hard-codes {literal}"


def test_expand_leaves_no_placeholder():
    for s in statements():
        for _, sql in expansions(s):
            assert "$" not in sql, (s.where, sql)


def test_time_series_targets_select_a_time_column_first():
    """The plugin builds time series from a timestamp field named ``time``; tables and stats take any columns."""
    for s in statements():
        if s.kind == "panel" and s.fmt == 0:
            assert s.sql.startswith("SELECT ts AS time,") or s.sql.startswith("SELECT entry_ts AS time,"), s.where
