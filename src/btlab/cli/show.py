"""What the commands print: one function per result shown, so the command handlers stay a few lines.

Every value that comes from data (paths, symbols, store addresses, errors) is printed literally (the consoles of
:mod:`btlab.cli.common` never parse markup).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from btlab.cli.common import OutputFormat, console, metrics_table, styled, warn


def import_line(path: Path, report: Any, timeframe: str, symbol: str, address: str) -> str:
    """One line per imported file: bars, series, range, missing bars (in sessions for exchange venues)."""
    where = "" if report.calendar == "24/7" else f" in {report.calendar} regular sessions"
    gaps = f", {report.gaps:,} missing bar(s){where} between them" if report.gaps else f", no gaps{where}"
    if report.outside_session:
        gaps += f" ({report.outside_session:,} bars outside them: extended hours)"
    assumed = f" ({report.assumed})" if report.assumed else ""
    return (f"{path}: {report.rows:,} {timeframe} bars for {report.exchange}:{symbol}{assumed}, {report.first} .. "
            f"{report.last}{gaps} -> {address}")


def bar_coverage(frame: Any, address: str, *, gaps: int, filtered: bool) -> None:
    """The bar coverage table of ``btlab data coverage`` and the first ``gaps`` gaps of each series."""
    from btlab.cli.tables import bar_coverage_table, print_table

    if frame.empty:
        console.print(f"no bars in {address}" + (" for that filter" if filtered else ""), highlight=False)
        return
    print_table(bar_coverage_table(frame, f"bar coverage in {address} (times UTC, bar open)"))
    for row in frame.itertuples(index=False):
        if gaps and row.n_gaps:
            shown = row.gaps.head(gaps)
            console.print(f"gaps in {row.exchange}:{row.symbol} {row.timeframe} (first {len(shown)} of "
                          f"{row.n_gaps}):", highlight=False)
            for g in shown.itertuples(index=False):
                console.print(f"  {g.gap_start} .. {g.gap_end}: {g.missing_bars:,} bar(s)", highlight=False)


def tick_coverage(ticks: Any, address: str, *, gaps: int) -> None:
    """The tick coverage table of ``btlab data coverage`` and the first ``gaps`` trade-id gaps of each series."""
    from btlab.cli.tables import print_table, tick_coverage_table

    if ticks.empty:
        return
    print_table(tick_coverage_table(ticks, f"tick coverage in {address} (times UTC)"))
    for row in ticks.itertuples(index=False):
        id_gaps = row.id_gaps
        if gaps and id_gaps is not None and len(id_gaps):
            shown = id_gaps.head(gaps)
            console.print(f"trade-id gaps in {row.exchange}:{row.symbol} (first {len(shown)} of "
                          f"{len(id_gaps):,}):", highlight=False)
            for g in shown.itertuples(index=False):
                console.print(f"  ids {g.id_start:,} .. {g.id_end:,}: {g.missing_ids:,} missing", highlight=False)


def backtest_result(result: Any, *, exchange: str, feeds: str, warned: Sequence[str], address: str) -> None:
    """A run's metrics table, the conventions, the warnings not printed during the run, and its run id."""
    summary = result.summary
    shown = ", ".join(f"{k}={v}" for k, v in result.config.params.items())
    title = f"{result.config.strategy}({shown}) on {exchange}:{result.config.symbol} {feeds}"
    console.print(metrics_table(summary.as_dict(), title))
    console.print(styled((summary.conventions(), "dim")), highlight=False)
    for line in result.warnings:
        if line not in warned:
            warn(line)
    states = getattr(result, "states", None)
    if states is not None and len(states):
        per = ", ".join(f"{n:,} of {m}" for m, n in states.groupby("machine", sort=False).size().items())
        console.print(f"state changes: {per} (bt_states; drawn in the report)", highlight=False)
    console.print(styled("run id: ", (result.run_id, "bold"), f" (stored in {address})"), highlight=False)


