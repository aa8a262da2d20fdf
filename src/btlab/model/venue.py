"""Venues and their trading calendars: which hours a market trades, and how its returns are annualized.

A :class:`Venue` is where an instrument trades. Its ``calendar`` is either ``"24/7"`` (crypto exchanges: every
minute of every day is trading time; 365 daily returns a year) or the code of an exchange calendar of the
`exchange_calendars <https://github.com/gerrymanoim/exchange_calendars>`_ library (``"XNYS"`` ...: sessions with
open/close times, holidays and early closes as the library maintains them; 252 daily returns a year).

How an exchange name is resolved (:func:`resolve_venue`, case-insensitive):

1. every ccxt exchange id (``ccxt.exchanges``: ``binance``, ``coinbase``, ``kraken`` ...) and the CryptoCompare
   vendor names btlab stores (``cryptocompare``, ``cryptocompare:<exchange>``) -> 24/7. The ids are read from
   the installed ccxt package's module names, without importing ccxt (which takes about a second);
2. an equity venue by MIC or exchange_calendars code (``XNYS``, ``XNAS``, ``ARCX``, ``XLON``, ``XTKS`` ...,
   every name :func:`exchange_calendars.get_calendar_names` lists) or by a friendly alias (:data:`VENUE_ALIASES`:
   ``nyse``, ``nasdaq``, ``arca``, ``amex``, ``cboe``, ``otc``, ``lse``, ...) -> that exchange's calendar (US venues
   all use the NYSE calendar ``XNYS``, as exchange_calendars aliases them);
3. anything else is refused with :class:`~btlab.errors.InvalidArgumentError` -- unless the caller names the
   calendar (``calendar="24/7"``, ``calendar="XNYS"``; ``--calendar`` on the command line): that is how a venue
   btlab does not know (a broker, a data vendor) is used.

Calendar names (:func:`resolve_calendar`): ``24/7`` (alias ``crypto``), ``equity`` (the venue's own exchange
calendar, or ``XNYS`` for a venue without one), or an exchange calendar code/alias as above.

Nothing here does I/O; exchange_calendars is imported only when a calendar is actually built
(:mod:`btlab.model.sessions`) or listed.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

from btlab.errors import InvalidArgumentError
from btlab.model.instrument import Calendar

__all__ = [
    "CRYPTO_VENDORS",
    "TWENTY_FOUR_SEVEN",
    "VENUE_ALIASES",
    "Venue",
    "crypto_exchange_ids",
    "exchange_calendar_names",
    "resolve_calendar",
    "resolve_venue",
]

#: The calendar of venues that never close.
TWENTY_FOUR_SEVEN = "24/7"

#: Data vendors whose bars btlab stores under their own name (``cryptocompare`` or ``cryptocompare:<exchange>``).
CRYPTO_VENDORS: tuple[str, ...] = ("cryptocompare",)

#: Friendly equity venue names -> MIC / exchange_calendars code (exchange_calendars' own aliases also work).
VENUE_ALIASES: dict[str, str] = {
    "nyse": "XNYS",
    "nasdaq": "XNAS",
    "arca": "ARCX",
    "nyse_arca": "ARCX",
    "nysearca": "ARCX",
    "amex": "XASE",
    "nyse_american": "XASE",
    "cboe": "BATS",
    "bats": "BATS",
    "otc": "OOTC",
    "lse": "XLON",
    "tsx": "XTSE",
    "xetra": "XETR",
    "euronext": "XPAR",
    "hkex": "XHKG",
    "asx": "XASX",
    "jpx": "XTKS",
}

_CRYPTO_WORDS = ("crypto", "24/7")
_EXAMPLES = "XNYS/nyse, XNAS/nasdaq, ARCX/arca, XASE/amex, BATS/cboe, OOTC/otc, XLON/lse, XTKS/jpx"


@dataclass(frozen=True, slots=True)
class Venue:
    """Where an instrument trades, with its trading calendar.

    Attributes:
        name: the exchange name as given (and stored in the ``exchange`` column), e.g. ``"binance"``, ``"nyse"``.
        calendar: ``"24/7"`` or the canonical exchange_calendars code whose sessions apply (``"XNYS"``).
        mic: the venue's MIC or exchange_calendars name when it is an exchange venue (``"XNAS"`` for ``nasdaq``,
            whose calendar is ``XNYS``); None for 24/7 venues.
    """

    name: str
    calendar: str
    mic: str | None = None

    @property
    def is_24_7(self) -> bool:
        """True for venues that never close (crypto)."""
        return self.calendar == TWENTY_FOUR_SEVEN

    @property
    def kind(self) -> Calendar:
        """``Calendar.crypto`` for 24/7 venues, ``Calendar.equity`` for exchange-session venues."""
        return Calendar.crypto if self.is_24_7 else Calendar.equity

    @property
    def periods_per_year(self) -> int:
        """Daily returns in one year: 365 for 24/7 venues, 252 for exchange-session venues."""
        return self.kind.periods_per_year

    def __str__(self) -> str:
        return f"{self.name} ({self.calendar})"


@lru_cache(maxsize=1)
def crypto_exchange_ids() -> frozenset[str]:
    """Every ccxt exchange id (``ccxt.exchanges``), cheaply.

    ccxt has one module per exchange, named by its id, at the top of its package (``ccxt/binance.py``); the ids are
    those module names, listed from the installed package without importing it (about 1 ms instead of about 1 s).
    A test checks the result equals ``ccxt.exchanges``. Falls back to importing ccxt if the package layout is
    unexpected. Cached for the process.
    """
    spec = importlib.util.find_spec("ccxt")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    names: set[str] = set()
    for folder in folders:
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        names.update(f[:-3] for f in entries if f.endswith(".py") and not f.startswith("_"))
    if not names:  # pragma: no cover - a ccxt without its per-exchange modules
        import ccxt

        names = set(ccxt.exchanges)
    return frozenset(names)


@lru_cache(maxsize=1)
def exchange_calendar_names() -> dict[str, str]:
    """Lower-case name or alias -> exchange_calendars name, for every calendar the library knows plus
    :data:`VENUE_ALIASES` (without ``24/7``, which btlab handles itself)."""
    import exchange_calendars as xc

    out = {name.lower(): name for name in xc.get_calendar_names(include_aliases=True)}
    out.update({alias: mic for alias, mic in VENUE_ALIASES.items()})
    out.pop(TWENTY_FOUR_SEVEN, None)
    return out


def _canonical(name: str) -> str:
    from exchange_calendars.calendar_utils import global_calendar_dispatcher

    return global_calendar_dispatcher.resolve_alias(name)


def _calendar_choices() -> str:
    return (f"24/7 (or crypto), equity (the venue's exchange calendar), or an exchange calendar such as {_EXAMPLES} "
            "(any exchange_calendars code)")


def resolve_calendar(calendar: str | Calendar | Venue, *, venue: Venue | None = None) -> str:
    """The calendar a name stands for: ``"24/7"`` or a canonical exchange_calendars code.

    Args:
        calendar: ``"24/7"``/``"crypto"``/``Calendar.crypto``; ``"equity"``/``Calendar.equity`` (the exchange
            calendar of ``venue`` when it has one, else ``"XNYS"``); an exchange calendar code or alias
            (``"XNYS"``, ``"nasdaq"``, ``"XLON"``, case-insensitive); or a :class:`Venue` (its calendar).
        venue: the venue ``equity`` refers to, if any.

    Raises:
        InvalidArgumentError: an unknown name; the one-line message lists the choices.
    """
    if isinstance(calendar, Venue):
        return calendar.calendar
    text = calendar.value if isinstance(calendar, Calendar) else str(calendar).strip()
    low = text.lower()
    if low in _CRYPTO_WORDS:
        return TWENTY_FOUR_SEVEN
    if low == Calendar.equity.value:
        return venue.calendar if venue is not None and not venue.is_24_7 else "XNYS"
    name = exchange_calendar_names().get(low)
    if name is None:
        raise InvalidArgumentError(f"unknown calendar {text!r}: use {_calendar_choices()}")
    return _canonical(name)


def resolve_venue(exchange: str, calendar: str | Calendar | None = None) -> Venue:
    """The :class:`Venue` of an exchange name (see the module docstring for the rules).

    Args:
        exchange: ccxt exchange id, CryptoCompare vendor name, equity MIC/calendar code or alias.
        calendar: overrides the calendar (see :func:`resolve_calendar`); required for a name btlab does not know.

    Raises:
        InvalidArgumentError: unknown exchange name without ``calendar`` (one line listing what is accepted), or
            an unknown ``calendar``.
    """
    name = str(exchange).strip()
    if not name:
        raise InvalidArgumentError("exchange name is empty")
    known = _known_venue(name)
    if calendar is None:
        if known is None:
            raise InvalidArgumentError(
                f"unknown exchange {name!r}: use a ccxt exchange id for 24/7 crypto venues (binance, coinbase, "
                f"kraken, ...: {len(crypto_exchange_ids())} ids), an equity venue by MIC or name ({_EXAMPLES}, ...), "
                "or name its calendar with --calendar 24/7 or --calendar XNYS (Python: calendar=...)"
            )
        return known
    code = resolve_calendar(calendar, venue=known)
    mic = known.mic if known is not None and known.calendar == code else None
    if mic is None and code != TWENTY_FOUR_SEVEN:
        mic = code
    return Venue(name=name, calendar=code, mic=mic)


def _known_venue(name: str) -> Venue | None:
    low = name.lower()
    if low in crypto_exchange_ids() or low in CRYPTO_VENDORS or low.split(":", 1)[0] in CRYPTO_VENDORS:
        return Venue(name=name, calendar=TWENTY_FOUR_SEVEN)
    xc_name = exchange_calendar_names().get(low)
    if xc_name is None:
        return None
    return Venue(name=name, calendar=_canonical(xc_name), mic=xc_name)
