"""Walk-forward runs (:func:`run_walkforward`): on each window, the grid on the train range (:func:`run_sweep`),
the best combination by a metric (:func:`btlab.sweep.top.best_runs`), then that combination on the test range
(:func:`btlab.run_backtest`, recorded). The windows and the statistics are in :mod:`btlab.evaluation.walkforward`
(pure; ``evaluation`` and ``sweep`` are peers that do not import each other).

Ids (a rerun of the same request resumes): the walk-forward id is ``wf-<strategy>-<10 hex>`` of the sha256 of
strategy, grid, instrument, timeframe, windows, engine, ranking metric, settings and the hash of the bars of the
whole range; window k's sweep is ``<id>-wKK`` (finished combinations are skipped on a rerun) and its test run is
``<id>-wKK-oos`` (re-recorded under the same id on a rerun; the store's keys make that idempotent).

Warm-up of a test run. Indicators need history, but the test run must not trade before its window. The chosen
combination is first run (not recorded) on its train window; Backtrader's minimum period of that strategy
(``max(strategy._minperiods)`` over the base feeds, in bars of the first symbol) gives ``W = minperiod - 1``
warm-up bars: the test run starts W bars before the test start, so its first ``next()`` -- the first bar where it
may order -- is the first bar of the test window, with every indicator fully warmed up. Those W bars are the last
W bars of the train window (in-sample prices feed indicators only). A strategy that reads history from its lines
itself declares it with a classmethod ``warmup_bars(params)`` (``mp_tracker``: ``lookback``); with resampled feeds
(``resample=["1d"]``) the test run also starts early enough for each resampled feed's minimum period in whole
windows of its timeframe (the first ``next()`` is then the last base bar before the test start, whose orders fill
at the test start's open). See :func:`warmup_of`. The recorded test run holds the warm-up bars (flat, at its
starting cash); the segment is the run's equity from the test start. A strategy that orders during its warm-up
(an order recorded before the test start, or equity off its cash) is refused
(:class:`~btlab.errors.InvalidArgumentError`): its test window cannot be isolated.

Trials: every window's sweep (resumed if stored) gives the trials' Sharpe ratios (the DSR) and their daily returns
on the train window (the PBO): the vector engine recomputes them with its kernel, the Backtrader engine's workers
return them with their rows (``run_sweep(returns=True)``). Ranking by ``tracking_error`` (an index tracker such as
``mp_tracker``) reads it from the sweep rows' ``metrics`` (:func:`btlab.sweep.run.extra_metrics`).

Chaining: the test run of window k starts with cash = the ending equity of window k-1's segment (window 0 with
``cash``); each segment starts flat (see :mod:`btlab.evaluation.walkforward`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.metrics import compute_metrics, daily_returns
from btlab.backtest.recorder import RunControl
from btlab.backtest.registry import coerce_params, resolve_strategy, strategy_params
from btlab.backtest.runner import BacktestResult, hash_bars, load_backtest_bars, run_backtest
from btlab.backtest.signals import stop_on_signals
from btlab.errors import InvalidArgumentError, NoDataError, RunInterruptedError
from btlab.model.timeframe import Timeframe
from btlab.store import Store, open_store
from btlab.sweep.grid import Grid, make_grid
from btlab.sweep.run import (
    EXTRA_METRICS,
    SweepProgress,
    check_engine,
    close_client,
    dask_client,
    extra_metrics,
    resample_list,
    run_daily_returns,
    run_sweep,
    symbol_list,
)
from btlab.sweep.top import METRIC_COLUMNS, best_runs, check_metric

__all__ = ["RANKING_METRICS", "WalkForwardProgress", "WalkForwardRun", "WindowRun", "check_ranking", "run_walkforward",
           "walkforward_id_for", "warmup_of"]


@dataclass(frozen=True)
class WalkForwardProgress:
    """Where a walk-forward stands (passed to ``run_walkforward(progress=...)``).

    Attributes:
        window: 0-based index of the current window. n_windows: how many.
        stage: ``train`` (its sweep is running; ``sweep`` is the sweep's progress), ``test`` (the chosen
            combination runs on the test window) or ``done`` (the window is finished).
        sweep: the train sweep's :class:`~btlab.sweep.run.SweepProgress` in stage ``train``, else None.
        params: the chosen combination in stages ``test`` and ``done``, else None.
    """

    window: int
    n_windows: int
    stage: str
    sweep: SweepProgress | None = None
    params: dict[str, Any] | None = None


@dataclass
class WindowRun:
    """What one window ran.

    Attributes:
        window: the :class:`~btlab.evaluation.walkforward.Window` (inclusive UTC bounds).
        sweep_id: the train sweep. n_trials: its finished combinations. trial_sharpes: their annualized Sharpe
            ratios (NaN for a run without one).
        params: the chosen combination. is_metrics: its metrics on the train window (its sweep row), by name.
        is_returns: its daily simple returns on the train window (from a run that is not recorded), indexed by day.
        warmup_bars: W (see the module docstring). warmup_start: UTC open time of the test run's first bar.
        oos_run_id: the recorded test run. oos_cash: its starting cash.
        oos_equity: its equity from the test start: index UTC bar open time, ``value, cash, drawdown,
            position_value``. oos_trades: its closed trades. oos_metrics: ``compute_metrics`` of that segment alone
            (start value ``oos_cash``), by name.
        trial_returns: the daily simple returns on the train window of EVERY finished combination of the window
            (rows: days in time order; columns: ``json.dumps(params, sort_keys=True)``): on the vector engine from
            the kernel (:func:`btlab.backtest.vector.simulate`, the sweep's fills), on the Backtrader engine from
            the sweep's workers (``run_sweep(returns=True)``; a combination finished by an earlier call is run
            again here, not recorded). What PBO needs.
        index_close: for an index tracker (``mp_tracker``), the index's closes on the test window (UTC bar open
            time), what the chained tracking error needs; else None.
        is_metrics / oos_metrics also hold ``tracking_error`` and ``active_return`` for an index tracker
        (:func:`btlab.sweep.run.extra_metrics`; OOS: from the test start on).
    """

    window: Any
    sweep_id: str
    n_trials: int
    trial_sharpes: np.ndarray
    params: dict[str, Any]
    is_metrics: dict[str, Any]
    is_returns: pd.Series
    warmup_bars: int
    warmup_start: pd.Timestamp
    oos_run_id: str
    oos_cash: float
    oos_equity: pd.DataFrame = field(repr=False)
    oos_trades: pd.DataFrame = field(repr=False)
    oos_metrics: dict[str, Any] = field(default_factory=dict)
    trial_returns: pd.DataFrame | None = field(default=None, repr=False)
    index_close: pd.Series | None = field(default=None, repr=False)


@dataclass
class WalkForwardRun:
    """The runs of a walk-forward (input of :func:`btlab.evaluation.walkforward.evaluate_walkforward`).

    Attributes:
        walkforward_id: the id. by: the ranking metric. cash: the first segment's starting cash.
        calendar: the venue's calendar (``24/7`` or an exchange code) for the metrics. periods_per_year: 365/252.
        windows: one :class:`WindowRun` per window, in time order.
        untested: the time after the last test window (see the windows), or None.
        store_address: where the sweeps and test runs are stored (as shown to people).
    """

    walkforward_id: str
    by: str
    cash: float
    calendar: str
    periods_per_year: int
    windows: list[WindowRun]
    untested: tuple[pd.Timestamp, pd.Timestamp] | None
    store_address: str | None = None


#: what ``by`` may name: a sweep row's metric column, or a metric a sweep adds for some strategies
#: (:data:`btlab.sweep.run.EXTRA_METRICS`: ``tracking_error`` of an index tracker, lower first)
RANKING_METRICS: tuple[str, ...] = (*METRIC_COLUMNS, *EXTRA_METRICS)


def check_ranking(by: str) -> str:
    """``by`` if it can rank a walk-forward's trials (:data:`RANKING_METRICS`).

    Raises:
        InvalidArgumentError: any other name (the message lists the valid ones).
    """
    return check_metric(by, RANKING_METRICS)


def walkforward_id_for(strategy: str, grid: Grid, *, exchange: str, symbols: Sequence[str], timeframe: str,
                       windows: Mapping[str, Any], engine: str, by: str, data_hash: str,
                       config: Mapping[str, Any]) -> str:
    """The deterministic id of a walk-forward: ``wf-<strategy label>-<10 hex digits>`` (see the module docstring).
    The same request over the same bars gives the same id, so running it again resumes it."""
    text = json.dumps([strategy, grid.spec, exchange, list(symbols), timeframe, dict(windows), engine, by,
                       data_hash, dict(config)], sort_keys=True, separators=(",", ":"), default=str)
    label = re.sub(r"[^A-Za-z0-9]+", "_", strategy.split(":")[-1]).strip("_")[:24] or "strategy"
    return f"wf-{label}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def run_walkforward(strategy: str, grid: Grid | str | Mapping[str, Any], *, windows: Any, exchange: str,
                    symbols: str | Sequence[str], timeframe: str, by: str = "sharpe", engine: str = "backtrader",
                    workers: int | None = None, scheduler: str | None = None, walkforward_id: str | None = None,
                    cash: float = 10_000.0, commission: float = 0.001, size_pct: float = 95.0,
                    calendar: str | None = None, session: str | None = None, store: Store | str | None = None,
                    progress: Callable[[WalkForwardProgress], None] | None = None,
                    resample: str | Sequence[str] | None = None) -> WalkForwardRun:
    """Run a walk-forward: per window, the grid on train, the best by ``by`` on test (see the module docstring).

    Args:
        strategy, grid, exchange, symbols, timeframe, engine, workers, scheduler, cash, commission, size_pct,
            calendar, session, store: as :func:`btlab.sweep.run.run_sweep` (the test runs always run on
            Backtrader; the vector engine has its fills).
        windows: :class:`~btlab.evaluation.walkforward.WalkForwardWindows` (from ``walkforward_windows``).
        by: the metric choosing each window's combination (a :data:`btlab.sweep.top.METRIC_COLUMNS` name, ranked
            in :func:`btlab.sweep.top.ascending`'s direction, or ``tracking_error`` of an index tracker such as
            ``mp_tracker``, lowest first, from the sweep rows' ``metrics``; ties: the lowest run id).
        resample: timeframes built from the base ``timeframe`` for every run (``regime_fsm`` on ``1h`` with
            ``["1d"]``); Backtrader engine only.
        walkforward_id: default derived from the request (:func:`walkforward_id_for`).
        progress: called with a :class:`WalkForwardProgress` at each stage (and on every sweep batch).

    Returns: :class:`WalkForwardRun` (give it to ``evaluate_walkforward``).

    Raises:
        InvalidArgumentError: bad strategy, grid, metric, engine or request; a strategy that orders during its
            warm-up. NoDataError: no bars, or a window whose sweep has no finished combination with a ``by`` value.
        DataGapError, WarmupError, ClusterUnavailableError, RunInterruptedError, StoreUnavailableError: as
            :func:`run_sweep` and :func:`btlab.run_backtest`. SIGINT/SIGTERM: inside a sweep or a run, that job stops
            as it does alone (stored ``interrupted``, RunInterruptedError); between them, the current window
            finishes and RunInterruptedError is raised (exit code 130/143). A rerun resumes.
    """
    check_ranking(by)
    ref, cls = resolve_strategy(strategy)
    names = symbol_list(symbols)
    engine = check_engine(engine, ref, names)
    extra_tfs = resample_list(timeframe, resample, engine)
    the_grid = make_grid(grid)
    the_grid.check_params(strategy_params(cls), ref)
    if not len(windows):
        raise InvalidArgumentError("no walk-forward windows")
    owns_store = not isinstance(store, Store)
    the_store: Store = open_store(store) if owns_store else store  # type: ignore[assignment]
    try:
        request = _Request(ref, the_grid, the_store, exchange, names, timeframe, by, engine, float(cash),
                           float(commission), float(size_pct), calendar, session, progress, extra_tfs)
        return _walkforward(request, windows, workers, scheduler, walkforward_id)
    finally:
        if owns_store:
            the_store.close()


@dataclass
class _Request:
    strategy: str
    grid: Grid
    store: Store
    exchange: str
    symbols: list[str]
    timeframe: str
    by: str
    engine: str
    cash: float
    commission: float
    size_pct: float
    calendar: str | None
    session: str | None
    progress: Callable[[WalkForwardProgress], None] | None
    resample: tuple[str, ...] = ()

    def backtest(self, start: str, end: str, params: Mapping[str, Any], **kw: Any) -> BacktestResult:
        return run_backtest(self.strategy, symbols=self.symbols, exchange=self.exchange,
                            timeframes=[self.timeframe, *self.resample], start=start, end=end, params=params,
                            commission=self.commission,
                            size_pct=self.size_pct, calendar=self.calendar, session=self.session, store=self.store,
                            **kw)

    def report(self, **kw: Any) -> None:
        if self.progress is not None:
            self.progress(WalkForwardProgress(**kw))


def _walkforward(req: _Request, windows: Any, workers: int | None, scheduler: str | None,
                 walkforward_id: str | None) -> WalkForwardRun:
    config, bars, _ = load_backtest_bars(req.strategy, symbols=req.symbols, exchange=req.exchange,
                                         timeframe=req.timeframe, start=windows[0].train_start.isoformat(),
                                         end=windows[-1].test_end.isoformat(), cash=req.cash,
                                         commission=req.commission, size_pct=req.size_pct, calendar=req.calendar,
                                         session=req.session, store=req.store)
    settings = {"cash": req.cash, "commission": req.commission, "size_pct": req.size_pct,
                "session": config.session, "calendar": config.venue_calendar,
                **({"resample": list(req.resample)} if req.resample else {})}
    wf_id = walkforward_id or walkforward_id_for(
        req.strategy, req.grid, exchange=req.exchange, symbols=req.symbols, timeframe=config.timeframe,
        windows=windows.spec, engine=req.engine, by=req.by, data_hash=hash_bars(bars), config=settings)
    client, cluster = dask_client(workers, scheduler)  # one cluster for every window's sweep
    address = cluster.scheduler_address if cluster is not None else scheduler
    runs: list[WindowRun] = []
    periods = 365
    control = RunControl()
    try:
        cash = req.cash
        # between the sweeps and runs (each installs its own handlers while it runs): stop after the current step
        with stop_on_signals(control, lambda: None):
            for window in windows:
                run, periods = _window(req, window, len(windows), wf_id, cash, address)
                runs.append(run)
                cash = float(run.oos_equity["value"].iloc[-1])
                if control.signum is not None:
                    raise RunInterruptedError(
                        f"walk-forward {wf_id} interrupted by {control.signal_name} after window {window.index + 1} "
                        f"of {len(windows)} (its sweeps and test runs are stored; run it again to resume)",
                        run_id=wf_id, signal_name=control.signal_name, signal_number=int(control.signum))
    finally:
        close_client(client, cluster)
    return WalkForwardRun(walkforward_id=wf_id, by=req.by, cash=req.cash, calendar=config.venue_calendar,
                          periods_per_year=periods, windows=runs, untested=windows.untested,
                          store_address=req.store.address)


def _window(req: _Request, window: Any, n_windows: int, wf_id: str, cash: float,
            scheduler: str) -> tuple[WindowRun, int]:
    """One window: the train sweep and the choice, the in-sample run of the choice, the recorded test run."""
    sweep_id = f"{wf_id}-w{window.index:02d}"
    runs, chosen, params, swept = _train(req, window, n_windows, sweep_id, scheduler)
    req.report(window=window.index, n_windows=n_windows, stage="test", params=params)
    train_from, train_to = window.train
    in_sample = req.backtest(train_from, train_to, params, cash=req.cash, record=False)
    venue = in_sample.config.venue_calendar
    returns = run_daily_returns(in_sample)
    warmup, warmup_start = warmup_of(in_sample, window)
    oos_id = f"{sweep_id}-oos"
    test, segment, trades = _test(req, window, params, warmup_start, cash, oos_id)
    trial_returns = (_trial_returns(req, train_from, train_to, venue) if req.engine == "vector"
                     else _swept_returns(req, runs, swept, train_from, train_to))
    run = WindowRun(window=window, sweep_id=sweep_id, n_trials=len(runs),
                    trial_sharpes=pd.to_numeric(runs["sharpe"], errors="coerce").to_numpy(dtype="float64"),
                    params=params, is_metrics={**{k: chosen.get(k) for k in METRIC_COLUMNS},
                                               **extra_metrics(in_sample)},
                    is_returns=returns, warmup_bars=int(warmup), warmup_start=warmup_start, oos_run_id=oos_id,
                    oos_cash=cash, oos_equity=segment, oos_trades=trades,
                    oos_metrics={**compute_metrics(segment, trades, start_value=cash, calendar=venue).as_dict(),
                                 **extra_metrics(_from_test_start(test, window))},
                    trial_returns=trial_returns, index_close=_index_close(test, window))
    req.report(window=window.index, n_windows=n_windows, stage="done", params=params)
    return run, int(in_sample.summary.periods_per_year)


def _train(req: _Request, window: Any, n_windows: int, sweep_id: str,
           scheduler: str) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """The grid on the train window (resumed if stored): ``(its current finished runs, the chosen row, its
    params)``."""
    def sweep_progress(p: SweepProgress) -> None:
        req.report(window=window.index, n_windows=n_windows, stage="train", sweep=p)

    train_from, train_to = window.train
    swept = run_sweep(req.strategy, req.grid, exchange=req.exchange, symbols=req.symbols, timeframe=req.timeframe,
                      start=train_from, end=train_to, engine=req.engine, scheduler=scheduler, sweep_id=sweep_id,
                      cash=req.cash, commission=req.commission, size_pct=req.size_pct, calendar=req.calendar,
                      session=req.session, store=req.store, progress=sweep_progress, resample=req.resample,
                      returns=req.engine != "vector")
    runs = _current_runs(req, sweep_id)
    chosen = _choose(runs, req.by, sweep_id)
    params = json.loads(chosen["params"]) if isinstance(chosen["params"], str) else dict(chosen["params"])
    return runs, chosen, params, swept.returns


def _test(req: _Request, window: Any, params: dict[str, Any], warmup_start: pd.Timestamp, cash: float,
          run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recorded test run from the warm-up start: ``(the run, its equity from the test start, its closed
    trades)``."""
    test = req.backtest(warmup_start.isoformat(), window.test[1], params, cash=cash, record=True, run_id=run_id)
    return (test, *_segment(test, window, cash, req.strategy))


