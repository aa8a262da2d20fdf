"""Backtrader data feeds over btlab bars.

:class:`BarFrameData` feeds a canonical bar frame (see :mod:`btlab.model.bar`) into Backtrader from plain Python
lists, which is several times cheaper per bar than ``bt.feeds.PandasData`` (that one does a pandas ``iloc`` per
field per bar). :class:`StoreData` reads the bars from a :class:`~btlab.store.Store` for any range first.

Time convention. btlab bars carry their OPEN time; Backtrader takes a bar's datetime as the moment the bar is
complete (its resampler, session ends and timers all assume so). The feeds therefore hand Backtrader each bar's
CLOSE time, ``open + timeframe`` (naive datetimes, UTC): inside a strategy, ``data.datetime.datetime(0)`` of a 1h
bar that opened at 00:00 reads 01:00. The feeds' session ends at 00:00 UTC (``sessionend``), so a UTC day is
the session: a bar closing at midnight is the last bar of the day before, and ``cerebro.resampledata(...,
timeframe=Days)`` builds UTC days. With that, Backtrader's resampler (bar2edge, adjbartime, rightedge: its
defaults) builds exactly the bars :func:`btlab.marketdata.bars.resample_bars` builds (which equal the
exchange's klines; like it, from the bars that hold trades only, see :func:`traded_bars`), stamped with their
close time and delivered in the step of the base bar that closes their window (or, after missing base bars, of
the first base bar past it): never before the window has closed.
Weekly bars (``1w``) are ISO weeks, Monday 00:00 UTC to the next Monday 00:00 (as
:func:`~btlab.marketdata.bars.resample_bars` and Binance cut them): :class:`ClosedWindowResampler` decides which week
a base bar belongs to from its close time, delivers a week in the step of the base bar closing exactly at its end
(a 24/7 venue's Sunday bar) or else in the step of the first base bar of a later week (an equity venue's week is
seen at the next week's first session: nothing tells a Friday from a week's last session before Monday 00:00), and
stamps it with its end (Monday 00:00 UTC).
:class:`ClosedWindowResampler` also drops the bar of a window the data ends inside (Backtrader would deliver it
after the last base bar as if it were complete). What btlab stores keeps bar OPEN times: the recorder converts
back (see :mod:`btlab.backtest.recorder`).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.compat import bt
from btlab.errors import InvalidArgumentError, NoDataError
from btlab.model.timeframe import Timeframe

_BT_UNITS = (  # (seconds per unit, Backtrader timeframe) from the largest unit down
    (604_800, bt.TimeFrame.Weeks),
    (86_400, bt.TimeFrame.Days),
    (60, bt.TimeFrame.Minutes),
    (1, bt.TimeFrame.Seconds),
)

#: Session end of btlab feeds: midnight UTC (a UTC day is the session; see the module docstring).
SESSION_END = _dt.time(0, 0)

_DAY_SECONDS = 86_400
_WEEK_SECONDS = 604_800
#: Monday 1970-01-05 00:00 UTC in ms since the epoch: ISO weeks start there (``Timeframe("1w").origin_ns``)
_WEEK_ORIGIN_MS = 4 * 86_400_000
_EPOCH_ORDINAL = 719163.0  # bt.date2num(1970-01-01)


def backtrader_timeframe(timeframe: Timeframe | str) -> tuple[int, int]:
    """Map a btlab timeframe to Backtrader's ``(timeframe, compression)``; e.g. ``1h`` -> (Minutes, 60)."""
    tf = Timeframe.parse(timeframe)
    for seconds, unit in _BT_UNITS:
        if tf.seconds % seconds == 0:
            return unit, tf.seconds // seconds
    raise AssertionError("unreachable: every timeframe is a whole number of seconds")


