"""vectorbt's side of bench_vector.py, run in its own interpreter (benchmarks/.venv-vbt, see bench_vector.vbt_python).

Not imported by btlab or by the other benchmarks: vectorbt is installed in that separate venv only. Reads the bars'
open and close prices from an ``.npz`` file, runs sma_cross the vectorbt way (``vbt.MA.run``, ``ma_crossed_above``/
``ma_crossed_below``, ``Portfolio.from_signals``) with Backtrader's order timing (the signal of bar i fills at the
open of bar i+1: signals shifted one bar, ``price=open``), 95 % of the cash per entry (``size_type="percent"``: sized
on the fill price, where Backtrader's PercentSizer sizes on the signal bar's close), commission 0.1 % per fill, and
prints one JSON object of timings (seconds) and final values.

Usage: python vbt_side.py BARS.npz GRID_JSON   (GRID_JSON: ``[[fast, slow], ...]``)
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import vectorbt as vbt  # noqa: E402

IMPORT_S = time.perf_counter() - T0
CASH, FEES, SIZE = 10_000.0, 0.001, 0.95


def signals(close: pd.Series, fast: list[int], slow: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Entries and exits (one column per (fast, slow) pair), shifted one bar: they fill at the next bar's open."""
    f = vbt.MA.run(close, window=fast, short_name="fast")
    s = vbt.MA.run(close, window=slow, short_name="slow")
    entries = f.ma_crossed_above(s).shift(1, fill_value=False)
    exits = f.ma_crossed_below(s).shift(1, fill_value=False)
    return entries, exits


def portfolio(close: pd.Series, open_: pd.Series, entries: pd.DataFrame, exits: pd.DataFrame) -> vbt.Portfolio:
    return vbt.Portfolio.from_signals(close, entries, exits, price=open_, size=SIZE, size_type="percent",
                                      fees=FEES, init_cash=CASH, freq="1h")


def metrics(pf: vbt.Portfolio) -> np.ndarray:
    """The final value (and, as the btlab runs do, total return, max drawdown and Sharpe ratio) per column."""
    pf.total_return()
    pf.max_drawdown()
    pf.sharpe_ratio()
    return np.atleast_1d(np.asarray(pf.final_value(), dtype=float))


def main() -> None:
    data = np.load(sys.argv[1])
    grid = [tuple(map(int, g)) for g in json.loads(sys.argv[2])]
    index = pd.DatetimeIndex(data["ts"])  # UTC, tz-naive: a tz-aware index costs vectorbt seconds a call
    close, open_ = pd.Series(data["close"], index=index), pd.Series(data["open"], index=index)
    out: dict[str, object] = {"import_s": IMPORT_S, "vectorbt": vbt.__version__, "bars": len(close)}

    # one combination (10/30): the first call (numba compiles, or loads its cache) then warm calls
    t0 = time.perf_counter()
    entries, exits = signals(close, [10], [30])
    t1 = time.perf_counter()
    pf = portfolio(close, open_, entries, exits)
    t2 = time.perf_counter()
    out["first_signals_s"], out["first_from_signals_s"] = t1 - t0, t2 - t1
    out["first_metrics_s"] = _timed(lambda: metrics(pf))
    out["final_10_30"] = float(metrics(pf)[0])
    out["warm_from_signals_s"] = min(_timed(lambda: portfolio(close, open_, entries, exits)) for _ in range(7))
    out["warm_run_s"] = min(_timed(lambda: metrics(portfolio(close, open_, *signals(close, [10], [30]))))
                            for _ in range(7))

    # the grid, one from_signals call per combination (as one would loop over a grid)
    t0 = time.perf_counter()
    finals = [float(metrics(portfolio(close, open_, *signals(close, [f], [s])))[0]) for f, s in grid]
    out["grid_loop_s"] = time.perf_counter() - t0
    # the grid as columns of ONE from_signals call (vectorbt's own way)
    fast, slow = [g[0] for g in grid], [g[1] for g in grid]
    columns = []
    for _ in range(3):  # the first call compiles numba's 2-D specializations; then warm
        t0 = time.perf_counter()
        finals_cols = metrics(portfolio(close, open_, *signals(close, fast, slow)))
        columns.append(time.perf_counter() - t0)
    out["grid_columns_first_s"], out["grid_columns_s"] = columns[0], min(columns[1:])
    entries, exits = signals(close, fast, slow)  # the simulation alone, signals made beforehand
    out["grid_columns_sim_s"] = min(_timed(lambda: portfolio(close, open_, entries, exits)) for _ in range(3))
    out["grid_finals"] = finals
    out["grid_columns_agree"] = bool(np.allclose(finals_cols, finals, rtol=1e-12, atol=0.0))
    print(json.dumps(out))


def _timed(func: object) -> float:
    t0 = time.perf_counter()
    func()  # type: ignore[operator]
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
