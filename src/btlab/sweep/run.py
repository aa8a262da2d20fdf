"""Running a parameter sweep on Dask: :func:`run_sweep`, its :class:`SweepProgress` and :class:`SweepResult`.

How a sweep runs (all store reads and writes happen in the calling process, never on a worker):

1. The grid is expanded (:mod:`btlab.sweep.grid`) and checked against the strategy's parameters; the engine is
   checked (``vector`` needs a kernel: :func:`btlab.backtest.vector.supports`; nothing falls back silently).
2. The bars are read ONCE (:func:`btlab.backtest.runner.load_backtest_bars`: range, session and gap checks as a
   backtest) and hashed (``data_hash``, as ``bt_runs.data_hash``).
3. The sweep id is the one given, or derived from strategy, grid, data range and hash, engine and config, so the
   same call again resumes the same sweep. Each combination's run id is ``f"{sweep_id}-{combo_id}"``
   (:func:`btlab.sweep.grid.combo_id`); combinations whose run is stored ``finished`` are skipped (resume); failed
   ones run again.
4. The ``bt_sweeps`` row is written (``running``; its ``ts`` is the sweep's first start and never changes).
5. The bars go to every worker once (``client.scatter(..., broadcast=True)``); tasks run BATCHES of combinations
   and return plain ``bt_runs`` rows (dicts), never Backtrader objects. A combination that raises comes back as a
   ``failed`` row with its error; the others go on.
6. Batches are streamed as they complete (:class:`distributed.as_completed`): each finished batch is one bulk
   upsert into ``bt_runs`` (``ts`` = the sweep's ``ts``, so re-running a combination replaces its row on every
   backend) and one ``bt_sweeps`` update (counts, heartbeat). A worker that dies has its tasks rescheduled by Dask;
   since rows are upserts by ``run_id``, every combination is stored exactly once.
7. SIGINT/SIGTERM (main thread): no new batch is submitted, the running ones are awaited and stored (a second
   signal cancels them at once), the sweep is stored ``interrupted`` and :class:`~btlab.errors.RunInterruptedError`
   is raised (exit code 130/143).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import btlab
from btlab.backtest.recorder import RunControl
from btlab.backtest.registry import coerce_params, resolve_strategy, strategy_params
from btlab.backtest.runner import BacktestConfig, hash_bars, load_backtest_bars
from btlab.backtest.signals import stop_on_signals
from btlab.errors import ClusterUnavailableError, InvalidArgumentError, RunInterruptedError, RunNotFoundError
from btlab.store import Store, open_store
from btlab.store.schema import RUN_METRIC_COLUMNS
from btlab.sweep.grid import Grid, combo_id, make_grid

__all__ = ["ENGINES", "SweepProgress", "SweepResult", "check_engine", "close_client", "dask_client", "extra_metrics",
           "resample_list", "run_daily_returns", "run_sweep", "sweep_id_for", "symbol_list"]

#: engines a sweep runs on
ENGINES: tuple[str, ...] = ("backtrader", "vector")
_METRIC_NAMES = frozenset(c.name for c in RUN_METRIC_COLUMNS)
#: longest wall time between two writes of a running sweep's ``bt_sweeps`` row (its heartbeat), seconds
HEARTBEAT_S = 10.0


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands (passed to ``run_sweep(progress=...)`` at the start and after every batch).

    Attributes:
        total: combinations in the grid. done: combinations completed by this call (finished or failed).
        failed: of those, how many failed. skipped: combinations already finished before this call (resume).
        elapsed_s: wall seconds since this call started. rate: ``done`` per second of wall time (combinations/s).
        eta_s: estimated seconds left (``(total - skipped - done) / rate``), None before the first batch.
    """

    total: int
    done: int
    failed: int
    skipped: int
    elapsed_s: float
    rate: float
    eta_s: float | None


