"""Run every benchmark and write benchmarks/RESULTS.md (machine and date included). Usage: make bench."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_aggregate  # noqa: E402
import bench_backtest  # noqa: E402
import bench_import  # noqa: E402
import bench_import_memory  # noqa: E402
import bench_ingest  # noqa: E402
import bench_multi  # noqa: E402
import bench_replay  # noqa: E402
import bench_sink  # noqa: E402
import bench_sizing  # noqa: E402
import bench_startup  # noqa: E402
import bench_store  # noqa: E402
import bench_stream  # noqa: E402
import bench_sweep  # noqa: E402
import bench_vector  # noqa: E402
from common import machine  # noqa: E402

import btlab  # noqa: E402
from btlab.backtest.compat import bt  # noqa: E402


#: (key, heading, bench module): the sections of RESULTS.md, in order
SECTIONS = [
    ("backtest", "Backtest throughput (issue 2)", bench_backtest),
    ("import", "Import rate (issue 2)", bench_import),
    ("aggregate", "Tick -> bar aggregation (issue 3)", bench_aggregate),
    ("ingest", "History ingest from the fake exchange (issue 3)", bench_ingest),
    ("stream", "Streams through a Kafka-protocol broker (Tansu, issue 3)", bench_stream),
    ("startup", "Start-up of the btlab command (issue 6)", bench_startup),
    ("import_memory", "Import memory on hostile and big files (issue 7)", bench_import_memory),
    ("store", "The store at the speed of its engines (issue 8)", bench_store),
    ("replay", "Replay through the broker vs the store (issue 10)", bench_replay),
    ("sink", "Sink: topics -> store (issue 10)", bench_sink),
    ("vector", "Vector engine vs the Backtrader engine (issue 11)", bench_vector),
    ("sweep", "Parameter sweep on Dask vs Backtrader's optstrategy (issue 11)", bench_sweep),
    ("sizing", "Paper sizing: 1M combinations x 100k bars (issue 11)", bench_sizing),
    ("multi", "Multi-asset runs: 505 S&P 500 daily feeds (issue 12)", bench_multi),
]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _header() -> list[str]:
    return [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        f"btlab {btlab.__version__}, Backtrader {bt.__version__}. Produced by `make bench` (benchmarks/run.py); "
        "this machine is shared and noisy, so compare the ratios of contenders measured side by side in one run, "
        "not absolute times across runs.",
        "",
    ]


def _replace_sections(text: str, fresh: dict[str, list[str]]) -> str:
    """RESULTS.md ``text`` with the ``## heading`` sections in ``fresh`` replaced (appended when absent)."""
    parts = re.split(r"(?m)^(?=## )", text)
    done = set()
    for i, part in enumerate(parts):
        heading = part.splitlines()[0][3:] if part.startswith("## ") else None
        if heading in fresh:
            parts[i] = "\n".join([f"## {heading}", "", *fresh[heading], "", ""])
            done.add(heading)
    tail = [f"## {h}\n\n" + "\n".join(lines) + "\n\n" for h, lines in fresh.items() if h not in done]
    return "".join(parts).rstrip("\n") + "\n\n" + "".join(tail)


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark and write RESULTS.md, or with ``--only KEY,...`` (``make bench ONLY=replay,sink``) run
    those sections and replace just them in RESULTS.md, each stamped with the machine and date of its run."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--only", default="", help="comma-separated sections: " + ", ".join(k for k, _, _ in SECTIONS))
    only = [k.strip() for k in parser.parse_args(argv).only.split(",") if k.strip()]
    unknown = sorted(set(only) - {k for k, _, _ in SECTIONS})
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}")
    if not only:
        out = _header()
        for _key, heading, bench in SECTIONS:
            out += [f"## {heading}", "", *bench.run(), ""]
        text = "\n".join(out)
    else:
        fresh = {heading: [f"Re-run alone ({machine()}); the other sections are from earlier runs.", "",
                           *bench.run()]
                 for key, heading, bench in SECTIONS if key in only}
        text = _replace_sections(RESULTS.read_text() if RESULTS.exists() else "\n".join(_header()), fresh)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
