"""The vector engine's pandas-facing side: :func:`run_vector` and :func:`supports`.

A strategy with a kernel runs here in milliseconds with exactly the Backtrader engine's fills (same trades: times,
prices, sizes; same final value), as btlab configures Backtrader (:func:`btlab.run_backtest`): market orders fill
at the next bar's open, no slippage, commission a fraction of traded value on both sides, PercentSizer sizing.

``sma_cross`` rules, as Backtrader computes them:

* SMA of closes: ``math.fsum`` of the window divided by the period (Backtrader's ``Average``), not a running sum
  (a running sum differs in the last bits and flips a near-tie cross now and then, e.g. fast 45 / slow 60 on the
  BTC/USDT 1h bars).
* CrossOver: the last non-zero ``fast - slow`` difference carries over equal values; an equal pair is no cross.
  The strategy's ``next`` runs from bar ``slow`` (0-based) on.
* Entry on an up-cross without a position: size = cash at the signal / the signal bar's close * size_pct / 100.
  The order is checked at submission with the signal close (cash - size * close - commission >= 0) and again at
  the fill with the next bar's open (else refused: Backtrader's Margin status, no position).
* Exit on a down-cross with a position: the whole position, at the next bar's open.
* Value per bar: cash + the position valued at the bar's close (Backtrader's ``_get_value`` arithmetic).

Metrics come from :func:`btlab.backtest.metrics.compute_metrics` on the same equity and trades frames the
recorder builds, with the same buy-and-hold benchmark, so they equal the Backtrader engine's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.metrics import Metrics, benchmark_equity, compute_metrics
from btlab.errors import InvalidArgumentError

__all__ = ["KERNELS", "run_vector", "simulate", "supports"]

#: strategies with a kernel (bundled names)
KERNELS: tuple[str, ...] = ("sma_cross",)


def supports(strategy: str | type) -> bool:
    """True when ``strategy`` (a bundled name, or the bundled class) has a vector kernel."""
    if isinstance(strategy, str):
        return strategy.strip() in KERNELS
    ref = f"{getattr(strategy, '__module__', '')}:{getattr(strategy, '__qualname__', '')}"
    return ref == "btlab.strategies.sma_cross:SmaCross"


def _sma_cross_params(params: dict[str, Any] | None) -> tuple[int, int]:
    p = {"fast": 10, "slow": 30, **(params or {})}
    unknown = sorted(set(p) - {"fast", "slow"})
    if unknown:
        raise InvalidArgumentError(f"sma_cross has no parameter(s) {', '.join(unknown)}: its parameters are fast, slow")
    fast, slow = int(p["fast"]), int(p["slow"])
    if not 0 < fast < slow:
        raise InvalidArgumentError(f"sma_cross needs 0 < fast < slow (SMA periods in bars), got {fast}, {slow}")
    return fast, slow


def simulate(strategy: str, open_: np.ndarray, close: np.ndarray, params: dict[str, Any] | None, cash: float,
             commission: float, size_pct: float,
             sma_cache: dict[int, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run a kernel on price arrays (no pandas): the core of :func:`run_vector`, for sweeps.

    Args:
        strategy: a name in :data:`KERNELS`. open_, close: float64 prices per bar, in time order.
        params, cash, commission, size_pct: as :func:`run_vector`.
        sma_cache: optional ``{period: SMA array}`` shared between calls on the same bars (filled as needed).

    Returns: ``(value per bar, cash per bar, trades (k, 6) as kernels.TRADE_FIELDS, orders refused for cash)``.

    Raises:
        InvalidArgumentError: a strategy without a kernel, or bad parameters.
    """
    from btlab.backtest.vector import kernels

    if not supports(strategy):
        raise InvalidArgumentError(f"strategy {strategy!r} has no vector kernel (kernels: {', '.join(KERNELS)}); "
                                   "run it on the Backtrader engine")
    fast, slow = _sma_cross_params(params)
    close = np.ascontiguousarray(close, dtype=np.float64)
    open_ = np.ascontiguousarray(open_, dtype=np.float64)
    cache = sma_cache if sma_cache is not None else {}
    for period in (fast, slow):
        if period not in cache:
            cache[period] = kernels.fsum_rolling_mean(close, period)
    cross = kernels.sma_cross_signals(cache[fast], cache[slow], slow)
    n = len(close)
    value, cash_arr = np.empty(n), np.empty(n)
    trades = np.empty((n // 2 + 1, len(kernels.TRADE_FIELDS)))
    k, margin = kernels.sma_cross_simulate(open_, close, cross, slow, float(cash), float(commission),
                                           float(size_pct), value, cash_arr, trades)
    return value, cash_arr, trades[:k], int(margin)


def run_vector(strategy: str, bars: pd.DataFrame, params: dict[str, Any] | None = None, cash: float = 10_000.0,
               commission: float = 0.001, size_pct: float = 95.0, *, calendar: str = "24/7",
               symbol: str = "") -> tuple[Metrics, pd.DataFrame]:
    """Run ``strategy`` on ``bars`` with its numba kernel: the Backtrader engine's result, much faster.

    Args:
        strategy: a bundled strategy with a kernel (:func:`supports`; ``sma_cross``).
        bars: btlab bars (:mod:`btlab.model.bar`): ``ts`` (``datetime64[ns, UTC]`` bar open time), ``open``,
            ``close`` (and ``high``, ``low``, ``volume``, unused), in time order, as ``run_backtest`` feeds them.
        params: strategy parameters (``fast``, ``slow``: SMA periods in bars; defaults 10 and 30).
        cash: starting cash; commission: fraction of traded value per fill (0.001 = 0.1 %); size_pct: percent of
            cash per entry (the run's ``size_pct``).
        calendar: the venue calendar for the metrics (``24/7`` or an exchange calendar code), as the run's.
        symbol: the instrument's name, written into the trades' ``symbol`` column.

    Returns:
        ``(metrics, trades)``: the :class:`~btlab.backtest.metrics.Metrics` and the closed trades in the layout of
        ``BacktestResult.trades`` (``ts`` exit bar open time UTC, ``trade_ref`` from 1, ``symbol``, ``direction``,
        ``size``, ``entry_ts``, ``entry_price``, ``exit_price``, ``pnl``, ``pnl_net``, ``commission``,
        ``bars_held``).

    Raises:
        InvalidArgumentError: no kernel for the strategy (run it on the Backtrader engine), bad parameters, no bars.
    """
    if len(bars) == 0:
        raise InvalidArgumentError("run_vector: no bars")
    ts = pd.DatetimeIndex(bars["ts"])
    value, cash_arr, trades, _ = simulate(strategy, bars["open"].to_numpy(), bars["close"].to_numpy(), params,
                                          cash, commission, size_pct)
    peak = np.maximum.accumulate(np.concatenate(([float(cash)], value)))[1:]
    equity = pd.DataFrame({"value": value, "cash": cash_arr, "drawdown": value / peak - 1.0,
                           "position_value": value - cash_arr}, index=ts.rename("ts"))
    frame = trades_frame(trades, ts, symbol)
    benchmark = benchmark_equity(bars, float(cash))
    metrics = compute_metrics(equity, frame, start_value=float(cash), calendar=calendar, benchmark=benchmark)
    return metrics, frame


def trades_frame(trades: np.ndarray, ts: pd.DatetimeIndex, symbol: str = "") -> pd.DataFrame:
    """A kernel's trade buffer as ``BacktestResult.trades`` (see :func:`run_vector`); ``ts``: the bars' open times."""
    entry_i = trades[:, 0].astype(np.int64)
    exit_i = trades[:, 1].astype(np.int64)
    size, entry, pnl, comm = trades[:, 2], trades[:, 3], trades[:, 4], trades[:, 5]
    return pd.DataFrame({
        "ts": ts[exit_i],
        "trade_ref": np.arange(1, len(trades) + 1, dtype=np.int64),
        "symbol": symbol,
        "direction": "long",
        "size": size,
        "entry_ts": ts[entry_i],
        "entry_price": entry,
        "exit_price": entry + pnl / (size * 1.0),
        "pnl": pnl,
        "pnl_net": pnl - comm,
        "commission": comm,
        "bars_held": exit_i - entry_i,
    })
