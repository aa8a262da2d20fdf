"""data.binance.vision bulk import on real data only.

* aggTrades: the real Binance XRP/ETH aggregated trades in ``data/`` (12,477 trades), as shipped (no header), with
  a header line, zipped; corrupted copies for the quarantine.
* klines: the real BTC/USDT 1h feather written losslessly in the Binance kline layout (ms and us, header or not,
  zip or CSV).
* trades: the recorded Binance WebSocket trades (``btcusdt_2024080[89].gz``, 19,904 trades) written
  losslessly in the trades layout (``quote_qty`` = price x qty computed exactly in decimal).
"""

from __future__ import annotations

import gzip
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from btlab.errors import DataValidationError, InvalidArgumentError
from btlab.marketdata.sources.binance_vision.importer import (
    VisionImportReport,
    detect_kind,
    import_binance_vision,
    parse_vision_name,
    unified_symbol,
)
from btlab.marketdata.sources.binance_vision.schemas import KLINE_COLUMNS, TRADE_COLUMNS
from btlab.store.duckdb import DuckDBStore
from realdata import REPO

ROOT = REPO
AGG_FILE = ROOT / "data" / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
H1_FILE = ROOT / "data" / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"
# the recorded streams: bundled in data/ when present, else the shared data set
_WS_NAMES = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
WS_DIR = next((d for d in (ROOT / "data", ROOT.parent / "shared" / "data" / "binance" / "ws_spot")
               if all((d / n).exists() for n in _WS_NAMES)), ROOT / "data")
WS_FILES = [WS_DIR / n for n in _WS_NAMES]
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match"
TRADES_HEADER = ",".join(TRADE_COLUMNS)


# ---------------------------------------------------------------------------------------------------------------
# inputs and independent expectations
# ---------------------------------------------------------------------------------------------------------------
def agg_lines() -> list[str]:
    return AGG_FILE.read_text().splitlines()


def expected_ticks(lines: list[str], *, id_col: int, time_col: int, qty_col: int, ibm_col: int, unit: str,
                   exchange: str, symbol: str) -> pd.DataFrame:
    """Ticks from CSV data lines with the standard library only: float(str) prices, int times, True -> sell."""
    rows = [line.split(",") for line in lines]
    per = {"ms": 10**6, "us": 10**3}[unit]
    out = pd.DataFrame({
        "ts": pd.to_datetime([int(r[time_col]) * per for r in rows], unit="ns", utc=True),
        "exchange": exchange,
        "symbol": symbol,
        "trade_id": [str(int(r[id_col])) for r in rows],
        "price": [float(r[1]) for r in rows],
        "amount": [float(r[qty_col]) for r in rows],
        "side": ["sell" if r[ibm_col] == "True" else "buy" for r in rows],
    })
    out["ts"] = out["ts"].astype("datetime64[ns, UTC]")
    return sort_ticks(out)


def sort_ticks(frame: pd.DataFrame) -> pd.DataFrame:
    key = frame["trade_id"].astype("int64")
    return frame.assign(_k=key).sort_values(["symbol", "_k"]).drop(columns="_k").reset_index(drop=True)


def stored_ticks(store: DuckDBStore) -> pd.DataFrame:
    frame = store.query("SELECT ts, exchange, symbol, trade_id, price, amount, side FROM ticks")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[ns, UTC]")
    for col in ("exchange", "symbol", "trade_id", "side"):
        frame[col] = frame[col].astype(object)
    return sort_ticks(frame)


def assert_ticks_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want)
    assert got["ts"].equals(want["ts"])
    for col in ("exchange", "symbol", "trade_id", "side"):
        assert got[col].tolist() == want[col].tolist(), col
    for col in ("price", "amount"):
        assert np.array_equal(got[col].to_numpy(), want[col].to_numpy()), col


def expected_agg() -> pd.DataFrame:
    return expected_ticks(agg_lines(), id_col=0, time_col=5, qty_col=2, ibm_col=6, unit="ms", exchange="binance",
                          symbol="XRP/ETH")


def write_zip(path: Path, member: str, text: str) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    return path


@pytest.fixture
def db(tmp_path: Path):
    with DuckDBStore(tmp_path / "bv.duckdb") as store:
        yield store


def tick_count(store: DuckDBStore) -> int:
    return int(store.query("SELECT count(*) AS n FROM ticks")["n"].iloc[0])


