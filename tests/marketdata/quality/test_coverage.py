"""Store coverage on real data: bar gaps found in SQL must equal find_gaps on the stored open times, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from btlab.errors import InvalidArgumentError
from btlab.marketdata.sources.binance_vision.importer import import_binance_vision
from btlab.marketdata.quality.coverage import COVERAGE_COLUMNS, TICK_COVERAGE_COLUMNS, coverage, tick_coverage
from btlab.marketdata.sources.files.importer import import_bars
from btlab.marketdata.quality.gaps import GAP_COLUMNS, find_gaps
from btlab.store.duckdb import DuckDBStore
from realdata import DATA

H1_FILE = DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"
M1_FILE = DATA / "BTC_USDT-1m_2025-05-20_2025-08-18.feather"
AAPL_FILE = DATA / "AAPL_data.csv"
AGG_FILE = DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"


@pytest.fixture(scope="module")
def h1_ts() -> pd.Series:
    return pd.read_feather(H1_FILE)["date"].astype("datetime64[ns, UTC]")


@pytest.fixture(scope="module")
def bars_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file with three real series: BTC/USDT 1h (128 missing hours), BTC/USDT 1m (none), AAPL 1d."""
    path = tmp_path_factory.mktemp("cov") / "bars.duckdb"
    with DuckDBStore(path) as store:
        import_bars(H1_FILE, store, exchange="binance", symbol="BTC/USDT", timeframe="1h")
        import_bars(M1_FILE, store, exchange="binance", symbol="BTC/USDT", timeframe="1m")
        import_bars(AAPL_FILE, store, exchange="nasdaq", symbol="AAPL", timeframe="1d")
    return path


@pytest.fixture
def bars_db(bars_store: Path):
    with DuckDBStore(bars_store) as store:
        yield store


@pytest.mark.parametrize("method", ["sql", "scan", "auto"])
def test_bar_coverage_matches_find_gaps(method: str, bars_db: DuckDBStore, h1_ts: pd.Series) -> None:
    cov = coverage(bars_db, method=method)
    assert list(cov.columns) == list(COVERAGE_COLUMNS)
    assert cov.attrs["method"] == ("scan" if method == "scan" else "sql")
    assert cov[["exchange", "symbol", "timeframe"]].values.tolist() == [
        ["binance", "BTC/USDT", "1h"], ["binance", "BTC/USDT", "1m"], ["nasdaq", "AAPL", "1d"]]
    h1 = cov.iloc[0]
    assert (h1["first"], h1["last"]) == (h1_ts.iloc[0], h1_ts.iloc[-1])
    assert (h1["bars"], h1["missing_bars"]) == (58_419, 128)
    expected = find_gaps(h1_ts, "1h")
    assert expected["missing_bars"].sum() == 128
    pd.testing.assert_frame_equal(h1["gaps"], expected, check_exact=True)
    assert h1["n_gaps"] == len(expected)
    m1 = cov.iloc[1]
    assert (m1["bars"], m1["missing_bars"], m1["n_gaps"]) == (130_708, 0, 0)
    assert list(m1["gaps"].columns) == list(GAP_COLUMNS) and m1["gaps"].empty
    aapl = cov.iloc[2]
    aapl_ts = pd.to_datetime(pd.read_csv(AAPL_FILE)["date"], utc=True).astype("datetime64[ns, UTC]")
    pd.testing.assert_frame_equal(aapl["gaps"], find_gaps(aapl_ts, "1d", calendar="XNYS"), check_exact=True)
    assert aapl["calendar"] == "XNYS" and h1["calendar"] == "24/7"
    assert aapl["missing_bars"] == 0  # nasdaq trades NYSE sessions: weekends and holidays are not missing


