"""Trading sessions of a venue's calendar: session windows, session filtering, session labels. Pure functions.

Sessions come from the `exchange_calendars <https://github.com/gerrymanoim/exchange_calendars>`_ library (open and
close of every session, holidays, early closes such as the 13:00 New York close on the day before Independence Day,
lunch breaks where a venue has them). A calendar is named by its code (``"XNYS"``) or ``"24/7"``; see
:func:`btlab.model.venue.resolve_calendar` for the names accepted.

Two sessions (:data:`SESSIONS`):

``regular``
    the exchange's session as the library states it (New York: 09:30-16:00 America/New_York, 13:00 on early
    closes); a lunch break splits a session into two windows.
``extended``
    regular plus the pre-market and after-hours trading of US venues (calendar ``XNYS``, which every US MIC uses):
    04:00 to 20:00 America/New_York on every session day, the after-hours ending 4 hours after an early close
    (17:00). Other calendars have no extended hours here: asking for them raises an error.

A bar belongs to a session when its window ``[open time, open time + timeframe)`` overlaps a session window (for
1m bars: the bar opens inside it). Bars of a day or longer (``1d``, ``1w``) are dated, not timed: they are never
filtered, and a daily bar belongs to the session of its UTC date.

Session labels (:func:`session_labels`): the date of the session an instant belongs to, as midnight UTC of that
date (``datetime64[ns, UTC]``), e.g. 2024-02-20 for every SPY bar from 04:00 to 20:00 New York time that day
(the windows used are the extended ones where the calendar has them, else the regular ones). An instant outside
every session window is labelled by its local date in the calendar's time zone. A series whose instants are all at
exactly 00:00 UTC is *dated* (daily or longer bars are stored at midnight UTC of their date): each keeps its UTC
date. For ``24/7`` the label is the UTC date.

Times are UTC ``datetime64[ns, UTC]`` (naive values are taken as UTC).
"""

from __future__ import annotations

import warnings
from datetime import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError
from btlab.model.timeframe import Timeframe

if TYPE_CHECKING:
    from btlab.model.venue import Venue

__all__ = [
    "EXTENDED_HOURS",
    "SESSIONS",
    "check_session",
    "exchange_calendar",
    "filter_session",
    "in_session",
    "session_labels",
    "session_windows",
]

#: Session names accepted by :func:`filter_session` and friends.
SESSIONS: tuple[str, ...] = ("regular", "extended")

#: Extended hours per calendar code: (pre-market open, after-hours close, after-hours length after an early close),
#: in the calendar's local time. US equities: 04:00-20:00 New York; after an early close (13:00) until 17:00.
EXTENDED_HOURS: dict[str, tuple[time, time, pd.Timedelta]] = {
    "XNYS": (time(4, 0), time(20, 0), pd.Timedelta(hours=4)),
}

_DAY_NS = 86_400 * 1_000_000_000

WINDOW_COLUMNS: tuple[str, ...] = ("session", "open", "close")


def _calendar_code(calendar: str | Venue | Any) -> str:
    from btlab.model.venue import resolve_calendar

    return resolve_calendar(calendar)


def check_session(session: str | None, calendar: str | Venue | Any) -> str | None:
    """Validate a session name for a calendar and apply the default.

    Returns: None for a 24/7 calendar (given ``session=None``); ``"regular"`` (the default) or ``"extended"`` for
    an exchange calendar.

    Raises:
        InvalidArgumentError: an unknown session name; any session for a 24/7 calendar (it has no sessions);
            ``extended`` for a calendar without known extended hours.
    """
    from btlab.model.venue import TWENTY_FOUR_SEVEN

    code = _calendar_code(calendar)
    if session is None:
        return None if code == TWENTY_FOUR_SEVEN else "regular"
    name = str(session).strip().lower()
    if name not in SESSIONS:
        raise InvalidArgumentError(f"unknown session {session!r}: use {' or '.join(SESSIONS)}")
    if code == TWENTY_FOUR_SEVEN:
        raise InvalidArgumentError(
            f"session {name!r} does not apply to a 24/7 venue (it has no sessions): leave the session unset"
        )
    if name == "extended" and code not in EXTENDED_HOURS:
        raise InvalidArgumentError(
            f"no extended hours are known for calendar {code} (only for US venues: {', '.join(EXTENDED_HOURS)}); "
            "use session regular"
        )
    return name


@lru_cache(maxsize=16)
def _calendar_years(code: str, first_year: int, last_year: int) -> Any:
    import exchange_calendars as xc

    with warnings.catch_warnings():  # the library's own pandas deprecation notices are not the user's business
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return xc.get_calendar(code, start=f"{first_year}-01-01", end=f"{last_year}-12-31")


