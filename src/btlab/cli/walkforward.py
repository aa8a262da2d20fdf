"""``btlab walkforward``: per window, a sweep of the grid on the train range and the best combination on the test
range, chained out of sample (:func:`btlab.sweep.walkforward.run_walkforward`), then the statistics
(:func:`btlab.evaluation.walkforward.evaluate_walkforward`): the windows table and in-sample vs out-of-sample."""

from __future__ import annotations

from typing import Any

from btlab.cli.common import (
    AnchoredOption,
    CalendarOption,
    CashOption,
    CommissionOption,
    ConstraintOption,
    EngineOption,
    ExchangeOption,
    FromOption,
    GridOption,
    GridParamOption,
    ResampleOption,
    SchedulerOption,
    SessionOption,
    SizePctOption,
    StepOption,
    StoreOption,
    StrategyOption,
    SymbolsOption,
    TestOption,
    TimeframeOption,
    ToOption,
    TrainOption,
    WalkForwardByOption,
    WalkForwardIdOption,
    WorkersOption,
    console,
    err_console,
    fmt,
    friendly_errors,
    need_text,
    open_store_cli,
    plain,
)


@friendly_errors
def walkforward(
    strategy: StrategyOption = ...,
    grid: GridOption = None,
    grid_param: GridParamOption = None,
    constraint: ConstraintOption = None,
    exchange: ExchangeOption = "binance",
    symbols: SymbolsOption = ...,
    timeframe: TimeframeOption = "1h",
    resample: ResampleOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    train: TrainOption = ...,
    test: TestOption = ...,
    step: StepOption = None,
    anchored: AnchoredOption = False,
    by: WalkForwardByOption = "sharpe",
    engine: EngineOption = "backtrader",
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    walkforward_id: WalkForwardIdOption = None,
    cash: CashOption = 10_000.0,
    commission: CommissionOption = 0.001,
    size_pct: SizePctOption = 95.0,
    calendar: CalendarOption = None,
    session: SessionOption = None,
    store: StoreOption = None,
) -> None:
    """Walk-forward evaluation: on each window, sweep the grid on the train range, pick the best combination by
    --by, run it on the following test range; chain the test segments into one out-of-sample equity curve.

    --resample 1d feeds timeframes built from the stored bars to every run (regime_fsm); with an index tracker
    (mp_tracker), --by tracking_error chooses the combination tracking the index most closely.

    Windows cover --from .. --to (both required): rolling (default) or --anchored (expanding train), moving by
    --step (default --test); a last test window that does not fit before --to is dropped. Each test run starts
    flat with the previous segment's ending equity, after a warm-up of the strategy's minimum period in bars
    taken from the end of the train window (it cannot order before the test start). Stored: one sweep per window
    (<id>-wNN) and one recorded test run per window (<id>-wNN-oos). Prints the windows (chosen parameters, in-sample
    and out-of-sample metric, deflated Sharpe ratio of the choice, PBO of the grid on the train window, CSCV)
    and in-sample vs out-of-sample metrics.

    \b
    Example:
      btlab walkforward --strategy sma_cross --grid-param fast=10,20 --grid-param slow=50,100 \\
          --symbols BTC/USDT --timeframe 1h --from 2018-01-01 --to 2023-12-31 --train 2y --test 6m --engine vector
    """
    from btlab.cli.sweep import _grid
    from btlab.evaluation.walkforward import evaluate_walkforward, walkforward_windows
    from btlab.sweep.walkforward import check_ranking, run_walkforward

    check_ranking(by)
    names = need_text(symbols, "--symbols")
    windows = walkforward_windows(from_, to, train=train, test=test, step=step, anchored=anchored)
    spec = _grid(grid, grid_param or [], constraint or [], None, None)
    with open_store_cli(store, existing=True) as st:
        run = run_walkforward(strategy, spec, windows=windows, exchange=exchange, symbols=names,
                              timeframe=timeframe, by=by, engine=engine, workers=workers, scheduler=scheduler,
                              walkforward_id=walkforward_id, cash=cash, commission=commission, size_pct=size_pct,
                              calendar=calendar, session=session, store=st, progress=_progress,
                              resample=resample)
    result = evaluate_walkforward(run)
    console.print(_windows_table(result, windows))
    console.print(_side_by_side_table(result))
    console.print(_summary(result, run, windows), highlight=False, soft_wrap=True)