def warmup_of(in_sample: BacktestResult, window: Any) -> tuple[int, pd.Timestamp]:
    """``(W, warm-up start)`` of a window's test run, from the chosen combination's run on the train window.

    The test run must have, at its first ``next()``, the history the strategy needs, and no earlier ``next()``
    than the last bar before the test start (an order decided there fills at the test start's open, inside the
    window). Needs, each met by taking bars from the end of the train window:

    * the base feeds: Backtrader's minimum period ``m`` (``max`` over the base feeds of ``strategy._minperiods``):
      ``m - 1`` base bars before the test start (the first ``next()`` is then the first test bar);
    * a strategy's own need, when its class has ``warmup_bars(params) -> int`` (history it reads from the lines
      itself, e.g. ``mp_tracker``'s ``lookback``): that many base bars;
    * each resampled feed of timeframe ``tf`` with minimum period ``m``: the ``m`` whole ``tf`` windows before the
      test start (the first ``next()`` is then the last base bar before the test start, when the ``m``-th of them
      closes).

    W counts base bars of the first symbol from the warm-up start to the test start.
    """
    strat = in_sample.strategy
    n_base = len(in_sample.config.symbols)
    ts = pd.DatetimeIndex(in_sample.bars["ts"])
    train = ts[ts < window.test_start]
    need = max(strat._minperiods[:n_base]) - 1  # Backtrader: next() starts at bar index minperiod - 1
    own = getattr(type(strat), "warmup_bars", None)
    if callable(own):
        need = max(need, int(own(dict(in_sample.config.params))))
    if need > len(train):
        raise InvalidArgumentError(f"the train window {window.train[0]} .. {window.train[1]} has {len(train)} bars; "
                                   f"the strategy needs {need} bars of history before its test window: use a longer "
                                   f"--train")
    start = pd.Timestamp(train[-need]) if need else window.test_start
    for j, tf in enumerate(in_sample.config.resample):
        m = max(strat._minperiods[n_base * (j + 1):n_base * (j + 2)])
        size = pd.Timedelta(Timeframe.parse(tf).nanos, "ns")
        start = min(start, window.test_start.floor(size) - m * size)
    return int((ts[(ts >= start) & (ts < window.test_start)]).size), start


