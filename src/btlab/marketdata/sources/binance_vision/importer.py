"""Bulk import of data.binance.vision files: klines into ``ohlcv``, trades and aggTrades into ``ticks``.

Files are ``.zip`` (one ``.csv`` inside, as Binance ships them), ``.csv`` or ``.csv.gz``, with or without a header
line (a file has one when the first field of its first line is not a number).

Kinds and layouts
-----------------
* klines -- ``open_time, open, high, low, close, volume, close_time, quote_volume, count, taker_buy_volume,
  taker_buy_quote_volume, ignore``: read and validated exactly as :func:`btlab.marketdata.sources.files.reader.read_bars_file`
  reads them (millisecond or microsecond open times, ``count`` -> ``trades``); a bad row rejects the whole file
  and nothing of it is written.
* trades -- spot ``id, price, qty, quote_qty, time, is_buyer_maker, is_best_match`` (futures files lack
  ``is_best_match``) -> one tick per row: ``trade_id`` = ``id``.
* aggTrades -- spot ``agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker, is_best_match`` (futures lack ``is_best_match``) -> one tick per AGGREGATED trade:
  ``trade_id`` = ``agg_trade_id`` (Binance's own aggregate id; the first/last trade ids are not stored), ``amount``
  = ``quantity`` (the sum over the trades it aggregates, all at one price, one taker side and one time).

For trades and aggTrades: ``ts`` = the trade time (milliseconds, or microseconds in spot files from 2025 on: the
unit is taken from the file's first good rows by magnitude), ``price`` in the quote asset, ``amount`` in the base
asset, ``side`` = the TAKER side = ``sell`` if ``is_buyer_maker`` else ``buy``. Ticks are upserted on ``(ts,
exchange, symbol, trade_id)``, so importing a file again changes nothing.

What a file is: from its name first (``BTCUSDT-1m-2024-01-01.zip`` -> klines of ``BTC/USDT``, timeframe ``1m``;
``BTCUSDT-trades-2024-01.zip``; ``BTCUSDT-aggTrades-2024-01-01.csv``), else from its header line, else from its
column count (12 klines, 8 spot aggTrades, 6 futures trades; 7 is spot trades when the 6th field is
``True``/``False``, else futures aggTrades). A kline file's timeframe comes from its name, else from ``timeframe=``
(``--timeframe``), else from its first row (``close_time - open_time + 1`` unit); when two of them say different
things the file is refused. The unified symbol comes from the market id by splitting off a known quote asset
(:data:`QUOTE_ASSETS`, longest match first: ``XRPETH`` -> ``XRP/ETH``), unless ``symbol=`` is given.

Every file is checked (suffix, symbol, kind, layout, klines' timeframe) and every argument validated before the
first one is imported, so a bad argument or an unrecognisable file writes nothing.

Bad rows in trades / aggTrades files are quarantined, not fatal: a row with the wrong number of fields, a trade id
that is not a whole number, an unparsable time or one in another unit than the file's, an ``is_buyer_maker``
other than true/false, and every rule of :func:`btlab.model.tick.split_valid_ticks` (price and amount finite and
> 0, time present). The report counts them by reason and keeps the first few (file line -- header and blank lines
counted, as everywhere in btlab --, reason, text). Blank lines are skipped.

Large files are streamed in blocks (``chunk_bytes`` of CSV text at a time; Arrow's CSV reader), so memory stays
constant whatever the file size: tick blocks are validated and upserted one by one (a file-level failure in the
middle of a tick file -- corrupt zip, invalid UTF-8, a decompression bomb -- raises after the earlier blocks were
written; they are valid, and importing the repaired file again simply rewrites them); kline files are staged
block by block and published only when all of them are valid (:func:`btlab.marketdata.sources.files.importer.stage_bars_file`).
The first lines of a file (to tell what it holds) are read with a length limit, compressed files are checked
against decompression bombs (:func:`btlab.marketdata.sources.files.csvio.open_csv`), and messages and quarantine samples quote at
most a short excerpt of a line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from btlab.errors import DataValidationError, InvalidArgumentError
from btlab.marketdata.sources.files.csvio import (
    EPOCH_UNIT_FACTORS,
    EXCERPT_CHARS,
    CountingReader,
    CsvBlocks,
    csv_suffix,
    epoch_units,
    excerpt,
    head_lines,
    looks_like_header,
    open_csv,
)
from btlab.marketdata.sources.binance_vision.schemas import (
    BLANK,
    KLINE_COLUMNS,
    TickLayout,
    to_ticks,
)
from btlab.marketdata.sources.files.importer import stage_bars_file
from btlab.marketdata.bars.from_ticks import bars_from_ticks
from btlab.model.timeframe import Timeframe

if TYPE_CHECKING:
    from btlab.store.base import Store

__all__ = [
    "QUOTE_ASSETS",
    "QuarantinedRow",
    "VisionImportReport",
    "check_binance_vision",
    "detect_kind",
    "import_binance_vision",
    "parse_vision_name",
    "unified_symbol",
]

#: Quote assets of Binance markets, to split a market id (``BTCUSDT``) into ``BTC/USDT`` (longest match wins).
QUOTE_ASSETS: tuple[str, ...] = (
    "USDT", "FDUSD", "USDC", "TUSD", "BUSD", "USDP", "USDS", "DAI", "UST", "PAX", "AEUR", "EURI", "EUR", "GBP",
    "AUD", "BRL", "TRY", "RUB", "UAH", "ZAR", "JPY", "PLN", "RON", "ARS", "MXN", "COP", "CZK", "IDR", "IDRT", "BIDR",
    "NGN", "KRW", "BKRW", "BVND", "VAI", "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
)
KINDS = ("klines", "trades", "aggTrades")
#: Rows shown per file in a report's quarantine sample.
SAMPLE_ROWS = 20

_NAME = re.compile(r"^(?P<market>[A-Za-z0-9]+)-(?P<what>aggTrades|trades|\d+(?:mo|[smhdw]))(?=[-_.]|$)", re.I)


# ---------------------------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------------------------
def unified_symbol(market_id: str) -> str | None:
    """``BTCUSDT`` -> ``BTC/USDT`` by the longest known quote asset ending the id; None if none fits."""
    text = market_id.strip().upper()
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if text.endswith(quote) and len(text) > len(quote):
            return f"{text[: -len(quote)]}/{quote}"
    return None


def parse_vision_name(name: str | Path) -> tuple[str | None, str | None, str | None]:
    """``(market_id, kind, timeframe)`` from a data.binance.vision file name; None for what it does not say.

    ``BTCUSDT-1h-2024-01-01.zip`` -> ``("BTCUSDT", "klines", "1h")``; ``BTCUSDT-aggTrades-2024-01.zip`` ->
    ``("BTCUSDT", "aggTrades", None)``; ``prices.csv`` -> ``(None, None, None)``.

    Raises:
        InvalidArgumentError: a kline interval that is not a fixed length (``1mo``).
    """
    match = _NAME.match(Path(name).name)
    if not match:
        return None, None, None
    market, what = match.group("market").upper(), match.group("what")
    if what.lower() == "aggtrades":
        return market, "aggTrades", None
    if what.lower() == "trades":
        return market, "trades", None
    if what.lower().endswith("mo"):
        raise InvalidArgumentError(f"{Path(name).name}: monthly klines ({what}) have no fixed length; not supported")
    return market, "klines", Timeframe.parse(what).value


# ---------------------------------------------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    """One quarantined row: its file line (1-based, header line counted; None if unknown), reason, the row's text."""

    row: int | None
    reason: str
    text: str


