"""``btlab sweep ...``: run a parameter grid (:func:`btlab.sweep.run.run_sweep`), list and show sweeps, re-run the
best combinations in full (:func:`btlab.sweep.top.rerun_top`) and write the sweep report
(:func:`btlab.report.sweep.write_sweep_report`). Handlers parse and call; the tables are built below them."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import typer

from btlab.cli.common import (
    APP_SETTINGS,
    BtlabGroup,
    ByOption,
    CalendarOption,
    CashOption,
    CommissionOption,
    ConstraintOption,
    EngineOption,
    ExchangeOption,
    FormatOption,
    FromOption,
    GridOption,
    GridParamOption,
    LimitOption,
    MetricOption,
    OutputFileOption,
    OutputFormat,
    ResampleOption,
    SampleOption,
    SchedulerOption,
    SeedOption,
    SessionOption,
    SizePctOption,
    StoreOption,
    StrategyOption,
    SweepIdArgument,
    SweepIdOption,
    SymbolsOption,
    TimeframeOption,
    ToOption,
    TopNOption,
    WorkersOption,
    XParamOption,
    YParamOption,
    console,
    err_console,
    fmt,
    friendly_errors,
    need_text,
    open_store_cli,
    plain,
    progress_task,
)

sweep_app = typer.Typer(
    help="Parameter sweeps: run a grid of combinations on Dask, list and show sweeps, re-run the best ones with "
    "full recording, write the sweep's HTML report.", no_args_is_help=True, cls=BtlabGroup, **APP_SETTINGS)

#: Metric columns shown next to the ranking metric in ``show`` and ``top``: (column, unit).
SHOWN_METRICS = (("sharpe", "ratio"), ("total_return", "pct"), ("max_drawdown", "pct"), ("n_trades", "int"))


@sweep_app.command("run")
@friendly_errors
def sweep_run(
    strategy: StrategyOption = ...,
    grid: GridOption = None,
    grid_param: GridParamOption = None,
    constraint: ConstraintOption = None,
    sample: SampleOption = None,
    seed: SeedOption = None,
    exchange: ExchangeOption = "binance",
    symbols: SymbolsOption = ...,
    timeframe: TimeframeOption = "1h",
    resample: ResampleOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    engine: EngineOption = "backtrader",
    sweep_id: SweepIdOption = None,
    cash: CashOption = 10_000.0,
    commission: CommissionOption = 0.001,
    size_pct: SizePctOption = 95.0,
    calendar: CalendarOption = None,
    session: SessionOption = None,
    store: StoreOption = None,
) -> None:
    """Run every combination of a parameter grid and store each result as it finishes.

    The grid comes from --grid (YAML) and/or --grid-param specs, filtered by --constraint and drawn by --sample.
    Combinations run on a local Dask cluster (--workers) or on --scheduler (BTLAB_DASK_SCHEDULER). Each is a
    bt_runs row with the sweep's id (metrics only: btlab sweep top re-runs the best with equity and trades); the
    sweep is a bt_sweeps row. Running the same command with --sweep-id again skips finished combinations. A
    combination that raises is stored as failed and the sweep goes on. Ctrl-C or SIGTERM stops it after the
    running combinations, keeps what finished and exits 130/143. --resample (Backtrader engine) adds timeframes
    built from the stored bars to every run, e.g. 1d for regime_fsm; btlab sweep top re-runs with them too.

    \b
    Example (grid.yaml: params: {fast: {range: [5, 50, 5]}, slow: [50, 100, 200]}):
      btlab sweep run --strategy sma_cross --grid grid.yaml --constraint "fast < slow" \\
          --exchange binance --symbols BTC/USDT --timeframe 1h --from 2020-01-01 --to 2023-12-31
    """
    from btlab.sweep.run import run_sweep

    names, spec = need_text(symbols, "--symbols"), _grid(grid, grid_param or [], constraint or [], sample, seed)
    with open_store_cli(store, existing=True) as st, _sweep_progress(f"{strategy} on {exchange}:{names}") as show:
        result = run_sweep(strategy, spec, exchange=exchange, symbols=names, timeframe=timeframe, start=from_,
                           end=to, engine=engine, workers=workers, scheduler=scheduler, sweep_id=sweep_id, cash=cash,
                           commission=commission, size_pct=size_pct, calendar=calendar, session=session, store=st,
                           progress=show, resample=resample)
        address = st.address
    console.print(_summary_line(result, address), highlight=False, soft_wrap=True)


@sweep_app.command("list")
@friendly_errors
def sweep_list(limit: LimitOption = 20, output: FormatOption = OutputFormat.table, store: StoreOption = None) -> None:
    """List sweeps, newest first: strategy, data, engine, counts and status."""
    with open_store_cli(store, read_only=True, listing=True) as st:
        sweeps, address = st.list_sweeps(limit=limit), st.address
    if output is not OutputFormat.table:
        _print_frame(sweeps, output)
    elif sweeps.empty:
        console.print(f"no sweeps in {address} (start one with btlab sweep run)", highlight=False)
    else:
        console.print(_sweeps_table(sweeps, f"{len(sweeps)} sweep(s) in {address}"))


@sweep_app.command("show")
@friendly_errors
def sweep_show(sweep_id: SweepIdArgument, by: ByOption = "sharpe", n: TopNOption = 10,
               store: StoreOption = None) -> None:
    """Show a sweep: what ran on which data, counts and status, the best combinations by --by, the failures."""
    from btlab.sweep.top import best_runs

    with open_store_cli(store, read_only=True) as st:
        sweep = st.get_sweep(sweep_id)
        runs = st.sweep_runs(sweep_id)
    console.print(_sweep_header(sweep, runs), highlight=False, soft_wrap=True)
    console.print(_runs_table(best_runs(runs, by, n), by, f"best {n} by {by}"))
    _print_failures(runs)


@sweep_app.command("top")
@friendly_errors
def sweep_top(sweep_id: SweepIdArgument, by: ByOption = "sharpe", n: TopNOption = 10,
              store: StoreOption = None) -> None:
    """Re-run the best --top combinations by --by with full recording (equity, trades, orders), as runs
    '<combination run id>-full' (btlab report RUN_ID, the run dashboard, btlab sweep report)."""
    from btlab.sweep.top import check_metric, rerun_top

    check_metric(by)
    with open_store_cli(store, existing=True) as st, progress_task(f"re-running the best {n} by {by}") as progress:
        results = rerun_top(sweep_id, by=by, n=n, store=st, progress=progress)
        address = st.address
    console.print(_results_table(results, by, f"{len(results)} combination(s) of {sweep_id} re-run in full, "
                                              f"stored in {address}"))


@sweep_app.command("report")
@friendly_errors
def sweep_report(sweep_id: SweepIdArgument, output: OutputFileOption = None, metric: MetricOption = "sharpe",
                 x: XParamOption = None, y: YParamOption = None, store: StoreOption = None) -> None:
    """Write a sweep's self-contained HTML report: the metric over two parameters (heatmap), each parameter's
    effect, the metric's distribution, the best combinations and their equity (from btlab sweep top), failures."""
    from btlab.report.sweep import write_sweep_report
    from btlab.report.write import report_path
    from btlab.sweep.top import check_metric

    check_metric(metric)
    out = report_path(sweep_id, output)
    with open_store_cli(store, read_only=True) as st:
        sweep, runs = st.get_sweep(sweep_id), st.sweep_runs(sweep_id)
        path = write_sweep_report(sweep, runs, _full_equity(st, runs, metric), out, metric=metric, x=x, y=y)
    console.print(f"report: {Path(path).resolve()}", highlight=False)


