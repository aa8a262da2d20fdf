"""The best combinations of a sweep: ranking its runs by a metric (:func:`best_runs`), their parameters as columns
(:func:`params_frame`), and re-running the best ones with full recording (:func:`rerun_top`).

Ranking direction (:func:`ascending`): every metric column is "higher is better" (descending) except ``volatility``
and ``max_drawdown_days`` (lower is better, ascending). ``max_drawdown`` is stored as a fraction <= 0 (empyrical's
sign, see :mod:`btlab.backtest.metrics`), so higher (closer to 0) is better and it ranks descending too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from btlab.errors import InvalidArgumentError

#: The metric columns of a sweep's runs (:meth:`btlab.store.Store.sweep_runs`) that can rank combinations.
METRIC_COLUMNS: tuple[str, ...] = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "max_drawdown_days", "calmar",
    "win_rate", "profit_factor", "avg_trade", "exposure", "n_trades", "end_value",
)

#: Metrics where a lower value is better (ranked ascending); all others rank descending.
LOWER_IS_BETTER: frozenset[str] = frozenset({"volatility", "max_drawdown_days"})

#: Suffix of the run id of a combination re-run with full recording (:func:`rerun_top`).
FULL_SUFFIX = "-full"


def check_metric(metric: str, allowed: Sequence[str] = METRIC_COLUMNS) -> str:
    """``metric`` if it is one of ``allowed`` (default :data:`METRIC_COLUMNS`).

    Raises:
        InvalidArgumentError: any other name (the message lists the valid ones).
    """
    if metric not in allowed:
        raise InvalidArgumentError(f"unknown metric {metric!r}: use one of {', '.join(allowed)}")
    return metric


def ascending(metric: str) -> bool:
    """True when a lower ``metric`` is better (:data:`LOWER_IS_BETTER`), False otherwise."""
    return check_metric(metric) in LOWER_IS_BETTER


def _params(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.strip():
        parsed = json.loads(value)
        return dict(parsed) if isinstance(parsed, Mapping) else {}
    return {}


def params_frame(runs: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """The parameters of each run as columns, on ``runs``' index.

    Args:
        runs: sweep runs with a ``params`` column (JSON text of an object, or dicts).
        names: the columns to return, in order (a sweep row's ``params`` list); default: every name found, in
            order of first appearance. A run without a parameter has None there.
    """
    parsed = [_params(v) for v in (runs["params"] if "params" in runs else [None] * len(runs))]
    if names is None:
        names = list(dict.fromkeys(k for p in parsed for k in p))
    return pd.DataFrame({n: [p.get(n) for p in parsed] for n in names}, index=runs.index, dtype=object)


def best_runs(runs: pd.DataFrame, by: str = "sharpe", n: int | None = 10) -> pd.DataFrame:
    """The finished runs ranked best first by metric ``by`` (see :func:`ascending`), at most ``n`` (None: all).

    Runs whose ``by`` is missing or NaN come last (they have no rank to give); +inf counts as the highest value
    (a profit factor without losing trades). Ties keep ``run_id`` order, so the ranking is deterministic.

    Raises:
        InvalidArgumentError: ``by`` is not a metric column, or ``n`` < 1.
    """
    check_metric(by)
    if n is not None and n < 1:
        raise InvalidArgumentError(f"-n must be at least 1, got {n}")
    done = runs[runs["status"] == "finished"] if "status" in runs else runs
    key = pd.to_numeric(done[by], errors="coerce") if by in done else pd.Series(math.nan, index=done.index)
    ordered = done.assign(_key=key, _nan=key.isna()).sort_values(
        ["_nan", "_key", "run_id"], ascending=[True, ascending(by), True], kind="stable")
    out = ordered.drop(columns=["_key", "_nan"])
    return (out if n is None else out.head(n)).reset_index(drop=True)


def rerun_top(sweep_id: str, *, by: str = "sharpe", n: int = 10, store: Any = None,
              progress: Callable[[int, int], None] | None = None) -> list[Any]:
    """Re-run the ``n`` best finished combinations of a sweep with full recording (equity, trades, orders).

    Each combination runs through :func:`btlab.run_backtest` on the sweep row's data range and configuration
    (strategy, exchange, symbols, timeframe, ``data_from`` .. ``data_to``, calendar, and ``config``'s cash,
    commission, size_pct and session) with run id ``f"{combination run id}{FULL_SUFFIX}"`` and ``sweep_id=None``
    (so the sweep's own counts stay exact; the ``-full`` runs are found by their id). Running it again re-records
    the same runs under the same ids (the store's keys make that idempotent).

    Args:
        sweep_id: the sweep (``bt_sweeps.sweep_id``).
        by, n: ranking metric and how many (see :func:`best_runs` for the direction).
        store: a :class:`btlab.store.Store` or an address (None: the default store).
        progress: called with ``(done, total)`` after each combination.

    Returns: the :class:`~btlab.backtest.runner.BacktestResult` of each re-run, best first.

    Raises:
        RunNotFoundError: no such sweep. InvalidArgumentError: unknown metric or ``n`` < 1.
        NoDataError: the sweep has no finished combination with a value of ``by``.
    """
    from btlab.store import Store, open_store

    if isinstance(store, Store):
        return _rerun(store, sweep_id, by, n, progress)
    with open_store(store) as opened:
        return _rerun(opened, sweep_id, by, n, progress)


def _rerun(store: Any, sweep_id: str, by: str, n: int, progress: Callable[[int, int], None] | None) -> list[Any]:
    from btlab.backtest.runner import run_backtest
    from btlab.errors import NoDataError

    sweep = store.get_sweep(sweep_id)
    best = best_runs(store.sweep_runs(sweep_id, status="finished"), by, n)
    best = best[pd.to_numeric(best[by], errors="coerce").notna()]
    if best.empty:
        raise NoDataError(f"sweep {sweep_id!r} has no finished combination with a {by} value to re-run")
    config = _params(sweep.get("config"))
    resample = list(config.get("resample") or [])  # a sweep run with --resample: the same feeds again
    frames = {"timeframes": [sweep["timeframe"], *resample]} if resample else {"timeframe": sweep["timeframe"]}
    results = []
    for i, row in enumerate(best.itertuples(index=False), 1):
        results.append(run_backtest(
            sweep["strategy"], symbols=sweep["symbols"], exchange=sweep["exchange"], **frames,
            start=_iso(sweep.get("data_from")), end=_iso(sweep.get("data_to")), params=_params(row.params),
            calendar=sweep.get("calendar") or None, store=store, run_id=f"{row.run_id}{FULL_SUFFIX}", sweep_id=None,
            **{k: config[k] for k in ("cash", "commission", "size_pct", "session") if config.get(k) is not None},
        ))
        if progress is not None:
            progress(i, len(best))
    return results


def _iso(value: Any) -> str | None:
    """A stored time as an ISO 8601 UTC string for :func:`btlab.run_backtest` (None stays None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


__all__ = ["FULL_SUFFIX", "LOWER_IS_BETTER", "METRIC_COLUMNS", "ascending", "best_runs", "check_metric",
           "params_frame", "rerun_top"]
