"""Stream throughput: real Binance BTC/USDT trades through a real Kafka-protocol broker (Tansu, memory storage).

Ticks: the recorded ``btcusdt@trade`` messages of 2024-08-08 and 2024-08-09 (data/ if bundled, else
../shared/data/binance/ws_spot/), repeated to ``N`` records. Measured, best of ``rounds``:

* encode only (frame -> JSON values, no broker);
* produce: encode + hand to librdkafka + ``flush`` until the broker acknowledged all (idempotent, acks=all,
  lz4, linger 20 ms) -- btlab's default producer settings;
* consume: ``read_until_end`` from the first fetch to the end markers, decode + validate every value;
* decode only (JSON values -> validated messages, no broker).

Broker and client share the machine's cores, so the numbers are a floor for a separate Redpanda host.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from common import DATA, ROOT, SHARED

sys.path.insert(0, str(ROOT / "tests"))

from broker import kafka_broker  # noqa: E402

from btlab.stream import StreamConfig, StreamProducer, decode, read_until_end, ticks_topic  # noqa: E402
from btlab.stream.codec import iter_tick_records  # noqa: E402

FILES = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")


def _find(name: str) -> Path | None:
    bundled = sorted(DATA.rglob(name))
    if bundled:
        return bundled[0]
    shared = SHARED / "binance" / "ws_spot" / name
    return shared if shared.is_file() else None


def real_ticks() -> pd.DataFrame:
    """The recorded BTC/USDT trades of both days, in the tick layout."""
    rows = []
    for name in FILES:
        path = _find(name)
        if path is None:
            continue
        with gzip.open(path, "rt") as fh:
            for line in fh:
                payload = line.partition(" ")[2]
                if '"stream":"btcusdt@trade"' in payload:
                    d = json.loads(payload)["data"]
                    rows.append((d["T"], str(d["t"]), float(d["p"]), float(d["q"]), "sell" if d["m"] else "buy"))
    if not rows:
        raise FileNotFoundError(f"none of {FILES} under {DATA} or {SHARED / 'binance' / 'ws_spot'}")
    ts, tid, price, amount, side = zip(*rows)
    return pd.DataFrame({
        "ts": pd.to_datetime(np.array(ts, dtype="int64"), unit="ms", utc=True).astype("datetime64[ns, UTC]"),
        "exchange": "binance", "symbol": "BTC/USDT", "trade_id": list(tid), "price": np.array(price),
        "amount": np.array(amount), "side": pd.Series(side, dtype="str"),
    })


def run(n: int = 200_000, rounds: int = 3) -> list[str]:
    base = real_ticks()
    ticks = pd.concat([base] * (n // len(base) + 1), ignore_index=True).iloc[:n]
    values = [v for _, v, _ in iter_tick_records(ticks)]
    t_enc, t_dec, t_prod, t_cons = [], [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in iter_tick_records(ticks):
            pass
        t_enc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for v in values:
            decode(v)
        t_dec.append(time.perf_counter() - t0)
    with kafka_broker() as broker:
        for _ in range(rounds):
            config = StreamConfig(broker.bootstrap, prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=6)
            producer = StreamProducer(config)
            producer.ensure_topic(ticks_topic(config.prefix))
            replay_id = producer.begin_replay()
            t0 = time.perf_counter()
            producer.send_ticks(ticks)
            producer.flush()
            t_prod.append(time.perf_counter() - t0)
            producer.end_replay()
            t0 = time.perf_counter()
            records, stats = read_until_end([ticks_topic(config.prefix)], replay_id, config=config)
            t_cons.append(time.perf_counter() - t0)
            assert stats.records == len(ticks) and stats.dead_lettered == 0
    size = sum(map(len, values)) / len(values)
    lines = [
        "| stage (real BTC/USDT trades, Tansu on this machine) | records | best time | records/s |",
        "|---|---:|---:|---:|",
    ]
    for label, times in (
        ("encode only (frame -> JSON values)", t_enc),
        ("produce: encode + send + flush (idempotent, acks=all, lz4)", t_prod),
        ("consume: fetch + decode + validate until end markers", t_cons),
        ("decode only (JSON -> validated messages)", t_dec),
    ):
        best = min(times)
        lines.append(f"| {label} | {len(ticks):,} | {best:.2f} s | {len(ticks) / best:,.0f} |")
    return lines + [
        "",
        f"Best of {rounds}; {len(base):,} recorded trades repeated to {len(ticks):,}; mean value {size:.0f} bytes of "
        "JSON. The broker runs on the same cores as the client; the consumer is assigned all partitions directly "
        "(no group join), its time includes creating it.",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