def exchange_calendar(code: str, start: pd.Timestamp, end: pd.Timestamp) -> Any:
    """The ``exchange_calendars.ExchangeCalendar`` for ``code`` covering at least ``start .. end`` (UTC).

    Built once per code and span (spans are widened to whole decades backwards and one year forwards, so one
    calendar serves most calls; building one takes about 0.2 s).

    Raises:
        InvalidArgumentError: the library cannot build the calendar for that span.
    """
    first_year, last_year = pd.Timestamp(start).year, pd.Timestamp(end).year
    wide = min(first_year - 1, pd.Timestamp.now().year - 20)
    try:
        return _calendar_years(code, wide - wide % 10, max(last_year + 1, pd.Timestamp.now().year + 1))
    except ValueError:  # before the calendar's first recorded year, or past pandas' ns range: the exact span
        pass
    try:
        return _calendar_years(code, first_year, last_year)
    except ValueError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidArgumentError(f"calendar {code} cannot cover {first_year}..{last_year}: {message}") from None


def _utc_index(ts: pd.Series | pd.DatetimeIndex | Any) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(ts)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns")


def session_windows(calendar: str | Venue | Any, start: Any, end: Any, session: str = "regular") -> pd.DataFrame:
    """The trading windows of the sessions from ``start``'s date to ``end``'s date (inclusive, UTC dates).

    Args:
        calendar: an exchange calendar code or alias (``"XNYS"``) or a :class:`~btlab.model.venue.Venue`.
        start, end: anything :class:`pandas.Timestamp` takes (UTC if naive).
        session: ``regular`` or ``extended`` (see the module docstring).

    Returns:
        One row per window, in time order: ``session`` (``datetime64[ns, UTC]``, midnight UTC of the session
        date), ``open`` and ``close`` (``datetime64[ns, UTC]``, the window is ``open <= t < close``). A regular
        session with a lunch break gives two windows with the same ``session``.

    Raises:
        InvalidArgumentError: a 24/7 calendar, an unknown calendar or session, a span the calendar cannot cover.
    """
    code = _calendar_code(calendar)
    name = check_session(session, code)
    if name is None:
        raise InvalidArgumentError("a 24/7 calendar has no session windows")
    lo = pd.Timestamp(start)
    hi = pd.Timestamp(end)
    lo = lo.tz_localize("UTC") if lo.tzinfo is None else lo.tz_convert("UTC")
    hi = hi.tz_localize("UTC") if hi.tzinfo is None else hi.tz_convert("UTC")
    cal = exchange_calendar(code, lo, hi)
    sched = cal.schedule.loc[lo.tz_localize(None).normalize(): hi.tz_localize(None).normalize()]
    labels = pd.DatetimeIndex(sched.index).tz_localize("UTC").as_unit("ns")
    opens = pd.DatetimeIndex(sched["open"]).as_unit("ns")
    closes = pd.DatetimeIndex(sched["close"]).as_unit("ns")
    if name == "extended":
        pre, post, after_early = EXTENDED_HOURS[code]
        local = pd.DatetimeIndex(sched.index).as_unit("ns")
        pre_open = (local + pd.Timedelta(hours=pre.hour, minutes=pre.minute)).tz_localize(cal.tz).tz_convert("UTC")
        post_close = (local + pd.Timedelta(hours=post.hour, minutes=post.minute)).tz_localize(cal.tz)
        post_close = post_close.tz_convert("UTC")
        ext_close = pd.DatetimeIndex(np.minimum(post_close.asi8, (closes + after_early).asi8)).tz_localize("UTC")
        return pd.DataFrame({"session": labels, "open": pre_open.as_unit("ns"), "close": ext_close.as_unit("ns")})
    frame = pd.DataFrame({"session": labels, "open": opens, "close": closes})
    breaks = sched["break_start"].notna().to_numpy()
    if breaks.any():
        b_start = pd.DatetimeIndex(sched["break_start"]).as_unit("ns")
        b_end = pd.DatetimeIndex(sched["break_end"]).as_unit("ns")
        morning = pd.DataFrame({"session": labels[breaks], "open": opens[breaks], "close": b_start[breaks]})
        afternoon = pd.DataFrame({"session": labels[breaks], "open": b_end[breaks], "close": closes[breaks]})
        frame = pd.concat([frame[~breaks], morning, afternoon]).sort_values("open", kind="stable")
    return frame.reset_index(drop=True)


