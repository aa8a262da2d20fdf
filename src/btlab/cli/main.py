"""The ``btlab`` command: parses arguments, calls the Python API, shows progress. No business logic here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from btlab.cli.ingest import ingest_app
from btlab.cli.common import (
    FromDayOption,
    StoreOption,
    ToDayOption,
    YesOption,
    confirm,
    console,
    fmt,
    friendly_errors,
    metrics_table,
    open_store_cli,
    parse_range,
    progress_bar,
)

app = typer.Typer(
    name="btlab",
    help=(
        "Backtest Backtrader strategies on real market data; every run is stored and reportable.\n\n"
        "Quick start: btlab data import data/BTC_USDT-1h_2017-08-17_2024-04-21.feather --exchange binance "
        "--symbol BTC/USDT --timeframe 1h, then btlab backtest --strategy sma_cross --symbol BTC/USDT "
        "--timeframe 1h --from 2020-01-01 --to 2023-12-31, then btlab report RUN_ID."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Import, inspect, resample and delete market data in the store.", no_args_is_help=True)
runs_app = typer.Typer(help="List, inspect and delete recorded backtest runs.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(ingest_app, name="ingest")

# ---- data --------------------------------------------------------------------------------------------------------
@data_app.command("import")
@friendly_errors
def data_import(
    files: Annotated[list[Path], typer.Argument(help="CSV (.csv, .csv.gz, .zip), feather or parquet files.")],
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, e.g. binance.")] = "binance",
    symbol: Annotated[str, typer.Option(help="Unified symbol, e.g. BTC/USDT (or a ticker such as AAPL).")] = ...,
    timeframe: Annotated[str, typer.Option(help="ccxt timeframe of the bars: 1m, 5m, 1h, 1d, ...")] = ...,
    allow_timeframe_mismatch: Annotated[bool, typer.Option(
        "--allow-timeframe-mismatch",
        help="Import even when the bars are spaced by a whole multiple of --timeframe (1h bars given as 1m are "
        "refused without it).")] = False,
    store: StoreOption = None,
) -> None:
    """Import OHLCV bars from files into the store.

    Accepts data.binance.vision kline CSVs (with or without header, ms or µs open times, zipped or not) and
    CSV/feather/parquet files with a time column (ts, timestamp, date, datetime, open_time) and open, high, low,
    close, volume. Each file is validated completely first: a bad file is rejected with its row (the file line)
    and column and nothing from it is written; so is a line with more or fewer fields than the header. Bars spaced
    by a whole multiple of --timeframe (e.g. 1h bars imported as 1m) are refused, asking which timeframe was meant.
    Re-importing a file changes nothing.
    """
    from btlab.errors import InvalidArgumentError
    from btlab.marketdata.files import check_bars_file, import_bars
    from btlab.model.timeframe import Timeframe

    tf = Timeframe.parse(timeframe)
    for name, value in (("--exchange", exchange), ("--symbol", symbol)):
        if not value.strip():
            raise InvalidArgumentError(f"{name} must not be empty")
    for path in files:  # every file is checked before the first is imported
        check_bars_file(path)
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task("importing", total=len(files))
        for path in files:
            progress.update(task, description=f"importing {path.name}")
            report = import_bars(path, st, exchange=exchange, symbol=symbol, timeframe=tf,
                                 allow_timeframe_mismatch=allow_timeframe_mismatch)
            progress.advance(task)
            gaps = f", {report.gaps} missing bar(s) between them" if report.gaps else ", no gaps"
            console.print(
                f"{path}: {report.rows:,} {tf} bars for {exchange}:{symbol}, {report.first} .. {report.last}"
                f"{gaps} -> {st.address}",
                highlight=False,
            )


@data_app.command("coverage")
@friendly_errors
def data_coverage(
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Only this timeframe.")] = None,
    gaps: Annotated[int, typer.Option(help="List at most this many gaps per series (0: none).")] = 10,
    store: StoreOption = None,
) -> None:
    """Per exchange/symbol/timeframe: first and last bar, count, and the gaps (missing bars); then tick coverage."""
    from btlab.errors import InvalidArgumentError
    from btlab.marketdata.coverage import coverage, tick_coverage
    from btlab.model.timeframe import Timeframe

    if timeframe is not None:
        timeframe = Timeframe.parse(timeframe).value
    if gaps < 0:
        raise InvalidArgumentError(f"--gaps must be >= 0, got {gaps}")
    with open_store_cli(store, read_only=True, listing=True) as st:
        frame = coverage(st, exchange=exchange, symbol=symbol, timeframe=timeframe)
        if frame.empty:
            console.print(f"no bars in {st.address}" + (" for that filter" if exchange or symbol or timeframe else ""))
        else:
            table = Table(title=f"bar coverage in {st.address}")
            for col in ("exchange", "symbol", "timeframe", "first", "last", "bars", "missing", "gaps"):
                table.add_column(col, justify="right" if col in ("bars", "missing", "gaps") else "left")
            for row in frame.itertuples(index=False):
                table.add_row(row.exchange, row.symbol, row.timeframe, str(row.first), str(row.last),
                              f"{row.bars:,}", f"{row.missing_bars:,}", f"{row.n_gaps:,}")
            console.print(table)
            for row in frame.itertuples(index=False):
                if gaps and row.n_gaps:
                    shown = row.gaps.head(gaps)
                    console.print(f"gaps in {row.exchange}:{row.symbol} {row.timeframe} (first {len(shown)} of {row.n_gaps}):")
                    for g in shown.itertuples(index=False):
                        console.print(f"  {g.gap_start} .. {g.gap_end}: {g.missing_bars:,} bar(s)", highlight=False)
        ticks = tick_coverage(st, exchange=exchange, symbol=symbol)
        if not ticks.empty:
            table = Table(title="tick coverage")
            for col in ticks.columns:
                if col != "gaps":
                    table.add_column(str(col))
            for row in ticks.drop(columns=[c for c in ("gaps",) if c in ticks.columns]).itertuples(index=False):
                table.add_row(*[str(v) for v in row])
            console.print(table)


@data_app.command("resample")
@friendly_errors
def data_resample(
    exchange: Annotated[str, typer.Option(help="Exchange id of the stored bars, e.g. binance.")],
    symbol: Annotated[str, typer.Option(help="Symbol of the stored bars, e.g. BTC/USDT.")],
    source_timeframe: Annotated[str, typer.Option(help="Timeframe of the stored bars to build from, e.g. 1h.")],
    timeframe: Annotated[str, typer.Option(help="Timeframe to build, a whole multiple of the source, e.g. 4h.")],
    from_: FromDayOption = None,
    to: ToDayOption = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="Also build windows with some source bars missing (e.g. equity sessions); never "
        "at the ends of the stored span or of --from/--to.")] = False,
    store: StoreOption = None,
) -> None:
    """Build higher-timeframe bars from stored bars and store them (e.g. 4h from 1h).

    Only complete windows are built (every source bar present), so each bar equals the exchange's own bar of
    that timeframe; windows with missing source bars are skipped and counted. Running it again changes nothing.
    """
    from btlab.errors import InvalidArgumentError
    from btlab.marketdata.resample import resample_stored_bars
    from btlab.model.timeframe import Timeframe

    src, tgt = Timeframe.parse(source_timeframe), Timeframe.parse(timeframe)
    if tgt.nanos <= src.nanos or tgt.nanos % src.nanos:
        raise InvalidArgumentError(f"--timeframe {tgt} must be a whole multiple of --source-timeframe {src}, and longer")
    for name, value in (("--exchange", exchange), ("--symbol", symbol)):
        if not value.strip():
            raise InvalidArgumentError(f"{name} must not be empty")
    start, end = parse_range(from_, to)
    with open_store_cli(store, read_only=True):  # a missing store is an error here, never created
        pass
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task(f"{exchange}:{symbol} {src} -> {tgt}", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = resample_stored_bars(st, exchange=exchange, symbol=symbol, source_timeframe=src, timeframe=tgt,
                                      start=start, end=end, allow_partial=allow_partial, progress=on_progress)
        progress.stop()
        console.print(f"{report} -> {st.address}", highlight=False)


@data_app.command("delete")
@friendly_errors
def data_delete(
    exchange: Annotated[str, typer.Option(help="Exchange id of the bars to delete.")],
    symbol: Annotated[str, typer.Option(help="Symbol of the bars to delete.")],
    timeframe: Annotated[str, typer.Option(help="Timeframe of the bars to delete.")],
    from_: FromDayOption = None,
    to: ToDayOption = None,
    yes: YesOption = False,
    store: StoreOption = None,
) -> None:
    """Delete stored bars: a whole series, or the part of it from --from to --to (inclusive days).

    Shows how many bars will go and asks first (--yes skips the question). Ticks are not touched.
    """
    from btlab.errors import InvalidArgumentError, NoDataError
    from btlab.model.timeframe import Timeframe

    tf = Timeframe.parse(timeframe)
    for name, value in (("--exchange", exchange), ("--symbol", symbol)):
        if not value.strip():
            raise InvalidArgumentError(f"{name} must not be empty")
    start, end = parse_range(from_, to)
    with open_store_cli(store, read_only=True) as st:
        span = st.bar_span(exchange=exchange, symbol=symbol, timeframe=tf, start=start, end=end)
        address = st.address
    what = f"{tf} bars of {exchange}:{symbol}"
    if span.bars == 0:
        where = "" if start is None and end is None else f" from {from_ or 'the start'} to {to or 'the end'}"
        raise NoDataError(f"no {what}{where} in the store at {address} (see: btlab data coverage)")
    if not confirm(f"delete {span.bars:,} {what}, {span.first} .. {span.last}, from {address}?", yes):
        console.print("nothing deleted", highlight=False)
        raise typer.Exit(1)
    with open_store_cli(store) as st:
        deleted = st.delete_bars(exchange=exchange, symbol=symbol, timeframe=tf, start=start, end=end)
    console.print(f"deleted {deleted:,} {what} ({span.first} .. {span.last}) from {address}", highlight=False)


# ---- backtest ----------------------------------------------------------------------------------------------------
@app.command("backtest")
@friendly_errors
def backtest(
    strategy: Annotated[str, typer.Option(help="Bundled name (see btlab strategies), package.module:Class or file.py:Class.")] = "sma_cross",
    symbol: Annotated[str, typer.Option(help="Instrument symbol in the store, e.g. BTC/USDT.")] = "BTC/USDT",
    exchange: Annotated[str, typer.Option(help="Exchange id of the stored bars.")] = "binance",
    timeframe: Annotated[str, typer.Option(help="Timeframe of the stored bars.")] = "1h",
    from_: Annotated[str | None, typer.Option("--from", help="First day (UTC, inclusive), e.g. 2020-01-01.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day (UTC, inclusive), e.g. 2023-12-31.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Strategy parameter name=value (repeatable).")] = None,
    cash: Annotated[float, typer.Option(help="Starting cash in quote currency.")] = 10_000.0,
    commission: Annotated[float, typer.Option(help="Commission as a fraction of traded value (0.001 = 0.1 %).")] = 0.001,
    size_pct: Annotated[float, typer.Option(help="Order size as percent of available cash.")] = 95.0,
    stake: Annotated[float | None, typer.Option(help="Fixed order size in units (overrides --size-pct).")] = None,
    slippage_pct: Annotated[float, typer.Option(help="Slippage as a fraction of price (0.0005 = 5 bp).")] = 0.0,
    slippage_fixed: Annotated[float, typer.Option(help="Slippage in price units (ignored if --slippage-pct).")] = 0.0,
    calendar: Annotated[str | None, typer.Option(help="crypto (365 days/year) or equity (252); default from the symbol.")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Also write the HTML report.")] = True,
    store: StoreOption = None,
) -> None:
    """Run a strategy on stored bars; record the run, print its metrics and write its HTML report.

    Orders fill at the next bar's open (Backtrader's default). Every run is stored with its parameters,
    equity curve, trades and orders: see btlab runs list / btlab runs show / btlab report.
    """
    from btlab.backtest.registry import parse_param_pairs
    from btlab.backtest.runner import run_backtest

    params = parse_param_pairs(param)
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task(f"{strategy} on {exchange}:{symbol} {timeframe}", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = run_backtest(
            strategy, symbol=symbol, exchange=exchange, timeframe=timeframe, start=from_, end=to, params=params,
            cash=cash, commission=commission, size_pct=size_pct, stake=stake, slippage_pct=slippage_pct,
            slippage_fixed=slippage_fixed, calendar=calendar, store=st, progress=on_progress,
        )
        progress.stop()
        summary = result.summary
        shown = ", ".join(f"{k}={v}" for k, v in result.config.params.items())
        console.print(metrics_table(summary.as_dict(), f"{result.config.strategy}({shown}) on {exchange}:{symbol} {timeframe}"))
        console.print(f"[dim]{summary.conventions()}[/]", highlight=False)
        console.print(f"run id: [bold]{result.run_id}[/] (stored in {st.address})", highlight=False)
        if report:
            from btlab.report.html import write_report

            path = write_report(st, result.run_id)
            console.print(f"report: {path.resolve()}", highlight=False)


@app.command("strategies")
@friendly_errors
def strategies() -> None:
    """List the bundled strategies and their parameters (defaults)."""
    from btlab.backtest.registry import BUNDLED, resolve_strategy, strategy_params

    table = Table(title="bundled strategies (or use --strategy package.module:Class)")
    table.add_column("name")
    table.add_column("parameters")
    table.add_column("description")
    for name in sorted(BUNDLED):
        _, cls = resolve_strategy(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, ", ".join(f"{k}={v!r}" for k, v in strategy_params(cls).items()) or "—", doc)
    console.print(table)


# ---- runs --------------------------------------------------------------------------------------------------------
@runs_app.command("list")
@friendly_errors
def runs_list(
    limit: Annotated[int, typer.Option(help="Show at most this many runs, newest first.")] = 20,
    strategy: Annotated[str | None, typer.Option(help="Only runs of this strategy.")] = None,
    store: StoreOption = None,
) -> None:
    """List recorded runs, newest first, with their headline metrics."""
    with open_store_cli(store, read_only=True, listing=True) as st:
        runs = st.list_runs(limit=limit, strategy=strategy)
        if runs.empty:
            console.print(f"no runs in {st.address} yet: see btlab backtest --help")
            return
        table = Table(title=f"runs in {st.address}")
        for col in ("run_id", "started", "strategy", "params", "symbols", "tf", "status", "return", "sharpe",
                    "max dd", "trades"):
            table.add_column(col, justify="right" if col in ("return", "sharpe", "max dd", "trades") else "left",
                             no_wrap=col in ("run_id", "started"))
        for row in runs.to_dict("records"):
            table.add_row(
                row["run_id"], f"{row['ts']:%Y-%m-%d %H:%M}", str(row["strategy"]), str(row["params"] or ""),
                str(row["symbols"]), str(row["timeframe"]), str(row["status"]),
                fmt(row.get("total_return"), "pct"), fmt(row.get("sharpe")), fmt(row.get("max_drawdown"), "pct"),
                fmt(row.get("n_trades"), "int"),
            )
        console.print(table)


@runs_app.command("show")
@friendly_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (see btlab runs list).")],
    store: StoreOption = None,
) -> None:
    """Show one run: what was run, on which data, its status and all its metrics."""
    with open_store_cli(store, read_only=True) as st:
        run = st.get_run(run_id)
        info = Table(title=f"run {run_id}", show_header=False)
        info.add_column("field")
        info.add_column("value")
        for key in ("status", "error", "strategy", "params", "exchange", "symbols", "timeframe", "data_from",
                    "data_to", "bars", "calendar", "cash", "commission", "ts", "finished_at", "config_hash",
                    "data_hash", "btlab_version", "backtrader_version", "sweep_id"):
            value = run.get(key)
            if value is not None:
                info.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
        console.print(info)
        if run.get("metrics"):
            console.print(metrics_table(run["metrics"], "metrics"))
            from btlab.backtest.metrics import CONVENTIONS

            m = run["metrics"]
            console.print(f"[dim]{CONVENTIONS.format(periods=m.get('periods_per_year'), calendar=m.get('calendar'))}[/]",
                          highlight=False)
        trades = st.read_trades(run_id)
        console.print(f"{len(trades)} closed trade(s), {len(st.read_orders(run_id))} order event(s); "
                      f"HTML report: btlab report {run_id}")


@runs_app.command("delete")
@friendly_errors
def runs_delete(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (see btlab runs list).", metavar="RUN_ID...")],
    yes: YesOption = False,
    store: StoreOption = None,
) -> None:
    """Delete runs: their run rows and their equity, trades and orders.

    Every id is checked first (an unknown id deletes nothing); shows what will go and asks first (--yes skips
    the question).
    """
    with open_store_cli(store, read_only=True) as st:
        rows = st.run_rows(run_ids)
        address = st.address
    counts = ", ".join(f"{int(rows[t].sum()):,} {t}" for t in rows.columns if t != "run_id" and t != "bt_runs")
    question = f"delete {len(rows)} run(s) ({', '.join(rows['run_id'])}) with {counts} row(s) from {address}?"
    if not confirm(question, yes):
        console.print("nothing deleted", highlight=False)
        raise typer.Exit(1)
    with open_store_cli(store) as st:
        deleted = st.delete_runs(list(rows["run_id"]))
    console.print(f"deleted {deleted.get('bt_runs', 0)} run(s): "
                  + ", ".join(f"{n:,} {t} row(s)" for t, n in deleted.items() if t != "bt_runs")
                  + f" from {address}", highlight=False)


@app.command("report")
@friendly_errors
def report_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (see btlab runs list).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write (default reports/RUN_ID.html).")] = None,
    store: StoreOption = None,
) -> None:
    """Write a run's self-contained HTML report (equity, drawdown, trades on price, monthly returns, metrics)."""
    from btlab.report.html import write_report

    with open_store_cli(store, read_only=True) as st:
        path = write_report(st, run_id, output)
    console.print(f"report: {Path(path).resolve()}", highlight=False)


def main() -> None:
    """Entry point of the ``btlab`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