@dataclass(frozen=True)
class SweepResult:
    """The outcome of :func:`run_sweep`.

    Attributes:
        sweep_id: the sweep's id (``bt_sweeps.sweep_id``; its runs are ``bt_runs`` rows with this ``sweep_id``).
        total, done, failed, skipped: as :class:`SweepProgress`, at the end.
        status: ``finished`` (every combination ran; some may have failed) or ``interrupted``.
        elapsed_s: wall seconds of this call.
        best: the finished run with the highest Sharpe ratio: ``run_id, params, sharpe, total_return``; None if none.
        returns: with ``returns=True`` on the Backtrader engine, ``{run_id: daily simple returns}`` (pandas Series
            indexed by UTC day or session date, :func:`btlab.backtest.metrics.daily_returns` of the run's equity from
            its starting cash) of every combination THIS call finished (not stored; a resumed combination is not
            in it); else empty.
    """

    sweep_id: str
    total: int
    done: int
    failed: int
    skipped: int
    status: str
    elapsed_s: float
    best: dict[str, Any] | None = None
    returns: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class _Job:
    """What a worker needs for every combination (scattered once to each worker): the request, the bars, and the
    fields every ``bt_runs`` row of the sweep shares."""

    strategy: str
    engine: str
    exchange: str
    symbols: list[str]
    timeframe: str
    start: Any
    end: Any
    cash: float
    commission: float
    size_pct: float
    calendar: str | None
    session: str | None
    config: BacktestConfig
    bars: dict[str, Any] = field(repr=False)
    base_row: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # found when the bars were loaded (gaps)
    resample: tuple[str, ...] = ()  # timeframes built from the base bars (run_backtest(timeframes=...))
    keep_returns: bool = False  # rows carry the run's daily returns under RETURNS_KEY (never stored)


#: the key of a worker row's daily returns (``run_sweep(returns=True)``); taken off the row before it is stored
RETURNS_KEY = "_daily_returns"


