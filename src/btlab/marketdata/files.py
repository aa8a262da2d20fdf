"""Bar files: read CSV / gzip CSV / zipped CSV / feather / parquet bars, and import them into a store.

Supported layouts
-----------------
* Any CSV with a header line, columns matched case-insensitively (surrounding spaces ignored):

  ======================  ===============================================================================
  bar column              accepted file column names (first match in this order wins)
  ======================  ===============================================================================
  ``ts`` (bar open time)  ``ts``, ``timestamp``, ``date``, ``datetime``, ``time``, ``open_time``, ``open time``
  ``open`` .. ``volume``  ``open``, ``high``, ``low``, ``close``, ``volume``
  ``trades`` (optional)   ``trades``, ``count``, ``number of trades``, ``transactions``
  ======================  ===============================================================================

  Other columns (``Name``, ``vwap``, ``quote_volume``, ``close_time``, ...) are ignored.
* data.binance.vision kline CSVs (``.csv`` or the ``.zip`` they are shipped in), with or without a header line:
  ``open_time, open, high, low, close, volume, close_time, quote_volume, count, taker_buy_volume,
  taker_buy_quote_volume, ignore``; ``count`` becomes ``trades``. A file has a header line when the first field
  of its first line is not a number. A headerless CSV must have those 12 columns, or the 6 columns
  ``timestamp, open, high, low, close, volume`` (ccxt ``fetch_ohlcv`` order).
* feather and parquet files with the columns above (a time index, as pandas writes it, is used as a column).

CSV files are comma-separated UTF-8 (a byte-order mark is allowed); numbers are parsed exactly (correctly
rounded to float64, as Python's ``float``), so a CSV written from float64 values with ``repr`` precision reads
back bit for bit.

Times
-----
* Epoch numbers: the unit is detected per file from the magnitude of the values: ``< 1e11`` seconds,
  ``< 1e14`` milliseconds, ``< 1e17`` microseconds, otherwise nanoseconds (Binance klines are in milliseconds,
  and in microseconds for spot files from 2025 on; so millisecond times before 1973-03-03 would be read as
  seconds). A file whose values fall into different units is rejected,
  naming the first row that differs from the file's majority unit.
* Date or date-time strings (ISO 8601, or any one format pandas can infer): a string with a UTC offset is
  converted to UTC; a string WITHOUT an offset is taken as UTC (not local time).
* feather/parquet datetime columns: timezone-aware values are converted to UTC; naive values are taken as UTC.

Every time is the bar's OPEN time. The result is always ``datetime64[ns, UTC]``.

Errors
------
Every problem raises :class:`~btlab.errors.DataValidationError` naming the file, and when it applies the row and
the file's own name of the column at fault. For CSV files the row is the FILE LINE (1-based, the header line and
blank lines counted, as an editor shows it); for feather/parquet files it is the 1-based row of the table. Every
CSV line must have as many fields as the first (header) line: a short line (a truncated last line) or a long one
is rejected like any other bad row, and nothing of the file is written.

Timeframe
---------
:func:`import_bars` refuses a timeframe that is a whole fraction of the data's spacing -- every step between
consecutive bars a multiple of some longer timeframe, and the median step exactly that (1h bars imported as
``1m`` would otherwise be stored as 1m bars with 59 "missing" bars in every hour) -- with
:class:`~btlab.errors.TimeframeMismatchError` asking whether that longer timeframe was meant, unless
``allow_timeframe_mismatch=True``.
"""

from __future__ import annotations

import gzip
import io
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from btlab.errors import DataValidationError, InvalidArgumentError, TimeframeMismatchError
from btlab.marketdata.csvio import NUMBER as _NUMBER
from btlab.marketdata.csvio import check_field_counts, data_row_line
from btlab.marketdata.csvio import epoch_to_utc as _epoch_to_utc
from btlab.marketdata.csvio import first_line as _first_line
from btlab.marketdata.csvio import zip_csv_member
from btlab.marketdata.quality.gaps import find_gaps
from btlab.model.bar import BAR_COLUMNS, PRICE_COLUMNS, validate_bars
from btlab.model.sessions import check_session, in_session
from btlab.model.timeframe import Timeframe
from btlab.model.venue import resolve_venue

