"""Peak memory of ``btlab data import`` on hostile and on big files (issue 7): every file is read in chunks, so peak
RSS must stay under :data:`BOUND_MB` whatever the file's size.

Each command runs as its own ``btlab`` process (as a user starts it) into a fresh DuckDB store; its peak RSS is the
kernel's ``ru_maxrss`` of that one process (started by a bare launcher with ``posix_spawn``, so no parent's pages
are counted). Files, all generated in a temporary folder:

* gzip bomb: 1 GiB of zero bytes in a 1 MB ``.csv.gz`` -- refused from its size field (ratio over the limit);
* the same with its size field (ISIZE) forged to 100 bytes -- the cap on decompressed bytes and the line-length
  limit hold whatever the header says;
* gzip text bomb: a kline header and one real kline row repeated to 1 GiB (3 MB compressed);
* zip bomb: a ``.zip`` whose one ``.csv`` member is 1 GiB of text without a newline, through
  ``btlab ingest binance-vision`` -- once with the default ratio limit, once with the limit lifted
  (``BTLAB_MAX_COMPRESSION_RATIO=100000``), where only the line-length limit of its first-lines check stops it;
* a valid aggTrades CSV of 998,160 trades (the real XRP/ETH trades of ``data/`` repeated, ids and times shifted)
  through ``btlab ingest binance-vision`` (ticks are upserted block by block);
* the 10M bars as a parquet file (1M-row row groups, as pandas writes them);
* valid data.binance.vision kline CSVs of 1M and 10M rows (0.1 and 1 GB): the real BTC/USDT 1m bars of ``data/``
  (130,708 gapless minutes) repeated, each copy shifted in time right after the previous one (a valid gapless 1m
  series, numbers written with ``repr`` precision).

With ``BTLAB_BENCH_OLD_SRC`` set to the ``src`` folder of an older btlab (e.g. ``git archive <commit> src``), the
1M-row import is also run with that code (``PYTHONPATH``), alternating with the current one, to compare time and
memory with the whole-file import it replaces.

Usage: ``python benchmarks/bench_import_memory.py [--rows N]`` (prints the section of RESULTS.md), or via
``benchmarks/run.py``.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from common import DATA

#: The stated bound on the peak RSS of importing any file (issue 7).
BOUND_MB = 500
GIB = 1 << 30
M1_FILE = DATA / "BTC_USDT-1m_2025-05-20_2025-08-18.feather"
MINUTE_MS = 60_000


def write_kline_csv(path: Path, rows: int, *, header: bool = True) -> Path:
    """A valid data.binance.vision 1m kline CSV of ``rows`` rows built from the real BTC/USDT 1m bars.

    The 130,708 real bars (gapless minutes) are repeated; copy ``r`` is shifted by ``r`` times their span, so open
    times keep increasing by exactly one minute. Numbers are written with ``repr`` precision (exact round trip).
    """
    bars = pd.read_feather(M1_FILE)
    n = len(bars)
    open_ms = bars["date"].astype("datetime64[ms, UTC]").astype("int64").to_numpy()
    assert (np.diff(open_ms) == MINUTE_MS).all()
    span = n * MINUTE_MS
    cols = {c: bars[c].map(repr).to_numpy(dtype=object) for c in ("open", "high", "low", "close", "volume")}
    quote = (bars["volume"] * bars["close"]).map(repr).to_numpy(dtype=object)
    tail = np.array([f",{q},1000,0,0,0\n" for q in quote], dtype=object)
    mid = cols["open"] + "," + cols["high"] + "," + cols["low"] + "," + cols["close"] + "," + cols["volume"] + ","
    with path.open("w") as fh:
        if header:
            fh.write("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                     "taker_buy_quote_volume,ignore\n")
        written, rep = 0, 0
        while written < rows:
            take = min(n, rows - written)
            start = open_ms[:take] + rep * span
            opens = start.astype(str).astype(object)
            closes = (start + MINUTE_MS - 1).astype(str).astype(object)
            fh.write("".join(opens + "," + mid[:take] + closes + tail[:take]))
            written += take
            rep += 1
    return path


def write_agg_trades_csv(path: Path, copies: int = 80) -> Path:
    """A valid data.binance.vision aggTrades CSV: the 12,477 real XRP/ETH aggregate trades of ``data/``, repeated
    ``copies`` times with ids and times shifted past the previous copy (998,160 trades for 80)."""
    src = pd.read_csv(DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv", header=None, dtype=str)
    ids, first, last, ts = (src[c].astype(np.int64).to_numpy() for c in (0, 3, 4, 5))
    id_span, trade_span, t_span = ids[-1] - ids[0] + 1, last[-1] - first[0] + 1, ts[-1] - ts[0] + 1
    with path.open("w") as fh:
        for r in range(copies):
            copy = src.copy()
            copy[0], copy[3], copy[4], copy[5] = (
                (ids + r * id_span).astype(str), (first + r * trade_span).astype(str),
                (last + r * trade_span).astype(str), (ts + r * t_span).astype(str))
            copy.to_csv(fh, header=False, index=False, lineterminator="\n")
    return path


def write_parquet_from_csv(csv_path: Path, path: Path, group_rows: int = 1 << 20) -> Path:
    """The bars of a kline CSV from :func:`write_kline_csv` as parquet (``date`` UTC and OHLCV, row groups of
    ``group_rows`` rows as pandas writes them), converted block by block."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    names = ["open_time", "open", "high", "low", "close", "volume"]
    reader = pacsv.open_csv(csv_path, convert_options=pacsv.ConvertOptions(include_columns=names))
    writer = None
    pending: list[pa.RecordBatch] = []

    def flush() -> None:
        table = pa.Table.from_batches(pending)
        date = table.column("open_time").cast(pa.timestamp("ms", tz="UTC"))
        table = table.drop_columns(["open_time"]).add_column(0, "date", date)
        writer.write_table(table, row_group_size=group_rows)
        pending.clear()

    for batch in reader:
        if writer is None:
            schema = pa.schema([("date", pa.timestamp("ms", tz="UTC"))] + [(n, pa.float64()) for n in names[1:]])
            writer = pq.ParquetWriter(path, schema)
        pending.append(batch)
        if sum(b.num_rows for b in pending) >= group_rows:
            flush()
    if pending:
        flush()
    writer.close()
    return path