def _from_test_start(test: BacktestResult, window: Any) -> BacktestResult:
    """The test run with its equity and orders from the test start on (what :func:`extra_metrics` of the segment
    reads)."""
    orders = test.orders[pd.to_datetime(test.orders["ts"], utc=True) >= window.test_start] if len(test.orders) \
        else test.orders
    return replace(test, equity=test.equity[test.equity.index >= window.test_start], orders=orders)


def _index_close(test: BacktestResult, window: Any) -> pd.Series | None:
    """The tracked index's closes on the test window (index: UTC bar open time), for an index tracker; else None."""
    index = (test.config.params or {}).get("index")
    if not isinstance(index, str) or index not in test.bars_by_symbol:
        return None
    bars = test.bars_by_symbol[index]
    closes = pd.Series(bars["close"].to_numpy(dtype="float64"), index=pd.DatetimeIndex(bars["ts"]))
    return closes[closes.index >= window.test_start]


def _swept_returns(req: _Request, runs: pd.DataFrame, swept: Mapping[str, pd.Series], start: str,
                   end: str) -> pd.DataFrame:
    """Daily returns on the train window of every trial (columns as :class:`WindowRun` ``trial_returns``): from
    the sweep's workers, and for the combinations a resumed sweep did not run again, from a run here (not
    recorded)."""
    columns = {}
    for run_id, params in zip(runs["run_id"], runs["params"]):
        params = json.loads(params) if isinstance(params, str) else dict(params)
        found = swept.get(run_id)
        if found is None:
            found = run_daily_returns(req.backtest(start, end, params, cash=req.cash, record=False))
        columns[json.dumps(params, sort_keys=True, default=str)] = found
    return pd.DataFrame(columns)


