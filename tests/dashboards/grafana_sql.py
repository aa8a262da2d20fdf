"""What Grafana and the QuestDB data source plugin turn a panel's SQL into, written from their documentation/code.

The order is the plugin's (questdb/grafana-questdb-datasource, src/data/QuestDbDatasource.ts and
pkg/macros/macros.go; README "Macros"):

1. front end: ``$__conditionalAll(condition, $var)`` -> ``condition``, or ``1=1`` when ``$var`` selects All;
2. front end: Grafana's template variables (``$var``, ``${var}``, ``${var:raw}``) and globals (``$__interval_ms``,
   ``$__from``, ``$__to``); the plugin formats a multi-valued variable as ``'a','b'`` and substitutes a single
   value as its raw text;
3. back end (sqlds): ``$__timeFilter(col)`` -> ``col >= cast(<from µs> as timestamp) AND col <= cast(<to µs> as
   timestamp)``, ``$__fromTime``/``$__toTime`` -> ``cast(<µs> as timestamp)``, ``$__sampleByInterval`` -> the
   interval as ``<n>d`` (whole days), ``<n>h``, ``<n>s`` or ``<n>T`` (milliseconds).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

ALL = "$__all"
Value = str | Sequence[str]


def sample_by_interval(interval: dt.timedelta) -> str:
    """``$__sampleByInterval`` for Grafana's interval (pkg/macros/macros.go ``SampleByInterval``)."""
    total_hours = interval.total_seconds() / 3600
    hours = max(int(total_hours), 0)
    seconds = max(int(interval.total_seconds()), 0)
    if hours > 0:
        if hours >= 24 and total_hours == hours:
            return f"{hours // 24}d"
        return f"{hours}h"
    if seconds > 0:
        return f"{seconds}s"
    return f"{max(int(interval / dt.timedelta(milliseconds=1)), 1)}T"


def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Arguments of the macro whose ``(`` is at ``open_paren`` (commas at depth 1) and the index after ``)``."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise ValueError(f"unbalanced macro arguments in {sql[open_paren:open_paren + 60]!r}")


def conditional_all(sql: str, variables: Mapping[str, Value]) -> str:
    """Step 1: every ``$__conditionalAll(condition, $var)`` (innermost last, as the plugin does)."""
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, end = _macro_args(sql, at + len(macro) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        name = re.search(r"\$\{?(\w+)", args[1])
        value = variables.get(name.group(1)) if name else None
        all_selected = value == ALL or value == "" or value == [ALL]
        sql = sql[:at] + ("1=1" if all_selected else args[0]) + sql[end:]
    return sql


def template(sql: str, variables: Mapping[str, Value], options: Mapping[str, Sequence[str]] | None = None,
             globals_: Mapping[str, str] | None = None) -> str:
    """Step 2: Grafana variables. ``ALL`` expands to every option of the variable (``options``)."""
    def value_of(name: str) -> str | None:
        if globals_ and name in globals_:
            return globals_[name]
        if name not in variables:
            return None
        value = variables[name]
        if value == ALL or value == [ALL]:
            value = list((options or {}).get(name, []))
        if isinstance(value, str):
            return value
        return "'" + "','".join(value) + "'"

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name.startswith("__") and not (globals_ and name in globals_):
            return m.group(0)  # a plugin macro, expanded by the back end
        value = value_of(name)
        if value is None:
            raise KeyError(f"variable ${name} has no value in the test")
        return value

    return re.sub(r"\$\{(\w+)(?::raw)?\}|\$(\w+)", sub, sql)


def backend_macros(sql: str, start: dt.datetime, end: dt.datetime, interval: dt.timedelta) -> str:
    """Step 3: the plugin's back-end macros for the time range ``start``..``end`` (UTC) and Grafana's interval."""
    def micros(t: dt.datetime) -> int:
        return int((t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) / dt.timedelta(microseconds=1))

    frm, to = micros(start), micros(end)
    out = []
    i = 0
    for m in re.finditer(r"\$__timeFilter\(", sql):
        if m.start() < i:
            continue
        args, after = _macro_args(sql, m.end() - 1)
        if len(args) != 1:
            raise ValueError("$__timeFilter takes 1 argument")
        col = args[0].strip()
        out.append(sql[i:m.start()])
        out.append(f"{col} >= cast({frm} as timestamp) AND {col} <= cast({to} as timestamp)")
        i = after
    sql = "".join(out) + sql[i:]
    sql = sql.replace("$__fromTime", f"cast({frm} as timestamp)").replace("$__toTime", f"cast({to} as timestamp)")
    sql = sql.replace("$__sampleByInterval", sample_by_interval(interval))
    if "$__" in sql:
        raise ValueError(f"macro left unexpanded: {sql[sql.index('$__'):][:40]!r}")
    return sql


def expand(sql: str, variables: Mapping[str, Value], *, start: dt.datetime, end: dt.datetime,
           interval: dt.timedelta, options: Mapping[str, Sequence[str]] | None = None) -> str:
    """The SQL QuestDB receives for ``sql`` with these variable values, time range and interval."""
    globals_ = {"__interval_ms": str(int(interval / dt.timedelta(milliseconds=1))),
                "__from": str(int(start.timestamp() * 1000)), "__to": str(int(end.timestamp() * 1000))}
    return backend_macros(template(conditional_all(sql, variables), variables, options, globals_),
                          start, end, interval)
