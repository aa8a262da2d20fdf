"""What the store holds: per series the first and last bar, the count, and the gaps; per instrument the ticks.

Bars (:func:`coverage`): one row per ``exchange/symbol/timeframe`` of ``ohlcv``. Gaps are runs of missing bar
slots between two stored bars, exactly as :func:`btlab.marketdata.quality.gaps.find_gaps` defines them under the series'
venue calendar (nothing before the first or after the last bar counts). The calendar comes from the exchange name
(:func:`btlab.model.venue.resolve_venue`: ccxt ids are 24/7; equity venues such as ``XNYS``/``nyse``/``nasdaq``
count only their regular-session slots, so nights, weekends and holidays are not missing), or from ``calendar=``
for every series; a series whose exchange btlab does not know is counted as 24/7 and its ``calendar`` column says
``unknown (24/7)``. Series of exchange venues are read (their open times only) and scanned with
:func:`~btlab.marketdata.quality.gaps.find_gaps`, since their slots depend on the calendar. Gaps of 24/7 series are found
IN THE STORE with one window-function query per timeframe, which returns only the gaps, so millions of bars never
travel to Python::

    SELECT exchange, symbol, prev_ts, ts FROM (
        SELECT exchange, symbol, ts, lag(ts) OVER (PARTITION BY exchange, symbol ORDER BY ts) AS prev_ts
        FROM ohlcv WHERE timeframe = ?) g
    WHERE prev_ts IS NOT NULL AND datediff('s', prev_ts, ts) > ?      -- ? = the timeframe in seconds

Both backends document every piece of it: ``lag(value) OVER (PARTITION BY .. ORDER BY ..)`` (DuckDB window
functions; QuestDB https://questdb.com/docs/reference/function/window/#lag, which has a timestamp variant) and
``datediff('s', a, b)`` (DuckDB: seconds between, ``'s'`` an alias of ``second``; QuestDB: the absolute number of
seconds, https://questdb.com/docs/reference/function/date-time/#datediff). Bar open times are aligned to their
timeframe (validated on write), so both give the same whole number. If a backend rejects the query (an older
QuestDB without ``lag`` on timestamps), ``method="auto"`` falls back to reading each series' ``ts`` column alone
and running :func:`~btlab.marketdata.quality.gaps.find_gaps` (``method="scan"`` forces that; ``"sql"`` forbids the
fallback). The result's ``attrs["method"]`` says which one ran.

Ticks (:func:`tick_coverage`): one row per ``exchange/symbol`` of ``ticks`` with first/last trade time and count
(one GROUP BY), and, where every trade id is a decimal integer (Binance and most exchanges number their trades),
the missing ids: the series' ids are read in time windows of at most ``chunk_rows`` ticks (constant memory),
sorted within each window and compared with the last id of the previous window. This assumes ids increase with
time, as exchanges assign them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from btlab.errors import BtlabError, InvalidArgumentError
from btlab.marketdata.quality.gaps import GAP_COLUMNS, find_gaps
from btlab.model.sessions import SESSIONS, check_session
from btlab.model.tick import trade_ids_as_int
from btlab.model.timeframe import Timeframe
from btlab.model.venue import TWENTY_FOUR_SEVEN, resolve_calendar, resolve_venue

if TYPE_CHECKING:
    from btlab.store.base import Store

__all__ = ["COVERAGE_COLUMNS", "ID_GAP_COLUMNS", "TICK_COVERAGE_COLUMNS", "coverage", "tick_coverage"]

log = logging.getLogger(__name__)

#: Columns of :func:`coverage` (``gaps`` holds a frame with :data:`btlab.marketdata.quality.gaps.GAP_COLUMNS`).
COVERAGE_COLUMNS: tuple[str, ...] = (
    "exchange", "symbol", "timeframe", "first", "last", "bars", "missing_bars", "n_gaps", "gaps", "calendar",
)
#: Columns of :func:`tick_coverage` (``id_gaps`` holds a frame with :data:`ID_GAP_COLUMNS`).
TICK_COVERAGE_COLUMNS: tuple[str, ...] = (
    "exchange", "symbol", "first", "last", "ticks", "numeric_ids", "first_id", "last_id", "missing_ids",
    "duplicate_ids", "id_gaps",
)
ID_GAP_COLUMNS: tuple[str, ...] = ("id_start", "id_end", "missing_ids")

def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _empty_gaps() -> pd.DataFrame:
    return find_gaps(pd.DatetimeIndex([], tz="UTC"), "1s")


# ---------------------------------------------------------------------------------------------------------------
# bars
# ---------------------------------------------------------------------------------------------------------------
def coverage(
    store: Store,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    method: Literal["auto", "sql", "scan"] = "auto",
    calendar: str | None = None,
    session: str | None = None,
) -> pd.DataFrame:
    """Per ``exchange/symbol/timeframe`` of the store's bars: first, last, count, missing bars and the gap list.

    Args:
        store: any :class:`~btlab.store.base.Store`.
        exchange, symbol, timeframe: optional filters.
        method: ``auto`` (SQL window query, falling back to a per-series scan if the backend rejects it), ``sql``
            or ``scan`` (see the module docstring); series of exchange venues are always scanned.
        calendar: count every series under this calendar (``"24/7"``, ``"XNYS"``, ...) instead of its venue's.
        session: for series of exchange venues, the session whose slots count: ``regular`` (None: the default) or
            ``extended``; ignored for 24/7 series.

    Returns:
        A frame with :data:`COVERAGE_COLUMNS`, sorted by identity: ``first``/``last`` (``datetime64[ns, UTC]``, bar
        open times), ``bars`` (int64), ``missing_bars`` (int64: missing slots between first and last), ``n_gaps``
        (int64) and ``gaps`` -- per row a frame ``gap_start, gap_end, missing_bars`` exactly as
        :func:`~btlab.marketdata.quality.gaps.find_gaps` returns it for the series' open times. A series whose stored
        timeframe is not a fixed-length ccxt timeframe gets ``<NA>`` counts and ``gaps`` None. ``calendar``
        (str): the calendar the gaps were counted with (``"24/7"``, ``"XNYS"``, ``"unknown (24/7)"``).
        ``attrs["method"]`` is ``"sql"`` or ``"scan"`` (how the 24/7 series were searched).

    Raises:
        InvalidArgumentError: unknown ``method``, ``calendar`` or ``session``.
        Any store error with ``method="sql"`` (with ``auto`` only connection errors, :class:`BtlabError`).
    """
    if method not in ("auto", "sql", "scan"):
        raise InvalidArgumentError(f"method must be auto, sql or scan, got {method!r}")
    if calendar is not None:
        resolve_calendar(calendar)
    if session is not None and session not in SESSIONS:
        check_session(session, "XNYS")  # raises: unknown session name
    series = _selected_series(store, exchange, symbol, timeframe)
    calendars = {ex: _calendar_of(ex, calendar) for ex in series["exchange"].unique()}
    timed = series["exchange"].map(lambda ex: calendars[ex][1] == TWENTY_FOUR_SEVEN).astype(bool)
    sessions, series = series[~timed].reset_index(drop=True), series[timed].reset_index(drop=True)
    gaps, used = _gaps_24_7(store, series, exchange, symbol, method)
    gaps.update(_gaps_scan(store, sessions, calendars, session))
    series = pd.concat([series, sessions]) if len(sessions) else series
    series = series.sort_values(["exchange", "symbol", "timeframe"], kind="stable").reset_index(drop=True)
    out = _coverage_frame(series, gaps, calendars)
    out.attrs["method"] = used
    return out


def _selected_series(store: Store, exchange: str | None, symbol: str | None, timeframe: str | None
                     ) -> pd.DataFrame:
    """Step 1 of :func:`coverage`: the store's bar series (``bar_series``) passing the filters."""
    series = store.bar_series()
    if exchange is not None:
        series = series[series["exchange"] == exchange]
    if symbol is not None:
        series = series[series["symbol"] == symbol]
    if timeframe is not None:
        series = series[series["timeframe"] == Timeframe.parse(timeframe).value]
    return series.reset_index(drop=True)