# ---------------------------------------------------------------------------------------------------------------
# names and detection
# ---------------------------------------------------------------------------------------------------------------
def test_names_and_symbols() -> None:
    assert parse_vision_name("BTCUSDT-1m-2024-01-01.zip") == ("BTCUSDT", "klines", "1m")
    assert parse_vision_name("ETHBTC-1d-2024-01.zip") == ("ETHBTC", "klines", "1d")
    assert parse_vision_name("BTCUSDT-trades-2024-01.zip") == ("BTCUSDT", "trades", None)
    assert parse_vision_name(AGG_FILE.name) == ("XRPETH", "aggTrades", None)
    assert parse_vision_name("export.csv") == (None, None, None)
    with pytest.raises(InvalidArgumentError, match="monthly"):
        parse_vision_name("BTCUSDT-1mo-2024-01.zip")
    assert unified_symbol("XRPETH") == "XRP/ETH"
    assert unified_symbol("BTCUSDT") == "BTC/USDT"
    assert unified_symbol("BTCFDUSD") == "BTC/FDUSD"
    assert unified_symbol("USDTTRY") == "USDT/TRY"
    assert unified_symbol("ETHBTC") == "ETH/BTC"
    assert unified_symbol("XYZ") is None


def test_detect_kind_from_content(tmp_path: Path) -> None:
    body = "\n".join(agg_lines()[:3]) + "\n"
    assert detect_kind(AGG_FILE) == ("aggTrades", False, 8)
    (tmp_path / "a.csv").write_text(body)
    assert detect_kind(tmp_path / "a.csv") == ("aggTrades", False, 8)
    (tmp_path / "h.csv").write_text(AGG_HEADER + "\n" + body)
    assert detect_kind(tmp_path / "h.csv") == ("aggTrades", True, 8)
    futures_agg = "\n".join(",".join(line.split(",")[:7]) for line in agg_lines()[:3])  # no is_best_match
    (tmp_path / "f.csv").write_text(futures_agg)
    assert detect_kind(tmp_path / "f.csv") == ("aggTrades", False, 7)
    (tmp_path / "XRPETH-trades-2019-10.csv").write_text(body)
    with pytest.raises(DataValidationError, match="the name says trades but the file has the 8 columns of aggTrades"):
        detect_kind(tmp_path / "XRPETH-trades-2019-10.csv")
    (tmp_path / "odd.csv").write_text("1,2,3\n")
    with pytest.raises(DataValidationError, match="cannot tell what this file holds"):
        detect_kind(tmp_path / "odd.csv")


# ---------------------------------------------------------------------------------------------------------------
# aggTrades
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agg_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("agg")
    body = AGG_FILE.read_text()
    out = {"csv_no_header": AGG_FILE}
    out["csv_header"] = d / "XRPETH-aggTrades-2019-10-11.csv"
    out["csv_header"].write_text(AGG_HEADER + "\n" + body)
    out["zip_no_header"] = write_zip(d / "XRPETH-aggTrades-2019-10.zip", "XRPETH-aggTrades-2019-10.csv", body)
    out["zip_header"] = write_zip(d / "XRPETH-aggTrades-2019-10-12.zip", "XRPETH-aggTrades-2019-10-12.csv",
                                  AGG_HEADER + "\r\n" + body.replace("\n", "\r\n"))
    out["csv_gz"] = d / "XRPETH-aggTrades-2019-10-13.csv.gz"
    out["csv_gz"].write_bytes(gzip.compress(body.encode()))
    return out


@pytest.mark.parametrize("fmt", ["csv_no_header", "csv_header", "zip_no_header", "zip_header", "csv_gz"])
def test_agg_trades_import_exactly(fmt: str, agg_files: dict[str, Path], db: DuckDBStore) -> None:
    (report,) = import_binance_vision(agg_files[fmt], db)
    assert isinstance(report, VisionImportReport)
    assert (report.kind, report.exchange, report.symbol, report.timeframe) == ("aggTrades", "binance", "XRP/ETH", None)
    assert (report.rows, report.quarantined, report.gaps) == (12_477, 0, 0)
    want = expected_agg()
    assert_ticks_equal(stored_ticks(db), want)
    assert (report.first, report.last) == (want["ts"].min(), want["ts"].max())
    assert report.first == pd.Timestamp("2019-10-11 00:00:11.620", tz="UTC")


def test_agg_trades_reimport_is_idempotent(agg_files: dict[str, Path], db: DuckDBStore) -> None:
    import_binance_vision(agg_files["zip_no_header"], db)
    before = stored_ticks(db)
    reports = import_binance_vision([agg_files["csv_header"], agg_files["csv_no_header"]], db)
    assert [r.rows for r in reports] == [12_477, 12_477]
    assert tick_count(db) == 12_477
    pd.testing.assert_frame_equal(stored_ticks(db), before, check_exact=True)


