"""The ``orb`` (opening-range breakout) kernel of the vector engine: Backtrader's broker, bracket orders and all.

:func:`orb_simulate` replays :class:`btlab.strategies.orb.OpeningRangeBreakout` on Backtrader's ``BackBroker`` as
btlab configures it (no slippage, ``coc``/``coo`` off, ``shortcash`` on, commission a fraction of traded value,
PercentSizer), operation by operation, so its fills, cash and values equal the Backtrader engine's to the bit.
:func:`orb_sessions` precomputes, in Python, the session window of every bar (regular exchange sessions from
:func:`btlab.model.sessions.session_windows`, or the 24-hour UTC sessions of a 24/7 venue starting at
``session_start``) as the strategy finds them.

Backtrader's rules reproduced here (backtrader/brokers/bbroker.py, strategy.py, position.py, trade.py):

* Per bar the broker runs first: children of a bracket whose parent filled on the previous bar become active;
  orders submitted at the previous bar are checked for cash (``check_submitted``: each order pseudo-executed in
  submission order on a copy of the position at its created price: the signal close for market orders, the stop or
  limit price for the children; cash < 0 -> Margin, and the whole bracket is cancelled); then the pending orders are
  tried in queue order: the market entry at this bar's open (refused when the cash, with commission, goes negative:
  Margin, the bracket cancelled), the stop (a sell stop fills at the open when ``open <= stop``, else at the stop
  when ``low <= stop``; a buy stop mirrors it), then the take-profit limit (a sell limit fills at the open when
  ``limit <= open``, else at the limit when ``limit <= high``; a buy limit mirrors it). A filled child cancels its
  sibling before the sibling is tried (so the stop wins a bar that touches both), and the bracket children are never
  active on the bar their parent fills. Then the value at the close is computed (``_get_value``).
* Then the strategy (its notifications first, then ``next``): the rules of the ORB docstring, with bar open times
  ``ts``, close times ``ts + bar`` (Backtrader's datetime on btlab feeds), sizes ``cash / close * size_pct / 100``.

Times are int64 nanoseconds since the epoch, UTC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

__all__ = ["NO_SESSION", "orb_sessions", "orb_simulate"]

#: ``session_open`` of a bar outside every session
NO_SESSION = np.iinfo(np.int64).min
_DAY_NS = 86_400 * 10**9


def orb_sessions(ts: np.ndarray | pd.DatetimeIndex | pd.Series, calendar: str,
                 session_start: str = "00:00") -> tuple[np.ndarray, np.ndarray]:
    """The session window ``[open, close)`` holding each bar's open time, as the ORB strategy finds it.

    Args:
        ts: bar open times, UTC (``datetime64[ns, UTC]`` values or int64 ns), in time order.
        calendar: ``24/7`` or an exchange calendar code (``XNYS``): the strategy's ``calendar`` parameter, or the
            venue's calendar when the parameter is ``auto``.
        session_start: ``HH:MM`` UTC start of the daily session on a 24/7 calendar (ignored otherwise).

    Returns:
        ``(session_open, session_close)``: int64 ns arrays, one value per bar; :data:`NO_SESSION` (and 0) for a bar
        outside every session (an extended-hours bar on an exchange calendar).

    Raises:
        InvalidArgumentError: an unknown calendar or a malformed ``session_start``.
    """
    from btlab.errors import InvalidArgumentError
    from btlab.model.venue import TWENTY_FOUR_SEVEN, resolve_calendar

    t = _as_ns(ts)
    code = resolve_calendar(calendar)
    if code == TWENTY_FOUR_SEVEN:
        hours, sep, minutes = str(session_start).strip().partition(":")
        if not (sep and hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise InvalidArgumentError(f"orb: session_start must be HH:MM (UTC), got {str(session_start)[:20]!r}")
        start = (int(hours) * 60 + int(minutes)) * 60 * 10**9
        opens = (t - start) // _DAY_NS * _DAY_NS + start
        return opens, opens + _DAY_NS
    opens = np.full(len(t), NO_SESSION, dtype=np.int64)
    closes = np.zeros(len(t), dtype=np.int64)
    if len(t) == 0:
        return opens, closes
    from btlab.model.sessions import session_windows

    lo, hi = pd.Timestamp(int(t[0]), tz="UTC"), pd.Timestamp(int(t[-1]), tz="UTC")
    w = session_windows(code, lo - pd.Timedelta(days=2), hi + pd.Timedelta(days=2), "regular")
    w_open = w["open"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    w_close = w["close"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    idx = np.searchsorted(w_open, t, side="right") - 1
    inside = idx >= 0
    inside[inside] = t[inside] < w_close[idx[inside]]
    opens[inside] = w_open[idx[inside]]
    closes[inside] = w_close[idx[inside]]
    return opens, closes


def _as_ns(ts: np.ndarray | pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """Bar times as int64 ns UTC."""
    if isinstance(ts, np.ndarray) and ts.dtype == np.int64:
        return np.ascontiguousarray(ts)
    index = pd.DatetimeIndex(ts)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return np.ascontiguousarray(index.as_unit("ns").asi8)


@njit(cache=True)
def _update(psize: float, pprice: float, size: float, price: float) -> tuple[float, float, float, float]:
    """Backtrader's ``Position.update``: ``(new size, new price, opened, closed)`` (opened/closed signed as size)."""
    new = psize + size
    if new == 0.0:
        return new, 0.0, 0.0, size
    if psize == 0.0:
        return new, price, size, 0.0
    if psize > 0.0:
        if size > 0.0:
            return new, (pprice * psize + size * price) / new, size, 0.0
        if new > 0.0:
            return new, pprice, 0.0, size
        return new, price, new, -psize
    if size < 0.0:
        return new, (pprice * psize + size * price) / new, size, 0.0
    if new < 0.0:
        return new, pprice, 0.0, size
    return new, price, new, -psize