# ---- helpers -------------------------------------------------------------------------------------------------------
def _grid(path: Path | None, specs: list[str], constraints: list[str], sample: int | None, seed: int | None) -> Any:
    """The sweep's :class:`~btlab.sweep.grid.Grid`: the file and/or specs, plus the command line's constraints,
    sample and seed (added to / replacing the file's)."""
    from btlab.errors import InvalidArgumentError
    from btlab.sweep.grid import Grid, make_grid

    if path is None and not specs:
        raise InvalidArgumentError("no grid: give --grid FILE and/or --grid-param NAME=SPEC (e.g. fast=5:50:5)")
    grid = make_grid(str(path) if path is not None else None, specs)
    if not constraints and sample is None and seed is None:
        return grid
    spec = dict(grid.spec)
    spec["constraints"] = [*spec.get("constraints", []), *constraints]
    if sample is not None:
        spec["sample"] = sample
    if seed is not None:
        spec["seed"] = seed
    return Grid.from_mapping(spec, source=f"{grid.source} + options")


@contextmanager
def _sweep_progress(description: str) -> Iterator[Any]:
    """A transient progress bar on stderr (a terminal only): combinations done of total, combos/s, ETA; yields
    the ``progress`` callback of :func:`~btlab.sweep.run.run_sweep`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} combos/s  ETA {task.fields[eta]}", markup=False),
                   TimeElapsedColumn(), console=err_console, transient=True, disable=not err_console.is_terminal)
    with bar:
        task = bar.add_task(description, total=None, rate="—", eta="—")

        def show(p: Any) -> None:
            eta = "—" if p.eta_s is None else _duration(p.eta_s)
            bar.update(task, completed=p.done + p.skipped, total=p.total, rate=f"{p.rate:,.2f}" if p.rate else "—",
                       eta=eta)

        yield show


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _summary_line(result: Any, address: str) -> str:
    rate = result.done / result.elapsed_s if result.elapsed_s else 0.0
    skipped = f", {result.skipped:,} skipped (finished earlier)" if result.skipped else ""
    best = getattr(result, "best", None)
    best_text = (f"; best Sharpe {fmt(best.get('sharpe'))} with {_params_text(best.get('params'))}"
                 if best else "")
    return (f"sweep {result.sweep_id} {result.status}: {result.done:,} of {result.total:,} combinations run "
            f"({result.failed:,} failed{skipped}) in {_duration(result.elapsed_s)} ({rate:,.2f} combos/s){best_text}; "
            f"stored in {address}; see: btlab sweep show {result.sweep_id}")


def _params_text(params: Any) -> str:
    from btlab.sweep.top import params_frame

    import pandas as pd

    row = params_frame(pd.DataFrame({"params": [params]})).iloc[0]
    return ", ".join(f"{k}={v}" for k, v in row.items())


def _sweep_header(sweep: dict[str, Any], runs: Any) -> str:
    from btlab.report.tables import fmt_ts

    config = sweep.get("config") or {}
    statuses = runs["status"].value_counts().to_dict() if len(runs) else {}
    return "\n".join([
        f"sweep {sweep['sweep_id']}: {sweep.get('strategy')} on {sweep.get('exchange')}:{sweep.get('symbols')} "
        f"{sweep.get('timeframe')}, {fmt_ts(sweep.get('data_from'))} .. {fmt_ts(sweep.get('data_to'))} UTC, "
        f"engine {sweep.get('engine')}",
        f"status {sweep.get('status')}: {sweep.get('total') or 0:,} combinations, {sweep.get('done') or 0:,} done "
        f"({sweep.get('failed') or 0:,} failed; stored runs: "
        + (", ".join(f"{n:,} {s}" for s, n in sorted(statuses.items())) or "none") + ")",
        f"grid {json.dumps(sweep.get('grid'))}; cash {config.get('cash')}, commission {config.get('commission')}, size "
        f"{config.get('size_pct')} %" + (f"; error: {sweep['error']}" if sweep.get("error") else ""),
    ])


def _runs_table(best: Any, by: str, title: str) -> Any:
    from rich.table import Table

    from btlab.report.format import METRIC_UNITS

    table = Table(title=plain(title), header_style="bold")
    columns = [(by, METRIC_UNITS.get(by, "ratio"))] + [c for c in SHOWN_METRICS if c[0] != by]
    for name in ["#", "run id", "parameters", *(c for c, _ in columns)]:
        table.add_column(name, justify="left" if name in ("run id", "parameters") else "right")
    for i, row in enumerate(best.to_dict("records"), 1):
        table.add_row(str(i), plain(row["run_id"]), plain(_params_text(row["params"])),
                      *(fmt(row.get(c), unit) for c, unit in columns))
    return table


def _results_table(results: list[Any], by: str, title: str) -> Any:
    from rich.table import Table

    from btlab.report.format import METRIC_UNITS

    table = Table(title=plain(title), header_style="bold")
    columns = [(by, METRIC_UNITS.get(by, "ratio"))] + [c for c in SHOWN_METRICS if c[0] != by]
    for name in ["#", "run id", "parameters", *(c for c, _ in columns)]:
        table.add_column(name, justify="left" if name in ("run id", "parameters") else "right")
    for i, r in enumerate(results, 1):
        metrics = r.summary.as_dict()
        table.add_row(str(i), plain(r.run_id), plain(_params_text(r.config.params)),
                      *(fmt(metrics.get(c), unit) for c, unit in columns))
    return table


def _print_failures(runs: Any, limit: int = 10) -> None:
    failed = runs[runs["status"] == "failed"] if len(runs) else runs
    if failed.empty:
        console.print("no failed combinations", highlight=False)
        return
    console.print(f"{len(failed):,} failed combination(s)" + (f", the first {limit}:" if len(failed) > limit else ":"),
                  highlight=False)
    for row in failed.head(limit).to_dict("records"):
        error = re.sub(r"\s+", " ", str(row.get("error") or "(no error recorded)")).strip()
        console.print(plain(f"  {row['run_id']} ({_params_text(row['params'])}): {error}"), soft_wrap=True)


def _sweeps_table(sweeps: Any, title: str) -> Any:
    from rich.table import Table

    from btlab.report.tables import fmt_ts

    table = Table(title=plain(title), header_style="bold")
    for name in ("sweep id", "started (UTC)", "strategy", "data", "engine", "total", "done", "failed", "status"):
        table.add_column(name, justify="right" if name in ("total", "done", "failed") else "left")
    for s in sweeps.to_dict("records"):
        table.add_row(plain(s["sweep_id"]), fmt_ts(s.get("ts")), plain(s.get("strategy") or ""),
                      plain(f"{s.get('exchange')}:{s.get('symbols')} {s.get('timeframe')}"), plain(s.get("engine") or ""),
                      fmt(s.get("total"), "int"), fmt(s.get("done"), "int"), fmt(s.get("failed"), "int"),
                      plain(s.get("status") or ""))
    return table


def _print_frame(frame: Any, output: OutputFormat) -> None:
    """All columns for scripts: JSON records (ISO times) or CSV, nothing else on stdout."""
    import sys

    if output is OutputFormat.json:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso") + "\n")
    else:
        sys.stdout.write(frame.to_csv(index=False))


def _full_equity(store: Any, runs: Any, metric: str, n: int = 10) -> dict[str, Any]:
    """Equity of the best ``n`` combinations by ``metric`` that were re-run in full (``<run id>-full``), keyed by
    the combination's run id; combinations without a full re-run are left out."""
    from btlab.errors import RunNotFoundError
    from btlab.sweep.top import FULL_SUFFIX, best_runs

    out = {}
    for run_id in best_runs(runs, metric, n)["run_id"] if len(runs) else []:
        try:
            store.run_row(f"{run_id}{FULL_SUFFIX}")
        except RunNotFoundError:
            continue
        out[run_id] = store.read_equity(f"{run_id}{FULL_SUFFIX}")
    return out
