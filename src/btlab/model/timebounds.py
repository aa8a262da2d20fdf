"""Time bounds as users give them: strict parsing of dates and times, ranges, durations.

Accepted (all UTC unless an offset is given; naive values are UTC):

* a date ``YYYY-MM-DD`` (``2020-01-02``);
* an ISO 8601 / RFC 3339 time with ``T`` or a space: ``2020-01-02T03:04``, ``2020-01-02 03:04:05.250``, with an
  optional ``Z`` or offset (``+01:00``, ``+0100``, ``-05``);
* epoch seconds only when marked with ``@`` (``@1577836800``, as GNU ``date -d @...``);
* in Python: ``datetime``, ``date``, :class:`pandas.Timestamp` and ``numpy.datetime64`` values.

Anything else is refused with :class:`~btlab.errors.InvalidArgumentError`, never guessed: ``01/02/2020`` could be
2 January or 1 February, ``1577836800`` could be seconds or milliseconds, ``2020-01`` could mean any day of it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from btlab.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["parse_bound", "parse_duration", "parse_range", "parse_time"]

_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?)?$",
    re.IGNORECASE,
)
_EPOCH = re.compile(r"^@(?P<seconds>-?\d+(?:\.\d+)?)$")
_DAY_MONTH = re.compile(r"^(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<year>\d{2}|\d{4})(?:[T ].*)?$")
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)$",
                       re.IGNORECASE)
_HINT = "use YYYY-MM-DD or an ISO 8601 time such as 2020-01-02T15:30Z"


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _refuse_ambiguous(text: str, what: str) -> None:
    m = _DAY_MONTH.match(text)
    if not m:
        return
    a, b, year = int(m["a"]), int(m["b"]), m["year"]
    year = year if len(year) == 4 else f"20{year}"  # only to show the candidates
    readings = []
    for day, month in ((a, b), (b, a)):
        try:
            readings.append(date(int(year), month, day).isoformat())
        except ValueError:
            pass
    readings = list(dict.fromkeys(readings))
    if len(readings) == 2:
        raise InvalidArgumentError(
            f"{what} {text!r} is ambiguous ({readings[0]} or {readings[1]}?): use YYYY-MM-DD")
    suggestion = f" ({readings[0]}?)" if readings else ""
    raise InvalidArgumentError(f"{what} {text!r} is not YYYY-MM-DD{suggestion}: {_HINT}")


def _parse_text(text: str, what: str) -> tuple[pd.Timestamp, bool]:
    """(UTC timestamp, whether the text was a date without a time)."""
    import pandas as pd

    if m := _EPOCH.match(text):
        return pd.Timestamp(float(m["seconds"]), unit="s", tz="UTC"), False
    m = _ISO.match(text)
    if not m:
        _refuse_ambiguous(text, what)
        if re.fullmatch(r"\d{4}(-\d{1,2})?", text):
            raise InvalidArgumentError(f"{what} {text!r} is not a whole date: {_HINT}")
        if re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
            raise InvalidArgumentError(
                f"{what} {text!r}: a bare number is not a time (seconds or milliseconds?); "
                f"{_HINT}, or epoch seconds marked as @{text}")
        raise InvalidArgumentError(f"cannot parse {what} value {text!r}: {_HINT}")
    try:
        ts = pd.Timestamp(text.replace(",", "."))
    except (ValueError, TypeError, OverflowError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidArgumentError(f"cannot parse {what} value {text!r}: {reason}") from None
    return _utc(ts), m["time"] is None


def _parse(value: Any, what: str) -> tuple[pd.Timestamp, bool]:
    import pandas as pd  # here, not at the top: durations (btlab runs cleanup) need no pandas

    if isinstance(value, str):
        return _parse_text(value.strip(), what)
    if value is pd.NaT:
        raise InvalidArgumentError(f"{what}: missing time (NaT)")
    if isinstance(value, pd.Timestamp):
        return _utc(value), False
    if isinstance(value, datetime):
        return _utc(pd.Timestamp(value)), False
    if isinstance(value, date):
        return pd.Timestamp(value.isoformat(), tz="UTC"), True
    if type(value).__name__ == "datetime64":
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            raise InvalidArgumentError(f"{what}: missing time (NaT)")
        return _utc(ts), False
    raise InvalidArgumentError(
        f"{what}: expected a date or time (str, datetime, date, pandas.Timestamp), got {type(value).__name__} "
        f"{value!r}; epoch seconds as a string marked '@', e.g. '@1577836800'")


def parse_time(value: Any, *, what: str = "time") -> pd.Timestamp:
    """Parse one date or time strictly (see the module docstring for the accepted forms).

    Args:
        value: the user's value.
        what: how to name it in errors (e.g. ``"--since"``).

    Returns: a timezone-aware UTC :class:`pandas.Timestamp` (a date is its 00:00 UTC).

    Raises:
        InvalidArgumentError: not an accepted form, ambiguous (``01/02/2020``), or not a real date/time.
    """
    return _parse(value, what)[0]


def parse_bound(value: Any, *, end: bool, what: str | None = None) -> pd.Timestamp | None:
    """Parse a ``--from``/``--to`` bound to a UTC timestamp usable as ``start <= ts < end``.

    ``start`` is inclusive. ``end`` is inclusive too: a date without a time (``2023-12-31``) includes that whole
    UTC day; a timestamp includes bars opening at exactly that time (the bound returned is 1 ns after it).

    Args:
        value: the bound, or None / ``""`` for none.
        end: True for the upper bound.
        what: how to name it in errors (default ``--to`` / ``--from``).

    Raises:
        InvalidArgumentError: the value is not an accepted date/time (see :func:`parse_time`).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    import pandas as pd

    ts, date_only = _parse(value, what or ("--to" if end else "--from"))
    if not end:
        return ts
    return ts + pd.Timedelta(days=1) if date_only else ts + pd.Timedelta(1, "ns")


