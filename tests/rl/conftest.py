"""Fixtures of the RL tests: the bundled real S&P 500 daily bars (20 constituents + ^GSPC, 2013-02-08 ..
2018-02-07) in a temporary DuckDB store, and a policy trained on 2013-02-08 .. 2016-12-31 with a tiny number of
timesteps (seed 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from btlab.marketdata.sources.files.folder import bar_files, symbol_of_file
from btlab.marketdata.sources.files.importer import import_bars
from btlab.store.duckdb import DuckDBStore
from rlsetup import GSPC, INDEX, STOCKS, SYMBOLS, TINY, TINY_PPO, TRAIN


@pytest.fixture(scope="session")
def sp_store(tmp_path_factory) -> Path:
    """A DuckDB file holding the 20 bundled constituents and ^GSPC as nyse 1d bars."""
    path = tmp_path_factory.mktemp("rl_sp500") / "sp.duckdb"
    with DuckDBStore(path) as st:
        for f in bar_files([STOCKS]):
            import_bars(f, st, exchange="nyse", symbol=symbol_of_file(f), timeframe="1d")
        import_bars(GSPC, st, exchange="nyse", symbol=INDEX, timeframe="1d")
    return path


@pytest.fixture(scope="session")
def trained(sp_store, tmp_path_factory):
    """``TrainResult`` of a tiny training on the in-sample years (seed 0)."""
    from btlab.rl import train

    out = tmp_path_factory.mktemp("rl_model") / "tilt.zip"
    return train(SYMBOLS, out=out, index=INDEX, start=TRAIN[0], end=TRAIN[1], timesteps=TINY, seed=0,
                 store=str(sp_store), ppo=TINY_PPO)