# ---- on the workers -----------------------------------------------------------------------------------------------
def run_batch(job: _Job, tasks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Run a batch of combinations (on a worker): ``tasks`` are ``(run_id, params)``; returns one ``bt_runs`` row
    (a plain dict) per combination, ``finished`` with metrics or ``failed`` with ``error`` = ``Type: message``."""
    rows = []
    for run_id, params in tasks:
        try:
            rows.append(_run_one(job, run_id, dict(params)))
        except Exception as exc:  # one failing combination never stops the sweep
            now = datetime.now(timezone.utc)
            rows.append({**job.base_row, "run_id": run_id, "params": dict(params), "status": "failed",
                         "error": _error_text(exc), "finished_at": now, "heartbeat": now})
    return rows


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:2000]


def _run_one(job: _Job, run_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """One combination on the job's engine -> its finished ``bt_runs`` row."""
    if job.engine == "vector":
        from btlab.backtest.vector import run_vector

        resolved = coerce_params(resolve_strategy(job.strategy)[1], params)
        symbol = job.symbols[0]
        metrics, _ = run_vector(job.strategy, job.bars[symbol], params=resolved, cash=job.cash,
                                commission=job.commission, size_pct=job.size_pct,
                                calendar=job.config.venue_calendar, symbol=symbol)
        config = replace(job.config, params=resolved)
        extra: dict[str, Any] = {"warnings": "\n".join(job.warnings) or None}
    else:
        from btlab.backtest.runner import run_backtest

        result = run_backtest(job.strategy, symbols=job.symbols, exchange=job.exchange,
                              timeframes=[job.timeframe, *job.resample], start=job.start, end=job.end,
                              params=params, cash=job.cash, commission=job.commission, size_pct=job.size_pct,
                              calendar=job.calendar, session=job.session, bars=job.bars, record=False, run_id=run_id,
                              sweep_id=job.base_row.get("sweep_id"))
        metrics, config = result.summary, result.config
        extra = {"warnings": "\n".join(job.warnings + result.warnings) or None, **result.order_counts}
        if job.keep_returns:
            extra[RETURNS_KEY] = run_daily_returns(result)
    values = {**metrics.as_dict(), **(extra_metrics(result) if job.engine != "vector" else {})}
    now = datetime.now(timezone.utc)
    return {
        **job.base_row, "run_id": run_id, "params": config.params, "status": "finished", "finished_at": now,
        "heartbeat": now, "config": {**asdict(config), "engine": job.engine}, "config_hash": config.hash(),
        "metrics": values, **{k: v for k, v in values.items() if k in _METRIC_NAMES}, **extra,
    }


def run_daily_returns(result: Any) -> Any:
    """A :class:`~btlab.backtest.runner.BacktestResult`'s daily simple returns from its starting cash (pandas Series
    indexed by UTC day, or by session date on an exchange calendar), as its metrics compute them."""
    from btlab.backtest.metrics import daily_returns

    venue = result.config.venue_calendar
    return daily_returns(result.equity["value"], result.config.cash, None if venue == "24/7" else venue)


#: metrics a sweep adds to ``bt_runs.metrics`` (JSON) for some strategies, beside :class:`Metrics`: name -> True
#: when lower is better
EXTRA_METRICS: dict[str, bool] = {"tracking_error": True, "active_return": False}


def extra_metrics(result: Any) -> dict[str, float]:
    """Metrics of a run beyond :class:`~btlab.backtest.metrics.Metrics`, by name (:data:`EXTRA_METRICS`).

    An index tracker -- a strategy with an ``index`` parameter naming one of the run's feeds (``mp_tracker``) --
    gets ``tracking_error`` and ``active_return`` (annualized, fractions) of
    :func:`btlab.backtest.tracking.tracking_metrics` (returns per base bar from the first fill; 252 bars a year on
    an exchange calendar, else 365); NaN when nothing was filled. Any other run: ``{}``.
    """
    index = (result.config.params or {}).get("index")
    if not isinstance(index, str) or index not in result.bars_by_symbol:
        return {}
    from btlab.backtest.tracking import tracking_metrics

    periods = 365 if result.config.venue_calendar == "24/7" else 252
    try:
        found = tracking_metrics(result.equity, result.orders, result.bars_by_symbol[index], periods=periods)
    except InvalidArgumentError:  # no fill: nothing tracked
        return {name: math.nan for name in EXTRA_METRICS}
    return {name: float(found[name]) for name in EXTRA_METRICS}


# ---- in the calling process -----------------------------------------------------------------------------------------
def check_engine(engine: str, ref: str, symbols: list[str]) -> str:
    """The engine name, checked: ``vector`` needs a kernel for the strategy and one symbol.

    Raises:
        InvalidArgumentError: unknown engine, no kernel (saying so), several symbols on the vector engine.
    """
    name = str(engine).strip().lower()
    if name not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if name == "vector":
        from btlab.backtest.vector import KERNELS, supports

        if not supports(ref):
            raise InvalidArgumentError(f"strategy {ref} has no vector kernel (kernels: {', '.join(KERNELS)}): "
                                       "run it with engine backtrader")
        if len(symbols) != 1:
            raise InvalidArgumentError(f"the vector engine runs one symbol; got {', '.join(symbols)}")
    return name


def resample_list(timeframe: str, resample: str | Sequence[str] | None, engine: str = "backtrader") -> tuple[str, ...]:
    """The timeframes to build from the base ``timeframe`` (comma-separated text or a sequence; None: none), each
    checked as :func:`btlab.run_backtest` checks ``timeframes``.

    Raises:
        InvalidArgumentError: a timeframe that cannot be built from the base one, or resampling on the vector engine.
    """
    from btlab.backtest.feed import check_resample

    items = resample.split(",") if isinstance(resample, str) else list(resample or [])
    out = tuple(check_resample(timeframe, str(t).strip()).value for t in items if str(t).strip())
    if out and engine == "vector":
        raise InvalidArgumentError("the vector engine runs the base timeframe only: resample with engine backtrader")
    return out


def symbol_list(symbols: str | Sequence[str]) -> list[str]:
    """The symbols of a request as a list: a comma-separated string or a sequence, each stripped, empty ones left
    out (``"BTC/USDT, ETH/USDT"`` -> ``["BTC/USDT", "ETH/USDT"]``).

    Raises:
        InvalidArgumentError: no symbol left.
    """
    items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    out = [str(s).strip() for s in items if str(s).strip()]
    if not out:
        raise InvalidArgumentError("symbols is empty: give at least one symbol, e.g. BTC/USDT")
    return out


def sweep_id_for(strategy: str, grid: Grid, *, exchange: str, symbols: Sequence[str], timeframe: str,
                 data_from: Any, data_to: Any, data_hash: str, engine: str, config: Mapping[str, Any]) -> str:
    """The deterministic id of a sweep: ``<strategy label>-<10 hex digits>`` of the sha256 of the canonical JSON of
    strategy, grid spec, instrument, timeframe, data range and hash, engine and config. The same request over the
    same bars gives the same id (so running it again resumes it)."""
    text = json.dumps([strategy, grid.spec, exchange, list(symbols), timeframe, str(data_from), str(data_to),
                       data_hash, engine, dict(config)], sort_keys=True, separators=(",", ":"), default=str)
    label = re.sub(r"[^A-Za-z0-9]+", "_", strategy.split(":")[-1]).strip("_")[:24] or "sweep"
    return f"{label}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def dask_client(workers: int | None, scheduler: str | None) -> tuple[Any, Any]:
    """``(client, local cluster or None)``: ``Client(scheduler)`` (or ``BTLAB_DASK_SCHEDULER``), else a
    ``LocalCluster`` of ``workers`` (default 2) single-threaded worker processes.

    Raises:
        ClusterUnavailableError: the scheduler cannot be reached (exit code 2). InvalidArgumentError: workers < 1.
    """
    from btlab import settings
    from distributed import Client, LocalCluster

    address = scheduler or settings.dask_scheduler()
    if address:
        try:
            return Client(address, timeout=10), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterUnavailableError(address, _error_text(exc)) from None
    n = 2 if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgumentError(f"workers must be a whole number >= 1, got {workers!r}")
    # the worker processes ignore Ctrl-C (SIGINT is ignored while they start, and they keep that): the sweep in
    # this process decides how to stop, then closes the cluster
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=40)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return Client(cluster), cluster


