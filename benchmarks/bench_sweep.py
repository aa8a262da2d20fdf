"""A parameter sweep on Dask (``btlab.sweep.run_sweep``, Backtrader engine) vs Backtrader's own ``optstrategy``.

200 combinations of the bundled opening-range breakout (``orb``) on the real SPY 1-minute bars (data/, regular
sessions of 2024-02-20 .. 2024-05-17), both on 2 worker processes:

* btlab: ``run_sweep(..., engine="backtrader")`` on a LocalCluster of 2 single-threaded worker processes; the time
  includes reading the bars, scattering them, running every combination and storing each result in a DuckDB store
  (the cluster is started before the clock starts, and its workers' peak memory is read at the end).
* Backtrader: ``cerebro.optstrategy(OpeningRangeBreakout, ...)`` with ``maxcpus=2`` and ``optreturn=True`` as
  Backtrader's docs show it, on the same bars (btlab's in-memory feed, so the strategy sees the same close times and
  exchange), broker and sizer as btlab configures them, and btlab's recorder as the analyzer that yields the same
  metrics (in memory, nothing stored).
Metrics per combination (final value, total return, Sharpe, max drawdown, trades, win rate) are asserted identical.
Target (issue 11): btlab at least 1.5x faster. ``BTLAB_BENCH_SWEEP_COMBOS`` takes fewer combinations (a prefix of
the grid) for a quick run.
"""

from __future__ import annotations

import math
import os
import resource
import tempfile
import time
from datetime import datetime, timezone
from itertools import product
from pathlib import Path

from common import DATA

from btlab.backtest.compat import bt
from btlab.backtest.feed import StoreData
from btlab.backtest.recorder import Recorder
from btlab.backtest.runner import load_backtest_bars
from btlab.marketdata.sources.files.importer import import_bars
from btlab.store.duckdb import DuckDBStore
from btlab.strategies.orb import OpeningRangeBreakout
from btlab.sweep.grid import Grid
from btlab.sweep.run import run_sweep

SPY_1M = DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz"
#: 5 x 4 x 10 = 200 combinations
AXES = {
    "range_minutes": [5, 10, 15, 20, 30],
    "stop_pct": [0.1, 0.2, 0.3, 0.5],
    "take_profit_pct": [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0],
}
COMPARED = ("end_value", "total_return", "sharpe", "max_drawdown", "n_trades", "win_rate")
CASH, COMMISSION, SIZE_PCT = 10_000.0, 0.001, 95.0


class _MetricsOnly(Recorder):
    """btlab's recorder (memory only) that pickles as its metrics alone: what ``optreturn`` ships back from the
    pool is the analyzer, and the recorder's feeds and buffers need not travel."""

    def __getstate__(self) -> dict:
        return {"metrics": self.metrics}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _combos(n: int) -> list[dict]:
    return [dict(zip(AXES, values)) for values in product(*AXES.values())][:n]


def _optstrategy(bars, combos: list[dict]) -> tuple[float, dict, int]:
    """Backtrader's optstrategy(maxcpus=2) over ``combos`` (a full product of AXES, or a prefix: then filtered):
    ``(seconds, {params tuple: metrics}, peak RSS of a pool process in KiB: the largest of this process's
    finished children, so call it before starting any other child process)``."""
    wanted = {tuple(c.values()) for c in combos}
    axes = {k: sorted({c[k] for c in combos}) for k in AXES}
    t0 = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False, maxcpus=2, optreturn=True)
    cerebro.adddata(StoreData(store=None, exchange="nyse", symbol="SPY", bars_timeframe="1m", name="SPY", bars=bars))
    cerebro.optstrategy(OpeningRangeBreakout, **axes)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.addsizer(bt.sizers.PercentSizer, percents=SIZE_PCT)
    cerebro.addanalyzer(_MetricsOnly, _name="metrics", run={"run_id": "opt", "ts": datetime.now(timezone.utc)},
                        calendar="XNYS")
    results = cerebro.run()
    seconds = time.perf_counter() - t0
    out = {}
    for (ret,) in results:
        key = tuple(getattr(ret.params, k) for k in AXES)
        if key in wanted:
            out[key] = ret.analyzers.metrics.metrics.as_dict()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, out, peak


def _same(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def run() -> list[str]:
    from distributed import Client, LocalCluster

    n = int(os.environ.get("BTLAB_BENCH_SWEEP_COMBOS", "200"))
    combos = _combos(n)
    grid = Grid.from_mapping({"params": {k: sorted({c[k] for c in combos}) for k in AXES}})
    if len(grid) != len(combos):  # a prefix that is not a product: sweep exactly those combinations
        raise SystemExit(f"BTLAB_BENCH_SWEEP_COMBOS={n}: use a multiple of {len(AXES['take_profit_pct'])}")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.duckdb")
        with DuckDBStore(path) as st:
            import_bars(SPY_1M, st, exchange="nyse", symbol="SPY", timeframe="1m")
            _, loaded, _ = load_backtest_bars("orb", symbols="SPY", exchange="nyse", timeframe="1m", store=st)
        bars = loaded["SPY"]
        # optstrategy first: its pool processes are then this process's only children (their peak RSS)
        t_opt, opt, opt_peak = _optstrategy(bars, combos)
        assert len(opt) == len(combos)

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as cluster, Client(cluster) as client:
            with DuckDBStore(path) as st:
                t0 = time.perf_counter()
                result = run_sweep("orb", grid, exchange="nyse", symbols="SPY", timeframe="1m", engine="backtrader",
                                   scheduler=cluster.scheduler_address, store=st, cash=CASH, commission=COMMISSION,
                                   size_pct=SIZE_PCT)
                t_sweep = time.perf_counter() - t0
                runs = st.sweep_runs(result.sweep_id)
            worker_peak = max(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values())
        assert result.done == len(combos) and result.failed == 0, result

        print(f"sweep {t_sweep:.2f} s, optstrategy {t_opt:.2f} s", flush=True)
        import json

        mismatches = 0
        for _, row in runs.iterrows():
            params = json.loads(row["params"])
            expected = opt[tuple(params[k] for k in AXES)]
            mismatches += sum(not _same(row[m], expected[m]) for m in COMPARED)
        assert mismatches == 0, f"{mismatches} metric values differ between the sweep and optstrategy"
    k = len(combos)
    return [
        f"{k} `orb` combinations (range_minutes x stop_pct x take_profit_pct) on {len(bars):,} SPY 1m bars "
        "(regular sessions 2024-02-20 .. 2024-05-17), 2 worker processes each; final value, total return, Sharpe, "
        f"max drawdown, trades and win rate identical for all {k} combinations:",
        "",
        "| contender | wall time | combinations/s | vs optstrategy | peak RSS per worker |",
        "|---|---:|---:|---:|---:|",
        f"| btlab `run_sweep` (Backtrader engine, LocalCluster 2x1 thread, results stored in DuckDB) | {t_sweep:.1f} s "
        f"| {k / t_sweep:.2f} | {t_opt / t_sweep:.2f}x | {worker_peak / 1024:.0f} MiB |",
        f"| Backtrader `optstrategy(maxcpus=2, optreturn=True)` + btlab's recorder as analyzer | {t_opt:.1f} s "
        f"| {k / t_opt:.2f} | 1x | {opt_peak / 1024:.0f} MiB |",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
