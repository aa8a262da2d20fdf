"""Bar files read chunk by chunk: CSV / gzip CSV / zipped CSV / feather / parquet -> validated bar frames.

The layout of a bar file is its columns matched by name (below) and one converter, :meth:`BarChunks._convert`, over
each block of rows (columnar: Arrow parses the numbers). :mod:`btlab.marketdata.sources.files.importer` stores them.

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
  seconds). The file's unit is the one of most values of its first chunk (:data:`DEFAULT_CHUNK_BYTES` of text,
  or :data:`COLUMNAR_CHUNK_ROWS` rows); a file whose values fall into different units is rejected, naming the
  first row that differs from that unit.
* Date or date-time strings (ISO 8601, or any one format pandas can infer from the first value): a string with
  a UTC offset is converted to UTC; a string WITHOUT an offset is taken as UTC (not local time).
* feather/parquet datetime columns: timezone-aware values are converted to UTC; naive values are taken as UTC.

Every time is the bar's OPEN time. The result is always ``datetime64[ns, UTC]``.

Size and memory
---------------
Files are read and checked in chunks (CSV: about :data:`DEFAULT_CHUNK_BYTES` of text at a time with Arrow's
CSV reader; parquet: :data:`COLUMNAR_CHUNK_ROWS` rows at a time; feather: one record batch at a time), and
:func:`~btlab.marketdata.sources.files.importer.import_bars` stages the checked bars in the store as it goes, so the memory an import needs does not depend
on the file's size (the benchmark holds it under 500 MB for a 10M-row CSV; see benchmarks/RESULTS.md). Compressed
files holding more than ``BTLAB_MAX_COMPRESSION_RATIO`` (default 100) times their size are refused as
decompression bombs (:func:`btlab.marketdata.sources.files.csvio.open_csv`; parquet: per row group, from its metadata). Errors
quote at most a short excerpt of the file.

Errors
------
Every problem raises :class:`~btlab.errors.DataValidationError` naming the file, and when it applies the row and
the file's own name of the column at fault. For CSV files the row is the FILE LINE (1-based, the header line and
blank lines counted, as an editor shows it); for feather/parquet files it is the 1-based row of the table. Every
CSV line must have as many fields as the first (header) line: a short line (a truncated last line) or a long one
is rejected like any other bad row, and nothing of the file is written. Blank lines (empty, only spaces, or only
commas) are skipped. The first error in file order is reported (reading stops there).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from btlab.errors import DataValidationError
from btlab.marketdata.sources.files.csvio import NUMBER as _NUMBER
from btlab.marketdata.sources.files.csvio import (
    RATIO_SLACK,
    CsvBlocks,
    bomb_error,
    excerpt,
    first_lines,
    looks_like_header,
    open_csv,
    ratio_limit,
    split_line,
)
from btlab.marketdata.sources.files.csvio import epoch_to_utc as _epoch_to_utc
from btlab.marketdata.sources.files.csvio import epoch_unit_of as _epoch_unit_of
from btlab.marketdata.sources.binance_vision.schemas import KLINE_COLUMNS as BINANCE_KLINE_COLUMNS
from btlab.marketdata.sources.ccxt.schemas import OHLCV_COLUMNS
from btlab.model.bar import BAR_COLUMNS, PRICE_COLUMNS, validate_bars
from btlab.model.timeframe import Timeframe

if TYPE_CHECKING:
    pass

__all__ = [
    "COLUMNAR_CHUNK_ROWS",
    "DEFAULT_CHUNK_BYTES",
    "SUPPORTED_SUFFIXES",
    "TIME_COLUMN_NAMES",
    "TRADES_COLUMN_NAMES",
    "BarChunks",
    "check_bars_file",
    "read_bars_file",
]

#: File name endings understood by :func:`read_bars_file` (matched case-insensitively).
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".zip", ".feather", ".parquet")
#: CSV text per chunk: an import needs a small multiple of it (plus the libraries), whatever the file's size.
DEFAULT_CHUNK_BYTES = 2 << 20
#: Rows per chunk of a parquet file (feather files are read one record batch at a time).
COLUMNAR_CHUNK_ROWS = 65_536


TIME_COLUMN_NAMES: tuple[str, ...] = ("ts", "timestamp", "date", "datetime", "time", "open_time", "open time")
TRADES_COLUMN_NAMES: tuple[str, ...] = ("trades", "count", "number of trades", "transactions")



# ---------------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------------
def read_bars_file(path: str | Path, *, timeframe: Timeframe | str | None = None,
                   chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> pd.DataFrame:
    """Read one bar file and return it as a validated canonical bar frame.

    The format comes from the file name: ``.csv``, ``.csv.gz``, ``.zip`` (holding exactly one ``.csv`` member,
    as data.binance.vision ships klines), ``.feather`` or ``.parquet``. Column names, time units and time zones
    are handled as described in this module. The file is read in chunks (:class:`BarChunks`);
    the frame returned holds every bar, so its memory grows with the file: :func:`import_bars` does not need it.

    Args:
        path: the file.
        timeframe: if given (``"1h"`` or a :class:`~btlab.model.timeframe.Timeframe`), every bar open time must
            be aligned to it (UTC epoch origin; Monday for weeks).
        chunk_bytes: CSV text per chunk.

    Returns:
        A frame with exactly :data:`btlab.model.bar.BAR_COLUMNS`: ``ts`` ``datetime64[ns, UTC]`` (bar open time),
        ``open, high, low, close, volume`` float64, ``trades`` nullable Int64 (``<NA>`` when the file has no
        trade count), in file order (validation guarantees strictly increasing ``ts``), ``RangeIndex``.

    Raises:
        DataValidationError: the file does not exist, has an unsupported suffix, cannot be decoded, lacks a
            required column, holds an unparsable or out-of-range time, mixes epoch units, or fails
            :func:`btlab.model.bar.validate_bars` (missing value, non-positive price, negative volume,
            ``high < low`` ..., duplicate or decreasing time, time not aligned to ``timeframe``), or (CSV) has a
            line with more or fewer fields than the header line, or is a decompression bomb. The message names the
            file, the row (CSV: the file line, header counted) and the file's column name where they apply.
        ValueError: ``timeframe`` is not a valid ccxt timeframe.
    """
    frames = list(BarChunks(path, timeframe=timeframe, chunk_bytes=chunk_bytes))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


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


@dataclass
class _Raw:
    """One chunk of a file: the chosen columns (named by bar column, values as the file holds them) and the row
    reported for each of its rows (1-based row of ``frame`` -> CSV file line or table row)."""

    frame: pd.DataFrame
    row_of: Callable[[int], int]


@dataclass
class _TimeState:
    """How a file's times were read in its first chunk, so every later chunk is read the same way."""

    text: str | None = None  # "epoch" or "dates": what the time column's text holds
    unit: int | None = None  # epoch unit (index into EPOCH_UNIT_NAMES)
    parse: dict[str, Any] | None = None  # pandas.to_datetime arguments that read the dates


