"""Start-up time of the ``btlab`` command (issue 6): wall time of whole processes, against ``python -c pass``.

Each command runs as its own process (as a user starts it), in alternating rounds, on a DuckDB store holding 50
recorded runs; ``python -c pass`` with the same interpreter is measured in the same rounds, so the ratio says what
btlab adds on this machine whatever its load. Goal (issue 6): ``btlab --help`` and ``btlab runs list`` under 0.4 s.
Also shown: which heavy modules ``import btlab.cli.main`` loads (none should be).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HEAVY = ("pandas", "numpy", "backtrader", "plotly", "ccxt", "confluent_kafka", "polars", "pydantic_settings")
GOAL_S = 0.4


def _store_with_runs(path: Path, n: int = 50) -> None:
    from btlab.store import open_store

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with open_store(str(path)) as store:
        for i in range(n):
            ts = start + timedelta(minutes=i)
            store.write_run({
                "ts": ts, "run_id": f"{ts:%Y%m%dT%H%M%S}-{i:08x}", "strategy": "sma_cross",
                "params": {"fast": 10, "slow": 30 + i}, "exchange": "binance", "symbols": "BTC/USDT",
                "timeframe": "1h", "data_from": datetime(2020, 1, 1, tzinfo=timezone.utc),
                "data_to": datetime(2023, 12, 31, 23, tzinfo=timezone.utc), "bars": 35_000, "calendar": "crypto",
                "cash": 10_000.0, "commission": 0.001, "status": "finished", "finished_at": ts + timedelta(seconds=3),
                "heartbeat": ts + timedelta(seconds=3), "total_return": 0.1 * i, "sharpe": 0.5, "max_drawdown": -0.2,
                "n_trades": 100 + i,
                "config": {"cash": 10_000.0, "commission": 0.001, "size_pct": 95.0, "stake": None, "slippage_pct": 0.0,
                           "slippage_fixed": 0.0, "calendar": "crypto"},
            })


def _time(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def heavy_modules_loaded() -> list[str]:
    """Heavy modules present in ``sys.modules`` after ``import btlab.cli.main`` in a fresh interpreter."""
    code = f"import sys, btlab.cli.main; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def run(rounds: int = 9) -> list[str]:
    exe = str(Path(sys.executable).with_name("btlab"))
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs.duckdb"
        _store_with_runs(store)
        env = {**os.environ, "BTLAB_STORE": str(store), "COLUMNS": "120"}
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("python -c 'import btlab'", [sys.executable, "-c", "import btlab"]),
            ("btlab --version", [exe, "--version"]),
            ("btlab --help", [exe, "--help"]),
            ("btlab runs list (50 runs stored)", [exe, "runs", "list"]),
            ("btlab runs list --format json", [exe, "runs", "list", "--format", "json"]),
        ]
        times: dict[str, list[float]] = {name: [] for name, _ in cases}
        for argv in (a for _, a in cases):  # warm the file cache once
            _time(argv, env)
        for _ in range(rounds):
            for name, argv in cases:
                times[name].append(_time(argv, env))
    base = statistics.median(times["python -c pass"])
    lines = ["| process | median | best | median / `python -c pass` | goal |", "|---|---:|---:|---:|---|"]
    for name, _ in cases:
        med = statistics.median(times[name])
        goal = f"< {GOAL_S} s: **{'met' if med < GOAL_S else 'missed'}**" if name in (
            "btlab --help", "btlab runs list (50 runs stored)") else ""
        lines.append(f"| {name} | {med:.3f} s | {min(times[name]):.3f} s | {med / base:.1f}x | {goal} |")
    heavy = heavy_modules_loaded()
    lines += ["", f"Median and best of {rounds} alternating rounds, each a new process (wall time). "
              f"`import btlab.cli.main` loads {', '.join(heavy) if heavy else 'none'} of "
              f"{', '.join(HEAVY)}. Before issue 6 on this machine: `btlab --help` 0.85 s, `import btlab` 2.6–3.7 s."]
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