def _batch_size(batch_size: int | None, engine: str, todo: int, workers: int) -> int:
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        return batch_size
    per_worker = 4 if engine == "vector" else 8  # batches per worker: enough to balance, few enough to stay cheap
    cap = 500 if engine == "vector" else 10
    return max(1, min(cap, math.ceil(todo / (max(1, workers) * per_worker))))


class _Sweep:
    """The client side of one sweep: counts, ``bt_sweeps`` updates, progress, and the batch loop."""

    def __init__(self, store: Store, row: dict[str, Any], total: int, skipped: int,
                 progress: Callable[[SweepProgress], None] | None) -> None:
        self.store, self.row, self.total, self.skipped = store, row, total, skipped
        self.progress = progress
        self.returns: dict[str, Any] = {}
        self.done = self.failed = 0
        self.started = self.written = time.monotonic()

    def snapshot(self) -> SweepProgress:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.skipped - self.done
        return SweepProgress(total=self.total, done=self.done, failed=self.failed, skipped=self.skipped,
                             elapsed_s=elapsed, rate=rate, eta_s=(left / rate) if rate > 0 else None)

    def write(self, status: str, **extra: Any) -> None:
        now = datetime.now(timezone.utc)
        self.row.update(status=status, total=self.total, done=self.skipped + self.done, failed=self.failed,
                        heartbeat=now, **extra)
        if status != "running":
            self.row["finished_at"] = now
        self.store.write_sweep(self.row)
        self.written = time.monotonic()

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.snapshot())

    def stored(self, rows: list[dict[str, Any]]) -> None:
        """A finished batch: one bulk upsert into ``bt_runs``, then counts, ``bt_sweeps`` and progress."""
        for row in rows:
            if RETURNS_KEY in row:
                self.returns[row["run_id"]] = row.pop(RETURNS_KEY)
        self.store.write_runs(rows)
        self.done += len(rows)
        self.failed += sum(1 for r in rows if r["status"] == "failed")
        self.write("running")
        self.report()

    def execute(self, client: Any, job: _Job, todo: list[tuple[str, dict[str, Any]]], batch_size: int | None,
                control: RunControl) -> None:
        """Run ``todo`` on the cluster in batches, storing each as it completes; returns when all are stored or,
        after a stop request, when the batches already running are stored (a second signal cancels them)."""
        from distributed import as_completed

        workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = _batch_size(batch_size, job.engine, len(todo), workers)
        batches = iter([todo[i:i + size] for i in range(0, len(todo), size)])
        shared = client.scatter(job, broadcast=True, hash=False)  # the bars reach each worker once
        running: dict[Any, list[tuple[str, dict[str, Any]]]] = {}
        queue = as_completed()

        def submit() -> None:
            batch = next(batches, None)
            if batch is not None and control.signum is None:
                future = client.submit(run_batch, shared, batch, pure=False)
                running[future] = batch
                queue.add(future)

        for _ in range(2 * workers):  # a short queue: a stop request waits for little
            submit()
        try:
            while running:
                finished = queue.next_batch(block=False)
                if not finished:
                    if time.monotonic() - self.written > HEARTBEAT_S:
                        self.write("running")  # alive while long batches run
                    time.sleep(0.02)
                    continue
                for future in finished:
                    batch = running.pop(future)
                    try:
                        rows = future.result()
                    except Exception as exc:  # the batch itself was lost (e.g. KilledWorker after repeated deaths)
                        rows = _failed_rows(job, batch, exc)
                    self.stored(rows)
                    submit()
        except KeyboardInterrupt:  # a second signal: stop at once
            client.cancel(list(running))
            running.clear()


