"""Bounded memory for any input file (issue 7).

Hostile files -- decompression bombs, lines without end, giant headers and cells -- are refused early, in little
memory, with one line quoting at most a short excerpt; big files are read in chunks, staged in the store and
published only when all of them is valid, giving exactly the bars a whole-file read gives. Real data from
``data/`` (and ``../shared/data``), real DuckDB stores, the real ``btlab`` command in subprocesses whose own peak
memory is measured (``ru_maxrss`` of that one process).
"""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from btlab.errors import DataValidationError, TimeframeMismatchError
from btlab.marketdata.sources.files.csvio import MAX_LINE_BYTES, CsvBlocks, head_lines, open_csv
from btlab.marketdata.sources.binance_vision.schemas import KLINE_COLUMNS as BINANCE_KLINE_COLUMNS
from btlab.marketdata.sources.files.importer import import_bars
from btlab.marketdata.sources.files.reader import BarChunks, read_bars_file
from btlab.marketdata.quality.gaps import find_gaps
from btlab.model.sessions import in_session
from btlab.store.base import STAGE_INFIX
from btlab.store.duckdb import DuckDBStore
from realdata import BTC_1H, DATA, btc_1h

SPY_GZ = DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz"
MB = 1 << 20
#: Peak RSS allowed to one ``btlab`` process in these tests. A process importing a small file peaks at about
#: 200 MB (Python, pandas, Arrow, DuckDB); before issue 7 the 200 MB bombs below took 0.8-1.5 GB.
PEAK_MB = 350
SMALL_CHUNK = 64 << 10  # CSV text per chunk in the multi-chunk tests: the 1h file is read in ~90 chunks

#: Starts a command with posix_spawn and reports the peak RSS of that one child (a child forked from pytest would
#: count pytest's own pages).
LAUNCHER = ("import os,sys;pid=os.posix_spawn(sys.argv[1],sys.argv[1:],os.environ);_,st,ru=os.wait4(pid,0);"
            "sys.stderr.write(f'\\nMAXRSS {ru.ru_maxrss}\\n');sys.exit(os.waitstatus_to_exitcode(st))")


