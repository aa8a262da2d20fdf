"""Domain model: bars, timeframes, instruments, time bounds. No I/O here.

Names are loaded on first use (``from btlab.model import Timeframe`` does not import pandas).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BAR_COLUMNS": "bar", "PRICE_COLUMNS": "bar", "validate_bars": "bar",
    "Calendar": "instrument", "Instrument": "instrument",
    "Timeframe": "timeframe",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"btlab.model.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'btlab.model' has no attribute {name!r}")


__all__ = ["BAR_COLUMNS", "PRICE_COLUMNS", "Calendar", "Instrument", "Timeframe", "validate_bars"]