def parse_range(
    start: Any, end: Any, *, names: tuple[str, str] = ("--from", "--to"), end_inclusive: bool = True
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse both bounds of a range and check their order.

    Args:
        start, end: the bounds (either may be None).
        names: how to name them in errors.
        end_inclusive: True: ``end`` is inclusive as in :func:`parse_bound` (a date includes its whole day; the
            returned bound is exclusive). False: ``end`` is an exclusive instant (a date is its 00:00 UTC).

    Returns: ``(lo, hi)`` for ``lo <= ts < hi`` (None where not given).

    Raises:
        InvalidArgumentError: a bound cannot be parsed, or the range is empty (``start`` after ``end``).
    """
    lo = parse_bound(start, end=False, what=names[0])
    if end_inclusive:
        hi = parse_bound(end, end=True, what=names[1])
    else:
        hi = None if end is None or (isinstance(end, str) and not end.strip()) else parse_time(end, what=names[1])
    if lo is not None and hi is not None and hi <= lo:
        shown_start, shown_end = (str(v).strip() if isinstance(v, str) else str(v) for v in (start, end))
        if end_inclusive or hi < lo:
            raise InvalidArgumentError(f"{names[0]} {shown_start} is after {names[1]} {shown_end}")
        raise InvalidArgumentError(f"{names[1]} {shown_end} must be later than {names[0]} {shown_start} "
                                   f"({names[1]} is exclusive)")
    return lo, hi


def parse_duration(value: Any, *, what: str = "duration") -> timedelta:
    """Parse a duration such as ``90s``, ``2m``, ``1.5h``, ``3d``, ``1w`` (``m`` is minutes).

    A :class:`datetime.timedelta` is returned as is. A bare number is refused (seconds or minutes?).

    Raises:
        InvalidArgumentError: not a positive number followed by a unit.
    """
    if isinstance(value, timedelta):
        delta = value
    else:
        m = _DURATION.match(str(value).strip())
        if not m:
            raise InvalidArgumentError(f"{what} {str(value)!r}: give a number and a unit, e.g. 90s, 2m, 1h, 3d")
        unit = m["unit"].lower()[0]
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[unit]
        delta = timedelta(seconds=float(m["n"]) * seconds)
    if delta <= timedelta(0):
        raise InvalidArgumentError(f"{what} must be positive, got {value}")
    return delta


def utc_now() -> datetime:
    """The current wall time, timezone-aware UTC."""
    return datetime.now(timezone.utc)
