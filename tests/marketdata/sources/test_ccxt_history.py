"""History ingest through ccxt REST against the local fake Binance (recorded real data; no internet, no mocks)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ccxt
from btlab.errors import BtlabError, InvalidArgumentError
from btlab.marketdata.sources.ccxt.exchange import (
    ExchangeRequestError,
    ExchangeUnavailableError,
    UnknownExchangeError,
    UnknownSymbolError,
    UnsupportedTimeframeError,
    make_exchange,
    rebase_urls,
)
from btlab.marketdata.sources.ccxt.history import ingest_ohlcv, ingest_trades
from btlab.marketdata.sources.ccxt.retry import RetryPolicy
from btlab.store.duckdb import DuckDBStore
from fakes.binance import (  # noqa: F401  (fake_binance is a fixture)
    FakeBinance,
    fake_binance,
    load_agg_trades,
    load_klines,
    make_ccxt_exchange,
)

UTC = "UTC"
FAST = RetryPolicy(max_retries=6, base_delay=0.01, max_delay=0.05)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def source_bars(symbol_id: str, start: str, end: str, interval: str = "1m") -> pd.DataFrame:
    """The recorded klines with ``start <= ts < end`` as a bar frame (what the store must hold)."""
    frame = load_klines()[(symbol_id, interval)].frame()
    return frame[(frame["ts"] >= utc(start)) & (frame["ts"] < utc(end))].reset_index(drop=True)


def assert_same_bars(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    cols = ["ts", "open", "high", "low", "close", "volume"]
    assert len(got) == len(expected)
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), expected[cols], check_exact=True)


@pytest.fixture
def duck(tmp_path: Path):
    store = DuckDBStore(tmp_path / "ingest.duckdb")
    try:
        yield store
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------------------------
# the fake itself: Binance kline semantics
# ---------------------------------------------------------------------------------------------------------------
def test_fake_klines_follow_binance_semantics(fake_binance: FakeBinance) -> None:
    fake_binance.set_now("2025-08-10 12:00:30")
    ex = make_ccxt_exchange(fake_binance.base_url)
    ex.load_markets()
    assert [r.path for r in fake_binance.requests] == ["/api/v3/exchangeInfo"]  # spot only, nothing else
    since = ex.parse8601("2025-08-10T11:58:00Z")
    rows = ex.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=1000)
    # 11:58 and 11:59 are final; 12:00 contains "now" and is served as the open current bar, as Binance does
    assert [r[0] for r in rows] == [since, since + 60_000, since + 120_000]
    raw = ex.publicGetKlines({"symbol": "BTCUSDT", "interval": "1m", "endTime": since, "limit": 3})
    assert [r[0] for r in raw] == [since - 120_000, since - 60_000, since]  # endTime only: the last `limit`
    assert raw[-1][6] == since + 59_999 and len(raw[-1]) == 12
    expected = source_bars("BTCUSDT", "2025-08-10 11:58", "2025-08-10 11:59").iloc[0]
    assert [float(x) for x in raw[-1][1:6]] == [expected[c] for c in ("open", "high", "low", "close", "volume")]
    with pytest.raises(ccxt.BadRequest):
        ex.publicGetKlines({"symbol": "BTCUSDT", "interval": "1m", "limit": 1001})
    with pytest.raises(ccxt.BadSymbol):
        ex.publicGetKlines({"symbol": "NOPEUSDT", "interval": "1m"})


# ---------------------------------------------------------------------------------------------------------------
# OHLCV
# ---------------------------------------------------------------------------------------------------------------
def test_ingest_1m_equals_the_exchange_klines(fake_binance: FakeBinance, duck: DuckDBStore) -> None:
    fake_binance.set_now("2025-08-10 12:00:30")
    ex = make_ccxt_exchange(fake_binance.base_url)
    calls: list[tuple[int, int]] = []
    report = ingest_ohlcv(ex, ["BTC/USDT", "ETH/USDT"], "1m", duck, since="2025-08-01", until="2025-08-03 07:30",
                          progress=lambda done, total: calls.append((done, total)))
    n = 2 * 24 * 60 + 7 * 60 + 30
    for symbol, sid in (("BTC/USDT", "BTCUSDT"), ("ETH/USDT", "ETHUSDT")):
        got = duck.read_bars(exchange="binance", symbol=symbol, timeframe="1m")
        assert_same_bars(got, source_bars(sid, "2025-08-01", "2025-08-03 07:30"))
    assert [s.written for s in report.series] == [n, n]
    assert report.missing == 0 and report.retries == 0
    assert fake_binance.count("/api/v3/klines") == 2 * -(-n // 1000)  # full pages of Binance's maximum
    assert calls[0] == (0, 2 * n) and calls[-1] == (2 * n, 2 * n)
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))
    sources = duck.query("SELECT DISTINCT source FROM ohlcv")["source"].tolist()
    assert sources == ["ccxt:binance"]


def test_open_current_bar_is_never_stored(fake_binance: FakeBinance, duck: DuckDBStore) -> None:
    ex = make_ccxt_exchange(fake_binance.base_url)
    fake_binance.set_now("2025-08-10 12:00:30")
    served = ex.fetch_ohlcv("BTC/USDT", "1m", since=ex.parse8601("2025-08-10T11:00:00Z"), limit=1000)
    assert served[-1][0] == ex.parse8601("2025-08-10T12:00:00Z")  # the fake serves the open bar ...
    report = ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-08-10 10:00")
    got = duck.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert got["ts"].iloc[-1] == utc("2025-08-10 11:59")  # ... and it is not stored
    assert report.series[0].end == utc("2025-08-10 12:00") and report.server_time == utc("2025-08-10 12:00:30")
    # exactly at a boundary: the bar that closed at `now` is final, the one opening at `now` is not
    fake_binance.set_now("2025-08-10 13:00:00")
    ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-08-10 10:00")
    got = duck.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert got["ts"].iloc[-1] == utc("2025-08-10 12:59")
    assert_same_bars(got, source_bars("BTCUSDT", "2025-08-10 10:00", "2025-08-10 13:00"))
    # 1h bars: the hour containing `now` stays out too
    fake_binance.set_now("2024-04-21 14:20:00")
    ingest_ohlcv(ex, "BTC/USDT", "1h", duck, since="2024-04-20")
    hourly = duck.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert hourly["ts"].iloc[-1] == utc("2024-04-21 13:00")
    assert_same_bars(hourly, source_bars("BTCUSDT", "2024-04-20", "2024-04-21 14:00", "1h"))


def test_resume_fetches_only_the_new_bars(fake_binance: FakeBinance, duck: DuckDBStore) -> None:
    ex = make_ccxt_exchange(fake_binance.base_url)
    first = ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-07-01", until="2025-07-02 06:00")
    assert first.series[0].resumed_from is None and first.written == 1800
    fake_binance.reset_log()
    second = ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-07-01", until="2025-07-02 08:00")
    klines = [r for r in fake_binance.requests if r.path == "/api/v3/klines"]
    assert len(klines) == 1 and int(klines[0].params["startTime"]) == ex.parse8601("2025-07-02T06:00:00Z")
    assert second.series[0].resumed_from == utc("2025-07-02 06:00") and second.written == 120
    assert second.series[0].expected == 120
    # nothing new: no kline request at all
    fake_binance.reset_log()
    third = ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-07-01", until="2025-07-02 08:00")
    assert fake_binance.count("/api/v3/klines") == 0 and third.written == 0
    # an earlier `since` fetches only the part before the stored range
    fake_binance.reset_log()
    fourth = ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-06-30 23:00", until="2025-07-02 08:00")
    assert fourth.written == 60 and fake_binance.count("/api/v3/klines") == 1
    got = duck.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert_same_bars(got, source_bars("BTCUSDT", "2025-06-30 23:00", "2025-07-02 08:00"))


def test_429_and_5xx_are_retried_and_the_result_is_complete(fake_binance: FakeBinance, duck: DuckDBStore) -> None:
    ex = make_ccxt_exchange(fake_binance.base_url)
    ex.load_markets()
    fake_binance.fail_next(2, 429, retry_after=0.3, path="/api/v3/klines")
    fake_binance.fail_next(1, 503, path="/api/v3/klines")  # Binance -1001 JSON body
    fake_binance.fail_next(1, 502, path="/api/v3/klines")  # HTML from the load balancer
    fake_binance.fail_next(1, 0, path="/api/v3/klines")  # connection dropped, no answer
    fake_binance.fail_next(1, 504, path="/api/v3/klines")
    t0 = time.perf_counter()
    report = ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-08-05", until="2025-08-07", retry=FAST)
    assert time.perf_counter() - t0 >= 0.6  # Retry-After honoured twice
    assert report.retries == 6 and fake_binance.pending_faults() == 0
    statuses = [r.status for r in fake_binance.requests if r.path == "/api/v3/klines"]
    assert statuses[:6] == [429, 429, 503, 502, 0, 504] and statuses[6:] == [200] * 3
    got = duck.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert_same_bars(got, source_bars("BTCUSDT", "2025-08-05", "2025-08-07"))
    # a 5xx mid-way, then a clean finish on the next run
    fake_binance.fail_next(10, 503, path="/api/v3/klines")
    with pytest.raises(ExchangeUnavailableError, match="retries"):
        ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-08-05", until="2025-08-08",
                     retry=RetryPolicy(max_retries=2, base_delay=0.01))
    assert isinstance(ExchangeUnavailableError("x", "y"), BtlabError)
    fake_binance.clear_faults()
    ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-08-05", until="2025-08-08", retry=FAST)
    got = duck.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
    assert_same_bars(got, source_bars("BTCUSDT", "2025-08-05", "2025-08-08"))


def test_user_errors_are_clear(fake_binance: FakeBinance, duck: DuckDBStore) -> None:
    with pytest.raises(UnknownExchangeError, match="binance") as err:
        make_exchange("binanse")
    assert "ccxt.exchanges" in str(err.value) and isinstance(err.value, InvalidArgumentError)
    ex = make_ccxt_exchange(fake_binance.base_url)
    with pytest.raises(UnknownSymbolError, match="BTC/USDT"):
        ingest_ohlcv(ex, ["BTC/USDT", "BTC/USDX"], "1m", duck, since="2025-08-01")
    with pytest.raises(UnsupportedTimeframeError, match="1m, 3m"):
        ingest_ohlcv(ex, "BTC/USDT", "7m", duck, since="2025-08-01")
    with pytest.raises(InvalidArgumentError, match="until"):
        ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-08-02", until="2025-08-01")
    assert fake_binance.count("/api/v3/klines") == 0 and duck.bar_series().empty


def test_make_exchange_moves_every_url() -> None:
    ex = make_exchange("binance", origin="http://127.0.0.1:9", ws_origin="ws://127.0.0.1:9", pro=True)
    flat: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str) and "://" in node:
            flat.append(node)

    walk(ex.urls["api"])
    assert flat and all(u.startswith(("http://127.0.0.1:9/", "ws://127.0.0.1:9/")) for u in flat)
    assert ex.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:9/ws" and ex.enableRateLimit
    asyncio.run(ex.close())
    assert rebase_urls({"a": "https://h/x?y=1"}, "http://p:1") == {"a": "http://p:1/x?y=1"}


# ---------------------------------------------------------------------------------------------------------------
# kill -9 mid-way, then resume
# ---------------------------------------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys
    from btlab.marketdata.sources.ccxt.exchange import make_exchange
    from btlab.marketdata.sources.ccxt.history import ingest_ohlcv
    from btlab.store.duckdb import DuckDBStore

    base, path = sys.argv[1], sys.argv[2]
    ex = make_exchange("binance", origin=base)
    with DuckDBStore(path) as store:
        ingest_ohlcv(ex, "BTC/USDT", "1m", store, since="2025-06-01", until="2025-06-05", page_limit=500)
    print("finished")
    """
)