def check_resample(base: Timeframe | str, target: Timeframe | str) -> Timeframe:
    """Check that Backtrader's resampler can build ``target`` bars from ``base`` bars exactly; return ``target``.

    The target must be longer than the base, a whole multiple of it, and either divide one day (``5m``, ``1h``,
    ``4h``, ...: Backtrader cuts intraday windows from midnight), be exactly one day (``1d``: the UTC session) or
    exactly one week (``1w``: ISO weeks from Monday 00:00 UTC, see :class:`ClosedWindowResampler`). Multi-day and
    multi-week bars are refused: Backtrader counts them from the first bar seen, not from btlab's aligned windows.

    Raises:
        InvalidArgumentError: naming the timeframes and the rule broken.
    """
    src, tf = Timeframe.parse(base), Timeframe.parse(target)
    if tf.seconds <= src.seconds or tf.seconds % src.seconds:
        raise InvalidArgumentError(
            f"cannot resample {src} bars to {tf}: the resampled timeframe must be a whole multiple of {src} "
            f"and longer than it"
        )
    if _DAY_SECONDS % tf.seconds and tf.seconds not in (_DAY_SECONDS, _WEEK_SECONDS):
        raise InvalidArgumentError(
            f"cannot resample to {tf}: resampled timeframes must divide one day (e.g. 5m, 15m, 1h, 4h) or be 1d "
            "or 1w"
        )
    return tf