def _trial_returns(req: _Request, start: str, end: str, venue: str) -> pd.DataFrame:
    """Daily returns of every combination of the grid on ``start .. end`` (vector kernel; see :class:`WindowRun`)."""
    from btlab.backtest.vector import simulate

    config, bars, _ = load_backtest_bars(req.strategy, symbols=req.symbols, exchange=req.exchange,
                                         timeframe=req.timeframe, start=start, end=end, cash=req.cash,
                                    commission=req.commission, size_pct=req.size_pct, calendar=req.calendar,
                                    session=req.session, store=req.store)
    frame = bars[req.symbols[0]]
    index = pd.DatetimeIndex(frame["ts"])
    open_, close = frame["open"].to_numpy("float64"), frame["close"].to_numpy("float64")
    # what orb's kernel needs besides open/close (sma_cross's ignores them)
    intraday = {"high": frame["high"].to_numpy("float64"), "low": frame["low"].to_numpy("float64"),
                "ts": index, "timeframe": config.timeframe, "calendar": venue}
    params_of = resolve_strategy(req.strategy)[1]
    cache: dict[Any, Any] = {}
    columns = {}
    for combo in req.grid.combinations():
        params = coerce_params(params_of, combo)
        value = simulate(req.strategy, open_, close, params, req.cash, req.commission, req.size_pct, cache,
                         **intraday)[0]
        columns[json.dumps(params, sort_keys=True, default=str)] = daily_returns(
            pd.Series(value, index=index), req.cash, None if venue == "24/7" else venue)
    return pd.DataFrame(columns)