if TYPE_CHECKING:
    from btlab.store.base import Store

__all__ = [
    "BINANCE_KLINE_COLUMNS",
    "OHLCV_COLUMNS",
    "SUPPORTED_SUFFIXES",
    "TIME_COLUMN_NAMES",
    "TRADES_COLUMN_NAMES",
    "ImportReport",
    "check_bars_file",
    "data_spacing",
    "import_bars",
    "exchange_of",
    "infer_exchange",
    "read_bars_file",
]

#: File name endings understood by :func:`read_bars_file` (matched case-insensitively).
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".zip", ".feather", ".parquet")

#: Column order of data.binance.vision kline CSVs (their newer files carry this as a header line).
BINANCE_KLINE_COLUMNS: tuple[str, ...] = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
#: Column order of a headerless 6-column CSV (ccxt ``fetch_ohlcv`` rows).
OHLCV_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")

TIME_COLUMN_NAMES: tuple[str, ...] = ("ts", "timestamp", "date", "datetime", "time", "open_time", "open time")
TRADES_COLUMN_NAMES: tuple[str, ...] = ("trades", "count", "number of trades", "transactions")


# ---------------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImportReport:
    """What :func:`import_bars` wrote.

    Attributes:
        path: the file imported.
        exchange, symbol, timeframe: the series written (ccxt id or equity venue, symbol, ccxt timeframe string).
        rows: number of bars in the file (all were written; re-writing existing bars replaces them).
        first, last: open time of the first and last bar (UTC :class:`pandas.Timestamp`).
        gaps: number of missing bars between ``first`` and ``last`` for the timeframe under the venue's calendar
            (see :func:`btlab.marketdata.quality.gaps.find_gaps`); 0 for a complete series. For exchange venues only
            regular-session slots count: nights, weekends, holidays and the hours after an early close are not
            missing.
        calendar: the calendar the gaps were counted with: ``"24/7"`` or an exchange calendar code (``"XNYS"``).
        outside_session: bars outside the regular sessions (extended hours; for ``24/7`` always 0). They are
            stored like every other bar.
        assumed: what was inferred rather than given (e.g. the exchange from a data.binance.vision file name), as
            words for the user; None when nothing was.
    """

    path: Path
    exchange: str
    symbol: str
    timeframe: str
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    gaps: int
    calendar: str = "24/7"
    outside_session: int = 0
    assumed: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.path.name}: {self.rows} {self.timeframe} bars of {self.exchange} {self.symbol}, "
            f"{self.first} .. {self.last}, {self.gaps} missing ({self.calendar})"
        )