class ClosedWindowResampler(bt.resamplerfilter.Resampler):
    """Backtrader's :class:`~backtrader.resamplerfilter.Resampler` (what ``cerebro.resampledata`` adds to a btlab
    feed), made exact where Backtrader's own rules misplace a bar; complete, traded data is unaffected.

    * Intraday windows (timeframes dividing a day): which window a base bar falls in, and the time of a bar
      delivered after missing base bars, are computed from the close times (window end = the close time rounded up
      to the window length, from midnight UTC). Backtrader decides by time of day and stamps a bar delivered past a
      session end with that session end (a 4h bar holding only 00:00-01:00 came out stamped at the next midnight
      when the bars after it were missing until the next day), and can merge two windows a day apart.
    * Weeks (``Weeks``, compression 1): ISO weeks from Monday 00:00 UTC. Backtrader puts a base bar in the ISO week
      of its datetime, which for btlab feeds is the CLOSE time: a 24/7 venue's Sunday bar (closing Monday 00:00)
      landed in the next week; it also stamped the week with its last base bar's time. Here the week is the one
      whose end is the base bar's close time rounded up to a Monday 00:00 (as intraday windows); a week is
      delivered in the step of the base bar closing exactly at its end, else (no such bar: an exchange's week ends
      on a Friday session, or its last days are missing) in the step of the first base bar of a later week, as
      Backtrader does; it is stamped with its end. So a week's bar is never seen before its last base bar, and
      its values equal :func:`btlab.marketdata.bars.resample_bars` ``(..., "1w")``.
    * End of data: when the data ends inside a window (e.g. 1m bars up to 18:27 resampled to 1h, or daily bars
      ending on a Wednesday resampled to 1w), Backtrader delivers that window's bar after the last base bar as if
      it were complete. Here it is dropped: a strategy only sees bars whose window has closed (an exchange's week
      ending on its Friday session is dropped too when the data ends there: its window closes on Monday 00:00).

    Daily bars (``Days``) are Backtrader's own: the session ends at midnight UTC (:data:`SESSION_END`).

    Raises:
        InvalidArgumentError: weeks with a compression other than 1.
    """

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self._origin_ms = 0
        if self.p.timeframe == bt.TimeFrame.Weeks:
            if self.p.compression != 1:
                raise InvalidArgumentError(f"cannot resample to {self.p.compression} weeks: only 1w is exact")
            self._window_ms, self._origin_ms = _WEEK_SECONDS * 1000, _WEEK_ORIGIN_MS
            self.doadjusttime = True  # stamp the week with its end (Backtrader keeps its last base bar's time)
            return
        unit_ms = {bt.TimeFrame.Minutes: 60_000, bt.TimeFrame.Seconds: 1_000}.get(self.p.timeframe)
        self._window_ms = unit_ms * self.p.compression if unit_ms and self.subdays else None

    @staticmethod
    def _ms(num: float) -> int:
        return int(round((num - _EPOCH_ORDINAL) * 86_400_000.0))

    def _window_end_ms(self, num: float) -> int:
        ms = self._ms(num) - self._origin_ms
        return -(-ms // self._window_ms) * self._window_ms + self._origin_ms

    def _barover_weeks(self, data: Any) -> bool:
        return self._window_end_ms(data.datetime[0]) > self._window_end_ms(self.bar.datetime)

    def _dataonedge(self, data: Any) -> tuple[bool, bool]:
        if self.p.timeframe != bt.TimeFrame.Weeks:
            return super()._dataonedge(data)
        if self.bar.isopen() and self._barover_weeks(data):
            return False, True  # the open week ended before this bar: deliver it first, this bar opens the next
        return self._window_end_ms(data.datetime[0]) == self._ms(data.datetime[0]), True

    def _barover_subdays(self, data: Any) -> bool:
        if self._window_ms is None:
            return super()._barover_subdays(data)
        return self._window_end_ms(data.datetime[0]) > self._window_end_ms(self.bar.datetime)

    def _calcadjtime(self, greater: bool = False) -> float:
        if self._window_ms is None:
            return super()._calcadjtime(greater=greater)
        end = self._window_end_ms(self.bar.datetime)
        return bt.date2num(_dt.datetime(1970, 1, 1) + _dt.timedelta(milliseconds=end))

    def last(self, data: Any) -> bool:
        if self.bar.isopen():
            self.bar.bstart(maxdate=True)  # drop the incomplete window
        return False


class BarFrameData(bt.feed.DataBase):
    """A Backtrader feed over a bar frame already in memory (datetimes = bar CLOSE times; see module docstring).

    Params:
        bars: DataFrame with ``ts`` (datetime64[ns, UTC], bar open time), ``open, high, low, close, volume``.
        bars_timeframe: btlab timeframe of the bars (sets Backtrader's ``timeframe``/``compression`` and the
            close times ``ts + timeframe``). Required.

    Attributes:
        btlab_timeframe: the :class:`~btlab.model.timeframe.Timeframe` of the bars this feed delivers (for a feed
            passed to ``cerebro.resampledata``: set it to the resampled timeframe).
        btlab_symbol: the instrument's symbol (``name`` without an ``@timeframe`` suffix), for per-instrument
            records.
    """

    params: Any = (("bars", None), ("bars_timeframe", None), ("sessionend", SESSION_END))

    def __init__(self) -> None:
        super().__init__()
        if self.p.bars_timeframe is None:
            raise InvalidArgumentError("BarFrameData needs bars_timeframe=<timeframe of the bars>")
        self._bars_tf = Timeframe.parse(self.p.bars_timeframe)
        self.btlab_timeframe = self._bars_tf
        self.p.timeframe, self.p.compression = backtrader_timeframe(self._bars_tf)
        self._timeframe, self._compression = self.p.timeframe, self.p.compression
        self.btlab_symbol = str(self.p.name or "").split("@")[0]
        self._columns: tuple[list[float], ...] | None = None
        self._i = 0
        self._n = 0

    def resample(self, **kwargs: Any) -> None:
        """Used by ``cerebro.resampledata``: Backtrader's resampler without the incomplete last window."""
        self.addfilter(ClosedWindowResampler, **kwargs)

    def load_bars(self) -> pd.DataFrame:
        """The bar frame this feed will play (loaded on first call)."""
        if self.p.bars is None:
            raise NoDataError("BarFrameData needs bars=<DataFrame>")
        return self.p.bars

    def start(self) -> None:
        super().start()
        frame = self.load_bars()
        closes = pd.DatetimeIndex(frame["ts"]).tz_convert("UTC").tz_localize(None) + pd.Timedelta(self._bars_tf.nanos, "ns")
        dates = [bt.date2num(d) for d in closes.to_pydatetime()]  # Backtrader's own conversion (as PandasData)
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


def traded_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars that hold at least one trade: ``trades > 0``, or ``volume > 0`` where the trade count is unknown.

    Resampled feeds are built from these only, as :func:`btlab.marketdata.bars.resample_bars` does: a bar
    without trades (a flat or zero-volume bar, e.g. during an exchange halt) sets no price of the longer bar.
    """
    volume = bars["volume"].to_numpy(dtype="float64", na_value=np.nan)
    if "trades" in bars.columns:
        trades = bars["trades"].to_numpy(dtype="float64", na_value=np.nan)
        keep = np.where(np.isnan(trades), volume > 0, trades > 0)
    else:
        keep = volume > 0
    return bars if keep.all() else bars[keep].reset_index(drop=True)


def complete_windows(ts: pd.Series | pd.DatetimeIndex, base: Timeframe | str, target: Timeframe | str) -> int:
    """How many ``target`` bars Backtrader's resampler delivers from base bars opening at ``ts``.

    Every window holding a base bar counts, except the last one when the data ends inside it (dropped by
    :class:`ClosedWindowResampler`).
    """
    src, tf = Timeframe.parse(base), Timeframe.parse(target)
    ns = pd.DatetimeIndex(ts).as_unit("ns").asi8  # any unit (a frame read with pandas may hold µs)
    if ns.size == 0:
        return 0
    buckets = np.unique((ns - tf.origin_ns) // tf.nanos)
    ends_inside = (ns[-1] + src.nanos - tf.origin_ns) % tf.nanos != 0
    return int(buckets.size - ends_inside)


class StoreData(BarFrameData):
    """A Backtrader feed that reads one instrument's bars from a btlab store.

    Params:
        store: a :class:`~btlab.store.Store`.
        exchange, symbol: the instrument (ccxt id and unified symbol).
        bars_timeframe: ccxt timeframe string of the stored bars.
        start, end: UTC bounds, ``start <= ts < end`` (either may be None for the whole series).

    Raises:
        NoDataError: the store has no bars for that instrument, timeframe and range (raised by :meth:`load_bars`,
            i.e. at the latest when Cerebro starts the feed); the message lists what is stored for that instrument
            (see :func:`describe_stored`).
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
                    f"{_when(self.p.start, 'the beginning')} and {_when(self.p.end, 'the end')} in the store at "
                    f"{self.p.store.address}; "
                    + describe_stored(self.p.store, self.p.exchange, self.p.symbol, self.p.bars_timeframe)
                )
            self.p.bars = frame
        return self.p.bars


