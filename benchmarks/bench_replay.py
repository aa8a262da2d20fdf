"""Replay through the broker vs reading the store (issue 10): the same sma_cross backtest on real Binance BTC/USDT
and ETH/USDT 1m klines (data/*_USDT-1m_2025-05-20_*.feather), ``days`` days of both, from a fresh DuckDB store.

Measured side by side in one run, best of ``rounds``:

* direct: ``run_backtest`` reading the store (``record=False``);
* replay: ``replay_bars`` at ``--speed max`` into a topic (store windows -> JSON -> broker, flushed, end markers);
* stream backtest: ``run_backtest(source=KafkaSource(...))`` from that topic (consumer thread, live feeds);
* pacing: a 60x replay of 10 minutes of 1m bars (10 records, 1 s apart): the largest lag behind schedule.

Goal (issue 10): stream path >= 0.9x the direct path in bars/s. Tansu (memory storage) shares the cores.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

from common import DATA, ROOT

sys.path.insert(0, str(ROOT / "tests"))

from broker import kafka_broker  # noqa: E402

from btlab.backtest.kafka_feed import KafkaSource  # noqa: E402
from btlab.backtest.runner import run_backtest  # noqa: E402
from btlab.store.duckdb import DuckDBStore  # noqa: E402
from btlab.stream import StreamConfig  # noqa: E402
from btlab.stream.replay import replay_bars  # noqa: E402

SYMBOLS = ("BTC/USDT", "ETH/USDT")
START = pd.Timestamp("2025-06-01", tz="UTC")


def _store(path: Path, days: int) -> DuckDBStore:
    store = DuckDBStore(path)
    for symbol in SYMBOLS:
        bars = pd.read_feather(DATA / f"{symbol.replace('/', '_')}-1m_2025-05-20_2025-08-18.feather")
        bars = bars.rename(columns={"date": "ts"})
        bars = bars[(bars["ts"] >= START) & (bars["ts"] < START + pd.Timedelta(days=days))]
        store.write_bars(bars, exchange="binance", symbol=symbol, timeframe="1m", source="bench")
    return store


def run(days: int = 14, rounds: int = 3) -> list[str]:
    end = (START + pd.Timedelta(days=days - 1)).strftime("%Y-%m-%d")
    args = dict(symbols=list(SYMBOLS), exchange="binance", timeframe="1m", start=START.strftime("%Y-%m-%d"), end=end,
                params={"fast": 10, "slow": 30}, record=False)
    t_direct, t_replay, t_stream = [], [], []
    with tempfile.TemporaryDirectory() as tmp, _store(Path(tmp) / "bench.duckdb", days) as store, \
            kafka_broker() as broker:
        for _ in range(rounds):
            t0 = time.perf_counter()
            direct = run_backtest("sma_cross", store=store, **args)
            t_direct.append(time.perf_counter() - t0)
            config = StreamConfig(broker.bootstrap, prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=6)
            t0 = time.perf_counter()
            replay = replay_bars(store, "binance", SYMBOLS, "1m", args["start"], end, config=config)
            t_replay.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            streamed = run_backtest("sma_cross", store=store, source=KafkaSource(replay.topic, config=config), **args)
            t_stream.append(time.perf_counter() - t0)
            assert streamed.summary.as_dict() == direct.summary.as_dict()
        config = StreamConfig(broker.bootstrap, prefix=f"pace{uuid.uuid4().hex[:8]}", partitions=6)
        paced = replay_bars(store, "binance", ["BTC/USDT"], "1m", "2025-06-01T00:00", "2025-06-01T00:09",
                            config=config, speed=60)
    n = sum(len(b) for b in direct.bars_by_symbol.values())
    d, r, s = min(t_direct), min(t_replay), min(t_stream)
    rows = [
        "| path (sma_cross, real BTC/USDT + ETH/USDT 1m, Tansu on this machine) | bars | best time | bars/s |",
        "|---|---:|---:|---:|",
        f"| direct: backtest reading the store | {n:,} | {d:.2f} s | {n / d:,.0f} |",
        f"| replay --speed max: store -> topic (flushed, end markers) | {n:,} | {r:.2f} s | {n / r:,.0f} |",
        f"| stream: backtest reading the replayed topic | {n:,} | {s:.2f} s | {n / s:,.0f} |",
        f"| stream end to end: replay, then backtest | {n:,} | {r + s:.2f} s | {n / (r + s):,.0f} |",
    ]
    return rows + [
        "",
        f"Best of {rounds}; {days} days of both instruments. Stream backtest / direct: {d / s:.2f}x (goal >= 0.9x); "
        f"replay + stream backtest / direct: {d / (r + s):.2f}x. Same metrics on both paths (asserted). Pacing at 60x "
        f"({paced.records} bars, 1 s apart): largest lag behind schedule {paced.max_lag_s * 1000:.2f} ms.",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
