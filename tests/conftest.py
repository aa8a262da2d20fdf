"""Shared test fixtures.

Stores: the ``store`` fixture runs a test once per backend -- DuckDB always (a fresh file under ``tmp_path``),
QuestDB only when ``BTLAB_TEST_QUESTDB`` holds its address (e.g. ``http::addr=127.0.0.1:9000;``, PG wire on
8812), otherwise that case is skipped with :data:`QUESTDB_SKIP_REASON`. A QuestDB server keeps data between
runs, so tests that use ``store`` name their series and runs with the ``uid`` fixture.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from btlab.store.base import Store

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
BTC_1H_FEATHER = DATA_DIR / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"

QUESTDB_ENV = "BTLAB_TEST_QUESTDB"
QUESTDB_SKIP_REASON = "QuestDB not available: set BTLAB_TEST_QUESTDB=http::addr=HOST:9000; (PG wire on 8812)"


def questdb_address() -> str | None:
    """The QuestDB address tests may use (``BTLAB_TEST_QUESTDB``), or ``None`` when no server is available."""
    value = os.environ.get(QUESTDB_ENV, "").strip()
    return value or None


#: Marks a test that needs a QuestDB server: skipped with :data:`QUESTDB_SKIP_REASON` when there is none.
requires_questdb = pytest.mark.skipif(questdb_address() is None, reason=QUESTDB_SKIP_REASON)

STORE_BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("questdb", id="questdb", marks=[pytest.mark.questdb, requires_questdb]),
]


def open_backend(backend: str, tmp_path: Path) -> Store:
    """Open a fresh store of ``backend`` (``"duckdb"``: a new file in ``tmp_path``; ``"questdb"``: the test server)."""
    if backend == "duckdb":
        from btlab.store.duckdb import DuckDBStore

        return DuckDBStore(tmp_path / "store.duckdb")
    if backend == "questdb":
        from btlab.store.questdb import QuestDBStore

        address = questdb_address()
        if address is None:
            pytest.skip(QUESTDB_SKIP_REASON)
        return QuestDBStore.from_address(address)
    raise ValueError(f"unknown backend {backend!r}")


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An open store of each backend (closed after the test)."""
    opened = open_backend(request.param, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def uid() -> str:
    """A short unique token for names (exchange, symbol, run_id, strategy) that must not collide across runs."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """Real BTC/USDT 1h bars (Binance, 2017-08-17 .. 2024-04-21): ``ts`` (UTC open time), OHLCV. Read-only copy."""
    frame = pd.read_feather(BTC_1H_FEATHER).rename(columns={"date": "ts"})
    return frame


@pytest.fixture(scope="session")
def h1() -> pd.DataFrame:
    """The bundled 1h BTC/USDT feather as freqtrade stores it: date (UTC bar open), open, high, low, close, volume."""
    return pd.read_feather(BTC_1H_FEATHER)


@pytest.fixture(scope="session")
def expected_h1(h1: pd.DataFrame) -> pd.DataFrame:
    """The canonical bar frame every lossless conversion of the 1h file must read back to, bit for bit."""
    from realdata import as_stored_bars

    return as_stored_bars(h1)


# ---- every Store SQL statement of the session is parsed by QuestDB's parser (tests/store/test_questdb_sql.py) ---------
def pytest_configure(config: pytest.Config) -> None:
    import sqlrecord

    sqlrecord.install()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the QuestDB SQL check last, when the rest of the session has exercised the store."""
    last = [i for i in items if i.nodeid.startswith("tests/store/test_questdb_sql.py")]
    items[:] = [i for i in items if i not in last] + last


#: the evaluation tests' real parameter search (fixture sma_grid): sma_cross on the bundled BTC/USDT 1h bars
#: the grid searched: 3 fast x 4 slow moving-average lengths (hours) = 12 trials
FAST = (5, 10, 20)
SLOW = (30, 50, 100, 200)
START, END = "2020-01-01", "2021-12-31"


@pytest.fixture(scope="session")
def sma_grid(tmp_path_factory) -> pd.DataFrame:
    """Daily returns (UTC days, btlab's metric convention) of 12 real ``sma_cross`` runs, 2020-01-01 .. 2021-12-31,
    on the bundled BTC/USDT 1h bars, not recorded: shape (731 days, 12 trials), columns ``"fast/slow"``."""
    import btlab
    from btlab.backtest.metrics import daily_returns
    from btlab.store.duckdb import DuckDBStore
    from realdata import btc_1h

    with DuckDBStore(tmp_path_factory.mktemp("evaluation") / "grid.duckdb") as store:
        store.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        columns = {}
        for fast in FAST:
            for slow in SLOW:
                result = btlab.run_backtest("sma_cross", store=store, start=START, end=END,
                                            params={"fast": fast, "slow": slow}, record=False)
                columns[f"{fast}/{slow}"] = daily_returns(result.equity["value"], result.config.cash)
    return pd.DataFrame(columns)


# ---- RL tests (tests/rl): here, not in a tests/rl/conftest.py, whose module name "conftest" would shadow this
# file's for the `from conftest import ...` of other test modules ------------------------------------------------


@pytest.fixture(scope="session")
def sp_store(tmp_path_factory) -> Path:
    """(RL tests) A DuckDB file holding the 20 bundled constituents and ^GSPC as nyse 1d bars."""
    from btlab.marketdata.sources.files.folder import bar_files, symbol_of_file
    from btlab.marketdata.sources.files.importer import import_bars
    from btlab.store.duckdb import DuckDBStore
    from rlsetup import GSPC, INDEX, STOCKS

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
    from rlsetup import INDEX, SYMBOLS, TINY, TINY_PPO, TRAIN

    out = tmp_path_factory.mktemp("rl_model") / "tilt.zip"
    return train(SYMBOLS, out=out, index=INDEX, start=TRAIN[0], end=TRAIN[1], timesteps=TINY, seed=0,
                 store=str(sp_store), ppo=TINY_PPO)
