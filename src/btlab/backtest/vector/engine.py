"""The vector engine's pandas-facing side: :func:`run_vector` and :func:`supports`.

A strategy with a kernel (``sma_cross``, ``orb``) runs here in milliseconds with exactly the Backtrader engine's
fills (same trades: times, prices, sizes; same final value), as btlab configures Backtrader
(:func:`btlab.run_backtest`): market orders fill at the next bar's open, no slippage, commission a fraction of
traded value on both sides, PercentSizer sizing.

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

``orb`` rules: :mod:`btlab.backtest.vector.orb` (Backtrader's bracket orders: market entry, stop and take-profit
limit children, gaps through the stop/limit filled at the open, the session windows of the strategy).

Sweeps: read the bars once, keep one ``cache = {}`` per bars, and per combination call either
``run_vector(name, bars, params, cash, commission, size_pct, calendar=venue_calendar, timeframe=tf, cache=cache)``
(metrics and trades) or, for the bare simulation,
``simulate(name, o, c, params, cash, commission, size_pct, cache, high=h, low=l, ts=bars["ts"], timeframe=tf,
calendar=venue_calendar)`` with ``o, h, l, c`` the bars' float64 arrays (``sma_cross`` ignores the keywords;
``orb`` needs them). ``venue_calendar`` is the run's (``BacktestConfig.venue_calendar``: ``24/7``, ``XNYS``).

Metrics come from :func:`btlab.backtest.metrics.compute_metrics` on the same equity and trades frames the
recorder builds, with the same buy-and-hold benchmark, so they equal the Backtrader engine's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.metrics import Metrics, benchmark_equity, compute_metrics
from btlab.errors import InvalidArgumentError
from btlab.model.timeframe import Timeframe

__all__ = ["KERNELS", "run_vector", "simulate", "supports"]

#: strategies with a kernel (bundled names)
KERNELS: tuple[str, ...] = ("sma_cross", "orb")
_CLASSES = {"btlab.strategies.sma_cross:SmaCross": "sma_cross", "btlab.strategies.orb:OpeningRangeBreakout": "orb"}


def _kernel_name(strategy: str | type) -> str | None:
    if isinstance(strategy, str):
        name = strategy.strip()
        return name if name in KERNELS else None
    return _CLASSES.get(f"{getattr(strategy, '__module__', '')}:{getattr(strategy, '__qualname__', '')}")


def supports(strategy: str | type) -> bool:
    """True when ``strategy`` (a bundled name, or the bundled class) has a vector kernel."""
    return _kernel_name(strategy) is not None


def _sma_cross_params(params: dict[str, Any] | None) -> tuple[int, int]:
    p = {"fast": 10, "slow": 30, **(params or {})}
    unknown = sorted(set(p) - {"fast", "slow"})
    if unknown:
        raise InvalidArgumentError(f"sma_cross has no parameter(s) {', '.join(unknown)}: its parameters are fast, slow")
    fast, slow = int(p["fast"]), int(p["slow"])
    if not 0 < fast < slow:
        raise InvalidArgumentError(f"sma_cross needs 0 < fast < slow (SMA periods in bars), got {fast}, {slow}")
    return fast, slow


def simulate(strategy: str | type, open_: np.ndarray, close: np.ndarray, params: dict[str, Any] | None,
             cash: float, commission: float, size_pct: float, sma_cache: dict[Any, Any] | None = None, *,
             high: np.ndarray | None = None, low: np.ndarray | None = None,
             ts: np.ndarray | pd.DatetimeIndex | pd.Series | None = None, timeframe: Timeframe | str | None = None,
             calendar: str = "24/7") -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run a kernel on price arrays (no pandas in the loop): the core of :func:`run_vector`, for sweeps.

    Args:
        strategy: a name in :data:`KERNELS` (or its bundled class). open_, close: float64 prices per bar, in time
            order. params, cash, commission, size_pct: as :func:`run_vector`.
        sma_cache: optional dict shared between calls on the SAME bars (filled as needed): ``{period: SMA array}``
            for ``sma_cross``, the session windows for ``orb`` (keyed by calendar and session start).
        high, low, ts, timeframe, calendar: needed by ``orb`` only (keyword-only): high and low prices per bar,
            the bar open times (``datetime64[ns, UTC]`` values or int64 ns UTC), the bars' timeframe (``"1m"``) and
            the venue's calendar (``24/7`` or a code such as ``XNYS``; the strategy's ``calendar`` parameter wins
            unless it is ``auto``).

    Returns: ``(value per bar, cash per bar, trades (k, 6) as kernels.TRADE_FIELDS, orders refused for cash)``;
    a trade's size is negative for a short.

    Raises:
        InvalidArgumentError: a strategy without a kernel, bad parameters (StrategyParameterError for ``orb``), a
            missing array for ``orb``.
    """
    name = _kernel_name(strategy)
    if name is None:
        raise InvalidArgumentError(f"strategy {strategy!r} has no vector kernel (kernels: {', '.join(KERNELS)}); "
                                   "run it on the Backtrader engine")
    open_ = np.ascontiguousarray(open_, dtype=np.float64)
    close = np.ascontiguousarray(close, dtype=np.float64)
    cache = sma_cache if sma_cache is not None else {}
    if name == "orb":
        return _simulate_orb(open_, high, low, close, ts, timeframe, calendar, params, cash, commission, size_pct,
                             cache)
    return _simulate_sma_cross(open_, close, params, cash, commission, size_pct, cache)