def read_bars_file(path: str | Path, *, timeframe: Timeframe | str | None = None) -> pd.DataFrame:
    """Read one bar file and return it as a validated canonical bar frame.

    The format comes from the file name: ``.csv``, ``.csv.gz``, ``.zip`` (holding exactly one ``.csv`` member,
    as data.binance.vision ships klines), ``.feather`` or ``.parquet``. Column names, time units and time zones
    are handled as described in :mod:`btlab.marketdata.files`.

    Args:
        path: the file.
        timeframe: if given (``"1h"`` or a :class:`~btlab.model.timeframe.Timeframe`), every bar open time must
            be aligned to it (UTC epoch origin; Monday for weeks).

    Returns:
        A frame with exactly :data:`btlab.model.bar.BAR_COLUMNS`: ``ts`` ``datetime64[ns, UTC]`` (bar open time),
        ``open, high, low, close, volume`` float64, ``trades`` nullable Int64 (``<NA>`` when the file has no
        trade count), in file order (validation guarantees strictly increasing ``ts``), ``RangeIndex``.

    Raises:
        DataValidationError: the file does not exist, has an unsupported suffix, cannot be decoded, lacks a
            required column, holds an unparsable or out-of-range time, mixes epoch units, or fails
            :func:`btlab.model.bar.validate_bars` (missing value, non-positive price, negative volume,
            ``high < low`` ..., duplicate or decreasing time, time not aligned to ``timeframe``), or (CSV) has a
            line with more or fewer fields than the header line. The message names the file, the row (CSV: the
            file line, header counted) and the file's column name where they apply.
        ValueError: ``timeframe`` is not a valid ccxt timeframe.
    """
    p = Path(path)
    src = str(path)
    tf = None if timeframe is None else Timeframe.parse(timeframe)
    kind = check_bars_file(p)

    data: bytes | None = None
    has_header = False
    if kind in (".csv", ".csv.gz", ".zip"):
        data = _csv_bytes(p, kind, src)
        raw, has_header = _read_csv_bytes(data, src)
    else:
        raw = _read_columnar(p, kind, src)

    names: dict[str, str] = {}
    try:
        frame, names = _canonical_frame(raw, src)
        return validate_bars(frame, source=src, timeframe=tf)
    except DataValidationError as exc:
        row = exc.row
        if row is not None and data is not None:  # a data row of the frame -> the file line
            row = data_row_line(data, row, has_header=has_header)
        column = names.get(exc.column, exc.column) if exc.column is not None else None
        if (row, column) == (exc.row, exc.column):
            raise
        raise DataValidationError(exc.source, exc.reason, row=row, column=column) from None


def check_bars_file(path: str | Path) -> str:
    """Check, without reading it, that ``path`` is a file :func:`read_bars_file` can read; return its format
    (``".csv"``, ``".csv.gz"``, ``".zip"``, ``".feather"`` or ``".parquet"``).

    Raises:
        DataValidationError: unsupported suffix, no such file, or not a regular file.
    """
    p = Path(path)
    src = str(path)
    kind = _format_of(p, src)
    if not p.exists():
        raise DataValidationError(src, "no such file")
    if not p.is_file():
        raise DataValidationError(src, "not a regular file")
    return kind


def data_spacing(ts: pd.Series | pd.DatetimeIndex, timeframe: Timeframe | str) -> Timeframe | None:
    """The longer timeframe bars given as ``timeframe`` are really spaced by, or None if they fit ``timeframe``.

    Returns ``T`` (longer than ``timeframe``) when every step between consecutive bars is a whole multiple of
    ``T`` and the median step is exactly ``T`` -- the signature of bars of timeframe ``T`` (their gaps are whole
    ``T`` windows too). ``T`` is the greatest common divisor of the steps, named in the largest ccxt unit that
    divides it (``1w`` only when the bars open on Mondays, as weekly bars do). Needs at least 3 bars.

    Args:
        ts: strictly increasing bar open times.
        timeframe: the timeframe the bars are said to have.
    """
    tf = Timeframe.parse(timeframe)
    ns = pd.DatetimeIndex(ts).asi8
    if len(ns) < 3:
        return None
    steps = np.diff(ns)
    step = int(np.gcd.reduce(steps))
    if step <= tf.nanos or step % 1_000_000_000 or int(np.median(steps)) != step:
        return None
    seconds = step // 1_000_000_000
    found = Timeframe.from_seconds(seconds)
    if found.value.endswith("w") and not found.is_aligned(int(ns[0])):
        found = Timeframe.parse(f"{seconds // 86_400}d")
    return found


def infer_exchange(path: str | Path) -> str | None:
    """The exchange a bar file's name implies, or None.

    A data.binance.vision kline file name (``BTCUSDT-1m-2024-01-01.zip``, ``.csv``) -> ``"binance"``. Nothing
    else is inferred: other files need the exchange to be given.
    """
    from btlab.marketdata.binance_vision import parse_vision_name

    try:
        _, kind, _ = parse_vision_name(Path(path).name)
    except ValueError:
        return None
    return "binance" if kind == "klines" else None


