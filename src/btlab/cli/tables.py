"""How the CLI shows runs and coverage: tables readable at 80 columns, and json/csv for scripts.

Tables never cut a value short: cells wrap (fold) at the terminal's width, and when stdout is not a terminal (a pipe
or a file) tables are printed at their natural width. json and csv print every column with full values and
nothing else on stdout.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from btlab.cli.common import DataConsole, console, fmt, plain

_STANDARD_ID = re.compile(r"^\d{8}T\d{6}-(?P<short>[0-9a-f]{8})$")
STATUS_STYLE = {"failed": "red", "stale": "yellow", "interrupted": "yellow", "running": "cyan", "finished": "green",
                "stopped": "green"}


# ---- output plumbing -----------------------------------------------------------------------------------------------
def natural_width(table: Table, out: Console | None = None) -> int:
    """The width ``table`` takes when nothing is wrapped."""
    out = out or console
    return Measurement.get(out, out.options.update_width(100_000), table).maximum


def print_table(table: Table, out: Console | None = None) -> None:
    """Print ``table`` on stdout: at the terminal's width (cells wrap, never cut); at the table's natural width
    (no wrapping at all) when stdout is not a terminal and ``COLUMNS`` is not set, or when the table cannot be
    squeezed into the terminal (long lines beat columns cut off)."""
    out = out or console
    piped = not out.is_terminal and not os.environ.get("COLUMNS")
    if piped or Measurement.get(out, out.options.update_width(100_000), table).minimum > out.width:
        out = DataConsole(width=max(80, natural_width(table, out)), force_terminal=out.is_terminal,
                          no_color=piped or out.no_color, highlight=False)
    out.print(table)


def output_width(out: Console | None = None) -> int:
    """The width tables are laid out for: the terminal's (or ``COLUMNS``), unlimited when piped."""
    out = out or console
    return out.width if out.is_terminal or os.environ.get("COLUMNS") else 100_000


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return _plain(value.item())
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(records: Any) -> None:
    """``records`` as JSON on stdout (times ISO 8601 UTC with ``Z``, NaN/inf as null), then a newline."""
    sys.stdout.write(json.dumps(_plain(records), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def write_csv(records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """``records`` as CSV on stdout with a header; nested values as JSON text, times ISO 8601 UTC."""
    columns = list(columns or (records[0].keys() if records else []))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        row = []
        for col in columns:
            value = _plain(record.get(col))
            if isinstance(value, (dict, list)):
                value = json.dumps(value, ensure_ascii=False, sort_keys=True)
            row.append("" if value is None else value)
        writer.writerow(row)
    sys.stdout.flush()


# ---- runs ------------------------------------------------------------------------------------------------------------
def short_id(run_id: str) -> str:
    """The 8 hex digits of a standard run id (``20240101T120000-1a2b3c4d`` -> ``1a2b3c4d``), else the id."""
    m = _STANDARD_ID.match(run_id or "")
    return m["short"] if m else str(run_id)


def short_strategy(ref: str | None) -> str:
    """``pkg.module:Class`` / ``path/file.py:Class`` -> ``Class``; bundled names unchanged."""
    text = str(ref or "")
    return text.rsplit(":", 1)[-1] if ":" in text else text


def params_text(params: Any, limit: int | None = None) -> str:
    """``fast=10 slow=30``; cut to ``limit`` characters with an ellipsis."""
    if isinstance(params, Mapping):
        text = " ".join(f"{k}={_param_value(v)}" for k, v in params.items())
    else:
        text = "" if params is None else str(params)
    if limit is not None and len(text) > limit:
        text = text[: max(1, limit - 1)].rstrip() + "…"
    return text


def _param_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _day(value: Any) -> str:
    return f"{value:%Y-%m-%d}" if isinstance(value, (datetime, date)) else "—"


def _minute(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if isinstance(value, datetime) else "—"


def _second(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if isinstance(value, datetime) else "—"


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.10g}" if isinstance(value, float) else f"{value:,}"


#: settings shown together: sizing is a percent of cash or a fixed stake, slippage a fraction or price units
SETTING_GROUPS: dict[str, tuple[str, ...]] = {
    "cash": ("cash",), "commission": ("commission",), "sizing": ("size_pct", "stake"),
    "slippage": ("slippage_pct", "slippage_fixed"), "calendar": ("calendar",),
}


def setting_text(group: str, settings: Mapping[str, Any]) -> str:
    """One setting group of a run as a short phrase (``commission 0.1 %``, ``size 95 % of cash``,
    ``stake 100 units``, ``slippage 0.05 %``, ``no slippage``, ``calendar crypto``)."""
    get = settings.get
    if group == "cash":
        return f"cash {_number(get('cash'))}"
    if group == "commission":
        return "commission —" if get("commission") is None else f"commission {get('commission') * 100:g} %"
    if group == "sizing":
        if get("stake") is not None:
            return f"stake {get('stake'):g} units"
        return "sizing —" if get("size_pct") is None else f"size {get('size_pct'):g} % of cash"
    if group == "slippage":
        if get("slippage_pct"):
            return f"slippage {get('slippage_pct') * 100:g} %"
        return f"slippage {get('slippage_fixed'):g} (price units)" if get("slippage_fixed") else "no slippage"
    if group == "calendar":
        return f"calendar {get('calendar') or '—'}"
    raise KeyError(group)


def settings_text(settings: Mapping[str, Any], groups: Iterable[str] | None = None) -> str:
    """The settings (or some of :data:`SETTING_GROUPS`) as ``cash 10,000 · commission 0.1 % · size 95 % of cash``."""
    return " · ".join(setting_text(g, settings) for g in (SETTING_GROUPS if groups is None else groups))


def order_notes(run: Mapping[str, Any]) -> str:
    """``28 margin, 2 rejected, 1 canceled, 1 warning`` from the run's order counts and warnings."""
    parts = []
    for key, word in (("orders_margin", "margin"), ("orders_rejected", "rejected"), ("orders_canceled", "canceled")):
        n = run.get(key)
        if n:
            parts.append(f"{int(n):,} {word}")
    warnings = [w for w in str(run.get("warnings") or "").splitlines() if w.strip()]
    if warnings:
        parts.append(f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''}")
    return ", ".join(parts)


def _status_cell(status: Any, mark: str = "") -> Text:
    text = str(status or "—")
    return Text.assemble(plain(text, STATUS_STYLE.get(text, "")), mark)


def _cells(values: Iterable[Any]) -> list[Text]:
    """Table cells as rich Text: values are shown as they are, never parsed as markup (``[1, 2]`` stays), control
    characters made visible."""
    return [v if isinstance(v, Text) else plain(v) for v in values]


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal (``-0.6434`` -> ``-64.3%``); ``—`` if missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value * 100:,.1f}%"


def _ratio(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:,.2f}"


def _count(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def runs_table(runs: Sequence[Mapping[str, Any]], settings: Sequence[Mapping[str, Any]], title: str,
               width: int | None = None) -> tuple[Table, list[str]]:
    """The runs table with the key columns, and the lines to print under it.

    Every setting that changes a result is on screen: settings the listed runs share are said once under the
    table; settings that differ get a column (or, when the table must be narrow, a letter per run with the
    letters explained under the table). Rejected/margin/canceled orders and warnings get a column (narrow: a
    ``*`` after the status, explained under the table).

    Args:
        runs, settings: the runs (:func:`btlab.backtest.runs.list_runs`) and their settings
            (:func:`btlab.backtest.runs.run_settings`).
        title: the table's title.
        width: the width to fit (default: :func:`output_width`). When the one-line-per-run table is wider, each
            run takes two lines (id over status, strategy over parameters, exchange over symbol, from over to).
    """
    width = output_width() if width is None else width
    differing = [g for g in SETTING_GROUPS if len({setting_text(g, s) for s in settings}) > 1]
    shared = [g for g in SETTING_GROUPS if g not in differing]
    notes = [order_notes(r) for r in runs]
    lines = [f"all listed runs: {settings_text(settings[0], shared)}"] if settings and shared else []
    table = _runs_one_line(runs, settings, notes, differing, title)
    if natural_width(table) <= width:
        return table, lines
    table, legend = _runs_two_lines(runs, settings, notes, differing, title)
    return table, lines + legend


def _new_table(title: str) -> Table:
    """A plain table: a rule under the header, one space between columns, no frame (fits 80 columns)."""
    return Table(title=plain(title), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0), title_justify="left",
                 header_style="bold")


def _metric_columns(table: Table) -> None:
    for col in ("return", "sharpe", "max dd", "trades"):
        table.add_column(col, justify="right", no_wrap=True)


def _metric_cells(run: Mapping[str, Any]) -> list[str]:
    return [pct(run.get("total_return")), _ratio(run.get("sharpe")), pct(run.get("max_drawdown")),
            _count(run.get("n_trades"))]


def _runs_one_line(runs: Sequence[Mapping[str, Any]], settings: Sequence[Mapping[str, Any]], notes: list[str],
                   differing: list[str], title: str) -> Table:
    table = _new_table(title)
    for col in ("id", "started (UTC)", "strategy", "params", "market", "data (UTC)"):
        table.add_column(col, no_wrap=col in ("id", "started (UTC)"), overflow="fold")
    if differing:
        table.add_column("settings", overflow="fold")
    table.add_column("status", no_wrap=True)
    if any(notes):
        table.add_column("orders", overflow="fold")
    _metric_columns(table)
    for run, setting, note in zip(runs, settings, notes, strict=True):
        row = [short_id(str(run.get("run_id"))), _minute(run.get("ts")), short_strategy(run.get("strategy")),
               params_text(run.get("params"), 40), _market(run), f"{_day(run.get('data_from'))} .. "
               f"{_day(run.get('data_to'))}"]
        if differing:
            row.append(settings_text(setting, differing))
        row.append(_status_cell(run.get("status")))
        if any(notes):
            row.append(note)
        table.add_row(*_cells([*row, *_metric_cells(run)]))
    return table


def _runs_two_lines(runs: Sequence[Mapping[str, Any]], settings: Sequence[Mapping[str, Any]], notes: list[str],
                    differing: list[str], title: str) -> tuple[Table, list[str]]:
    letters: dict[str, str] = {}
    legend: list[str] = []
    table = _new_table(title)
    table.add_column("run", no_wrap=True)
    table.add_column("strategy", overflow="fold", min_width=9)
    table.add_column("market", overflow="fold", min_width=11)
    table.add_column("data (UTC)", no_wrap=True)
    if differing:
        table.add_column("set", no_wrap=True)
    _metric_columns(table)
    for run, setting, note in zip(runs, settings, notes, strict=True):
        row = [
            plain(f"{short_id(str(run.get('run_id')))}\n") + _status_cell(run.get("status"), "*" if note else ""),
            f"{short_strategy(run.get('strategy'))}\n{params_text(run.get('params'), 24)}".rstrip(),
            "\n".join(p for p in (str(run.get("exchange") or ""),
                                  " ".join(str(run.get(k)) for k in ("symbols", "timeframe") if run.get(k))) if p),
            f"{_day(run.get('data_from'))}\n{_day(run.get('data_to'))}",
        ]
        if differing:
            text = settings_text(setting, differing)
            if text not in letters:
                letters[text] = chr(ord("A") + len(letters)) if len(letters) < 26 else str(len(letters) + 1)
                legend.append(f"settings {letters[text]}: {text}")
            row.append(letters[text])
        table.add_row(*_cells([*row, *_metric_cells(run)]))
        if note:
            legend.append(f"* {short_id(str(run.get('run_id')))}: {note}")
    return table, legend


def _market(run: Mapping[str, Any]) -> str:
    return " ".join(str(run.get(k)) for k in ("exchange", "symbols", "timeframe") if run.get(k) is not None)


#: the columns of ``runs list --wide`` (and of the json/csv records, which have all columns)
WIDE_COLUMNS = (
    "run_id", "ts", "finished_at", "heartbeat", "status", "error", "strategy", "params", "exchange", "symbols",
    "timeframe", "data_from", "data_to", "bars", "cash", "commission", "size_pct", "stake", "slippage_pct",
    "slippage_fixed", "calendar", "orders_rejected", "orders_margin", "orders_canceled", "warnings",
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "max_drawdown_days", "calmar",
    "win_rate", "profit_factor", "avg_trade", "exposure", "n_trades", "end_value", "sweep_id", "config_hash",
    "data_hash", "btlab_version", "backtrader_version",
)
#: the columns of every json/csv run record: all of :data:`WIDE_COLUMNS`, the stored status, config and metrics
RECORD_COLUMNS = (*WIDE_COLUMNS, "recorded_status", "config", "metrics")
_PCT = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure"}


def wide_records(runs: Sequence[Mapping[str, Any]], settings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every column of each run (settings taken from its config), in :data:`RECORD_COLUMNS` order first."""
    out = []
    for run, setting in zip(runs, settings, strict=True):
        record = {col: run.get(col) for col in RECORD_COLUMNS}
        record.update(setting)
        record.update({k: v for k, v in run.items() if k not in record})
        out.append(record)
    return out


def wide_table(records: Sequence[Mapping[str, Any]], title: str) -> Table:
    """All columns, one run per row, nothing shortened."""
    table = _new_table(title)
    for col in WIDE_COLUMNS:
        numeric = col in _PCT or col in {"sharpe", "sortino", "calmar", "profit_factor", "avg_trade", "end_value",
                                         "bars", "n_trades", "cash", "max_drawdown_days", "orders_rejected",
                                         "orders_margin", "orders_canceled"}
        table.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for rec in records:
        cells = []
        for col in WIDE_COLUMNS:
            value = rec.get(col)
            if col == "status":
                cells.append(_status_cell(value))
            elif col in _PCT:
                cells.append(fmt(value, "pct"))
            elif col == "params":
                cells.append(params_text(value))
            elif isinstance(value, datetime):
                cells.append(_second(value))
            elif value is None:
                cells.append("—")
            elif isinstance(value, float):
                cells.append(fmt(value) if col in {"sharpe", "sortino", "calmar", "profit_factor"} else _number(value))
            else:
                cells.append(str(value))
        table.add_row(*_cells(cells))
    return table


def run_detail_table(run: Mapping[str, Any], settings: Mapping[str, Any], *, now: datetime) -> Table:
    """``runs show``: what was run, on which data, with which settings, how it ended, and how to reproduce it."""
    table = Table(title=plain(f"run {run.get('run_id')}"), show_header=False, box=box.SIMPLE, pad_edge=False,
                  title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    status = str(run.get("status"))
    if status == "stale":
        seen = run.get("heartbeat") or run.get("ts")
        ago = _ago(now, seen) if isinstance(seen, datetime) else "never"
        status = Text.assemble(("stale", STATUS_STYLE["stale"]),
                               f": recorded as running, but no heartbeat since {_second(seen)} UTC ({ago}); "
                               "presumed killed -- btlab runs cleanup marks it interrupted")
    else:
        status = _status_cell(status)
    rows: list[tuple[str, Any]] = [
        ("status", status),
        ("error", run.get("error")),
        ("warnings", "; ".join(w for w in str(run.get("warnings") or "").splitlines() if w.strip()) or None),
        ("orders", order_notes({k: run.get(k) for k in ("orders_margin", "orders_rejected", "orders_canceled")})
         or None),
        ("strategy", run.get("strategy")),
        ("params", params_text(run.get("params")) or "none"),
        ("market", " ".join(str(run.get(k)) for k in ("exchange", "symbols", "timeframe") if run.get(k) is not None)),
        ("data (UTC)", f"{_minute(run.get('data_from'))} .. {_minute(run.get('data_to'))} (bar open times"
                       f"{', ' + _number(run.get('bars')) + ' bars' if run.get('bars') is not None else ''})"),
        ("settings", settings_text(settings)),
        ("started", f"{_second(run.get('ts'))} UTC"),
        ("finished", f"{_second(run.get('finished_at'))} UTC" if run.get("finished_at") else None),
        ("heartbeat", f"{_second(run.get('heartbeat'))} UTC" if run.get("heartbeat") else None),
        ("config hash", run.get("config_hash")),
        ("data hash", run.get("data_hash")),
        ("versions", f"btlab {run.get('btlab_version')}, Backtrader {run.get('backtrader_version')}"),
        ("sweep", run.get("sweep_id")),
    ]
    for key, value in rows:
        if value is not None and value != "":
            table.add_row(*_cells([key, value]))
    return table


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


# ---- coverage --------------------------------------------------------------------------------------------------------
def bar_coverage_table(frame: Any, title: str) -> Table:
    """One row per stored bar series: first/last bar open (UTC, to the minute), bars, missing bars, gaps (the
    venue's calendar after the series when it is not 24/7: missing bars count its session time only).

    ``frame`` is :func:`btlab.marketdata.quality.coverage.coverage`'s; the title should say the times are UTC."""
    table = _new_table(title)
    table.add_column("series", overflow="fold")
    table.add_column("first", overflow="fold", min_width=10)
    table.add_column("last", overflow="fold", min_width=10)
    for col in ("bars", "missing", "gaps"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in frame.itertuples(index=False):
        calendar = getattr(row, "calendar", None) or "24/7"
        series = f"{row.exchange}:{row.symbol} {row.timeframe}" + ("" if calendar == "24/7" else f" ({calendar})")
        table.add_row(*_cells([series, _minute(_py(row.first)),
                               _minute(_py(row.last)), f"{row.bars:,}", f"{row.missing_bars:,}", f"{row.n_gaps:,}"]))
    return _fit(table, {"series": 19, "first": 10, "last": 10})


def tick_coverage_table(frame: Any, title: str) -> Table:
    """One row per tick series: first/last trade (UTC), ticks, trade-id range, missing and duplicate ids, gaps.

    ``frame`` is :func:`btlab.marketdata.quality.coverage.tick_coverage`'s; the title should say the times are UTC."""
    table = _new_table(title)
    table.add_column("series", overflow="fold", min_width=16)
    table.add_column("first", overflow="fold", min_width=10)
    table.add_column("last", overflow="fold", min_width=10)
    table.add_column("ticks", justify="right", no_wrap=True)
    table.add_column("trade ids", overflow="fold", min_width=13)
    for col in ("missing", "dupl.", "gaps"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in frame.itertuples(index=False):
        gaps = getattr(row, "id_gaps", None)
        n_gaps = "—" if gaps is None or not _known(row.missing_ids) else f"{len(gaps):,}"
        ids = "not numeric" if _known(row.numeric_ids) and not bool(row.numeric_ids) else (
            f"{_int(row.first_id)} .. {_int(row.last_id)}" if _known(row.first_id) else "—")
        table.add_row(*_cells([f"{row.exchange}:{row.symbol}", _second(_py(row.first)), _second(_py(row.last)),
                               f"{int(row.ticks):,}", ids, _int(row.missing_ids), _int(row.duplicate_ids), n_gaps]))
    return _fit(table, {"series": 16, "first": 10, "last": 10, "trade ids": 13})


def _fit(table: Table, narrow: Mapping[str, int]) -> Table:
    """Cap the widths of the columns named in ``narrow`` when ``table`` is wider than the output, so that its
    cells wrap there (rich alone may cut the last columns off instead)."""
    if natural_width(table) > output_width():
        for column in table.columns:
            if column.header in narrow:
                column.max_width = narrow[str(column.header)]
    return table


def _known(value: Any) -> bool:
    try:
        return not (value is None or value != value or str(value) == "<NA>")
    except (TypeError, ValueError):
        return False


def _int(value: Any) -> str:
    return f"{int(value):,}" if _known(value) else "—"


def _py(value: Any) -> Any:
    to_pydatetime = getattr(value, "to_pydatetime", None)
    return to_pydatetime() if to_pydatetime is not None and _known(value) else value