def write_gzip_bomb(path: Path, size: int = GIB, *, forge_isize: int | None = None, chunk: int = 1 << 24) -> Path:
    """A ``.csv.gz`` of ``size`` zero bytes (maximum compression); ``forge_isize`` overwrites its size field."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    zeros = bytes(chunk)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            fh.write(comp.compress(zeros[: min(chunk, left)]))
            left -= chunk
        fh.write(comp.flush())
    if forge_isize is not None:
        with path.open("r+b") as fh:
            fh.seek(-4, os.SEEK_END)
            fh.write(int(forge_isize).to_bytes(4, "little"))
    with gzip.open(path) as check:  # a real gzip file (only the first bytes are read)
        check.read(16)
    return path


def write_zip_bomb(path: Path, size: int = GIB, *, member: str = "BTCUSDT-1m-2024-01-01.csv",
                   chunk: int = 1 << 24) -> Path:
    """A ``.zip`` with one ``.csv`` member of ``size`` bytes of text without any newline (deflated)."""
    block = (b"1704067200000,42283.58,42298.62" * (chunk // 31 + 1))[:chunk]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(member, "w", force_zip64=True) as fh:
            left = size
            while left > 0:
                fh.write(block[: min(chunk, left)])
                left -= chunk
    return path


#: Starts a command with posix_spawn and reports its own peak RSS (``ru_maxrss`` of that one child, in KiB): a
#: child forked from a big process would start with the parent's pages counted, so the launcher is a bare Python.
LAUNCHER = ("import os,sys;pid=os.posix_spawn(sys.argv[1],sys.argv[1:],os.environ);_,st,ru=os.wait4(pid,0);"
            "sys.stderr.write(f'\\nMAXRSS {ru.ru_maxrss}\\n');sys.exit(os.waitstatus_to_exitcode(st))")


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Run ``argv``; return ``(exit code, seconds, peak RSS in MB of that process, last stderr line)``."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *argv], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    peak_kb = int(lines.pop().split()[1])
    return proc.returncode, elapsed, peak_kb / 1024, (lines[-1] if lines else "")


def _shorten(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_text_bomb(path: Path, size: int = GIB) -> Path:
    """A ``.csv.gz`` holding a kline header and one real kline row repeated to ``size`` bytes."""
    row = b"1747699200000,105573.73,105597.1,105554.31,105554.32,10.82647,1747699259999,1142780.6788504,1000,0,0,0\n"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = row * ((1 << 24) // len(row))
    with path.open("wb") as fh:
        fh.write(comp.compress(b"open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                               b"taker_buy_volume,taker_buy_quote_volume,ignore\n"))
        for _ in range(size // len(block)):
            fh.write(comp.compress(block))
        fh.write(comp.flush())
    return path


def _row(what: str, path: Path, raw: int, command: list[str], result: tuple[int, float, float, str]) -> str:
    code, secs, peak, last = result
    last = last.replace(f"{path.parent}/", "")  # the temporary folder
    ok = "**yes**" if peak < BOUND_MB else "**NO**"
    shown = "imported" if code == 0 else f"`{_shorten(last)}`"
    return (f"| {what} | {path.stat().st_size / 1e6:,.1f} MB | {raw / 1e6:,.0f} MB | "
            f"`btlab {' '.join(command[:2])}`: {shown} | {code} | {secs:.1f} s | {peak:,.0f} MB | {ok} |")


def run(rows: int = 10_000_000, rounds: int = 3) -> list[str]:
    exe = str(Path(sys.executable).with_name("btlab"))
    lines = [f"| file | size on disk | uncompressed | command: outcome | exit | time | peak RSS "
             f"| under {BOUND_MB} MB |",
             "|---|---:|---:|---|---:|---:|---:|---|"]
    base_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400"}
    base_env.pop("BTLAB_MAX_COMPRESSION_RATIO", None)
    base_env.pop("PYTHONPATH", None)
    imp = ["data", "import", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m"]
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        runs = 0

        def measure(path: Path, command: list[str],
                    extra: dict[str, str] | None = None) -> tuple[int, float, float, str]:
            nonlocal runs
            runs += 1
            env = {**base_env, "BTLAB_STORE": str(d / f"s{runs}.duckdb"), **(extra or {})}
            try:
                return run_measured([exe, command[0], command[1], str(path), *command[2:]], env)
            finally:
                for f in d.glob(f"s{runs}.duckdb*"):
                    f.unlink()

        cases: list[tuple[str, Path, int, list[str], dict[str, str] | None]] = [
            ("gzip bomb: 1 GiB of zero bytes", write_gzip_bomb(d / "bomb.csv.gz"), GIB, imp, None),
            ("gzip bomb, size field forged to 100 bytes", write_gzip_bomb(d / "forged.csv.gz", forge_isize=100), GIB,
             imp, None),
            ("gzip text bomb: a header and one kline row repeated", write_text_bomb(d / "text.csv.gz"), GIB, imp,
             None),
        ]
        zbomb = write_zip_bomb(d / "BTCUSDT-1m-2024-01-01.zip")
        cases += [
            ("zip bomb: 1 GiB member without a newline", zbomb, GIB, ["ingest", "binance-vision"], None),
            ("the same, ratio limit lifted (BTLAB_MAX_COMPRESSION_RATIO=100000)", zbomb, GIB,
             ["ingest", "binance-vision"], {"BTLAB_MAX_COMPRESSION_RATIO": "100000"}),
        ]
        for what, path, raw, command, extra in cases:
            lines.append(_row(what, path, raw, command, measure(path, command, extra)))
        for f in d.glob("*.gz"):
            f.unlink()
        zbomb.unlink()

        small_rows = min(rows, 1_000_000)
        small = write_kline_csv(d / "klines-1M.csv", small_rows)
        old_src = os.environ.get("BTLAB_BENCH_OLD_SRC")
        new_runs, old_runs = [], []
        for _ in range(rounds if old_src else 1):
            new_runs.append(measure(small, imp))
            if old_src:
                old_runs.append(measure(small, imp, {"PYTHONPATH": old_src}))
        best = min(new_runs, key=lambda r: r[1])
        lines.append(_row(f"valid kline CSV, {small_rows:,} rows", small, small.stat().st_size, imp, best))
        if old_runs:
            old_best = min(old_runs, key=lambda r: r[1])
            lines.append(_row("the same with the code before issue 7 (whole-file read; `BTLAB_BENCH_OLD_SRC`)", small,
                              small.stat().st_size, imp, old_best))
            notes.append(f"{small_rows:,}-row CSV, best of {rounds} alternating rounds: chunked import "
                         f"{best[1]:.1f} s vs whole-file {old_best[1]:.1f} s (time ratio "
                         f"**{best[1] / old_best[1]:.2f}x**), peak RSS {best[2]:,.0f} MB vs {old_best[2]:,.0f} MB.")
        small.unlink()
        agg = write_agg_trades_csv(d / "XRPETH-aggTrades-2019-10.csv")
        vision = ["ingest", "binance-vision", "--symbol", "XRP/ETH"]
        lines.append(_row("valid aggTrades CSV, 998,160 trades (ticks, streamed)", agg, agg.stat().st_size, vision,
                          measure(agg, vision)))
        agg.unlink()
        if rows > small_rows:
            big = write_kline_csv(d / "klines-big.csv", rows)
            result = measure(big, imp)
            lines.append(_row(f"valid kline CSV, {rows:,} rows", big, big.stat().st_size, imp, result))
            notes.append(f"{rows:,} rows imported in {result[1]:.0f} s ({rows / result[1]:,.0f} rows/s).")
            parquet = write_parquet_from_csv(big, d / "klines-big.parquet")
            big.unlink()
            lines.append(_row("the same bars as parquet (row groups of 1,048,576 rows)", parquet, rows * 48, imp,
                              measure(parquet, imp)))
            parquet.unlink()
    notes.append(f"One process per row (its own peak RSS: `ru_maxrss`); a `btlab data import` of a small file peaks at "
                 f"about 200 MB (Python, pandas, Arrow, DuckDB). Goal (issue 7): under {BOUND_MB} MB whatever the "
                 "file.")
    return lines + ["", " ".join(notes)]


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--rows") + 1]) if "--rows" in sys.argv else 10_000_000
    print("\n".join(run(n)))