def exchange_of(path: str | Path, exchange: str | None) -> tuple[str, str | None]:
    """``(exchange, assumed)``: the exchange given, or the one inferred from the file name with the words saying so.

    Raises:
        InvalidArgumentError: ``exchange`` is None and the name implies none (one line, naming the file).
    """
    if exchange is not None:
        return exchange, None
    inferred = infer_exchange(path)
    if inferred is None:
        raise InvalidArgumentError(
            f"{path}: no exchange given and none can be inferred from the file name: give it (--exchange), e.g. "
            "binance (a ccxt id, 24/7) or XNYS/nyse, XNAS/nasdaq (equity venues)"
        )
    return inferred, f"exchange {inferred} assumed from the data.binance.vision file name"


def import_bars(
    path: str | Path,
    store: Store,
    *,
    exchange: str | None = None,
    symbol: str,
    timeframe: Timeframe | str,
    source: str | None = None,
    calendar: str | None = None,
    allow_timeframe_mismatch: bool = False,
) -> ImportReport:
    """Read, validate and store the bars of one file as one series.

    The whole file is read and validated before anything is written, then written with a single
    :meth:`Store.write_bars <btlab.store.base.Store.write_bars>` call (one transaction), so a bad file writes
    nothing. Writes are upserts on ``(ts, exchange, symbol, timeframe)``: importing the same file again changes
    nothing.

    Args:
        path: a file :func:`read_bars_file` understands.
        store: where to write.
        exchange: ccxt exchange id (``"binance"``) or equity venue (``"XNYS"``, ``"nyse"``, ``"nasdaq"``), see
            :func:`btlab.model.venue.resolve_venue`. None: inferred from a data.binance.vision kline file name
            (:func:`infer_exchange`, said in ``ImportReport.assumed``), otherwise an error.
        symbol: ccxt unified symbol, e.g. ``"BTC/USDT"``, or a ticker (``"SPY"``).
        timeframe: the bars' length (``"1h"``, ...); every bar open time must be aligned to it.
        source: provenance stored with each bar; defaults to the file name (without folders).
        calendar: the venue's calendar when ``exchange`` is a name btlab does not know (``"24/7"``, ``"XNYS"``);
            it only decides how missing bars are counted (see :class:`ImportReport`).
        allow_timeframe_mismatch: store the bars even when they are spaced by a whole multiple of ``timeframe``
            (see :func:`data_spacing`): e.g. a sparse series that really has ``timeframe`` bars.

    Returns:
        An :class:`ImportReport` (rows, first/last bar open time in UTC, number of missing bars, calendar).

    Raises:
        InvalidArgumentError: no exchange given and none inferable; unknown exchange without ``calendar``; unknown
            calendar. Checked before the file is read; the store is unchanged.
        DataValidationError: the file is missing, unreadable or invalid (see :func:`read_bars_file`); the store
            is unchanged.
        TimeframeMismatchError: the bars are spaced by a longer timeframe than ``timeframe`` (naming it) and
            ``allow_timeframe_mismatch`` is False; the store is unchanged.
        InvalidArgumentError: ``timeframe`` is not a valid ccxt timeframe, or ``exchange``/``symbol`` is empty.
    """
    p = Path(path)
    tf = Timeframe.parse(timeframe)
    exchange, assumed = exchange_of(p, exchange)
    if not str(symbol or "").strip():
        raise InvalidArgumentError("symbol must not be empty")
    venue = resolve_venue(exchange, calendar)
    bars = read_bars_file(p, timeframe=tf)
    session = check_session(None, venue)
    gaps = find_gaps(bars["ts"], tf, calendar=venue.calendar, session=session)
    if not allow_timeframe_mismatch and (spacing := data_spacing(bars["ts"], tf)) is not None:
        raise TimeframeMismatchError(str(path), tf.value, spacing.value, int(gaps["missing_bars"].sum()))
    store.write_bars(bars, exchange=exchange, symbol=symbol, timeframe=tf, source=source or p.name)
    outside = 0 if session is None else int((~in_session(bars["ts"], venue, session, tf)).sum())
    return ImportReport(
        path=p,
        exchange=exchange,
        symbol=symbol,
        timeframe=tf.value,
        rows=len(bars),
        first=bars["ts"].iloc[0],
        last=bars["ts"].iloc[-1],
        gaps=int(gaps["missing_bars"].sum()),
        calendar=venue.calendar,
        outside_session=outside,
        assumed=assumed,
    )