def btlab_peak(*args: str, store: Path, extra_env: dict[str, str] | None = None) -> tuple[int, list[str], float]:
    """Run ``btlab ARGS`` with ``store`` as ``BTLAB_STORE``; return (exit code, non-blank stderr lines, peak MB)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "BTLAB_STORE": str(store)}
    env.pop("BTLAB_MAX_COMPRESSION_RATIO", None)
    env.update(extra_env or {})
    exe = str(Path(sys.executable).with_name("btlab"))
    proc = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, exe, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    peak_kb = int(lines.pop().split()[1])
    return proc.returncode, lines, peak_kb / 1024


def one_error_line(code: int, lines: list[str]) -> str:
    assert code == 1, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


def bars_stored(path: Path) -> int:
    if not path.exists():
        return 0
    with DuckDBStore(path, read_only=True) as st:
        return int(st.query("SELECT count(*) AS n FROM ohlcv")["n"].iloc[0])


def staging_tables(st: DuckDBStore) -> list[str]:
    names = st.query("SELECT table_name FROM information_schema.tables")["table_name"].tolist()
    return [n for n in names if STAGE_INFIX in n]


def gzip_zeros(path: Path, size: int) -> Path:
    """A gzip file of ``size`` zero bytes (maximum compression, about 1000:1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MB)
    with path.open("wb") as fh:
        for _ in range(size // MB):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    return path


def forge_isize(path: Path, value: int) -> None:
    """Overwrite the size field (ISIZE, the last 4 bytes) of a gzip file."""
    with path.open("r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(value.to_bytes(4, "little"))


def kline_lines(frame: pd.DataFrame) -> list[str]:
    """Real bars in the data.binance.vision kline layout with its header line (times in ms, ``repr`` numbers)."""
    out = [",".join(BINANCE_KLINE_COLUMNS)]
    for row in frame.itertuples(index=False):
        open_ms = row.ts.value // 1_000_000
        out.append(f"{open_ms},{row.open!r},{row.high!r},{row.low!r},{row.close!r},{row.volume!r},"
                   f"{open_ms + 3_600_000 - 1},{row.volume * row.close!r},100,0,0,0")
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def h1_lines() -> list[str]:
    return kline_lines(btc_1h())


# ---- hostile files: refused early, in little memory, with one short line --------------------------------------------
def test_a_gzip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """200 MB of zero bytes in a 0.2 MB .csv.gz: before, the whole content was decompressed (0.8 GB RSS) and the
    CSV reader then failed with a traceback-style message."""
    bomb = gzip_zeros(tmp_path / "bomb.csv.gz", 200 * MB)
    assert bomb.stat().st_size < MB
    store = tmp_path / "s.duckdb"
    code, lines, peak = btlab_peak("data", "import", str(bomb), "--exchange", "binance", "--symbol", "BTC/USDT",
                                   "--timeframe", "1m", store=store)
    line = one_error_line(code, lines)
    assert f"{bomb}: declares 209,715,200 bytes uncompressed" in line and "decompression bomb" in line
    assert "BTLAB_MAX_COMPRESSION_RATIO" in line and len(line) < 400
    assert peak < PEAK_MB, f"peak RSS {peak:.0f} MB"
    assert bars_stored(store) == 0
    # its size field forged: the limit on decompressed bytes still holds (here the first line is too long first)
    forge_isize(bomb, 100)
    code, lines, peak = btlab_peak("data", "import", str(bomb), "--exchange", "binance", "--symbol", "BTC/USDT",
                                   "--timeframe", "1m", store=store)
    line = one_error_line(code, lines)
    assert f"{bomb}, row 1: line longer than {MAX_LINE_BYTES:,} bytes" in line and len(line) < 400
    assert peak < PEAK_MB, f"peak RSS {peak:.0f} MB"
    assert bars_stored(store) == 0


def test_the_decompressed_size_is_capped_whatever_the_header_says(tmp_path: Path) -> None:
    """The real SPY .csv.gz (3.75 MB in 0.9 MB) against a ratio limit of 2: refused from its size field at once, and
    with that field forged, while reading -- nothing written either way."""
    path = tmp_path / "SPY_1min.csv.gz"
    path.write_bytes(SPY_GZ.read_bytes())
    with open_csv(path) as (fh, _):  # the default limit (100) lets the real file through
        assert len(fh.read()) == 3_753_825
    with pytest.raises(DataValidationError, match=r"declares 3,753,825 bytes uncompressed from [\d,]+: more than 2 "):
        with open_csv(path, max_ratio=2) as (fh, _):
            fh.read(10)
    forge_isize(path, 1000)
    with pytest.raises(DataValidationError, match=r"decompresses to over [\d,]+ bytes"):
        with open_csv(path, max_ratio=2) as (fh, _):
            while fh.read(1 << 16):
                pass
    store = tmp_path / "s.duckdb"
    args = ("data", "import", str(path), "--exchange", "nyse", "--symbol", "SPY", "--timeframe", "1m")
    code, lines, _ = btlab_peak(*args, store=store, extra_env={"BTLAB_MAX_COMPRESSION_RATIO": "2"})
    assert "decompresses to over" in one_error_line(code, lines) and bars_stored(store) == 0
    code, lines, _ = btlab_peak(*args, store=store, extra_env={"BTLAB_MAX_COMPRESSION_RATIO": "much"})
    assert "invalid BTLAB_MAX_COMPRESSION_RATIO: 'much' is not a number" in one_error_line(code, lines)


def test_a_zip_member_without_newlines(tmp_path: Path) -> None:
    """``ingest binance-vision`` looks at a file's first lines to tell what it holds: a 200 MB member without a
    newline was read as one line (1.5 GB RSS) and the error then counted its 13 million "columns"."""
    path = tmp_path / "BTCUSDT-1m-2024-01-01.zip"
    block = (b"1704067200000,42283.58,42298.62," * (MB // 32 + 1))[:MB]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open("BTCUSDT-1m-2024-01-01.csv", "w", force_zip64=True) as fh:
        for _ in range(200):
            fh.write(block)
    store = tmp_path / "s.duckdb"
    code, lines, peak = btlab_peak("ingest", "binance-vision", str(path), store=store)
    line = one_error_line(code, lines)
    assert "'BTCUSDT-1m-2024-01-01.csv' declares 209,715,200 bytes" in line and "decompression bomb" in line
    assert peak < PEAK_MB, f"peak RSS {peak:.0f} MB"
    # allowed by the ratio limit: the line-length limit stops it after 1 MiB
    code, lines, peak = btlab_peak("ingest", "binance-vision", str(path), store=store,
                                   extra_env={"BTLAB_MAX_COMPRESSION_RATIO": "100000"})
    line = one_error_line(code, lines)
    assert f"{path}, row 1: line longer than {MAX_LINE_BYTES:,} bytes (not a CSV file?), starting '1704067200000," \
        in line and len(line) < 400
    assert peak < PEAK_MB, f"peak RSS {peak:.0f} MB"
    assert bars_stored(store) == 0


def test_head_lines_of_truncated_and_endless_members(tmp_path: Path, h1_lines: list[str]) -> None:
    text = "\n".join(h1_lines[:20_000]) + "\n"
    whole = tmp_path / "BTCUSDT-1h-2020-01.zip"
    with zipfile.ZipFile(whole, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-1h-2020-01.csv", text)
    assert head_lines(whole, 2) == h1_lines[:2]
    # the member cut off in the middle of its compressed data: a short error, not a traceback or a huge excerpt
    raw = whole.read_bytes()
    info = zipfile.ZipFile(whole).infolist()[0]
    cut = tmp_path / "BTCUSDT-1h-2020-02.zip"
    cut.write_bytes(raw[: info.header_offset + 30 + len(info.filename) + info.compress_size // 2])
    with pytest.raises(DataValidationError) as err:
        head_lines(cut, 2)
        with open_csv(cut) as (fh, _):
            fh.read()
    assert "zip" in str(err.value) and len(str(err.value)) < 300
    # a file that never ends a line (random digits, which compress only 2:1), and one of blank lines only
    endless = tmp_path / "endless.csv.gz"
    endless.write_bytes(gzip.compress(("1," + "".join(random.Random(7).choices("0123456789,.", k=3 * MB))).encode()))
    with pytest.raises(DataValidationError) as err:
        head_lines(endless, 2)
    assert err.value.row == 1 and f"line longer than {MAX_LINE_BYTES:,} bytes" in str(err.value)
    assert "starting '1," in str(err.value) and len(str(err.value)) < 300
    blank = write(tmp_path / "blank.csv", [h1_lines[0]] + [""] * (2 * MB))
    with pytest.raises(DataValidationError, match=f"more than {MAX_LINE_BYTES:,} bytes of blank lines before line"):
        head_lines(blank, 2)


def test_errors_quote_only_an_excerpt(tmp_path: Path, h1_lines: list[str]) -> None:
    """A 300 KB header line and a 200 KB cell: the message used to repeat them whole."""
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        header = write(tmp_path / "header.csv", ["x" * 300_000, "1,2"])
        with pytest.raises(DataValidationError) as err:
            import_bars(header, st, exchange="binance", symbol="BTC/USDT", timeframe="1h")
        assert "missing column(s) ts, open" in str(err.value) and len(str(err.value)) < 500
        wide = write(tmp_path / "wide.csv", [",".join(f"c{i}" for i in range(50_000))])
        with pytest.raises(DataValidationError, match="the file has: c0, c1, .*c19 and 49,980 more$"):
            import_bars(wide, st, exchange="binance", symbol="BTC/USDT", timeframe="1h")
        lines = list(h1_lines[:5000])
        fields = lines[4000].split(",")
        fields[4] = "1" * 200_000 + "x"  # the close of file line 4001
        lines[4000] = ",".join(fields)
        with pytest.raises(DataValidationError) as err:
            import_bars(write(tmp_path / "cell.csv", lines), st, exchange="binance", symbol="BTC/USDT",
                        timeframe="1h", chunk_bytes=8 << 20)
        assert (err.value.row, err.value.column) == (4001, "close")
        assert "not a number: '1111" in str(err.value) and len(str(err.value)) < 300
        assert st.bar_series().empty and not staging_tables(st)


def test_a_file_of_duplicate_rows_is_refused_at_its_first_chunk(tmp_path: Path, h1_lines: list[str]) -> None:
    """1M copies of one real row (100 MB): before, the whole file was read (1 GB RSS) before its third line was
    named."""
    path = tmp_path / "dupes.csv"
    with path.open("w") as fh:
        fh.write(h1_lines[0] + "\n")
        fh.write((h1_lines[1] + "\n") * 1_000_000)
    store = tmp_path / "s.duckdb"
    code, lines, peak = btlab_peak("data", "import", str(path), "--exchange", "binance", "--symbol", "BTC/USDT",
                                   "--timeframe", "1h", store=store)
    line = one_error_line(code, lines)
    assert f"{path}, row 3, column 'open_time': duplicate timestamp 2017-08-17 04:00:00+00:00" in line
    assert peak < PEAK_MB, f"peak RSS {peak:.0f} MB"
    assert bars_stored(store) == 0


# ---- big valid files: read in chunks, exactly the same bars --------------------------------------------------------
def test_a_multi_chunk_import_stores_exactly_the_same_bars(tmp_path: Path, h1_lines: list[str],
                                                           expected_h1: pd.DataFrame) -> None:
    path = write(tmp_path / "BTCUSDT-1h-klines.csv", h1_lines)
    iso = tmp_path / "iso_offset.csv"  # dates with a New York offset: the date format is kept from chunk to chunk
    frame = btc_1h().rename(columns={"ts": "Date"})
    frame["Date"] = frame["Date"].dt.tz_convert("America/New_York").map(lambda t: t.isoformat())
    frame.to_csv(iso, index=False, lineterminator="\n")
    for file in (path, iso):
        assert len(list(BarChunks(file, chunk_bytes=SMALL_CHUNK))) > 50  # really many chunks
        with DuckDBStore(tmp_path / f"{file.stem}.duckdb") as st:
            report = import_bars(file, st, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                                 chunk_bytes=SMALL_CHUNK)
            stored = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
            assert not staging_tables(st)
        pd.testing.assert_frame_equal(stored.drop(columns="trades"), expected_h1.drop(columns="trades"),
                                      check_exact=True)
        assert (report.rows, report.gaps, report.first, report.last) == (
            58_419, 128, expected_h1["ts"].iloc[0], expected_h1["ts"].iloc[-1])
    # the spacing check sees every chunk: 1h bars given as 1m are refused with the whole file's figures
    with DuckDBStore(tmp_path / "tf.duckdb") as st:
        with pytest.raises(TimeframeMismatchError) as err:
            import_bars(path, st, exchange="binance", symbol="BTC/USDT", timeframe="1m", chunk_bytes=SMALL_CHUNK)
        assert (err.value.detected, err.value.missing) == ("1h", 3_454_342)
        assert st.bar_series().empty and not staging_tables(st)


def test_chunks_count_session_gaps_and_extended_hours_like_the_whole_series(tmp_path: Path) -> None:
    """Real SPY minutes with extended hours (NYSE calendar), every 500th minute left out: the chunked import reports
    the missing regular-session bars and the bars outside the sessions exactly as computed on the whole series."""
    lines = gzip.decompress(SPY_GZ.read_bytes()).decode().splitlines()
    kept = [line for i, line in enumerate(lines) if i % 500 != 250]
    path = write(tmp_path / "spy_holes.csv", kept)
    whole = read_bars_file(path, timeframe="1m", chunk_bytes=1 << 30)
    assert len(whole) == len(kept) - 1
    expected_gaps = int(find_gaps(whole["ts"], "1m", calendar="XNYS")["missing_bars"].sum())
    expected_outside = int((~in_session(whole["ts"], "XNYS", "regular", "1m")).sum())
    assert expected_gaps > 20 and expected_outside > 10_000
    reports, stored = [], []
    for chunk in (16 << 10, 1 << 30):
        with DuckDBStore(tmp_path / f"spy{chunk}.duckdb") as st:
            reports.append(import_bars(path, st, exchange="nyse", symbol="SPY", timeframe="1m", chunk_bytes=chunk))
            stored.append(st.read_bars(exchange="nyse", symbol="SPY", timeframe="1m"))
    assert len(list(BarChunks(path, chunk_bytes=16 << 10))) > 100
    pd.testing.assert_frame_equal(stored[0], stored[1], check_exact=True)
    pd.testing.assert_frame_equal(stored[0].drop(columns="vwap"), whole.drop(columns="vwap"), check_exact=True)
    assert reports[0] == reports[1]
    assert (reports[0].rows, reports[0].gaps, reports[0].outside_session) == (
        len(whole), expected_gaps, expected_outside)


# ---- a bad row late in the file: nothing written ------------------------------------------------------------------
@pytest.fixture
def populated(tmp_path: Path) -> DuckDBStore:
    with DuckDBStore(tmp_path / "populated.duckdb") as st:
        import_bars(BTC_1H, st, exchange="binance", symbol="BTC/USDT", timeframe="1h")
        yield st


def test_a_bad_row_in_a_late_chunk_leaves_the_store_unchanged(tmp_path: Path, h1_lines: list[str],
                                                              populated: DuckDBStore) -> None:
    before = populated.query("SELECT * FROM ohlcv ORDER BY ts")
    lines = list(h1_lines)
    fields = lines[55_000].split(",")  # file line 55,001 of 58,420, in about the 85th of 90 chunks
    fields[1] = "-" + fields[1]
    lines[55_000] = ",".join(fields)
    path = write(tmp_path / "late.csv", lines)
    with pytest.raises(DataValidationError) as err:
        import_bars(path, populated, exchange="binance", symbol="BTC/USDT", timeframe="1h", chunk_bytes=SMALL_CHUNK)
    assert (err.value.row, err.value.column) == (55_001, "open") and "price must be positive" in str(err.value)
    pd.testing.assert_frame_equal(populated.query("SELECT * FROM ohlcv ORDER BY ts"), before, check_exact=True)
    assert not staging_tables(populated)


def test_a_duplicate_across_a_chunk_boundary_is_caught(tmp_path: Path, h1_lines: list[str],
                                                       populated: DuckDBStore) -> None:
    """The first row of a late chunk repeats the time of the last row of the chunk before it."""
    path = write(tmp_path / "klines.csv", h1_lines)
    with open_csv(path) as (fh, _):
        blocks = CsvBlocks(fh, str(path), width=12, skip_lines=1, block_bytes=SMALL_CHUNK)
        starts = [blocks.line(base) for _, base in blocks]
    assert len(starts) > 50
    line = starts[-5]  # the file line starting a late chunk (lines keep their length, so the chunks stay put)
    lines = list(h1_lines)
    fields = lines[line - 1].split(",")
    fields[0] = lines[line - 2].split(",")[0]
    lines[line - 1] = ",".join(fields)
    before = populated.query("SELECT * FROM ohlcv ORDER BY ts")
    with pytest.raises(DataValidationError) as err:
        import_bars(write(path, lines), populated, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                    chunk_bytes=SMALL_CHUNK)
    assert (err.value.row, err.value.column) == (line, "open_time") and "duplicate timestamp" in str(err.value)
    pd.testing.assert_frame_equal(populated.query("SELECT * FROM ohlcv ORDER BY ts"), before, check_exact=True)
    assert not staging_tables(populated)


def test_a_step_that_runs_out_of_duckdb_memory_under_the_limit_runs_again_without_it(
        tmp_path: Path, h1_lines: list[str], expected_h1: pd.DataFrame) -> None:
    """DuckDB stages and publishes under a memory limit (its cache would grow to 80 % of the RAM); a limit too low for
    the work (here 4 MB: every step runs out of memory under it) must not fail the import."""
    path = write(tmp_path / "BTCUSDT-1h-klines.csv", h1_lines)
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        st.staging_memory_limit = "4MB"
        report = import_bars(path, st, exchange="binance", symbol="BTC/USDT", timeframe="1h", chunk_bytes=SMALL_CHUNK)
        stored = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
        assert not staging_tables(st)
    assert report.rows == 58_419
    pd.testing.assert_frame_equal(stored.drop(columns="trades"), expected_h1.drop(columns="trades"), check_exact=True)


# ---- staging, on every backend ---------------------------------------------------------------------------------------
def test_staging_publishes_at_once_or_not_at_all(store, uid: str) -> None:
    from btlab.store.marketdata import bar_rows

    bars = btc_1h().iloc[:5_000]
    bars["trades"] = pd.array([None] * len(bars), dtype="Int64")
    bars["vwap"] = np.nan
    rows = bar_rows(bars, exchange=uid, symbol="BTC/USDT", timeframe="1h", source="test")
    with store.staging("ohlcv") as stage:
        for lo in range(0, len(rows), 1_000):
            stage.add(rows.iloc[lo: lo + 1_000])
        assert store.bar_span(exchange=uid, symbol="BTC/USDT", timeframe="1h").bars == 0  # nothing yet
        with pytest.raises(ValueError, match="not after"):
            stage.add(rows.iloc[:10])  # out of order
        assert stage.publish(slice_rows=1_500) == 5_000
    stored = store.read_bars(exchange=uid, symbol="BTC/USDT", timeframe="1h")
    pd.testing.assert_frame_equal(stored, bars.reset_index(drop=True)[stored.columns], check_exact=True,
                                  check_dtype=False)
    with pytest.raises(RuntimeError, match="boom"):
        with store.staging("ohlcv") as stage:
            stage.add(rows.assign(exchange=uid + "x"))
            raise RuntimeError("boom")
    assert store.bar_span(exchange=uid + "x", symbol="BTC/USDT", timeframe="1h").bars == 0
