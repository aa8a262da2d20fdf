"""Many bar files at once: a folder's bar files, and the symbol each file holds.

A folder of per-instrument files (e.g. the S&P 500 constituents, ``AAPL_data.csv`` ... ``ZTS_data.csv``, columns
``date, open, high, low, close, volume, Name``) is imported in one go: :func:`bar_files` lists the files,
:func:`symbol_of_file` names each file's instrument.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from btlab.errors import DataValidationError
from btlab.marketdata.sources.files.csvio import open_csv, split_line
from btlab.marketdata.sources.files.reader import SUPPORTED_SUFFIXES, check_bars_file

__all__ = ["SYMBOL_COLUMN_NAMES", "bar_files", "symbol_of_file"]

#: CSV columns that name the instrument of each row (matched case-insensitively, first match wins).
SYMBOL_COLUMN_NAMES: tuple[str, ...] = ("name", "symbol", "ticker")


def _is_bar_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and name.endswith(SUPPORTED_SUFFIXES)


def bar_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to import: each file as given, and for each folder its bar files (the names ending in one of
    :data:`~btlab.marketdata.sources.files.reader.SUPPORTED_SUFFIXES`, directly inside it, not in sub-folders,
    hidden files skipped), sorted by name. Other files in a folder (a README, ...) are ignored.

    Raises:
        DataValidationError: a path that does not exist, a file of an unsupported type, or a folder without any
            bar file (naming it).
    """
    out: list[Path] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted((f for f in p.iterdir() if _is_bar_file(f)), key=lambda f: f.name)
            if not found:
                raise DataValidationError(str(p), f"folder holds no bar file ({', '.join(SUPPORTED_SUFFIXES)})")
            out.extend(found)
        else:
            check_bars_file(p)
            out.append(p)
    return out


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def symbol_of_file(path: str | Path) -> str:
    """The instrument a bar file holds.

    * A CSV (``.csv``, ``.csv.gz``, ``.zip``) with a ``Name``, ``symbol`` or ``ticker`` column: its value, which
      must be the same on every row (the S&P 500 constituents files: ``AAPL``).
    * Otherwise the file name up to its first ``_`` (``GSPC_1927-2023.csv`` -> ``GSPC``; ``SPY.parquet`` ->
      ``SPY``).

    Raises:
        DataValidationError: the symbol column is empty on a row, or names two instruments (naming the file line
            and both values), or the file cannot be read.
    """
    p = Path(path)
    if check_bars_file(p) in (".csv", ".csv.gz", ".zip"):
        found = _symbol_column_value(p)
        if found is not None:
            return found
    symbol = _stem(p).split("_", 1)[0].strip()
    if not symbol:
        raise DataValidationError(str(p), "cannot take a symbol from the file name (it starts with '_'): give --symbol")
    return symbol


def _symbol_column_value(path: Path) -> str | None:
    """The one value of the file's symbol column, or None if it has none (see :func:`symbol_of_file`)."""
    src = str(path)
    with open_csv(path, src) as (raw, _):
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        header = split_line(text.readline())
        lowered = [h.strip().lower() for h in header]
        column = next((lowered.index(n) for n in SYMBOL_COLUMN_NAMES if n in lowered), None)
        if column is None:
            return None
        value: str | None = None
        for number, line in enumerate(text, start=2):
            if not line.strip(" ,\r\n"):
                continue
            fields = split_line(line.rstrip("\r\n"))
            here = fields[column].strip() if column < len(fields) else ""
            if not here:
                raise DataValidationError(src, "no symbol", row=number, column=header[column].strip())
            if value is None:
                value = here
            elif here != value:
                raise DataValidationError(src, f"symbol {here!r} differs from {value!r} of the first row: one "
                                          "instrument per file", row=number, column=header[column].strip())
        return value