@njit(cache=True)
def _check(cash: float, psize: float, pprice: float, size: float, price: float,
           commission: float) -> tuple[float, float, float]:
    """``BackBroker._execute`` as a pseudo-execution (``check_submitted``) at the order's created ``price``:
    ``(cash left, position size, position price)``; cash < 0 means Margin."""
    psize, pprice, opened, closed = _update(psize, pprice, size, price)
    if closed != 0.0:
        cash = cash + -closed * price  # shortcash getvaluesize at the created price; pnl is 0 when pseudo
        cash = cash - abs(closed) * commission * price
    if opened != 0.0:
        cash = cash - opened * price
        cash = cash - abs(opened) * commission * price
    return cash, psize, pprice


@njit(cache=True)
def _execute(cash: float, psize: float, pprice: float, size: float,
             price: float, commission: float) -> tuple[float, float, float, float, float, float, bool]:
    """``BackBroker._execute`` for real at ``price``: ``(cash, position size, position price, closed, closed
    commission, opened commission, margin)``; on margin only the closing part (if any) executes."""
    _, _, opened, closed = _update(psize, pprice, size, price)
    c = cash
    ccomm = 0.0
    if closed != 0.0:
        pnl = -closed * (price - pprice) * 1.0
        c = c + (-closed * pprice + pnl)
        ccomm = abs(closed) * commission * price
        c = c - ccomm
        cash = c
    ocomm = 0.0
    margin = False
    if opened != 0.0:
        c = c - opened * price
        ocomm = abs(opened) * commission * price
        c = c - ocomm
        if c < 0.0:
            opened = 0.0
            ocomm = 0.0
            margin = True
        else:
            cash = c
    execsize = closed + opened
    if execsize != 0.0:
        psize, pprice, _, _ = _update(psize, pprice, execsize, price)
    return cash, psize, pprice, closed, ccomm, ocomm, margin


