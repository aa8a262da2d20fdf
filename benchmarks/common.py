"""Shared helpers for the benchmarks: timing, machine description, data paths."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"


def timeit(func: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    """Run ``func`` ``repeat`` times; return (best seconds, all timings). Best-of-N is least disturbed by noise."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times), times


def machine() -> str:
    """One line naming the CPU, cores, memory, OS, Python and the date (UTC)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def spread(times: list[float]) -> str:
    return f"best {min(times):.3f} s, median {statistics.median(times):.3f} s (n={len(times)})"