class BarChunks:
    """One bar file read chunk by chunk, each chunk validated into a canonical bar frame (see :func:`read_bars_file`
    for formats, results and errors).

    Iterating yields frames with :data:`btlab.model.bar.BAR_COLUMNS` in file order; consecutive chunks continue
    each other (every ``ts`` after the previous chunk's last). The first error in the file raises
    :class:`~btlab.errors.DataValidationError` (a file without bars too: ``no bars``). Memory: a chunk at a time
    (CSV: ``chunk_bytes`` of text; parquet: :data:`COLUMNAR_CHUNK_ROWS` rows; feather: a record batch).

    Attributes (set once reading started):
        names: bar column -> the file's name for it (for messages).
    """

    def __init__(self, path: str | Path, *, timeframe: Timeframe | str | None = None,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.src = str(path)
        self.timeframe = None if timeframe is None else Timeframe.parse(timeframe)
        self.chunk_bytes = int(chunk_bytes)
        self.kind = check_bars_file(self.path)
        self.names: dict[str, str] = {}
        self._time = _TimeState()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        raw_chunks = self._csv() if self.kind in (".csv", ".csv.gz", ".zip") else self._columnar()
        prev: pd.Timestamp | None = None
        rows = 0
        for raw in raw_chunks:
            if raw.frame.empty:
                continue
            bars = self._validated(raw)
            first = bars["ts"].iloc[0]
            if prev is not None and not first > prev:
                what = (f"duplicate timestamp {first} (same as the bar before it)" if first == prev else
                        f"timestamps not increasing: {first} follows {prev}")
                raise DataValidationError(self.src, what, row=raw.row_of(1), column=self.names["ts"])
            prev = bars["ts"].iloc[-1]
            rows += len(bars)
            yield bars
        if rows == 0:
            raise DataValidationError(self.src, "no bars")

    def _validated(self, raw: _Raw) -> pd.DataFrame:
        try:
            return validate_bars(self._convert(raw.frame), source=self.src, timeframe=self.timeframe)
        except DataValidationError as exc:
            row = None if exc.row is None else raw.row_of(exc.row)
            column = self.names.get(exc.column, exc.column) if exc.column is not None else None
            raise DataValidationError(exc.source, exc.reason, row=row, column=column) from None

    # ---- columns --------------------------------------------------------------------------------------------
    def _choose(self, columns: list[str]) -> dict[str, int]:
        """Bar column -> position of the file column holding it (sets :attr:`names`)."""
        by_norm: dict[str, int] = {}
        for i, name in enumerate(columns):
            by_norm.setdefault(_norm(name), i)
        chosen: dict[str, int] = {}
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
            shown = ", ".join(str(c) if len(str(c)) <= 40 else str(c)[:40] + "..." for c in columns[:20])
            more = f" and {len(columns) - 20:,} more" if len(columns) > 20 else ""
            raise DataValidationError(
                self.src, f"missing column(s) {', '.join(missing)}{hint}; the file has: {shown}{more}",
                column=missing[0],
            )
        self.names = {bar_col: str(columns[i]) for bar_col, i in chosen.items()}
        return chosen

    def _convert(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Chosen columns as the file holds them -> bar columns (times UTC, numbers float64, counts Int64)."""
        src, names = self.src, self.names
        out = {"ts": _to_utc(raw["ts"], src, names["ts"], self._time)}
        for col in (*PRICE_COLUMNS, "volume"):
            out[col] = _to_float(raw[col], src, names[col])
        if "trades" in raw.columns:
            out["trades"] = _to_count(raw["trades"], src, names["trades"])
        frame = pd.DataFrame(out)
        return frame[[c for c in BAR_COLUMNS if c in frame.columns]]

    # ---- CSV ------------------------------------------------------------------------------------------------
    def _csv(self) -> Iterator[_Raw]:
        import pyarrow.compute as pc

        src = self.src
        with open_csv(self.path, src) as (fh, _size):
            head = first_lines(fh, 1, src)
        if not head:
            raise DataValidationError(src, "empty file")
        line_no, text = head[0]
        has_header = looks_like_header(text)
        fields = split_line(text)
        if has_header:
            columns = fields
        else:
            layouts = {len(BINANCE_KLINE_COLUMNS): BINANCE_KLINE_COLUMNS, len(OHLCV_COLUMNS): OHLCV_COLUMNS}
            layout = layouts.get(len(fields))
            if layout is None:
                raise DataValidationError(
                    src,
                    f"no header line and {len(fields)} columns: a CSV without a header must have the 12 "
                    f"data.binance.vision kline columns ({', '.join(BINANCE_KLINE_COLUMNS)}) or the 6 columns "
                    f"{', '.join(OHLCV_COLUMNS)}",
                )
            columns = list(layout)
        chosen = self._choose(columns)
        with open_csv(self.path, src) as (fh, _size):
            blocks = CsvBlocks(fh, src, width=len(fields), skip_lines=line_no if has_header else line_no - 1,
                               block_bytes=self.chunk_bytes, first="header" if has_header else "first")
            for batch, base in blocks:
                present = np.zeros(batch.num_rows, dtype=bool)  # a row with every field empty is a blank line
                for column in batch.columns:
                    present |= pc.not_equal(column, "").to_numpy(zero_copy_only=False)
                keep = np.flatnonzero(present)
                frame = pd.DataFrame({bar_col: self._cells(bar_col, batch.column(i).take(keep))
                                      for bar_col, i in chosen.items()})

                def row_of(row: int, base: int = base, keep: np.ndarray = keep) -> int:
                    return blocks.line(base + int(keep[row - 1]))

                yield _Raw(frame, row_of)

    def _cells(self, bar_col: str, column: Any) -> pd.Series:
        """One column of a CSV chunk for :meth:`_convert`: numbers parsed by Arrow when every cell is a plain number
        (Arrow's parser is correctly rounded, as Python's ``float`` is: the same float64 bits; it accepts a subset of
        what ``float``/``int`` accept), else the cells as text (parsed per cell, as before, naming a bad one)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if bar_col == "ts":
            target = None if self._time.text == "dates" else pa.int64()  # epoch numbers, once a file has them
        else:
            target = pa.float64()
        if target is not None and len(column):
            try:
                values = pc.cast(column, target).to_numpy()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            else:
                if bar_col == "ts":
                    self._time.text = "epoch"
                return pd.Series(values)
        return pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)

    # ---- feather / parquet ------------------------------------------------------------------------------------
    def _columnar(self) -> Iterator[_Raw]:
        import pyarrow as pa

        what = self.kind[1:]
        offset = 0
        try:
            for batch in (self._parquet_batches() if self.kind == ".parquet" else self._feather_batches()):
                for lo in range(0, batch.num_rows, COLUMNAR_CHUNK_ROWS):
                    part = pa.Table.from_batches([batch.slice(lo, COLUMNAR_CHUNK_ROWS)]).to_pandas()
                    if not isinstance(part.index, pd.RangeIndex):  # a time index written by pandas
                        part = part.reset_index()
                    if not self.names:
                        self._choose([str(c) for c in part.columns])
                    by_name = {str(c): c for c in part.columns}
                    frame = pd.DataFrame({bar_col: part[by_name[name]].reset_index(drop=True)
                                          for bar_col, name in self.names.items()})
                    yield _Raw(frame, lambda row, at=offset: at + row)
                    offset += len(frame)
        except DataValidationError:
            raise
        except OSError as exc:  # pyarrow's ArrowInvalid / ArrowIOError derive from it
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataValidationError(self.src, f"not a readable {what} file ({excerpt(reason, 200)})") from None
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for corrupt files
            raise DataValidationError(
                self.src, f"not a readable {what} file ({type(exc).__name__}: {excerpt(str(exc), 200)})"
            ) from None

    def _parquet_batches(self) -> Iterator[Any]:
        """Record batches of the parquet file, row group by row group; a row group declaring more than
        ``BTLAB_MAX_COMPRESSION_RATIO`` times its compressed size is refused before it is read."""
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path, buffer_size=1 << 20, pre_buffer=False)  # page by page, not whole row groups
        ratio = ratio_limit()
        meta = pf.metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            packed = max(1, sum(group.column(c).total_compressed_size for c in range(group.num_columns)))
            if group.total_byte_size > ratio * packed + RATIO_SLACK:
                raise bomb_error(self.src, f"row group {g + 1} declares {group.total_byte_size:,} bytes from "
                                 f"{packed:,}", group.total_byte_size / packed, ratio)
        yield from pf.iter_batches(batch_size=COLUMNAR_CHUNK_ROWS)

    def _feather_batches(self) -> Iterator[Any]:
        """Record batches of the feather (Arrow IPC) file, one at a time (feather v1 files are read whole)."""
        import pyarrow as pa
        import pyarrow.feather as feather
        import pyarrow.ipc as ipc

        with pa.OSFile(str(self.path)) as source:
            try:
                reader = ipc.open_file(source)
            except pa.ArrowInvalid:
                reader = None
            if reader is None:  # feather v1 (no IPC footer)
                yield from feather.read_table(str(self.path)).to_batches()
                return
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)


