"""DuckDBStore.write_bars (bar columns bound apart from the series' identity, an anti-join on re-imports) stores
exactly what the generic Store.write_bars (validate, bar_rows, upsert) stores: real BTC/USDT 1m bars, real DuckDB
files; first writes, re-imports, partly changed and partly new batches, a changed source, invalid batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from btlab.errors import DataValidationError
from btlab.model.bar import validate_bars
from btlab.store.base import Store
from btlab.store.duckdb import DuckDBStore
from realdata import btc_1m

SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m"}


def _stored(store: DuckDBStore) -> pd.DataFrame:
    cols = "ts, exchange, symbol, timeframe, open, high, low, close, volume, trades, source, vwap"
    return store.query(f"SELECT {cols} FROM ohlcv ORDER BY exchange, symbol, timeframe, ts")


def _both(tmp_path: Path, batches: list[tuple[pd.DataFrame, str]]) -> tuple[pd.DataFrame, pd.DataFrame, list, list]:
    """Write ``batches`` (bars, source) with DuckDBStore.write_bars into one store and with the generic
    Store.write_bars into another; return both tables and both lists of returned counts."""
    with DuckDBStore(tmp_path / "fast.duckdb") as fast, DuckDBStore(tmp_path / "generic.duckdb") as generic:
        counts_fast = [fast.write_bars(b, source=s, **SERIES) for b, s in batches]
        counts_generic = [Store.write_bars(generic, b, source=s, **SERIES) for b, s in batches]
        return _stored(fast), _stored(generic), counts_fast, counts_generic


def test_first_write_and_reimport_store_what_the_generic_path_stores(tmp_path: Path) -> None:
    bars = btc_1m()  # 130,708 bars: over write_overlap_rows, so the re-import takes the anti-join
    assert len(bars) >= DuckDBStore.write_overlap_rows
    fast, generic, n_fast, n_generic = _both(tmp_path, [(bars, "a.feather"), (bars, "a.feather")])
    pd.testing.assert_frame_equal(fast, generic)
    assert n_fast == n_generic == [len(bars), len(bars)]
    assert len(fast) == len(bars) and fast["trades"].isna().all()


def test_overlapping_batch_replaces_changed_bars_keeps_unchanged_and_adds_new(tmp_path: Path) -> None:
    bars = btc_1m()
    first = bars.iloc[:80_000].reset_index(drop=True)
    second = bars.iloc[40_000:120_000].reset_index(drop=True).copy()
    second.loc[10:20, "close"] = second.loc[10:20, "open"]  # still valid bars, other values than stored
    second.loc[30:40, "volume"] = 0.0
    second["trades"] = np.arange(len(second), dtype=np.int64)  # a column the stored bars had null
    fast, generic, n_fast, n_generic = _both(tmp_path, [(first, "a"), (second, "a"), (second, "b")])
    pd.testing.assert_frame_equal(fast, generic)
    assert n_fast == n_generic
    changed = fast.set_index("ts").loc[second["ts"].dt.tz_localize(None)]
    assert (changed["source"] == "b").all() and (changed["close"].to_numpy() == second["close"].to_numpy()).all()
    kept = fast[fast["ts"] < second["ts"].iloc[0].tz_localize(None)]
    assert len(kept) == 40_000 and (kept["source"] == "a").all()


def test_small_batches_and_float_trades_and_vwap(tmp_path: Path) -> None:
    bars = btc_1m().iloc[:500].reset_index(drop=True)
    bars["trades"] = 3.0
    bars["vwap"] = (bars["high"] + bars["low"]) / 2
    other = bars.iloc[250:].copy()
    other["vwap"] = np.nan
    fast, generic, *_ = _both(tmp_path, [(bars, "x"), (other, "y")])
    pd.testing.assert_frame_equal(fast, generic)


@pytest.mark.parametrize("size", [300, 130_708])
def test_invalid_batch_writes_nothing_with_the_validation_error(tmp_path: Path, size: int) -> None:
    bars = btc_1m().iloc[:size].reset_index(drop=True)
    bad = bars.copy()
    bad.loc[size - 5, "high"] = bad.loc[size - 5, "low"] / 2  # high below low near the end
    with pytest.raises(DataValidationError) as expected:
        validate_bars(bad, "f.csv", "1m")
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.write_bars(bars.iloc[: size // 2], source="ok", **SERIES)
        before = _stored(store)
        with pytest.raises(DataValidationError) as raised:
            store.write_bars(bad, source="f.csv", **SERIES)
        assert str(raised.value) == str(expected.value)
        pd.testing.assert_frame_equal(_stored(store), before)
