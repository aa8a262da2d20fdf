"""The ``btlab`` command: parses arguments, calls the Python API, shows progress. No business logic here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from btlab.cli.ingest import ingest_app
from btlab.cli.common import (
    CalendarOption,
    SessionOption,
    StoreOption,
    console,
    fmt,
    friendly_errors,
    metrics_table,
    open_store_cli,
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
data_app = typer.Typer(help="Import and inspect market data in the store.", no_args_is_help=True)
runs_app = typer.Typer(help="List and inspect recorded backtest runs.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(ingest_app, name="ingest")

# ---- data --------------------------------------------------------------------------------------------------------
@data_app.command("import")
@friendly_errors
def data_import(
    files: Annotated[list[Path], typer.Argument(help="CSV (.csv, .csv.gz, .zip), feather or parquet files.")],
    exchange: Annotated[str | None, typer.Option(
        help="Venue of the bars: a ccxt exchange id (binance: 24/7) or an equity venue (XNYS/nyse, XNAS/nasdaq, "
        "...). Required, unless the file has a data.binance.vision kline name (then binance, said in the output).",
        show_default=False)] = None,
    symbol: Annotated[str, typer.Option(help="Unified symbol, e.g. BTC/USDT (or a ticker such as AAPL).")] = ...,
    timeframe: Annotated[str, typer.Option(help="ccxt timeframe of the bars: 1m, 5m, 1h, 1d, ...")] = ...,
    calendar: CalendarOption = None,
    store: StoreOption = None,
) -> None:
    """Import OHLCV bars from files into the store.

    Accepts data.binance.vision kline CSVs (with or without header, ms or µs open times, zipped or not) and
    CSV/feather/parquet files with a time column (ts, timestamp, date, datetime, open_time) and open, high, low,
    close, volume. Each file is validated completely first: a bad file is rejected with its row and column and
    nothing from it is written. Re-importing a file changes nothing.
    """
    from btlab.marketdata.files import exchange_of, import_bars
    from btlab.model.venue import resolve_venue

    for path in files:  # every file's exchange (and calendar) is checked before any work
        resolve_venue(exchange_of(path, exchange)[0], calendar)
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task("importing", total=len(files))
        for path in files:
            progress.update(task, description=f"importing {path.name}")
            report = import_bars(path, st, exchange=exchange, symbol=symbol, timeframe=timeframe, calendar=calendar)
            progress.advance(task)
            where = "" if report.calendar == "24/7" else f" in {report.calendar} regular sessions"
            gaps = f", {report.gaps:,} missing bar(s){where} between them" if report.gaps else f", no gaps{where}"
            if report.outside_session:
                gaps += f" ({report.outside_session:,} bars outside them: extended hours)"
            assumed = f" ({report.assumed})" if report.assumed else ""
            console.print(
                f"{path}: {report.rows:,} {timeframe} bars for {report.exchange}:{symbol}{assumed}, {report.first} .. "
                f"{report.last}{gaps} -> {st.address}",
                highlight=False,
            )


@data_app.command("coverage")
@friendly_errors
def data_coverage(
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Only this timeframe.")] = None,
    gaps: Annotated[int, typer.Option(help="List at most this many gaps per series (0: none).")] = 10,
    calendar: CalendarOption = None,
    session: SessionOption = None,
    store: StoreOption = None,
) -> None:
    """Per exchange/symbol/timeframe: first and last bar, count, and the gaps (missing bars); then tick coverage.

    Missing bars are counted in the venue's trading time: every slot for 24/7 venues (ccxt ids), only session
    slots for exchange venues (XNYS, nasdaq, ...: nights, weekends and holidays are not missing).
    """
    from btlab.marketdata.coverage import coverage, tick_coverage

    with open_store_cli(store) as st:
        frame = coverage(st, exchange=exchange, symbol=symbol, timeframe=timeframe, calendar=calendar, session=session)
        if frame.empty:
            console.print(f"no bars in {st.address}" + (" for that filter" if exchange or symbol or timeframe else ""))
        else:
            table = Table(title=f"bar coverage in {st.address}")
            for col in ("exchange", "symbol", "timeframe", "first", "last", "bars", "missing", "gaps", "calendar"):
                table.add_column(col, justify="right" if col in ("bars", "missing", "gaps") else "left")
            for row in frame.itertuples(index=False):
                table.add_row(row.exchange, row.symbol, row.timeframe, str(row.first), str(row.last),
                              f"{row.bars:,}", f"{row.missing_bars:,}", f"{row.n_gaps:,}", row.calendar)
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


# ---- backtest ----------------------------------------------------------------------------------------------------
@app.command("backtest")
@friendly_errors
def backtest(
    strategy: Annotated[str, typer.Option(help="Bundled name (see btlab strategies), package.module:Class or file.py:Class.")] = "sma_cross",
    symbol: Annotated[str | None, typer.Option(help="Instrument symbol in the store, e.g. BTC/USDT (default BTC/USDT).", show_default=False)] = None,
    symbols: Annotated[str | None, typer.Option(help="Several instruments in one run, comma-separated, e.g. BTC/USDT,ETH/USDT: the strategy gets one feed per symbol (self.datas in this order), aligned by time; one portfolio.", show_default=False)] = None,
    exchange: Annotated[str, typer.Option(help="Exchange id of the stored bars.")] = "binance",
    timeframe: Annotated[str, typer.Option(help="Timeframe of the stored bars (the base feeds).")] = "1h",
    resample: Annotated[str | None, typer.Option(help="Also feed these timeframes, built from the stored bars by Backtrader's resampler, comma-separated, e.g. 1h,1d (each divides a day, or 1d). Feeds after the base ones, per timeframe then symbol, named SYMBOL@TF (e.g. BTC/USDT@1h); a bar is seen once its window has closed.", show_default=False)] = None,
    from_: Annotated[str | None, typer.Option("--from", help="First day (UTC, inclusive), e.g. 2020-01-01.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day (UTC, inclusive), e.g. 2023-12-31.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Strategy parameter name=value (repeatable).")] = None,
    cash: Annotated[float, typer.Option(help="Starting cash in quote currency.")] = 10_000.0,
    commission: Annotated[float, typer.Option(help="Commission as a fraction of traded value (0.001 = 0.1 %), below 1.")] = 0.001,
    size_pct: Annotated[float, typer.Option(help="Order size as percent of available cash.")] = 95.0,
    stake: Annotated[float | None, typer.Option(help="Fixed order size in units (overrides --size-pct).")] = None,
    slippage_pct: Annotated[float, typer.Option(help="Slippage as a fraction of price (0.0005 = 5 bp), below 0.5.")] = 0.0,
    slippage_fixed: Annotated[float, typer.Option(help="Slippage in price units, below the median price (ignored if --slippage-pct).")] = 0.0,
    calendar: CalendarOption = None,
    session: SessionOption = None,
    allow_gaps: Annotated[bool, typer.Option("--allow-gaps", help="Run even across missing bars over the limit: one gap longer than 7 days, or more than 5 % of the range missing (gaps are always reported).")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Also write the HTML report.")] = True,
    store: StoreOption = None,
) -> None:
    """Run a strategy on stored bars; record the run, print its metrics and write its HTML report.

    Orders fill at the next bar's open (Backtrader's default). Every run is stored with its parameters,
    equity curve, trades and orders: see btlab runs list / btlab runs show / btlab report. Before the run, bad
    settings, a range shorter than the strategy's warm-up and gaps over the limit are refused; gaps under it and
    orders that ended without a fill (Margin, Rejected, Canceled) are printed as warnings. Ctrl-C or SIGTERM stops
    the run after the current bar and stores it as interrupted (exit 130/143).
    """
    from btlab.backtest.registry import parse_param_pairs
    from btlab.backtest.runner import run_backtest

    params = parse_param_pairs(param)
    timeframes = [timeframe, *(resample.split(",") if resample else [])]
    with open_store_cli(store) as st, progress_bar() as progress:
        shown_symbols = symbols or symbol or "BTC/USDT"
        task = progress.add_task(f"{strategy} on {exchange}:{shown_symbols} {timeframe}", total=None)
        printed: list[str] = []

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        def on_warning(line: str) -> None:
            printed.append(line)
            progress.console.print(f"[yellow]warning: {escape(line)}[/]", highlight=False, soft_wrap=True)

        result = run_backtest(
            strategy, symbol=symbol, symbols=symbols, exchange=exchange, timeframes=timeframes, start=from_, end=to,
            params=params, cash=cash, commission=commission, size_pct=size_pct, stake=stake,
            slippage_pct=slippage_pct, slippage_fixed=slippage_fixed, calendar=calendar, session=session,
            allow_gaps=allow_gaps, store=st, progress=on_progress, on_warning=on_warning,
        )
        progress.stop()
        summary = result.summary
        shown = ", ".join(f"{k}={v}" for k, v in result.config.params.items())
        feeds = timeframe + (f" (+{resample})" if resample else "")
        console.print(metrics_table(summary.as_dict(), f"{result.config.strategy}({shown}) on {exchange}:{result.config.symbol} {feeds}"))
        console.print(f"[dim]{summary.conventions()}[/]", highlight=False)
        for line in result.warnings:
            if line not in printed:
                console.print(f"[yellow]warning: {escape(line)}[/]", highlight=False, soft_wrap=True)
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
    with open_store_cli(store) as st:
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
    with open_store_cli(store) as st:
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


@app.command("report")
@friendly_errors
def report_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (see btlab runs list).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write (default reports/RUN_ID.html).")] = None,
    store: StoreOption = None,
) -> None:
    """Write a run's self-contained HTML report (equity, drawdown, trades on price, monthly returns, metrics)."""
    from btlab.report.html import write_report

    with open_store_cli(store) as st:
        path = write_report(st, run_id, output)
    console.print(f"report: {Path(path).resolve()}", highlight=False)


def main() -> None:
    """Entry point of the ``btlab`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
