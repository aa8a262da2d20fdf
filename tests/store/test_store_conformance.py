"""One conformance suite for every :class:`btlab.store.base.Store` backend.

The ``store`` fixture (tests/conftest.py) runs each test on DuckDB and, when ``BTLAB_TEST_QUESTDB`` names a server,
on QuestDB. Every name a test writes (exchange, run_id, strategy) carries a unique token, so reruns against a
persistent QuestDB do not see each other's rows. Address parsing, DDL rendering, the ILP frame preparation and the
unreachable-server behaviour run without any server.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from btlab.errors import DataValidationError, RunNotFoundError, StoreConfigError, StoreUnavailableError
from btlab.model.bar import BAR_COLUMNS, validate_bars
from btlab.store.base import conform
from btlab.store.duckdb import DuckDBStore
from btlab.store.factory import open_store
from btlab.store.questdb import QuestDBStore
from btlab.store.questdb_address import parse_address
from btlab.store.questdb_sql import dedup_keys, ilp_frame, table_ddl, to_pyformat
from btlab.store.schema import TABLES

SYMBOL = "BTC/USDT"


# ---- helpers ---------------------------------------------------------------------------------------------------
def _slice(frame: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    return frame.iloc[lo:hi].copy().reset_index(drop=True)


def _expected_bars(bars: pd.DataFrame) -> pd.DataFrame:
    return validate_bars(bars, "expected", "1h")


def _daily(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily bars aggregated from hourly ones (real data, 1d-aligned)."""
    day = bars["ts"].dt.floor("D")
    out = bars.groupby(day).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"),
    )
    return out.rename_axis("ts").reset_index()


