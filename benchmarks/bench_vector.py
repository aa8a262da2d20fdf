"""The vector engine (numba kernels) vs the Backtrader engine, sma_cross on the 58,419 real BTC/USDT 1h bars.

* One 58k-bar run: the Backtrader engine (``btlab.run_backtest``, record=False) vs ``run_vector`` end to end
  (bars read from a DuckDB store, simulation, metrics) and the kernel alone; same final value asserted.
* A 90-combination grid (fast 5..45 step 5 x slow 50..140 step 10): the vector engine on one core (kernel only,
  and with metrics per combination) and on 2 worker processes (with metrics); the Backtrader engine on a sample
  of the grid (a full Backtrader grid takes minutes), parity asserted on that sample.
* Cold first run in a fresh process (interpreter start, imports, data read, kernels loaded from numba's disk
  cache, run, metrics), and the same with an empty numba cache (JIT compilation included).
* The store read of those bars (``DuckDBStore(path, read_only=True)`` + ``read_bars`` + close), before and after
  the numpy read path (``fetchnumpy`` + :func:`btlab.store.marketdata.bars_from_columns` instead of ``ORDER BY ts``
  into pandas), interleaved in the same run, beside DuckDB's own file open and close.
* vectorbt's ``Portfolio.from_signals`` on the same grid (its first call, warm calls, one call per combination and
  all combinations as columns of one call) in a separate interpreter (benchmarks/.venv-vbt, created and filled by
  :func:`vbt_python` on first use: vectorbt is no dependency of btlab), with its final values against btlab's (which
  are Backtrader's to the last digit).
Targets (issue 11): >= 100 combinations/s on 2 cores, a single run <= 50 ms end to end, cold <= 2 s, ahead of
vectorbt.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from common import DATA, ROOT

import btlab
from btlab.backtest.vector import run_vector, simulate
from btlab.store.duckdb import DuckDBStore
from btlab.store.marketdata import MarketDataStore

GRID = [(f, s) for f in range(5, 50, 5) for s in range(50, 150, 10)]  # 90 combinations
SPY = DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz"
ORB_GRID = [{"range_minutes": r, "stop_pct": sp, "take_profit_pct": tp, "max_stops": ms, "cooloff_minutes": 30}
            for r in range(5, 65, 5) for sp in (0.1, 0.2, 0.5, 1.0) for tp in (0.0, 0.5, 1.0) for ms in (1, 2, 3)]
ORB_SAMPLE = [ORB_GRID[i] for i in (0, 100, 250, 431)]
BT_SAMPLE = [(5, 50), (25, 100), (45, 140)]
FEATHER = DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"
HERE = Path(__file__).resolve().parent
#: vectorbt's own interpreter (git-ignored), and the script it runs (prints JSON)
VBT_VENV = HERE / ".venv-vbt"
VBT_SIDE = HERE / "vbt_side.py"
BTC = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}

COLD = """
import time, sys
t0 = time.perf_counter()
from btlab.store.duckdb import DuckDBStore
from btlab.backtest.vector import run_vector
with DuckDBStore(sys.argv[1], read_only=True) as st:
    bars = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
