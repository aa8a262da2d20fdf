"""A user's own strategy, outside btlab, for tests of ``--strategy package.module:Class``."""

import backtrader as bt


class Momentum(bt.Strategy):
    """Long while the close is above its close ``lookback`` bars ago."""

    params = (("lookback", 24), ("threshold", 0.0))

    def __init__(self):
        self.mom = bt.ind.Momentum(self.data.close, period=self.p.lookback)

    def next(self):
        if not self.position and self.mom[0] > self.p.threshold:
            self.buy()
        elif self.position and self.mom[0] < -self.p.threshold:
            self.close()
