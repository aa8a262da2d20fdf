"""Timeframes in ccxt notation (``1s``, ``1m``, ``5m``, ``1h``, ``4h``, ``1d``, ``1w``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from btlab.errors import InvalidArgumentError

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


@total_ordering
@dataclass(frozen=True, slots=True)
class Timeframe:
    """A fixed bar length, parsed from a ccxt timeframe string.

    Months (``1M``) are not fixed-length and are rejected. Weekly bars open on Monday 00:00 UTC
    (ISO weeks, as Binance does), so ``1w`` alignment is checked against that origin.

    Attributes:
        value: the ccxt string, e.g. ``"1h"``.
        seconds: bar length in seconds.
    """

    value: str
    seconds: int

    @classmethod
    def parse(cls, text: str | "Timeframe") -> "Timeframe":
        """Parse ``"1m"``-style text.

        Raises:
            InvalidArgumentError: (a ValueError) text is not ``<positive int><s|m|h|d|w>``.
        """
        if isinstance(text, Timeframe):
            return text
        match = _PATTERN.match(str(text).strip())
        if not match or int(match.group(1)) <= 0:
            raise InvalidArgumentError(
                f"invalid timeframe {text!r}: use a ccxt timeframe such as 1s, 1m, 5m, 15m, 1h, 4h, 1d or 1w"
            )
        count, unit = int(match.group(1)), match.group(2)
        return cls(f"{count}{unit}", count * _UNIT_SECONDS[unit])

    @classmethod
    def from_seconds(cls, seconds: int) -> "Timeframe":
        """The timeframe of ``seconds`` in the largest unit that divides it (``3600`` -> ``1h``, ``5400`` -> ``90m``,
        ``604800`` -> ``1w``).

        Raises:
            InvalidArgumentError: ``seconds`` is not a positive whole number.
        """
        if int(seconds) != seconds or seconds <= 0:
            raise InvalidArgumentError(f"a timeframe is a positive whole number of seconds, got {seconds!r}")
        seconds = int(seconds)
        for unit, size in sorted(_UNIT_SECONDS.items(), key=lambda item: -item[1]):
            if seconds % size == 0:
                return cls(f"{seconds // size}{unit}", seconds)
        raise AssertionError("unreachable: 1s divides every whole number")  # pragma: no cover

    @property
    def nanos(self) -> int:
        """Bar length in nanoseconds."""
        return self.seconds * 1_000_000_000

    @property
    def origin_ns(self) -> int:
        """Epoch offset in ns that bar open times are aligned to (Monday 1970-01-05 for weeks, else 0)."""
        return 4 * 86_400 * 1_000_000_000 if self.value.endswith("w") else 0

    def is_aligned(self, ts_ns: int) -> bool:
        """True if ``ts_ns`` (UTC epoch ns) is a valid bar open time for this timeframe."""
        return (ts_ns - self.origin_ns) % self.nanos == 0

    @property
    def pandas_freq(self) -> str:
        """The equivalent pandas offset alias (``"3600s"`` style, exact for every fixed length)."""
        return f"{self.seconds}s"

    def __str__(self) -> str:
        return self.value

    def __lt__(self, other: "Timeframe") -> bool:
        return self.seconds < other.seconds
