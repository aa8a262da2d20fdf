"""Checks before a backtest runs: settings that cannot give a meaningful result, and bars missing in the range.

Everything here raises before anything is recorded. Limits (also in ``btlab backtest --help`` and the README):

* ``cash``, ``commission``, ``size_pct``, ``stake``, ``slippage_pct``, ``slippage_fixed``: finite numbers
  (no NaN, no infinity); cash > 0; 0 <= commission < 1 (a fraction of traded value: 1 would be 100 %);
  0 < size_pct <= 100; stake > 0; 0 <= slippage_pct < 0.5 (a fraction of price); 0 <= slippage_fixed < the
  median close of every instrument in the range (price units).
* Gaps (runs of missing bars between two stored bars, :func:`btlab.marketdata.quality.gaps.find_gaps`) inside the range:
  reported as a warning; a run is refused, unless gaps are allowed, when one gap is longer than
  :data:`MAX_GAP` (7 days) or the missing bars exceed :data:`MAX_MISSING_FRACTION` (5 %) of the range's bar
  slots (first to last bar). For exchange venues only bar slots inside the venue's sessions count (nights,
  weekends and holidays are not missing bars: ``find_gaps(calendar=, session=)``), so a gap's length is session
  time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from btlab.errors import DataGapError, InvalidArgumentError
from btlab.marketdata.quality.gaps import find_gaps
from btlab.model.timeframe import Timeframe

#: A run refuses a gap longer than this (unless gaps are allowed).
MAX_GAP = pd.Timedelta(days=7)
#: A run refuses more missing bars than this fraction of the range's bar slots (unless gaps are allowed).
MAX_MISSING_FRACTION = 0.05
#: Slippage as a fraction of price at or above this is refused.
MAX_SLIPPAGE_PCT = 0.5


def check_settings(
    *,
    cash: float,
    commission: float,
    size_pct: float | None,
    stake: float | None,
    slippage_pct: float,
    slippage_fixed: float,
) -> None:
    """Refuse broker and sizing settings that cannot give a meaningful result (see the module docstring).

    Raises:
        InvalidArgumentError: one line naming the setting, its value and the accepted range.
    """
    for name, value in (("cash", cash), ("commission", commission), ("size_pct", size_pct), ("stake", stake),
                        ("slippage_pct", slippage_pct), ("slippage_fixed", slippage_fixed)):
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    if cash <= 0:
        raise InvalidArgumentError(f"cash must be positive, got {cash}")
    if not 0 <= commission < 1:
        raise InvalidArgumentError(
            f"commission must be a fraction of traded value in [0, 1) (0.001 = 0.1 %), got {commission}"
        )
    if stake is not None and stake <= 0:
        raise InvalidArgumentError(f"stake must be positive, got {stake}")
    if stake is None and size_pct is not None and not 0 < size_pct <= 100:
        raise InvalidArgumentError(f"size_pct must be in (0, 100], got {size_pct}")
    if not 0 <= slippage_pct < MAX_SLIPPAGE_PCT:
        raise InvalidArgumentError(
            f"slippage_pct must be a fraction of price in [0, {MAX_SLIPPAGE_PCT}) (0.0005 = 5 bp), got {slippage_pct}"
        )
    if slippage_fixed < 0:
        raise InvalidArgumentError(f"slippage_fixed must be >= 0 (price units), got {slippage_fixed}")


def check_slippage_fixed(slippage_fixed: float, bars: dict[str, pd.DataFrame]) -> None:
    """Refuse a fixed slippage at or above the median close of an instrument (price units).

    Raises:
        InvalidArgumentError: naming the instrument and its median close.
    """
    if not slippage_fixed:
        return
    for symbol, frame in bars.items():
        median = float(frame["close"].median())
        if slippage_fixed >= median:
            raise InvalidArgumentError(
                f"slippage_fixed {slippage_fixed:g} is at least the median close of {symbol} in the range "
                f"({median:,.8g}): it is in price units, use --slippage-pct for a fraction of price"
            )


@dataclass(frozen=True)
class GapReport:
    """Missing bars inside one instrument's range.

    Attributes:
        label: ``exchange:symbol timeframe``.
        timeframe: the bars' timeframe.
        bars: bars present in the range.
        gaps: the counted gaps (:func:`~btlab.marketdata.quality.gaps.find_gaps` columns ``gap_start, gap_end,
            missing_bars``; bar open times, UTC).
        calendar: the venue's calendar (``24/7`` or an exchange calendar code such as ``XNYS``).
    """

    label: str
    timeframe: Timeframe
    bars: int
    gaps: pd.DataFrame
    calendar: str = "24/7"

    @property
    def n_gaps(self) -> int:
        return len(self.gaps)

    @property
    def missing(self) -> int:
        """Missing bars in all counted gaps."""
        return int(self.gaps["missing_bars"].sum()) if len(self.gaps) else 0

    @property
    def missing_fraction(self) -> float:
        """Missing bars / bar slots from the first to the last bar."""
        slots = self.bars + self.missing
        return self.missing / slots if slots else 0.0

    @property
    def largest(self) -> pd.Series | None:
        """The longest counted gap (a row of :attr:`gaps`), or None."""
        return None if self.gaps.empty else self.gaps.loc[self.gaps["missing_bars"].idxmax()]

    def over_limit(self) -> bool:
        """True when a gap is longer than :data:`MAX_GAP` or more than :data:`MAX_MISSING_FRACTION` is missing."""
        largest = self.largest
        if largest is None:
            return False
        longest = pd.Timedelta(int(largest["missing_bars"]) * self.timeframe.nanos, "ns")
        return longest > MAX_GAP or self.missing_fraction > MAX_MISSING_FRACTION

    def summary(self) -> str:
        """One line: count, missing bars (and share of the range), the largest gap with its span."""
        largest = self.largest
        if largest is None:
            return f"{self.label}: no missing bars inside the range"
        n_big = int(largest["missing_bars"])
        longest = pd.Timedelta(n_big * self.timeframe.nanos, "ns")
        scope = "" if self.calendar == "24/7" else f" in {self.calendar} session time"
        return (
            f"{self.label}: {self.n_gaps:,} gap(s){scope} inside the range, {self.missing:,} missing bar(s) "
            f"({self.missing_fraction:.2%} of {self.bars + self.missing:,} bar slots), largest {n_big:,} bar(s) "
            f"({_duration(longest)}) from {largest['gap_start']:%Y-%m-%d %H:%M} to "
            f"{largest['gap_end']:%Y-%m-%d %H:%M} UTC"
        )


def gap_report(
    bars: pd.DataFrame, timeframe: Timeframe | str, label: str, calendar: str = "24/7", session: str | None = None
) -> GapReport:
    """Find the gaps of one instrument's bars (``ts`` = bar open times, UTC, increasing) inside their range.

    ``calendar``/``session``: the venue's calendar (``24/7`` or an exchange calendar code) and, for exchange
    venues, the session whose bar slots count (``regular``/``extended``; see
    :func:`btlab.marketdata.quality.gaps.find_gaps`).
    """
    tf = Timeframe.parse(timeframe)
    if calendar == "24/7":
        gaps = find_gaps(bars["ts"], tf)
    else:
        gaps = find_gaps(bars["ts"], tf, calendar=calendar, session=session)
    return GapReport(label=label, timeframe=tf, bars=len(bars), gaps=gaps, calendar=calendar)


def check_gaps(reports: list[GapReport], *, allow_gaps: bool) -> list[str]:
    """Warnings for the gaps found (one line each); refuse gaps over the limit unless ``allow_gaps``.

    Raises:
        DataGapError: the first report over the limit, in one line saying what to do.
    """
    warnings = []
    for report in reports:
        if not report.n_gaps:
            continue
        if report.over_limit() and not allow_gaps:
            raise DataGapError(
                f"{report.summary()}: over the limit for a run (a gap longer than {MAX_GAP.days} days or more than "
                f"{MAX_MISSING_FRACTION:.0%} of the range missing); choose --from/--to inside one stored span "
                "(see: btlab data coverage) or pass --allow-gaps (Python: allow_gaps=True)"
            )
        warnings.append(f"{report.summary()}; the strategy sees the bars on either side of a gap as consecutive")
    return warnings


def _duration(td: pd.Timedelta) -> str:
    days, rest = divmod(int(td.total_seconds()), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{int(td.total_seconds())} s"
