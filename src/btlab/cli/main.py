"""The ``btlab`` command: parses arguments, calls the Python API, shows progress. No business logic here.

Start-up is kept short (``btlab --help`` and ``btlab runs list`` import neither pandas nor Backtrader, plotly,
ccxt or Kafka clients): every command imports what it needs inside its body.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from btlab.cli.common import (
    APP_SETTINGS,
    DEBUG,
    BtlabGroup,
    CalendarOption,
    FormatOption,
    FromDayOption,
    OutputFormat,
    SessionOption,
    StoreOption,
    ToDayOption,
    YesOption,
    confirm,
    console,
    friendly_errors,
    metrics_table,
    open_store_cli,
    parse_range,
    progress_bar,
    styled,
)
from btlab.cli.ingest import ingest_app

app = typer.Typer(
    name="btlab",
    cls=BtlabGroup,
    help=(
        "Backtest Backtrader strategies on real market data; every run is stored and reportable.\n\n"
        "Quick start (the bundled BTC/USDT 1h bars):\n\n"
        "\b\n"
        "  btlab data import data/BTC_USDT-1h_2017-08-17_2024-04-21.feather \\\n"
        "      --exchange binance --symbol BTC/USDT --timeframe 1h\n"
        "  btlab backtest --strategy sma_cross --symbol BTC/USDT --timeframe 1h \\\n"
        "      --from 2020-01-01 --to 2023-12-31 -p fast=10 -p slow=30\n"
        "  btlab runs list\n"
        "  btlab report RUN_ID\n\n"
        "Errors print one line and exit 1 (bad input) or 2 (store, broker or exchange unreachable); "
        "--debug adds the traceback. Every command has --help."
    ),
    no_args_is_help=True,
    **APP_SETTINGS,
)
data_app = typer.Typer(help="Import, inspect, resample and delete market data in the store.", no_args_is_help=True,
                       cls=BtlabGroup, **APP_SETTINGS)
runs_app = typer.Typer(help="List, inspect, clean up and delete recorded backtest runs.", no_args_is_help=True,
                       cls=BtlabGroup, **APP_SETTINGS)
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(ingest_app, name="ingest")


def _print_version(value: bool) -> None:
    if not value:
        return
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import btlab

    try:
        backtrader = version("backtrader")
    except PackageNotFoundError:  # pragma: no cover - a dependency
        backtrader = "not installed"
    typer.echo(f"btlab {btlab.__version__} (Backtrader {backtrader}, Python {platform.python_version()} "
               f"{platform.python_implementation()})")
    raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the versions of btlab, Backtrader and Python, then exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", envvar="BTLAB_DEBUG",
                                        help="Print the traceback with an error, and btlab's log messages (retries, "
                                        "reconnects, ...) down to INFO.")] = False,
) -> None:
    DEBUG["on"] = debug
    if debug:
        import logging

        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("btlab").setLevel(logging.INFO)


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

    \b
    Example (the bundled real Binance bars):
      btlab data import data/BTC_USDT-1h_2017-08-17_2024-04-21.feather \\
          --exchange binance --symbol BTC/USDT --timeframe 1h
    """
    from btlab.errors import InvalidArgumentError
    from btlab.marketdata.sources.files.importer import exchange_of, import_bars
    from btlab.marketdata.sources.files.reader import check_bars_file
    from btlab.model.timeframe import Timeframe
    from btlab.model.venue import resolve_venue

    tf = Timeframe.parse(timeframe)
    if not symbol.strip():
        raise InvalidArgumentError("--symbol must not be empty")
    for path in files:  # every file (and its exchange and calendar) is checked before the first is imported
        resolve_venue(exchange_of(path, exchange)[0], calendar)
        check_bars_file(path)
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task("importing", total=len(files))
        for path in files:
            progress.update(task, description=f"importing {path.name}")
            report = import_bars(path, st, exchange=exchange, symbol=symbol, timeframe=tf, calendar=calendar,
                                 allow_timeframe_mismatch=allow_timeframe_mismatch)
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
    gaps: Annotated[int, typer.Option(min=0, help="List at most this many gaps per series (0: none).")] = 10,
    calendar: CalendarOption = None,
    session: SessionOption = None,
    store: StoreOption = None,
) -> None:
    """Per exchange/symbol/timeframe: first and last bar, count, and the gaps (missing bars); then tick coverage.

    Missing bars are counted in the venue's trading time: every slot for 24/7 venues (ccxt ids), only session
    slots for exchange venues (XNYS, nasdaq, ...: nights, weekends and holidays are not missing).
    Tick coverage: first and last trade, count, the range of trade ids, ids missing between them (trade-id gaps)
    and ids stored twice. Times are UTC; a bar's time is its open time.
    """
    from btlab.cli.tables import bar_coverage_table, print_table, tick_coverage_table
    from btlab.errors import InvalidArgumentError
    from btlab.marketdata.quality.coverage import coverage, tick_coverage
    from btlab.model.timeframe import Timeframe

    if timeframe is not None:
        timeframe = Timeframe.parse(timeframe).value
    if gaps < 0:
        raise InvalidArgumentError(f"--gaps must be >= 0, got {gaps}")
    with open_store_cli(store, read_only=True, listing=True) as st:
        frame = coverage(st, exchange=exchange, symbol=symbol, timeframe=timeframe, calendar=calendar, session=session)
        if frame.empty:
            console.print(f"no bars in {st.address}" + (" for that filter" if exchange or symbol or timeframe else ""),
                          highlight=False)
        else:
            print_table(bar_coverage_table(frame, f"bar coverage in {st.address} (times UTC, bar open)"))
            for row in frame.itertuples(index=False):
                if gaps and row.n_gaps:
                    shown = row.gaps.head(gaps)
                    console.print(f"gaps in {row.exchange}:{row.symbol} {row.timeframe} (first {len(shown)} of "
                                  f"{row.n_gaps}):", highlight=False)
                    for g in shown.itertuples(index=False):
                        console.print(f"  {g.gap_start} .. {g.gap_end}: {g.missing_bars:,} bar(s)", highlight=False)
        ticks = tick_coverage(st, exchange=exchange, symbol=symbol)
        if not ticks.empty:
            print_table(tick_coverage_table(ticks, f"tick coverage in {st.address} (times UTC)"))
            for row in ticks.itertuples(index=False):
                id_gaps = row.id_gaps
                if gaps and id_gaps is not None and len(id_gaps):
                    shown = id_gaps.head(gaps)
                    console.print(f"trade-id gaps in {row.exchange}:{row.symbol} (first {len(shown)} of "
                                  f"{len(id_gaps):,}):", highlight=False)
                    for g in shown.itertuples(index=False):
                        console.print(f"  ids {g.id_start:,} .. {g.id_end:,}: {g.missing_ids:,} missing",
                                      highlight=False)


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
    from btlab.marketdata.bars.from_bars import resample_stored_bars
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
    strategy: Annotated[str, typer.Option(help="Bundled name (see btlab strategies), package.module:Class or file.py:Class. The last two import and run that Python code with your permissions (by design): only name code you trust.")] = "sma_cross",
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

    --from and --to take YYYY-MM-DD (whole UTC days, both inclusive) or ISO 8601 times such as
    2021-03-01T12:00Z.

    \b
    Examples:
      btlab backtest --strategy sma_cross --symbol BTC/USDT --timeframe 1h \\
          --from 2020-01-01 --to 2023-12-31 -p fast=10 -p slow=30
      btlab backtest --strategy buy_hold --stake 0.1 --commission 0.0005
      btlab backtest --strategy my_strategies.py:MyStrategy -p period=20
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
            progress.console.print(styled((f"warning: {line}", "yellow")), highlight=False, soft_wrap=True)

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
        console.print(styled((summary.conventions(), "dim")), highlight=False)
        for line in result.warnings:
            if line not in printed:
                console.print(styled((f"warning: {line}", "yellow")), highlight=False, soft_wrap=True)
        console.print(styled("run id: ", (result.run_id, "bold"), f" (stored in {st.address})"), highlight=False)
        if report:
            from btlab.report.html import write_report

            path = write_report(st, result.run_id)
            console.print(f"report: {path.resolve()}", highlight=False)