@dataclass(frozen=True)
class VisionImportReport:
    """What :func:`import_binance_vision` did with one file.

    Attributes:
        path: the file.
        kind: ``klines``, ``trades`` or ``aggTrades``.
        exchange, symbol: the series written; timeframe: the klines' timeframe (None for ticks).
        rows: rows written (bars or ticks; re-written rows included, which changes nothing).
        quarantined: malformed tick rows set aside (always 0 for klines, which reject the whole file instead).
        reasons: quarantined rows per reason.
        sample: the first :data:`SAMPLE_ROWS` quarantined rows.
        first, last: first and last bar open time / trade time written (UTC), None if nothing was written.
        gaps: klines: missing bars between first and last (:func:`btlab.marketdata.quality.gaps.find_gaps`); ticks:
            missing trade ids between consecutive good rows in file order (ids increasing by more than 1).
        bars_built: trades/aggTrades with ``bars=``: bars built from the file's ticks, per timeframe.
        bars_span: the UTC span ``[start, end)`` those bars were built for (:func:`file_span`), or None.
    """

    path: Path
    kind: str
    exchange: str
    symbol: str
    timeframe: str | None
    rows: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    sample: tuple[QuarantinedRow, ...] = ()
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    gaps: int = 0
    bars_built: dict[str, int] = field(default_factory=dict)
    bars_span: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def __str__(self) -> str:
        what = f"{self.timeframe} bars" if self.kind == "klines" else f"{self.kind} ticks"
        span = f"{self.first} .. {self.last}" if self.first is not None else "nothing written"
        bad = f", {self.quarantined} quarantined" if self.quarantined else ""
        return (f"{self.path.name}: {self.rows} {what} of {self.exchange} {self.symbol}, {span}, "
                f"{self.gaps} missing{bad}")


