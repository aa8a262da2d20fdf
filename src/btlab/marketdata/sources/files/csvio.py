"""Low-level reading shared by the file importers: CSV containers (plain, gzip, zip), header detection, epoch times.

Used by :mod:`btlab.marketdata.sources.files.reader` (bar files) and :mod:`btlab.marketdata.sources.binance_vision.importer` (data.binance.vision
files), so both read the same containers, lines and times the same way -- in blocks, so memory does not depend on
the size of a file.

Hostile input: a compressed file is refused when it holds more than ``BTLAB_MAX_COMPRESSION_RATIO`` (default 100)
times its compressed size (:func:`open_csv`: from its declared sizes at once, and while reading whatever they
say); lines are read with a length limit (:data:`MAX_LINE_BYTES` for the first lines, a block for the others); an
error quotes at most a short excerpt of the input (:func:`excerpt`).

Epoch times: the unit is detected from the magnitude of the value: ``< 1e11`` seconds, ``< 1e14`` milliseconds,
``< 1e17`` microseconds, otherwise nanoseconds (Binance spot files are in milliseconds, and in microseconds from
2025 on).

Rows and lines: errors name the FILE LINE (1-based, the header line and blank lines counted, as an editor shows
it; see :class:`btlab.errors.DataValidationError`). Blank lines (empty or only spaces) are skipped, as pandas and
Arrow skip them; every other line must have as many fields as the first line (:class:`CsvBlocks`).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from btlab.errors import DataValidationError

__all__ = [
    "CSV_SUFFIXES",
    "EPOCH_UNIT_FACTORS",
    "EPOCH_UNIT_LIMITS",
    "EPOCH_UNIT_NAMES",
    "EXCERPT_CHARS",
    "MAX_LINE_BYTES",
    "NUMBER",
    "RATIO_SLACK",
    "CountingReader",
    "CsvBlocks",
    "LineMap",
    "csv_suffix",
    "epoch_to_utc",
    "epoch_unit_of",
    "epoch_units",
    "bomb_error",
    "excerpt",
    "first_lines",
    "gzip_declared_size",
    "head_lines",
    "looks_like_header",
    "open_csv",
    "ratio_limit",
    "read_error",
    "split_line",
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
#: Longest line (bytes) read when looking at the first lines of a file (header detection, kind detection).
MAX_LINE_BYTES = 1 << 20
#: Characters of an input value an error message quotes at most.
EXCERPT_CHARS = 80
#: Uncompressed bytes always allowed on top of the ratio limit (tiny files compress unusually well).
RATIO_SLACK = 1 << 20


# ---------------------------------------------------------------------------------------------------------------
# epoch times
# ---------------------------------------------------------------------------------------------------------------
def epoch_units(values: np.ndarray) -> np.ndarray:
    """Index into :data:`EPOCH_UNIT_NAMES` of each epoch value, from its magnitude."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    return np.searchsorted(np.array(EPOCH_UNIT_LIMITS), magnitude, side="right")


def epoch_to_utc(values: np.ndarray, nulls: np.ndarray, src: str, col: str, unit: int | None = None) -> pd.Series:
    """Epoch numbers (one unit per file, detected by magnitude) -> datetime64[ns, UTC]; NaT where ``nulls``.

    Args:
        unit: the unit (index into :data:`EPOCH_UNIT_NAMES`) the values must be in; None: the unit of most of them
            (:func:`epoch_unit_of` gives it, to pass on to the next chunk of a file).

    Raises:
        DataValidationError: a value is not finite, its magnitude puts it in another unit than ``unit`` (or than
            most of the values; naming the first such row), or it is out of the datetime64[ns] range.
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
        if unit is None:
            unit = int(np.bincount(units, minlength=len(EPOCH_UNIT_NAMES)).argmax())
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


def epoch_unit_of(values: np.ndarray, nulls: np.ndarray) -> int | None:
    """The unit (index into :data:`EPOCH_UNIT_NAMES`) of most of the present epoch values; None if none is."""
    present = values[~nulls]
    if present.size == 0 or (present.dtype.kind == "f" and not np.isfinite(present).all()):
        return None
    return int(np.bincount(epoch_units(present), minlength=len(EPOCH_UNIT_NAMES)).argmax())


# ---------------------------------------------------------------------------------------------------------------
# limits and excerpts
# ---------------------------------------------------------------------------------------------------------------
def excerpt(text: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of the start of ``text``, at most about ``limit`` characters (cut with ``...``): how errors quote
    any input."""
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", errors="replace")
    shown = repr(text[:limit])
    if len(shown) > limit + 2:  # escapes (\x00 ...) made it longer
        return shown[:limit] + "..."
    return shown + ("..." if len(text) > limit else "")


