"""Missing bars in a series of bar open times.

A gap is a run of consecutive bar slots with no bar between two bars that are present. Gaps are only looked
for between the first and the last bar: bars missing before the first or after the last are not gaps.

Bar slots depend on the venue's calendar (``calendar=`` of :func:`find_gaps`):

* 24/7 (the default, crypto): every multiple of the timeframe is a slot.
* an exchange calendar (``"XNYS"``, ...; see :mod:`btlab.model.sessions`): only slots of trading time count.
  For timeframes under a day a slot is an aligned open time whose bar window ``[t, t + timeframe)`` overlaps a
  session window of the chosen ``session`` -- ``regular`` by default (New York 09:30-16:00, 13:00 on early
  closes), or ``extended`` (04:00-20:00 for US venues). For ``1d`` and longer a slot is a bar period (UTC day,
  ISO week) holding at least one session date. Nights, weekends and holidays are therefore never missing, and bars
  outside the counted session (e.g. extended-hours bars when counting the regular session) are neither slots nor
  gaps: they are skipped. Holidays and early closes come from the exchange_calendars library.

  The regular session is the default even for data with extended hours: pre-market and after-hours minutes
  without a trade have no bar (real SPY 1m data 2024-02-20..05-17: 10,762 of its 35,910 pre-market and
  after-hours minutes), so counting them would bury real defects among thin-trading minutes; ``session="extended"`` counts
  them when wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from btlab.model.timeframe import Timeframe

if TYPE_CHECKING:
    from btlab.model.venue import Venue

GAP_COLUMNS: tuple[str, ...] = ("gap_start", "gap_end", "missing_bars")


def find_gaps(ts: pd.Series | pd.DatetimeIndex, timeframe: Timeframe | str, *,
              calendar: str | Venue | Any = None, session: str | None = None) -> pd.DataFrame:
    """Find the runs of missing bars between consecutive bar open times (vectorized, no I/O).

    Args:
        ts: bar OPEN times, strictly increasing (as :func:`btlab.model.bar.validate_bars` guarantees), e.g. the
            ``ts`` column of a bar frame. ``datetime64`` values, timezone-aware (converted to UTC) or naive
            (taken as UTC). No missing values.
        timeframe: the bar length (a :class:`~btlab.model.timeframe.Timeframe` or a ccxt string such as ``"1h"``).
        calendar: None or ``"24/7"`` (default: every slot counts), an exchange calendar code or alias (``"XNYS"``,
            ``"nyse"``) or a :class:`~btlab.model.venue.Venue`: only slots inside its sessions count (module
            docstring).
        session: for an exchange calendar, ``"regular"`` (None: the default) or ``"extended"``; must be None for
            24/7.

    Returns:
        A frame with one row per gap, in time order, and a fresh ``RangeIndex``:

        ================  ======================  ==================================================
        column            dtype                   meaning
        ================  ======================  ==================================================
        ``gap_start``     ``datetime64[ns, UTC]``  open time of the first missing bar
        ``gap_end``       ``datetime64[ns, UTC]``  open time of the last missing bar (inclusive)
        ``missing_bars``  int64                   number of missing bars, ``>= 1``
        ================  ======================  ==================================================

        Empty (with these columns and dtypes) when no bar is missing or ``ts`` has fewer than two values.
        For two present bars ``a < b`` the missing count is ``ceil((b - a) / timeframe) - 1``, which is
        ``(b - a) / timeframe - 1`` for aligned bars; ``gap_start = a + timeframe`` and
        ``gap_end = a + missing_bars * timeframe``. The total number of missing bars is
        ``result["missing_bars"].sum()``.
        With an exchange calendar the same columns hold the first and last missing slot of each run of
        consecutive missing session slots (a run may span a night: the last minute of one session and the first of
        the next), counted between the first and the last bar inside the session.

    Raises:
        ValueError: ``ts`` holds a missing value or is not strictly increasing; ``timeframe`` is not a valid
            ccxt timeframe; an unknown calendar or session, or a session for 24/7
            (:class:`~btlab.errors.InvalidArgumentError`).
    """
    tf = Timeframe.parse(timeframe)
    index = pd.DatetimeIndex(ts)
    if index.hasnans:
        raise ValueError("find_gaps: ts holds a missing value (NaT)")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    ns = index.as_unit("ns").asi8
    step = np.diff(ns)
    if step.size and (step <= 0).any():
        pos = int(np.flatnonzero(step <= 0)[0])
        raise ValueError(
            f"find_gaps: ts must be strictly increasing; position {pos + 1} ({index[pos + 1]}) "
            f"follows {index[pos]}"
        )
    if calendar is not None or session is not None:
        from btlab.model.sessions import check_session
        from btlab.model.venue import resolve_calendar

        code = resolve_calendar("24/7" if calendar is None else calendar)
        name = check_session(session, code)
        if name is not None:
            return _session_gaps(ns, tf, code, name)
    slots = -(-step // tf.nanos)  # ceil division: bar slots from one bar to the next
    where = np.flatnonzero(slots > 1)
    missing = (slots[where] - 1).astype("int64")
    start_ns = ns[where] + tf.nanos
    end_ns = ns[where] + missing * tf.nanos
    return _frame(start_ns, end_ns, missing)


def _frame(start_ns: np.ndarray, end_ns: np.ndarray, missing: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gap_start": pd.DatetimeIndex(start_ns.astype("datetime64[ns]")).tz_localize("UTC"),
            "gap_end": pd.DatetimeIndex(end_ns.astype("datetime64[ns]")).tz_localize("UTC"),
            "missing_bars": missing,
        }
    )


_DAY_NS = 86_400 * 1_000_000_000


def session_slots(tf: Timeframe, calendar: str, session: str, first_ns: int,
                  last_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The bar slots of an exchange calendar's sessions around ``first_ns .. last_ns`` as runs of consecutive slots.

    Returns: ``(run_start, run_count)``, int64 arrays in time order: run ``i`` holds the slots
    ``run_start[i] + k * tf`` for ``0 <= k < run_count[i]`` (UTC epoch ns); runs never overlap. See the module
    docstring for which slots exist.
    """
    from btlab.model.sessions import session_windows

    pad = max(tf.nanos, _DAY_NS) + 3 * _DAY_NS
    w = session_windows(calendar, pd.Timestamp(first_ns - pad, tz="UTC"), pd.Timestamp(last_ns + pad, tz="UTC"),
                        session)
    origin, step = tf.origin_ns, tf.nanos
    if step >= _DAY_NS:  # dated bars: a slot is a bar period holding a session date
        labels = pd.DatetimeIndex(w["session"]).asi8
        periods = np.unique(origin + (labels - origin) // step * step)
        return periods.astype(np.int64), np.ones(len(periods), dtype=np.int64)
    opens = pd.DatetimeIndex(w["open"]).asi8
    closes = pd.DatetimeIndex(w["close"]).asi8
    start = origin + (opens - origin) // step * step  # the slot holding the window's open
    end = origin + -(-(closes - origin) // step) * step  # one past the last slot opening before the close
    if len(start) > 1:  # a slot shared by two windows (bar longer than the break between them) counts once
        start[1:] = np.maximum(start[1:], np.maximum.accumulate(end)[:-1])
    count = (end - start) // step
    keep = count > 0
    return start[keep].astype(np.int64), count[keep].astype(np.int64)


def _session_gaps(ns: np.ndarray, tf: Timeframe, calendar: str, session: str) -> pd.DataFrame:
    none = np.array([], dtype=np.int64)
    if ns.size < 2:
        return _frame(none, none, none)
    run_start, run_count = session_slots(tf, calendar, session, int(ns[0]), int(ns[-1]))
    if run_start.size == 0:
        return _frame(none, none, none)
    step = tf.nanos
    run_first = np.concatenate(([0], np.cumsum(run_count)[:-1])).astype(np.int64)  # global index of each run's slot 0
    r = np.searchsorted(run_start, ns, side="right") - 1
    rr = np.maximum(r, 0)
    inside = (r >= 0) & (ns < run_start[rr] + run_count[rr] * step)
    g = run_first[rr][inside] + (ns[inside] - run_start[rr][inside]) // step  # global slot index of each bar
    jump = np.diff(g)
    where = np.flatnonzero(jump > 1)
    missing = (jump[where] - 1).astype(np.int64)

    def slot_time(k: np.ndarray) -> np.ndarray:
        i = np.searchsorted(run_first, k, side="right") - 1
        return run_start[i] + (k - run_first[i]) * step

    return _frame(slot_time(g[where] + 1), slot_time(g[where + 1] - 1), missing)
