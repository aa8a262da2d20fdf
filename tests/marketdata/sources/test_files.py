"""Importing bar files into a real DuckDB store, on real market data only.

Inputs are built in temporary folders by converting the real files in ``data/`` losslessly (data.binance.vision
kline CSVs with and without a header, in milliseconds and microseconds, gzipped and zipped; parquet; ISO-string
CSVs), and bad inputs are corrupted copies of those.
"""

from __future__ import annotations

import gzip
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import btlab
from btlab.errors import BtlabError, DataValidationError
from btlab.marketdata.sources.binance_vision.schemas import KLINE_COLUMNS as BINANCE_KLINE_COLUMNS
from btlab.marketdata.sources.files.importer import ImportReport, import_bars
from btlab.marketdata.sources.files.reader import read_bars_file
from btlab.marketdata.quality.gaps import find_gaps
from btlab.model.bar import BAR_COLUMNS
from btlab.store.duckdb import DuckDBStore
from realdata import DATA, SHARED

H1_FILE = DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"
M1_FILE = DATA / "BTC_USDT-1m_2025-05-20_2025-08-18.feather"
AAPL_FILE = DATA / "AAPL_data.csv"
SPY_FILE = SHARED / "data" / "equities" / "spy_1min" / (
    "SPY_1min_2024-02-20_2024-05-17.csv"
)

HOUR_NS = 3_600 * 10**9
DAY_NS = 86_400 * 10**9
SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
K = 40_000  # the (1-based) data row corrupted in bad-input files: deep in the file, so a partial write would show
# errors name the FILE LINE (header counted): data row K is line K + 1 in a file with a header line