def test_agg_trades_in_small_chunks_with_progress(agg_files: dict[str, Path], db: DuckDBStore) -> None:
    calls: list[tuple[int, int]] = []
    (report,) = import_binance_vision(agg_files["zip_header"], db, chunk_bytes=64 << 10,
                                      progress=lambda d, t: calls.append((d, t)))
    assert report.rows == 12_477
    assert len(calls) > 10  # streamed block by block
    total = zipfile.ZipFile(agg_files["zip_header"]).infolist()[0].file_size
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert_ticks_equal(stored_ticks(db), expected_agg())


def test_symbol_override_and_exchange(tmp_path: Path, db: DuckDBStore) -> None:
    path = tmp_path / "export.csv"
    path.write_text(AGG_FILE.read_text())
    with pytest.raises(InvalidArgumentError, match="cannot infer the symbol"):
        import_binance_vision(path, db)
    (report,) = import_binance_vision(path, db, symbol="XRP/ETH", exchange="binanceus")
    assert (report.kind, report.symbol, report.exchange) == ("aggTrades", "XRP/ETH", "binanceus")
    assert db.query("SELECT DISTINCT exchange, symbol FROM ticks").values.tolist() == [["binanceus", "XRP/ETH"]]


def _corrupt(fields: list[str], how: str) -> str:
    f = list(fields)
    if how == "price_text":
        f[1] = "0.0014x"
    elif how == "price_nan":
        f[1] = "nan"
    elif how == "price_zero":
        f[1] = "0.00000000"
    elif how == "qty_negative":
        f[2] = "-" + f[2]
    elif how == "qty_inf":
        f[2] = "inf"
    elif how == "qty_empty":
        f[2] = ""
    elif how == "time_iso":
        f[5] = "2019-10-11T00:00:11Z"
    elif how == "time_us":
        f[5] = f[5] + "000"
    elif how == "id_empty":
        f[0] = ""
    elif how == "maker_word":
        f[6] = "maybe"
    elif how == "too_few":
        f = f[:6]
    elif how == "too_many":
        f = f + ["extra"]
    return ",".join(f)


CORRUPTIONS = {  # data row (1-based) -> (corruption, expected reason)
    5: ("price_text", "price missing or not a number"),
    1_000: ("price_nan", "price missing or not a number"),
    2_000: ("price_zero", "price not positive"),
    3_000: ("qty_negative", "amount not positive"),
    4_000: ("qty_inf", "amount infinite"),
    5_000: ("qty_empty", "amount missing or not a number"),
    6_000: ("time_iso", "time not a whole number"),
    7_000: ("time_us", "time not in milliseconds like the rest of the file"),
    8_000: ("id_empty", "trade id not a whole number"),
    9_000: ("maker_word", "is_buyer_maker not true/false"),
    10_000: ("too_few", "6 fields, expected 8"),
    12_000: ("too_many", "9 fields, expected 8"),
}


@pytest.mark.parametrize("header", [False, True], ids=["no_header", "header"])
@pytest.mark.parametrize("chunk", [32 << 20, 40 << 10], ids=["one_block", "small_blocks"])
def test_malformed_rows_are_quarantined_and_counted(header: bool, chunk: int, tmp_path: Path,
                                                    db: DuckDBStore) -> None:
    lines = agg_lines()
    good = [line for i, line in enumerate(lines, start=1) if i not in CORRUPTIONS]
    for row, (how, _) in CORRUPTIONS.items():
        lines[row - 1] = _corrupt(lines[row - 1].split(","), how)
    text = ("\n".join(([AGG_HEADER] if header else []) + lines)) + "\n"
    path = write_zip(tmp_path / "XRPETH-aggTrades-2019-10-11.zip", "XRPETH-aggTrades-2019-10-11.csv", text)
    (report,) = import_binance_vision(path, db, chunk_bytes=chunk)
    assert report.quarantined == len(CORRUPTIONS) == 12
    assert report.rows == 12_477 - 12
    expected_reasons: dict[str, int] = {}
    for _, reason in CORRUPTIONS.values():
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert report.reasons == expected_reasons
    line = int(header)  # the sample names file lines: data row r is line r + 1 below a header line
    assert sorted((s.row, s.reason) for s in report.sample) == sorted(
        (r + line, why) for r, (_, why) in CORRUPTIONS.items())
    by_row = {s.row: s.text for s in report.sample}
    assert by_row[10_000 + line] == lines[10_000 - 1] and by_row[5 + line] == lines[4]
    assert report.gaps == 12  # each quarantined row leaves its aggregate id missing (none is first or last)
    assert_ticks_equal(stored_ticks(db), expected_ticks(
        good, id_col=0, time_col=5, qty_col=2, ibm_col=6, unit="ms", exchange="binance", symbol="XRP/ETH"))


