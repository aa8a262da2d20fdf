"""The ``btlab`` command: parses arguments, calls the Python API, shows progress. No business logic here.

Start-up is kept short (``btlab --help`` and ``btlab runs list`` import neither pandas nor Backtrader, plotly,
ccxt or Kafka clients): every command imports what it needs inside its body.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from btlab.cli import show
from btlab.signals import on_stop_signals
from btlab.cli.common import (
    APP_SETTINGS,
    DEBUG,
    AllowGapsOption,
    AllowMismatchOption,
    AllowPartialOption,
    BarFilesArgument,
    BarSourceOption,
    BtlabGroup,
    CalendarOption,
    CashOption,
    CommissionOption,
    ExchangeOption,
    FormatOption,
    FromOption,
    KafkaOption,
    GapsOption,
    LimitOption,
    OlderThanOption,
    OutputFileOption,
    OutputFormat,
    ParamOption,
    ReportOption,
    ResampleOption,
    RunIdArgument,
    RunIdsArgument,
    SessionOption,
    SizePctOption,
    SkipInvalidOption,
    SlippageFixedOption,
    SlippagePctOption,
    SourceTimeframeOption,
    StakeOption,
    StoreOption,
    StrategyFilterOption,
    StrategyOption,
    SymbolFromFileOption,
    SymbolOption,
    SymbolsOption,
    TimeframeOption,
    ToOption,
    TopicOption,
    WideOption,
    YesOption,
    confirm,
    console,
    err_console,
    friendly_errors,
    need_text,
    open_store_cli,
    parse_range,
    progress_bar,
    progress_task,
    warn,
)
from btlab.cli.dashboards import dashboards_app
from btlab.cli.health import health
from btlab.cli.ingest import ingest_app
from btlab.cli.paper import paper
from btlab.cli.replay import kafka_source, replay
from btlab.cli.rl import rl_app
from btlab.cli.sink import sink
from btlab.cli.sweep import sweep_app
from btlab.cli.walkforward import walkforward

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
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(sweep_app, name="sweep")
app.add_typer(rl_app, name="rl")
app.command("health")(health)
app.command("replay")(replay)
app.command("sink")(sink)
app.command("paper")(paper)
app.command("walkforward")(walkforward)


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
    files: BarFilesArgument,
    exchange: ExchangeOption = None,
    symbol: SymbolOption = None,
    symbol_from_file: SymbolFromFileOption = False,
    timeframe: TimeframeOption = ...,
    calendar: CalendarOption = None,
    allow_timeframe_mismatch: AllowMismatchOption = False,
    skip_invalid: SkipInvalidOption = False,
    store: StoreOption = None,
) -> None:
    """Import OHLCV bars from files, or folders of files, into the store.

    Accepts data.binance.vision kline CSVs (with or without header, ms or µs open times, zipped or not) and
    CSV/feather/parquet files with a time column (ts, timestamp, date, datetime, open_time) and open, high, low,
    close, volume (Yahoo's Date, Open, High, Low, Close, Adj Close, Volume too: Adj Close is ignored). Each file
    is validated completely first: a bad file is rejected with its row (the file line) and column and nothing
    from it is written; so is a line with more or fewer fields than the header, and a missing (NaN) or
    inconsistent price (e.g. a close below the low): btlab does not repair data. --skip-invalid imports the
    other files and lists the rejected ones. Bars spaced by a whole multiple of --timeframe (e.g. 1h bars
    imported as 1m) are refused, asking which timeframe was meant. Re-importing a file changes nothing.
    --exchange is required, unless the file has a data.binance.vision kline name (then binance, said in the
    output). Give --symbol, or --symbol-from-file for a folder of one file per instrument. Ctrl-C or SIGTERM stops
    between files (the file in hand is finished; exit 130/143): the same command again imports the rest.

    \b
    Examples (bundled real data):
      btlab data import data/BTC_USDT-1h_2017-08-17_2024-04-21.feather \\
          --exchange binance --symbol BTC/USDT --timeframe 1h
      btlab data import data/sp500_daily/individual_stocks_5yr \\
          --exchange nyse --timeframe 1d --symbol-from-file
      btlab data import data/sp500_daily/index/GSPC_2013-02-08_2018-02-07.csv.gz \\
          --exchange nyse --timeframe 1d --symbol ^GSPC
    """
    from btlab.errors import DataValidationError, InvalidArgumentError
    from btlab.marketdata.sources.files.folder import bar_files, symbol_of_file
    from btlab.marketdata.sources.files.importer import exchange_of, import_bars
    from btlab.model.timeframe import Timeframe
    from btlab.model.venue import resolve_venue

    if (symbol is None) == (not symbol_from_file):
        raise InvalidArgumentError("give --symbol SYMBOL or --symbol-from-file (each file's own symbol), one of them")
    tf = Timeframe.parse(timeframe)
    fixed = None if symbol_from_file else need_text(symbol or "", "--symbol")
    paths = bar_files(files)
    for path in paths:  # every file's exchange and calendar is checked before the first is imported
        resolve_venue(exchange_of(path, exchange)[0], calendar)
    skipped: list[str] = []
    stop: list[int] = []  # the signal that asked to stop: the file in hand is finished, the rest left
    with open_store_cli(store) as st, progress_bar() as progress, on_stop_signals(stop.append):
        task = progress.add_task("importing", total=len(paths))
        for n, path in enumerate(paths):
            if stop:
                _import_interrupted(stop[0], n, len(paths))
            progress.update(task, description=f"importing {path.name}")
            try:
                name = fixed or symbol_of_file(path)
                report = import_bars(path, st, exchange=exchange, symbol=name, timeframe=tf, calendar=calendar,
                                     allow_timeframe_mismatch=allow_timeframe_mismatch)
            except DataValidationError as exc:
                if not skip_invalid and len(paths) > 1:
                    done = paths.index(path)
                    raise DataValidationError(exc.source, f"{exc.reason} (file {done + 1} of {len(paths)}; the "
                                              f"{done} before it are imported; --skip-invalid imports the others)",
                                              row=exc.row, column=exc.column) from None
                if not skip_invalid:
                    raise
                skipped.append(str(exc))
                err_console.print(f"skipped {exc}", highlight=False, markup=False)
            else:
                console.print(show.import_line(path, report, timeframe, name, st.address), highlight=False)
            progress.advance(task)
    if skipped:
        console.print(f"{len(paths) - len(skipped)} of {len(paths)} files imported; {len(skipped)} invalid "
                      "file(s) skipped (listed above on stderr)", highlight=False)


def _import_interrupted(signum: int, done: int, total: int) -> None:
    """Stop a folder import between files: what is imported stays (each file is all or nothing)."""
    import signal

    from btlab.errors import RunInterruptedError

    name = signal.Signals(signum).name
    raise RunInterruptedError(f"import stopped by {name} after {done} of {total} files; each of them is imported "
                              "whole and the others not at all (the same command again imports the rest: re-imported "
                              "files change nothing)", run_id="", signal_name=name, signal_number=signum)


@data_app.command("coverage")
@friendly_errors
def data_coverage(
    exchange: ExchangeOption = None,
    symbol: SymbolOption = None,
    timeframe: TimeframeOption = None,
    gaps: GapsOption = 10,
    calendar: CalendarOption = None,
    session: SessionOption = None,
    store: StoreOption = None,
) -> None:
    """Per exchange/symbol/timeframe: first and last bar, count, and the gaps (missing bars); then tick coverage.

    --exchange, --symbol and --timeframe, when given, select the series shown. Missing bars are counted in the
    venue's trading time: every slot for 24/7 venues (ccxt ids), only session slots for exchange venues (XNYS,
    nasdaq, ...: nights, weekends and holidays are not missing). Tick coverage: first and last trade, count, the
    range of trade ids, ids missing between them (trade-id gaps) and ids stored twice. Times are UTC; a bar's time
    is its open time.
    """
    from btlab.marketdata.quality.coverage import coverage, tick_coverage
    from btlab.model.timeframe import Timeframe

    timeframe = Timeframe.parse(timeframe).value if timeframe is not None else None
    with open_store_cli(store, read_only=True, listing=True) as st:
        frame = coverage(st, exchange=exchange, symbol=symbol, timeframe=timeframe, calendar=calendar, session=session)
        show.bar_coverage(frame, st.address, gaps=gaps, filtered=bool(exchange or symbol or timeframe))
        show.tick_coverage(tick_coverage(st, exchange=exchange, symbol=symbol), st.address, gaps=gaps)


@data_app.command("resample")
@friendly_errors
def data_resample(
    exchange: ExchangeOption = ...,
    symbol: SymbolOption = ...,
    source_timeframe: SourceTimeframeOption = ...,
    timeframe: TimeframeOption = ...,
    from_: FromOption = None,
    to: ToOption = None,
    allow_partial: AllowPartialOption = False,
    store: StoreOption = None,
) -> None:
    """Build higher-timeframe bars from stored bars and store them (e.g. 4h from 1h).

    --timeframe is the timeframe to build: a whole multiple of --source-timeframe, e.g. 4h from 1h. Only complete
    windows are built (every source bar present), so each bar equals the exchange's own bar of that timeframe;
    windows with missing source bars are skipped and counted. Running it again changes nothing.
    """
    from btlab.errors import InvalidArgumentError
    from btlab.marketdata.bars.from_bars import resample_stored_bars
    from btlab.model.timeframe import Timeframe

    src, tgt = Timeframe.parse(source_timeframe), Timeframe.parse(timeframe)
    if tgt.nanos <= src.nanos or tgt.nanos % src.nanos:
        raise InvalidArgumentError(f"--timeframe {tgt} must be a whole multiple of --source-timeframe {src}, and longer")
    need_text(exchange, "--exchange")
    need_text(symbol, "--symbol")
    start, end = parse_range(from_, to)
    with open_store_cli(store, existing=True) as st:
        with progress_task(f"{exchange}:{symbol} {src} -> {tgt}") as progress:
            report = resample_stored_bars(st, exchange=exchange, symbol=symbol, source_timeframe=src, timeframe=tgt,
                                          start=start, end=end, allow_partial=allow_partial, progress=progress)
        console.print(f"{report} -> {st.address}", highlight=False)


@data_app.command("delete")
@friendly_errors
def data_delete(
    exchange: ExchangeOption = ...,
    symbol: SymbolOption = ...,
    timeframe: TimeframeOption = ...,
    from_: FromOption = None,
    to: ToOption = None,
    yes: YesOption = False,
    store: StoreOption = None,
) -> None:
    """Delete stored bars: a whole series, or the part of it from --from to --to (inclusive days).

    Shows how many bars will go and asks first (--yes skips the question). Ticks are not touched.
    """
    from btlab.errors import NoDataError
    from btlab.model.timeframe import Timeframe

    tf = Timeframe.parse(timeframe)
    need_text(exchange, "--exchange")
    need_text(symbol, "--symbol")
    start, end = parse_range(from_, to)
    with open_store_cli(store, read_only=True) as st:
        span, address = st.bar_span(exchange=exchange, symbol=symbol, timeframe=tf, start=start, end=end), st.address
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
    strategy: StrategyOption = "sma_cross",
    symbol: SymbolOption = None,
    symbols: SymbolsOption = None,
    exchange: ExchangeOption = "binance",
    timeframe: TimeframeOption = "1h",
    resample: ResampleOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    param: ParamOption = None,
    cash: CashOption = 10_000.0,
    commission: CommissionOption = 0.001,
    size_pct: SizePctOption = 95.0,
    stake: StakeOption = None,
    slippage_pct: SlippagePctOption = 0.0,
    slippage_fixed: SlippageFixedOption = 0.0,
    calendar: CalendarOption = None,
    session: SessionOption = None,
    allow_gaps: AllowGapsOption = False,
    report: ReportOption = True,
    store: StoreOption = None,
    source: BarSourceOption = "store",
    topic: TopicOption = None,
    kafka: KafkaOption = None,
) -> None:
    """Run a strategy on stored bars; record the run, print its metrics and write its HTML report.

    Orders fill at the next bar's open (Backtrader's default). Every run is stored with its parameters,
    equity curve, trades and orders: see btlab runs list / btlab runs show / btlab report. Before the run, bad
    settings, a range shorter than the strategy's warm-up and gaps over the limit are refused; gaps under it and
    orders that ended without a fill (Margin, Rejected, Canceled) are printed as warnings. Ctrl-C or SIGTERM stops
    the run after the current bar and stores it as interrupted (exit 130/143).

    The instrument is --symbol (default BTC/USDT), or --symbols for several in one run: the strategy gets one
    feed per symbol (self.datas in that order), aligned by time, and one portfolio. --timeframe is the timeframe
    of the stored bars (the base feeds). --from and --to take YYYY-MM-DD (whole UTC days, both inclusive) or ISO
    8601 times such as 2021-03-01T12:00Z.

    \b
    Examples:
      btlab backtest --strategy sma_cross --symbol BTC/USDT --timeframe 1h \\
          --from 2020-01-01 --to 2023-12-31 -p fast=10 -p slow=30
      btlab backtest --strategy buy_hold --stake 0.1 --commission 0.0005
      btlab backtest --strategy my_strategies.py:MyStrategy -p period=20
    """
    from btlab.backtest.registry import parse_param_pairs
    from btlab.backtest.runner import check_backtest, run_backtest

    request = dict(
        symbol=symbol, symbols=symbols, exchange=exchange,
        timeframes=[timeframe, *(resample.split(",") if resample else [])], start=from_, end=to, params=parse_param_pairs(param), cash=cash, commission=commission, size_pct=size_pct,
        stake=stake, slippage_pct=slippage_pct, slippage_fixed=slippage_fixed, calendar=calendar, session=session,
    )
    check_backtest(strategy, **request)  # every argument is checked before the store is opened
    bar_source = kafka_source(source, topic, kafka, timeframe)  # --source kafka: bars from a replayed topic
    with open_store_cli(store, existing=True) as st:
        with progress_task(f"{strategy} on {exchange}:{symbols or symbol or 'BTC/USDT'} {timeframe}") as progress:
            result = run_backtest(strategy, **request, allow_gaps=allow_gaps, store=st, progress=progress,
                                  on_warning=progress.warn, source=bar_source)
        show.backtest_result(result, exchange=exchange, feeds=timeframe + (f" (+{resample})" if resample else ""),
                             warned=progress.warned, address=st.address)
        _track(result, st)
        if report:
            from btlab.report import write_report

            console.print(f"report: {write_report(result.run_id, store=st).resolve()}", highlight=False,
                          soft_wrap=True)  # a path on one line, whatever its length (copied, clicked)


def _track(result: Any, st: Any) -> None:
    """For an index-tracking run (mp_tracker): run the two baseline baskets on the same bars, record the tracking
    table with the run (the report shows it) and print it; a run without a fill gets a warning instead."""
    from btlab.backtest.tracking import is_tracking_run, track_result
    from btlab.errors import InvalidArgumentError

    if not is_tracking_run(result):
        return
    try:
        with progress_task("tracking baselines (equal_weight_k, top_k_corr)"):
            tracked = track_result(result, store=st)
    except InvalidArgumentError as exc:
        warn(f"no tracking figures: {exc}")
        return
    show.tracking(tracked.record)


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
    limit: LimitOption = 20,
    strategy: StrategyFilterOption = None,
    wide: WideOption = False,
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
    from btlab.backtest.runs import list_runs

    with open_store_cli(store, read_only=True, listing=True) as st:
        runs = list_runs(st, limit=limit, strategy=strategy)
        address = st.address
    show.runs_listing(runs, output, wide=wide, address=address)


@runs_app.command("show")
@friendly_errors
def runs_show(run_id: RunIdArgument, output: FormatOption = OutputFormat.table, store: StoreOption = None) -> None:
    """Show one run: status, what ran on which data with which settings, how to reproduce it, all its metrics."""
    from datetime import datetime, timezone

    from btlab.backtest.runs import get_run

    now = datetime.now(timezone.utc)
    with open_store_cli(store, read_only=True) as st:
        show.run_detail(st, get_run(st, run_id, now=now), output, now=now)


@runs_app.command("cleanup")
@friendly_errors
def runs_cleanup(older_than: OlderThanOption = "2m", yes: YesOption = False, store: StoreOption = None) -> None:
    """Mark runs killed without warning (SIGKILL, power loss) as interrupted.

    Such runs stay "running" in the store. The recorder writes a heartbeat every few seconds, so a running run
    whose heartbeat is older than --older-than (or that has none) is presumed killed. Lists them, asks, then
    marks each interrupted with the error "no heartbeat since ..., presumed killed"; its rows are kept.
    """
    from btlab.backtest.runs import cleanup_stale_runs, find_stale_runs
    from btlab.model.timebounds import parse_duration

    older = parse_duration(older_than, what="--older-than")
    with open_store_cli(store, existing=True) as st:
        stale = find_stale_runs(st, older_than=older)
        if not stale:
            console.print(f"no stale runs in {st.address} (running, no heartbeat for {older_than})", highlight=False)
            return
        show.runs_table([{**r, "status": "stale"} for r in stale], f"{len(stale)} stale run(s) in {st.address}")
        if show.ask_to_mark(stale, yes):
            marked = cleanup_stale_runs(st, older_than=older, run_ids=[r["run_id"] for r in stale])
            console.print(show.marked_line(marked, stale), highlight=False)


@runs_app.command("delete")
@friendly_errors
def runs_delete(run_ids: RunIdsArgument, yes: YesOption = False, store: StoreOption = None) -> None:
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
def report_cmd(run_id: RunIdArgument, output: OutputFileOption = None, store: StoreOption = None) -> None:
    """Write a run's self-contained HTML report (equity, drawdown, trades on price, monthly returns, metrics)."""
    from btlab.backtest.runs import resolve_run_id
    from btlab.report import write_report

    with open_store_cli(store, read_only=True) as st:
        path = write_report(resolve_run_id(st, run_id), output, store=st)
    console.print(f"report: {Path(path).resolve()}", highlight=False)


def main() -> None:
    """Entry point of the ``btlab`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
