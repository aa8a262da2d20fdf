"""Every query of btlab.store.grafana_sql is used by a generated Grafana file (no dead SQL), and its functions refuse
identifiers that are not btlab's.

"Used" means: each public string constant of the module (a whole statement or a fragment such as RUN_COLUMNS)
occurs in the raw SQL of some panel target, query variable or alert rule of the generated files; each public
function is called while the dashboards and alert rules are generated, and every text it returned there is such
SQL. Whitespace is compared collapsed, as the dashboard builders collapse it.
"""

from __future__ import annotations

import inspect

import pytest
from panel_sql import statements

from btlab.dashboards import render
from btlab.store import grafana_sql


def _collapse(sql: str) -> str:
    return " ".join(sql.split())


def _public_strings() -> dict[str, str]:
    return {name: value for name, value in vars(grafana_sql).items()
            if not name.startswith("_") and isinstance(value, str) and name.isupper()}


def _public_functions() -> dict[str, object]:
    return {name: fn for name, fn in vars(grafana_sql).items()
            if not name.startswith("_") and inspect.isfunction(fn) and fn.__module__ == grafana_sql.__name__}


def _generated_sql() -> list[str]:
    return [_collapse(s.sql) for s in statements()]


def test_every_query_constant_is_in_a_generated_file():
    constants = _public_strings()
    assert len(constants) >= 40, sorted(constants)  # the boards' and alert rules' statements and fragments
    generated = _generated_sql()
    unused = [name for name, sql in constants.items() if not any(_collapse(sql) in g for g in generated)]
    assert not unused, f"SQL in btlab.store.grafana_sql that no dashboard or alert rule uses: {unused}"


def test_every_query_function_is_called_by_a_board(monkeypatch):
    """Each public function is called while the files are generated, and what it returned is a board's SQL."""
    functions = _public_functions()
    assert set(functions) == {"run_stat", "health_metric_series", "sweep_param_names"}
    returned: dict[str, list[str]] = {name: [] for name in functions}
    for name, fn in functions.items():
        def record(*args, _name=name, _fn=fn, **kwargs):
            out = _fn(*args, **kwargs)
            returned[_name].append(out)
            return out
        monkeypatch.setattr(grafana_sql, name, record)
    render()
    assert all(returned.values()), f"never called by a dashboard: {[n for n, v in returned.items() if not v]}"
    monkeypatch.undo()
    generated = set(_generated_sql())
    for name, texts in returned.items():
        assert all(_collapse(t) in generated for t in texts), name


def test_the_dead_sql_check_can_fail(monkeypatch):
    """A constant no board uses is reported."""
    monkeypatch.setattr(grafana_sql, "UNUSED_PANEL", "SELECT ts FROM ohlcv WHERE symbol = '$symbol'", raising=False)
    generated = _generated_sql()
    unused = [n for n, sql in _public_strings().items() if not any(_collapse(sql) in g for g in generated)]
    assert unused == ["UNUSED_PANEL"]


def test_query_functions_refuse_names_that_are_not_btlabs():
    assert grafana_sql.run_stat("sharpe") == "SELECT sharpe FROM bt_runs WHERE run_id = '$run_id'"
    with pytest.raises(ValueError, match="not a column of bt_runs"):
        grafana_sql.run_stat("sharpe; DROP TABLE bt_runs")
    with pytest.raises(ValueError, match="not a bt_health metric"):
        grafana_sql.health_metric_series("no_such_metric", "sum")
    with pytest.raises(ValueError, match="is not one of"):
        grafana_sql.health_metric_series("late_trades", "sum(value)); DROP TABLE bt_health; --")


def test_timeframe_lengths_come_from_the_model():
    """The SQL CASE of bar lengths agrees with btlab.model.timeframe.Timeframe for every timeframe it lists."""
    from btlab.model.timeframe import Timeframe

    case = grafana_sql._timeframe_seconds("timeframe")
    assert case.startswith("CASE timeframe WHEN '1s' THEN 1 ") and case.endswith(" END")
    for tf in ("1m", "5m", "1h", "4h", "1d", "1w"):
        assert f"WHEN '{tf}' THEN {Timeframe.parse(tf).seconds} " in case + " "
    assert "WHEN '1w' THEN 604800" in case