def test_killed_ingest_resumes_without_gap_or_duplicate(fake_binance: FakeBinance, tmp_path: Path) -> None:
    db = tmp_path / "killed.duckdb"
    fake_binance.set_latency(0.25, "/api/v3/klines")
    child = subprocess.Popen([sys.executable, "-c", CHILD, fake_binance.base_url, str(db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while fake_binance.count("/api/v3/klines", status=200) < 5:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child made no progress"
            time.sleep(0.02)
        time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        out, _ = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL and b"finished" not in out
    fake_binance.set_latency(0.0, "/api/v3/klines")
    time.sleep(0.4)  # let the request the child left in flight finish before counting anew
    total = 4 * 24 * 60
    with DuckDBStore(db) as store:
        partial = len(store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m"))
        assert 0 < partial < total  # killed mid-way, after some pages were stored
        fake_binance.reset_log()
        report = ingest_ohlcv(make_ccxt_exchange(fake_binance.base_url), "BTC/USDT", "1m", store,
                              since="2025-06-01", until="2025-06-05", page_limit=500)
        assert report.series[0].resumed_from is not None
        assert report.written == total - partial
        assert fake_binance.count("/api/v3/klines") == -(-(total - partial) // 500)
        got = store.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1m")
        n_rows = int(store.query("SELECT count(*) AS n FROM ohlcv")["n"].iloc[0])
    assert n_rows == total  # no duplicate
    assert report.missing == 0  # no gap
    assert_same_bars(got, source_bars("BTCUSDT", "2025-06-01", "2025-06-05"))


# ---------------------------------------------------------------------------------------------------------------
# trades
# ---------------------------------------------------------------------------------------------------------------
def recorded_agg_trades() -> pd.DataFrame:
    table = load_agg_trades()["XRPETH"]
    return pd.DataFrame({
        "ts": pd.to_datetime(table.times * 1_000_000, utc=True).astype("datetime64[ns, UTC]"),
        "trade_id": table.ids.astype(str),
        "price": np.array(table.prices, dtype=np.float64),
        "amount": np.array(table.qtys, dtype=np.float64),
        "side": np.where(table.buyer_maker, "sell", "buy"),  # buyer is maker: the taker sold
    })


def test_trades_ingest_equals_the_recording_with_resume(fake_binance: FakeBinance, duck: DuckDBStore) -> None:
    ex = make_ccxt_exchange(fake_binance.base_url)
    fake_binance.fail_next(1, 429, retry_after=0, path="/api/v3/aggTrades")
    first = ingest_trades(ex, "XRP/ETH", duck, since="2019-10-11", until="2019-10-12 12:00", retry=FAST)
    assert first.retries == 1 and first.series[0].rejected == 0 and first.series[0].id_gaps == 0
    fake_binance.reset_log()
    second = ingest_trades(ex, "XRP/ETH", duck, since="2019-10-11", retry=FAST)
    agg = [r for r in fake_binance.requests if r.path == "/api/v3/aggTrades"]
    resumed_after = second.series[0].resumed_after
    assert resumed_after is not None
    # the resumed run pages by id right after the last stored trade (one time-window request for the part
    # before the first stored trade, which holds nothing new)
    from_ids = [int(r.params["fromId"]) for r in agg if "fromId" in r.params]
    assert from_ids[0] == int(resumed_after) + 1 and from_ids == sorted(from_ids)
    assert second.series[0].id_gaps == 0

    got = duck.query("SELECT ts, trade_id, price, amount, side FROM ticks WHERE symbol = ? ORDER BY ts, trade_id",
                     ["XRP/ETH"])
    got["ts"] = pd.to_datetime(got["ts"], utc=True).astype("datetime64[ns, UTC]")
    expected = recorded_agg_trades()
    assert first.written + second.written == len(expected) == len(got)  # no duplicate write
    ids = got["trade_id"].astype(np.int64).to_numpy()
    assert (np.diff(np.sort(ids)) == 1).all()  # contiguous ids, no duplicates
    got = got.sort_values("trade_id", key=lambda s: s.astype(np.int64)).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["ts", "trade_id", "price", "amount", "side"]], expected, check_exact=True,
                                  check_dtype=False)
    # a third run finds nothing new and writes nothing
    third = ingest_trades(ex, "XRP/ETH", duck, since="2019-10-11", retry=FAST)
    assert third.written == 0


def test_trades_progress_and_bounds(fake_binance: FakeBinance, duck: DuckDBStore) -> None:
    ex = make_ccxt_exchange(fake_binance.base_url)
    calls: list[tuple[int, int]] = []
    report = ingest_trades(ex, ["XRP/ETH"], duck, since="2019-10-11 06:00", until="2019-10-11 09:00",
                           progress=lambda d, t: calls.append((d, t)), page_limit=200)
    expected = recorded_agg_trades()
    window = expected[(expected["ts"] >= utc("2019-10-11 06:00")) & (expected["ts"] < utc("2019-10-11 09:00"))]
    assert report.series[0].stored == len(window) == report.written
    assert report.series[0].first == window["ts"].iloc[0] and report.series[0].last == window["ts"].iloc[-1]
    assert calls[0] == (0, 3 * 3_600_000) and calls[-1] == (3 * 3_600_000, 3 * 3_600_000)


def test_bad_records_from_the_exchange_are_quarantined_and_reported(fake_binance: FakeBinance,
                                                                    duck: DuckDBStore) -> None:
    ex = make_ccxt_exchange(fake_binance.base_url)
    fake_binance.corrupt_next("/api/v3/klines", "negative_price", index=3)  # a corrupted copy of a real bar
    report = ingest_ohlcv(ex, "BTC/USDT", "1m", duck, since="2025-08-01", until="2025-08-01 06:00")
    series = report.series[0]
    assert series.rejected == 1 and series.written == 359 and series.missing == 1
    assert series.gaps["gap_start"].tolist() == [utc("2025-08-01 00:03")]
    fake_binance.corrupt_next("/api/v3/aggTrades", "zero_qty", index=3)
    trades = ingest_trades(ex, "XRP/ETH", duck, since="2019-10-11", until="2019-10-11 06:00").series[0]
    assert trades.rejected == 1 and trades.id_gaps == 1 and "13519810" in trades.rejected_examples[0]
    # ccxt itself cannot parse a "NaN" trade price: a clear error, the pages before it stay stored
    fake_binance.corrupt_next("/api/v3/aggTrades", "nan_price", index=0)
    with pytest.raises(ExchangeRequestError, match="malformed response"):
        ingest_trades(ex, "XRP/ETH", duck, since="2019-10-11", until="2019-10-11 12:00")
    assert int(duck.query("SELECT count(*) AS n FROM ticks")["n"].iloc[0]) == trades.written


# ---------------------------------------------------------------------------------------------------------------
# the fake's WebSocket replay through ccxt.pro (the live ingest has its own tests)
# ---------------------------------------------------------------------------------------------------------------
def test_fake_ws_replays_recorded_trades_with_faults(fake_binance: FakeBinance) -> None:
    fake_binance.ws.speed = 20.0  # 20x the recorded pace (as fast as possible can outrun ccxt's trade cache)
    fake_binance.ws.drop_after = [120]
    fake_binance.ws.duplicate = {10}
    fake_binance.ws.swap = {20}

    async def collect() -> tuple[list[int], int]:
        ex = make_ccxt_exchange(fake_binance.base_url, fake_binance.ws_url, pro=True,
                                options={"tradesLimit": 10_000})
        ids: list[int] = []
        errors = 0
        try:
            while len(ids) < 300:
                try:
                    trades = await asyncio.wait_for(ex.watch_trades("BTC/USDT"), 10)
                except ccxt.NetworkError:
                    errors += 1
                    continue
                ids += [int(t["id"]) for t in trades]
        finally:
            await ex.close()
        return ids, errors

    ids, errors = asyncio.run(collect())
    first = 3735683259
    # ccxt reports the drop to a pending watch (NetworkError) or, with none pending, just reconnects
    assert errors <= 1 and fake_binance.ws_connections == 2
    assert ids[:10] == list(range(first, first + 10)) and ids[10] == ids[11] == first + 10  # duplicated
    assert ids[21:23] == [first + 21, first + 20]  # out of order
    assert sorted(set(ids)) == list(range(first, first + len(set(ids))))  # the reconnect lost nothing
