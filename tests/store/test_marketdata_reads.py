"""The Store's reads for ingest planners: ``missing_ranges`` (what a bar request still needs) and ``last_trade``
(where a trade ingest resumes), on real Binance data in every backend."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from btlab.store.base import Store

DATA = Path(__file__).resolve().parents[2] / "data"
AGG_FILE = DATA / "XRPETH-aggTrades-2019-10-11_2019-10-13.csv"
AGG_COLUMNS = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
               "is_buyer_maker", "is_best_match"]
HOUR = pd.Timedelta(1, "h")


def _agg_ticks(exchange: str) -> pd.DataFrame:
    """The real XRP/ETH aggTrades as ``ticks`` rows, read with pandas only."""
    raw = pd.read_csv(AGG_FILE, header=None, names=AGG_COLUMNS)
    return pd.DataFrame({
        "ts": pd.to_datetime(raw["transact_time"], unit="ms", utc=True),
        "exchange": exchange, "symbol": "XRP/ETH", "trade_id": raw["agg_trade_id"].astype(str),
        "price": raw["price"], "amount": raw["quantity"],
        "side": raw["is_buyer_maker"].map({True: "sell", False: "buy"}),
    })


def test_missing_ranges_are_the_edges_of_the_stored_bars(store: Store, uid: str, btc_1h: pd.DataFrame) -> None:
    bars = btc_1h.iloc[1000:1200].reset_index(drop=True)
    key = {"exchange": uid, "symbol": "BTC/USDT", "timeframe": "1h"}
    t = btc_1h["ts"]
    lo, hi = t.iloc[900], t.iloc[1400]
    assert store.missing_ranges(**key, start=lo, end=hi) == [(lo, hi)]  # nothing stored: everything
    store.write_bars(bars, **key, source="test")
    first, after = bars["ts"].iloc[0], bars["ts"].iloc[-1] + HOUR
    assert store.missing_ranges(**key, start=lo, end=hi) == [(lo, first), (after, hi)]
    assert store.missing_ranges(**key, start=first, end=hi) == [(after, hi)]
    assert store.missing_ranges(**key, start=lo, end=after) == [(lo, first)]
    assert store.missing_ranges(**key, start=first, end=after) == []  # all there
    assert store.missing_ranges(**key, start=hi, end=lo) == []
    # a hole between the first and the last stored bar is a gap, not something the source still owes
    store.delete_bars(**key, start=bars["ts"].iloc[50], end=bars["ts"].iloc[60])
    assert store.missing_ranges(**key, start=lo, end=hi) == [(lo, first), (after, hi)]
    # bounds are inclusive/exclusive like every read: a request ending at the first stored bar needs all of it
    assert store.missing_ranges(**key, start=lo, end=first) == [(lo, first)]
    # stored bars outside the request do not shrink it
    inner_lo, inner_hi = t.iloc[1300], t.iloc[1350]
    assert store.missing_ranges(**key, start=inner_lo, end=inner_hi) == [(inner_lo, inner_hi)]


def test_last_trade_is_the_largest_id_at_the_last_time(store: Store, uid: str) -> None:
    ticks = _agg_ticks(uid)
    store.upsert("ticks", ticks)
    assert store.last_trade(exchange=uid, symbol="BTC/USDT") is None
    start, end = ticks["ts"].iloc[100], ticks["ts"].iloc[5000]
    inside = ticks[(ticks["ts"] >= start) & (ticks["ts"] < end)]
    last_ts = inside["ts"].max()
    expected_id = str(inside.loc[inside["ts"] == last_ts, "trade_id"].astype(int).max())
    got = store.last_trade(exchange=uid, symbol="XRP/ETH", start=start, end=end)
    assert got is not None
    assert (got.ticks, got.first, got.last, got.trade_id) == (len(inside), inside["ts"].min(), last_ts, expected_id)
    whole = store.last_trade(exchange=uid, symbol="XRP/ETH")
    assert whole is not None and whole.trade_id == str(ticks["trade_id"].astype(int).max())


def test_last_trade_orders_ids_as_numbers_unless_one_is_text(store: Store, uid: str) -> None:
    ticks = _agg_ticks(uid).iloc[:3].copy()
    ticks["ts"] = ticks["ts"].iloc[0]  # three trades at one time
    ticks["trade_id"] = ["9", "10", "8"]
    store.upsert("ticks", ticks)
    got = store.last_trade(exchange=uid, symbol="XRP/ETH")
    assert got is not None and got.trade_id == "10"  # not "9", the largest text
    text = ticks.assign(symbol="ETH/XRP", trade_id=["a9", "a10", "a8"])
    store.upsert("ticks", text)
    got = store.last_trade(exchange=uid, symbol="ETH/XRP")
    assert got is not None and got.trade_id == "a9"


@pytest.mark.parametrize("bound", ["start", "end"])
def test_missing_ranges_needs_both_bounds(store: Store, uid: str, bound: str) -> None:
    args = {"start": pd.Timestamp("2024-01-01", tz="UTC"), "end": pd.Timestamp("2024-01-02", tz="UTC"), bound: None}
    with pytest.raises(ValueError, match="both"):
        store.missing_ranges(exchange=uid, symbol="BTC/USDT", timeframe="1h", **args)



def test_duckdb_read_bars_is_the_order_by_ts_frame(tmp_path: Path, btc_1h: pd.DataFrame,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's fast bar read (numpy arrays, sorted in numpy when the file holds them out of order) returns exactly
    the frame of the generic ``ORDER BY ts`` read: values, nulls, dtypes, UTC, index. The file is written out of
    order (a later span first, then an earlier one, then a rewrite in the middle) with null ``trades``/``vwap``."""
    from btlab.store.duckdb import DuckDBStore
    from btlab.store.marketdata import MarketDataStore

    bars = btc_1h.iloc[:3000].reset_index(drop=True)
    bars["trades"] = pd.array(range(3000), dtype="Int64")
    bars.loc[::3, "trades"] = pd.NA
    key = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
    path = tmp_path / "bars.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(bars.iloc[2000:], **key, source="a")
        st.write_bars(bars.iloc[:2000], **key, source="a")
        st.write_bars(bars.iloc[500:700].assign(volume=bars["volume"].iloc[500:700] * 2), **key, source="b")
    spans = ({}, {"start": bars["ts"].iloc[100], "end": bars["ts"].iloc[2500]}, {"start": "2030-01-01"})
    with DuckDBStore(path, read_only=True) as st:
        stored = st.query("SELECT ts FROM ohlcv")["ts"]
        assert not stored.is_monotonic_increasing, "the file should hold the bars out of order"
        fast = [st.read_bars(**key, **span) for span in spans]
        monkeypatch.setattr(DuckDBStore, "_read_bar_rows", MarketDataStore._read_bar_rows)
        slow = [st.read_bars(**key, **span) for span in spans]
    for f, s in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(f, s, check_exact=True)
        assert str(f["ts"].dtype) == "datetime64[ns, UTC]" and str(f["trades"].dtype) == "Int64"
    assert len(fast[0]) == 3000 and fast[0]["trades"].isna().sum() == 1000 and fast[0]["vwap"].isna().all()
    assert (fast[0]["volume"].iloc[500:700].to_numpy() == bars["volume"].iloc[500:700].to_numpy() * 2).all()
    assert len(fast[1]) == 2400 and fast[2].empty