def _failed_rows(job: _Job, batch: list[tuple[str, dict[str, Any]]], exc: BaseException) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    return [{**job.base_row, "run_id": run_id, "params": params, "status": "failed", "error": _error_text(exc),
             "finished_at": now, "heartbeat": now} for run_id, params in batch]


def _best(store: Store, sweep_id: str) -> dict[str, Any] | None:
    runs = store.sweep_runs(sweep_id, status="finished")
    if runs.empty or runs["sharpe"].isna().all():
        return None
    row = runs.loc[runs["sharpe"].idxmax()]
    return {"run_id": row["run_id"], "params": json.loads(row["params"]) if row["params"] else None,
            "sharpe": float(row["sharpe"]), "total_return": float(row["total_return"])}


def run_sweep(strategy: str, grid: Grid | str | Mapping[str, Any], *, exchange: str, symbols: str | Sequence[str],
              timeframe: str, start: Any = None, end: Any = None, engine: str = "backtrader",
              workers: int | None = None, scheduler: str | None = None, sweep_id: str | None = None,
              cash: float = 10_000.0, commission: float = 0.001, size_pct: float = 95.0,
              calendar: str | None = None, session: str | None = None, store: Store | str | None = None,
              progress: Callable[[SweepProgress], None] | None = None,
              batch_size: int | None = None, resample: str | Sequence[str] | None = None,
              returns: bool = False) -> SweepResult:
    """Run every combination of ``grid`` for ``strategy`` on Dask and store each result (see module docstring).

    Args:
        strategy: bundled name (``sma_cross``, ``orb``), ``module:Class`` or ``file.py:Class``.
        grid: a :class:`~btlab.sweep.grid.Grid`, a YAML file path, or a mapping of the YAML form.
        exchange, symbols, timeframe, start, end, cash, commission, size_pct, calendar, session: the backtest
            request, as :func:`btlab.run_backtest` (inclusive UTC bounds; commission a fraction; size_pct percent of
            cash per order); the same for every combination.
        engine: ``backtrader`` (default) or ``vector`` (numba kernels with the Backtrader engine's fills; only
            strategies with a kernel, one symbol).
        workers: worker processes of the local cluster (default 2, one thread each); ignored with a scheduler.
        scheduler: a Dask scheduler address (``tcp://host:8786``); default ``BTLAB_DASK_SCHEDULER``, else a local
            cluster.
        sweep_id: the sweep's id; default derived from the request (:func:`sweep_id_for`), so the same call resumes.
        store: a Store, an address, or None for ``BTLAB_STORE``/the default DuckDB file.
        progress: called with a :class:`SweepProgress` at the start and after every stored batch.
        batch_size: combinations per task (default: a few batches per worker, at most 10 on the Backtrader engine
            and 500 on the vector engine).
        resample: timeframes built from the stored ``timeframe`` bars for every run (``run_backtest(timeframes=
            [timeframe, *resample])``; e.g. ``["1d"]`` for ``regime_fsm``); Backtrader engine only. Part of the sweep
            id and of each combination's id.
        returns: also give each finished combination's daily returns in :attr:`SweepResult.returns` (Backtrader
            engine; what a walk-forward's PBO needs).

    Returns: :class:`SweepResult`.

    Raises:
        UnknownStrategyError, StrategyParameterError, InvalidArgumentError: bad strategy, grid (unknown parameter,
            bad spec), engine (no kernel) or request; nothing stored.
        NoDataError, DataGapError, WarmupError: as a backtest of the request (nothing stored).
        ClusterUnavailableError: the scheduler cannot be reached (the sweep is stored ``failed``).
        RunInterruptedError: SIGINT/SIGTERM stopped it (stored ``interrupted``; exit code 130/143).
        StoreUnavailableError: the store cannot be reached.
    """
    ref, cls = resolve_strategy(strategy)
    names = symbol_list(symbols)
    engine = check_engine(engine, ref, names)
    extra_tfs = resample_list(timeframe, resample, engine)
    the_grid = make_grid(grid)
    the_grid.check_params(strategy_params(cls), ref)
    owns_store = not isinstance(store, Store)
    the_store: Store = open_store(store) if owns_store else store  # type: ignore[assignment]
    try:
        return _sweep(ref, the_grid, the_store, exchange=exchange, names=names, timeframe=timeframe, start=start,
                      end=end, engine=engine, workers=workers, scheduler=scheduler, sweep_id=sweep_id, cash=cash,
                      commission=commission, size_pct=size_pct, calendar=calendar, session=session,
                      progress=progress, batch_size=batch_size, resample=extra_tfs, keep_returns=bool(returns))
    finally:
        if owns_store:
            the_store.close()


