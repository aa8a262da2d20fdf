"""Instruments and their trading calendars."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from btlab.model.venue import Venue


class Calendar(str, Enum):
    """Kind of trading calendar, which fixes the annualization of daily returns.

    ``crypto`` trades 24/7: 365 daily returns a year. ``equity`` trades exchange sessions: 252 a year. The
    sessions themselves (hours, holidays, early closes) come from the venue's exchange calendar: see
    :mod:`btlab.model.venue` and :mod:`btlab.model.sessions`.
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
        exchange: ccxt exchange id (``"binance"``) or an equity venue by MIC or name (``"XNYS"``, ``"nasdaq"``);
            see :func:`btlab.model.venue.resolve_venue`.
        symbol: ccxt unified symbol (``"BTC/USDT"``) or an equity ticker (``"AAPL"``).
        venue_calendar: the calendar to use instead of the exchange's own (``"24/7"``, ``"XNYS"``, ...); needed
            for an exchange name btlab does not know. None = from ``exchange``.
    """

    exchange: str
    symbol: str
    venue_calendar: str | None = None

    @property
    def venue(self) -> Venue:
        """The :class:`~btlab.model.venue.Venue` with its calendar.

        Raises:
            InvalidArgumentError: ``exchange`` is unknown and no ``venue_calendar`` is given, or the calendar
                name is unknown.
        """
        from btlab.model.venue import resolve_venue

        return resolve_venue(self.exchange, self.venue_calendar)

    @property
    def calendar(self) -> Calendar:
        """``crypto`` for 24/7 venues, ``equity`` for exchange-session venues (from :attr:`venue`).

        Raises:
            InvalidArgumentError: as :attr:`venue`.
        """
        return self.venue.kind

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}"