# ---------------------------------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------------------------------
def _norm(name: str) -> str:
    return name.strip().strip("\"'").strip()


def detect_kind(path: str | Path) -> tuple[str, bool, int]:
    """``(kind, has_header, field_count)`` of a data.binance.vision file, from its name, header or column count.

    Raises:
        DataValidationError: unreadable or empty file; a layout that fits no kind; a name that says one kind
            while the columns say another.
    """
    p = Path(path)
    src = str(path)
    _, named, _ = parse_vision_name(p)
    lines = head_lines(p, 2, src)
    if not lines:
        raise DataValidationError(src, "empty file")
    header = looks_like_header(lines[0])
    fields = [_norm(f) for f in lines[0].split(",")]
    data = [_norm(f) for f in lines[1].split(",")] if header and len(lines) > 1 else (None if header else fields)
    n = len(fields)
    by_layout: str | None = None
    if header:
        names = {f.lower() for f in fields}
        if {"open_time", "close_time"} <= names or n == len(KLINE_COLUMNS) and "open" in names:
            by_layout = "klines"
        elif "agg_trade_id" in names or "first_trade_id" in names:
            by_layout = "aggTrades"
        elif "id" in names and ("qty" in names or "quote_qty" in names):
            by_layout = "trades"
    else:
        if n == len(KLINE_COLUMNS):
            by_layout = "klines"
        elif n == 8:
            by_layout = "aggTrades"
        elif n == 6:
            by_layout = "trades"
        elif n == 7:
            by_layout = "trades" if fields[5].lower() in ("true", "false") else "aggTrades"
    kind = named or by_layout
    if kind is None:
        raise DataValidationError(
            src,
            f"cannot tell what this file holds ({n:,} columns"
            f"{', header ' + excerpt(','.join(fields)) if header else ''}): expected data.binance.vision klines (12 columns), trades (7, futures 6) or aggTrades (8, futures 7)",
        )
    if named is not None and by_layout is not None and named != by_layout:
        what = f"header {excerpt(','.join(fields))}" if header else f"{n:,} columns"
        raise DataValidationError(src, f"the name says {named} but the file has the {what} of {by_layout}")
    expected = {"klines": (12,), "trades": (6, 7), "aggTrades": (7, 8)}[kind]
    width = len(data) if data is not None else n
    if width not in expected:
        raise DataValidationError(
            src, f"a {kind} file has {' or '.join(map(str, expected))} columns; this one has {width:,}"
        )
    return kind, header, width