def _sweep(ref: str, grid: Grid, store: Store, *, exchange: str, names: list[str], timeframe: str, start: Any,
           end: Any, engine: str, workers: int | None, scheduler: str | None, sweep_id: str | None, cash: float,
           commission: float, size_pct: float, calendar: str | None, session: str | None,
           progress: Callable[[SweepProgress], None] | None, batch_size: int | None, resample: tuple[str, ...] = (),
           keep_returns: bool = False) -> SweepResult:
    config, bars, warnings = load_backtest_bars(ref, symbols=names, exchange=exchange, timeframe=timeframe, start=start,
                                         end=end, cash=cash, commission=commission, size_pct=size_pct,
                                         calendar=calendar, session=session, store=store)
    data_hash = hash_bars(bars)
    settings = {"cash": float(cash), "commission": float(commission), "size_pct": float(size_pct),
                "session": config.session, "calendar": config.calendar, "venue_calendar": config.venue_calendar,
                **({"resample": list(resample)} if resample else {})}  # without resampling: the ids as before
    data_from = min(b["ts"].iloc[0] for b in bars.values())
    data_to = max(b["ts"].iloc[-1] for b in bars.values())
    sid = sweep_id or sweep_id_for(ref, grid, exchange=exchange, symbols=names, timeframe=config.timeframe,
                                   data_from=data_from, data_to=data_to, data_hash=data_hash, engine=engine,
                                   config=settings)
    combos = grid.combinations()
    ids = [f"{sid}-{combo_id(ref, c, data_hash, engine, settings)}" for c in combos]
    ts = _sweep_start(store, sid, ref, engine)
    finished = store.finished_run_ids(sid)
    todo = [(run_id, c) for run_id, c in zip(ids, combos) if run_id not in finished]
    row = {"ts": ts, "sweep_id": sid, "strategy": ref, "grid": grid.spec, "params": grid.names,
           "exchange": exchange, "symbols": ",".join(names), "timeframe": config.timeframe,
           "calendar": config.venue_calendar, "data_from": data_from, "data_to": data_to, "data_hash": data_hash,
           "engine": engine, "config": settings, "btlab_version": btlab.__version__}
    state = _Sweep(store, row, total=len(combos), skipped=len(combos) - len(todo), progress=progress)
    state.write("running", error=None, finished_at=None)
    state.report()
    control = RunControl()
    if todo:
        from btlab.backtest.compat import bt

        base_row = {"ts": ts, "sweep_id": sid, "strategy": ref, "exchange": exchange, "symbols": ",".join(names),
                    "timeframe": config.timeframe, "data_from": data_from, "data_to": data_to,
                    "bars": sum(len(b) for b in bars.values()), "calendar": config.calendar, "cash": float(cash),
                    "commission": float(commission), "data_hash": data_hash, "btlab_version": btlab.__version__,
                    "backtrader_version": bt.__version__}
        job = _Job(strategy=ref, engine=engine, exchange=exchange, symbols=names, timeframe=config.timeframe,
                   start=start, end=end, cash=float(cash), commission=float(commission), size_pct=float(size_pct),
                   calendar=calendar, session=session, config=replace(config, resample=resample), bars=bars,
                   base_row=base_row, warnings=warnings, resample=resample, keep_returns=keep_returns)
        try:
            client, cluster = dask_client(workers, scheduler)
        except BaseException as exc:
            state.write("failed", error=_error_text(exc))
            raise
        try:
            with stop_on_signals(control, lambda: None):
                state.execute(client, job, todo, batch_size, control)
        except BaseException as exc:
            state.write("interrupted" if control.signum else "failed", error=_error_text(exc))
            raise
        finally:
            close_client(client, cluster)
    elapsed = time.monotonic() - state.started
    if control.signum and state.done < len(todo):  # a stop that came after the last batch stopped nothing
        message = f"{control.signal_name}: stopped after {state.done:,} of {len(todo):,} combinations of this call"
        state.write("interrupted", error=message)
        raise RunInterruptedError(f"sweep {sid} interrupted by {message}; stored as interrupted "
                                  f"(run it again to resume)", run_id=sid, signal_name=control.signal_name,
                                  signal_number=int(control.signum))
    state.write("finished", error=None)
    return SweepResult(sweep_id=sid, total=state.total, done=state.done, failed=state.failed, skipped=state.skipped,
                       status="finished", elapsed_s=elapsed, best=_best(store, sid), returns=state.returns)


def _sweep_start(store: Store, sweep_id: str, ref: str, engine: str) -> datetime:
    """The sweep's ``ts``: its first start when it is stored (resume), else now.

    Raises:
        InvalidArgumentError: the id is stored for another strategy or engine.
    """
    try:
        existing = store.get_sweep(sweep_id)
    except RunNotFoundError:
        return datetime.now(timezone.utc)
    if existing.get("strategy") != ref or existing.get("engine") != engine:
        raise InvalidArgumentError(f"sweep {sweep_id} is stored for strategy {existing.get('strategy')} on engine "
                                   f"{existing.get('engine')}: choose another sweep id")
    return existing["ts"]


def close_client(client: Any, cluster: Any) -> None:
    """Close a :func:`dask_client` pair: the client, then the local cluster (if one was started)."""
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()