def _window_arrays(code: str, index: pd.DatetimeIndex, session: str,
                   pad: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo = pd.Timestamp(int(index.asi8.min()) - pad - 2 * _DAY_NS, tz="UTC")
    hi = pd.Timestamp(int(index.asi8.max()) + pad + 2 * _DAY_NS, tz="UTC")
    w = session_windows(code, lo, hi, session)
    return (pd.DatetimeIndex(w["session"]).asi8, pd.DatetimeIndex(w["open"]).asi8,
            pd.DatetimeIndex(w["close"]).asi8)


def in_session(ts: pd.Series | pd.DatetimeIndex, calendar: str | Venue | Any, session: str | None = "regular",
               timeframe: Timeframe | str | None = None) -> np.ndarray:
    """Which bars belong to the session (see the module docstring).

    Args:
        ts: bar open times (``datetime64``, UTC if naive), any order.
        calendar: calendar code/alias, ``"24/7"`` or a :class:`~btlab.model.venue.Venue`.
        session: ``regular`` or ``extended``; None = the default for the calendar (:func:`check_session`).
        timeframe: the bars' length; None = instants (a bar belongs when it opens inside a window).

    Returns: a boolean numpy array, one value per bar; all True for a 24/7 calendar.

    Raises:
        InvalidArgumentError: as :func:`check_session`; NaT in ``ts``.
    """
    code = _calendar_code(calendar)
    name = check_session(session, code)
    index = _utc_index(ts)
    if name is None or len(index) == 0:
        return np.ones(len(index), dtype=bool)
    if index.hasnans:
        raise InvalidArgumentError("in_session: ts holds a missing value (NaT)")
    tf_ns = Timeframe.parse(timeframe).nanos if timeframe is not None else 0
    ns = index.asi8
    if tf_ns >= _DAY_NS:  # dated bars: the period [t, t + tf) holds a session date
        labels, _, _ = _window_arrays(code, index, name, pad=tf_ns)
        pos = np.searchsorted(labels, ns, side="left")
        nxt = labels[np.minimum(pos, len(labels) - 1)] if len(labels) else np.full(len(ns), np.iinfo(np.int64).max)
        return (pos < len(labels)) & (nxt < ns + tf_ns)
    _, opens, closes = _window_arrays(code, index, name)
    i = np.searchsorted(opens, ns + max(tf_ns, 1), side="left") - 1  # last window opening before the bar ends
    ok = i >= 0
    return ok & (closes[np.maximum(i, 0)] > ns)


def filter_session(bars: pd.DataFrame, calendar: str | Venue | Any, session: str | None = "regular",
                   timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """The bars of ``bars`` that belong to the session (pure; a new frame, index reset).

    Args:
        bars: a bar frame with a ``ts`` column of bar open times (btlab layout, :mod:`btlab.model.bar`).
        calendar, session: as :func:`in_session`.
        timeframe: the bars' length; bars of a day or longer are returned unchanged (a dated bar is a session).

    Returns: the rows inside the session, in their order, with a fresh ``RangeIndex``; for a 24/7 calendar
    (``session=None``) all rows.

    Raises:
        InvalidArgumentError: as :func:`check_session`.
    """
    if timeframe is not None and Timeframe.parse(timeframe).nanos >= _DAY_NS:
        check_session(session, calendar)
        return bars.reset_index(drop=True)
    mask = in_session(bars["ts"], calendar, session, timeframe)
    return bars.loc[mask].reset_index(drop=True)


def session_labels(ts: pd.Series | pd.DatetimeIndex, calendar: str | Venue | Any, *,
                   dated: bool | None = None) -> pd.DatetimeIndex:
    """The session date of each instant, as midnight UTC of that date (see the module docstring for the rules).

    Args:
        ts: instants (``datetime64``, UTC if naive), e.g. an equity curve's bar times.
        calendar: calendar code/alias, ``"24/7"`` or a :class:`~btlab.model.venue.Venue`.
        dated: True = the values are dates stamped at midnight UTC (daily bars): the label is the UTC date;
            False = instants; None = dated when every value is at 00:00 UTC.

    Returns: a ``DatetimeIndex`` (``datetime64[ns, UTC]``) as long as ``ts``.

    Raises:
        InvalidArgumentError: unknown calendar; NaT in ``ts``.
    """
    from btlab.model.venue import TWENTY_FOUR_SEVEN

    code = _calendar_code(calendar)
    index = _utc_index(ts)
    if index.hasnans:
        raise InvalidArgumentError("session_labels: ts holds a missing value (NaT)")
    if code == TWENTY_FOUR_SEVEN or len(index) == 0:
        return index.floor("D")
    ns = index.asi8
    if dated is None:
        dated = bool((ns % _DAY_NS == 0).all())
    if dated:
        return index.floor("D")
    session = "extended" if code in EXTENDED_HOURS else "regular"
    labels, opens, closes = _window_arrays(code, index, session)
    i = np.searchsorted(opens, ns, side="right") - 1
    inside = (i >= 0) & (closes[np.maximum(i, 0)] > ns)
    tz = exchange_calendar(code, index.min(), index.max()).tz
    local_dates = index.tz_convert(tz).tz_localize(None).normalize().tz_localize("UTC").as_unit("ns").asi8
    out = np.where(inside, labels[np.maximum(i, 0)], local_dates)
    return pd.DatetimeIndex(out.view("datetime64[ns]")).tz_localize("UTC")