@app.command("strategies")
@friendly_errors
def strategies() -> None:
    """List the bundled strategies and their parameters (defaults)."""
    from rich.table import Table

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
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="Show at most N runs, newest first.")] = 20,
    strategy: Annotated[str | None, typer.Option(metavar="NAME",
                                                 help="Only runs of this strategy (as recorded: sma_cross, "
                                                 "pkg.module:Class, file.py:Class; only compared with the "
                                                 "recorded name, nothing is imported or run).")] = None,
    wide: Annotated[bool, typer.Option("--wide", "-w", help="All columns: every setting, metric, hash and "
                                       "version, nothing shortened.")] = False,
    output: FormatOption = OutputFormat.table,
    store: StoreOption = None,
) -> None:
    """List recorded runs, newest first: what ran on which data, status and headline metrics.

    The table fits 80 columns: the id column shows the last 8 hex digits of each run id, which btlab runs show
    and btlab report accept. Settings that change a result (cash, commission, sizing, slippage) are shown per
    run where the listed runs differ, else once below the table. A run still marked running whose recorder has
    not written a heartbeat for 2 minutes is shown as stale (killed): see btlab runs cleanup.

    \b
    Examples:
      btlab runs list --strategy sma_cross --limit 5
      btlab runs list --wide
      btlab runs list --format csv > runs.csv
    """
    from btlab.backtest.runs import list_runs, run_settings
    from btlab.cli.tables import RECORD_COLUMNS, print_table, runs_table, wide_records, wide_table, write_csv, write_json

    with open_store_cli(store, read_only=True, listing=True) as st:
        runs = list_runs(st, limit=limit, strategy=strategy)
        address = st.address
    settings = [run_settings(run) for run in runs]
    if output is not OutputFormat.table:
        records = wide_records(runs, settings)
        if output is OutputFormat.json:
            write_json(records)
        else:
            columns = list(dict.fromkeys([*RECORD_COLUMNS, *(k for r in records for k in r)]))
            write_csv(records, columns)
        return
    if not runs:
        console.print(f"no runs in {address} yet: see btlab backtest --help", highlight=False)
        return
    title = f"{len(runs)} most recent run(s) in {address}"
    if wide:
        print_table(wide_table(wide_records(runs, settings), title))
        return
    table, notes = runs_table(runs, settings, title)
    print_table(table)
    for line in notes:
        console.print(line, highlight=False, markup=False)