def _current_runs(req: _Request, sweep_id: str) -> pd.DataFrame:
    """The sweep's finished runs of THIS request: on the bars it just ran on (``data_hash`` of its ``bt_sweeps``
    row) and in the current grid. A sweep id reused (``walkforward_id`` given) with other bars or another grid
    keeps its older rows; they are not trials of this window."""
    runs = req.store.sweep_runs(sweep_id, status="finished")
    data_hash = req.store.get_sweep(sweep_id).get("data_hash")
    cls = resolve_strategy(req.strategy)[1]
    wanted = {json.dumps(coerce_params(cls, c), sort_keys=True, default=str) for c in req.grid.combinations()}
    keys = [json.dumps(json.loads(p) if isinstance(p, str) else dict(p), sort_keys=True, default=str)
            for p in runs["params"]]
    keep = (runs["data_hash"] == data_hash).to_numpy() & np.array([k in wanted for k in keys], dtype=bool)
    return runs[keep].reset_index(drop=True)


def _choose(runs: pd.DataFrame, by: str, sweep_id: str) -> dict[str, Any]:
    """The best finished run of a sweep by ``by`` (a row as a dict).

    Raises:
        NoDataError: no finished run with a value of ``by``.
    """
    best = best_runs(runs, by, 1) if by in METRIC_COLUMNS else _best_extra(runs, by)
    if best.empty or pd.isna(pd.to_numeric(best[by], errors="coerce").iloc[0]):
        raise NoDataError(f"sweep {sweep_id}: no finished combination with a {by} value to choose on this train "
                          f"window (see btlab sweep show {sweep_id})")
    return best.iloc[0].to_dict()


