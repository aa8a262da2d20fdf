"""Low-level reading shared by the file importers: CSV containers (plain, gzip, zip), header detection, epoch times.

Used by :mod:`btlab.marketdata.files` (bar files, read whole) and :mod:`btlab.marketdata.binance_vision`
(data.binance.vision files, streamed in chunks), so both read the same containers and times the same way.

Epoch times: the unit is detected from the magnitude of the value: ``< 1e11`` seconds, ``< 1e14`` milliseconds,
``< 1e17`` microseconds, otherwise nanoseconds (Binance spot files are in milliseconds, and in microseconds from
2025 on).

Rows and lines: errors name the FILE LINE (1-based, the header line and blank lines counted, as an editor shows
it; see :class:`btlab.errors.DataValidationError`). Blank lines (empty or only spaces) are skipped, as pandas and
Arrow skip them; every other line must have as many fields as the first line (:func:`check_field_counts`).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from btlab.errors import DataValidationError

__all__ = [
    "CSV_SUFFIXES",
    "EPOCH_UNIT_FACTORS",
    "EPOCH_UNIT_LIMITS",
    "EPOCH_UNIT_NAMES",
    "NUMBER",
    "CountingReader",
    "check_field_counts",
    "csv_suffix",
    "data_row_line",
    "epoch_to_utc",
    "epoch_units",
    "first_line",
    "head_lines",
    "looks_like_header",
    "open_csv",
    "read_error",
    "zip_csv_member",
]

#: A plain decimal number (optionally signed, optional exponent), as a whole cell.
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
EPOCH_UNIT_NAMES: tuple[str, ...] = ("seconds", "milliseconds", "microseconds", "nanoseconds")
#: Nanoseconds per unit, in the order of :data:`EPOCH_UNIT_NAMES`.
EPOCH_UNIT_FACTORS: tuple[int, ...] = (1_000_000_000, 1_000_000, 1_000, 1)
#: Magnitude below which an epoch value is s / ms / us; at or above the last: ns.
EPOCH_UNIT_LIMITS: tuple[float, ...] = (1e11, 1e14, 1e17)
I64_MAX = int(np.iinfo(np.int64).max)

#: File name endings holding CSV text (matched case-insensitively).
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".zip")


# ---------------------------------------------------------------------------------------------------------------
# epoch times
# ---------------------------------------------------------------------------------------------------------------
def epoch_units(values: np.ndarray) -> np.ndarray:
    """Index into :data:`EPOCH_UNIT_NAMES` of each epoch value, from its magnitude."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    return np.searchsorted(np.array(EPOCH_UNIT_LIMITS), magnitude, side="right")


def epoch_to_utc(values: np.ndarray, nulls: np.ndarray, src: str, col: str) -> pd.Series:
    """Epoch numbers (one unit per file, detected by magnitude) -> datetime64[ns, UTC]; NaT where ``nulls``.

    Raises:
        DataValidationError: a value is not finite, its magnitude puts it in another unit than most of the
            values (naming the first such row), or it is out of the datetime64[ns] range.
    """
    present = np.flatnonzero(~nulls)
    ns = np.full(len(values), np.iinfo(np.int64).min, dtype=np.int64)  # the NaT sentinel
    if present.size:
        vals = values[present]
        if vals.dtype.kind == "f" and not np.isfinite(vals).all():
            row = int(present[np.flatnonzero(~np.isfinite(vals))[0]])
            raise DataValidationError(src, f"cannot parse time {float(values[row])}", row=row + 1, column=col)
        magnitude = np.abs(vals.astype(np.float64))
        units = epoch_units(vals)
        counts = np.bincount(units, minlength=len(EPOCH_UNIT_NAMES))
        unit = int(counts.argmax())
        odd = np.flatnonzero(units != unit)
        if odd.size:
            row = int(present[odd[0]])
            raise DataValidationError(
                src,
                f"epoch time {values[row]} looks like {EPOCH_UNIT_NAMES[units[odd[0]]]} but most of the file is in "
                f"{EPOCH_UNIT_NAMES[unit]} (a file must use one unit)",
                row=row + 1,
                column=col,
            )
        factor = EPOCH_UNIT_FACTORS[unit]
        limit = I64_MAX // factor
        out = np.flatnonzero(magnitude > limit)
        if out.size:
            row = int(present[out[0]])
            raise DataValidationError(
                src, f"epoch time {values[row]} ({EPOCH_UNIT_NAMES[unit]}) is out of range", row=row + 1, column=col
            )
        if vals.dtype.kind == "f":
            ns[present] = np.round(vals * factor).astype(np.int64)
        else:
            ns[present] = vals.astype(np.int64) * factor
    return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")


# ---------------------------------------------------------------------------------------------------------------
# lines and headers
# ---------------------------------------------------------------------------------------------------------------
def first_line(data: bytes) -> str | None:
    """The first non-blank line of CSV bytes, decoded (a byte-order mark removed), or None."""
    for line in io.BytesIO(data):
        text = line.decode("utf-8-sig", errors="replace").strip()
        if text:
            return text
    return None


def _split_line(line: str) -> list[str]:
    """Fields of one CSV line (double-quote aware)."""
    return next(csv.reader([line]), [])