@runs_app.command("show")
@friendly_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID",
                                          help="Run id, or a unique part of it such as the 8 hex digits "
                                          "btlab runs list shows.")],
    output: FormatOption = OutputFormat.table,
    store: StoreOption = None,
) -> None:
    """Show one run: status, what ran on which data with which settings, how to reproduce it, all its metrics."""
    from datetime import datetime, timezone

    from btlab.backtest.runs import get_run, run_settings
    from btlab.cli.tables import print_table, run_detail_table, wide_records, write_csv, write_json

    now = datetime.now(timezone.utc)
    with open_store_cli(store, read_only=True) as st:
        run = get_run(st, run_id, now=now)
        if output is not OutputFormat.table:
            record = wide_records([run], [run_settings(run)])[0]
            if output is OutputFormat.json:
                write_json(record)
            else:
                write_csv([record])
            return
        print_table(run_detail_table(run, run_settings(run), now=now))
        if run.get("metrics"):
            console.print(metrics_table(run["metrics"], "metrics"))
            from btlab.backtest.metrics import CONVENTIONS

            m = run["metrics"]
            console.print(styled((CONVENTIONS.format(periods=m.get("periods_per_year"), calendar=m.get("calendar")),
                                  "dim")), highlight=False)
        trades = st.read_trades(run["run_id"])
        console.print(f"{len(trades):,} closed trade(s), {len(st.read_orders(run['run_id'])):,} order event(s)",
                      highlight=False)
        console.print(f"HTML report: btlab report {run['run_id']}", highlight=False)


@runs_app.command("cleanup")
@friendly_errors
def runs_cleanup(
    older_than: Annotated[str, typer.Option(metavar="DURATION",
                                            help="A run still marked running without a heartbeat for this long is "
                                            "stale: 90s, 2m, 1h, 3d.")] = "2m",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Mark them without asking.")] = False,
    store: StoreOption = None,
) -> None:
    """Mark runs killed without warning (SIGKILL, power loss) as interrupted.

    Such runs stay "running" in the store. The recorder writes a heartbeat every few seconds, so a running run
    whose heartbeat is older than --older-than (or that has none) is presumed killed. Lists them, asks, then
    marks each interrupted with the error "no heartbeat since ..., presumed killed"; its rows are kept.
    """
    from btlab.backtest.runs import cleanup_stale_runs, find_stale_runs
    from btlab.cli.tables import print_table, runs_table
    from btlab.errors import InvalidArgumentError
    from btlab.model.timebounds import parse_duration

    older = parse_duration(older_than, what="--older-than")
    with open_store_cli(store) as st:
        stale = find_stale_runs(st, older_than=older)
        if not stale:
            console.print(f"no stale runs in {st.address} (running, no heartbeat for {older_than})", highlight=False)
            return
        from btlab.backtest.runs import run_settings

        shown = [{**r, "status": "stale"} for r in stale]
        table, notes = runs_table(shown, [run_settings(r) for r in shown], f"{len(stale)} stale run(s) in {st.address}")
        print_table(table)
        for line in notes:
            console.print(line, highlight=False, markup=False)
        if not yes:
            if not sys.stdin.isatty():
                raise InvalidArgumentError(f"{len(stale)} stale run(s) left as they are: confirm with --yes")
            if not typer.confirm(f"Mark {len(stale)} run(s) interrupted?", default=False):
                console.print("nothing changed")
                return
        marked = cleanup_stale_runs(st, older_than=older, run_ids=[r["run_id"] for r in stale])
        console.print(f"marked {len(marked)} run(s) interrupted: {', '.join(r['run_id'] for r in marked) or 'none'}"
                      + (f" ({len(stale) - len(marked)} came back to life)" if len(marked) < len(stale) else ""),
                      highlight=False)


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
        rows = st.run_row_counts(run_ids)
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
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID",
                                          help="Run id, or a unique part of it (see btlab runs list).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="HTML file to write (default reports/RUN_ID.html).")] = None,
    store: StoreOption = None,
) -> None:
    """Write a run's self-contained HTML report (equity, drawdown, trades on price, monthly returns, metrics)."""
    from btlab.backtest.runs import resolve_run_id
    from btlab.report.html import write_report

    with open_store_cli(store, read_only=True) as st:
        path = write_report(st, resolve_run_id(st, run_id), output)
    console.print(f"report: {Path(path).resolve()}", highlight=False)


def main() -> None:
    """Entry point of the ``btlab`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
