"""Backtrader data feeds over btlab bars.

:class:`BarFrameData` feeds a canonical bar frame (see :mod:`btlab.model.bar`) into Backtrader from plain Python
lists, which is several times cheaper per bar than ``bt.feeds.PandasData`` (that one does a pandas ``iloc`` per
field per bar). :class:`StoreData` reads the bars from a :class:`~btlab.store.Store` for any range first.

Backtrader datetimes are naive and taken as UTC; a bar's datetime is its OPEN time (btlab's convention).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from btlab.backtest.compat import bt
from btlab.errors import NoDataError
from btlab.model.timeframe import Timeframe

_BT_UNITS = (  # (seconds per unit, Backtrader timeframe) from the largest unit down
    (604_800, bt.TimeFrame.Weeks),
    (86_400, bt.TimeFrame.Days),
    (60, bt.TimeFrame.Minutes),
    (1, bt.TimeFrame.Seconds),
)


def backtrader_timeframe(timeframe: Timeframe | str) -> tuple[int, int]:
    """Map a btlab timeframe to Backtrader's ``(timeframe, compression)``; e.g. ``1h`` -> (Minutes, 60)."""
    tf = Timeframe.parse(timeframe)
    for seconds, unit in _BT_UNITS:
        if tf.seconds % seconds == 0:
            return unit, tf.seconds // seconds
    raise AssertionError("unreachable: every timeframe is a whole number of seconds")


class BarFrameData(bt.feed.DataBase):
    """A Backtrader feed over a bar frame already in memory.

    Params:
        bars: DataFrame with ``ts`` (datetime64[ns, UTC], bar open time), ``open, high, low, close, volume``.
        bars_timeframe: btlab timeframe of the bars (sets Backtrader's ``timeframe``/``compression``).
    """

    params: Any = (("bars", None), ("bars_timeframe", None))

    def __init__(self) -> None:
        super().__init__()
        if self.p.bars_timeframe is not None:
            self.p.timeframe, self.p.compression = backtrader_timeframe(self.p.bars_timeframe)
            self._timeframe, self._compression = self.p.timeframe, self.p.compression
        self._columns: tuple[list[float], ...] | None = None
        self._i = 0
        self._n = 0

    def load_bars(self) -> pd.DataFrame:
        """The bar frame this feed will play (loaded on first call)."""
        if self.p.bars is None:
            raise NoDataError("BarFrameData needs bars=<DataFrame>")
        return self.p.bars

    def start(self) -> None:
        super().start()
        frame = self.load_bars()
        stamps = pd.DatetimeIndex(frame["ts"]).tz_convert("UTC").tz_localize(None).to_pydatetime()
        dates = [bt.date2num(d) for d in stamps]  # Backtrader's own conversion: identical floats to PandasData
        self._columns = (
            dates,
            frame["open"].astype("float64").tolist(),
            frame["high"].astype("float64").tolist(),
            frame["low"].astype("float64").tolist(),
            frame["close"].astype("float64").tolist(),
            frame["volume"].astype("float64").tolist(),
        )
        self._lines = (self.lines.datetime, self.lines.open, self.lines.high, self.lines.low, self.lines.close,
                       self.lines.volume, self.lines.openinterest)
        self._i = 0
        self._n = len(dates)

    def _load(self) -> bool:
        i = self._i
        if i >= self._n:
            return False
        dt, o, h, l, c, v, oi = self._lines
        cols = self._columns
        dt[0] = cols[0][i]
        o[0] = cols[1][i]
        h[0] = cols[2][i]
        l[0] = cols[3][i]
        c[0] = cols[4][i]
        v[0] = cols[5][i]
        oi[0] = 0.0
        self._i = i + 1
        return True


class StoreData(BarFrameData):
    """A Backtrader feed that reads one instrument's bars from a btlab store.

    Params:
        store: a :class:`~btlab.store.Store`.
        exchange, symbol: the instrument (ccxt id and unified symbol).
        bars_timeframe: ccxt timeframe string of the stored bars.
        start, end: UTC bounds, ``start <= ts < end`` (either may be None for the whole series).

    Raises:
        NoDataError: the store has no bars for that instrument, timeframe and range (raised by :meth:`load_bars`,
            i.e. at the latest when Cerebro starts the feed).
    """

    params: Any = (("store", None), ("exchange", "binance"), ("symbol", None), ("start", None), ("end", None))

    def load_bars(self) -> pd.DataFrame:
        if self.p.bars is None:
            frame = self.p.store.read_bars(
                exchange=self.p.exchange, symbol=self.p.symbol, timeframe=self.p.bars_timeframe,
                start=self.p.start, end=self.p.end,
            )
            if frame.empty:
                raise NoDataError(
                    f"no {self.p.bars_timeframe} bars for {self.p.exchange}:{self.p.symbol} between "
                    f"{self.p.start or 'the beginning'} and {self.p.end or 'the end'} in the store at "
                    f"{self.p.store.address} (see: btlab data coverage; btlab data import)"
                )
            self.p.bars = frame
        return self.p.bars