def test_bar_coverage_independent_count(bars_db: DuckDBStore, h1_ts: pd.Series) -> None:
    """The 128 missing hours, and the gap list, recomputed with numpy alone."""
    gaps = coverage(bars_db, timeframe="1h")["gaps"].iloc[0]
    ns = pd.DatetimeIndex(h1_ts).as_unit("ns").asi8
    hour = 3_600 * 10**9
    steps = np.diff(ns)
    where = np.flatnonzero(steps > hour)
    assert gaps["gap_start"].tolist() == [pd.Timestamp(ns[i] + hour, tz="UTC") for i in where]
    assert gaps["missing_bars"].tolist() == [int(steps[i] // hour - 1) for i in where]
    assert int(gaps["missing_bars"].sum()) == (ns[-1] - ns[0]) // hour + 1 - len(ns) == 128


def test_bar_coverage_filters(bars_db: DuckDBStore) -> None:
    assert coverage(bars_db, exchange="nasdaq")["symbol"].tolist() == ["AAPL"]
    assert coverage(bars_db, symbol="BTC/USDT")["timeframe"].tolist() == ["1h", "1m"]
    assert coverage(bars_db, exchange="binance", timeframe="1m")["bars"].tolist() == [130_708]
    assert coverage(bars_db, exchange="nope").empty
    with pytest.raises(InvalidArgumentError):
        coverage(bars_db, method="fast")  # type: ignore[arg-type]


def test_empty_store(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "e.duckdb") as store:
        assert coverage(store).empty and list(coverage(store).columns) == list(COVERAGE_COLUMNS)
        assert tick_coverage(store).empty and list(tick_coverage(store).columns) == list(TICK_COVERAGE_COLUMNS)


def test_coverage_on_each_backend(store, uid: str, btc_1h: pd.DataFrame) -> None:
    ex = f"cov{uid}"
    store.write_bars(btc_1h, exchange=ex, symbol="BTC/USDT", timeframe="1h", source="test")
    cov = coverage(store, exchange=ex)
    assert cov.attrs["method"] == "sql"
    assert (int(cov["bars"].iloc[0]), int(cov["missing_bars"].iloc[0])) == (58_419, 128)
    pd.testing.assert_frame_equal(cov["gaps"].iloc[0], find_gaps(btc_1h["ts"], "1h"), check_exact=True)


# ---------------------------------------------------------------------------------------------------------------
# ticks
# ---------------------------------------------------------------------------------------------------------------
def test_tick_coverage_real_agg_trades(tmp_path: Path) -> None:
    lines = AGG_FILE.read_text().splitlines()
    ids = [int(line.split(",")[0]) for line in lines]
    times = [int(line.split(",")[5]) for line in lines]
    with DuckDBStore(tmp_path / "t.duckdb") as store:
        import_binance_vision(AGG_FILE, store)
        for chunk in (2_000_000, 1_000):  # one window, and 13 time windows
            cov = tick_coverage(store, chunk_rows=chunk)
            assert list(cov.columns) == list(TICK_COVERAGE_COLUMNS)
            row = cov.iloc[0]
            assert (row["exchange"], row["symbol"], row["ticks"]) == ("binance", "XRP/ETH", 12_477)
            assert row["first"] == pd.Timestamp(min(times), unit="ms", tz="UTC")
            assert row["last"] == pd.Timestamp(max(times), unit="ms", tz="UTC")
            assert bool(row["numeric_ids"]) and (row["first_id"], row["last_id"]) == (min(ids), max(ids))
            assert (row["missing_ids"], row["duplicate_ids"]) == (0, 0) and row["id_gaps"].empty


def test_tick_coverage_finds_missing_ids(tmp_path: Path) -> None:
    """Rows 100..102 and 5,000 of the real file left out: two id gaps, exactly those ids."""
    lines = AGG_FILE.read_text().splitlines()
    dropped = {100, 101, 102, 5_000}  # 1-based data rows
    kept = [line for i, line in enumerate(lines, start=1) if i not in dropped]
    path = tmp_path / "XRPETH-aggTrades-2019-10-11.csv"
    path.write_text("\n".join(kept) + "\n")
    ids = [int(line.split(",")[0]) for line in lines]
    with DuckDBStore(tmp_path / "t.duckdb") as store:
        (report,) = import_binance_vision(path, store)
        assert report.gaps == 4
        for chunk in (2_000_000, 700):
            row = tick_coverage(store, chunk_rows=chunk).iloc[0]
            assert (row["ticks"], row["missing_ids"]) == (12_473, 4)
            assert row["id_gaps"].values.tolist() == [[ids[99], ids[101], 3], [ids[4_999], ids[4_999], 1]]
        # a series with ids that are not numbers: counted, no id analysis
        store.upsert("ticks", pd.DataFrame({
            "ts": pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:01"], utc=True),
            "exchange": "otc", "symbol": "BTC/USD", "trade_id": ["a-1", "a-2"], "price": [1.0, 2.0],
            "amount": [1.0, 1.0], "side": ["buy", "sell"],
        }))
        cov = tick_coverage(store)
        otc = cov[cov["exchange"] == "otc"].iloc[0]
        assert otc["ticks"] == 2 and not bool(otc["numeric_ids"]) and pd.isna(otc["missing_ids"])
        assert otc["id_gaps"] is None
        assert tick_coverage(store, exchange="otc")["exchange"].tolist() == ["otc"]
        counts_only = tick_coverage(store, id_gaps=False)
        assert counts_only["ticks"].tolist() == [12_473, 2]  # sorted by exchange: binance, otc
        assert counts_only["numeric_ids"].isna().all()
