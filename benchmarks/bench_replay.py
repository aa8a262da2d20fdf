"""Replay through the broker vs reading the store (issue 10): the same sma_cross backtest on real Binance BTC/USDT
and ETH/USDT 1m klines (data/*_USDT-1m_2025-05-20_*.feather), ``days`` days of both, from a fresh DuckDB store.

Measured side by side in one run, best of ``rounds``:

* direct: ``run_backtest`` reading the store (``record=False``);
* replay: ``replay_bars`` at ``--speed max`` into a topic (store windows -> JSON -> broker, flushed, end markers);
* stream backtest: ``run_backtest(source=KafkaSource(...))`` from that topic (consumer thread, live feeds);
* direct, live mode: the same bars from memory through a feed declared live (Backtrader without preload and
  runonce, bar by bar) -- no broker: Backtrader's own live-mode cost, the ceiling for any live feed;
* pacing: p50/p99/max of ``|actual - scheduled|`` publish time as the replay measures it (``ReplayResult.pacing``),
  at 1x on 25 s of recorded BTC/USDT trades and at 60x on 15 minutes of 1m bars.

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

from btlab.backtest.feed import BarFrameData  # noqa: E402
from btlab.backtest.kafka_feed import KafkaSource  # noqa: E402
from btlab.backtest.runner import run_backtest  # noqa: E402
from btlab.store.duckdb import DuckDBStore  # noqa: E402
from btlab.stream import StreamConfig  # noqa: E402
from btlab.stream.replay import replay_bars, replay_ticks  # noqa: E402

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


class _LiveBarFrame(BarFrameData):
    """The direct path's in-memory feed, declared live: Backtrader then runs as it does for the Kafka feed (no
    preload, no runonce, bar by bar through ``_load``), with no broker, thread or decoding -- the floor of any
    live feed, i.e. Backtrader's own live-mode cost."""

    def islive(self) -> bool:
        return True


class _LiveFromStore:
    """A ``run_backtest(source=...)`` serving the stored bars through :class:`_LiveBarFrame` feeds."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def feeds(self, exchange, symbols, timeframe, start=None, end=None):
        return [_LiveBarFrame(bars=self.store.read_bars(exchange=exchange, symbol=s, timeframe=timeframe, start=start,
                                                        end=end), bars_timeframe=str(timeframe), name=s)
                for s in symbols]

    def close(self) -> None:
        pass


def _tick_store(store: DuckDBStore) -> None:
    """The recorded Binance BTC/USDT trades (tests/realdata.py) as ticks in ``store``."""
    from realdata import recorded_trades

    rec = recorded_trades()
    store.upsert("ticks", pd.DataFrame({"ts": rec["ts"], "exchange": "binance", "symbol": "BTC/USDT",
                                        "trade_id": rec["id"].astype(str), "price": rec["price"],
                                        "amount": rec["amount"], "side": None}))


def run(days: int = 14, rounds: int = 3) -> list[str]:
    end = (START + pd.Timedelta(days=days - 1)).strftime("%Y-%m-%d")
    args = dict(symbols=list(SYMBOLS), exchange="binance", timeframe="1m", start=START.strftime("%Y-%m-%d"), end=end,
                params={"fast": 10, "slow": 30}, record=False)
    t_direct, t_live, t_replay, t_stream = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, _store(Path(tmp) / "bench.duckdb", days) as store, \
            kafka_broker() as broker:
        for _ in range(rounds):
            t0 = time.perf_counter()
            direct = run_backtest("sma_cross", store=store, **args)
            t_direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            live = run_backtest("sma_cross", store=store, source=_LiveFromStore(store), **args)
            t_live.append(time.perf_counter() - t0)
            assert live.summary.as_dict() == direct.summary.as_dict()
            config = StreamConfig(broker.bootstrap, prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=6)
            t0 = time.perf_counter()
            replay = replay_bars(store, "binance", SYMBOLS, "1m", args["start"], end, config=config)
            t_replay.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            streamed = run_backtest("sma_cross", store=store, source=KafkaSource(replay.topic, config=config), **args)
            t_stream.append(time.perf_counter() - t0)
            assert streamed.summary.as_dict() == direct.summary.as_dict()
        # pacing, as the replay itself measures it (|actual - scheduled| per record on its monotonic clock)
        config = StreamConfig(broker.bootstrap, prefix=f"pace{uuid.uuid4().hex[:8]}", partitions=6)
        bars60 = replay_bars(store, "binance", ["BTC/USDT"], "1m", "2025-06-01T00:00", "2025-06-01T00:15",
                             config=config, speed=60)
        _tick_store(store)
        ticks1 = replay_ticks(store, "binance", ["BTC/USDT"], "2024-08-09T00:00:00", "2024-08-09T00:00:25",
                              config=config, speed=1)
    n = sum(len(b) for b in direct.bars_by_symbol.values())
    d, lv, r, s = min(t_direct), min(t_live), min(t_replay), min(t_stream)
    rows = [
        "| path (sma_cross, real BTC/USDT + ETH/USDT 1m, Tansu on this machine) | bars | best time | bars/s |",
        "|---|---:|---:|---:|",
        f"| direct: backtest reading the store (preload, runonce) | {n:,} | {d:.2f} s | {n / d:,.0f} |",
        f"| direct, live mode: the same bars from memory through a live feed (no preload/runonce; no broker) "
        f"| {n:,} | {lv:.2f} s | {n / lv:,.0f} |",
        f"| replay --speed max: store -> topic (flushed, end markers) | {n:,} | {r:.2f} s | {n / r:,.0f} |",
        f"| stream: backtest reading the replayed topic | {n:,} | {s:.2f} s | {n / s:,.0f} |",
        f"| stream end to end: replay, then backtest | {n:,} | {r + s:.2f} s | {n / (r + s):,.0f} |",
        "",
        "| pacing (as measured by the replay: abs(actual - scheduled) publish time) | records | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, res in (("1x, recorded BTC/USDT trades, 25 s of trade time", ticks1),
                       ("60x, BTC/USDT 1m bars, 15 min of bars (1 s apart)", bars60)):
        p = res.pacing
        rows.append(f"| {label} | {p.records:,} | {p.p50_s * 1000:.3f} ms | {p.p99_s * 1000:.3f} ms "
                    f"| {p.max_s * 1000:.3f} ms |")
    return rows + [
        "",
        f"Best of {rounds}; {days} days of both instruments. Stream backtest / direct: {d / s:.2f}x (goal >= 0.9x); "
        f"replay + stream backtest / direct: {d / (r + s):.2f}x. Backtrader's live mode alone (same bars from memory, "
        f"no broker) / direct: {d / lv:.2f}x -- the ceiling of any live feed; stream / live mode: {lv / s:.2f}x is "
        f"what the broker path itself costs. Same metrics on every path (asserted). Pacing goal: p99 < 5 ms.",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
