"""How well a run tracks an index: tracking error, correlation/R², turnover and costs, beside two baselines.

Definitions (per run, over the bars from the first fill to the end; ``r_p`` the portfolio's simple return per bar
from the run's equity value, ``r_i`` the index's close-to-close return on the same bars, both per base bar, i.e. per
session for daily equity bars):

* ``tracking_error`` = ``std(r_p - r_i, ddof=1) * sqrt(periods)`` (annualized standard deviation of the active
  returns; ``periods`` = 252 sessions a year for exchange-session equities, as in ARCHITECTURE.md "Metrics").
* ``active_return`` = ``mean(r_p - r_i) * periods`` (annualized arithmetic mean of the active returns).
* ``correlation`` = Pearson correlation of ``r_p`` and ``r_i``; ``r2`` = its square (the R² of the regression of
  ``r_p`` on ``r_i`` with an intercept); ``beta`` = ``cov(r_p, r_i) / var(r_i)``.
* ``turnover`` = ``sum over fills |executed size x executed price| / V`` per year, ``V`` the portfolio value at the
  close before the fill (so a rebalance from basket ``w`` to ``w'`` adds ``sum |w' - w|``, buys and sells both
  counted; the first purchase counts as about ``gross``), divided by ``bars / periods`` years.
* ``commission`` = commission paid over the whole run (account currency); ``cost_per_year`` = commission / mean
  portfolio value / years (a fraction).

:func:`run_tracking` runs the bundled ``mp_tracker`` three times on the same feeds, dates, K, lookback, rebalance
schedule, broker and commission -- ``basket=omp`` (the matching-pursuit basket), ``equal_weight_k`` (the same names,
equal weights) and ``top_k_corr`` (the K names most correlated with the index over the lookback, equal weights) --
and :func:`tracking_report` tabulates them.

After a recorded ``mp_tracker`` run (``btlab backtest --strategy mp_tracker ...`` does this),
:func:`track_result` runs the two other baskets on the same bars and settings (not recorded), tabulates the three
and writes the table into the run row's ``metrics`` JSON under :data:`TRACKING_KEY` (:func:`tracking_record`);
the run report and ``btlab runs show`` read it from there, and draw :func:`tracking_series` (both curves rebased,
active return, rolling tracking error) from the stored equity and the index's stored bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError

__all__ = ["BASELINES", "TRACKING_KEY", "TrackingRun", "active_returns", "is_tracking_run", "record_tracking",
           "run_tracking", "track_result", "tracking_metrics", "tracking_record", "tracking_report",
           "tracking_series"]

#: the key of the run row's ``metrics`` JSON holding :func:`tracking_record`
TRACKING_KEY = "tracking"

#: the rows of :func:`run_tracking`'s table -> the ``basket`` parameter of ``mp_tracker``.
BASELINES: dict[str, str] = {"mp_tracker": "omp", "equal_weight_k": "equal_weight_k", "top_k_corr": "top_k_corr"}

COLUMNS = ["tracking_error", "active_return", "correlation", "r2", "beta", "turnover", "commission", "cost_per_year",
           "bars", "first", "last"]


def active_returns(equity_value: pd.Series, index_close: pd.Series, start: pd.Timestamp | None = None
                   ) -> pd.DataFrame:
    """Per-bar simple returns of the portfolio and of the index on the bars both have, from ``start`` on.

    Args:
        equity_value: portfolio value per bar (index: UTC bar open times), e.g. ``BacktestResult.equity["value"]``.
        index_close: the index's close per bar (same kind of index).
        start: first bar whose return counts (its return is from the bar before); None: all.

    Returns:
        DataFrame indexed by bar open time: ``portfolio``, ``index``, ``active`` (= portfolio - index).
    """
    both = pd.concat({"portfolio": equity_value, "index": index_close}, axis=1, join="inner").sort_index()
    returns = both.pct_change().iloc[1:]
    if start is not None:
        returns = returns[returns.index >= start]
    returns["active"] = returns["portfolio"] - returns["index"]
    return returns


def tracking_metrics(equity: pd.DataFrame, orders: pd.DataFrame, index_bars: pd.DataFrame, *,
                     periods: int = 252) -> dict[str, Any]:
    """The tracking figures of one run (definitions in the module text).

    Args:
        equity: ``BacktestResult.equity`` (index UTC bar open time; column ``value``).
        orders: ``BacktestResult.orders`` (``ts, status, executed_size, executed_price, commission``).
        index_bars: the index's bars (``ts`` UTC bar open time, ``close``), e.g. ``result.bars_by_symbol["^GSPC"]``.
        periods: bars per year (252 for daily equity bars).

    Returns:
        ``{tracking_error, active_return, correlation, r2, beta, turnover, commission, cost_per_year, bars, first,
        last}``; NaN figures when fewer than 2 returns follow the first fill.

    Raises:
        InvalidArgumentError: no order was filled (nothing was tracked).
    """
    fills = orders[orders["status"] == "Completed"] if len(orders) else orders
    if fills.empty:
        raise InvalidArgumentError("no order was filled in this run: nothing tracks the index (is the range shorter "
                                   "than lookback + 1 bars?)")
    start = pd.Timestamp(fills["ts"].min())
    value = equity["value"]
    returns = active_returns(value, index_bars.set_index("ts")["close"], start)
    n = len(returns)
    years = n / periods if n else float("nan")
    before = value.shift(1).reindex(pd.DatetimeIndex(fills["ts"]))  # the value at the close the order was decided on
    traded = (fills["executed_size"].abs() * fills["executed_price"]).to_numpy() / before.to_numpy()
    commission = float(fills["commission"].sum())
    held = value[value.index >= start]
    cov = returns[["portfolio", "index"]].cov().to_numpy() if n > 1 else np.full((2, 2), np.nan)
    corr = float(returns["portfolio"].corr(returns["index"])) if n > 1 else float("nan")
    return {
        "tracking_error": float(returns["active"].std(ddof=1) * np.sqrt(periods)) if n > 1 else float("nan"),
        "active_return": float(returns["active"].mean() * periods) if n else float("nan"),
        "correlation": corr,
        "r2": corr * corr,
        "beta": float(cov[0, 1] / cov[1, 1]) if n > 1 and cov[1, 1] > 0 else float("nan"),
        "turnover": float(np.nansum(traded) / years),
        "commission": commission,
        "cost_per_year": float(commission / held.mean() / years),
        "bars": n,
        "first": returns.index[0] if n else start,
        "last": returns.index[-1] if n else start,
    }


def tracking_report(results: Mapping[str, Any], index: str, *, periods: int = 252) -> pd.DataFrame:
    """A small table of :func:`tracking_metrics`, one row per run.

    Args:
        results: ``{row name: BacktestResult}`` (e.g. ``TrackingRun.results``).
        index: the index's symbol, a key of each result's ``bars_by_symbol``.

    Returns: DataFrame indexed by the row names, columns :data:`COLUMNS`.
    """
    rows = {name: tracking_metrics(r.equity, r.orders, r.bars_by_symbol[index], periods=periods)
            for name, r in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index")[COLUMNS]


@dataclass
class TrackingRun:
    """What :func:`run_tracking` returns: ``table`` (rows ``mp_tracker``, ``equal_weight_k``, ``top_k_corr``) and
    the three :class:`~btlab.backtest.runner.BacktestResult` by row name; from :func:`track_result` also
    ``record`` (:func:`tracking_record`, as written into the run row)."""

    table: pd.DataFrame
    results: dict[str, Any] = field(default_factory=dict, repr=False)
    record: dict[str, Any] | None = None


def run_tracking(symbols: Sequence[str], *, index: str = "^GSPC", k: int = 10, lookback: int = 252,
                 rebalance: int = 21, weights: str = "simplex", gross: float = 0.98, exchange: str = "nyse",
                 timeframe: str = "1d", periods: int = 252, **run_kwargs: Any) -> TrackingRun:
    """Run ``mp_tracker`` and its two baselines on the same data and settings, and tabulate how each tracks.

    Args:
        symbols: the constituents (stored symbols); the index is added as the last feed.
        index, k, lookback, rebalance, weights, gross: ``mp_tracker`` parameters (see
            :class:`btlab.strategies.mp_tracker.MatchingPursuitTracker`).
        exchange, timeframe: the stored series (``nyse``, ``1d``).
        periods: bars per year for the annualization (252).
        run_kwargs: passed to :func:`~btlab.backtest.runner.run_backtest` for all three runs (``start``, ``end``,
            ``cash``, ``commission``, ``store``, ``record``, ...).

    Returns: :class:`TrackingRun`.

    Raises:
        InvalidArgumentError: no constituent, or the index among the constituents; as ``run_backtest``.
    """
    from btlab.backtest.runner import run_backtest

    names = [s for s in symbols if s]
    if not names:
        raise InvalidArgumentError("give at least one constituent symbol")
    if index in names:
        raise InvalidArgumentError(f"the index {index} is also among the constituents: give it once, as index")
    params = {"index": index, "k": k, "lookback": lookback, "rebalance": rebalance, "weights": weights,
              "gross": gross}
    results = {row: run_backtest("mp_tracker", symbols=[*names, index], exchange=exchange, timeframe=timeframe,
                                 params={**params, "basket": basket}, **run_kwargs)
               for row, basket in BASELINES.items()}
    return TrackingRun(tracking_report(results, index, periods=periods), results)


def tracking_series(equity_value: pd.Series, index_close: pd.Series, start: pd.Timestamp | None, window: int,
                    periods: int = 252) -> pd.DataFrame:
    """The series the report draws for a tracking run, on the bars both series have.

    Args:
        equity_value: portfolio value per bar (index UTC bar open times).
        index_close: the index's close per bar (same kind of index).
        start: first bar whose return counts (as :func:`tracking_metrics`: the first fill's bar); None: all.
        window: bars per rolling window (e.g. 63 sessions).
        periods: bars per year.

    Returns:
        DataFrame indexed by bar open time, from the bar before ``start`` (the rebasing point, where both are 1.0
        and the returns are NaN): ``portfolio`` and ``index`` rebased (value / value at the rebasing bar),
        ``active`` (per-bar active return, portfolio - index), ``rolling_tracking_error``
        (``active.rolling(window).std(ddof=1) * sqrt(periods)``, NaN for the first ``window - 1`` returns). The
        whole-run tracking error of :func:`tracking_metrics` is ``active.std(ddof=1) * sqrt(periods)`` of the same
        ``active``.
    """
    both = pd.concat({"portfolio": equity_value, "index": index_close}, axis=1, join="inner").sort_index()
    returns = active_returns(equity_value, index_close, start)
    first = both.index.get_loc(returns.index[0]) - 1 if len(returns) else 0
    base = both.iloc[max(first, 0):]
    out = base / base.iloc[0] if len(base) else base.copy()
    out["active"] = returns["active"].reindex(out.index)
    out["rolling_tracking_error"] = out["active"].rolling(window).std(ddof=1) * np.sqrt(periods)
    return out


def is_tracking_run(result: Any) -> bool:
    """Whether ``result`` (a :class:`~btlab.backtest.runner.BacktestResult`) is an index-tracking run: the bundled
    ``mp_tracker`` (its params name the ``index`` and the ``basket``)."""
    params = result.config.params
    return result.config.strategy == "mp_tracker" and "index" in params and "basket" in params


def track_result(result: Any, *, store: Any = None) -> TrackingRun:
    """The tracking table of an ``mp_tracker`` run beside the other two baskets, recorded with the run.

    The two other rows of :data:`BASELINES` are run with :func:`~btlab.backtest.runner.run_backtest` on the
    run's own bars (``result.bars_by_symbol``) and config (range, cash, commission, sizing, slippage, calendar,
    session, every parameter but ``basket``), not recorded; the run itself is its basket's row. Annualization:
    the run's ``periods_per_year`` (252 for exchange sessions).

    Args:
        result: a :class:`~btlab.backtest.runner.BacktestResult` of ``mp_tracker`` (:func:`is_tracking_run`).
        store: an open :class:`~btlab.store.Store` holding the run: the table is written into its run row
            (:func:`record_tracking`); None: not written.

    Returns: :class:`TrackingRun` (``results`` holds this run under its basket's row name).

    Raises:
        InvalidArgumentError: not an ``mp_tracker`` run, or no order was filled.
    """
    from btlab.backtest.runner import run_backtest

    if not is_tracking_run(result):
        raise InvalidArgumentError(f"run {result.run_id} is a {result.config.strategy} run: tracking figures need "
                                   "an mp_tracker run")
    cfg = result.config
    periods = int(result.summary.periods_per_year)
    own = next(row for row, basket in BASELINES.items() if basket == cfg.params["basket"])
    results = {}
    for row, basket in BASELINES.items():
        results[row] = result if row == own else run_backtest(
            cfg.strategy, symbols=list(cfg.symbols), exchange=cfg.exchange, timeframes=[cfg.timeframe, *cfg.resample],
            start=cfg.start, end=cfg.end, params={**cfg.params, "basket": basket}, cash=cfg.cash,
            commission=cfg.commission, size_pct=cfg.size_pct, stake=cfg.stake, slippage_pct=cfg.slippage_pct,
            slippage_fixed=cfg.slippage_fixed, calendar=cfg.venue_calendar, session=cfg.session,
            bars=result.bars_by_symbol, record=False)
    table = tracking_report(results, cfg.params["index"], periods=periods)
    record = tracking_record(table, index=cfg.params["index"], own=own, periods=periods)
    if store is not None:
        record_tracking(store, result.run_id, record)
    return TrackingRun(table, results, record)


def tracking_record(table: pd.DataFrame, *, index: str, own: str, periods: int) -> dict[str, Any]:
    """:func:`tracking_report`'s table as JSON-ready data: ``{"index", "own" (the run's row), "periods",
    "rows": {row: {column: number, "first"/"last": ISO 8601 UTC text}}}`` (NaN stays NaN)."""
    rows = {}
    for name, row in table.iterrows():
        rows[str(name)] = {col: (pd.Timestamp(row[col]).isoformat() if col in ("first", "last") else
                                 int(row[col]) if col == "bars" else float(row[col])) for col in COLUMNS}
    return {"index": index, "own": own, "periods": int(periods), "rows": rows}


def record_tracking(store: Any, run_id: str, record: Mapping[str, Any]) -> None:
    """Write ``record`` (:func:`tracking_record`) into run ``run_id``'s ``metrics`` JSON under
    :data:`TRACKING_KEY` (the rest of the row unchanged).

    Raises:
        RunNotFoundError: the store has no such run.
    """
    import json

    row = store.run_row(run_id)
    metrics = row.get("metrics")
    metrics = json.loads(metrics) if isinstance(metrics, str) else dict(metrics or {})
    metrics[TRACKING_KEY] = dict(record)
    row["metrics"] = metrics
    store.write_run(row)