def _progress(p: Any) -> None:
    """One line per window stage on stderr (sweep batches are not printed)."""
    where = f"window {p.window + 1}/{p.n_windows}"
    if p.stage == "train" and p.sweep is not None and p.sweep.done == 0:
        skipped = f", {p.sweep.skipped} finished earlier" if p.sweep.skipped else ""
        err_console.print(plain(f"{where}: sweeping {p.sweep.total} combinations on the train range{skipped}"))
    elif p.stage == "test":
        params = ", ".join(f"{k}={v}" for k, v in p.params.items())
        err_console.print(plain(f"{where}: chose {params}; running it on the test range"))


def _windows_table(result: Any, windows: Any) -> Any:
    from rich import box
    from rich.table import Table

    from btlab.report.format import METRIC_UNITS

    by = result.by
    unit = METRIC_UNITS.get(by, "ratio")
    title = (f"{len(windows)} {'anchored' if windows.anchored else 'rolling'} window(s): train {windows.train}, "
             f"test {windows.test}, step {windows.step}; each window: its train range, its test range, the chosen "
             f"parameters; IS = {by} of the chosen parameters on the train window (the best of N trials), "
             f"OOS = {by} of its test segment, DSR = deflated Sharpe ratio of the choice, PBO = probability of "
             f"backtest overfitting of the grid on the train window (CSCV)")
    table = Table(title=plain(title), header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("#", "window (UTC)", "IS", "OOS", "OOS ret", "N", "DSR", "PBO"):
        table.add_column(name, justify="left" if name.startswith("window") else "right", no_wrap=True)
    for row, w in zip(result.windows.to_dict("records"), windows):
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        cell = f"{'..'.join(w.train)}\n{'..'.join(w.test)}\n{params}"
        table.add_row(str(row["window"] + 1), plain(cell),
                      fmt(row[f"is_{by}"], unit), fmt(row[f"oos_{by}"], unit), fmt(row["oos_return"], "pct"),
                      str(row["n_trials"]), fmt(row["dsr"], "ratio"), fmt(row["pbo"], "ratio"))
    return table


def _side_by_side_table(result: Any) -> Any:
    from rich.table import Table

    from btlab.report.format import METRIC_UNITS

    table = Table(title="in-sample (mean of the chosen combinations on their train windows) vs out-of-sample "
                        "(the chained test segments)", header_style="bold")
    for name in ("metric", "in-sample", "out-of-sample"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for metric, row in result.side_by_side.iterrows():
        unit = METRIC_UNITS.get(metric, "ratio")
        table.add_row(metric, fmt(row["in_sample"], unit), fmt(row["out_of_sample"], unit))
    return table


def _summary(result: Any, run: Any, windows: Any) -> str:
    from btlab.evaluation.walkforward import bound_text

    first, last = windows[0], windows[-1]
    untested = ("" if result.untested is None else
                f"; untested (no full test window): {bound_text(result.untested[0], end=False)} .. "
                f"{bound_text(result.untested[1], end=True)}")
    return (f"walk-forward {result.walkforward_id}: out-of-sample {first.test[0]} .. {last.test[1]}, "
            f"{fmt(run.cash, 'money')} -> {fmt(result.metrics.end_value, 'money')}{untested}; stored in "
            f"{run.store_address}: sweeps {result.walkforward_id}-w00 .. -w{last.index:02d} (btlab sweep show ID), "
            f"test runs {result.walkforward_id}-wNN-oos (btlab runs show ID)")
