"""Backtest throughput: btlab (store feed + recorder into a DuckDB file) vs plain Backtrader (PandasData).

Same strategy (bundled sma_cross, fast=10 slow=30), same 58,419 real BTC/USDT 1h bars, same broker settings,
stdstats off on both sides; once without extra analyzers and once with TradeAnalyzer + DrawDown + SharpeRatio on
both sides. Timings alternate the contenders in each round so machine noise hits both alike.
Target (issue 2): btlab at most 1.15x plain Backtrader's time.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

import btlab
from btlab.backtest.compat import bt
from btlab.store.duckdb import DuckDBStore
from btlab.strategies.sma_cross import SmaCross

from common import DATA

PARAMS = {"fast": 10, "slow": 30}
ANALYZERS = {"ta": bt.analyzers.TradeAnalyzer, "dd": bt.analyzers.DrawDown, "sr": bt.analyzers.SharpeRatio}


def plain(bars: pd.DataFrame, analyzers: dict) -> float:
    frame = bars.set_index(bars["ts"].dt.tz_localize(None))[["open", "high", "low", "close", "volume"]]
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60))
    cerebro.addstrategy(SmaCross, **PARAMS)
    cerebro.broker.setcash(10_000.0)
    cerebro.broker.setcommission(commission=0.001)
    cerebro.addsizer(bt.sizers.PercentSizer, percents=95)
    for name, cls in analyzers.items():
        cerebro.addanalyzer(cls, _name=name)
    return cerebro.run()[0].broker.getvalue()


def run(rounds: int = 5) -> list[str]:
    bars = pd.read_feather(DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather").rename(columns={"date": "ts"})
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        store.write_bars(bars, exchange="binance", symbol="BTC/USDT", timeframe="1h", source="bench")
        for label, analyzers in (("analyzers off", {}), ("analyzers on (TradeAnalyzer, DrawDown, SharpeRatio)", ANALYZERS)):
            t_plain, t_btlab, t_norec = [], [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                v_plain = plain(bars, analyzers)
                t_plain.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                res = btlab.run_backtest("sma_cross", store=store, params=PARAMS, analyzers=analyzers)
                t_btlab.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                btlab.run_backtest("sma_cross", store=store, params=PARAMS, analyzers=analyzers, record=False)
                t_norec.append(time.perf_counter() - t0)
                assert res.summary.end_value == v_plain, "btlab and plain Backtrader disagree"
            p, b, n = (statistics.median(t) for t in (t_plain, t_btlab, t_norec))
            lines.append(
                f"| {label} | {len(bars):,} | {p:.2f} s | {b:.2f} s | **{b / p:.2f}x** | {n:.2f} s ({n / p:.2f}x) | "
                f"{len(bars) / b:,.0f} |"
            )
        store.close()
    header = [
        "| backtest (sma_cross, BTC/USDT 1h) | bars | plain Backtrader (PandasData) | btlab (store feed + recorder) "
        "| btlab / plain | btlab, recording off | btlab bars/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    return header + lines + [
        "",
        f"Median of {rounds} alternating rounds each; both sides reach the same final value (checked every round). "
        "btlab's time includes reading the bars from DuckDB, writing the run row, the equity of every bar, "
        "every trade and order fill, and computing the metrics. Target: btlab / plain <= 1.15.",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