metrics, trades = run_vector("sma_cross", bars, {"fast": 10, "slow": 30})
print(time.perf_counter() - t0, metrics.end_value)
"""
COLD_ORB = COLD.replace('exchange="binance", symbol="BTC/USDT", timeframe="1h"',
                        'exchange="nyse", symbol="SPY", timeframe="1m"').replace(
    'run_vector("sma_cross", bars, {"fast": 10, "slow": 30})',
    'run_vector("orb", bars, {}, calendar="XNYS", timeframe="1m")')


def _chunk(args: tuple[str, list[tuple[int, int]]]) -> int:
    path, combos = args
    with DuckDBStore(path, read_only=True) as st:
        bars = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    cache: dict = {}
    for fast, slow in combos:
        run_vector("sma_cross", bars, {"fast": fast, "slow": slow}, cache=cache)
    return len(combos)


def _cold(path: str, env: dict[str, str], code: str = COLD) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return wall, float(out.stdout.split()[0])


def run() -> list[str]:
    bars = pd.read_feather(FEATHER).rename(columns={"date": "ts"})
    lines = [f"Load average when this section started: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other "
             "jobs share the machine: absolute times swing, compare ratios within the run).", ""]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.duckdb")
        with DuckDBStore(path) as st:
            st.write_bars(bars, exchange="binance", symbol="BTC/USDT", timeframe="1h", source="bench")
        with DuckDBStore(path, read_only=True) as st:
            stored = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
        run_vector("sma_cross", stored, {"fast": 10, "slow": 30})  # compile / load the kernels

        # one run
        t0 = time.perf_counter()
        res = btlab.run_backtest("sma_cross", store=path, params={"fast": 10, "slow": 30}, record=False,
                                 allow_gaps=True)
        t_bt = time.perf_counter() - t0
        t_vec, t_kernel, t_read = [], [], []
        for _ in range(7):
            t0 = time.perf_counter()
            with DuckDBStore(path, read_only=True) as st:
                b = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
            t_read.append(time.perf_counter() - t0)
            metrics, _ = run_vector("sma_cross", b, {"fast": 10, "slow": 30})
            t_vec.append(time.perf_counter() - t0)
            o, c = b["open"].to_numpy(), b["close"].to_numpy()
            t0 = time.perf_counter()
            simulate("sma_cross", o, c, {"fast": 10, "slow": 30}, 10_000.0, 0.001, 95.0)
            t_kernel.append(time.perf_counter() - t0)
        assert metrics.end_value == res.summary.end_value, "vector and Backtrader engines disagree"
        t_run = min(v - r for v, r in zip(t_vec, t_read))
        lines += [
            f"sma_cross 10/30 on {len(stored):,} BTC/USDT 1h bars (final value {metrics.end_value:,.2f} on both "
            "engines, bit for bit):",
            "",
            "| contender | time per run | vs Backtrader engine |",
            "|---|---:|---:|",
            f"| Backtrader engine (`run_backtest`, record=False) | {t_bt:.2f} s | 1x |",
            f"| vector, end to end (DuckDB read + kernel + metrics), best of 7 | {min(t_vec) * 1e3:.1f} ms "
            f"| {t_bt / min(t_vec):,.0f}x |",
            f"| of which the store read (open the DuckDB file, read_bars, close), best of 7 | "
            f"{min(t_read) * 1e3:.1f} ms | |",
            f"| vector without the read (kernel + equity + trades + metrics), best of 7 | {t_run * 1e3:.1f} ms "
            f"| {t_bt / t_run:,.0f}x |",
            f"| vector kernel alone (SMAs, crossover, simulation), best of 7 | {min(t_kernel) * 1e3:.2f} ms "
            f"| {t_bt / min(t_kernel):,.0f}x |",
            "",
        ]

        # the grid
        o, c = stored["open"].to_numpy(), stored["close"].to_numpy()
        t0 = time.perf_counter()
        cache: dict[int, object] = {}
        for fast, slow in GRID:
            simulate("sma_cross", o, c, {"fast": fast, "slow": slow}, 10_000.0, 0.001, 95.0, sma_cache=cache)
        g_kernel = time.perf_counter() - t0
        t0 = time.perf_counter()
        shared: dict = {}
        finals = [run_vector("sma_cross", stored, {"fast": fast, "slow": slow}, cache=shared)[0].end_value
                  for fast, slow in GRID]
        g_metrics = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            done = sum(pool.map(_chunk, [(path, GRID[0::2]), (path, GRID[1::2])]))
        g_two = time.perf_counter() - t0
        assert done == len(GRID)
        t0 = time.perf_counter()
        for fast, slow in BT_SAMPLE:
            r = btlab.run_backtest("sma_cross", store=path, params={"fast": fast, "slow": slow}, record=False,
                                   allow_gaps=True)
            m, _ = run_vector("sma_cross", stored, {"fast": fast, "slow": slow})
            assert m.end_value == r.summary.end_value, (fast, slow)
        g_bt = (time.perf_counter() - t0) / len(BT_SAMPLE)  # includes the (negligible) vector check
        n = len(GRID)
        lines += [
            f"Grid of {n} combinations (fast 5..45 x slow 50..140), same bars:",
            "",
            "| contender | combinations/s | grid time |",
            "|---|---:|---:|",
            f"| Backtrader engine, one process (measured on {len(BT_SAMPLE)} of the combinations, parity "
            f"checked) | {1 / g_bt:.2f} | {g_bt * n:.0f} s (extrapolated) |",
            f"| vector kernel alone, one core (SMAs cached per period) | {n / g_kernel:,.0f} | {g_kernel:.2f} s |",
            f"| vector with metrics per combination, one core (SMAs, benchmark cached) | {n / g_metrics:,.0f} "
            f"| {g_metrics:.2f} s |",
            f"| vector with metrics, 2 worker processes (pool start and data read included) | {n / g_two:,.0f} "
            f"| {g_two:.2f} s |",
            "",
        ]

        lines += _read_before_after(path)
        lines += _vectorbt(stored, finals, {"end_to_end": min(t_vec), "metrics": g_metrics, "two": g_two,
                                            "final_10_30": metrics.end_value, "run": t_run,
                                            "kernel": min(t_kernel), "grid_kernel": g_kernel})

        # cold first run in a fresh process
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
        warm_wall, warm_in = _cold(path, env)
        with tempfile.TemporaryDirectory() as cache_dir:
            cold_wall, cold_in = _cold(path, dict(env, NUMBA_CACHE_DIR=cache_dir))
        lines += [
            "Fresh process, one 58k-bar run (imports, DuckDB read, kernels, metrics):",
            "",
            "| case | process wall time | inside the process |",
            "|---|---:|---:|",
            f"| numba's disk cache filled (any run after the first) | {warm_wall:.2f} s | {warm_in:.2f} s |",
            f"| empty numba cache (kernels JIT-compiled) | {cold_wall:.2f} s | {cold_in:.2f} s |",
            "",
        ]
        lines += _orb(path, env)
    return lines


def _orb(path: str, env: dict[str, str]) -> list[str]:
    """The orb section: Backtrader engine vs vector engine per combination, the vector grid, a cold orb run."""
    from btlab.marketdata.sources.files.importer import import_bars

    with DuckDBStore(path) as st:
        import_bars(SPY, st, exchange="nyse", symbol="SPY", timeframe="1m")
    kw = {"exchange": "nyse", "symbol": "SPY", "timeframe": "1m", "store": path, "record": False}
    rows, bt_times, bars = [], [], None
    for params in ORB_SAMPLE:
        t0 = time.perf_counter()
        res = btlab.run_backtest("orb", params=params, **kw)
        t_bt = time.perf_counter() - t0
        bt_times.append(t_bt)
        bars = res.bars
        run_vector("orb", bars, params, calendar="XNYS", timeframe="1m")  # compile / load the kernel
        t_vec = min(_timed(lambda: run_vector("orb", bars, params, calendar="XNYS", timeframe="1m"))
                    for _ in range(5))
        m, trades = run_vector("orb", bars, params, calendar="XNYS", timeframe="1m", symbol="SPY")
        assert m.end_value == res.summary.end_value and len(trades) == len(res.trades), params
        assert (trades["exit_price"].to_numpy() == res.trades["exit_price"].to_numpy()).all(), params
        label = ", ".join(f"{k.split('_')[0]} {v:g}" for k, v in params.items() if k != "cooloff_minutes")
        rows.append(f"| {label} | {len(trades)} | {t_bt:.2f} s | {t_vec * 1e3:.1f} ms | {t_bt / t_vec:,.0f}x |")
    assert bars is not None
    o, h, lo, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    cache: dict = {}
    t0 = time.perf_counter()
    for params in ORB_GRID:
        simulate("orb", o, c, params, 10_000.0, 0.001, 95.0, cache, high=h, low=lo, ts=bars["ts"], timeframe="1m",
                 calendar="XNYS")
    g_kernel = time.perf_counter() - t0
    t0 = time.perf_counter()
    shared: dict = {}
    for params in ORB_GRID:
        run_vector("orb", bars, params, calendar="XNYS", timeframe="1m", cache=shared)
    g_metrics = time.perf_counter() - t0
    n, bt_mean = len(ORB_GRID), sum(bt_times) / len(bt_times)
    warm_wall, warm_in = _cold(path, env, COLD_ORB)
    return [
        f"orb on {len(bars):,} SPY 1-minute bars (regular sessions, 2024-02-20 .. 2024-05-17; cool-off 30 min; "
        "same trades and final value on both engines, asserted):",
        "",
        "| combination | trades | Backtrader engine | vector (kernel + equity + trades + metrics), best of 5 | ratio |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Grid of {n} orb combinations (range 5..60 x stop 0.1..1.0 x take-profit 0/0.5/1.0 x max stops 1..3):",
        "",
        "| contender | combinations/s | grid time |",
        "|---|---:|---:|",
        f"| Backtrader engine, one process (mean of the {len(ORB_SAMPLE)} above) | {1 / bt_mean:.2f} "
        f"| {bt_mean * n:.0f} s (extrapolated) |",
        f"| vector kernel alone, one core (session windows cached) | {n / g_kernel:,.0f} | {g_kernel:.2f} s |",
        f"| vector with metrics per combination, one core (session windows cached) | {n / g_metrics:,.0f} "
        f"| {g_metrics:.2f} s |",
        "",
        f"Fresh process, one orb run on these bars (numba's cache filled; imports, DuckDB read, sessions, kernel, "
        f"metrics): {warm_wall:.2f} s wall, {warm_in:.2f} s inside the process.",
    ]


def _read_before_after(path: str, rounds: int = 15) -> list[str]:
    """The store read of the 58k bars, main's path before this change and the numpy path after, interleaved (so
    both see the same machine load), beside DuckDB's own file open + close and the query + frame alone."""
    def read() -> pd.DataFrame:
        with DuckDBStore(path, read_only=True) as st:
            return st.read_bars(**BTC)

    saved = DuckDBStore._read_bar_rows

    def before() -> pd.DataFrame:  # the generic hook: ORDER BY ts, DuckDB's pandas conversion, dtype fixes
        DuckDBStore._read_bar_rows = MarketDataStore._read_bar_rows  # type: ignore[method-assign]
        try:
            return read()
        finally:
            DuckDBStore._read_bar_rows = saved  # type: ignore[method-assign]

    pd.testing.assert_frame_equal(before(), read(), check_exact=True)
    t: dict[str, list[float]] = {"before": [], "after": [], "open": [], "raw": [], "q_before": [], "q_after": []}
    sql = ("SELECT ts, open, high, low, close, volume, trades, vwap FROM ohlcv WHERE exchange = ? AND symbol = ? "
           "AND timeframe = ?")
    params = list(BTC.values())

    def raw() -> None:  # DuckDB alone: open, the same SELECT (its first scan of the file's blocks), close
        con = duckdb.connect(path, read_only=True)
        con.execute(sql, params).fetchnumpy()
        con.close()

    for _ in range(rounds):
        for key, func in (("before", before), ("after", read), ("open", lambda: duckdb.connect(path,
                          read_only=True).close()), ("raw", raw)):
            gc.collect()
            t0 = time.perf_counter()
            func()
            t[key].append(time.perf_counter() - t0)
    with DuckDBStore(path, read_only=True) as st, st.session():
        for _ in range(rounds):
            for key, func in (("q_before", lambda: MarketDataStore._read_bar_rows(st, sql, params)),
                              ("q_after", lambda: st._read_bar_rows(sql, params))):
                gc.collect()
                t0 = time.perf_counter()
                func()
                t[key].append(time.perf_counter() - t0)

    def ms(key: str) -> str:
        return f"{min(t[key]) * 1e3:.1f} ms (median {statistics.median(t[key]) * 1e3:.1f})"

    return [
        f"The store read of these bars (`DuckDBStore(path, read_only=True)` + `read_bars` + close; before: "
        f"`ORDER BY ts` into pandas through `.df()` and dtype fixes, main's path; after: `fetchnumpy()` unsorted, "
        f"sorted in numpy only when out of order, `bars_from_columns`; the same frame, asserted), {rounds} rounds "
        "interleaved, best (median):",
        "",
        "| step | before | after |",
        "|---|---:|---:|",
        f"| whole read: open the file, checks, read_bars, close | {ms('before')} | {ms('after')} |",
        f"| of which the query and the frame alone (connection already open) | {ms('q_before')} "
        f"| {ms('q_after')} |",
        f"| DuckDB's own file open + close (`duckdb.connect(path, read_only=True).close()`, nothing else) "
        f"| {ms('open')} | same |",
        f"| DuckDB alone: open, the same SELECT into numpy (a fresh database instance scans the file's blocks), "
        f"close: the floor of any read | {ms('raw')} | same |",
        "",
    ]


