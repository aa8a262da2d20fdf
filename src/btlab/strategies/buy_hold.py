"""Buy and hold: the baseline every strategy should beat."""

from __future__ import annotations

from typing import Any

from btlab.backtest.compat import bt


class BuyAndHold(bt.Strategy):
    """Buy on the first bar (filled at the second bar's open) and hold to the end. No parameters."""

    params: Any = ()

    def __init__(self) -> None:
        self._ordered = False

    def next(self) -> None:
        if not self._ordered:
            self.buy()
            self._ordered = True
