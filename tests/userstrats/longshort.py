"""A strategy that trades both directions, for metric tests (reversals make long and short trades)."""

import backtrader as bt


class LongShortCross(bt.Strategy):
    """Always in the market after the first cross: long 0.1 above the slow SMA crossover, short 0.1 below."""

    params = (("fast", 20), ("slow", 60))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def next(self):
        if self.cross > 0:
            self.order_target_size(target=0.1)
        elif self.cross < 0:
            self.order_target_size(target=-0.1)
