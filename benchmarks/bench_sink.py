"""Sink throughput (issue 10): topic -> store rows/s, beside the store's own write of the same rows in the same run.

Workloads (real data, published to Tansu with btlab's producer before timing):

* ticks: the 19,904 Binance BTC/USDT trades recorded on 2024-08-08/09 (``data/btcusdt_2024080*.gz``);
* bars: 30 days of Binance BTC/USDT and ETH/USDT 1m klines (``data/*_USDT-1m_2025-05-20_*.feather``, 86,400 bars).

Contenders, each into a fresh store, best of ``rounds``:

* sink: :func:`btlab.stream.sink.run_sink` from a fresh consumer group (decode, write, commit per batch of 5,000),
  timed from the first batch handed over to the last commit (the ~3 s consumer-group join is reported apart);
* direct: the same rows written with the store's API in batches of 5,000 (``upsert("ticks")`` / ``write_bars``),
  i.e. what the sink adds on top of the store is the broker, the JSON decode and the commits.

DuckDB (a file) always; QuestDB when ``BTLAB_TEST_QUESTDB`` is set (each round then writes the same keys again:
dedup makes that an upsert, as in production).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

from common import DATA, ROOT

sys.path.insert(0, str(ROOT / "tests"))

from broker import kafka_broker  # noqa: E402
from realdata import recorded_trades  # noqa: E402

from btlab.store import open_store  # noqa: E402
from btlab.stream import StreamConfig, StreamProducer, bars_topic, ticks_topic  # noqa: E402
from btlab.stream.sink import run_sink  # noqa: E402

BATCH = 5000
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _ticks() -> pd.DataFrame:
    t = recorded_trades().rename(columns={"id": "trade_id"})
    t["trade_id"] = t["trade_id"].astype(str)
    return t.assign(exchange="binance", symbol="BTC/USDT")[["ts", "exchange", "symbol", "trade_id", "price", "amount"]]


def _bars(days: int) -> dict[str, pd.DataFrame]:
    out = {}
    for symbol in SYMBOLS:
        bars = pd.read_feather(DATA / f"{symbol.replace('/', '_')}-1m_2025-05-20_2025-08-18.feather")
        bars = bars.rename(columns={"date": "ts"})
        out[symbol] = bars[(bars["ts"] >= "2025-06-01") & (bars["ts"] < pd.Timestamp("2025-06-01", tz="UTC")
                                                            + pd.Timedelta(days=days))].reset_index(drop=True)
    return out


def _direct(address: str, ticks: pd.DataFrame | None, bars: dict[str, pd.DataFrame] | None) -> float:
    with open_store(address) as store:
        t0 = time.perf_counter()
        with store.session():
            if ticks is not None:
                for i in range(0, len(ticks), BATCH):
                    store.upsert("ticks", ticks.iloc[i:i + BATCH])
            for symbol, frame in (bars or {}).items():
                for i in range(0, len(frame), BATCH):
                    store.write_bars(frame.iloc[i:i + BATCH], exchange="binance", symbol=symbol, timeframe="1m",
                                     source="bench")
        return time.perf_counter() - t0


def _sink(address: str, config: StreamConfig, topics: list[str], rows: int) -> tuple[float, float]:
    with open_store(address) as store:
        report = run_sink(store, topics, f"bench-{uuid.uuid4().hex[:8]}", config, batch_size=BATCH,
                          max_records=rows, handle_signals=False)
    assert report.rows == rows, (report.rows, rows)
    return report.seconds - (report.first_batch_s or 0.0), report.joined_s or 0.0


def run(rounds: int = 3, days: int = 30) -> list[str]:
    ticks, bars = _ticks(), _bars(days)
    n_bars = sum(len(b) for b in bars.values())
    lines = [
        "| store | workload (real data) | rows | direct write (store API) | sink (topic -> store) | sink / direct "
        "| group join |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    with kafka_broker() as broker, tempfile.TemporaryDirectory() as tmp:
        config = StreamConfig(broker.bootstrap, prefix=f"bsink{uuid.uuid4().hex[:6]}", partitions=6)
        with StreamProducer(config) as producer:
            producer.send_ticks(ticks, topic=ticks_topic(config.prefix))
            for symbol, frame in bars.items():
                producer.send_bars(frame, exchange="binance", symbol=symbol, timeframe="1m",
                                   topic=bars_topic("1m", config.prefix))
            producer.flush()
        stores = [("DuckDB (file)", None), ("QuestDB", os.environ.get("BTLAB_TEST_QUESTDB"))]
        workloads = [("BTC/USDT trades", [ticks_topic(config.prefix)], len(ticks), ticks, None),
                     (f"BTC+ETH 1m bars, {days} days", [bars_topic("1m", config.prefix)], n_bars, None, bars)]
        for name, address in stores:
            if name == "QuestDB" and not address:
                lines.append("| QuestDB | — | — | — | — | — | not measured: no QuestDB on this machine "
                             "(set BTLAB_TEST_QUESTDB) |")
                continue
            for label, topics, rows, tk, br in workloads:
                direct, sink, join = [], [], []
                for r in range(rounds):
                    target = address or str(Path(tmp) / f"{label[:3]}-{r}-d.duckdb")
                    direct.append(_direct(target, tk, br))
                    target = address or str(Path(tmp) / f"{label[:3]}-{r}-s.duckdb")
                    s, j = _sink(target, config, topics, rows)
                    sink.append(s)
                    join.append(j)
                d, s = min(direct), min(sink)
                lines.append(f"| {name} | {label} | {rows:,} | {rows / d:,.0f} rows/s | {rows / s:,.0f} rows/s "
                             f"| {d / s:.2f}x | {min(join):.1f} s |")
    return lines + [
        "",
        f"Best of {rounds}; batches of {BATCH:,} on both paths; Tansu (memory storage) shares the cores. Sink time "
        "from the first batch handed over to the last commit (decode + write + synchronous commit per batch); the "
        "group join before it is shown apart.",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
