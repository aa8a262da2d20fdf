"""btlab.model.timebounds: dates and times are parsed strictly (ambiguous input refused), ranges checked."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from btlab.errors import InvalidArgumentError
from btlab.model.timebounds import parse_bound, parse_duration, parse_range, parse_time

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-01-02", "2020-01-02 00:00"),
        ("  2020-01-02 ", "2020-01-02 00:00"),
        ("2020-01-02T03:04", "2020-01-02 03:04"),
        ("2020-01-02 03:04:05", "2020-01-02 03:04:05"),
        ("2020-01-02T03:04:05.250Z", "2020-01-02 03:04:05.250"),
        ("2020-01-02t03:04:05z", "2020-01-02 03:04:05"),
        ("2020-01-02T03:04:05+01:00", "2020-01-02 02:04:05"),
        ("2020-01-02 03:04-0530", "2020-01-02 08:34"),
        ("2020-01-02T03:04:05.123456789", "2020-01-02 03:04:05.123456789"),
        ("@1577836800", "2020-01-01 00:00"),
        ("@1577836800.5", "2020-01-01 00:00:00.5"),
    ],
)
def test_accepted_forms(text, expected):
    assert parse_time(text) == pd.Timestamp(expected, tz="UTC")


def test_python_values():
    assert parse_time(date(2020, 1, 2)) == pd.Timestamp("2020-01-02", tz="UTC")
    assert parse_time(datetime(2020, 1, 2, 3)) == pd.Timestamp("2020-01-02 03:00", tz="UTC")  # naive = UTC
    eastern = timezone(timedelta(hours=-5))
    assert parse_time(datetime(2020, 1, 2, 3, tzinfo=eastern)) == pd.Timestamp("2020-01-02 08:00", tz="UTC")
    assert parse_time(pd.Timestamp("2020-01-02 03:00", tz="Europe/Paris")) == pd.Timestamp("2020-01-02 02:00", tz="UTC")
    assert parse_time(np.datetime64("2020-01-02T03:00")) == pd.Timestamp("2020-01-02 03:00", tz="UTC")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("01/02/2020", "'01/02/2020' is ambiguous (2020-02-01 or 2020-01-02?): use YYYY-MM-DD"),
        ("1.2.20", "is ambiguous (2020-02-01 or 2020-01-02?)"),
        ("02-01-2020", "is ambiguous"),
        ("13/02/2020", "is not YYYY-MM-DD (2020-02-13?)"),
        ("1577836800", "a bare number is not a time (seconds or milliseconds?)"),
        ("2020", "is not a whole date"),
        ("2020-01", "is not a whole date"),
        ("2020-1-2", "cannot parse"),
        ("20200102", "bare number"),
        ("2020-13-01", "month must be in 1..12"),
        ("2020-02-30", "day is out of range"),
        ("2020-01-02T25:00", "hour must be in 0..23"),
        ("yesterday", "cannot parse --from value 'yesterday': use YYYY-MM-DD or an ISO 8601 time"),
        ("", "cannot parse"),
        (1577836800, "expected a date or time"),
        (pd.NaT, "missing time"),
    ],
)
def test_refused_forms(value, message):
    with pytest.raises(InvalidArgumentError) as err:
        parse_time(value, what="--from")
    assert message in str(err.value)


def test_bounds_end_inclusive():
    assert parse_bound("2023-12-31", end=True) == pd.Timestamp("2024-01-01", tz="UTC")
    assert parse_bound(date(2023, 12, 31), end=True) == pd.Timestamp("2024-01-01", tz="UTC")
    assert parse_bound("2023-12-31T12:00", end=True) == pd.Timestamp("2023-12-31 12:00", tz="UTC") + pd.Timedelta(1)
    assert parse_bound("2023-12-31", end=False) == pd.Timestamp("2023-12-31", tz="UTC")
    assert parse_bound(None, end=True) is None and parse_bound("  ", end=False) is None


def test_range_order():
    assert parse_range("2020-01-01", "2020-01-01") == (pd.Timestamp("2020-01-01", tz="UTC"),
                                                       pd.Timestamp("2020-01-02", tz="UTC"))
    assert parse_range(None, "2020-01-01") == (None, pd.Timestamp("2020-01-02", tz="UTC"))
    with pytest.raises(InvalidArgumentError, match=r"^--from 2020-01-02 is after --to 2020-01-01$"):
        parse_range("2020-01-02", "2020-01-01")
    with pytest.raises(InvalidArgumentError, match=r"^--from 2020-01-01T05:00 is after --to 2020-01-01T04:00$"):
        parse_range("2020-01-01T05:00", "2020-01-01T04:00")
    lo, hi = parse_range("2020-01-01T04:00", "2020-01-01T04:00")  # one instant: a bar opening then
    assert hi - lo == pd.Timedelta(1)
    # exclusive end (ingest --until): the same instant is an empty range
    with pytest.raises(InvalidArgumentError, match="--until 2024-01-01 must be later than --since 2024-01-01"):
        parse_range("2024-01-01", "2024-01-01", names=("--since", "--until"), end_inclusive=False)
    assert parse_range("2024-01-01", "2024-01-02", names=("--since", "--until"), end_inclusive=False)[1] == \
        pd.Timestamp("2024-01-02", tz="UTC")


def test_durations():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2m") == timedelta(minutes=2)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("3 days") == timedelta(days=3)
    assert parse_duration("1w") == timedelta(weeks=1)
    assert parse_duration(timedelta(seconds=5)) == timedelta(seconds=5)
    for bad in ("2", "m", "-1m", "two minutes"):
        with pytest.raises(InvalidArgumentError, match="give a number and a unit"):
            parse_duration(bad, what="--older-than")
    with pytest.raises(InvalidArgumentError, match="must be positive"):
        parse_duration("0s")


def test_runner_uses_the_model_parser():
    from btlab.backtest import runner
    from btlab.model import timebounds

    assert runner.parse_bound is timebounds.parse_bound
    with pytest.raises(InvalidArgumentError, match="ambiguous"):
        runner.run_backtest("sma_cross", start="03/04/2021", store=":memory:")
    with pytest.raises(InvalidArgumentError, match="--from 2021-02-01 is after --to 2021-01-01"):
        runner.run_backtest("sma_cross", start="2021-02-01", end="2021-01-01", store=":memory:")


def test_utc_inputs_agree_with_offsets():
    assert parse_time("2020-06-01T00:00:00+02:00") == parse_time(datetime(2020, 5, 31, 22, tzinfo=UTC))
