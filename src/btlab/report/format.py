"""Display formatting of metric values, shared by the HTML report and the CLI (plain text, not escaped)."""

from __future__ import annotations

import math
from typing import Any

#: The metrics shown, grouped: (section, ((key, label, unit), ...)); unit: pct, money, ratio, int, days, duration,
#: text. Definitions: :mod:`btlab.backtest.metrics` (``CONVENTIONS`` and ``EXTENDED_CONVENTIONS``).
METRIC_SECTIONS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "Returns",
        (
            ("start_value", "Start value", "money"),
            ("end_value", "End value", "money"),
            ("total_return", "Total return", "pct"),
            ("cagr", "CAGR", "pct"),
            ("volatility", "Volatility (annualized)", "pct"),
            ("sharpe", "Sharpe", "ratio"),
            ("sortino", "Sortino", "ratio"),
            ("calmar", "Calmar", "ratio"),
        ),
    ),
    (
        "Benchmark (buy and hold)",
        (
            ("benchmark_total_return", "Total return", "pct"),
            ("benchmark_cagr", "CAGR", "pct"),
            ("benchmark_volatility", "Volatility (annualized)", "pct"),
            ("benchmark_sharpe", "Sharpe", "ratio"),
            ("benchmark_max_drawdown", "Max drawdown", "pct"),
            ("alpha", "Alpha (annualized)", "pct"),
            ("beta", "Beta", "ratio"),
            ("information_ratio", "Information ratio", "ratio"),
            ("tracking_error", "Tracking error", "pct"),
        ),
    ),
    (
        "Risk",
        (
            ("max_drawdown", "Max drawdown", "pct"),
            ("max_drawdown_days", "Longest drawdown", "days"),
            ("max_drawdown_bars", "Longest drawdown (bars)", "int"),
            ("exposure", "Exposure (bars in market)", "pct"),
        ),
    ),
    (
        "Daily returns",
        (
            ("best_day", "Best day", "pct"),
            ("worst_day", "Worst day", "pct"),
            ("var_95", "VaR 95 % (1 day, historical)", "pct"),
            ("cvar_95", "CVaR 95 % (1 day, historical)", "pct"),
            ("skew", "Skew", "ratio"),
            ("kurtosis", "Excess kurtosis", "ratio"),
        ),
    ),
    (
        "Trades",
        (
            ("n_trades", "Closed trades", "int"),
            ("win_rate", "Win rate", "pct"),
            ("profit_factor", "Profit factor", "ratio"),
            ("avg_trade", "Average trade (net)", "money"),
            ("avg_win", "Average win", "money"),
            ("avg_loss", "Average loss", "money"),
            ("best_trade", "Best trade", "money"),
            ("worst_trade", "Worst trade", "money"),
            ("expectancy", "Expectancy (net return per trade)", "pct"),
            ("sqn", "SQN (Van Tharp)", "ratio"),
            ("avg_holding_days", "Average holding time", "duration"),
        ),
    ),
    (
        "Sample",
        (
            ("n_bars", "Bars", "int"),
            ("n_days", "Daily returns", "int"),
            ("periods_per_year", "Periods per year", "int"),
            ("calendar", "Calendar", "text"),
        ),
    ),
)


#: The columns of the tracking table (:func:`btlab.backtest.tracking.tracking_metrics`, recorded in the run row's
#: ``metrics["tracking"]``), shown by the CLI and the report: (key, label, unit).
TRACKING_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tracking_error", "Tracking error (ann.)", "pct"),
    ("active_return", "Active return (ann.)", "pct"),
    ("correlation", "Correlation", "ratio4"),
    ("r2", "R²", "ratio4"),
    ("beta", "Beta", "ratio4"),
    ("turnover", "Turnover (a year)", "ratio"),
    ("commission", "Commission", "money"),
    ("cost_per_year", "Costs (a year)", "pct"),
    ("bars", "Bars", "int"),
)

#: what each row of the tracking table is
TRACKING_ROWS: dict[str, str] = {
    "mp_tracker": "matching pursuit basket",
    "equal_weight_k": "same names, equal weights",
    "top_k_corr": "K most correlated names, equal weights",
    "rl_tilt": "the basket tilted by the RL policy",
    "untilted": "the same basket without tilts",
}


#: unit of each metric key
METRIC_UNITS: dict[str, str] = {key: unit for _, rows in METRIC_SECTIONS for key, _, unit in rows}


def to_number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not numeric."""
    if value is None or isinstance(value, (bool, str)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def format_value(value: Any, unit: str, currency: str | None = None) -> str:
    """Format one metric value for display (plain text, not escaped).

    Args:
        value: the number (or text for ``unit="text"``); ``None``/NaN give "—", ±infinity "∞"/"−∞".
        unit: ``pct`` (a fraction: 0.1234 -> "12.34 %"), ``money`` ("1,234.56" plus ``currency``), ``ratio``
            ("1.23"; ``ratio4``: "0.9876"), ``int`` ("1,234"), ``days`` ("12.5 d"), ``duration`` (a time in days shown in the largest
            fitting unit: "3.2 d", "5.4 h", "12 min"), ``text`` (as is).
        currency: appended to money values (e.g. ``USDT``), if given.
    """
    if unit == "text":
        return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    v = to_number(value)
    if v is None or math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if unit == "pct":
        return f"{v * 100:,.2f} %"
    if unit == "money":
        return f"{v:,.2f} {currency}" if currency else f"{v:,.2f}"
    if unit == "int":
        return f"{int(round(v)):,d}"
    if unit == "ratio4":
        return f"{v:,.4f}"
    if unit == "days":
        return f"{v:,.1f} d"
    if unit == "duration":
        if abs(v) >= 1:
            return f"{v:,.1f} d"
        if abs(v) * 24 >= 1:
            return f"{v * 24:.1f} h"
        return f"{v * 1440:.0f} min"
    return f"{v:,.2f}"