# ---------------------------------------------------------------------------------------------------------------
# columns and values
# ---------------------------------------------------------------------------------------------------------------
def _norm(name: object) -> str:
    return " ".join(str(name).strip().lower().split())


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
                raise DataValidationError(src, f"not a number: {excerpt(str(v))}", row=i + 1, column=col) from None
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


def _to_utc(values: pd.Series, src: str, col: str, state: _TimeState | None = None) -> pd.Series:
    """Bar open times as datetime64[ns, UTC]; missing cells become NaT (validate_bars reports them).

    ``state`` carries how the first chunk of a file was read (epoch numbers or dates, the epoch unit, the date
    format) to the next chunks, so a whole file is read one way.
    """
    state = _TimeState() if state is None else state
    values = values.reset_index(drop=True)
    dtype = values.dtype
    try:
        if isinstance(dtype, pd.DatetimeTZDtype):
            return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        if pd.api.types.is_datetime64_dtype(dtype):
            return values.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    except (OverflowError, pd.errors.OutOfBoundsDatetime, ValueError) as exc:
        raise DataValidationError(src, f"time out of range ({excerpt(str(exc), 120)})", column=col) from None
    if pd.api.types.is_bool_dtype(dtype):
        raise DataValidationError(src, "expected times, found true/false values", row=1, column=col)
    if pd.api.types.is_numeric_dtype(dtype):
        nulls = values.isna().to_numpy()
        if pd.api.types.is_integer_dtype(dtype):
            arr = values.fillna(0).to_numpy(dtype=np.int64)
        else:
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return _epochs(arr, nulls, src, col, state)

    arr = values.to_numpy(dtype=object)
    nulls = _blank(arr, strip=False)
    present = np.flatnonzero(~nulls)
    if present.size == 0:
        return pd.Series(pd.NaT, index=range(len(arr)), dtype="datetime64[ns, UTC]")
    if not isinstance(arr[present[0]], str):  # date/datetime objects (e.g. parquet date32)
        return _parse_datetimes(pd.Series(np.where(nulls, None, arr), dtype=object), nulls, src, col, state)
    if state.text is None:
        state.text = "epoch" if _NUMBER.match(str(arr[present[0]]).strip()) else "dates"
    if state.text == "epoch":
        cells = arr[present]
        for kind in (np.int64, np.float64):  # int(str) / float(str) per cell, surrounding spaces allowed
            try:
                parsed = cells.astype(kind)
            except (ValueError, TypeError, OverflowError):
                continue
            if kind is np.float64 and not np.isfinite(parsed).all():  # "nan", "inf"
                row = int(present[np.flatnonzero(~np.isfinite(parsed))[0]])
                raise DataValidationError(src, f"cannot parse time {excerpt(arr[row])}", row=row + 1, column=col)
            full = np.zeros(len(arr), dtype=kind)
            full[present] = parsed
            return _epochs(full, nulls, src, col, state)
        for i in present:
            if not _NUMBER.match(str(arr[i]).strip()):
                raise DataValidationError(
                    src, f"cannot parse time {excerpt(str(arr[i]))} (the first rows are epoch numbers)",
                    row=int(i) + 1, column=col,
                )
        raise DataValidationError(src, "cannot parse the epoch times", column=col)  # pragma: no cover
    text = pd.Series(arr, dtype=object).where(~nulls, None).map(lambda v: v.strip() if isinstance(v, str) else v)
    return _parse_datetimes(text, nulls, src, col, state)