def tracking(record: Mapping[str, Any] | None, currency: str | None = None) -> None:
    """The tracking table of an ``mp_tracker`` run (``metrics["tracking"]``, :func:`btlab.backtest.tracking.
    tracking_record`): one column per basket (the run's own first), one row per figure, and what each means."""
    if not record or not record.get("rows"):
        return
    from rich.table import Table

    from btlab.cli.common import plain
    from btlab.report.format import TRACKING_COLUMNS, TRACKING_ROWS, format_value

    rows = record["rows"]
    names = [record.get("own"), *(n for n in rows if n != record.get("own"))]
    table = Table(title=plain(f"tracking {record.get('index')} (this run: {record.get('own')})"), header_style="bold")
    table.add_column("figure")
    for name in names:
        table.add_column(plain(name + (" (this run)" if name == record.get("own") else "")), justify="right")
    for key, label, unit in TRACKING_COLUMNS:
        table.add_row(plain(label), *(plain(format_value(rows[n].get(key), unit, currency)) for n in names))
    console.print(table)
    first = rows[record.get("own")]
    console.print(styled((
        f"active return = portfolio - index per bar from the first fill's bar ({first.get('first')}); tracking error = "
        f"std(active, ddof=1) x sqrt({record.get('periods')}); turnover = traded value / portfolio value a year; "
        "rows: " + "; ".join(f"{n} = {TRACKING_ROWS.get(n, n)}" for n in names) + " (same bars, dates, K, lookback, "
        "rebalance, costs)", "dim")), highlight=False)


def runs_table(runs: Sequence[Mapping[str, Any]], title: str) -> None:
    """Runs as the 80-column table of ``btlab runs list``, with its notes (settings shared by all runs)."""
    from btlab.backtest.runs import run_settings
    from btlab.cli.tables import print_table
    from btlab.cli.tables import runs_table as build

    table, notes = build(runs, [run_settings(r) for r in runs], title)
    print_table(table)
    for line in notes:
        console.print(line, highlight=False, markup=False)


def runs_listing(runs: Sequence[Mapping[str, Any]], output: OutputFormat, *, wide: bool, address: str) -> None:
    """``btlab runs list``: json/csv records (every column) for scripts, else the table or the wide table."""
    from btlab.backtest.runs import run_settings
    from btlab.cli.tables import RECORD_COLUMNS, print_table, wide_records, wide_table, write_csv, write_json

    if output is not OutputFormat.table:
        records = wide_records(runs, [run_settings(run) for run in runs])
        if output is OutputFormat.json:
            write_json(records)
        else:
            write_csv(records, list(dict.fromkeys([*RECORD_COLUMNS, *(k for r in records for k in r)])))
        return
    if not runs:
        console.print(f"no runs in {address} yet: see btlab backtest --help", highlight=False)
        return
    title = f"{len(runs)} most recent run(s) in {address}"
    if wide:
        print_table(wide_table(wide_records(runs, [run_settings(run) for run in runs]), title))
    else:
        runs_table(runs, title)


def run_detail(store: Any, run: Mapping[str, Any], output: OutputFormat, *, now: datetime) -> None:
    """``btlab runs show``: the run as one json/csv record, or its detail table, metrics and counts."""
    from btlab.backtest.metrics import CONVENTIONS
    from btlab.backtest.runs import run_settings
    from btlab.cli.tables import print_table, run_detail_table, wide_records, write_csv, write_json

    if output is not OutputFormat.table:
        record = wide_records([run], [run_settings(run)])[0]
        if output is OutputFormat.json:
            write_json(record)
        else:
            write_csv([record])
        return
    print_table(run_detail_table(run, run_settings(run), now=now))
    if run.get("metrics"):
        m = run["metrics"]
        console.print(metrics_table(m, "metrics"))
        console.print(styled((CONVENTIONS.format(periods=m.get("periods_per_year"), calendar=m.get("calendar")),
                              "dim")), highlight=False)
        tracking(m.get("tracking"))
    trades = store.read_trades(run["run_id"])
    console.print(f"{len(trades):,} closed trade(s), {len(store.read_orders(run['run_id'])):,} order event(s)",
                  highlight=False)
    console.print(f"HTML report: btlab report {run['run_id']}", highlight=False)


def ask_to_mark(stale: Sequence[Mapping[str, Any]], yes: bool) -> bool:
    """Whether to mark the ``stale`` runs interrupted: ``--yes``, or the answer at a terminal.

    Raises:
        InvalidArgumentError: not at a terminal and no ``--yes``.
    """
    import typer

    from btlab.errors import InvalidArgumentError

    if yes:
        return True
    if not sys.stdin.isatty():
        raise InvalidArgumentError(f"{len(stale)} stale run(s) left as they are: confirm with --yes")
    if typer.confirm(f"Mark {len(stale)} run(s) interrupted?", default=False):
        return True
    console.print("nothing changed")
    return False


def marked_line(marked: Sequence[Mapping[str, Any]], stale: Sequence[Mapping[str, Any]]) -> str:
    """What ``btlab runs cleanup`` did."""
    back = f" ({len(stale) - len(marked)} came back to life)" if len(marked) < len(stale) else ""
    return f"marked {len(marked)} run(s) interrupted: {', '.join(r['run_id'] for r in marked) or 'none'}{back}"