# ---------------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------------
def _format_of(p: Path, src: str) -> str:
    name = p.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):  # ".csv.gz" before ".csv"
        if name.endswith(suffix):
            return suffix
    raise DataValidationError(
        src, f"unsupported file type {''.join(p.suffixes) or '(no suffix)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
    )


def _csv_bytes(p: Path, kind: str, src: str) -> bytes:
    try:
        if kind == ".csv":
            return p.read_bytes()
        if kind == ".csv.gz":
            return gzip.decompress(p.read_bytes())
        with zipfile.ZipFile(p) as zf:
            return zf.read(zip_csv_member(zf, src))
    except DataValidationError:
        raise
    except zipfile.BadZipFile as exc:
        raise DataValidationError(src, f"not a valid zip file ({exc})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataValidationError(src, f"not a valid gzip file ({exc})") from None
    except OSError as exc:
        raise DataValidationError(src, f"cannot read the file ({exc.strerror or exc})") from None


def _read_csv_bytes(data: bytes, src: str) -> tuple[pd.DataFrame, bool]:
    """All cells as ``str`` (file order, original header names or positional layout names), and whether the file
    has a header line."""
    first = _first_line(data)
    if first is None:
        raise DataValidationError(src, "empty file")
    first_field = first.split(",", 1)[0].strip().strip("\"'").strip()
    has_header = not _NUMBER.match(first_field)
    check_field_counts(data, src, has_header=has_header)
    try:
        raw = pd.read_csv(
            io.BytesIO(data),
            header=0 if has_header else None,
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
        )
    except UnicodeDecodeError as exc:
        raise DataValidationError(src, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0]
        match = re.search(r"line (\d+)", message)
        row = int(match.group(1)) if match else None  # pandas counts file lines, as btlab's rows do
        raise DataValidationError(src, f"not a readable CSV: {message}", row=row) from None
    if not has_header:
        layouts = {len(BINANCE_KLINE_COLUMNS): BINANCE_KLINE_COLUMNS, len(OHLCV_COLUMNS): OHLCV_COLUMNS}
        layout = layouts.get(raw.shape[1])
        if layout is None:
            raise DataValidationError(
                src,
                f"no header line and {raw.shape[1]} columns: a CSV without a header must have the 12 "
                f"data.binance.vision kline columns ({', '.join(BINANCE_KLINE_COLUMNS)}) or the 6 columns "
                f"{', '.join(OHLCV_COLUMNS)}",
            )
        raw.columns = list(layout)
    return raw, has_header


def _read_columnar(p: Path, kind: str, src: str) -> pd.DataFrame:
    try:
        raw = pd.read_feather(p) if kind == ".feather" else pd.read_parquet(p)
    except OSError as exc:  # pyarrow's ArrowInvalid / ArrowIOError derive from it
        raise DataValidationError(src, f"not a readable {kind[1:]} file ({str(exc).splitlines()[0]})") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for corrupt files
        raise DataValidationError(src, f"not a readable {kind[1:]} file ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw.index, pd.RangeIndex):  # a time index written by pandas
        raw = raw.reset_index()
    return raw


# ---------------------------------------------------------------------------------------------------------------
# columns and values
# ---------------------------------------------------------------------------------------------------------------
def _norm(name: object) -> str:
    return " ".join(str(name).strip().lower().split())


def _canonical_frame(raw: pd.DataFrame, src: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Pick and convert the bar columns; also return bar column -> the file's column name."""
    by_norm: dict[str, object] = {}
    for name in raw.columns:
        by_norm.setdefault(_norm(name), name)
    chosen: dict[str, object] = {}
    for bar_col, candidates in (("ts", TIME_COLUMN_NAMES), ("trades", TRADES_COLUMN_NAMES)):
        for cand in candidates:
            if cand in by_norm:
                chosen[bar_col] = by_norm[cand]
                break
    for col in (*PRICE_COLUMNS, "volume"):
        if col in by_norm:
            chosen[col] = by_norm[col]
    missing = [c for c in ("ts", *PRICE_COLUMNS, "volume") if c not in chosen]
    if missing:
        hint = f" (a time column is one of: {', '.join(TIME_COLUMN_NAMES)})" if "ts" in missing else ""
        raise DataValidationError(
            src,
            f"missing column(s) {', '.join(missing)}{hint}; the file has: {', '.join(map(str, raw.columns))}",
            column=missing[0],
        )
    names = {bar_col: str(file_col) for bar_col, file_col in chosen.items()}
    out = {"ts": _to_utc(raw[chosen["ts"]], src, names["ts"])}
    for col in (*PRICE_COLUMNS, "volume"):
        out[col] = _to_float(raw[chosen[col]], src, names[col])
    if "trades" in chosen:
        out["trades"] = _to_count(raw[chosen["trades"]], src, names["trades"])
    frame = pd.DataFrame(out)
    return frame[[c for c in BAR_COLUMNS if c in frame.columns]], names


def _is_text(values: pd.Series) -> bool:
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def _blank(arr: np.ndarray, *, strip: bool = True) -> np.ndarray:
    """Missing cells of an object array: None/NaN/NA or an empty (or, if ``strip``, all-space) string."""
    mask = np.asarray(pd.isna(arr), dtype=bool) | np.asarray(arr == "", dtype=bool)
    if strip:
        cells = pd.Series(arr, dtype=object)
        try:
            mask |= cells.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
        except (AttributeError, TypeError):  # no strings at all (e.g. date or Decimal objects)
            mask |= np.array([isinstance(v, str) and not v.strip() for v in arr], dtype=bool)
    return mask


def _to_float(values: pd.Series, src: str, col: str) -> pd.Series:
    """float64 values; empty cells become NaN (validate_bars reports them); text is parsed exactly."""
    if not _is_text(values):
        if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
            raise DataValidationError(src, f"expected numbers, found {values.dtype} values", column=col)
        return pd.Series(values.to_numpy(dtype=np.float64, na_value=np.nan))
    arr = values.to_numpy(dtype=object).copy()
    arr[_blank(arr, strip=False)] = "nan"
    try:  # float(str) per cell: correctly rounded, surrounding spaces allowed
        return pd.Series(arr.astype(np.float64))
    except (ValueError, TypeError):
        arr[_blank(arr)] = "nan"  # all-space cells are empty too
        for i, v in enumerate(arr):
            try:
                float(v)
            except (ValueError, TypeError):
                raise DataValidationError(src, f"not a number: {v!r}", row=i + 1, column=col) from None
        return pd.Series(arr.astype(np.float64))


def _to_count(values: pd.Series, src: str, col: str) -> pd.Series:
    """Nullable Int64 trade counts; empty cells are <NA>; anything but a non-negative whole number is an error."""
    numbers = _to_float(values, src, col).astype("float64").to_numpy()
    ok = np.isnan(numbers) | ((numbers >= 0) & (numbers == np.floor(numbers)) & np.isfinite(numbers))
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise DataValidationError(
            src, f"trade count must be a whole number >= 0, got {numbers[row]}", row=row + 1, column=col
        )
    return pd.Series(pd.array(numbers, dtype="Float64").astype("Int64"))


def _to_utc(values: pd.Series, src: str, col: str) -> pd.Series:
    """Bar open times as datetime64[ns, UTC]; missing cells become NaT (validate_bars reports them)."""
    values = values.reset_index(drop=True)
    dtype = values.dtype
    try:
        if isinstance(dtype, pd.DatetimeTZDtype):
            return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        if pd.api.types.is_datetime64_dtype(dtype):
            return values.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    except (OverflowError, pd.errors.OutOfBoundsDatetime, ValueError) as exc:
        raise DataValidationError(src, f"time out of range ({exc})", column=col) from None
    if pd.api.types.is_bool_dtype(dtype):
        raise DataValidationError(src, "expected times, found true/false values", row=1, column=col)
    if pd.api.types.is_numeric_dtype(dtype):
        nulls = values.isna().to_numpy()
        if pd.api.types.is_integer_dtype(dtype):
            arr = values.fillna(0).to_numpy(dtype=np.int64)
        else:
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return _epoch_to_utc(arr, nulls, src, col)

    arr = values.to_numpy(dtype=object)
    nulls = _blank(arr, strip=False)
    present = np.flatnonzero(~nulls)
    if present.size == 0:
        return pd.Series(pd.NaT, index=range(len(arr)), dtype="datetime64[ns, UTC]")
    if not isinstance(arr[present[0]], str):  # date/datetime objects (e.g. parquet date32)
        return _parse_datetimes(pd.Series(np.where(nulls, None, arr), dtype=object), nulls, src, col)
    if _NUMBER.match(str(arr[present[0]]).strip()):  # epoch numbers
        cells = arr[present]
        for kind in (np.int64, np.float64):  # int(str) / float(str) per cell, surrounding spaces allowed
            try:
                parsed = cells.astype(kind)
            except (ValueError, TypeError, OverflowError):
                continue
            if kind is np.float64 and not np.isfinite(parsed).all():  # "nan", "inf"
                row = int(present[np.flatnonzero(~np.isfinite(parsed))[0]])
                raise DataValidationError(src, f"cannot parse time {arr[row]!r}", row=row + 1, column=col)
            full = np.zeros(len(arr), dtype=kind)
            full[present] = parsed
            return _epoch_to_utc(full, nulls, src, col)
        for i in present:
            if not _NUMBER.match(str(arr[i]).strip()):
                raise DataValidationError(
                    src, f"cannot parse time {arr[i]!r} (the first rows are epoch numbers)", row=int(i) + 1,
                    column=col,
                )
        raise DataValidationError(src, "cannot parse the epoch times", column=col)  # pragma: no cover
    text = pd.Series(arr, dtype=object).where(~nulls, None).map(lambda v: v.strip() if isinstance(v, str) else v)
    return _parse_datetimes(text, nulls, src, col)


def _parse_datetimes(text: pd.Series, nulls: np.ndarray, src: str, col: str) -> pd.Series:
    """Date/date-time strings or objects -> UTC; offsets converted, naive values taken as UTC."""
    errors = (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime)
    attempts = ({"format": "ISO8601"}, {})
    for kwargs in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                parsed = pd.to_datetime(text, utc=True, **kwargs)
            return parsed.astype("datetime64[ns, UTC]")
        except errors:
            continue
    # locate the first bad value under the interpretation that explains the most rows
    best: np.ndarray | None = None
    for kwargs in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                coerced = pd.to_datetime(text, utc=True, errors="coerce", **kwargs)
            except errors:
                continue
        bad = coerced.isna().to_numpy() & ~nulls
        if best is None or bad.sum() < best.sum():
            best = bad
    if best is None or not best.any():
        raise DataValidationError(src, "cannot parse the time column", column=col)
    row = int(np.flatnonzero(best)[0])
    raise DataValidationError(src, f"cannot parse time {text.iloc[row]!r}", row=row + 1, column=col)
