"""Numba kernels of the vector engine: pure functions over float64 arrays (no pandas, no I/O).

Every kernel reproduces, operation by operation, the floating-point arithmetic of Backtrader as btlab configures
it (see :mod:`btlab.backtest.vector.engine` for the rules), so its fills, cash and values equal the Backtrader
engine's to the last bit. Compiled on first use and cached on disk by numba (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["TRADE_FIELDS", "fsum_rolling_mean", "sma_cross_signals", "sma_cross_simulate"]

#: columns of the trade buffer filled by :func:`sma_cross_simulate` (one row per closed trade; entry_price and pnl
#: as Backtrader's Trade computes them, which may differ in the last bit from the fill price and the cash change)
TRADE_FIELDS = ("entry_i", "exit_i", "size", "entry_price", "pnl", "commission")


@njit(cache=True)
def _grow(partials: np.ndarray, n: int, x: float) -> int:
    """Add ``x`` to the non-overlapping expansion ``partials[:n]`` exactly (Shewchuk, as CPython's math.fsum);
    returns the new length."""
    i = 0
    for j in range(n):
        y = partials[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        yr = hi - x
        lo = y - yr
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        partials[i] = x
        i += 1
    return i


@njit(cache=True)
def _round_expansion(partials: np.ndarray, n: int) -> float:
    """The correctly rounded (half-even) value of the expansion: CPython's math.fsum final step, verbatim."""
    hi = 0.0
    lo = 0.0
    if n > 0:
        n -= 1
        hi = partials[n]
        while n > 0:
            x = hi
            n -= 1
            y = partials[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or (lo > 0.0 and partials[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi


@njit(cache=True)
def fsum_rolling_mean(values: np.ndarray, period: int) -> np.ndarray:
    """Backtrader's SMA: ``math.fsum(values[i-period+1 : i+1]) / period`` for every ``i >= period - 1`` (NaN before).

    The window's exact sum is kept as an expansion (the new value added, the leaving one subtracted, both exactly),
    and rounded as math.fsum rounds, so each mean equals Backtrader's bit for bit in O(n) instead of O(n * period).
    """
    n = values.shape[0]
    out = np.full(n, np.nan)
    partials = np.empty(64 + 2 * period)
    m = 0
    for i in range(n):
        m = _grow(partials, m, values[i])
        if i >= period:
            m = _grow(partials, m, -values[i - period])
        if m > partials.shape[0] - 4:  # cannot happen with finite doubles of one window; be safe: recompute
            m = 0
            for k in range(max(0, i - period + 1), i + 1):
                m = _grow(partials, m, values[k])
        if i >= period - 1:
            out[i] = _round_expansion(partials, m) / period
    return out


@njit(cache=True)
def sma_cross_signals(fast: np.ndarray, slow: np.ndarray, slow_period: int) -> np.ndarray:
    """Backtrader's ``CrossOver(fast, slow)``: +1 / -1 / 0 per bar (0 before index ``slow_period``).

    The last non-zero difference ``fast - slow`` carries over equal values (NonZeroDifference, seeded at index
    ``slow_period - 1``); an up-cross at ``i`` is that difference < 0 at ``i - 1`` and ``fast > slow`` at ``i``,
    a down-cross the mirror image.
    """
    n = fast.shape[0]
    out = np.zeros(n, dtype=np.int8)
    if n < slow_period:
        return out
    nzd = fast[slow_period - 1] - slow[slow_period - 1]
    for i in range(slow_period, n):
        if nzd < 0.0 and fast[i] > slow[i]:
            out[i] = 1
        elif nzd > 0.0 and fast[i] < slow[i]:
            out[i] = -1
        d = fast[i] - slow[i]
        if d != 0.0:
            nzd = d
    return out


@njit(cache=True)
def sma_cross_simulate(open_: np.ndarray, close: np.ndarray, cross: np.ndarray, first: int, cash0: float,
                       commission: float, percents: float, value_out: np.ndarray, cash_out: np.ndarray,
                       trades_out: np.ndarray) -> tuple[int, int]:
    """Simulate sma_cross on Backtrader's broker: long only, market orders at the next bar's open.

    Args:
        open_, close: prices per bar. cross: :func:`sma_cross_signals`. first: the first bar the strategy's
            ``next`` runs on (the slow period). cash0: starting cash. commission: fraction of traded value.
        percents: PercentSizer's percent of cash.
        value_out, cash_out: filled with the broker's value and cash after each bar.
        trades_out: ``(n, 6)`` buffer, filled with the closed trades (:data:`TRADE_FIELDS`).

    Returns: ``(number of closed trades, number of orders refused for cash (Margin))``.
    """
    n = open_.shape[0]
    cash = cash0
    pos = 0.0
    entry = 0.0
    entry_i = -1
    comm_open = 0.0
    pending = 0  # 1 buy, -1 close
    pend_size = 0.0
    pend_close = 0.0
    n_trades = 0
    n_margin = 0
    frac = percents / 100
    for i in range(n):
        # the broker's next: check the submitted order with the signal bar's close, then fill at this open
        if pending == 1:
            s = pend_size
            c = cash - s * pend_close
            c = c - abs(s) * commission * pend_close
            if c < 0.0:
                n_margin += 1
            else:
                price = open_[i]
                c = cash - s * price
                comm = abs(s) * commission * price
                c = c - comm
                if c < 0.0:
                    n_margin += 1
                else:
                    cash = c
                    pos = s
                    entry = price
                    entry_i = i
                    comm_open = 0.0 + comm
        elif pending == -1:
            price = open_[i]
            s = pos
            pnl = s * (price - entry) * 1.0
            cash = cash + (s * entry / 1.0 + pnl * 1.0)
            comm = abs(-s) * commission * price
            cash = cash - comm
            trades_out[n_trades, 0] = entry_i
            trades_out[n_trades, 1] = i
            trades_out[n_trades, 2] = s
            # Backtrader's Trade keeps its own average price (0 * 0.0 + size * price) / size and its own pnl
            t_price = (0.0 * 0.0 + s * entry) / s
            trades_out[n_trades, 3] = t_price
            trades_out[n_trades, 4] = 0.0 + s * (price - t_price) * 1.0
            trades_out[n_trades, 5] = comm_open + comm
            n_trades += 1
            pos = 0.0
        pending = 0
        # the broker's value at this close (BackBroker._get_value with shortcash, leverage 1)
        if pos != 0.0:
            d = pos * close[i]
            u = pos * (close[i] - entry) * 1.0
            pv = 0.0 + (d - u) / 1.0
            pv = pv + u
            value_out[i] = cash + pv
        else:
            value_out[i] = cash + 0.0
        cash_out[i] = cash
        # the strategy's next
        if i >= first:
            if pos == 0.0:
                if cross[i] > 0:
                    pending = 1
                    pend_size = cash / close[i] * frac
                    pend_close = close[i]
            elif cross[i] < 0:
                pending = -1
    return n_trades, n_margin
