"""Simple moving-average crossover, long only."""

from __future__ import annotations

from typing import Any

from btlab.backtest.compat import bt


class SmaCross(bt.Strategy):
    """Go long when the fast SMA of closes crosses above the slow SMA; close the position when it crosses below.

    Params:
        fast: fast SMA length in bars (default 10).
        slow: slow SMA length in bars (default 30); must be greater than ``fast``.

    Orders are market orders, filled at the next bar's open; the position size comes from the run's sizer.
    """

    params: Any = (("fast", 10), ("slow", 30))

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Refuse periods that cannot cross: ``0 < fast < slow`` (ValueError; btlab checks it before a run)."""
        fast, slow = params.get("fast", 10), params.get("slow", 30)
        if not 0 < fast < slow:
            raise ValueError(f"needs 0 < fast < slow (SMA periods in bars), got fast={fast}, slow={slow}")

    def __init__(self) -> None:
        self.validate_params({"fast": self.p.fast, "slow": self.p.slow})  # also when used in plain Backtrader
        fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.crossover = bt.indicators.CrossOver(fast, slow)

    def next(self) -> None:
        if not self.position:
            if self.crossover > 0:
                self.buy()
        elif self.crossover < 0:
            self.close()