@njit(cache=True)
def _stop_fill(size: float, stop: float, o: float, h: float, lo: float) -> float:
    """``_try_exec_stop`` without slippage: the fill price, or NaN when the stop is not reached."""
    if size > 0.0:  # buy stop
        if o >= stop:
            return o
        if h >= stop:
            return stop
    else:
        if o <= stop:
            return o
        if lo <= stop:
            return stop
    return np.nan


@njit(cache=True)
def _limit_fill(size: float, limit: float, o: float, h: float, lo: float) -> float:
    """``_try_exec_limit`` without slippage: the fill price, or NaN when the limit is not reached."""
    if size > 0.0:  # buy limit
        if limit >= o:
            return o
        if limit >= lo:
            return limit
    else:
        if limit <= o:
            return o
        if limit <= h:
            return limit
    return np.nan


@njit(cache=True)
def orb_simulate(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, ts: np.ndarray,
                 session_open: np.ndarray, session_close: np.ndarray, bar_ns: int, range_ns: int, stop_pct: float,
                 take_profit_pct: float, max_stops: int, cooloff_ns: int, flat_at_end: bool, cash0: float,
                 commission: float, percents: float, value_out: np.ndarray, cash_out: np.ndarray,
                 trades_out: np.ndarray) -> tuple[int, int]:
    """Simulate ``orb`` on Backtrader's broker (see the module docstring for the rules).

    Args:
        open_, high, low, close: prices per bar (float64), in time order. ts: bar open times (int64 ns UTC).
        session_open, session_close: :func:`orb_sessions` of ``ts``. bar_ns: the bar length in ns.
        range_ns, cooloff_ns: ``range_minutes`` and ``cooloff_minutes`` in ns. stop_pct, take_profit_pct: percent
            of the signal close (0 = none). max_stops: stop exits per session before entries stop.
        flat_at_end: close positions at the session end. cash0: starting cash. commission: fraction of traded
            value. percents: PercentSizer's percent of cash.
        value_out, cash_out: filled with the broker's value and cash after each bar.
        trades_out: ``(n, 6)`` buffer, filled with the closed trades (``kernels.TRADE_FIELDS``; size signed:
            negative for a short).

    Returns: ``(number of closed trades, number of orders refused for cash (Margin))``.
    """
    n = open_.shape[0]
    frac = percents / 100
    cash = cash0
    psize = 0.0
    pprice = 0.0
    # the trade open (Backtrader's Trade)
    t_entry_i = -1
    t_price = 0.0
    t_comm = 0.0
    # orders submitted by the strategy at the previous bar: 0 none, 1 a bracket, 2 a closing market order
    sub = 0
    sub_size = 0.0
    sub_close = 0.0
    sub_stop = 0.0
    sub_limit = 0.0
    has_stop = False
    has_limit = False
    # the bracket's children: waiting for activation (their parent filled this bar), active
    kids_wait = False
    stop_on = False
    limit_on = False
    kid_size = 0.0
    stop_px = 0.0
    limit_px = 0.0
    # the strategy
    cur_session = NO_SESSION
    hi = np.nan
    lo = np.nan
    stops = 0
    has_cool = False
    cool_until = 0
    n_trades = 0
    n_margin = 0
    for i in range(n):
        o, h, lw, c_ = open_[i], high[i], low[i], close[i]
        close_t = ts[i] + bar_ns
        # ---- the broker's next
        if kids_wait:
            stop_on = has_stop
            limit_on = has_limit
            kids_wait = False
        entry_now = False
        close_now = False
        if sub == 1:  # check_submitted: parent, stop, limit in order, on a copy of cash and position
            c, ps, pp = _check(cash, psize, pprice, sub_size, sub_close, commission)
            ok = c >= 0.0
            if ok and has_stop:
                c, ps, pp = _check(c, ps, pp, -sub_size, sub_stop, commission)
                ok = c >= 0.0
            if ok and has_limit:
                c, ps, pp = _check(c, ps, pp, -sub_size, sub_limit, commission)
                ok = c >= 0.0
            if ok:
                entry_now = True
            else:
                n_margin += 1  # one Margin; the rest of the bracket is cancelled or rejected
        elif sub == 2:
            c, ps, pp = _check(cash, psize, pprice, sub_size, sub_close, commission)
            if c >= 0.0:
                close_now = True
            else:
                n_margin += 1
        sub = 0
        if entry_now:  # the market entry at this open
            cash, psize, pprice, _, _, ocomm, margin = _execute(cash, psize, pprice, sub_size, o, commission)
            if margin:
                n_margin += 1
            else:
                t_entry_i = i
                t_price = (0.0 * 0.0 + sub_size * o) / sub_size
                t_comm = 0.0 + ocomm
                kids_wait = has_stop or has_limit
                kid_size = -sub_size
                stop_px = sub_stop
                limit_px = sub_limit
        exit_px = np.nan
        stopped = False
        if stop_on:
            exit_px = _stop_fill(kid_size, stop_px, o, h, lw)
            stopped = exit_px == exit_px
        if exit_px != exit_px and limit_on:
            exit_px = _limit_fill(kid_size, limit_px, o, h, lw)
        exit_size = kid_size
        if close_now:
            exit_px = o
            exit_size = sub_size
        if exit_px == exit_px:
            stop_on = False
            limit_on = False
            size_before = psize
            cash, psize, pprice, closed, ccomm, _, _ = _execute(cash, psize, pprice, exit_size, exit_px,
                                                                 commission)
            if closed != 0.0 and psize == 0.0:
                trades_out[n_trades, 0] = t_entry_i
                trades_out[n_trades, 1] = i
                trades_out[n_trades, 2] = size_before
                trades_out[n_trades, 3] = t_price
                trades_out[n_trades, 4] = 0.0 + -closed * (exit_px - t_price) * 1.0
                trades_out[n_trades, 5] = t_comm + ccomm
                n_trades += 1
            if stopped:  # the strategy's notify_order: rules 5 and 6
                stops += 1
                has_cool = True
                cool_until = close_t + cooloff_ns
        # the broker's value at this close (_get_value, shortcash, leverage 1)
        if psize != 0.0:
            d = psize * c_
            if d > 0.0:
                u = psize * (c_ - pprice) * 1.0
                pv = 0.0 + (d - u) / 1.0
                pv = pv + u
            else:
                pv = 0.0 + d
            value_out[i] = cash + pv
        else:
            value_out[i] = cash + 0.0
        cash_out[i] = cash
        # ---- the strategy's next
        s_open = session_open[i]
        if s_open != cur_session:
            cur_session = s_open
            hi = np.nan
            lo = np.nan
            stops = 0
            has_cool = False
        if s_open == NO_SESSION:
            continue
        if ts[i] < s_open + range_ns:  # rule 1
            if not hi == hi or h > hi:
                hi = h
            if not lo == lo or lw < lo:
                lo = lw
            continue
        if flat_at_end and close_t + bar_ns >= session_close[i]:  # rule 7
            stop_on = False
            limit_on = False
            kids_wait = False
            if psize != 0.0:
                sub = 2
                sub_size = -psize
                sub_close = c_
            continue
        if hi != hi or psize != 0.0:
            continue
        if stops >= max_stops:  # rule 5
            continue
        if has_cool and close_t < cool_until:  # rule 6
            continue
        side = 0.0
        if c_ > hi:
            side = -1.0
        elif c_ < lo:
            side = 1.0
        if side == 0.0:
            continue
        size = cash / c_ * frac
        if size == 0.0:
            continue
        stop_d = c_ * stop_pct / 100.0
        tp_d = c_ * take_profit_pct / 100.0
        sub = 1
        sub_size = -side * size
        sub_close = c_
        has_stop = stop_pct != 0.0
        has_limit = take_profit_pct != 0.0
        sub_stop = c_ + side * stop_d
        sub_limit = c_ - side * tp_d
    return n_trades, n_margin