def _best_extra(runs: pd.DataFrame, by: str) -> pd.DataFrame:
    """The best run by an :data:`~btlab.sweep.run.EXTRA_METRICS` name, read from the rows' ``metrics`` JSON (NaN
    last, ties by run id), with ``by`` as a column: a one-row frame (empty without runs)."""
    def value(text: Any) -> float:
        found = (json.loads(text) if isinstance(text, str) and text else dict(text or {})).get(by)
        return float(found) if found is not None else math.nan

    key = pd.Series([value(m) for m in runs["metrics"]], index=runs.index, dtype="float64")
    ordered = runs.assign(**{by: key}, _nan=key.isna()).sort_values(
        ["_nan", by, "run_id"], ascending=[True, EXTRA_METRICS[by], True], kind="stable")
    return ordered.drop(columns=["_nan"]).head(1).reset_index(drop=True)


def _segment(test: BacktestResult, window: Any, cash: float, strategy: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The test run's equity from the test start and its trades, after checking that nothing happened in the
    warm-up (flat equity at the starting cash, no order).

    Raises:
        InvalidArgumentError: the strategy ordered during its warm-up.
    """
    start = window.test_start
    equity = test.equity
    before = equity[equity.index < start]
    early_orders = test.orders[pd.to_datetime(test.orders["ts"], utc=True) < start] if len(test.orders) else []
    if len(early_orders) or (len(before) and not np.allclose(before["value"].to_numpy(), cash, rtol=0, atol=1e-9)):
        raise InvalidArgumentError(f"strategy {strategy} orders during its warm-up (before its first next(), in "
                                   f"prenext): walk-forward cannot keep its test window "
                                   f"{window.test[0]} .. {window.test[1]} out of sample")
    return equity[equity.index >= start], test.trades