def _epochs(arr: np.ndarray, nulls: np.ndarray, src: str, col: str, state: _TimeState) -> pd.Series:
    """Epoch numbers -> UTC in the file's unit (that of most values of the first chunk)."""
    if state.unit is None:
        state.unit = _epoch_unit_of(arr, nulls)
    return _epoch_to_utc(arr, nulls, src, col, unit=state.unit)


def _parse_datetimes(text: pd.Series, nulls: np.ndarray, src: str, col: str,
                     state: _TimeState | None = None) -> pd.Series:
    """Date/date-time strings or objects -> UTC; offsets converted, naive values taken as UTC.

    The first chunk of a file is read as ISO 8601, else in the format pandas infers from its first value; the
    way that worked is kept in ``state`` for the next chunks.
    """
    state = _TimeState() if state is None else state
    errors = (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime)
    if state.parse is not None:
        attempts: tuple[dict[str, Any], ...] = (state.parse,)
    else:
        first = next((v for v in text if isinstance(v, str)), None)
        guessed = None
        if first is not None:
            from pandas.tseries.api import guess_datetime_format

            guessed = guess_datetime_format(first)
        attempts = ({"format": "ISO8601"}, {"format": guessed} if guessed else {})
    for kwargs in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                parsed = pd.to_datetime(text, utc=True, **kwargs)
            state.parse = kwargs
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
    raise DataValidationError(src, f"cannot parse time {excerpt(str(text.iloc[row]))}", row=row + 1, column=col)
