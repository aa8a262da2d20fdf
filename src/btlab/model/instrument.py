"""Instruments and their trading calendars."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Calendar(str, Enum):
    """Trading calendar, which fixes the annualization of daily returns.

    ``crypto`` trades 24/7: 365 daily returns a year. ``equity`` trades exchange sessions: 252 a year.
    """

    crypto = "crypto"
    equity = "equity"

    @property
    def periods_per_year(self) -> int:
        """Daily periods in one year under this calendar (365 or 252)."""
        return 365 if self is Calendar.crypto else 252


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument on one venue.

    Attributes:
        exchange: ccxt exchange id (``"binance"``) or an equity venue/vendor name (``"nasdaq"``).
        symbol: ccxt unified symbol (``"BTC/USDT"``) or an equity ticker (``"AAPL"``).
    """

    exchange: str
    symbol: str

    @property
    def calendar(self) -> Calendar:
        """The default calendar: ``crypto`` for ccxt ``BASE/QUOTE`` symbols, ``equity`` otherwise."""
        return Calendar.crypto if "/" in self.symbol else Calendar.equity

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}"
