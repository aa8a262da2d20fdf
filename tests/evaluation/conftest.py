"""A real parameter search shared by the evaluation tests: sma_cross on the bundled Binance BTC/USDT 1h bars."""

from __future__ import annotations

import pandas as pd
import pytest

import btlab
from btlab.backtest.metrics import daily_returns
from btlab.store.duckdb import DuckDBStore
from realdata import btc_1h

#: the grid searched: 3 fast x 4 slow moving-average lengths (hours) = 12 trials
FAST = (5, 10, 20)
SLOW = (30, 50, 100, 200)
START, END = "2020-01-01", "2021-12-31"


@pytest.fixture(scope="session")
def sma_grid(tmp_path_factory) -> pd.DataFrame:
    """Daily returns (UTC days, btlab's metric convention) of 12 real ``sma_cross`` runs, 2020-01-01 .. 2021-12-31,
    on the bundled BTC/USDT 1h bars, not recorded: shape (731 days, 12 trials), columns ``"fast/slow"``."""
    with DuckDBStore(tmp_path_factory.mktemp("evaluation") / "grid.duckdb") as store:
        store.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        columns = {}
        for fast in FAST:
            for slow in SLOW:
                result = btlab.run_backtest("sma_cross", store=store, start=START, end=END,
                                            params={"fast": fast, "slow": slow}, record=False)
                columns[f"{fast}/{slow}"] = daily_returns(result.equity["value"], result.config.cash)
    return pd.DataFrame(columns)