def check_field_counts(data: bytes, src: str, *, has_header: bool) -> int:
    """Check that every non-blank line of CSV bytes has as many fields as the first one; return that number.

    A line with fewer fields (a truncated last line, a cut-off download) or more fields (a stray comma) is
    rejected like any bad row -- pandas would silently pad a short line with empty cells. Blank lines (empty or
    only spaces) are allowed and skipped. Uses Arrow's CSV parser (C++, quote aware), one pass.

    Raises:
        DataValidationError: naming the first bad line (file line, header counted), its field count and the
            expected one.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    first = first_line(data)
    if first is None:
        return 0
    width = len(_split_line(first.lstrip("\ufeff")))
    bad: list[tuple[int | None, int, str]] = []

    def on_invalid(row: "pacsv.InvalidRow") -> str:
        if row.text.strip() and not bad:
            bad.append((row.number, row.actual_columns, row.text))
        return "skip"

    names = [f"c{i}" for i in range(width)]
    try:
        pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=0, use_threads=False, encoding="utf8"),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(include_columns=names[:1], column_types={names[0]: pa.string()}),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return width  # unreadable in other ways: the reader that follows reports it
    if bad:
        number, actual, text = bad[0]
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise DataValidationError(
            src,
            f"{actual} field(s), expected {width} like the {'header' if has_header else 'first'} line "
            f"(a truncated or malformed line: {shown!r})",
            row=number,
        )
    return width


def data_row_line(data: bytes, row: int, *, has_header: bool) -> int:
    """The file line (1-based, header and blank lines counted) of the ``row``-th data row (1-based) of CSV bytes.

    Data rows are counted as pandas and Arrow count them: blank lines (empty or only spaces) and the header line
    are not data rows; a quoted field spanning lines makes its row end on the later line. Returns ``row`` plus the
    header when the file has fewer rows (cannot happen for a row a reader produced).
    """
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text)
    header_pending = has_header
    seen = 0
    for fields in reader:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if header_pending:
            header_pending = False
            continue
        seen += 1
        if seen == row:
            return reader.line_num
    return row + int(has_header)


def looks_like_header(line: str) -> bool:
    """A CSV line is a header line when its first field is not a number."""
    field = line.lstrip("\ufeff").split(",", 1)[0].strip().strip("\"'").strip()
    return not NUMBER.match(field)


# ---------------------------------------------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------------------------------------------
def csv_suffix(path: str | Path) -> str | None:
    """``".csv"``, ``".csv.gz"`` or ``".zip"`` for a file name ending so (case-insensitive), else None."""
    name = Path(path).name.lower()
    for suffix in sorted(CSV_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return None


def zip_csv_member(zf: zipfile.ZipFile, src: str) -> zipfile.ZipInfo:
    """The one ``.csv`` member of a zip archive (as data.binance.vision ships files).

    Raises:
        DataValidationError: the archive holds no ``.csv`` member or more than one.
    """
    members = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    csvs = [i for i in members if i.filename.lower().endswith(".csv")]
    if len(csvs) != 1:
        listed = ", ".join(i.filename for i in members) or "nothing"
        raise DataValidationError(src, f"a .zip must hold exactly one .csv file; it holds {listed}")
    return csvs[0]


class CountingReader(io.RawIOBase):
    """A read-only binary stream that counts the bytes read through it (for progress reports)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        return data


@contextmanager
def open_csv(path: str | Path, src: str | None = None) -> Iterator[tuple[BinaryIO, int | None]]:
    """Open a ``.csv``, ``.csv.gz`` or ``.zip`` (one ``.csv`` member) file as a stream of CSV bytes.

    Nothing is read up front, so files of any size can be streamed.

    Yields:
        ``(stream, size)``: a binary stream of the CSV text and its size in bytes when known (the uncompressed
        member size for a zip, the file size for a plain CSV, None for gzip).

    Raises:
        DataValidationError: no such file, unsupported suffix, not a valid zip/gzip, or a zip without exactly one
            ``.csv`` member. Errors while the caller reads the stream are the caller's to translate
            (see :func:`read_error`).
    """
    p = Path(path)
    src = src or str(path)
    kind = csv_suffix(p)
    if kind is None:
        raise DataValidationError(
            src, f"unsupported file type {''.join(p.suffixes) or '(no suffix)'}; supported: {', '.join(CSV_SUFFIXES)}"
        )
    if not p.exists():
        raise DataValidationError(src, "no such file")
    if not p.is_file():
        raise DataValidationError(src, "not a regular file")
    try:
        if kind == ".csv":
            with p.open("rb") as fh:
                yield fh, p.stat().st_size
            return
        if kind == ".csv.gz":
            with gzip.open(p, "rb") as fh:
                yield fh, None
            return
        with zipfile.ZipFile(p) as zf:
            member = zip_csv_member(zf, src)
            with zf.open(member) as fh:
                yield fh, member.file_size
    except zipfile.BadZipFile as exc:
        raise DataValidationError(src, f"not a valid zip file ({exc})") from None


def read_error(src: str, exc: BaseException) -> DataValidationError:
    """A :class:`DataValidationError` for a failure while reading a stream from :func:`open_csv`."""
    if isinstance(exc, zipfile.BadZipFile):
        return DataValidationError(src, f"not a valid zip file ({exc})")
    if isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error)):
        return DataValidationError(src, f"corrupt compressed data ({exc})")
    if isinstance(exc, UnicodeDecodeError):
        return DataValidationError(src, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    if isinstance(exc, OSError):
        return DataValidationError(src, f"cannot read the file ({exc.strerror or exc})")
    return DataValidationError(src, f"cannot read the file ({type(exc).__name__}: {exc})")


def head_lines(path: str | Path, n: int = 2, src: str | None = None) -> list[str]:
    """The first ``n`` non-blank lines of a CSV file (any container of :func:`open_csv`), decoded and stripped."""
    src = src or str(path)
    out: list[str] = []
    with open_csv(path, src) as (fh, _size):
        try:
            for raw in fh:
                text = raw.decode("utf-8-sig" if not out else "utf-8", errors="replace").strip()
                if text:
                    out.append(text)
                    if len(out) >= n:
                        break
        except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
            raise read_error(src, exc) from None
    return out