def test_duckdb_read_bars_of_an_older_file_without_trades_and_vwap(tmp_path: Path, btc_1h: pd.DataFrame,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A file from before ``trades``/``vwap`` existed, opened read-only: its bars (real, inserted newest first) read
    through the stand-in view with those columns null, the same frame as the generic ``ORDER BY ts`` read."""
    import duckdb

    from btlab.store.duckdb import DuckDBStore
    from btlab.store.marketdata import MarketDataStore

    bars = btc_1h.iloc[:500].iloc[::-1]
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE ohlcv (ts TIMESTAMP, exchange VARCHAR, symbol VARCHAR, timeframe VARCHAR, open DOUBLE, "
                "high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, source VARCHAR)")
    con.executemany("INSERT INTO ohlcv VALUES (?, 'binance', 'BTC/USDT', '1h', ?, ?, ?, ?, ?, 'old')",
                    [[t.tz_localize(None).to_pydatetime(), o, h, lo, c, v] for t, o, h, lo, c, v in
                     bars[["ts", "open", "high", "low", "close", "volume"]].itertuples(index=False)])
    con.close()
    with DuckDBStore(path, read_only=True) as st:
        fast = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
        monkeypatch.setattr(DuckDBStore, "_read_bar_rows", MarketDataStore._read_bar_rows)
        slow = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert fast["trades"].isna().all() and fast["vwap"].isna().all() and str(fast["trades"].dtype) == "Int64"
    assert (fast["close"].to_numpy() == btc_1h["close"].iloc[:500].to_numpy()).all()