def _gaps_24_7(store: Store, series: pd.DataFrame, exchange: str | None, symbol: str | None, method: str
               ) -> tuple[dict[tuple[str, str, str], pd.DataFrame], str]:
    """Step 2 of :func:`coverage` for 24/7 series: ``(gaps per series, "sql" or "scan")``, by the store's window
    query unless ``method`` is ``scan`` or (with ``auto``) the backend rejects it."""
    if method in ("auto", "sql"):
        try:
            return _gaps_sql(store, series, exchange, symbol), "sql"
        except BtlabError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend without the window query: scan instead
            if method == "sql":
                raise
            log.info("coverage: the store rejected the window-function query (%s); scanning series instead",
                     str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return _gaps_scan(store, series), "scan"


def _coverage_frame(series: pd.DataFrame, gaps: dict[tuple[str, str, str], pd.DataFrame],
                    calendars: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Step 3 of :func:`coverage`: one :data:`COVERAGE_COLUMNS` row per series, typed as :func:`coverage` says."""
    rows = []
    for rec in series.itertuples(index=False):
        key = (rec.exchange, rec.symbol, rec.timeframe)
        label = calendars[rec.exchange][0]
        if _timeframe(rec.timeframe) is None:
            rows.append((*key, rec.first, rec.last, int(rec.bars), pd.NA, pd.NA, None, label))
            continue
        frame = gaps.get(key)
        if frame is None:
            frame = _empty_gaps()
        rows.append((*key, rec.first, rec.last, int(rec.bars), int(frame["missing_bars"].sum()), len(frame), frame,
                     label))
    out = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    for col in ("first", "last"):
        out[col] = _utc(out[col]) if len(out) else pd.Series([], dtype="datetime64[ns, UTC]")
    out["bars"] = out["bars"].astype("int64")
    for col in ("missing_bars", "n_gaps"):
        out[col] = pd.array(out[col].tolist(), dtype="Int64")
    return out


def _calendar_of(exchange: str, calendar: str | None) -> tuple[str, str]:
    """``(label, calendar code)`` of a stored exchange name; unknown names count as 24/7, labelled so."""
    try:
        return (code := resolve_venue(exchange, calendar).calendar), code
    except InvalidArgumentError:
        return "unknown (24/7)", TWENTY_FOUR_SEVEN


def _timeframe(text: str) -> Timeframe | None:
    try:
        return Timeframe.parse(text)
    except ValueError:
        return None


def _gaps_sql(store: Store, series: pd.DataFrame, exchange: str | None,
              symbol: str | None) -> dict[tuple[str, str, str], pd.DataFrame]:
    out: dict[tuple[str, str, str], pd.DataFrame] = {}
    for tf_text in sorted(series["timeframe"].unique()):
        tf = _timeframe(tf_text)
        if tf is None:
            continue
        rows = store.bar_holes(tf, exchange=exchange, symbol=symbol)
        if rows.empty:
            continue
        prev = pd.DatetimeIndex(_utc(rows["prev_ts"])).as_unit("ns").asi8
        cur = pd.DatetimeIndex(_utc(rows["ts"])).as_unit("ns").asi8
        missing = (-(-(cur - prev) // tf.nanos) - 1).astype("int64")  # as find_gaps: ceil(step / tf) - 1
        start = prev + tf.nanos
        end = prev + missing * tf.nanos
        frame = pd.DataFrame({
            "exchange": rows["exchange"].astype(object).to_numpy(),
            "symbol": rows["symbol"].astype(object).to_numpy(),
            "gap_start": pd.DatetimeIndex(start.view("datetime64[ns]")).tz_localize("UTC"),
            "gap_end": pd.DatetimeIndex(end.view("datetime64[ns]")).tz_localize("UTC"),
            "missing_bars": missing,
        })
        frame = frame[frame["missing_bars"] > 0]
        for (ex, sym), part in frame.groupby(["exchange", "symbol"], sort=False):
            gaps = part[list(GAP_COLUMNS)].sort_values("gap_start").reset_index(drop=True)
            out[(str(ex), str(sym), tf.value)] = gaps
    return out


def _gaps_scan(store: Store, series: pd.DataFrame, calendars: dict[str, tuple[str, str]] | None = None,
               session: str | None = None) -> dict[tuple[str, str, str], pd.DataFrame]:
    out: dict[tuple[str, str, str], pd.DataFrame] = {}
    for rec in series.itertuples(index=False):
        tf = _timeframe(rec.timeframe)
        if tf is None:
            continue
        ts = store.bar_times(exchange=rec.exchange, symbol=rec.symbol, timeframe=tf).to_series()
        code = TWENTY_FOUR_SEVEN if calendars is None else calendars[rec.exchange][1]
        if code == TWENTY_FOUR_SEVEN:
            out[(rec.exchange, rec.symbol, rec.timeframe)] = find_gaps(_utc(ts), tf)
        else:
            out[(rec.exchange, rec.symbol, rec.timeframe)] = find_gaps(_utc(ts), tf, calendar=code, session=session)
    return out


# ---------------------------------------------------------------------------------------------------------------
# ticks
# ---------------------------------------------------------------------------------------------------------------
def tick_coverage(
    store: Store,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    id_gaps: bool = True,
    chunk_rows: int = 2_000_000,
) -> pd.DataFrame:
    """Per ``exchange/symbol`` of the store's ticks: first/last trade time, count, and trade-id gaps.

    Args:
        store: any :class:`~btlab.store.base.Store`.
        exchange, symbol: optional filters.
        id_gaps: look for missing trade ids (reads the ids in windows of ``chunk_rows``); False = counts only.
        chunk_rows: most ids held in memory at once.

    Returns:
        A frame with :data:`TICK_COVERAGE_COLUMNS`, sorted by identity: ``first``/``last``
        (``datetime64[ns, UTC]``), ``ticks`` (int64); ``numeric_ids`` (True when every id is a decimal integer;
        <NA> if not checked), ``first_id``/``last_id`` (smallest/largest id), ``missing_ids`` (ids absent between
        them), ``duplicate_ids`` (ticks repeating an id already seen: same trade stored with two times), all
        nullable Int64 (<NA> when the ids are not numeric or not checked), and ``id_gaps`` -- a frame
        ``id_start, id_end, missing_ids`` (first and last missing id, inclusive) or None.
    """
    if chunk_rows < 1:
        raise InvalidArgumentError(f"chunk_rows must be >= 1, got {chunk_rows}")
    summary = store.tick_series(exchange=exchange, symbol=symbol)
    rows = []
    for rec in summary.itertuples(index=False):
        first, last = rec.first, rec.last
        info: tuple[object, ...] = (pd.NA, pd.NA, pd.NA, pd.NA, pd.NA, None)
        if id_gaps:
            info = _id_gaps(store, str(rec.exchange), str(rec.symbol), first, last, int(rec.ticks), chunk_rows)
        rows.append((rec.exchange, rec.symbol, first, last, int(rec.ticks), *info))
    out = pd.DataFrame(rows, columns=list(TICK_COVERAGE_COLUMNS))
    for col in ("first", "last"):
        out[col] = _utc(out[col]) if len(out) else pd.Series([], dtype="datetime64[ns, UTC]")
    out["ticks"] = out["ticks"].astype("int64")
    out["numeric_ids"] = pd.array(out["numeric_ids"].tolist(), dtype="boolean")
    for col in ("first_id", "last_id", "missing_ids", "duplicate_ids"):
        out[col] = pd.array(out[col].tolist(), dtype="Int64")
    return out


def _id_gaps(store: Store, exchange: str, symbol: str, first: pd.Timestamp, last: pd.Timestamp, count: int,
             chunk_rows: int) -> tuple[object, ...]:
    windows = max(1, -(-count // chunk_rows))
    lo_ns, hi_ns = first.value, last.value + 1_000  # the last window includes the last tick (us precision)
    edges = np.linspace(lo_ns, hi_ns, windows + 1).astype(np.int64)
    edges[0], edges[-1] = lo_ns, hi_ns
    prev: int | None = None
    smallest: int | None = None
    duplicates = 0
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        ids = store.trade_ids(exchange=exchange, symbol=symbol, start=pd.Timestamp(int(a), tz="UTC"),
                              end=pd.Timestamp(int(b), tz="UTC"))
        if ids.empty:
            continue
        values = trade_ids_as_int(ids.astype(object).where(ids.notna(), None))
        if values is None:
            return (False, pd.NA, pd.NA, pd.NA, pd.NA, None)
        values = np.sort(values)
        smallest = int(values[0]) if smallest is None else min(smallest, int(values[0]))
        seq = values if prev is None else np.concatenate([[prev], values])
        step = np.diff(seq)
        duplicates += int((step == 0).sum())
        where = np.flatnonzero(step > 1)
        starts.append(seq[where] + 1)
        ends.append(seq[where + 1] - 1)
        prev = int(seq[-1]) if prev is None else max(prev, int(seq[-1]))
    start = np.concatenate(starts) if starts else np.array([], dtype=np.int64)
    end = np.concatenate(ends) if ends else np.array([], dtype=np.int64)
    gaps = pd.DataFrame({"id_start": start.astype(np.int64), "id_end": end.astype(np.int64),
                         "missing_ids": (end - start + 1).astype(np.int64)})
    return (True, smallest, prev, int(gaps["missing_ids"].sum()), duplicates, gaps)
