"""Market data in the store: the ``ohlcv`` and ``ticks`` reads and writes of every :class:`~btlab.store.base.Store`.

:class:`MarketDataStore` is a mixin of :class:`~btlab.store.base.Store`, written on its primitives (``query``,
``upsert``, ``delete_rows`` and the ``_select`` helper), so both backends share every statement. Besides bars and
ticks themselves it answers what the ingest planners ask (:meth:`MarketDataStore.missing_ranges`,
:meth:`MarketDataStore.last_trade`) and what coverage reports need (spans, series, holes), so no module outside
``store/`` writes SQL. Only plain SELECT/WHERE/GROUP BY/ORDER BY and a ``lag`` window are used, which DuckDB and
QuestDB both document (https://questdb.com/docs/reference/sql/select/, .../function/window/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from btlab.model.timeframe import Timeframe
from btlab.store.rows import RowFilter, TimeLike, param_time, to_utc

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def bar_rows(bars: pd.DataFrame, *, exchange: str, symbol: str, timeframe: Timeframe | str,
             source: str) -> pd.DataFrame:
    """``ohlcv`` rows of validated bars (:func:`btlab.model.bar.validate_bars`): the bars with the series' identity
    and provenance columns added (a new frame; each added column holds one ``str`` object, referenced by every
    row, as ``object`` dtype: no copy of the text per row)."""
    import numpy as np
    import pandas as pd

    frame = bars.copy()
    n = len(frame)
    for col, value in (("exchange", exchange), ("symbol", symbol), ("timeframe", Timeframe.parse(timeframe).value),
                       ("source", source)):
        cells = np.empty(n, dtype=object)
        cells.fill(value)
        frame[col] = pd.Series(cells, index=frame.index, dtype=object)
    return frame



def bars_from_columns(columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The :meth:`MarketDataStore.read_bars` frame from the bar columns of one series as numpy arrays (DuckDB's
    ``fetchnumpy``: ``ts`` as naive ``datetime64`` in UTC, nulls as masked arrays), in any row order.

    Returns: :data:`btlab.model.bar.BAR_COLUMNS` sorted by ``ts`` (stable; ``ts`` is unique within a series, so
    this is ``ORDER BY ts``) on a fresh ``RangeIndex``: ``ts`` ``datetime64[ns, UTC]``, ``trades`` ``Int64`` (nulls
    ``<NA>``), the prices, ``volume`` and ``vwap`` float64 (nulls NaN) -- the frame ``ORDER BY ts`` into pandas
    gives, without DuckDB's sort and its pandas conversion: 58k bars in about 9 ms instead of 14 ms (fetch and frame
    on an open connection, bench_vector.py).
    """
    import numpy as np
    import pandas as pd

    from btlab.model.bar import BAR_COLUMNS

    ts = np.asarray(columns["ts"]).astype("datetime64[ns]")
    order = None if len(ts) < 2 or bool((ts[1:] > ts[:-1]).all()) else np.argsort(ts, kind="stable")
    floats = [c for c in BAR_COLUMNS if c not in ("ts", "trades")]
    block = np.empty((len(floats), len(ts)))  # one C-contiguous row per column: pandas' own block layout, no copy

    def take(name: str) -> tuple[np.ndarray, np.ndarray | None]:
        raw = columns[name]
        data = np.ma.getdata(raw)
        mask = np.ma.getmask(raw)
        mask = None if mask is np.ma.nomask or not mask.any() else np.asarray(mask)
        if order is not None:
            data, mask = data[order], None if mask is None else mask[order]
        return data, mask

    for row, name in zip(block, floats, strict=True):
        data, mask = take(name)
        row[:] = data
        if mask is not None:
            row[mask] = np.nan
    frame = pd.DataFrame(block.T, columns=floats, copy=False)
    data, mask = take("trades")
    trades = pd.arrays.IntegerArray(data.astype(np.int64), np.zeros(len(ts), dtype=bool) if mask is None else mask)
    frame.insert(0, "ts", pd.DatetimeIndex(ts if order is None else ts[order]).tz_localize("UTC"))
    frame.insert(list(BAR_COLUMNS).index("trades"), "trades", trades)
    return frame


class BarSpan(NamedTuple):
    """How many bars a selection holds and the open times (UTC) of its first and last bar (None when empty)."""

    bars: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


