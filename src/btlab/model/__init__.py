"""Domain model: bars, timeframes, instruments. No I/O here."""

from btlab.model.bar import BAR_COLUMNS, PRICE_COLUMNS, validate_bars
from btlab.model.instrument import Calendar, Instrument
from btlab.model.timeframe import Timeframe

__all__ = ["BAR_COLUMNS", "PRICE_COLUMNS", "Calendar", "Instrument", "Timeframe", "validate_bars"]