def test_unreadable_inputs(tmp_path: Path, db: DuckDBStore) -> None:
    with pytest.raises(DataValidationError, match="no such file"):
        import_binance_vision(tmp_path / "XRPETH-aggTrades-2019-10-11.zip", db)
    bad_zip = tmp_path / "XRPETH-aggTrades-2019-10-12.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataValidationError, match="not a valid zip"):
        import_binance_vision(bad_zip, db)
    two = tmp_path / "XRPETH-aggTrades-2019-10-13.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.csv", "1")
        zf.writestr("b.csv", "2")
    with pytest.raises(DataValidationError, match="exactly one .csv"):
        import_binance_vision(two, db)
    empty = tmp_path / "XRPETH-aggTrades-2019-10-14.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="empty file"):
        import_binance_vision(empty, db)
    assert tick_count(db) == 0


# ---------------------------------------------------------------------------------------------------------------
# klines
# ---------------------------------------------------------------------------------------------------------------
def kline_text(h1: pd.DataFrame, unit: str, header: bool) -> str:
    """The Binance kline layout; the columns the feather lacks are left empty ("ignore" is 0)."""
    per = {"ms": 10**6, "us": 10**3}[unit]
    open_time = pd.DatetimeIndex(h1["date"]).as_unit("ns").asi8 // per
    out = pd.DataFrame({"open_time": open_time})
    for col in ("open", "high", "low", "close", "volume"):
        out[col] = h1[col].to_numpy()
    out["close_time"] = open_time + 3_600 * 10**9 // per - 1
    for col in ("quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume"):
        out[col] = ""
    out["ignore"] = 0
    assert tuple(out.columns) == KLINE_COLUMNS
    return out.to_csv(index=False, header=header, lineterminator="\n")


@pytest.fixture(scope="module")
def kline_files(tmp_path_factory: pytest.TempPathFactory, h1: pd.DataFrame) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("klines")
    out = {}
    out["csv_ms_header"] = d / "BTCUSDT-1h-2017-2024.csv"
    out["csv_ms_header"].write_text(kline_text(h1, "ms", True))
    out["zip_ms_no_header"] = write_zip(d / "BTCUSDT-1h-2017-08.zip", "BTCUSDT-1h-2017-08.csv",
                                        kline_text(h1, "ms", False))
    out["zip_us_no_header"] = write_zip(d / "BTCUSDT-1h-2025-01.zip", "BTCUSDT-1h-2025-01.csv",
                                        kline_text(h1, "us", False))
    out["zip_us_header"] = write_zip(d / "BTCUSDT-1h-2025-02.zip", "BTCUSDT-1h-2025-02.csv",
                                     kline_text(h1, "us", True))
    out["unnamed_csv"] = d / "klines.csv"  # no name to go by: timeframe from close_time - open_time + 1
    out["unnamed_csv"].write_text(kline_text(h1, "ms", False))
    return out


@pytest.mark.parametrize("fmt", ["csv_ms_header", "zip_ms_no_header", "zip_us_no_header", "zip_us_header",
                                 "unnamed_csv"])
def test_klines_import_exactly(fmt: str, kline_files: dict[str, Path], expected_h1: pd.DataFrame,
                               db: DuckDBStore) -> None:
    path = kline_files[fmt]
    symbol = "BTC/USDT" if fmt == "unnamed_csv" else None
    (report,) = import_binance_vision(path, db, symbol=symbol)
    assert (report.kind, report.exchange, report.symbol, report.timeframe) == ("klines", "binance", "BTC/USDT", "1h")
    assert (report.rows, report.gaps, report.quarantined) == (58_419, 128, 0)
    stored = db.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    pd.testing.assert_frame_equal(stored, expected_h1, check_exact=True)
    assert db.query("SELECT DISTINCT source FROM ohlcv")["source"].tolist() == [path.name]
    # idempotent
    import_binance_vision(path, db, symbol=symbol)
    assert int(db.query("SELECT count(*) AS n FROM ohlcv")["n"].iloc[0]) == 58_419