def _kline_timeframe_from_row(path: Path, src: str, header: bool) -> str | None:
    """The klines' timeframe from the first data row: ``close_time - open_time + 1`` in the file's unit."""
    lines = head_lines(path, 2, src)
    line = lines[1] if header and len(lines) > 1 else (lines[0] if not header else None)
    if line is None:
        return None
    fields = [_norm(f) for f in line.split(",")]
    try:
        open_time, close_time = int(fields[0]), int(fields[6])
    except (ValueError, IndexError):
        return None
    factor = EPOCH_UNIT_FACTORS[int(epoch_units(np.array([open_time]))[0])]
    length_ns = (close_time - open_time + 1) * factor
    if length_ns <= 0 or length_ns % 1_000_000_000:
        return None
    return Timeframe.from_seconds(length_ns // 1_000_000_000).value


# ---------------------------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------------------------
def import_binance_vision(
    paths: str | Path | Iterable[str | Path],
    store: Store,
    *,
    exchange: str = "binance",
    symbol: str | None = None,
    timeframe: Timeframe | str | None = None,
    bars: Sequence[Timeframe | str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_bytes: int = 4 << 20,
) -> list[VisionImportReport]:
    """Import data.binance.vision klines / trades / aggTrades files (see the module docstring).

    Every file and argument is checked first (nothing is written if one is bad); then the files are imported one
    after the other, each idempotently (upserts on the natural keys).

    Args:
        paths: one path or several (``.zip``, ``.csv``, ``.csv.gz``).
        store: where to write (``ohlcv`` for klines, ``ticks`` for trades and aggTrades).
        exchange: ccxt exchange id written with the data (``binance``; e.g. ``binanceusdm`` for USD-M futures).
        symbol: the unified symbol for every file (default: from each file name).
        timeframe: the klines' timeframe, for kline files whose name does not say it (it must agree with the
            name, and with the first row's ``close_time - open_time``, when they say it). Only for klines.
        bars: for trades/aggTrades files: also build these bar timeframes from each file's ticks, over the span
            the file covers completely (:func:`file_span`, :func:`btlab.marketdata.bars.from_ticks.bars_from_ticks`).
        progress: called as ``progress(bytes_done, bytes_total)`` over all files (uncompressed CSV bytes).
        chunk_bytes: CSV text per block, for tick and kline files alike (memory use is a small multiple of it).

    Returns:
        One :class:`VisionImportReport` per file, in order.

    Raises:
        DataValidationError: a file is missing, unreadable, of an unknown layout, or (klines) holds a bad row --
            naming the file, and the row (file line) and column where they apply. A file-level check fails
            before anything is written; a bad kline row rejects its file (files before it were imported).
        InvalidArgumentError: empty ``exchange``, an invalid ``timeframe`` or ``bars`` timeframe, ``timeframe``
            given for a trades file or contradicting a kline file's name, ``bars`` given with no trades file; no
            symbol can be inferred from a file name and none was given; a monthly kline file.
    """
    plans, bar_tfs = _plans(paths, exchange=exchange, symbol=symbol, timeframe=timeframe, bars=bars)
    files = [plan.path for plan in plans]
    sizes = [_size(p) for p in files]
    total = sum(sizes)
    done = 0
    reports = []
    for plan, size in zip(plans, sizes, strict=True):
        base = done

        def step(n: int, base: int = base) -> None:
            if progress is not None:
                progress(base + n, total)

        if plan.kind == "klines":
            report = _import_klines(plan, store, exchange, chunk_bytes)
        else:
            report = _import_ticks(plan.path, plan.src, store, exchange, plan.symbol, plan.kind, plan.header,
                                   plan.width, chunk_bytes, step)
            if bar_tfs and report.first is not None:
                start, end = file_span(plan.path, report.first, report.last)
                built = bars_from_ticks(store, exchange=exchange, symbol=plan.symbol, timeframes=bar_tfs,
                                        start=start, end=end)
                report = replace(report, bars_built=built, bars_span=(start, end))
        done = base + size
        if progress is not None:
            progress(done, total)
        reports.append(report)
    return reports


def check_binance_vision(
    paths: str | Path | Iterable[str | Path],
    *,
    exchange: str = "binance",
    symbol: str | None = None,
    timeframe: Timeframe | str | None = None,
    bars: Sequence[Timeframe | str] | None = None,
) -> list[tuple[str, str, str | None]]:
    """Check files and arguments exactly as :func:`import_binance_vision` does first, without a store.

    Returns: ``(kind, symbol, timeframe)`` per file (timeframe for klines only).

    Raises: what :func:`import_binance_vision` raises before writing anything.
    """
    plans, _ = _plans(paths, exchange=exchange, symbol=symbol, timeframe=timeframe, bars=bars)
    return [(p.kind, p.symbol, p.timeframe.value if p.timeframe else None) for p in plans]


def _plans(paths: str | Path | Iterable[str | Path], *, exchange: str, symbol: str | None,
           timeframe: Timeframe | str | None, bars: Sequence[Timeframe | str] | None,
           ) -> tuple[list["_Plan"], list[Timeframe]]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not str(exchange or "").strip():
        raise InvalidArgumentError("exchange must not be empty")
    given_tf = None if timeframe is None else Timeframe.parse(timeframe)
    bar_tfs = [Timeframe.parse(tf) for tf in (bars or [])]
    plans = [_plan(Path(path), symbol, given_tf) for path in items]
    if bar_tfs and all(plan.kind == "klines" for plan in plans):
        raise InvalidArgumentError("bars= (--bars) builds bars from trades/aggTrades files; these are all klines")
    return plans, bar_tfs


@dataclass(frozen=True)
class _Plan:
    """What a file is, established before anything is imported."""

    path: Path
    src: str
    symbol: str
    kind: str
    header: bool
    width: int
    timeframe: Timeframe | None  # klines only


def _plan(path: Path, symbol: str | None, given_tf: Timeframe | None) -> _Plan:
    src = str(path)
    if csv_suffix(path) is None:
        raise DataValidationError(src, "unsupported file type: expected .zip, .csv or .csv.gz")
    market, _, named_tf = parse_vision_name(path)
    unified = symbol or (unified_symbol(market) if market else None)
    if unified is None:
        raise InvalidArgumentError(
            f"{path.name}: cannot infer the symbol from the file name"
            f"{f' (no known quote asset ends {market})' if market else ''}; pass symbol= (--symbol)"
        )
    kind, header, width = detect_kind(path)
    if kind != "klines":
        if given_tf is not None:
            raise InvalidArgumentError(
                f"{path.name} holds {kind}, not klines: timeframe= (--timeframe) is the timeframe of kline files; "
                f"to build bars from trades use bars= (--bars {given_tf})"
            )
        return _Plan(path, src, unified, kind, header, width, None)
    if named_tf and given_tf and Timeframe.parse(named_tf) != given_tf:
        raise InvalidArgumentError(f"{path.name}: the file name says {named_tf} klines but --timeframe is {given_tf}")
    row_tf = _kline_timeframe_from_row(path, src, header)
    claimed = named_tf or (given_tf.value if given_tf else None)
    if claimed and row_tf and Timeframe.parse(claimed) != Timeframe.parse(row_tf):
        said = "the name says" if named_tf else "--timeframe says"
        raise DataValidationError(
            src, f"{said} {claimed} klines but the first row spans {row_tf} (close_time - open_time + 1)",
            row=2 if header else 1, column="close_time",
        )
    tf_text = claimed or row_tf
    if tf_text is None:
        raise DataValidationError(
            src, "cannot tell the klines' timeframe from the file name or its first row: pass timeframe= (--timeframe)"
        )
    return _Plan(path, src, unified, kind, header, width, Timeframe.parse(tf_text))


_DATE_IN_NAME = re.compile(r"-(\d{4})-(\d{2})(?:-(\d{2}))?(?=\.|$)")


def file_span(path: str | Path, first: pd.Timestamp, last: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC span a trades file covers completely: its day (``...-2024-01-01.zip``) or month (``...-2024-01.zip``)
    from the file name, else ``[first, last]`` of its trades (so the partial first and last windows are not built).
    """
    name = Path(path).name
    for suffix in (".zip", ".gz", ".csv"):
        name = name.removesuffix(suffix)
    match = _DATE_IN_NAME.search(name)
    if match:
        year, month, day = match.groups()
        start = pd.Timestamp(f"{year}-{month}-{day or '01'}", tz="UTC")
        end = start + (pd.Timedelta(days=1) if day else pd.DateOffset(months=1))
        return start, pd.Timestamp(end)
    return first, last + pd.Timedelta(1, "us")


def _size(path: Path) -> int:
    try:
        with open_csv(path) as (_fh, size):
            return int(size) if size is not None else path.stat().st_size
    except DataValidationError:
        return 0  # reported when the file is imported


def _import_klines(plan: _Plan, store: Store, exchange: str, chunk_bytes: int) -> VisionImportReport:
    tf = plan.timeframe
    assert tf is not None
    # staged chunk by chunk, published only when the whole file is valid
    staged = stage_bars_file(plan.path, store, exchange=exchange, symbol=plan.symbol, timeframe=tf,
                             source=plan.path.name, calendar="24/7", chunk_bytes=chunk_bytes)
    return VisionImportReport(plan.path, "klines", exchange, plan.symbol, tf.value, staged.rows, 0, {}, (),
                              staged.first, staged.last, staged.gaps)


@dataclass
class _TickState:
    unit: int | None = None  # index into EPOCH_UNIT_NAMES, fixed by the first good rows
    rows: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    sample: list[QuarantinedRow] = field(default_factory=list)
    first: int | None = None
    last: int | None = None
    prev_id: int | None = None
    missing_ids: int = 0

    def quarantine(self, reason: str, count: int = 1) -> None:
        self.quarantined += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count

    def keep(self, row: int | None, reason: str, text: str) -> None:
        if len(self.sample) < SAMPLE_ROWS:  # the text shortened: a hostile row may be a block long
            shown = text if len(text) <= 4 * EXCERPT_CHARS else text[: 4 * EXCERPT_CHARS] + "..."
            self.sample.append(QuarantinedRow(row, reason, shown))


def _import_ticks(path: Path, src: str, store: Store, exchange: str, symbol: str, kind: str, header: bool,
                  width: int, chunk_bytes: int, step: Callable[[int], None]) -> VisionImportReport:
    if header:
        layout = TickLayout.from_header([_norm(f) for f in head_lines(path, 1, src)[0].split(",")], src)
    else:
        layout = TickLayout.positional(kind, width)
    state = _TickState()

    def on_invalid(line: int | None, fields: int, text: str) -> None:
        reason = f"{fields} fields, expected {width}"
        state.quarantine(reason)
        state.keep(line, reason, text)

    with open_csv(path, src) as (fh, _size):
        counter = CountingReader(fh)
        # empty lines are delivered (and skipped in _tick_batch) so that Arrow's row numbers stay file lines
        blocks = CsvBlocks(counter, src, width=width, skip_lines=1 if header else 0, block_bytes=chunk_bytes,
                           on_invalid=on_invalid)
        for batch, base in blocks:
            _tick_batch(batch, base, blocks, layout, state, store, exchange, symbol, src)
            step(counter.count)
    first = None if state.first is None else pd.Timestamp(state.first, tz="UTC")
    last = None if state.last is None else pd.Timestamp(state.last, tz="UTC")
    return VisionImportReport(path, kind, exchange, symbol, None, state.rows, state.quarantined, dict(state.reasons),
                              tuple(state.sample), first, last, state.missing_ids)


def _tick_batch(batch: pa.RecordBatch, base: int, blocks: CsvBlocks, layout: TickLayout, state: _TickState,
                store: Store, exchange: str, symbol: str, src: str) -> None:
    """Convert one block (:func:`~btlab.marketdata.sources.binance_vision.schemas.to_ticks`), count and sample
    what it set aside, upsert its ticks and follow the file's span and trade-id sequence."""
    if batch.num_rows == 0:
        return
    block = to_ticks(batch, layout, state.unit, src)
    state.unit = block.unit
    for i in np.flatnonzero((block.reason != None) & (block.reason != BLANK)):  # noqa: E711
        state.quarantine(str(block.reason[i]))
        if len(state.sample) < SAMPLE_ROWS:
            text = ",".join(str(batch.column(c)[int(i)].as_py()) for c in range(batch.num_columns))
            state.keep(blocks.line(base + int(i)), str(block.reason[i]), text)
    valid = block.ticks
    if len(valid):
        valid["exchange"] = exchange
        valid["symbol"] = symbol
        state.rows += store.upsert("ticks", valid)
        ns = valid["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        lo, hi = int(ns.min()), int(ns.max())
        state.first = lo if state.first is None else min(state.first, lo)
        state.last = hi if state.last is None else max(state.last, hi)
        seq = block.ids if state.prev_id is None else np.concatenate([[state.prev_id], block.ids])
        diff = np.diff(seq)
        state.missing_ids += int((diff[diff > 1] - 1).sum())
        state.prev_id = int(block.ids[-1])