class TickSpan(NamedTuple):
    """How many ticks a selection holds and the times (UTC) of its first and last trade (None when empty)."""

    ticks: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None



class LastTrade(NamedTuple):
    """The stored ticks of one instrument in a range: how many, the first and last trade time (UTC), and the id of
    the last trade (the largest id at the last time: numerically when every id there is a number, else as text)."""

    ticks: int
    first: pd.Timestamp
    last: pd.Timestamp
    trade_id: str


class MarketDataStore:
    """The market-data methods of :class:`~btlab.store.base.Store` (a mixin; see the module docs)."""

    if TYPE_CHECKING:
        def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame: ...
        def upsert(self, table: str, frame: pd.DataFrame) -> int: ...
        def delete_rows(self, filters: Sequence[RowFilter]) -> list[int]: ...
        def _select(self, table: str, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame: ...

    def write_bars(
        self, bars: pd.DataFrame, *, exchange: str, symbol: str, timeframe: Timeframe | str, source: str
    ) -> int:
        """Validate and upsert bars for one instrument and timeframe.

        Args:
            bars: bar frame (see :mod:`btlab.model.bar`), bar open times in UTC.
            exchange, symbol, timeframe: the series' identity (ccxt id, unified symbol, ccxt timeframe).
            source: provenance recorded with each bar (e.g. the file name, ``ccxt``).

        Returns: rows written.

        Raises:
            DataValidationError: the batch is invalid; nothing was written.
        """
        from btlab.model.bar import validate_bars

        tf = Timeframe.parse(timeframe)
        frame = bar_rows(validate_bars(bars, source, tf), exchange=exchange, symbol=symbol, timeframe=tf,
                         source=source)
        return self.upsert("ohlcv", frame)

    def read_bars(
        self, *, exchange: str, symbol: str, timeframe: Timeframe | str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DataFrame:
        """Bars with ``start <= ts < end`` (either bound optional), sorted by ``ts``.

        Returns: a frame with :data:`btlab.model.bar.BAR_COLUMNS` (``ts`` as ``datetime64[ns, UTC]``); empty if none.
        """
        sql = "SELECT ts, open, high, low, close, volume, trades, vwap FROM ohlcv WHERE exchange = ? AND symbol = ? AND timeframe = ?"
        params: list[Any] = [exchange, symbol, Timeframe.parse(timeframe).value]
        if (lo := to_utc(start)) is not None:
            sql += " AND ts >= ?"
            params.append(param_time(lo))
        if (hi := to_utc(end)) is not None:
            sql += " AND ts < ?"
            params.append(param_time(hi))
        return self._read_bar_rows(sql, params)

    def _read_bar_rows(self, sql: str, params: Sequence[Any]) -> pd.DataFrame:
        """The frame of :meth:`read_bars` from its ``SELECT`` (``sql``: the bar columns of one series, without an
        ``ORDER BY``): a backend hook. This one orders by ``ts`` in SQL and converts the ``query`` frame; DuckDB
        fetches numpy arrays instead (:func:`bars_from_columns`)."""
        import pandas as pd

        from btlab.model.bar import BAR_COLUMNS

        frame = self._select("ohlcv", sql + " ORDER BY ts", params)
        frame["trades"] = pd.to_numeric(frame["trades"]).astype("Int64")
        for col in ("open", "high", "low", "close", "volume", "vwap"):
            frame[col] = frame[col].astype("float64")
        return frame[list(BAR_COLUMNS)].reset_index(drop=True)

    def bar_series(self) -> pd.DataFrame:
        """One row per stored series: ``exchange, symbol, timeframe, first, last, bars``, sorted by identity."""
        import pandas as pd

        frame = self.query(
            "SELECT exchange, symbol, timeframe, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS bars "
            "FROM ohlcv GROUP BY exchange, symbol, timeframe ORDER BY exchange, symbol, timeframe"
        )
        frame = frame.rename(columns={"first_ts": "first", "last_ts": "last"})  # first/last are QuestDB functions
        for col in ("first", "last"):
            frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
        frame["bars"] = frame["bars"].astype("int64")
        return frame

    def bar_span(
        self, *, exchange: str, symbol: str, timeframe: Timeframe | str, start: TimeLike = None, end: TimeLike = None
    ) -> BarSpan:
        """Count the bars of one series with ``start <= ts < end`` (either bound optional), with the first and last."""
        return BarSpan(*self._span(RowFilter(
            "ohlcv", {"exchange": exchange, "symbol": symbol, "timeframe": Timeframe.parse(timeframe).value},
            start, end,
        )))

    def missing_ranges(
        self, *, exchange: str, symbol: str, timeframe: Timeframe | str, start: TimeLike, end: TimeLike
    ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """What a request for the bars of one series opening in ``[start, end)`` still needs from its source.

        The bars stored in the request run from ``first`` to ``last`` (one ``count/min/max`` query): the answer
        is ``[start, first)`` and ``[last + timeframe, end)``, those that are not empty, oldest first; the whole
        ``[start, end)`` when nothing is stored in it; ``[]`` when ``end <= start``. Holes BETWEEN ``first`` and
        ``last`` are not in it: an ingest that grows the stored range from its edges never leaves one, and any
        other is a gap of the source (see :meth:`bar_holes`). Like nautilus_trader's
        ``get_missing_intervals_for_request``, but edges only.

        Returns: half-open ``(from, to)`` pairs of bar open times (``pandas.Timestamp``, UTC).
        """
        import pandas as pd

        lo, hi = to_utc(start), to_utc(end)
        if lo is None or hi is None:
            raise ValueError("missing_ranges needs both start and end")
        if hi <= lo:
            return []
        span = self.bar_span(exchange=exchange, symbol=symbol, timeframe=timeframe, start=lo, end=hi)
        if span.bars == 0:
            return [(lo, hi)]
        assert span.first is not None and span.last is not None
        after = span.last + pd.Timedelta(Timeframe.parse(timeframe).nanos, "ns")
        return [(a, b) for a, b in ((lo, span.first), (after, hi)) if a < b]

    def last_trade(self, *, exchange: str, symbol: str, start: TimeLike = None, end: TimeLike = None
                   ) -> LastTrade | None:
        """The stored ticks of one instrument with ``start <= ts < end`` and the last of them (where a trade
        ingest resumes), or None when there are none.

        Two queries: the span (``count/min/max``), then the ids at the last time. The last trade is the one with
        the largest id at that time: compared as numbers when every id there is one (exchanges number trades
        consecutively), else as text.
        """
        span = self.tick_span(exchange=exchange, symbol=symbol, start=start, end=end)
        if span.ticks == 0:
            return None
        assert span.first is not None and span.last is not None
        import pandas as pd

        at_last = self.trade_ids(exchange=exchange, symbol=symbol, start=span.last,
                                 end=span.last + pd.Timedelta(1, "us"))  # stored times are microseconds
        ids = at_last.astype(str).tolist()
        nums = [n for n in map(_int_or_none, ids) if n is not None]
        last_id = str(max(nums)) if nums and len(nums) == len(ids) else max(ids)
        return LastTrade(span.ticks, span.first, span.last, last_id)

    def _span(self, rows: RowFilter) -> tuple[int, pd.Timestamp | None, pd.Timestamp | None]:
        import pandas as pd

        where, params = rows.where()
        frame = self.query(f"SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi FROM {rows.table} WHERE {where}",
                           params)
        n = int(frame["n"].iloc[0]) if len(frame) else 0
        if n == 0:
            return 0, None, None
        lo, hi = (pd.Timestamp(frame[c].iloc[0]) for c in ("lo", "hi"))
        return n, *(t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC") for t in (lo, hi))

    def bar_times(
        self, *, exchange: str, symbol: str, timeframe: Timeframe | str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DatetimeIndex:
        """Open times of the stored bars of one series with ``start <= ts < end``: sorted ``DatetimeIndex[ns, UTC]``."""
        import pandas as pd

        where, params = RowFilter(
            "ohlcv", {"exchange": exchange, "symbol": symbol, "timeframe": Timeframe.parse(timeframe).value},
            start, end,
        ).where()
        ts = self._select("ohlcv", f"SELECT ts FROM ohlcv WHERE {where} ORDER BY ts", params)["ts"]
        return pd.DatetimeIndex(ts).as_unit("ns")

    def bar_holes(self, timeframe: Timeframe | str, *, exchange: str | None = None,
                  symbol: str | None = None) -> pd.DataFrame:
        """Consecutive stored bars more than one ``timeframe`` apart, per series of that timeframe (optionally one
        exchange and/or symbol), computed by the database (a window function) without reading every bar.

        Returns: ``exchange, symbol, prev_ts, ts`` (open times of the bars either side of each hole,
        ``datetime64[ns, UTC]``), sorted by exchange, symbol, ts.
        """
        tf = Timeframe.parse(timeframe)
        filters, params = "", []
        for col, value in (("exchange", exchange), ("symbol", symbol)):
            if value is not None:
                filters += f" AND {col} = ?"
                params.append(value)
        frame = self._select("ohlcv", (
            "SELECT exchange, symbol, prev_ts, ts FROM ("
            "SELECT exchange, symbol, ts, lag(ts) OVER (PARTITION BY exchange, symbol ORDER BY ts) AS prev_ts "
            f"FROM ohlcv WHERE timeframe = ?{filters}) g "
            "WHERE prev_ts IS NOT NULL AND datediff('s', prev_ts, ts) > ? "
            "ORDER BY exchange, symbol, ts"
        ), [tf.value, *params, tf.seconds])
        import pandas as pd

        frame["prev_ts"] = pd.to_datetime(frame["prev_ts"], utc=True).astype("datetime64[ns, UTC]")
        return frame

    def tick_span(self, *, exchange: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> TickSpan:
        """Count the ticks of one instrument with ``start <= ts < end`` (either bound optional), with the first and
        last trade time."""
        return TickSpan(*self._span(RowFilter("ticks", {"exchange": exchange, "symbol": symbol}, start, end)))

    def tick_series(self, *, exchange: str | None = None, symbol: str | None = None) -> pd.DataFrame:
        """One row per instrument with stored ticks (optionally filtered): ``exchange, symbol, first, last,
        ticks`` (times ``datetime64[ns, UTC]``, ticks int64), sorted by identity."""
        import pandas as pd

        equals = {k: v for k, v in (("exchange", exchange), ("symbol", symbol)) if v is not None}
        where, params = RowFilter("ticks", equals).where() if equals else ("", [])
        frame = self.query(
            "SELECT exchange, symbol, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS ticks FROM ticks"
            f"{' WHERE ' + where if where else ''} GROUP BY exchange, symbol ORDER BY exchange, symbol",
            params,
        )
        frame = frame.rename(columns={"first_ts": "first", "last_ts": "last"})  # first/last are QuestDB functions
        for col in ("first", "last"):
            frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
        frame["ticks"] = frame["ticks"].astype("int64")
        return frame

    def read_ticks(self, *, exchange: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> pd.DataFrame:
        """Ticks of one instrument with ``start <= ts < end`` (either bound optional), sorted by ``ts``.

        Returns: ``ts`` (``datetime64[ns, UTC]``), ``trade_id`` (text as stored), ``price``, ``amount`` (float64).
        """
        where, params = RowFilter("ticks", {"exchange": exchange, "symbol": symbol}, start, end).where()
        frame = self._select("ticks", f"SELECT ts, trade_id, price, amount FROM ticks WHERE {where} ORDER BY ts",
                             params)
        for col in ("price", "amount"):
            frame[col] = frame[col].astype("float64")
        return frame.reset_index(drop=True)

    def trade_ids(self, *, exchange: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> pd.Series:
        """Trade ids (text as stored, in no particular order) of one instrument's ticks with ``start <= ts < end``."""
        where, params = RowFilter("ticks", {"exchange": exchange, "symbol": symbol}, start, end).where()
        return self.query(f"SELECT trade_id FROM ticks WHERE {where}", params)["trade_id"]

    def delete_bars(
        self, *, exchange: str, symbol: str, timeframe: Timeframe | str, start: TimeLike = None, end: TimeLike = None
    ) -> int:
        """Delete the bars of one series with ``start <= ts < end`` (no bounds: the whole series).

        Returns: bars deleted (0 if there were none).

        Raises:
            InvalidArgumentError: ``timeframe`` is not a valid ccxt timeframe.
        """
        rows = RowFilter(
            "ohlcv", {"exchange": exchange, "symbol": symbol, "timeframe": Timeframe.parse(timeframe).value},
            start, end,
        )
        return self.delete_rows([rows])[0]



def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