def vbt_python() -> tuple[Path | None, str]:
    """The interpreter of benchmarks/.venv-vbt with vectorbt importable: created (``python -m venv``) and filled
    (``pip install vectorbt``, from PyPI) on first use, progress on stderr; ``(None, why)`` when that fails (no
    network, no wheel for this Python): the section then says so instead of showing numbers."""
    py = VBT_VENV / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import vectorbt"], capture_output=True).returncode == 0:
        return py, ""
    print(f"bench_vector: installing vectorbt into {VBT_VENV} (once; a few minutes)", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VBT_VENV)], check=True, capture_output=True, text=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "vectorbt"], check=True, capture_output=True,
                       text=True, timeout=1800)
    except subprocess.CalledProcessError as exc:
        why = (exc.stderr or exc.stdout or "").strip().splitlines()
        return None, f"`{' '.join(map(str, exc.cmd))}` failed: {why[-1] if why else f'exit {exc.returncode}'}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    return py, ""


def _vectorbt(bars: pd.DataFrame, finals: list[float], ours: dict[str, float]) -> list[str]:
    """vectorbt on the sma_cross grid (in its own venv, numba cache empty: its first call compiles) vs ours."""
    head = [f"vectorbt's `Portfolio.from_signals` on the same {len(GRID)}-combination grid and bars:", ""]
    py, why = vbt_python()
    if py is None:
        return [*head, f"vectorbt could not be installed, so it is not compared: {why}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "bars.npz"
        np.savez(npz, ts=bars["ts"].dt.tz_localize(None).to_numpy(), open=bars["open"].to_numpy(),
                 close=bars["close"].to_numpy())
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"), PYTHONWARNINGS="ignore")
        env.pop("PYTHONPATH", None)
        t0 = time.perf_counter()
        out = subprocess.run([str(py), str(VBT_SIDE), str(npz), json.dumps(GRID)], env=env, capture_output=True,
                             text=True)
        wall = time.perf_counter() - t0
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return [*head, f"vectorbt's run failed, so it is not compared: {last}", ""]
    v = json.loads(out.stdout)
    first = v["first_signals_s"] + v["first_from_signals_s"] + v["first_metrics_s"]
    rel = np.abs(np.asarray(v["grid_finals"]) / np.asarray(finals) - 1.0)
    n = len(GRID)
    return [
        *head,
        "| contender | one 58k-bar run | combinations/s on the grid |",
        "|---|---:|---:|",
        f"| vectorbt {v['vectorbt']}, first call in a fresh process (numba compiles; import {v['import_s']:.1f} s "
        f"more) | {first:.1f} s | |",
        f"| vectorbt, `from_signals` alone, warm, best of 7 | {v['warm_from_signals_s'] * 1e3:.1f} ms | |",
        f"| vectorbt, MAs + crossings + `from_signals` + metrics, warm, best of 7; grid: one call per combination "
        f"| {v['warm_run_s'] * 1e3:.1f} ms | {n / v['grid_loop_s']:,.0f} |",
        f"| vectorbt, the grid as {n} columns of one `from_signals` call, warm (first call "
        f"{v['grid_columns_first_s']:.1f} s: numba compiles its 2-D variants) | | {n / v['grid_columns_s']:,.0f} |",
        f"| vectorbt, `from_signals` alone on those {n} columns (MAs and signals made beforehand), warm | | "
        f"{n / v['grid_columns_sim_s']:,.0f} |",
        f"| btlab vector engine, end to end (store read + kernel + metrics) | {ours['end_to_end'] * 1e3:.1f} ms | |",
        f"| btlab vector engine without the read (kernel + equity + trades + metrics); grid: with metrics, one core "
        f"| {ours['run'] * 1e3:.1f} ms | {n / ours['metrics']:,.0f} |",
        f"| btlab vector engine with metrics, 2 worker processes (pool start and data read included) | | "
        f"{n / ours['two']:,.0f} |",
        f"| btlab vector kernel alone (SMAs cached, crossover, simulation), one core | "
        f"{ours['kernel'] * 1e3:.2f} ms | {n / ours['grid_kernel']:,.0f} |",
        "",
        f"Final values vs Backtrader (btlab's equal Backtrader's bit for bit, asserted on a sample above): vectorbt "
        f"differs by {np.median(rel) * 100:.2f} % (median over the grid), {rel.max() * 100:.2f} % at most; "
        f"sma_cross 10/30: {v['final_10_30']:,.2f} vs {ours['final_10_30']:,.2f} "
        f"({abs(v['final_10_30'] / ours['final_10_30'] - 1) * 100:.2f} %). vectorbt sizes an entry on its fill price (95 % of the cash at the next open), Backtrader's "
        "PercentSizer on the signal bar's close; same signals otherwise (shifted one bar, filled at the open). "
        f"vectorbt ran in its own interpreter with an empty numba cache ({wall:.0f} s in all); its one-call-per-"
        "combination and columns figures are one process.",
        "",
    ]


def _timed(func: object) -> float:
    t0 = time.perf_counter()
    func()  # type: ignore[operator]
    return time.perf_counter() - t0


if __name__ == "__main__":
    print("\n".join(run()))
