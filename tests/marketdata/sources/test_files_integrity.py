"""Data is never imported half-right: truncated or malformed CSV lines, rows named by file line, a timeframe that
does not match the data's spacing, arguments checked before any work. Real data from ``data/``, real DuckDB files,
the real ``btlab`` console script in subprocesses."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from btlab.errors import DataValidationError, InvalidArgumentError, TimeframeMismatchError
from btlab.marketdata.bars import resample_bars
from btlab.marketdata.sources.binance_vision.importer import import_binance_vision
from btlab.marketdata.sources.files.importer import data_spacing, import_bars
from btlab.marketdata.sources.files.reader import read_bars_file
from btlab.store.duckdb import DuckDBStore
from realdata import AAPL_1D, BTC_1H, DATA, btc_1h
from cliproc import btlab_cli, error_lines

AGG_FILE = DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
M1_CSV = DATA / "BTC_USDT-1m_2024-08-08T2352_2024-08-09T0006.csv"


def bars_stored(path: Path) -> int:
    if not path.exists():
        return 0
    with DuckDBStore(path, read_only=True) as st:
        return int(st.bar_series()["bars"].sum())


def ticks_stored(path: Path) -> int:
    if not path.exists():
        return 0
    with DuckDBStore(path, read_only=True) as st:
        return int(st.query("SELECT count(*) AS n FROM ticks")["n"].iloc[0])


def h1_csv_lines() -> list[str]:
    """The real 1h bars as an 8-column CSV (header + 58,419 lines): the 6 bar columns, a name and a quote volume."""
    frame = btc_1h()
    lines = ["date,open,high,low,close,volume,Name,quote_volume"]
    for row in frame.itertuples(index=False):
        lines.append(f"{row.ts.isoformat()},{row.open!r},{row.high!r},{row.low!r},{row.close!r},{row.volume!r},"
                     f"BTCUSDT,{row.volume * row.close!r}")
    return lines


@pytest.fixture(scope="module")
def h1_lines() -> list[str]:
    return h1_csv_lines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- short and long lines ---------------------------------------------------------------------------------------------
def test_a_truncated_last_line_is_rejected(tmp_path, h1_lines):
    """The last line cut after 6 of its 8 fields (an interrupted download) used to be imported: pandas pads it."""
    lines = list(h1_lines)
    lines[-1] = ",".join(lines[-1].split(",")[:6])
    path = write(tmp_path / "cut.csv", lines)
    store = tmp_path / "cut.duckdb"
    proc = btlab_cli("data", "import", str(path), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h", store=store)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = error_lines(proc)
    assert f"{path}, row {len(lines)}: 6 field(s), expected 8 like the header line" in line
    assert bars_stored(store) == 0
    # a line cut inside a number has fewer fields still
    lines[-1] = lines[-1][:30]
    with pytest.raises(DataValidationError) as info:
        read_bars_file(write(tmp_path / "cut2.csv", lines), timeframe="1h")
    assert info.value.row == len(lines) and "expected 8" in info.value.reason


def test_a_long_line_is_rejected_naming_its_file_line(tmp_path, h1_lines):
    lines = list(h1_lines)
    lines[1000] += ",extra"  # file line 1001
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        with pytest.raises(DataValidationError) as info:
            import_bars(write(tmp_path / "long.csv", lines), st, exchange="binance", symbol="BTC/USDT",
                        timeframe="1h")
        assert st.bar_series().empty
    assert info.value.row == 1001 and "9 field(s), expected 8" in info.value.reason


def test_rows_are_file_lines_counting_header_and_blank_lines(tmp_path, h1_lines):
    lines = list(h1_lines)
    fields = lines[500].split(",")
    fields[2], fields[3] = fields[3], fields[2]  # high <-> low in data row 500 (file line 501)
    lines[500] = ",".join(fields)
    lines[200:200] = ["", "   "]  # two blank lines earlier in the file: data row 500 is now line 503
    path = write(tmp_path / "blank.csv", lines)
    with pytest.raises(DataValidationError) as info:
        read_bars_file(path, timeframe="1h")
    assert (info.value.row, info.value.column) == (503, "high")
    assert lines[info.value.row - 1] == ",".join(fields)  # the line an editor shows as line 503
    # without the bad row, blank lines are simply skipped
    lines[502] = h1_lines[500]
    assert len(read_bars_file(write(tmp_path / "ok.csv", lines), timeframe="1h")) == 58_419


def test_aapl_csv_error_names_the_file_line(tmp_path):
    lines = AAPL_1D.read_text().splitlines()
    assert lines[0].startswith("date,open,high,low,close,volume,Name")
    fields = lines[100].split(",")  # file line 101
    fields[1] = "-" + fields[1]
    lines[100] = ",".join(fields)
    with pytest.raises(DataValidationError) as info:
        read_bars_file(write(tmp_path / "aapl.csv", lines), timeframe="1d")
    assert (info.value.row, info.value.column) == (101, "open")
    assert str(info.value).startswith(f"{tmp_path / 'aapl.csv'}, row 101, column 'open': price must be positive")


def test_quarantined_tick_rows_are_file_lines(tmp_path):
    header = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match"
    lines = AGG_FILE.read_text().splitlines()
    lines[9] = ",".join(lines[9].split(",")[:5])  # data row 10: 5 fields
    bad = lines[99].split(",")
    bad[1] = "-1"  # data row 100: negative price
    lines[99] = ",".join(bad)
    text = [header] + lines[:50] + [""] + lines[50:]  # a blank line after data row 50
    path = write(tmp_path / "XRPETH-aggTrades-2019-10-11.csv", text)
    with DuckDBStore(tmp_path / "t.duckdb") as st:
        (report,) = import_binance_vision(path, st)
        assert ticks_stored(tmp_path / "t.duckdb") == 12_477 - 2
    assert report.quarantined == 2 and report.rows == 12_477 - 2
    rows = sorted(s.row for s in report.sample)
    assert rows == [11, 102]  # header line 1; data row 10 is line 11; data row 100 is line 102 after the blank line
    assert all(text[s.row - 1] == s.text for s in report.sample if s.row == 11)


# ---- a timeframe that divides the data's spacing -------------------------------------------------------------------------
def test_1h_file_imported_as_1m_is_refused(tmp_path):
    store = tmp_path / "tf.duckdb"
    proc = btlab_cli("data", "import", str(BTC_1H), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m", store=store)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = error_lines(proc)
    assert "did you mean --timeframe 1h?" in line and "3,454,342 1m bars would count as missing" in line
    assert "--allow-timeframe-mismatch" in line
    assert bars_stored(store) == 0
    proc = btlab_cli("data", "import", str(BTC_1H), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m",
                     "--allow-timeframe-mismatch", store=store)
    assert proc.returncode == 0, proc.stderr
    with DuckDBStore(store, read_only=True) as st:
        assert st.bar_series()[["timeframe", "bars"]].values.tolist() == [["1m", 58_419]]


def test_data_spacing_on_real_series(tmp_path):
    h1 = btc_1h()
    assert data_spacing(h1["ts"], "1h") is None  # real gaps (outages) are whole hours: still 1h data
    assert data_spacing(h1["ts"], "1m").value == "1h"
    assert data_spacing(h1["ts"], "15m").value == "1h"
    weekly = resample_bars(h1, "1w")
    assert data_spacing(weekly["ts"], "1d").value == "1w"
    daily = read_bars_file(AAPL_1D)  # trading days: weekends and holidays are whole days
    assert data_spacing(daily["ts"], "1d") is None
    assert data_spacing(daily["ts"], "1h").value == "1d"
    with DuckDBStore(tmp_path / "a.duckdb") as st:
        with pytest.raises(TimeframeMismatchError) as info:
            import_bars(AAPL_1D, st, exchange="nasdaq", symbol="AAPL", timeframe="1h")
        assert (info.value.given, info.value.detected) == ("1h", "1d") and st.bar_series().empty
        report = import_bars(AAPL_1D, st, exchange="nasdaq", symbol="AAPL", timeframe="1h",
                             allow_timeframe_mismatch=True)
        assert report.rows == 1259
    assert data_spacing(read_bars_file(M1_CSV)["ts"], "1m") is None  # 15 consecutive real minutes


# ---- arguments checked before any work ---------------------------------------------------------------------------------
def test_binance_vision_bad_bars_option_writes_nothing(tmp_path):
    """`--bars 7q` used to write 12,477 ticks, then fail."""
    store = tmp_path / "bv" / "s.duckdb"
    proc = btlab_cli("ingest", "binance-vision", str(AGG_FILE), "--symbol", "XRP/ETH", "--bars", "7q", store=store)
    assert proc.returncode == 1
    (line,) = error_lines(proc)
    assert "--bars: invalid timeframe '7q'" in line
    assert not store.parent.exists()


def kline_lines(frame: pd.DataFrame) -> list[str]:
    """Bars in the data.binance.vision kline layout, no header (open/close times in ms)."""
    out = []
    for row in frame.itertuples(index=False):
        open_ms = row.ts.value // 1_000_000
        out.append(f"{open_ms},{row.open!r},{row.high!r},{row.low!r},{row.close!r},{row.volume!r},"
                   f"{open_ms + 3_600_000 - 1},{row.volume * row.close!r},100,0,0,0")
    return out


def test_binance_vision_takes_timeframe(tmp_path):
    path = write(tmp_path / "prices.csv", kline_lines(btc_1h().iloc[:200]))
    store = tmp_path / "k.duckdb"
    proc = btlab_cli("ingest", "binance-vision", str(path), "--symbol", "BTC/USDT", "--timeframe", "1m", store=store)
    assert proc.returncode == 1 and "--timeframe says 1m klines but the first row spans 1h" in proc.stderr
    assert not store.exists()
    proc = btlab_cli("ingest", "binance-vision", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", store=store)
    assert proc.returncode == 0, proc.stderr
    assert "200 1h bars of binance BTC/USDT" in proc.stdout
    named = write(tmp_path / "BTCUSDT-1h-2017-08.csv", kline_lines(btc_1h().iloc[:10]))
    with DuckDBStore(store) as st:
        with pytest.raises(InvalidArgumentError, match="the file name says 1h klines but --timeframe is 4h"):
            import_binance_vision([named], st, timeframe="4h")
        with pytest.raises(InvalidArgumentError, match="holds aggTrades, not klines"):
            import_binance_vision([named, AGG_FILE], st, symbol="XRP/ETH", timeframe="1h")
        assert st.bar_series()["bars"].tolist() == [200]  # the named file was not imported either


@pytest.mark.parametrize(("args", "message"), [
    (["ingest", "history", "--symbols", "BTC/USDT", "--since", "2024-01-01", "--bars", "1m"],
     "--bars builds bars from fetched trades: use it with --trades"),
    (["ingest", "history", "--symbols", "BTC/USD", "--since", "2024-01-01", "--source", "cryptocompare", "--trades"],
     "--trades is for --source ccxt only"),
    (["ingest", "history", "--symbols", "BTC/USDT", "--since", "2024-01-01", "--trades", "--bars", "1m,7q"],
     "--bars: invalid timeframe '7q'"),
    (["ingest", "history", "--symbols", "BTC/USDT", "--since", "2024-02-01", "--until", "2024-01-01"],
     "--since 2024-02-01 is after --until 2024-01-01"),
    (["ingest", "history", "--symbols", "BTC/USDT", "--since", "2024-01-01", "--exchange", "nosuchexchange"],
     "unknown exchange 'nosuchexchange'"),
    (["ingest", "history", "--symbols", "BTC/USD", "--since", "2024-01-01", "--source", "cryptocompare",
      "--timeframe", "4h"], "CryptoCompare has no 4h history endpoint"),
    (["ingest", "live", "--symbols", "BTC/USDT", "--timeframes", "1m,1x"], "--timeframes: invalid timeframe '1x'"),
    (["ingest", "live", "--symbols", "BTC/USDT", "--duration", "-5"], "--duration must be > 0 seconds"),
    (["ingest", "live", "--symbols", " , "], "--symbols: no symbol given"),
    (["data", "import", str(BTC_1H), str(DATA / "nothere.feather"), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h"],
     "nothere.feather: no such file"),
    (["data", "coverage", "--timeframe", "7q"], "invalid timeframe '7q'"),
], ids=["bars_without_trades", "trades_cryptocompare", "bad_bars", "until_before_since", "unknown_exchange",
        "cryptocompare_4h", "live_bad_timeframe", "live_negative_duration", "live_no_symbol", "import_missing_second_file",
        "coverage_bad_timeframe"])
def test_ingest_and_data_arguments_are_checked_before_any_work(tmp_path, args, message):
    store = tmp_path / "never" / "s.duckdb"
    proc = btlab_cli(*args, store=store)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not store.parent.exists()  # no store created, nothing fetched, nothing written
