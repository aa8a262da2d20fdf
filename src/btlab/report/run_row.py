"""What the report reads of a run row (``bt_runs`` as :meth:`btlab.store.Store.get_run` returns it): its
instruments, account currency, metrics, calendar and the conventions sentence."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from btlab.backtest.metrics import CONVENTIONS
from btlab.model.instrument import Calendar
from btlab.report.format import to_number


def run_symbols(run: Mapping[str, Any]) -> list[str]:
    """The run's instruments, in feed order (the comma-separated ``symbols`` column)."""
    return [s.strip() for s in str(run.get("symbols") or "").split(",") if s.strip()]


def run_currency(run: Mapping[str, Any]) -> str | None:
    """The account currency: the quote currency of the first symbol (``BTC/USDT`` -> ``USDT``), or None."""
    symbol = first_symbol(run)
    if symbol and "/" in symbol:
        quote = symbol.split("/", 1)[1]
        return quote.split(":", 1)[0] or None
    return None


def first_symbol(run: Mapping[str, Any]) -> str | None:
    """The run's first instrument, or None."""
    symbols = run_symbols(run)
    return symbols[0] if symbols else None


def run_metric(run: Mapping[str, Any], key: str) -> Any:
    """Metric ``key`` from the run's ``metrics`` dict, else the headline column of that name (None if neither)."""
    metrics = run.get("metrics")
    if isinstance(metrics, Mapping) and key in metrics:
        return metrics[key]
    return run.get(key)  # headline columns of bt_runs


def run_calendar(run: Mapping[str, Any]) -> Calendar:
    """The run's calendar kind (annualization), ``crypto`` when missing or unknown."""
    try:
        return Calendar(str(run_metric(run, "calendar") or run.get("calendar") or "crypto"))
    except ValueError:
        return Calendar.crypto


def conventions_sentence(run: Mapping[str, Any]) -> str:
    """The metrics conventions sentence for the run's calendar (annualization from its metrics or calendar)."""
    periods = to_number(run_metric(run, "periods_per_year"))
    calendar = run_metric(run, "calendar") or run.get("calendar") or "crypto"
    try:
        cal = Calendar(str(calendar))
        calendar_name = cal.value
        if periods is None or math.isnan(periods):
            periods = cal.periods_per_year
    except ValueError:
        calendar_name = str(calendar)
        if periods is None or math.isnan(periods):
            periods = Calendar.crypto.periods_per_year
    return CONVENTIONS.format(periods=int(periods), calendar=calendar_name)


def run_sessions(run: Mapping[str, Any]) -> str | None:
    """The exchange calendar whose sessions cut the run's daily returns (None: UTC days), from its config."""
    config = run.get("config")
    code = config.get("venue_calendar") if isinstance(config, Mapping) else None
    return None if not code or code == "24/7" else str(code)