def test_bad_kline_row_rejects_the_file(h1: pd.DataFrame, tmp_path: Path, db: DuckDBStore) -> None:
    lines = kline_text(h1, "ms", False).splitlines()
    fields = lines[39_999].split(",")
    fields[2], fields[3] = fields[3], fields[2]  # high <-> low at data row 40,000
    lines[39_999] = ",".join(fields)
    path = write_zip(tmp_path / "BTCUSDT-1h-2020.zip", "BTCUSDT-1h-2020.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as info:
        import_binance_vision(path, db)
    assert (info.value.row, info.value.column) == (40_000, "high")
    assert int(db.query("SELECT count(*) AS n FROM ohlcv")["n"].iloc[0]) == 0


def test_kline_name_and_rows_disagree(h1: pd.DataFrame, tmp_path: Path, db: DuckDBStore) -> None:
    path = tmp_path / "BTCUSDT-1m-2020-01-01.csv"
    path.write_text(kline_text(h1.iloc[:100], "ms", False))
    with pytest.raises(DataValidationError, match="the name says 1m klines but the first row spans 1h"):
        import_binance_vision(path, db)


# ---------------------------------------------------------------------------------------------------------------
# trades (from the recorded WebSocket trades)
# ---------------------------------------------------------------------------------------------------------------
def ws_trades() -> list[dict]:
    out = []
    for path in WS_FILES:
        with gzip.open(path, "rt") as fh:
            for line in fh:
                _, raw = line.split(" ", 1)
                if '"@trade"' in raw or "@trade\"" in raw:
                    msg = json.loads(raw)
                    if msg.get("stream", "").endswith("@trade"):
                        out.append(msg["data"])
    return out


def trades_line(t: dict, unit: str, futures: bool = False) -> str:
    quote = (Decimal(t["p"]) * Decimal(t["q"])).normalize()
    time = t["T"] * (1000 if unit == "us" else 1)
    fields = [str(t["t"]), t["p"], t["q"], f"{quote:f}", str(time), "True" if t["m"] else "False"]
    if not futures:
        fields.append("True" if t["M"] else "False")
    return ",".join(fields)


@pytest.mark.skipif(not all(p.exists() for p in WS_FILES), reason=f"shared data not present ({WS_DIR})")
@pytest.mark.parametrize("variant", ["spot_ms_zip", "spot_us_header_csv", "futures_ms_csv"])
def test_trades_from_recorded_stream(variant: str, tmp_path: Path, db: DuckDBStore) -> None:
    trades = ws_trades()
    assert len(trades) == 19_904
    unit = "us" if "_us" in variant else "ms"
    futures = variant.startswith("futures")
    lines = [trades_line(t, unit, futures) for t in trades]
    if variant == "spot_ms_zip":
        path = write_zip(tmp_path / "BTCUSDT-trades-2024-08-08.zip", "BTCUSDT-trades-2024-08-08.csv",
                         "\n".join(lines) + "\n")
    elif variant == "spot_us_header_csv":
        path = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
        path.write_text("\n".join([TRADES_HEADER, *lines]) + "\n")
    else:
        path = tmp_path / "trades.csv"  # no name: 6 columns = futures trades
        path.write_text("\n".join(lines) + "\n")
    (report,) = import_binance_vision(path, db, symbol="BTC/USDT", exchange="binanceusdm" if futures else "binance")
    assert (report.kind, report.rows, report.quarantined, report.gaps) == ("trades", 19_904, 0, 0)
    want = pd.DataFrame({
        "ts": pd.to_datetime([t["T"] for t in trades], unit="ms", utc=True).astype("datetime64[ns, UTC]"),
        "exchange": "binanceusdm" if futures else "binance",
        "symbol": "BTC/USDT",
        "trade_id": [str(t["t"]) for t in trades],
        "price": [float(t["p"]) for t in trades],
        "amount": [float(t["q"]) for t in trades],
        "side": ["sell" if t["m"] else "buy" for t in trades],  # buyer is maker -> the taker sold
    })
    got = stored_ticks(db)
    assert_ticks_equal(got, sort_ticks(want))
    assert got["trade_id"].astype("int64").tolist() == list(range(3_735_683_259, 3_735_703_163))


def test_corrupt_compressed_data_is_a_clear_error(tmp_path: Path, db: DuckDBStore) -> None:
    path = write_zip(tmp_path / "XRPETH-aggTrades-2019-10-11.zip", "XRPETH-aggTrades-2019-10-11.csv",
                     AGG_FILE.read_text())
    raw = bytearray(path.read_bytes())
    for i in range(20_000, 20_100):  # damage the deflate stream well after the first lines
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataValidationError, match="corrupt compressed data|not a valid zip"):
        import_binance_vision(path, db, chunk_bytes=16 << 10)
