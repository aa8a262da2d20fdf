"""Judging a tilt policy out of sample: ``rl_tilt`` beside the untilted basket, same data, dates and costs.

:func:`evaluate` runs the bundled ``rl_tilt`` strategy twice through :func:`btlab.backtest.runner.run_backtest`
(both recorded like every run): with the policy, and with ``untilted=True`` (the model's basket at its base
weights, rebalanced on the same schedule: what the tilts add is the only difference). The table has, per row,
the tracking figures of :func:`btlab.backtest.tracking.tracking_metrics` (tracking error, active return, R²,
turnover, commission, cost per year), the run's ``total_return`` and ``sharpe`` (:mod:`btlab.backtest.metrics`:
daily returns, 252 sessions a year, rf = 0) and ``index_return``, the index's compounded return over the bars the
tracking figures cover (from the first fill on; before it the run holds cash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from btlab.strategies.tilt_policy import check_run_range, read_sidecar, require_rl

__all__ = ["ROWS", "EvaluationResult", "evaluate"]

#: row name -> extra ``rl_tilt`` parameters
ROWS: dict[str, dict[str, Any]] = {"rl_tilt": {}, "untilted": {"untilted": True}}
COLUMNS = ["total_return", "index_return", "sharpe", "tracking_error", "active_return", "r2", "turnover", "commission",
           "cost_per_year", "bars", "first", "last", "run_id"]


@dataclass
class EvaluationResult:
    """``table`` (rows :data:`ROWS`, columns ``COLUMNS``), the two BacktestResults by row, and the sidecar."""

    table: pd.DataFrame
    results: dict[str, Any] = field(default_factory=dict, repr=False)
    meta: dict[str, Any] = field(default_factory=dict, repr=False)


def evaluate(model: str | Path, *, start: Any = None, end: Any = None, cash: float = 1_000_000.0,
             commission: float | None = None, allow_overlap: bool = False, store: Any = None, record: bool = True,
             progress: Any = None) -> EvaluationResult:
    """Run the policy and the untilted basket on the same range (module text).

    Args:
        model: the policy file (``.zip`` with its sidecar).
        start, end: the run's range (inclusive UTC days); ``start`` defaults to the day after the model's last
            training bar.
        cash: starting cash (1e6 keeps whole-share rounding small). commission: default the model's.
        allow_overlap: allow a range inside the training range (then not out of sample: say so when you show it).
        store, record, progress: as :func:`btlab.backtest.runner.run_backtest` (``progress`` is called for each
            run in turn).

    Returns: :class:`EvaluationResult`.

    Raises:
        InvalidArgumentError: the extra is missing, an unreadable model, a range overlapping the training range;
            as ``run_backtest``.
    """
    require_rl()
    from btlab.backtest.runner import run_backtest
    from btlab.backtest.tracking import active_returns, tracking_metrics

    meta = read_sidecar(model)
    spec, trained = meta["spec"], meta["train"]
    if start is None:
        start = (pd.Timestamp(trained["last_bar"]) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    check_run_range(meta, start, allow_overlap=allow_overlap)
    symbols = [*spec["names"], spec["index"]]
    fee = float(spec["commission"] if commission is None else commission)
    results, rows = {}, {}
    for row, extra in ROWS.items():
        result = run_backtest("rl_tilt", symbols=symbols, exchange=trained["exchange"],
                              timeframe=trained["timeframe"], start=start, end=end, cash=cash, commission=fee,
                              params={"model": str(model), "allow_overlap": allow_overlap, **extra}, store=store,
                              record=record, progress=progress)
        index_bars = result.bars_by_symbol[spec["index"]]
        figures = tracking_metrics(result.equity, result.orders, index_bars)
        returns = active_returns(result.equity["value"], index_bars.set_index("ts")["close"], figures["first"])
        rows[row] = {**figures, "total_return": result.summary.total_return, "sharpe": result.summary.sharpe,
                     "index_return": float((1 + returns["index"]).prod() - 1), "run_id": result.run_id}
        results[row] = result
    if record:
        _record_tracking(store, results, spec["index"])
    return EvaluationResult(pd.DataFrame.from_dict(rows, orient="index")[COLUMNS], results, meta)


def _record_tracking(store: Any, results: dict[str, Any], index: str) -> None:
    """Write the two rows' tracking table into each run's row (``metrics["tracking"]``, each run its own row), so
    that the run report and ``btlab runs show`` give the policy beside the untilted basket."""
    from btlab.backtest.tracking import record_tracking, tracking_record, tracking_report
    from btlab.store.base import Store
    from btlab.store.factory import open_store

    periods = int(next(iter(results.values())).summary.periods_per_year)
    table = tracking_report(results, index, periods=periods)

    def write(st: Store) -> None:
        for row, result in results.items():
            record_tracking(st, result.run_id, tracking_record(table, index=index, own=row, periods=periods))

    if isinstance(store, Store):
        write(store)
    else:
        with open_store(store) as st:
            write(st)
