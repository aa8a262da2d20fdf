"""The ``orb`` kernel of the vector engine reproduces the Backtrader engine exactly: same trades (times, prices,
sizes, pnl, commission), same value and cash after every bar, same Margin count, same metrics.

Real data: SPY 1-minute bars of the regular New York session (data/SPY_1min_*.csv.gz; 2024-03-01 .. 2024-03-22
holds the 2024-03-10 daylight-saving change) over a 54-combination grid drawn from range 5..60 x stop 0.05..1.0 x
take-profit 0/0.5/1.0 x max_stops 1..3 x cool-off 0/30 (some held across sessions, some at size_pct 100 so that
entries are refused for cash), the whole 63 sessions for two combinations, the extended-hours bars, and BTC/USDT
1-minute bars (a 24/7 venue, sessions from ``session_start``). The grid is checked to have exercised what it should:
long and short trades, stop and take-profit exits, fills at the open when a bar gaps through the stop or limit,
Margin refusals.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from realdata import BTC_1M, DATA

import btlab
from btlab.backtest.vector import run_vector, simulate, supports
from btlab.errors import InvalidArgumentError, StrategyParameterError
from btlab.marketdata.sources.files.importer import import_bars
from btlab.store.duckdb import DuckDBStore

SPY_1M = DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz"
GRID = list(itertools.product([5, 10, 15, 30, 45, 60], [0.05, 0.1, 0.2, 0.5, 1.0], [0, 0.5, 1.0], [1, 2, 3],
                              [0, 30]))


def _combos(n: int, seed: int) -> list[tuple[dict, float]]:
    rng = random.Random(seed)
    out = []
    for rm, stop, tp, ms, cool in rng.sample(GRID, n):
        params = {"range_minutes": rm, "stop_pct": stop, "take_profit_pct": tp, "max_stops": ms,
                  "cooloff_minutes": cool, "flat_at_end": rng.random() > 0.2}
        out.append((params, 100.0 if rng.random() < 0.15 else 95.0))
    return out


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vector_orb") / "orb.duckdb"
    with DuckDBStore(path) as st:
        import_bars(SPY_1M, st, exchange="nyse", symbol="SPY", timeframe="1m")
        import_bars(BTC_1M, st, exchange="binance", symbol="BTC/USDT", timeframe="1m")
    return path


def _check_parity(store_path: Path, params: dict, *, exchange: str = "nyse", symbol: str = "SPY",
                  start: str | None = None, end: str | None = None, size_pct: float = 95.0,
                  session: str | None = None, cash: float = 10_000.0,
                  commission: float = 0.001) -> btlab.BacktestResult:
    """Run both engines; assert the same trades, values, cash, Margin count and metrics; return Backtrader's run."""
    bt_run = btlab.run_backtest("orb", exchange=exchange, symbol=symbol, timeframe="1m", start=start, end=end,
                                params=params, size_pct=size_pct, store=str(store_path), record=False,
                                allow_gaps=True, cash=cash, commission=commission,
                                **({"session": session} if session else {}))
    cal = bt_run.config.venue_calendar
    metrics, trades = run_vector("orb", bt_run.bars, params, cash=cash, commission=commission, size_pct=size_pct,
                                 calendar=cal, symbol=symbol, timeframe="1m")
    ours, theirs = trades.drop(columns="trade_ref"), bt_run.trades.drop(columns="trade_ref").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True, check_dtype=False, obj=str(params))
    bars = bt_run.bars
    value, cash_arr, _, margin = simulate("orb", bars["open"].to_numpy(), bars["close"].to_numpy(), params, cash,
                                          commission, size_pct, high=bars["high"].to_numpy(),
                                          low=bars["low"].to_numpy(), ts=bars["ts"], timeframe="1m", calendar=cal)
    assert (value == bt_run.equity["value"].to_numpy()).all(), params  # every bar, bit for bit
    assert (cash_arr == bt_run.equity["cash"].to_numpy()).all(), params
    assert margin == bt_run.order_counts["orders_margin"], params
    assert metrics.end_value == bt_run.summary.end_value
    assert abs(metrics.end_value / bt_run.summary.end_value - 1) < 1e-9
    a, b = metrics.as_dict(), bt_run.summary.as_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key] or (isinstance(a[key], float) and math.isnan(a[key]) and math.isnan(b[key])), key
    return bt_run


def _exits(run: btlab.BacktestResult) -> pd.DataFrame:
    """The completed stop and take-profit orders, with ``gap``: filled at the bar's open, beyond their price."""
    orders = run.orders
    done = orders[orders["type"].isin(["Stop", "Limit"]) & (orders["status"] == "Completed")]
    opens = run.bars.set_index("ts")["open"]
    bar_open = opens.loc[done["ts"]].to_numpy()
    return done.assign(gap=(done["executed_price"].to_numpy() == bar_open) & (done["executed_price"] != done["price"]))