# ---------------------------------------------------------------------------------------------------------------
# real data and lossless conversions of it
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def h1_missing(h1: pd.DataFrame) -> int:
    """Missing hourly bars between first and last, counted independently of btlab with numpy."""
    ns = ns_of(h1["date"])
    steps = np.diff(ns)
    assert (steps > 0).all() and (steps % HOUR_NS == 0).all()
    missing = int((steps // HOUR_NS - 1).sum())
    assert missing == (ns[-1] - ns[0]) // HOUR_NS + 1 - len(ns)  # a second, different count
    return missing


def ns_of(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC epoch nanoseconds of timezone-aware times, as int64."""
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def _epoch(ts: pd.Series, unit: str) -> np.ndarray:
    return ns_of(ts) // {"s": 10**9, "ms": 10**6, "us": 10**3}[unit]


def kline_frame(bars: pd.DataFrame, unit: str) -> pd.DataFrame:
    """The data.binance.vision kline layout; columns the source does not have are left empty ("ignore" is 0)."""
    open_time = _epoch(bars["date"], unit)
    per_hour = {"ms": 3_600_000, "us": 3_600_000_000}[unit]
    out = pd.DataFrame({"open_time": open_time})
    for col in ("open", "high", "low", "close", "volume"):
        out[col] = bars[col].to_numpy()
    out["close_time"] = open_time + per_hour - 1
    for col in ("quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume"):
        out[col] = ""
    out["ignore"] = 0
    assert tuple(out.columns) == BINANCE_KLINE_COLUMNS
    return out


def write_csv(frame: pd.DataFrame, path: Path, *, header: bool = True) -> Path:
    frame.to_csv(path, index=False, header=header, lineterminator="\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, h1: pd.DataFrame) -> dict[str, Path]:
    """Every supported layout of the 1h file."""
    d = tmp_path_factory.mktemp("formats")
    out: dict[str, Path] = {"feather": H1_FILE}
    kl_ms, kl_us = kline_frame(h1, "ms"), kline_frame(h1, "us")
    ms_text = kl_ms.to_csv(index=False, lineterminator="\n")
    us_text = kl_us.to_csv(index=False, lineterminator="\n")
    header_line, ms_body = ms_text.split("\n", 1)
    us_body = us_text.split("\n", 1)[1]

    def put(key: str, name: str, text: str) -> None:
        out[key] = d / name
        out[key].write_text(text)

    put("kline_ms_header_csv", "BTCUSDT-1h-ms-header.csv", ms_text)
    put("kline_ms_noheader_csv", "BTCUSDT-1h-ms.csv", ms_body)
    put("kline_us_noheader_csv", "BTCUSDT-1h-us.csv", us_body)
    # data.binance.vision ships one CSV per zip; 2025+ spot files are in microseconds
    for key, text in (("kline_ms_noheader_zip", ms_body), ("kline_us_header_zip", us_text)):
        out[key] = d / f"BTCUSDT-1h-{key}.zip"
        with zipfile.ZipFile(out[key], "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("BTCUSDT-1h-2017-2024.csv", text)
    out["kline_ms_noheader_csv_gz"] = d / "BTCUSDT-1h-ms.csv.gz"
    out["kline_ms_noheader_csv_gz"].write_bytes(gzip.compress(ms_body.encode()))
    # ccxt fetch_ohlcv rows, no header
    write_csv(kl_ms.iloc[:, :6], d / "ohlcv-6col.csv", header=False)
    out["ccxt_6col_noheader_csv"] = d / "ohlcv-6col.csv"
    # parquet: tz-naive datetime (taken as UTC) and tz-aware in another zone (converted)
    naive = h1.assign(date=h1["date"].dt.tz_localize(None))
    naive.to_parquet(d / "naive.parquet", index=False)
    out["parquet_naive"] = d / "naive.parquet"
    h1.assign(date=h1["date"].dt.tz_convert("Europe/Berlin")).to_parquet(d / "berlin.parquet", index=False)
    out["parquet_berlin"] = d / "berlin.parquet"
    h1.set_index("date").to_parquet(d / "indexed.parquet")  # time as the index, as pandas writes it
    out["parquet_time_index"] = d / "indexed.parquet"
    # epoch seconds in a feather file
    h1.assign(date=_epoch(h1["date"], "s")).to_feather(d / "epoch_s.feather")
    out["feather_epoch_s"] = d / "epoch_s.feather"
    # ISO strings: with a New York offset (converted to UTC), naive (taken as UTC); headers in other cases
    iso = h1.rename(columns=str.capitalize)
    iso_ny = iso.assign(Date=iso["Date"].dt.tz_convert("America/New_York").map(lambda t: t.isoformat()))
    out["iso_offset_csv"] = write_csv(iso_ny, d / "iso_offset.csv")
    iso_naive = h1.rename(columns={"date": "Open Time"}).assign(
        **{"Open Time": h1["date"].dt.strftime("%Y-%m-%d %H:%M:%S")}
    )
    out["iso_naive_csv"] = write_csv(iso_naive, d / "iso_naive.csv")
    return out


FORMATS = [
    "feather", "kline_ms_header_csv", "kline_ms_noheader_csv", "kline_us_noheader_csv", "kline_ms_noheader_zip",
    "kline_us_header_zip", "kline_ms_noheader_csv_gz", "ccxt_6col_noheader_csv", "parquet_naive", "parquet_berlin",
    "parquet_time_index", "feather_epoch_s", "iso_offset_csv", "iso_naive_csv",
]


def ohlcv_rows(store: DuckDBStore) -> pd.DataFrame:
    """Every stored bar with its identity and source, in a fixed order."""
    return store.query("SELECT * FROM ohlcv ORDER BY exchange, symbol, timeframe, ts")


# ---------------------------------------------------------------------------------------------------------------
# good files
# ---------------------------------------------------------------------------------------------------------------
def test_known_gap_figure_holds(h1: pd.DataFrame, h1_missing: int) -> None:
    assert len(h1) == 58_419
    assert h1_missing == 128  # the figure in data/README.md, checked against the data


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_imports_exactly(
    fmt: str, files: dict[str, Path], expected_h1: pd.DataFrame, h1_missing: int, tmp_path: Path
) -> None:
    path = files[fmt]
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        report = import_bars(path, store, **SERIES)
        stored = store.read_bars(**SERIES)
        sources = store.query("SELECT DISTINCT source FROM ohlcv")["source"].tolist()
    pd.testing.assert_frame_equal(stored, expected_h1, check_exact=True)
    assert sources == [path.name]
    assert isinstance(report, ImportReport)
    assert (report.rows, report.gaps) == (58_419, h1_missing)
    assert report.first == pd.Timestamp("2017-08-17 04:00", tz="UTC")
    assert report.last == pd.Timestamp("2024-04-21 14:00", tz="UTC")
    assert (report.path, report.exchange, report.symbol, report.timeframe) == (path, "binance", "BTC/USDT", "1h")


@pytest.mark.parametrize("fmt", ["kline_us_header_zip", "iso_offset_csv", "parquet_berlin"])
def test_read_bars_file_canonical_frame(fmt: str, files: dict[str, Path], expected_h1: pd.DataFrame) -> None:
    frame = read_bars_file(files[fmt], timeframe="1h")
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]" and str(frame["trades"].dtype) == "Int64"
    assert isinstance(frame.index, pd.RangeIndex)
    pd.testing.assert_frame_equal(frame, expected_h1, check_exact=True)


def test_1m_feather_no_gaps(tmp_path: Path) -> None:
    src = pd.read_feather(M1_FILE)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        report = import_bars(M1_FILE, store, exchange="binance", symbol="BTC/USDT", timeframe="1m", source="freqtrade")
        stored = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert (report.rows, report.gaps) == (130_708, 0)
    ns = ns_of(src["date"])
    assert (np.diff(ns) == 60 * 10**9).all()  # independently: no missing minute
    assert stored["ts"].equals(src["date"].astype("datetime64[ns, UTC]"))
    for col in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(stored[col].to_numpy(), src[col].to_numpy())


def test_reimport_changes_nothing(files: dict[str, Path], tmp_path: Path) -> None:
    path = files["kline_us_header_zip"]
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        first = import_bars(path, store, **SERIES)
        before = ohlcv_rows(store)
        second = import_bars(path, store, **SERIES)
        after = ohlcv_rows(store)
        count = int(store.query("SELECT count(*) AS n FROM ohlcv")["n"].iloc[0])
    assert first == second
    assert count == len(before) == 58_419
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def test_aapl_daily_csv(tmp_path: Path) -> None:
    raw = pd.read_csv(AAPL_FILE)  # pandas parses floats correctly rounded by default
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        report = import_bars(AAPL_FILE, store, exchange="nasdaq", symbol="AAPL", timeframe="1d")
        stored = store.read_bars(exchange="nasdaq", symbol="AAPL", timeframe="1d")
    ts = pd.to_datetime(raw["date"], format="%Y-%m-%d").dt.tz_localize("UTC")
    assert report.rows == len(raw) == len(stored) == 1259
    assert stored["ts"].equals(ts.astype("datetime64[ns, UTC]"))
    for col in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(stored[col].to_numpy(), raw[col].to_numpy(dtype="float64")), col
    assert stored["trades"].isna().all()  # the Name column is ignored, no trade count in this file
    assert report.calendar == "XNYS" and report.gaps == 0  # NYSE sessions: weekends and holidays are not missing
    assert (report.first, report.last) == (ts.iloc[0], ts.iloc[-1])


@pytest.mark.skipif(not SPY_FILE.exists(), reason=f"shared data not present ({SPY_FILE})")
def test_spy_csv_with_offsets_and_transactions(tmp_path: Path) -> None:
    """datetime strings carry a New York offset (converted to UTC); `transactions` is the trade count."""
    raw = pd.read_csv(SPY_FILE)  # pandas parses floats correctly rounded by default
    frame = read_bars_file(SPY_FILE, timeframe="1m")
    expected_ts = pd.to_datetime(raw["datetime"], utc=True).astype("datetime64[ns, UTC]")
    assert frame["ts"].equals(expected_ts)
    assert frame["ts"].iloc[0] == pd.Timestamp("2024-02-20 09:00", tz="UTC")  # 04:00-05:00
    assert frame["trades"].astype("int64").tolist() == raw["transactions"].tolist()
    assert np.array_equal(frame["close"].to_numpy(), raw["close"].to_numpy())


def test_lazy_top_level_import_bars() -> None:
    assert btlab.import_bars is import_bars


# ---------------------------------------------------------------------------------------------------------------
# bad files: each error names file, row and column; the store is left exactly as it was
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def populated_store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file already holding the 1h series (the one bad files target) and another series (AAPL)."""
    path = tmp_path_factory.mktemp("store") / "populated.duckdb"
    with DuckDBStore(path) as store:
        import_bars(H1_FILE, store, **SERIES)
        import_bars(AAPL_FILE, store, exchange="nasdaq", symbol="AAPL", timeframe="1d")
    return path


@pytest.fixture
def store(populated_store_file: Path, tmp_path: Path):
    path = tmp_path / "s.duckdb"
    shutil.copyfile(populated_store_file, path)
    with DuckDBStore(path) as s:
        yield s


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def set_field(lines: list[str], row: int, column: str, value: str, *, header: bool) -> None:
    """Set one cell of a kline CSV held as lines; ``row`` is the 1-based data row."""
    i = row - 1 + int(header)
    fields = lines[i].split(",")
    fields[BINANCE_KLINE_COLUMNS.index(column)] = value
    lines[i] = ",".join(fields)


def get_field(lines: list[str], row: int, column: str, *, header: bool) -> str:
    return lines[row - 1 + int(header)].split(",")[BINANCE_KLINE_COLUMNS.index(column)]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_rejected(path: Path, store: DuckDBStore, timeframe: str, row: int | None, column: str | None,
                    reason: str) -> DataValidationError:
    """Import must fail naming file, row and column, and leave every stored bar (and its source) untouched."""
    before = ohlcv_rows(store)
    with pytest.raises(DataValidationError) as info:
        import_bars(path, store, exchange="binance", symbol="BTC/USDT", timeframe=timeframe)
    err = info.value
    message = str(err)
    assert isinstance(err, BtlabError)
    assert (err.source, err.row, err.column) == (str(path), row, column), message
    where = ", ".join([str(path)] + ([f"row {row}"] if row is not None else []) + (
        [f"column '{column}'"] if column is not None else []))
    assert message.startswith(where + ": "), message
    assert re.search(reason, message), message
    after = ohlcv_rows(store)
    assert len(after) == len(before) == 58_419 + 1_259
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    return err


def _mixed_units(lines: list[str], header: bool) -> None:
    ms = get_field(lines, K, "open_time", header=header)
    set_field(lines, K, "open_time", ms + "000", header=header)  # this one row in microseconds


def _unparsable_epoch(lines: list[str], header: bool) -> None:
    ms = get_field(lines, K, "open_time", header=header)
    set_field(lines, K, "open_time", ms[:3] + "O" + ms[4:], header=header)  # letter O for zero


def _duplicate(lines: list[str], header: bool) -> None:
    set_field(lines, K, "open_time", get_field(lines, K - 1, "open_time", header=header), header=header)


def _swap_rows(lines: list[str], header: bool) -> None:
    i = K - 1 + int(header)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]


def _empty_close(lines: list[str], header: bool) -> None:
    set_field(lines, K, "close", "", header=header)


def _high_below_low(lines: list[str], header: bool) -> None:
    high, low = get_field(lines, K, "high", header=header), get_field(lines, K, "low", header=header)
    assert float(high) > float(low)
    set_field(lines, K, "high", low, header=header)
    set_field(lines, K, "low", high, header=header)


def _negative_open(lines: list[str], header: bool) -> None:
    set_field(lines, K, "open", "-" + get_field(lines, K, "open", header=header), header=header)


BAD_ROWS = {
    # case: (corruption, reported row, reported column, reason pattern)
    "mixed_epoch_units": (_mixed_units, K, "open_time", r"microseconds.*milliseconds"),
    "unparsable_epoch": (_unparsable_epoch, K, "open_time", r"cannot parse time"),
    "duplicate_timestamp": (_duplicate, K, "open_time", r"duplicate timestamp"),
    "non_increasing_timestamp": (_swap_rows, K + 1, "open_time", r"not increasing"),
    "nan_price": (_empty_close, K, "close", r"missing"),
    "high_below_low": (_high_below_low, K, "high", r"high .* below low"),
    "negative_price": (_negative_open, K, "open", r"price must be positive"),
}


@pytest.mark.parametrize("header", [True, False], ids=["header", "no_header"])
@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_rejected(case: str, header: bool, files: dict[str, Path], store: DuckDBStore,
                          tmp_path: Path) -> None:
    corrupt, row, column, reason = BAD_ROWS[case]
    lines = lines_of(files["kline_ms_header_csv" if header else "kline_ms_noheader_csv"])
    corrupt(lines, header)
    path = write_lines(tmp_path / f"bad_{case}.csv", lines)
    assert_rejected(path, store, "1h", row + int(header), column, reason)  # the file line


def test_unparsable_iso_timestamp(files: dict[str, Path], store: DuckDBStore, tmp_path: Path) -> None:
    lines = lines_of(files["iso_offset_csv"])
    assert lines[0].split(",")[0] == "Date"
    fields = lines[K].split(",")  # data row K (line K + 1 with the header)
    fields[0] = "2022-02-30T10:00:00-05:00"  # February 30th
    lines[K] = ",".join(fields)
    path = write_lines(tmp_path / "bad_iso.csv", lines)
    assert_rejected(path, store, "1h", K + 1, "Date", r"cannot parse time '2022-02-30T10:00:00-05:00'")


def test_missing_column(files: dict[str, Path], store: DuckDBStore, tmp_path: Path) -> None:
    low = BINANCE_KLINE_COLUMNS.index("low")
    lines = [",".join(f for j, f in enumerate(line.split(",")) if j != low)
             for line in lines_of(files["kline_ms_header_csv"])]
    path = write_lines(tmp_path / "no_low.csv", lines)
    assert_rejected(path, store, "1h", None, "low", r"missing column\(s\) low")


def test_wrong_timeframe_first_row(files: dict[str, Path], h1: pd.DataFrame, store: DuckDBStore) -> None:
    ns = ns_of(h1["date"])
    expected_row = int(np.flatnonzero(ns % DAY_NS != 0)[0]) + 1  # first hourly bar that is not a 1d open time
    assert expected_row == 1  # the file starts at 04:00
    assert_rejected(files["kline_ms_header_csv"], store, "1d", expected_row + 1, "open_time",  # line 2: header
                    r"not a 1d bar open time")


def test_wrong_timeframe_file_starting_at_midnight(h1: pd.DataFrame, store: DuckDBStore, tmp_path: Path) -> None:
    """The first bar is a valid daily open time; the check must still catch the next one."""
    ns = ns_of(h1["date"])
    start = int(np.flatnonzero(ns % DAY_NS == 0)[0])
    part = h1.iloc[start:].reset_index(drop=True)
    part_ns = ns[start:]
    expected_row = int(np.flatnonzero(part_ns % DAY_NS != 0)[0]) + 1
    assert expected_row == 2
    path = write_csv(kline_frame(part, "ms"), tmp_path / "from_midnight.csv", header=False)
    assert_rejected(path, store, "1d", expected_row, "open_time", r"not a 1d bar open time")


def test_1m_bars_as_1h(store: DuckDBStore, tmp_path: Path) -> None:
    m1 = pd.read_feather(M1_FILE)
    ns = ns_of(m1["date"])
    expected_row = int(np.flatnonzero(ns % HOUR_NS != 0)[0]) + 1
    path = tmp_path / "m1.parquet"
    m1.to_parquet(path, index=False)
    assert_rejected(path, store, "1h", expected_row, "date", r"not a 1h bar open time")


def test_unknown_suffix(files: dict[str, Path], store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1h.txt"
    shutil.copyfile(files["kline_ms_header_csv"], path)
    err = assert_rejected(path, store, "1h", None, None, r"unsupported file type \.txt")
    for suffix in (".csv", ".csv.gz", ".zip", ".feather", ".parquet"):
        assert suffix in str(err)


def test_missing_file(store: DuckDBStore, tmp_path: Path) -> None:
    assert_rejected(tmp_path / "nowhere" / "BTCUSDT-1h.csv", store, "1h", None, None, r"no such file")


def test_zip_with_two_csvs(files: dict[str, Path], store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(files["kline_ms_noheader_csv"], arcname="a.csv")
        zf.write(files["kline_ms_noheader_csv"], arcname="b.csv")
    assert_rejected(path, store, "1h", None, None, r"exactly one \.csv.*a\.csv, b\.csv")


def test_header_line_counted_in_zip_and_gzip(files: dict[str, Path], tmp_path: Path) -> None:
    """A zipped CSV with a header and a gzipped one without name the file line of the same data row: one apart
    (plain CSVs: above)."""
    rows = []
    for key, header in (("kline_ms_header_csv", True), ("kline_ms_noheader_csv", False)):
        lines = lines_of(files[key])
        _negative_open(lines, header)
        text = "\n".join(lines) + "\n"
        if header:
            path = tmp_path / "bad.zip"
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr("inner.csv", text)
        else:
            path = tmp_path / "bad.csv.gz"
            path.write_bytes(gzip.compress(text.encode()))
        with pytest.raises(DataValidationError) as info:
            read_bars_file(path)
        assert info.value.source == str(path)
        rows.append((info.value.row, info.value.column))
    assert rows == [(K + 1, "open"), (K, "open")]


# ---------------------------------------------------------------------------------------------------------------
# find_gaps on real timestamps
# ---------------------------------------------------------------------------------------------------------------
def test_find_gaps_1h_matches_calendar(h1: pd.DataFrame, h1_missing: int) -> None:
    gaps = find_gaps(h1["date"], "1h")
    assert list(gaps.columns) == ["gap_start", "gap_end", "missing_bars"]
    assert str(gaps["gap_start"].dtype) == "datetime64[ns, UTC]" and gaps["missing_bars"].dtype == np.int64
    assert int(gaps["missing_bars"].sum()) == h1_missing == 128
    # independently: every hour between first and last that has no bar
    full = pd.date_range(h1["date"].iloc[0], h1["date"].iloc[-1], freq="1h")
    absent = full.difference(pd.DatetimeIndex(h1["date"]))
    expanded = np.concatenate([
        np.arange(s.value, e.value + 1, HOUR_NS) for s, e in zip(gaps["gap_start"], gaps["gap_end"])
    ])
    assert np.array_equal(expanded, ns_of(absent))
    assert ((gaps["gap_end"] - gaps["gap_start"]) // pd.Timedelta("1h") + 1).tolist() == gaps["missing_bars"].tolist()
    steps = np.diff(ns_of(h1["date"]))
    assert len(gaps) == int((steps > HOUR_NS).sum())


def test_find_gaps_1m_none_then_one(tmp_path: Path) -> None:
    ts = pd.read_feather(M1_FILE)["date"]
    empty = find_gaps(ts, "1m")
    assert empty.empty and list(empty.columns) == ["gap_start", "gap_end", "missing_bars"]
    holed = ts.drop(index=range(1000, 1090))  # remove 90 real minutes
    gaps = find_gaps(holed, "1m")
    assert len(gaps) == 1
    assert gaps.iloc[0].to_dict() == {"gap_start": ts.iloc[1000], "gap_end": ts.iloc[1089], "missing_bars": 90}


def test_find_gaps_inputs(h1: pd.DataFrame) -> None:
    naive = find_gaps(h1["date"].dt.tz_localize(None), "1h")  # naive taken as UTC
    pd.testing.assert_frame_equal(naive, find_gaps(h1["date"], "1h"))
    coarse = find_gaps(h1["date"].iloc[:600], "1h")
    assert coarse.iloc[0]["gap_start"] == pd.Timestamp("2017-09-06 17:00", tz="UTC")
    assert find_gaps(h1["date"].iloc[:1], "1h").empty
    with pytest.raises(ValueError, match="strictly increasing"):
        find_gaps(h1["date"].iloc[[0, 2, 1]], "1h")