def _when(value: Any, default: str) -> str:
    if value is None:
        return default
    ts = pd.Timestamp(value)
    return f"{ts:%Y-%m-%d %H:%M}" if ts.tzinfo is None else f"{ts.tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"


def describe_stored(store: Any, exchange: str, symbol: str, timeframe: Timeframe | str) -> str:
    """What the store holds for an instrument, in words, for a "no bars" error (one line, no trailing period).

    Matches exchange and symbol case-insensitively (``btc/usdt`` finds ``BTC/USDT``) and lists every stored
    timeframe of the match with its span and bar count (``Store.bar_series``). When a stored timeframe divides
    ``timeframe`` (and none of the series is ``timeframe`` itself), it offers the command that builds it:
    ``btlab data resample --exchange E --symbol S --source-timeframe 1h --timeframe 4h`` (from the largest such
    timeframe). Ends with where to look or how to import.
    """
    tf = Timeframe.parse(timeframe)
    series = store.bar_series()
    if series.empty:
        return "the store holds no bars at all (see: btlab data import; btlab ingest history)"
    same = series[(series["exchange"].str.lower() == exchange.lower()) & (series["symbol"].str.lower() == symbol.lower())]
    if same.empty:
        on_exchange = sorted(series.loc[series["exchange"].str.lower() == exchange.lower(), "symbol"].unique())
        if on_exchange:
            shown = ", ".join(on_exchange[:10]) + (f" and {len(on_exchange) - 10} more" if len(on_exchange) > 10 else "")
            return f"stored for {exchange}: {shown} (see: btlab data coverage; btlab data import)"
        exchanges = ", ".join(sorted(series["exchange"].unique()))
        return f"nothing is stored for exchange {exchange}; stored exchanges: {exchanges} (see: btlab data coverage)"
    parts = []
    for row in same.itertuples(index=False):
        parts.append(f"{row.timeframe} {row.first:%Y-%m-%d %H:%M} .. {row.last:%Y-%m-%d %H:%M} UTC ({row.bars:,} bars)")
    e, s = same["exchange"].iloc[0], same["symbol"].iloc[0]
    text = f"stored for {e}:{s}: " + "; ".join(parts)
    if (e, s) != (exchange, symbol):
        text += f" (did you mean --exchange {e} --symbol {s}?)"
    stored = {}
    for value in same["timeframe"]:
        try:
            stored[value] = Timeframe.parse(value)
        except InvalidArgumentError:
            continue
    if tf.value not in stored:
        sources = [t for t in stored.values()
                   if t.seconds < tf.seconds and tf.nanos % t.nanos == 0 and (tf.origin_ns - t.origin_ns) % t.nanos == 0]
        if sources:
            src = max(sources)
            text += (f"; build {tf} bars from the stored {src} bars with: btlab data resample --exchange {e} "
                     f"--symbol {s} --source-timeframe {src} --timeframe {tf}")
    return text + " (see: btlab data coverage; btlab data import)"