def ratio_limit() -> float:
    """The largest uncompressed:compressed ratio accepted (``BTLAB_MAX_COMPRESSION_RATIO``, default 100).

    Raises:
        InvalidArgumentError: an invalid ``BTLAB_MAX_COMPRESSION_RATIO``.
    """
    from btlab.settings import max_compression_ratio

    return max_compression_ratio()


def bomb_error(src: str, what: str, ratio: float, limit: float) -> DataValidationError:
    """The error for a compressed input over the ratio limit: ``what`` it declares or holds, its ratio, the limit."""
    return DataValidationError(
        src,
        f"{what}: more than {limit:g} times its compressed size ({ratio:,.0f}:1), refused as a decompression bomb "
        f"(real CSV data compresses about 3-10 times; BTLAB_MAX_COMPRESSION_RATIO raises the limit)",
    )


# ---------------------------------------------------------------------------------------------------------------
# lines and headers
# ---------------------------------------------------------------------------------------------------------------
def _split_line(line: str) -> list[str]:
    """Fields of one CSV line (double-quote aware; a field over the csv module's size limit: split on commas)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return line.split(",")


def split_line(line: str) -> list[str]:
    """Fields of one CSV line (double-quote aware, a byte-order mark removed)."""
    return _split_line(line.lstrip("\ufeff"))


def looks_like_header(line: str) -> bool:
    """A CSV line is a header line when its first field is not a number."""
    field = line.lstrip("\ufeff").split(",", 1)[0].strip().strip("\"'").strip()
    return not NUMBER.match(field)


def first_lines(fh: BinaryIO, n: int, src: str, *, max_line: int = MAX_LINE_BYTES) -> list[tuple[int, str]]:
    """The first ``n`` non-blank lines of a CSV stream as ``(file line, text)``: decoded (a byte-order mark
    removed, undecodable bytes replaced) and stripped; file lines are 1-based, blank lines counted.

    Reads at most ``max_line`` bytes a line, so a file without newlines costs no more memory than that, and
    gives up after ``max_line`` bytes of blank lines in a row.

    Raises:
        DataValidationError: a line longer than ``max_line`` bytes (naming its file line), more blank lines than
            that, or a read error of the stream (corrupt compressed data, a decompression bomb, ...).
    """
    out: list[tuple[int, str]] = []
    number = 0
    blank = 0  # bytes of blank lines since the last line kept
    try:
        while len(out) < n:
            raw = fh.readline(max_line + 1)
            if not raw:
                break
            number += 1
            if len(raw) > max_line and not raw.endswith(b"\n"):
                raise DataValidationError(
                    src, f"line longer than {max_line:,} bytes (not a CSV file?), starting {excerpt(raw)}",
                    row=number,
                )
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8", errors="replace").strip()
            if text:
                out.append((number, text))
                blank = 0
            else:
                blank += len(raw)
                if blank > max_line:
                    raise DataValidationError(
                        src, f"more than {max_line:,} bytes of blank lines before line {number + 1} (not a CSV file?)"
                    )
    except DataValidationError:
        raise
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise read_error(src, exc) from None
    return out


def head_lines(path: str | Path, n: int = 2, src: str | None = None, *, max_line: int = MAX_LINE_BYTES) -> list[str]:
    """The first ``n`` non-blank lines of a CSV file (any container of :func:`open_csv`), decoded and stripped.

    Lines are read with a length limit (``max_line`` bytes): a line longer than that raises
    :class:`~btlab.errors.DataValidationError` naming its file line, whatever the file holds.
    """
    src = src or str(path)
    with open_csv(path, src) as (fh, _size):
        return [text for _, text in first_lines(fh, n, src, max_line=max_line)]


class LineMap:
    """File lines of the rows a CSV reader delivers, given the lines it skipped (bounded memory).

    The reader delivers rows in file order starting at file line ``first``; every line it does not deliver (a
    blank or malformed line) is reported with :meth:`skip` in increasing order. Skipped lines are kept as ranges,
    and ranges before the rows still to be asked about are folded into a count (:meth:`forget_before`), so memory
    does not grow with the file.
    """

    def __init__(self, first: int) -> None:
        self.first = first
        self._folded = 0  # skipped lines before every row still asked about
        self._ranges: list[list[int]] = []  # [start, end] inclusive, increasing, disjoint

    def skip(self, line: int) -> None:
        """Line ``line`` (1-based) was not delivered."""
        if self._ranges and line == self._ranges[-1][1] + 1:
            self._ranges[-1][1] = line
        else:
            self._ranges.append([line, line])

    def line(self, index: int) -> int:
        """The file line of the ``index``-th (0-based) delivered row."""
        line = self.first + index + self._folded
        for start, end in self._ranges:
            if start > line:
                break
            line += end - start + 1
        return line

    def forget_before(self, index: int) -> None:
        """Rows before the ``index``-th delivered row will not be asked about again."""
        line = self.line(index)
        while self._ranges and self._ranges[0][1] < line:
            start, end = self._ranges.pop(0)
            self._folded += end - start + 1


class CsvBlocks:
    """A CSV stream read block by block with Arrow (C++), every cell as text, with the file line of every row.

    Iterating yields ``(table, base)``: a :class:`pyarrow.Table` of string columns named ``c0, c1, ...`` (only
    ``columns`` if given) holding about ``block_bytes`` of CSV text, and the index of its first row among all rows
    delivered so far; :meth:`line` turns such an index into the file line. Empty lines are delivered as rows whose
    cells are all empty strings (skip them); lines of only spaces are not delivered. No cell is null (an empty cell
    is ``""``). Arrow reads :data:`MAX_LINE_BYTES` at a time (its reader keeps several blocks in flight, so a bigger
    block costs memory many times over) and the yielded table gathers such reads: memory is a small multiple of
    ``block_bytes`` whatever the file's size, and a line longer than ``min(block_bytes, MAX_LINE_BYTES)`` is an
    error.

    A line with another number of fields than ``width`` goes to ``on_invalid(line, fields, text)`` and is not
    delivered; without ``on_invalid`` it ends the read with :class:`~btlab.errors.DataValidationError` naming its
    file line, the counts and an excerpt (``first`` names the line the width came from, for that message).

    Args:
        fh: the CSV bytes (e.g. from :func:`open_csv`).
        src: the file, for messages.
        width: the number of fields every line has.
        skip_lines: file lines before the first row (e.g. up to and including the header line).
        columns: indexes of the fields to deliver (all when None).
        block_bytes: CSV text per table yielded.

    Raises (while iterating):
        DataValidationError: a malformed line (without ``on_invalid``), a line longer than a read, text that is
            not UTF-8, or a read error of the stream (:func:`read_error`).
    """

    def __init__(self, fh: BinaryIO, src: str, *, width: int, skip_lines: int = 0, columns: Sequence[int] | None = None,
                 block_bytes: int = 4 << 20, on_invalid: Callable[[int | None, int, str], None] | None = None,
                 first: str = "header") -> None:
        self.fh = fh
        self.src = src
        self.width = width
        self.skip_lines = skip_lines
        self.columns = None if columns is None else list(columns)
        self.block_bytes = max(1, int(block_bytes))
        self.read_bytes = min(self.block_bytes, MAX_LINE_BYTES)
        self.on_invalid = on_invalid
        self.first = first
        self.lines = LineMap(skip_lines + 1)
        self.delivered = 0
        self._bad: tuple[int | None, int, str] | None = None

    def line(self, index: int) -> int:
        """The file line (1-based) of the ``index``-th delivered row (0-based, as ``base + i``)."""
        return self.lines.line(index)

    def _handle(self, row: Any) -> str:
        number = int(row.number) if row.number is not None and row.number > 0 else None
        if number is not None:
            self.lines.skip(number)
        if not row.text.strip():  # a line of spaces: blank
            return "skip"
        if self.on_invalid is not None:
            self.on_invalid(number, int(row.actual_columns), row.text)
            return "skip"
        self._bad = (number, int(row.actual_columns), row.text)
        return "error"

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        import pyarrow as pa

        reader = self._read(self._open)
        if reader is None:
            return  # nothing after the skipped lines
        per_table = -(-self.block_bytes // self.read_bytes)
        pending: list[Any] = []
        while True:
            batch = self._read(reader.read_next_batch)
            if batch is not None:
                pending.append(batch)
            if pending and (batch is None or len(pending) >= per_table):
                table = pa.Table.from_batches(pending)
                pending = []
                base = self.delivered
                self.delivered += table.num_rows
                yield table, base  # (errors of the caller's work pass through untouched)
                self.lines.forget_before(self.delivered)
            if batch is None:
                return

    def _open(self) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        names = [f"c{i}" for i in range(self.width)]
        include = names if self.columns is None else [names[i] for i in self.columns]
        read_options = pacsv.ReadOptions(column_names=names, skip_rows=self.skip_lines, block_size=self.read_bytes,
                                         use_threads=False, encoding="utf8")
        # empty lines are delivered so that Arrow's row numbers stay file lines
        parse_options = pacsv.ParseOptions(invalid_row_handler=self._handle, ignore_empty_lines=False)
        convert_options = pacsv.ConvertOptions(column_types={n: pa.string() for n in include},
                                               include_columns=include, strings_can_be_null=False,
                                               quoted_strings_can_be_null=False)
        return pacsv.open_csv(self.fh, read_options=read_options, parse_options=parse_options,
                              convert_options=convert_options)

    def _read(self, call: Callable[[], Any]) -> Any:
        """``call()`` with read errors translated; None at the end of the data."""
        import pyarrow as pa

        try:
            return call()
        except StopIteration:
            return None
        except pa.ArrowInvalid as exc:
            if self._bad is None and "Empty CSV file" in str(exc):
                return None
            raise self._arrow_error(exc) from None
        except DataValidationError:
            raise
        except (OSError, EOFError, UnicodeDecodeError, zlib.error, zipfile.BadZipFile) as exc:
            raise read_error(self.src, exc) from None

    def _arrow_error(self, exc: Exception) -> DataValidationError:
        text = str(exc)
        if self._bad is not None:
            number, actual, line = self._bad
            return DataValidationError(
                self.src,
                f"{actual} field(s), expected {self.width} like the {self.first} line (a truncated or malformed "
                f"line: {excerpt(line)})",
                row=number,
            )
        if "straddling" in text:
            return DataValidationError(
                self.src, f"a line longer than {self.block_bytes:,} bytes after file line "
                f"{self.line(self.delivered) - 1} (not a CSV file?)",
            )
        if "UTF8" in text or "UTF-8" in text:
            return DataValidationError(self.src, "not UTF-8 text")
        return DataValidationError(self.src, f"not a readable CSV ({excerpt(text.splitlines()[0], 200)})")


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
        DataValidationError: the archive holds no ``.csv`` member or more than one (listing a few names, each
            shortened).
    """
    members = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    csvs = [i for i in members if i.filename.lower().endswith(".csv")]
    if len(csvs) != 1:
        shown = [i.filename if len(i.filename) <= EXCERPT_CHARS else i.filename[:EXCERPT_CHARS] + "..."
                 for i in members[:5]]
        listed = ", ".join(shown) + (f" and {len(members) - 5:,} more" if len(members) > 5 else "") or "nothing"
        raise DataValidationError(src, f"a .zip must hold exactly one .csv file; it holds {listed}")
    return csvs[0]


