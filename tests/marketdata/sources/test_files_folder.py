"""`btlab data import FOLDER --symbol-from-file`: the bundled real S&P 500 constituents (20 files, gzipped as is),
the ^GSPC index file (Yahoo layout), a real invalid constituent file (DHR: a NaN open), the real console script in
subprocesses, a real DuckDB file. Over all 505 constituents when ../shared/data is there."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from btlab.errors import DataValidationError
from btlab.marketdata.sources.files.folder import bar_files, symbol_of_file
from btlab.store.duckdb import DuckDBStore
from cliproc import assert_one_line, btlab_cli
from realdata import BTC_1H, DATA, SHARED

STOCKS = DATA / "sp500_daily" / "individual_stocks_5yr"
GSPC = DATA / "sp500_daily" / "index" / "GSPC_2013-02-08_2018-02-07.csv.gz"
DHR = DATA / "sp500_daily" / "quirks" / "DHR_data.csv.gz"
ALL_505 = SHARED / "data" / "equities" / "sp500_daily" / "individual_stocks_5yr"
DAILY = ["--exchange", "nyse", "--timeframe", "1d"]


def test_bar_files_lists_the_bar_files_of_a_folder(tmp_path):
    files = bar_files([STOCKS])
    assert [f.name for f in files] == sorted(p.name for p in STOCKS.iterdir())
    assert len(files) == 20
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(GSPC, folder / GSPC.name)
    (folder / "README.md").write_text("not bars\n")
    (folder / ".hidden.csv").write_text("x\n")
    (folder / "sub").mkdir()
    shutil.copy(DHR, folder / "sub" / DHR.name)
    assert bar_files([folder, BTC_1H]) == [folder / GSPC.name, BTC_1H]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="empty: folder holds no bar file"):
        bar_files([tmp_path / "empty"])
    with pytest.raises(DataValidationError, match="no such file"):
        bar_files([tmp_path / "nowhere.csv"])


def test_symbol_of_file_reads_the_name_column_or_the_file_name(tmp_path):
    assert symbol_of_file(STOCKS / "AAPL_data.csv.gz") == "AAPL"
    assert symbol_of_file(GSPC) == "GSPC"  # Yahoo layout: no Name column
    assert symbol_of_file(BTC_1H) == "BTC"  # feather: the file name up to its first '_'
    renamed = tmp_path / "apple.csv.gz"
    shutil.copy(STOCKS / "AAPL_data.csv.gz", renamed)
    assert symbol_of_file(renamed) == "AAPL"  # the column wins over the file name
    with gzip.open(STOCKS / "AAPL_data.csv.gz", "rt") as a, gzip.open(STOCKS / "MSFT_data.csv.gz", "rt") as m:
        lines = a.read().splitlines()[:3] + m.read().splitlines()[3:4]  # real rows of two files in one
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as err:
        symbol_of_file(mixed)
    assert (err.value.row, err.value.column) == (4, "Name")
    assert "'MSFT' differs from 'AAPL'" in str(err.value)


def _stored(store: Path, symbol: str) -> pd.DataFrame:
    with DuckDBStore(store, read_only=True) as st:
        return st.read_bars(exchange="nyse", symbol=symbol, timeframe="1d")


def test_import_a_folder_with_symbols_from_the_files_and_reimport_changes_nothing(tmp_path):
    store = tmp_path / "sp.duckdb"
    proc = btlab_cli("data", "import", str(STOCKS), *DAILY, "--symbol-from-file", store=store)
    assert proc.returncode == 0, proc.stderr
    assert len([line for line in proc.stdout.splitlines() if " 1d bars for nyse:" in line]) == 20
    assert "1,257 1d bars for nyse:ORCL" in proc.stdout and "2 missing bar(s) in XNYS" in proc.stdout
    first = {}
    for f in bar_files([STOCKS]):
        raw = pd.read_csv(f)
        got = _stored(store, raw["Name"].iloc[0])
        assert got["ts"].tolist() == pd.to_datetime(raw["date"], utc=True).tolist()
        for col in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(got[col].to_numpy(), raw[col].to_numpy(dtype=float)), (f.name, col)
        first[f.name] = got
    again = btlab_cli("data", "import", str(STOCKS), *DAILY, "--symbol-from-file", store=store)
    assert again.returncode == 0, again.stderr
    for f in bar_files([STOCKS]):
        pd.testing.assert_frame_equal(_stored(store, f.name.split("_")[0]), first[f.name])


def test_import_the_index_file_in_the_yahoo_layout(tmp_path):
    store = tmp_path / "ix.duckdb"
    proc = btlab_cli("data", "import", str(GSPC), *DAILY, "--symbol", "^GSPC", store=store)
    assert proc.returncode == 0, proc.stderr
    raw = pd.read_csv(GSPC)
    got = _stored(store, "^GSPC")
    assert len(got) == len(raw) == 1_259
    assert np.array_equal(got["close"].to_numpy(), raw["Close"].to_numpy())  # Close, not Adj Close
    assert np.array_equal(got["volume"].to_numpy(), raw["Volume"].to_numpy(dtype=float))


def test_an_invalid_real_file_is_refused_or_skipped(tmp_path):
    store = tmp_path / "q.duckdb"
    line = assert_one_line(btlab_cli("data", "import", str(DHR.parent), str(GSPC), *DAILY, "--symbol-from-file",
                                     store=store))
    assert "DHR_data.csv.gz, row 600, column 'open': missing or infinite value (nan)" in line
    assert "(file 1 of 2; the 0 before it are imported; --skip-invalid imports the others)" in line
    assert not store.exists() or _stored(store, "DHR").empty
    proc = btlab_cli("data", "import", str(DHR.parent), str(GSPC), *DAILY, "--symbol-from-file", "--skip-invalid",
                     store=store)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "DHR_data.csv.gz, row 600, column 'open'" in proc.stderr
    assert "1 of 2 files imported; 1 invalid file(s) skipped" in proc.stdout
    assert _stored(store, "DHR").empty and len(_stored(store, "GSPC")) == 1_259


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_folder_import_between_files(tmp_path, sig):
    """The file in hand is finished, the others are not started; what is stored is whole files only."""
    store = tmp_path / "stop.duckdb"
    env = {**os.environ, "NO_COLOR": "1", "BTLAB_STORE": str(store), "COLUMNS": "200"}
    exe = Path(sys.executable).with_name("btlab")
    proc = subprocess.Popen([str(exe), "data", "import", str(STOCKS), *DAILY, "--symbol-from-file"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    first = proc.stdout.readline()  # the first file is imported: stop now, 19 files before the end
    assert " 1d bars for nyse:" in first, (first, proc.stderr.read() if proc.poll() is not None else "")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    done = [first] + [line for line in out.splitlines() if " 1d bars for nyse:" in line]
    assert proc.returncode == 128 + sig, (proc.returncode, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: import stopped by {sig.name} after {len(done)} of 20 files"), lines
    assert 1 <= len(done) < 20
    with DuckDBStore(store, read_only=True) as st:
        stored = st.bar_series()
    assert sorted(stored["symbol"]) == sorted(line.split("nyse:")[1].split()[0].rstrip(",") for line in done)
    for f in bar_files([STOCKS]):
        raw = pd.read_csv(f)
        if raw["Name"].iloc[0] in set(stored["symbol"]):
            assert len(_stored(store, raw["Name"].iloc[0])) == len(raw)  # whole files only


def test_symbol_options_are_one_or_the_other(tmp_path):
    line = assert_one_line(btlab_cli("data", "import", str(GSPC), *DAILY, store=tmp_path / "s.duckdb"))
    assert "give --symbol SYMBOL or --symbol-from-file" in line
    line = assert_one_line(btlab_cli("data", "import", str(GSPC), *DAILY, "--symbol", "X", "--symbol-from-file",
                                     store=tmp_path / "s.duckdb"))
    assert "one of them" in line


@pytest.mark.skipif(not ALL_505.is_dir(), reason="the 505 constituents are in ../shared/data only (not in a clone)")
@pytest.mark.skipif(not os.environ.get("BTLAB_TEST_SLOW"), reason="4-5 minutes over all 505 files (keeps make test short): set BTLAB_TEST_SLOW=1")
def test_import_all_505_constituents_skipping_the_16_invalid(tmp_path):
    store = tmp_path / "all.duckdb"
    proc = btlab_cli("data", "import", str(ALL_505), *DAILY, "--symbol-from-file", "--skip-invalid", store=store,
                     timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "489 of 505 files imported; 16 invalid file(s) skipped" in proc.stdout
    skipped = sorted(part.split("_data.csv")[0].rsplit("/", 1)[-1]
                     for part in proc.stderr.split("skipped ")[1:])
    # found independently with pandas: a NaN price, or a price outside its bar's high/low
    expected = []
    for f in sorted(ALL_505.glob("*_data.csv")):
        raw = pd.read_csv(f)
        prices = raw[["open", "high", "low", "close"]]
        bad = prices.isna().any(axis=1) | (raw["high"] < prices.max(axis=1)) | (raw["low"] > prices.min(axis=1))
        if bad.any():
            expected.append(f.name.split("_data.csv")[0])
    assert skipped == expected and len(expected) == 16