def _simulate_sma_cross(open_: np.ndarray, close: np.ndarray, params: dict[str, Any] | None, cash: float,
                        commission: float, size_pct: float,
                        cache: dict[Any, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    from btlab.backtest.vector import kernels

    fast, slow = _sma_cross_params(params)
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


def orb_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The full ``orb`` parameter set (defaults filled, strings converted), checked as the Backtrader engine checks it.

    Raises:
        StrategyParameterError: an unknown name or a value the strategy refuses (its own ``validate_params``).
    """
    from btlab.backtest.registry import coerce_params, resolve_strategy

    return coerce_params(resolve_strategy("orb")[1], params)


def _simulate_orb(open_: np.ndarray, high: np.ndarray | None, low: np.ndarray | None, close: np.ndarray,
                  ts: Any, timeframe: Timeframe | str | None, calendar: str, params: dict[str, Any] | None,
                  cash: float, commission: float, size_pct: float,
                  cache: dict[Any, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    from btlab.backtest.vector import kernels, orb

    missing = [k for k, v in (("high", high), ("low", low), ("ts", ts), ("timeframe", timeframe)) if v is None]
    if missing:
        raise InvalidArgumentError(f"simulate('orb'): needs {', '.join(missing)} (keyword arguments)")
    p = orb_params(params)
    code = str(p["calendar"]).strip()
    code = calendar if code.lower() == "auto" else code
    key = ("orb_sessions", code, str(p["session_start"]).strip())
    if key not in cache:
        t = orb._as_ns(ts)
        cache[key] = (t, *orb.orb_sessions(t, code, key[2]))
    t, s_open, s_close = cache[key]
    n = len(close)
    if not len(t) == len(open_) == n == len(high) == len(low):
        raise InvalidArgumentError(f"simulate('orb'): ts, open, high, low, close differ in length ({len(t)}, "
                                   f"{len(open_)}, {len(high)}, {len(low)}, {n})")
    value, cash_arr = np.empty(n), np.empty(n)
    trades = np.empty((n // 2 + 1, len(kernels.TRADE_FIELDS)))
    minute = 60 * 10**9
    k, margin = orb.orb_simulate(
        open_, np.ascontiguousarray(high, dtype=np.float64), np.ascontiguousarray(low, dtype=np.float64), close, t,
        s_open, s_close, Timeframe.parse(timeframe).nanos, int(round(float(p["range_minutes"]) * minute)),
        float(p["stop_pct"]), float(p["take_profit_pct"]), int(p["max_stops"]),
        int(round(float(p["cooloff_minutes"]) * minute)), bool(p["flat_at_end"]), float(cash), float(commission),
        float(size_pct), value, cash_arr, trades)
    return value, cash_arr, trades[:k], int(margin)


def run_vector(strategy: str, bars: pd.DataFrame, params: dict[str, Any] | None = None, cash: float = 10_000.0,
               commission: float = 0.001, size_pct: float = 95.0, *, calendar: str = "24/7",
               symbol: str = "", timeframe: Timeframe | str | None = None,
               cache: dict[Any, Any] | None = None) -> tuple[Metrics, pd.DataFrame]:
    """Run ``strategy`` on ``bars`` with its numba kernel: the Backtrader engine's result, much faster.

    Args:
        strategy: a bundled strategy with a kernel (:func:`supports`; ``sma_cross``, ``orb``).
        bars: btlab bars (:mod:`btlab.model.bar`): ``ts`` (``datetime64[ns, UTC]`` bar open time), ``open``,
            ``high``, ``low``, ``close`` (``volume`` unused), in time order, as ``run_backtest`` feeds them.
        params: strategy parameters (sma_cross: ``fast``, ``slow``, SMA periods in bars, defaults 10 and 30; orb:
            the parameters of :class:`btlab.strategies.orb.OpeningRangeBreakout`).
        cash: starting cash; commission: fraction of traded value per fill (0.001 = 0.1 %); size_pct: percent of
            cash per entry (the run's ``size_pct``).
        calendar: the venue calendar for the metrics (``24/7`` or an exchange calendar code), as the run's; for
            ``orb`` also the calendar of its sessions unless its ``calendar`` parameter names one.
        symbol: the instrument's name, written into the trades' ``symbol`` column.
        timeframe: the bars' timeframe (``orb`` needs it: a bar's close time is its open + timeframe); default: the
            smallest step between bar open times.
        cache: optional dict shared between runs on the SAME bars (SMAs, session windows, the buy-and-hold
            benchmark; see :func:`simulate`).

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
    if timeframe is None and _kernel_name(strategy) == "orb":
        steps = np.diff(ts.as_unit("ns").asi8)
        timeframe = Timeframe.from_seconds(int(steps[steps > 0].min() // 10**9) if (steps > 0).any() else 60)
    value, cash_arr, trades, _ = simulate(strategy, bars["open"].to_numpy(), bars["close"].to_numpy(), params,
                                          cash, commission, size_pct, cache, high=bars["high"].to_numpy(),
                                          low=bars["low"].to_numpy(), ts=ts, timeframe=timeframe, calendar=calendar)
    peak = np.maximum.accumulate(np.concatenate(([float(cash)], value)))[1:]
    equity = pd.DataFrame({"value": value, "cash": cash_arr, "drawdown": value / peak - 1.0,
                           "position_value": value - cash_arr}, index=ts.rename("ts"))
    frame = trades_frame(trades, ts, symbol)
    key = ("benchmark", float(cash))
    benchmark = cache.get(key) if cache is not None else None
    if benchmark is None:
        benchmark = benchmark_equity(bars, float(cash))
        if cache is not None:
            cache[key] = benchmark
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
        "direction": np.where(size > 0, "long", "short"),
        "size": size,
        "entry_ts": ts[entry_i],
        "entry_price": entry,
        "exit_price": entry + pnl / (size * 1.0),
        "pnl": pnl,
        "pnl_net": pnl - comm,
        "commission": comm,
        "bars_held": exit_i - entry_i,
    })