class CountingReader(io.RawIOBase):
    """A read-only binary stream that counts the bytes read through it (for progress reports), and optionally
    refuses to deliver more than ``limit`` bytes (``too_much()`` is raised then)."""

    def __init__(self, raw: BinaryIO, limit: int | None = None,
                 too_much: Callable[[], Exception] | None = None) -> None:
        self._raw = raw
        self.count = 0
        self.limit = limit
        self._too_much = too_much

    def readable(self) -> bool:
        return True

    def _counted(self, n: int) -> None:
        self.count += n
        if self.limit is not None and self.count > self.limit:
            raise (self._too_much() if self._too_much else OSError(f"more than {self.limit} bytes"))

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._counted(n)
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()  # in blocks, each counted
        data = self._raw.read(size)
        self._counted(len(data))
        return data


def gzip_declared_size(path: Path) -> int | None:
    """The size field (ISIZE) at the end of a gzip file: the uncompressed size of its last member modulo 2**32,
    or None for a file too short to hold one. A lower bound of the real size for an honest single-member file
    under 4 GiB; a forged one is caught by the running limit of :func:`open_csv`."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, io.SEEK_END)
            if fh.tell() < 18:  # 10-byte header + 8-byte trailer
                return None
            fh.seek(-4, io.SEEK_END)
            return int.from_bytes(fh.read(4), "little")
    except OSError:
        return None


@contextmanager
def open_csv(path: str | Path, src: str | None = None, *,
             max_ratio: float | None = None) -> Iterator[tuple[BinaryIO, int | None]]:
    """Open a ``.csv``, ``.csv.gz`` or ``.zip`` (one ``.csv`` member) file as a stream of CSV bytes.

    Nothing is read up front, so files of any size can be streamed. Compressed files are checked against
    decompression bombs: a file whose declared uncompressed size (the zip member's size in the archive's
    directory, the gzip size field) is more than ``max_ratio`` times its compressed size (plus 1 MiB) is refused
    at once, and the stream refuses to deliver more than that many bytes whatever the headers say (a zip member
    also never delivers more than its declared size: Python's zipfile stops there and checks the CRC).

    Args:
        max_ratio: the ratio limit; None: ``BTLAB_MAX_COMPRESSION_RATIO``
            (:func:`btlab.settings.max_compression_ratio`).

    Yields:
        ``(stream, size)``: a buffered binary stream of the CSV text and its size in bytes when known (the
        uncompressed member size for a zip, the file size for a plain CSV, None for gzip).

    Raises:
        DataValidationError: no such file, unsupported suffix, not a valid zip/gzip, a zip without exactly one
            ``.csv`` member, or a decompression bomb (also while the caller reads the stream). Other errors while
            the caller reads the stream are the caller's to translate (see :func:`read_error`).
        InvalidArgumentError: an invalid ``BTLAB_MAX_COMPRESSION_RATIO``.
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
    if kind == ".csv":
        try:
            plain = p.open("rb")
        except OSError as exc:
            raise read_error(src, exc) from None
        with plain as fh:
            yield fh, p.stat().st_size
        return
    ratio = ratio_limit() if max_ratio is None else float(max_ratio)
    try:
        if kind == ".csv.gz":
            packed = p.stat().st_size
            limit = int(ratio * packed) + RATIO_SLACK
            declared = gzip_declared_size(p)
            if declared is not None and declared > limit:
                raise bomb_error(src, f"declares {declared:,} bytes uncompressed from {packed:,}", declared / packed,
                                 ratio)
            with gzip.open(p, "rb") as raw:
                guard = CountingReader(raw, limit, lambda: bomb_error(
                    src, f"decompresses to over {limit:,} bytes from {packed:,}", limit / packed, ratio))
                with io.BufferedReader(guard, 1 << 16) as fh:
                    yield fh, None
            return
        with zipfile.ZipFile(p) as zf:
            member = zip_csv_member(zf, src)
            packed = max(1, member.compress_size)
            limit = int(ratio * packed) + RATIO_SLACK
            if member.file_size > limit:
                raise bomb_error(src, f"{excerpt(member.filename)} declares {member.file_size:,} bytes from {packed:,}",
                            member.file_size / packed, ratio)
            with zf.open(member) as raw:
                guard = CountingReader(raw, limit, lambda: bomb_error(
                    src, f"decompresses to over {limit:,} bytes from {packed:,}", limit / packed, ratio))
                with io.BufferedReader(guard, 1 << 16) as fh:
                    yield fh, member.file_size
    except zipfile.BadZipFile as exc:
        raise DataValidationError(src, f"not a valid zip file ({excerpt(str(exc), 120)})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise read_error(src, exc) from None


def read_error(src: str, exc: BaseException) -> DataValidationError:
    """A :class:`DataValidationError` for a failure while reading a stream from :func:`open_csv` (messages
    shortened: they may quote the input)."""
    if isinstance(exc, DataValidationError):
        return exc
    if isinstance(exc, zipfile.BadZipFile):
        return DataValidationError(src, f"not a valid zip file ({excerpt(str(exc), 120)})")
    if isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error)):
        return DataValidationError(src, f"corrupt compressed data ({excerpt(str(exc), 120)})")
    if isinstance(exc, UnicodeDecodeError):
        return DataValidationError(src, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    if isinstance(exc, OSError):
        return DataValidationError(src, f"cannot read the file ({excerpt(str(exc.strerror or exc), 120)})")
    return DataValidationError(src, f"cannot read the file ({type(exc).__name__}: {excerpt(str(exc), 120)})")
