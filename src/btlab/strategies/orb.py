"""Opening-range breakout (ORB), long and short, intraday."""

from __future__ import annotations

import bisect
import datetime as _dt
from typing import Any

from btlab.backtest.compat import bt

_AUTO = "auto"
_UTC_DAY = _dt.timedelta(days=1)


def _parse_hhmm(text: str) -> _dt.timedelta:
    """``"HH:MM"`` -> offset from midnight (ValueError when malformed or out of 00:00..23:59)."""
    hours, sep, minutes = str(text).strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or int(hours) > 23 or int(minutes) > 59:
        raise ValueError(f"session_start must be HH:MM (UTC), got {str(text)[:20]!r}")
    return _dt.timedelta(hours=int(hours), minutes=int(minutes))


class OpeningRangeBreakout(bt.Strategy):
    """Opening-range breakout: a close outside the session's opening range enters long/short; flat by the session end.

    Sessions. For an exchange calendar (US equities: ``XNYS``, the venue of ``nyse``/``nasdaq``/...), each session
    is the calendar's REGULAR session (New York: 09:30-16:00 America/New_York, 13:00 on early closes), taken from
    :func:`btlab.model.sessions.session_windows`, so daylight-saving changes and holidays are the calendar's; bars
    of the extended hours (a run with ``session=extended``) are outside every session and never trade. For a 24/7
    venue, a session is the 24 hours starting each UTC day at ``session_start``. The calendar is the venue's
    (``calendar=auto``: the run's calendar -- ``--calendar``/``calendar=`` of the run, else the exchange's via
    :func:`btlab.model.venue.resolve_venue`; outside btlab's runner an exchange btlab does not know counts as 24/7), or the one named by ``calendar`` (``24/7`` or a calendar code such as ``XNYS``).

    Rules (times are bar open times, UTC; a bar is ``[open, open + timeframe)``):

    1. Opening range: the bars opening in ``[session open, session open + range_minutes)``; its high is the highest
       high and its low the lowest low of those bars. The range is closed once a bar opening at or after
       ``session open + range_minutes`` arrives; a session without any bar in the range window does not trade.
    2. Entry: on a bar that opens after the range closed, with no position and no pending entry: a close above the
       range high buys, a close below the range low sells short; a market order filled at the next bar's open
       (Backtrader), sized by the run's sizer (``--size-pct``/``--stake``). At most one position at a time; after a
       take-profit or stop exit a new breakout may enter again the same session.
    3. Stop: with the entry, a stop order ``stop_pct`` percent of the signal bar's close away from that close (below
       for a long, above for a short) closes the position; Backtrader fills it at the stop price, or at the bar's
       open when the bar gaps through it. ``stop_pct=0``: no stop.
    4. Take-profit: likewise a limit order ``take_profit_pct`` percent of the signal close away on the profit side
       (one cancels the other). ``take_profit_pct=0``: no take-profit.
    5. Max stops per day: after ``max_stops`` stop exits in a session, no new entry that session.
    6. Cool-off: after a stop exit, no entry signal is taken from bars closing before the stop bar's close plus
       ``cooloff_minutes``.
    7. Flat at session end (``flat_at_end``, default on): on the bar whose close is one bar before the session
       close (the next bar is the session's last), the pending stop/take-profit are cancelled and a market order
       closes the position at the open of the session's last bar; no entry is made from then on in that session.
       Without ``flat_at_end``, positions are held across sessions until their stop or take-profit.

    Params:
        range_minutes: opening-range length in minutes (default 15), > 0.
        stop_pct: stop distance in percent of the signal close (default 0.5), >= 0 (0 = none).
        take_profit_pct: take-profit distance in percent of the signal close (default 1.0), >= 0 (0 = none).
        max_stops: stop exits allowed per session before entries stop (default 2), >= 1.
        cooloff_minutes: minutes without entries after a stop exit (default 30), >= 0.
        flat_at_end: close every position at the session end (default True).
        calendar: ``auto`` (default), ``24/7`` or an exchange calendar code (``XNYS``).
        session_start: start of the daily session on 24/7 venues, ``HH:MM`` UTC (default ``00:00``).
    """

    params: Any = (
        ("range_minutes", 15),
        ("stop_pct", 0.5),
        ("take_profit_pct", 1.0),
        ("max_stops", 2),
        ("cooloff_minutes", 30),
        ("flat_at_end", True),
        ("calendar", _AUTO),
        ("session_start", "00:00"),
    )

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Refuse parameters that cannot work (ValueError with a one-line reason; btlab checks it before a run)."""
        if not params.get("range_minutes", 15) > 0:
            raise ValueError(f"range_minutes must be > 0, got {params.get('range_minutes')}")
        for name in ("stop_pct", "take_profit_pct", "cooloff_minutes"):
            if params.get(name, 0) < 0:
                raise ValueError(f"{name} must be >= 0, got {params.get(name)}")
        if params.get("max_stops", 2) < 1:
            raise ValueError(f"max_stops must be >= 1, got {params.get('max_stops')}")
        _parse_hhmm(params.get("session_start", "00:00"))
        calendar = str(params.get("calendar", _AUTO)).strip()
        if calendar.lower() != _AUTO:
            from btlab.errors import InvalidArgumentError
            from btlab.model.venue import resolve_calendar

            try:
                resolve_calendar(calendar)
            except InvalidArgumentError as exc:
                raise ValueError(f"calendar: {exc}") from None

    def __init__(self) -> None:
        self.validate_params(dict(self.p._getkwargs()))
        tf = getattr(self.data, "btlab_timeframe", None)
        self._orb_bar = _dt.timedelta(seconds=tf.nanos / 1e9) if tf is not None else _dt.timedelta(minutes=1)
        self._orb_range = _dt.timedelta(minutes=self.p.range_minutes)
        self._orb_cooloff = _dt.timedelta(minutes=self.p.cooloff_minutes)
        self._orb_day_start = _parse_hhmm(self.p.session_start)
        self._orb_code = self._calendar_code()
        self._orb_opens: list[_dt.datetime] = []  # session windows (naive UTC), loaded a year at a time
        self._orb_closes: list[_dt.datetime] = []
        self._orb_loaded_to: _dt.datetime | None = None
        self._orb_window: tuple[_dt.datetime, _dt.datetime] | None = None
        self._orb_hi = self._orb_lo = float("nan")
        self._orb_stops = 0
        self._orb_cool_until: _dt.datetime | None = None
        self._orb_entry = self._orb_stop = self._orb_limit = None
        #: per session open (naive UTC): the opening range ``(high, low)`` as the strategy saw it
        self.ranges: dict[_dt.datetime, tuple[float, float]] = {}

    def _calendar_code(self) -> str:
        from btlab.errors import InvalidArgumentError
        from btlab.model.venue import TWENTY_FOUR_SEVEN, resolve_calendar, resolve_venue

        if str(self.p.calendar).strip().lower() != _AUTO:
            return resolve_calendar(self.p.calendar)
        run_calendar = getattr(self.data, "btlab_calendar", None)  # set by btlab's runner: the run's venue calendar
        if run_calendar:
            return str(run_calendar)
        exchange = getattr(self.data.p, "exchange", None)
        if not exchange:
            return TWENTY_FOUR_SEVEN
        try:
            return resolve_venue(exchange).calendar
        except InvalidArgumentError:
            return TWENTY_FOUR_SEVEN

    def _find_window(self, t: _dt.datetime) -> tuple[_dt.datetime, _dt.datetime] | None:
        """The session window ``[open, close)`` holding instant ``t`` (naive UTC), or None."""
        from btlab.model.venue import TWENTY_FOUR_SEVEN

        if self._orb_code == TWENTY_FOUR_SEVEN:
            day = _dt.datetime(t.year, t.month, t.day) + self._orb_day_start
            if day > t:
                day -= _UTC_DAY
            return day, day + _UTC_DAY
        if self._orb_loaded_to is None or t >= self._orb_loaded_to - _UTC_DAY:
            from btlab.model.sessions import session_windows

            lo, hi = t - 2 * _UTC_DAY, t + _dt.timedelta(days=366)
            w = session_windows(self._orb_code, lo, hi, "regular")
            self._orb_opens = [x.to_pydatetime().replace(tzinfo=None) for x in w["open"]]
            self._orb_closes = [x.to_pydatetime().replace(tzinfo=None) for x in w["close"]]
            self._orb_loaded_to = hi
        i = bisect.bisect_right(self._orb_opens, t) - 1
        if i >= 0 and t < self._orb_closes[i]:
            return self._orb_opens[i], self._orb_closes[i]
        return None

    def notify_order(self, order: Any) -> None:
        """Track the bracket (Backtrader notifies copies of orders: they are matched by ``ref``)."""
        entry, stop = self._orb_entry, self._orb_stop
        is_entry = entry is not None and order.ref == entry.ref
        if order.status in (order.Canceled, order.Expired, order.Margin, order.Rejected):
            if is_entry:  # the entry did not fill: its bracket is gone with it
                self._orb_entry = self._orb_stop = self._orb_limit = None
            return
        if order.status != order.Completed:
            return
        if is_entry:
            self._orb_entry = None
            return
        if stop is not None and order.ref == stop.ref:  # rules 5 and 6
            self._orb_stops += 1
            self._orb_cool_until = self.data.datetime.datetime(0) + self._orb_cooloff
        self._orb_stop = self._orb_limit = None  # a stop, take-profit or closing order: flat again

    def _new_session(self, window: tuple[_dt.datetime, _dt.datetime] | None) -> None:
        self._orb_window = window
        self._orb_hi = self._orb_lo = float("nan")
        self._orb_stops = 0
        self._orb_cool_until = None

    def next(self) -> None:
        close_t = self.data.datetime.datetime(0)  # Backtrader's datetime is the bar's close time (btlab feeds)
        open_t = close_t - self._orb_bar
        window = self._orb_window if self._orb_window and self._orb_window[0] <= open_t < self._orb_window[1] else \
            self._find_window(open_t)
        if window != self._orb_window:
            self._new_session(window)
        if window is None:
            return
        s_open, s_close = window
        if open_t < s_open + self._orb_range:  # rule 1: inside the opening range
            high, low = self.data.high[0], self.data.low[0]
            self._orb_hi = high if self._orb_hi != self._orb_hi else max(self._orb_hi, high)
            self._orb_lo = low if self._orb_lo != self._orb_lo else min(self._orb_lo, low)
            self.ranges[s_open] = (self._orb_hi, self._orb_lo)
            return
        if self.p.flat_at_end and close_t + self._orb_bar >= s_close:  # rule 7
            self._flatten()
            return
        if self._orb_hi != self._orb_hi or self.position or self._orb_entry is not None:
            return
        if self._orb_stops >= self.p.max_stops:  # rule 5
            return
        if self._orb_cool_until is not None and close_t < self._orb_cool_until:  # rule 6
            return
        price = self.data.close[0]
        if price > self._orb_hi:
            self._enter(self.buy_bracket, price, -1.0)
        elif price < self._orb_lo:
            self._enter(self.sell_bracket, price, 1.0)

    def _enter(self, bracket: Any, price: float, stop_side: float) -> None:
        stop_d, tp_d = price * self.p.stop_pct / 100.0, price * self.p.take_profit_pct / 100.0
        orders = bracket(
            exectype=bt.Order.Market,
            stopprice=price + stop_side * stop_d if self.p.stop_pct else None,
            stopexec=bt.Order.Stop if self.p.stop_pct else None,
            limitprice=price - stop_side * tp_d if self.p.take_profit_pct else None,
            limitexec=bt.Order.Limit if self.p.take_profit_pct else None,
        )
        self._orb_entry, self._orb_stop, self._orb_limit = orders

    def _flatten(self) -> None:
        for order in (self._orb_stop, self._orb_limit):
            if order is not None and order.alive():
                self.cancel(order)
        self._orb_stop = self._orb_limit = None
        if self.position:
            self.close()
