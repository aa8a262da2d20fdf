"""Run every benchmark and write benchmarks/RESULTS.md (machine and date included). Usage: make bench."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_aggregate  # noqa: E402
import bench_backtest  # noqa: E402
import bench_import  # noqa: E402
import bench_import_memory  # noqa: E402
import bench_ingest  # noqa: E402
import bench_replay  # noqa: E402
import bench_sink  # noqa: E402
import bench_startup  # noqa: E402
import bench_store  # noqa: E402
import bench_stream  # noqa: E402
import bench_vector  # noqa: E402
from common import machine  # noqa: E402

import btlab  # noqa: E402
from btlab.backtest.compat import bt  # noqa: E402


def main() -> None:
    out = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        f"btlab {btlab.__version__}, Backtrader {bt.__version__}. Produced by `make bench` (benchmarks/run.py); "
        "this machine is shared and noisy, so compare the ratios of contenders measured side by side in one run, "
        "not absolute times across runs.",
        "",
        "## Backtest throughput (issue 2)",
        "",
        *bench_backtest.run(),
        "",
        "## Import rate (issue 2)",
        "",
        *bench_import.run(),
        "",
        "## Tick -> bar aggregation (issue 3)",
        "",
        *bench_aggregate.run(),
        "",
        "## History ingest from the fake exchange (issue 3)",
        "",
        *bench_ingest.run(),
        "",
        "## Streams through a Kafka-protocol broker (Tansu, issue 3)",
        "",
        *bench_stream.run(),
        "",
        "## Start-up of the btlab command (issue 6)",
        "",
        *bench_startup.run(),
        "",
        "## Import memory on hostile and big files (issue 7)",
        "",
        *bench_import_memory.run(),
        "",
        "## The store at the speed of its engines (issue 8)",
        "",
        *bench_store.run(),
        "",
        "## Replay through the broker vs the store (issue 10)",
        "",
        *bench_replay.run(),
        "",
        "## Sink: topics -> store (issue 10)",
        "",
        *bench_sink.run(),
        "",
        "## Vector engine vs the Backtrader engine (issue 11)",
        "",
        *bench_vector.run(),
        "",
    ]
    text = "\n".join(out)
    (Path(__file__).resolve().parent / "RESULTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