def test_parity_over_a_grid_spy(store_path: Path) -> None:
    seen = dict.fromkeys(["trades", "long", "short", "Stop", "Limit", "gap Stop", "gap Limit", "margin", "held"], 0)
    for params, size_pct in _combos(54, seed=11):
        run = _check_parity(store_path, params, start="2024-03-04", end="2024-03-15", size_pct=size_pct)
        assert run.config.venue_calendar == "XNYS" and len(run.bars) == 3_900
        seen["trades"] += len(run.trades)
        directions = run.trades["direction"].value_counts()
        seen["long"] += int(directions.get("long", 0))
        seen["short"] += int(directions.get("short", 0))
        exits = _exits(run)
        for kind in ("Stop", "Limit"):
            seen[kind] += int((exits["type"] == kind).sum())
            seen[f"gap {kind}"] += int(((exits["type"] == kind) & exits["gap"]).sum())
        seen["margin"] += int(run.order_counts["orders_margin"])
        seen["held"] += int((run.trades["ts"].dt.date != run.trades["entry_ts"].dt.date).sum())
    assert min(seen.values()) > 0, seen  # the grid exercised every rule
    assert seen["Stop"] > 500 and seen["Limit"] > 20, seen


def test_parity_on_all_spy_sessions(store_path: Path) -> None:
    for params in ({"range_minutes": 15, "stop_pct": 0.15, "take_profit_pct": 0.6, "max_stops": 2,
                    "cooloff_minutes": 20},
                   {"range_minutes": 30, "stop_pct": 0.1, "take_profit_pct": 0.0, "max_stops": 3,
                    "cooloff_minutes": 5, "flat_at_end": False}):
        run = _check_parity(store_path, params)
        assert len(run.bars) == 24_570 and len(run.trades) > 40


def test_parity_without_stop_or_take_profit_and_other_costs(store_path: Path) -> None:
    """No stop and no take-profit (a bare market entry, flat at the session end), a take-profit alone, a stop
    alone; other cash, commission and sizing than the defaults."""
    for params, cash, commission, size_pct in [
        ({"stop_pct": 0.0, "take_profit_pct": 0.0}, 10_000.0, 0.001, 95.0),
        ({"stop_pct": 0.0, "take_profit_pct": 0.3, "range_minutes": 20}, 250_000.0, 0.0, 50.0),
        ({"stop_pct": 0.07, "take_profit_pct": 0.0, "max_stops": 3, "cooloff_minutes": 0}, 1_000.0, 0.0025, 99.0),
    ]:
        run = _check_parity(store_path, params, start="2024-04-01", end="2024-04-12", cash=cash,
                            commission=commission, size_pct=size_pct)
        assert len(run.trades) >= 5, params


def test_parity_with_extended_hours_bars(store_path: Path) -> None:
    """Bars outside the regular session (``session=extended``) belong to no session: they never trade, but the
    broker still fills stops and take-profits on them for positions held overnight."""
    params = {"range_minutes": 10, "stop_pct": 0.1, "take_profit_pct": 0.5, "max_stops": 2, "cooloff_minutes": 0,
              "flat_at_end": False}
    run = _check_parity(store_path, params, start="2024-03-01", end="2024-03-22", session="extended")
    assert len(run.bars) > 6_240
    local = run.trades["ts"].dt.tz_convert("America/New_York").dt.strftime("%H:%M")
    assert ((local < "09:30") | (local >= "16:00")).any()  # some exits happened in the extended hours


def test_parity_on_crypto_sessions(store_path: Path) -> None:
    for params, size_pct in [({"range_minutes": 30, "stop_pct": 0.2, "take_profit_pct": 0.5, "session_start": "13:30",
                               "cooloff_minutes": 30}, 95.0),
                              ({"range_minutes": 60, "stop_pct": 0.5, "take_profit_pct": 1.0, "max_stops": 3,
                                "cooloff_minutes": 0, "flat_at_end": False}, 95.0),
                              ({"range_minutes": 15, "stop_pct": 0.1, "take_profit_pct": 0.0, "max_stops": 1,
                                "session_start": "22:45"}, 100.0)]:
        run = _check_parity(store_path, params, exchange="binance", symbol="BTC/USDT", start="2025-06-02",
                            end="2025-06-12", size_pct=size_pct)
        assert run.config.venue_calendar == "24/7" and len(run.trades) >= 3


def test_supports_and_refusals() -> None:
    from btlab.strategies.orb import OpeningRangeBreakout

    assert supports("orb") and supports(OpeningRangeBreakout)
    bars = pd.DataFrame({"ts": pd.date_range("2025-01-01", periods=5, freq="min", tz="UTC"), "open": 1.0,
                         "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    with pytest.raises(InvalidArgumentError, match=r"needs high, low, ts, timeframe"):
        simulate("orb", np.ones(5), np.ones(5), {}, 10_000.0, 0.001, 95.0)
    with pytest.raises(StrategyParameterError, match="max_stops must be >= 1"):
        run_vector("orb", bars, {"max_stops": 0})
    with pytest.raises(StrategyParameterError, match="unknown parameter"):
        run_vector("orb", bars, {"fast": 3})
    metrics, trades = run_vector("orb", bars, {"range_minutes": 2})
    assert trades.empty and metrics.end_value == 10_000.0