def _norm(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    return value


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    """Same rows in the same order: timestamps as UTC instants, floats bit-exact, nulls alike across dtypes."""
    assert len(got) == len(expected), f"{len(got)} rows, expected {len(expected)}"
    for col in columns:
        g, e = got[col], expected[col]
        if isinstance(e.dtype, pd.DatetimeTZDtype):
            assert isinstance(g.dtype, pd.DatetimeTZDtype) and str(g.dt.tz) == "UTC", f"{col}: {g.dtype}"
            gi = g.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
            ei = e.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
            assert gi.isna().tolist() == ei.isna().tolist(), col
            assert (gi[gi.notna()] == ei[ei.notna()]).all(), col
        elif e.dtype == "float64":
            assert np.array_equal(g.to_numpy(dtype="float64"), e.to_numpy(), equal_nan=True), col
        else:
            assert [_norm(v) for v in g.tolist()] == [_norm(v) for v in e.tolist()], col


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(uid: str, strategy: str, ts: pd.Timestamp, **extra: object) -> dict:
    row = {
        "ts": ts,
        "run_id": f"run-{uid}",
        "strategy": strategy,
        "params": {"fast": 10, "slow": 30},
        "exchange": "binance",
        "symbols": SYMBOL,
        "timeframe": "1h",
        "data_from": pd.Timestamp("2017-08-17 04:00", tz="UTC"),
        "data_to": pd.Timestamp("2024-04-21 00:00", tz="UTC"),
        "bars": 58419,
        "cash": 10_000.0,
        "commission": 0.001,
        "status": "running",
    }
    row.update(extra)
    return row


# ---- bars -----------------------------------------------------------------------------------------------------
def test_bars_round_trip_full_file(store, btc_1h, uid):
    exchange = f"x{uid}"
    written = store.write_bars(btc_1h, exchange=exchange, symbol=SYMBOL, timeframe="1h", source="feather")
    assert written == len(btc_1h)

    got = store.read_bars(exchange=exchange, symbol=SYMBOL, timeframe="1h")
    assert list(got.columns) == list(BAR_COLUMNS)
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert all(got[c].dtype == "float64" for c in ("open", "high", "low", "close", "volume"))
    assert got["trades"].dtype == "Int64"
    pd.testing.assert_frame_equal(got, _expected_bars(btc_1h), check_exact=True)


def test_bars_trades_column_round_trips_with_nulls(store, btc_1h, uid):
    exchange = f"x{uid}"
    bars = _slice(btc_1h, 5000, 5240)
    bars["trades"] = pd.array((bars["volume"] * 37).round().astype("int64"), dtype="Int64")
    bars.loc[[0, 17, 239], "trades"] = pd.NA
    store.write_bars(bars, exchange=exchange, symbol=SYMBOL, timeframe="1h", source="test")
    got = store.read_bars(exchange=exchange, symbol=SYMBOL, timeframe="1h")
    pd.testing.assert_frame_equal(got, _expected_bars(bars), check_exact=True)
    assert got["trades"].isna().sum() == 3


def test_read_bars_range_is_half_open(store, btc_1h, uid):
    exchange = f"x{uid}"
    bars = _slice(btc_1h, 0, 500)
    store.write_bars(bars, exchange=exchange, symbol=SYMBOL, timeframe="1h", source="test")
    ts = bars["ts"]
    kw = dict(exchange=exchange, symbol=SYMBOL, timeframe="1h")

    window = store.read_bars(**kw, start=ts[100], end=ts[200])
    pd.testing.assert_frame_equal(window, _expected_bars(_slice(bars, 100, 200)), check_exact=True)
    assert len(store.read_bars(**kw, start=ts[100])) == 400
    assert len(store.read_bars(**kw, end=ts[200])) == 200
    # naive bounds are UTC; aware bounds in another zone are converted
    naive = store.read_bars(**kw, start=str(ts[100].tz_localize(None)), end=ts[200].tz_localize(None).to_pydatetime())
    assert naive["ts"].tolist() == window["ts"].tolist()
    tokyo = store.read_bars(**kw, start=ts[100].tz_convert("Asia/Tokyo"), end=ts[200].tz_convert("Asia/Tokyo"))
    assert tokyo["ts"].tolist() == window["ts"].tolist()
    # a bound between bar open times
    assert store.read_bars(**kw, start=ts[100] + pd.Timedelta("1s"))["ts"].iloc[0] == ts[101]

    empty = store.read_bars(**kw, start=ts[100], end=ts[100])
    assert empty.empty and list(empty.columns) == list(BAR_COLUMNS)
    other = store.read_bars(exchange=exchange, symbol="ETH/USDT", timeframe="1h")
    assert other.empty and str(other["ts"].dtype) == "datetime64[ns, UTC]"


def test_rewriting_same_bars_changes_nothing(store, btc_1h, uid):
    exchange = f"x{uid}"
    bars = _slice(btc_1h, 1000, 1300)
    kw = dict(exchange=exchange, symbol=SYMBOL, timeframe="1h")
    store.write_bars(bars, **kw, source="test")
    first = store.read_bars(**kw)
    store.write_bars(bars, **kw, source="test")
    store.write_bars(bars.iloc[::-1].reset_index(drop=True).sort_values("ts"), **kw, source="test")
    again = store.read_bars(**kw)
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    series = store.bar_series()
    assert series.loc[series["exchange"] == exchange, "bars"].tolist() == [300]


def test_rewriting_changed_bars_replaces_rows(store, btc_1h, uid):
    exchange = f"x{uid}"
    kw = dict(exchange=exchange, symbol=SYMBOL, timeframe="1h")
    bars = _slice(btc_1h, 2000, 2300)
    store.write_bars(bars, **kw, source="v1")

    changed = _slice(bars, 100, 150)
    changed["close"] = changed["close"] * 1.01
    changed["high"] = np.maximum(changed["high"], changed["close"])
    changed["volume"] = changed["volume"] + 1.5
    store.write_bars(changed, **kw, source="v2")

    expected = bars.copy()
    expected.loc[100:149, ["high", "close", "volume"]] = changed[["high", "close", "volume"]].to_numpy()
    got = store.read_bars(**kw)
    pd.testing.assert_frame_equal(got, _expected_bars(expected), check_exact=True)

    # an overlapping extension adds only the new bars
    store.write_bars(_slice(btc_1h, 2250, 2400), **kw, source="v3")
    got = store.read_bars(**kw)
    assert len(got) == 400
    assert got["ts"].is_unique


def test_invalid_bars_write_nothing(store, btc_1h, uid):
    exchange = f"x{uid}"
    kw = dict(exchange=exchange, symbol=SYMBOL, timeframe="1h")
    bars = _slice(btc_1h, 3000, 3200)
    bad = bars.copy()
    bad.loc[100, "high"] = bad.loc[100, "low"] - 1.0

    with pytest.raises(DataValidationError) as info:
        store.write_bars(bad, **kw, source="bad.feather")
    assert info.value.row == 101 and info.value.column == "high"
    assert store.read_bars(**kw).empty
    assert exchange not in set(store.bar_series()["exchange"])

    # a rejected batch leaves existing bars as they were
    store.write_bars(bars.iloc[:50], **kw, source="good")
    bad.loc[10, "close"] = bad.loc[10, "close"] * 0.5  # would change a stored bar if anything were written
    bad.loc[10, "low"] = min(bad.loc[10, "low"], bad.loc[10, "close"])
    with pytest.raises(DataValidationError):
        store.write_bars(bad, **kw, source="bad.feather")
    pd.testing.assert_frame_equal(store.read_bars(**kw), _expected_bars(bars.iloc[:50]), check_exact=True)

    misaligned = bars.iloc[:10].copy()
    misaligned["ts"] = misaligned["ts"] + pd.Timedelta("30min")
    with pytest.raises(DataValidationError):
        store.write_bars(misaligned, **kw, source="bad")
    assert len(store.read_bars(**kw)) == 50


def test_bar_series_reports_each_series(store, btc_1h, uid):
    ex_a, ex_b = f"a{uid}", f"b{uid}"
    hourly = _slice(btc_1h, 0, 100)
    later = _slice(btc_1h, 4000, 4040)
    daily = _daily(_slice(btc_1h, 20, 20 + 24 * 10))
    store.write_bars(hourly, exchange=ex_a, symbol=SYMBOL, timeframe="1h", source="t")
    store.write_bars(daily, exchange=ex_a, symbol=SYMBOL, timeframe="1d", source="t")
    store.write_bars(later, exchange=ex_b, symbol=SYMBOL, timeframe="1h", source="t")

    series = store.bar_series()
    assert list(series.columns) == ["exchange", "symbol", "timeframe", "first", "last", "bars"]
    mine = series[series["exchange"].isin([ex_a, ex_b])].reset_index(drop=True)
    assert mine[["exchange", "symbol", "timeframe"]].values.tolist() == [
        [ex_a, SYMBOL, "1d"], [ex_a, SYMBOL, "1h"], [ex_b, SYMBOL, "1h"],
    ]
    assert mine["bars"].tolist() == [len(daily), 100, 40]
    assert mine["bars"].dtype == "int64"
    for col in ("first", "last"):
        assert str(mine[col].dtype) == "datetime64[ns, UTC]"
    assert mine["first"].tolist() == [daily["ts"].iloc[0], hourly["ts"].iloc[0], later["ts"].iloc[0]]
    assert mine["last"].tolist() == [daily["ts"].iloc[-1], hourly["ts"].iloc[-1], later["ts"].iloc[-1]]


# ---- runs -----------------------------------------------------------------------------------------------------
def test_write_run_twice_updates_the_one_row(store, uid):
    strategy = f"sma-{uid}"
    started = pd.Timestamp("2024-05-01 12:34:56.123456", tz="UTC")
    store.write_run(_run(uid, strategy, started))

    run = store.get_run(f"run-{uid}")
    assert run["status"] == "running"
    assert run["params"] == {"fast": 10, "slow": 30}
    assert run["metrics"] is None and run["finished_at"] is None and run["sharpe"] is None
    assert run["ts"] == started
    assert run["bars"] == 58419

    finished = started + pd.Timedelta("95s")
    metrics = {"sharpe": 1.25, "max_drawdown": -0.125, "n_trades": 7}
    store.write_run(_run(
        uid, strategy, started, status="finished", metrics=metrics, sharpe=1.25, max_drawdown=-0.125,
        n_trades=7, end_value=11_234.5, finished_at=finished,
    ))
    runs = store.list_runs(strategy=strategy)
    assert len(runs) == 1
    run = store.get_run(f"run-{uid}")
    assert run["status"] == "finished"
    assert run["metrics"] == metrics
    assert run["params"] == {"fast": 10, "slow": 30}
    assert run["sharpe"] == 1.25 and run["max_drawdown"] == -0.125 and run["end_value"] == 11_234.5
    assert run["n_trades"] == 7
    assert run["finished_at"] == finished
    assert run["data_from"] == pd.Timestamp("2017-08-17 04:00", tz="UTC")
    assert run["ts"] == started


def test_write_run_replaces_the_whole_row(store, uid):
    """A re-write is a full replacement: fields left out of the second write become null (on every backend)."""
    strategy = f"sma-{uid}"
    started = pd.Timestamp("2024-05-02", tz="UTC")
    store.write_run(_run(uid, strategy, started, error="boom"))
    store.write_run({"ts": started, "run_id": f"run-{uid}", "strategy": strategy, "status": "failed"})
    run = store.get_run(f"run-{uid}")
    assert run["status"] == "failed"
    assert run["params"] is None and run["error"] is None and run["cash"] is None and run["bars"] is None


def test_get_run_of_unknown_id_raises(store, uid):
    with pytest.raises(RunNotFoundError) as info:
        store.get_run(f"missing-{uid}")
    assert f"missing-{uid}" in str(info.value)


def test_list_runs_newest_first_with_limit(store, uid):
    strategy = f"order-{uid}"
    base = pd.Timestamp("2024-06-01", tz="UTC")
    for i in (1, 0, 2):
        store.write_run(_run(f"{uid}-{i}", strategy, base + pd.Timedelta(hours=i)))
    runs = store.list_runs(strategy=strategy)
    assert runs["run_id"].tolist() == [f"run-{uid}-2", f"run-{uid}-1", f"run-{uid}-0"]
    assert str(runs["ts"].dtype) == "datetime64[ns, UTC]"
    assert list(runs.columns) == list(TABLES["bt_runs"].column_names)
    assert store.list_runs(strategy=strategy, limit=2)["run_id"].tolist() == [f"run-{uid}-2", f"run-{uid}-1"]
    assert len(store.list_runs(limit=1)) == 1


# ---- results ---------------------------------------------------------------------------------------------------
def _equity(run_id: str, bars: pd.DataFrame) -> pd.DataFrame:
    value = 10_000.0 * bars["close"] / bars["close"].iloc[0]
    peak = value.cummax()
    return pd.DataFrame({
        "ts": bars["ts"], "run_id": run_id, "value": value, "cash": 2_500.0,
        "drawdown": value / peak - 1.0, "position_value": value - 2_500.0,
    })


def _trades(run_id: str, bars: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for ref, (i, j) in enumerate([(3, 10), (12, 30), (31, 30 + 19), (50, 80), (60, 80)], start=1):
        entry, exit_ = bars.iloc[i], bars.iloc[j]
        size = 0.5 if ref % 2 else -0.25
        pnl = (exit_["close"] - entry["close"]) * size
        rows.append({
            "ts": exit_["ts"], "run_id": run_id, "trade_ref": ref, "symbol": SYMBOL,
            "direction": "long" if size > 0 else "short", "size": abs(size), "entry_ts": entry["ts"],
            "entry_price": entry["close"], "exit_price": exit_["close"], "pnl": pnl, "pnl_net": pnl - 1.25,
            "commission": 1.25, "bars_held": j - i,
        })
    frame = pd.DataFrame(rows)
    frame.loc[4, "bars_held"] = None  # nullable long
    return frame


def _orders(run_id: str, bars: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for ref, i in enumerate([3, 10, 12, 30], start=1):
        bar = bars.iloc[i]
        rows.append({
            "ts": bar["ts"], "run_id": run_id, "order_ref": ref, "symbol": SYMBOL,
            "side": "buy" if ref % 2 else "sell", "type": "market", "status": "completed",
            "size": 0.5, "price": None, "executed_size": 0.5, "executed_price": bar["open"], "commission": 0.6,
        })
    return pd.DataFrame(rows)


def test_equity_round_trip_and_idempotence(store, btc_1h, uid):
    run_id = f"run-{uid}"
    equity = _equity(run_id, _slice(btc_1h, 6000, 6200))
    assert store.write_equity(equity) == 200
    store.write_equity(equity)
    got = store.read_equity(run_id)
    assert list(got.columns) == ["ts", "value", "cash", "drawdown", "position_value"]
    assert_same_rows(got, conform(TABLES["bt_equity"], equity), ["ts", "value", "cash", "drawdown", "position_value"])
    assert store.read_equity(f"other-{uid}").empty


def test_trades_round_trip_idempotence_and_upsert(store, btc_1h, uid):
    run_id = f"run-{uid}"
    trades = _trades(run_id, _slice(btc_1h, 7000, 7100))
    store.write_trades(trades)
    store.write_trades(trades)
    expected = conform(TABLES["bt_trades"], trades).sort_values(["ts", "trade_ref"], kind="stable")
    expected = expected.reset_index(drop=True)
    cols = [c for c in TABLES["bt_trades"].column_names if c != "run_id"]
    got = store.read_trades(run_id)
    assert list(got.columns) == cols
    assert_same_rows(got, expected, cols)  # two trades share an exit time: both kept (trade_ref is in the key)

    revised = trades.iloc[[1]].copy()
    revised["pnl_net"] = revised["pnl_net"] - 10.0
    store.write_trades(revised)
    got = store.read_trades(run_id)
    assert len(got) == len(trades)
    assert got.loc[got["trade_ref"] == 2, "pnl_net"].tolist() == revised["pnl_net"].tolist()


def test_orders_round_trip_idempotence_and_upsert(store, btc_1h, uid):
    run_id = f"run-{uid}"
    orders = _orders(run_id, _slice(btc_1h, 8000, 8100))
    store.write_orders(orders)
    store.write_orders(orders)
    cols = [c for c in TABLES["bt_orders"].column_names if c != "run_id"]
    got = store.read_orders(run_id)
    assert list(got.columns) == cols
    assert_same_rows(got, conform(TABLES["bt_orders"], orders), cols)

    # a later notification of the same order in the same bar supersedes the earlier one
    update = orders.iloc[[0]].copy()
    update["status"] = "partial"
    update["executed_size"] = 0.2
    store.write_orders(update)
    got = store.read_orders(run_id)
    assert len(got) == len(orders)
    first = got[got["order_ref"] == 1].iloc[0]
    assert first["status"] == "partial" and first["executed_size"] == 0.2


def test_last_row_of_a_key_wins_within_one_batch(store, btc_1h, uid):
    run_id = f"run-{uid}"
    orders = _orders(run_id, _slice(btc_1h, 8000, 8100))
    partial = orders.iloc[[0]].assign(status="partial", executed_size=0.2)
    batch = pd.concat([partial, orders], ignore_index=True)  # same order, same bar: the later event is final
    assert store.write_orders(batch) == len(orders)
    got = store.read_orders(run_id)
    assert len(got) == len(orders)
    first = got[got["order_ref"] == 1].iloc[0]
    assert first["status"] == "completed" and first["executed_size"] == 0.5


def test_health_rows_round_trip_and_upsert_by_key(store, uid):
    """bt_health through HealthWriter: per-interval deltas, one heartbeat per write, a re-write of a key replaces."""
    from btlab.store.health import HealthWriter

    clock = iter([0.0, 10.0, 20.0]).__next__
    stamps = iter(pd.to_datetime(["2024-03-01 00:00:10", "2024-03-01 00:00:20"], utc=True)).__next__
    service = f"svc-{uid}"
    writer = HealthWriter(store, service, interval=10, clock=clock, now=stamps)
    assert writer.write({("late_trades", "binance:BTC/USDT"): 3}, {"ticks": 1500}) == 3
    assert writer.write({("late_trades", "binance:BTC/USDT"): 7}, {"ticks": 1500}) == 3
    got = store.read_health(service=service)
    assert list(got.columns) == ["ts", "service", "metric", "subject", "value"]
    assert [(m, s, v) for m, s, v in got[["metric", "subject", "value"]].itertuples(index=False)] == [
        ("heartbeat", service, 1.0), ("late_trades", "binance:BTC/USDT", 3.0), ("rows_per_s", "ticks", 150.0),
        ("heartbeat", service, 1.0), ("late_trades", "binance:BTC/USDT", 4.0), ("rows_per_s", "ticks", 0.0),
    ]
    assert str(got["ts"].dt.tz) == "UTC" and got["ts"].iloc[-1] == pd.Timestamp("2024-03-01 00:00:20", tz="UTC")
    again = got.iloc[[1]].assign(value=5.0)
    store.write_health(again)
    late = store.read_health(service=service, metric="late_trades")
    assert late["value"].tolist() == [5.0, 4.0]
    assert store.read_health(service=f"other-{uid}").empty


def test_results_are_isolated_per_run(store, btc_1h, uid):
    bars = _slice(btc_1h, 9000, 9050)
    store.write_equity(_equity(f"a-{uid}", bars))
    store.write_equity(_equity(f"b-{uid}", bars.iloc[:20]))  # same timestamps, other run: not a duplicate
    assert len(store.read_equity(f"a-{uid}")) == 50
    assert len(store.read_equity(f"b-{uid}")) == 20


def test_tables_have_the_schema_columns(store):
    for table in TABLES.values():
        frame = store.query(f"SELECT * FROM {table.name} WHERE ts < ?", [pd.Timestamp("1971-01-01").to_pydatetime()])
        assert list(frame.columns) == list(table.column_names), table.name


def test_upsert_rejects_unknown_columns(store, uid):
    frame = pd.DataFrame({"ts": [pd.Timestamp("2024-01-01", tz="UTC")], "run_id": [f"r-{uid}"], "valeu": [1.0]})
    with pytest.raises(ValueError, match="valeu"):
        store.write_equity(frame)
    assert store.read_equity(f"r-{uid}").empty
    assert store.upsert("bt_equity", frame.iloc[:0].drop(columns=["valeu"])) == 0


# ---- deleting (Store.delete_rows and what is built on it) --------------------------------------------------------
def test_bar_span_and_delete_bars_range_then_series(store, btc_1h, uid):
    exchange = f"x{uid}"
    bars = _slice(btc_1h, 0, 500)
    other = _slice(btc_1h, 0, 50)
    store.write_bars(bars, exchange=exchange, symbol=SYMBOL, timeframe="1h", source="test")
    store.write_bars(other, exchange=exchange, symbol="ETH/USDT", timeframe="1h", source="test")
    store.write_bars(_daily(bars), exchange=exchange, symbol=SYMBOL, timeframe="1d", source="test")
    kw = dict(exchange=exchange, symbol=SYMBOL, timeframe="1h")
    ts = bars["ts"]
    assert tuple(store.bar_span(**kw)) == (500, ts[0], ts[499])
    assert tuple(store.bar_span(**kw, start=ts[100], end=ts[200])) == (100, ts[100], ts[199])
    assert tuple(store.bar_span(**kw, start=ts[499] + pd.Timedelta("1h"))) == (0, None, None)

    assert store.delete_bars(**kw, start=ts[100], end=ts[200]) == 100  # half-open, like read_bars
    kept = pd.concat([_slice(bars, 0, 100), _slice(bars, 200, 500)], ignore_index=True)
    pd.testing.assert_frame_equal(store.read_bars(**kw), _expected_bars(kept), check_exact=True)
    assert store.delete_bars(**kw, start=ts[100], end=ts[200]) == 0  # nothing left there: idempotent
    # other symbols and timeframes of the same exchange are untouched
    pd.testing.assert_frame_equal(store.read_bars(exchange=exchange, symbol="ETH/USDT", timeframe="1h"),
                                  _expected_bars(other), check_exact=True)
    assert len(store.read_bars(exchange=exchange, symbol=SYMBOL, timeframe="1d")) == len(_daily(bars))

    assert store.delete_bars(**kw) == 400  # the whole series
    assert store.read_bars(**kw).empty and store.bar_span(**kw).bars == 0
    assert len(store.read_bars(exchange=exchange, symbol="ETH/USDT", timeframe="1h")) == 50


def test_delete_runs_removes_every_row_of_those_runs_only(store, btc_1h, uid):
    bars = _slice(btc_1h, 9000, 9100)
    ids = [f"del-{uid}-{i}" for i in range(3)]
    started = pd.Timestamp("2024-03-01", tz="UTC")
    for i, run_id in enumerate(ids):
        store.write_run({**_run(uid, f"s{uid}", started + pd.Timedelta(minutes=i)), "run_id": run_id})
        store.write_equity(_equity(run_id, bars))
        store.write_trades(_trades(run_id, bars))
        store.write_orders(_orders(run_id, bars))
        store.write_states(pd.DataFrame({"ts": bars["ts"].iloc[[3, 40, 41]].to_numpy(), "run_id": run_id,
                                         "machine": ["1h", "1h", "1d"], "from_state": ["warmup", "neutral", "warmup"],
                                         "to_state": ["neutral", "bullish", "bearish"]}))
    rows = store.run_row_counts(ids[:2])
    assert rows["run_id"].tolist() == ids[:2]
    assert rows[["bt_runs", "bt_equity", "bt_trades", "bt_orders"]].to_numpy().tolist() == [[1, 100, 5, 4]] * 2

    with pytest.raises(RunNotFoundError, match=f"nope-{uid}"):  # one unknown id: nothing is deleted
        store.delete_runs([ids[0], f"nope-{uid}"])
    assert store.get_run(ids[0])["run_id"] == ids[0] and len(store.read_equity(ids[0])) == 100

    deleted = store.delete_runs(ids[:2])
    assert deleted == {"bt_equity": 200, "bt_trades": 10, "bt_orders": 8, "bt_states": 6, "bt_runs": 2}
    for run_id in ids[:2]:
        with pytest.raises(RunNotFoundError):
            store.get_run(run_id)
        assert store.read_equity(run_id).empty and store.read_trades(run_id).empty
        assert store.read_orders(run_id).empty and store.read_states(run_id).empty
    kept = ids[2]  # the third run is whole
    assert store.get_run(kept)["run_id"] == kept
    assert (len(store.read_equity(kept)), len(store.read_trades(kept)), len(store.read_orders(kept)),
            len(store.read_states(kept))) == (100, 5, 4, 3)
    assert store.list_runs(strategy=f"s{uid}")["run_id"].tolist() == [kept]


def test_delete_rows_needs_a_condition_and_schema_columns(store):
    from btlab.store.base import RowFilter

    with pytest.raises(ValueError, match="at least one condition"):
        store.delete_rows([RowFilter("ohlcv", {})])
    with pytest.raises(ValueError, match="no column"):
        store.delete_rows([RowFilter("ohlcv", {"symbol; DROP TABLE ohlcv": "x"})])
    with pytest.raises(KeyError):
        store.delete_rows([RowFilter("nosuch", {"run_id": "x"})])


# ---- unreachable servers (no server needed) ---------------------------------------------------------------------
def test_unreachable_questdb_raises_store_unavailable():
    port = _free_port()
    address = f"http::addr=127.0.0.1:{port};pg_port={port};"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        QuestDBStore.from_address(address, connect_timeout=2)
    assert time.monotonic() - started < 10
    assert info.value.address == address
    assert address in str(info.value)
    assert "\n" not in str(info.value)


def test_unreachable_questdb_message_has_no_credentials():
    port = _free_port()
    address = f"http::addr=127.0.0.1:{port};username=bob;password=s3cret;pg_port={port};pg_password=hunter2;"
    with pytest.raises(StoreUnavailableError) as info:
        open_store(address)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cret" not in message and "hunter2" not in message
    assert "s3cret" not in info.value.address


def test_unreachable_questdb_url_form():
    port = _free_port()
    address = f"questdb://127.0.0.1:{port}?pg_port={port}&pg_password=hunter2"
    with pytest.raises(StoreUnavailableError) as info:
        open_store(address)
    assert f"questdb://127.0.0.1:{port}?pg_port={port}" in str(info.value)
    assert "hunter2" not in str(info.value)


# ---- DuckDB specifics -------------------------------------------------------------------------------------------
def test_duckdb_reopening_a_file_keeps_its_data(tmp_path, btc_1h):
    path = tmp_path / "sub" / "store.duckdb"
    bars = _slice(btc_1h, 0, 100)
    with DuckDBStore(path) as first:
        first.write_bars(bars, exchange="binance", symbol=SYMBOL, timeframe="1h", source="t")
        first.write_run(_run("keep", "sma", pd.Timestamp("2024-01-01", tz="UTC")))
    with open_store(str(path)) as again:
        pd.testing.assert_frame_equal(
            again.read_bars(exchange="binance", symbol=SYMBOL, timeframe="1h"), _expected_bars(bars), check_exact=True
        )
        assert again.get_run("run-keep")["strategy"] == "sma"


def test_duckdb_file_locked_by_another_process(tmp_path):
    path = tmp_path / "locked.duckdb"
    code = (
        "import sys\n"
        "from btlab.errors import StoreUnavailableError\n"
        "from btlab.store.duckdb import DuckDBStore\n"
        "try:\n"
        "    DuckDBStore(sys.argv[1], lock_timeout=0.5)\n"
        "except StoreUnavailableError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    with DuckDBStore(path) as held, held.session():  # the lock is held only inside a session
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert f"cannot reach the store at {path}" in proc.stdout
    assert f"locked by process {os.getpid()}" in proc.stdout


# ---- QuestDB pieces that need no server ---------------------------------------------------------------------------
class TestParseAddress:
    def test_conf_string_defaults(self):
        cfg = parse_address("http::addr=127.0.0.1:9000;")
        assert (cfg.http_host, cfg.http_port, cfg.tls) == ("127.0.0.1", 9000, False)
        assert (cfg.pg_host, cfg.pg_port, cfg.pg_user, cfg.pg_password, cfg.pg_dbname) == (
            "127.0.0.1", 8812, "admin", "quest", "qdb"
        )
        assert cfg.ilp_conf == "http::addr=127.0.0.1:9000;"
        assert cfg.display == "http::addr=127.0.0.1:9000;"

    def test_conf_string_pg_keys_are_stripped_for_the_client(self):
        cfg = parse_address(
            "https::addr=db.example:9443;username=ingest;password=pa;;ss;retry_timeout=5000;"
            "pg_host=pg.example;pg_port=5433;pg_user=reader;pg_password=secret;pg_dbname=market;auto_flush_rows=10;"
        )
        assert cfg.tls and (cfg.http_host, cfg.http_port) == ("db.example", 9443)
        assert (cfg.pg_host, cfg.pg_port, cfg.pg_user, cfg.pg_password, cfg.pg_dbname) == (
            "pg.example", 5433, "reader", "secret", "market"
        )
        assert cfg.ilp_conf == "https::addr=db.example:9443;username=ingest;password=pa;;ss;retry_timeout=5000;"
        assert "pa;;ss" not in cfg.display and "secret" not in cfg.display and "password" not in cfg.display
        assert "pg_port=5433" in cfg.display and "username=ingest" in cfg.display
        assert "secret" not in repr(cfg) and "pa;;ss" not in repr(cfg)

    def test_conf_string_default_port_and_no_trailing_semicolon(self):
        cfg = parse_address("http::addr=questdb")
        assert (cfg.http_host, cfg.http_port) == ("questdb", 9000)
        assert cfg.ilp_conf == "http::addr=questdb:9000;"

    def test_url_form(self):
        cfg = parse_address("questdb://questdb:9001?pg_port=9812&pg_user=reader&pg_password=pw")
        assert (cfg.http_host, cfg.http_port, cfg.tls) == ("questdb", 9001, False)
        assert (cfg.pg_host, cfg.pg_port, cfg.pg_user, cfg.pg_password) == ("questdb", 9812, "reader", "pw")
        assert cfg.ilp_conf == "http::addr=questdb:9001;"
        assert cfg.display == "questdb://questdb:9001?pg_port=9812&pg_user=reader"

    def test_url_form_defaults_credentials_and_tls(self):
        cfg = parse_address("questdb://localhost")
        assert (cfg.http_port, cfg.pg_port, cfg.pg_user, cfg.pg_dbname) == (9000, 8812, "admin", "qdb")
        cfg = parse_address("questdb://bob:s%3Bcret@db:9443?tls=true")
        assert cfg.ilp_conf == "https::addr=db:9443;username=bob;password=s;;cret;"
        assert cfg.display == "questdb://bob@db:9443?tls=true"

    @pytest.mark.parametrize("address", [
        "http::",                                   # no addr
        "http::username=x;",                        # no addr
        "tcp::addr=localhost:9009;",                # ILP/TCP: no transactions, not supported
        "http::addr=localhost:notaport;",
        "http::addr=localhost:70000;",
        "http::addr=localhost:9000;pg_port=x;",
        "http::addr=localhost:9000;addr=other:9000;",
        "http::addr=localhost:9000;garbage",
        "questdb://",
        "questdb://host:99999",
        "questdb://host?pg_prot=8812",
        "questdb://host/db",
        "questdb://host?tls=maybe",
        "localhost:9000",
    ])
    def test_malformed_addresses(self, address):
        with pytest.raises(StoreConfigError):
            parse_address(address)


def test_ddl_uses_wal_dedup_with_designated_timestamp():
    ddl = table_ddl(TABLES["ohlcv"])
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS ohlcv (")
    assert '"exchange" SYMBOL' in ddl and '"trades" LONG' in ddl and '"ts" TIMESTAMP' in ddl
    assert ddl.endswith(
        'TIMESTAMP("ts") PARTITION BY MONTH WAL DEDUP UPSERT KEYS("ts", "exchange", "symbol", "timeframe")'
    )
    runs = table_ddl(TABLES["bt_runs"])
    assert '"run_id" VARCHAR' in runs and '"status" SYMBOL' in runs
    assert runs.endswith('PARTITION BY YEAR WAL DEDUP UPSERT KEYS("ts", "run_id")')
    assert '"type" SYMBOL' in table_ddl(TABLES["bt_orders"])  # a QuestDB keyword, quoted
    for table in TABLES.values():
        assert dedup_keys(table)[0] == "ts" and set(dedup_keys(table)) == {"ts", *table.key}


def test_placeholders_become_psycopg_style():
    assert to_pyformat("SELECT * FROM t WHERE a = ? AND b = ? LIMIT ?") == (
        "SELECT * FROM t WHERE a = %s AND b = %s LIMIT %s"
    )
    assert to_pyformat("SELECT '?', \"?\", x % 2 FROM t WHERE s LIKE '5%' AND y = ?") == (
        "SELECT '?', \"?\", x %% 2 FROM t WHERE s LIKE '5%%' AND y = %s"
    )


def test_ilp_frames_are_accepted_by_the_questdb_client(btc_1h):
    """Every table's rows, nulls included, serialize with the real client (no server involved)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from questdb.ingress import Buffer

    bars = _slice(btc_1h, 0, 5)
    samples = {
        "ohlcv": validate_bars(bars, "t", "1h").assign(exchange="binance", symbol=SYMBOL, timeframe="1h", source=None),
        "bt_runs": pd.DataFrame([_run("x", "sma", pd.Timestamp("2024-01-01", tz="UTC"), params='{"a": 1}')]),
        "bt_equity": _equity("r", bars),
        "bt_trades": _trades("r", _slice(btc_1h, 0, 100)),
        "bt_orders": _orders("r", _slice(btc_1h, 0, 100)),
        "ticks": pd.DataFrame({
            "ts": bars["ts"], "exchange": "binance", "symbol": SYMBOL, "trade_id": [1, 2, 3, 4, "5"],
            "price": bars["close"], "amount": 0.1, "side": ["buy", None, "sell", "buy", None],
        }),
    }
    for name, frame in samples.items():
        table = TABLES[name]
        batch, symbols = ilp_frame(table, frame)
        assert set(symbols) <= set(table.kinds("symbol"))
        for protocol_version in (1, 2):
            buffer = Buffer(protocol_version=protocol_version)
            buffer.dataframe(batch, table_name=name, symbols=symbols, at="ts")
            if protocol_version == 1:  # text protocol: one line per row (v2 sends doubles as binary)
                lines = bytes(buffer).splitlines()
                assert len(lines) == len(frame), name
                assert all(line.startswith(name.encode()) for line in lines), name
    runs_batch, _ = ilp_frame(TABLES["bt_runs"], samples["bt_runs"])
    assert "metrics" not in runs_batch.columns  # all-null columns are left out (null in QuestDB)
    ticks_batch, _ = ilp_frame(TABLES["ticks"], samples["ticks"])
    assert ticks_batch["trade_id"].tolist() == ["1", "2", "3", "4", "5"]


def test_ilp_frame_rejects_null_keys_and_pre_epoch_times():
    frame = pd.DataFrame({"ts": [pd.Timestamp("2024-01-01", tz="UTC"), pd.NaT], "run_id": ["a", "b"], "value": 1.0})
    with pytest.raises(ValueError, match="key column 'ts'"):
        ilp_frame(TABLES["bt_equity"], frame)
    frame = pd.DataFrame({"ts": [pd.Timestamp("1969-12-31 23:00", tz="UTC")], "run_id": ["a"], "value": 1.0})
    with pytest.raises(ValueError, match="before 1970"):
        ilp_frame(TABLES["bt_equity"], frame)
