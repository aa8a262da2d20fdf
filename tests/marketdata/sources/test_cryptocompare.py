"""CryptoCompare client and ingest against a local fake API serving SAVED REAL responses (data/cryptocompare/).

The fake (tests/fakes/cryptocompare.py) slices the saved responses by ``toTs``/``limit`` as the API does
(``limit + 1`` rows ending at the bar containing ``toTs``; all-zero padding rows before the saved history) and
injects faults (429, rate-limit bodies, error bodies, 5xx, non-JSON, slow answers). The client is real httpx over
a real socket: nothing is mocked.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.cryptocompare import FakeCryptoCompare

from btlab.errors import BtlabError, DataValidationError, InvalidArgumentError
from btlab.marketdata.sources.cryptocompare.client import (
    CryptoCompareClient,
    CryptoCompareError,
    CryptoCompareRateLimitError,
    CryptoCompareUnavailableError,
)
from btlab.marketdata.sources.cryptocompare.history import ingest_cryptocompare, series_exchange
from btlab.marketdata.sources.cryptocompare.schemas import histo_to_bars
from btlab.marketdata.sources.report import IngestReport, SeriesReport
from btlab.marketdata.quality.gaps import find_gaps
from btlab.model.bar import BAR_COLUMNS
from btlab.store.duckdb import DuckDBStore
from realdata import DATA as REPO_DATA

DATA = REPO_DATA / "cryptocompare"
DAY_FILE = DATA / "histoday_BTC-USD_2015-05-04_2020-10-24.json"
MINUTE_FILE = DATA / "histominute_2024-12-10_2024-12-11.json"
KEY = "cc-test-key-6f1d2a9e"
DAY = 86_400
MINUTE = 60
# the saved minute response does not name its coin; the fake serves it under this made-up pair
MINUTE_PAIR = ("COIN", "USD")


def saved_rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["Data"]


def expected_bars(path: Path) -> pd.DataFrame:
    """The saved response as btlab bars, built independently of btlab: time -> ts, volumefrom -> volume."""
    rows = saved_rows(path)
    out = pd.DataFrame({"ts": pd.to_datetime([r["time"] for r in rows], unit="s", utc=True)})
    out["ts"] = out["ts"].astype("datetime64[ns, UTC]")
    for col in ("open", "high", "low", "close"):
        out[col] = np.array([float(r[col]) for r in rows])
    out["volume"] = np.array([float(r["volumefrom"]) for r in rows])
    out["trades"] = pd.array([pd.NA] * len(rows), dtype="Int64")
    out["vwap"] = np.nan  # not in the source
    return out


DAY_ROWS = saved_rows(DAY_FILE)
FIRST_DAY, LAST_DAY = DAY_ROWS[0]["time"], DAY_ROWS[-1]["time"]
MINUTE_ROWS = saved_rows(MINUTE_FILE)
FIRST_MIN, LAST_MIN = MINUTE_ROWS[0]["time"], MINUTE_ROWS[-1]["time"]


def ts(sec: int) -> pd.Timestamp:
    return pd.Timestamp(sec, unit="s", tz="UTC")


@pytest.fixture(scope="module")
def fake():
    with FakeCryptoCompare(api_key=KEY) as server:
        server.add_saved("/data/histoday", "BTC", "USD", DAY_FILE)
        server.add_saved("/data/histoday", "BTC", "USD", DAY_FILE, exchange="Coinbase")
        server.add_saved("/data/histominute", *MINUTE_PAIR, MINUTE_FILE)
        yield server


@pytest.fixture
def cc(fake: FakeCryptoCompare):
    fake.clear()
    with CryptoCompareClient(api_key=KEY, base_url=fake.url, timeout=2.0, backoff=0.001, max_retries=3) as client:
        yield client
    fake.clear()


@pytest.fixture
def db(tmp_path: Path):
    with DuckDBStore(tmp_path / "cc.duckdb") as store:
        yield store


def stored(store, symbol: str = "BTC/USD", timeframe: str = "1d", exchange: str = "cryptocompare") -> pd.DataFrame:
    return store.read_bars(exchange=exchange, symbol=symbol, timeframe=timeframe)


def windows(fake: FakeCryptoCompare, step: int) -> list[tuple[int, int]]:
    """The [first, last] bar times each recorded history request asked for (limit + 1 rows ending at toTs)."""
    out = []
    for r in fake.requests:
        to = int(r.query["toTs"]) // step * step
        out.append((to - int(r.query["limit"]) * step, to))
    return out


# ---------------------------------------------------------------------------------------------------------------
# the fake slices like the API, and the client reads it
# ---------------------------------------------------------------------------------------------------------------
def test_histo_full_page_is_the_saved_response(cc: CryptoCompareClient) -> None:
    assert cc.histo("BTC", "USD", "1d", to_ts=LAST_DAY, limit=2000) == DAY_ROWS
    assert cc.histo("btc", "usd", "1d", limit=30) == DAY_ROWS[-31:]  # no toTs: the saved "now"


def test_histo_slicing(cc: CryptoCompareClient) -> None:
    t = DAY_ROWS[700]["time"]
    assert cc.histo("BTC", "USD", "1d", to_ts=t, limit=10) == DAY_ROWS[690:701]
    assert cc.histo("BTC", "USD", "1d", to_ts=t + 3_600, limit=10) == DAY_ROWS[690:701]  # inside the bar of t
    assert cc.histo("BTC", "USD", "1d", to_ts=ts(t), limit=1) == DAY_ROWS[699:701]  # a Timestamp works too
    before = cc.histo("BTC", "USD", "1d", to_ts=FIRST_DAY + 2 * DAY, limit=5)
    assert [r["time"] for r in before] == [FIRST_DAY + k * DAY for k in range(-3, 3)]
    assert all(r[c] == 0 for r in before[:3] for c in ("open", "high", "low", "close", "volumefrom", "volumeto"))
    assert before[3:] == DAY_ROWS[:3]


def test_histo_to_bars_maps_and_drops_padding(cc: CryptoCompareClient) -> None:
    rows = cc.histo("BTC", "USD", "1d", to_ts=FIRST_DAY + 9 * DAY, limit=19)
    bars, padding, converted = histo_to_bars(rows)
    assert (padding, converted) == (10, 0)
    pd.testing.assert_frame_equal(
        bars, expected_bars(DAY_FILE).drop(columns="vwap").iloc[:10].reset_index(drop=True), check_exact=True
    )
    assert list(bars.columns) == [c for c in BAR_COLUMNS if c != "vwap"]  # CryptoCompare gives no VWAP here


# ---------------------------------------------------------------------------------------------------------------
# ingest
# ---------------------------------------------------------------------------------------------------------------
def test_ingest_matches_saved_daily_exactly(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    reports = ingest_cryptocompare(["BTC/USD"], "1d", db, since=ts(FIRST_DAY), client=cc, now=ts(LAST_DAY + DAY))
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE), check_exact=True)
    (report,) = reports
    assert isinstance(reports, IngestReport) and isinstance(report, SeriesReport)
    assert (report.exchange, report.symbol, report.timeframe) == ("cryptocompare", "BTC/USD", "1d")
    assert (report.written, report.stored, report.missing, report.padding, report.requests) == (2001, 2001, 0, 0, 1)
    assert (report.first, report.last) == (ts(FIRST_DAY), ts(LAST_DAY))
    assert report.gaps.empty
    assert db.query("SELECT DISTINCT source FROM ohlcv")["source"].tolist() == ["cryptocompare"]


def test_ingest_minute_data_exactly(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    symbol = "/".join(MINUTE_PAIR)
    (report,) = ingest_cryptocompare(symbol, "1m", db, since=ts(FIRST_MIN), until=ts(LAST_MIN + MINUTE),
                                     client=cc, now=ts(LAST_MIN + 5 * MINUTE), limit=700)
    pd.testing.assert_frame_equal(stored(db, symbol, "1m"), expected_bars(MINUTE_FILE), check_exact=True)
    assert (report.written, report.missing, report.requests) == (2001, 0, 3)
    # the saved response holds one row CryptoCompare derived via BTC: stored as sent, and counted
    assert report.converted == sum(r["conversionType"] not in ("direct", "force_direct") for r in MINUTE_ROWS) == 1


def test_paging_backwards_tiles_the_range(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), client=cc,
                                     now=ts(LAST_DAY + DAY), limit=300)
    got = windows(fake, DAY)
    assert got[0][1] == LAST_DAY  # starts at the newest closed bar
    assert [w[1] for w in got] == sorted((w[1] for w in got), reverse=True)  # strictly backwards
    for newer, older in zip(got[:-1], got[1:], strict=True):
        assert older[1] == newer[0] - DAY  # no gap, no overlap between pages
    assert got[-1][0] == FIRST_DAY
    assert sum(hi - lo for lo, hi in got) // DAY + len(got) == 2001
    assert report.requests == len(got) == 7  # ceil(2001 / 301)
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE), check_exact=True)
    assert int(db.query("SELECT count(*) AS n FROM ohlcv")["n"].iloc[0]) == 2001


def test_open_bar_is_never_stored(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    # 12:00 on the last saved day: that day's bar is still open (as when the response was saved)
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), client=cc,
                                     now=ts(LAST_DAY + DAY // 2))
    assert max(int(r.query["toTs"]) for r in fake.requests) == LAST_DAY - DAY
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE).iloc[:-1], check_exact=True)
    assert report.last == ts(LAST_DAY - DAY)
    # an explicit until past now changes nothing
    ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), until=ts(LAST_DAY + 10 * DAY), client=cc,
                         now=ts(LAST_DAY + DAY // 2))
    assert stored(db)["ts"].iloc[-1] == ts(LAST_DAY - DAY)


def test_until_is_exclusive(cc: CryptoCompareClient, db) -> None:
    t = DAY_ROWS[1000]["time"]
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(t - 10 * DAY), until=ts(t), client=cc,
                                     now=ts(LAST_DAY + DAY))
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE).iloc[990:1000].reset_index(drop=True),
                                  check_exact=True)
    assert (report.start, report.end) == (ts(t - 10 * DAY), ts(t))  # bar open times, end exclusive


def test_padding_before_history_is_dropped(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY - 100 * DAY), client=cc,
                                     now=ts(LAST_DAY + DAY), limit=500)
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE), check_exact=True)
    assert report.padding == 100
    assert report.first == ts(FIRST_DAY)


def test_all_padding_page_ends_paging(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    """Asking for 20 years before the history starts stops at the first page that is only padding."""
    progress: list[tuple[int, int]] = []
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY - 7300 * DAY), client=cc,
                                     now=ts(LAST_DAY + DAY), progress=lambda d, t: progress.append((d, t)))
    assert report.requests == 2  # the 2001 real rows, then a page of padding only
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE), check_exact=True)
    assert progress[-1][0] == progress[-1][1] == 9301  # every slot accounted for
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_resume_fills_only_before_first_and_after_last(fake: FakeCryptoCompare, cc: CryptoCompareClient,
                                                       db) -> None:
    mid_lo, mid_hi = FIRST_DAY + 500 * DAY, FIRST_DAY + 1500 * DAY
    ingest_cryptocompare("BTC/USD", "1d", db, since=ts(mid_lo), until=ts(mid_hi), client=cc, now=ts(LAST_DAY + DAY))
    assert len(stored(db)) == 1000
    fake.clear()
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), client=cc, now=ts(LAST_DAY + DAY),
                                     limit=200)
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE), check_exact=True)
    for lo, hi in windows(fake, DAY):  # nothing already stored was asked for again
        assert hi < mid_lo or lo >= mid_hi, (ts(lo), ts(hi))
    assert report.written == 1001
    fake.clear()
    (again,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), client=cc, now=ts(LAST_DAY + DAY))
    assert (again.requests, again.written, again.stored) == (0, 0, 2001)
    assert fake.requests == []


def test_a_range_between_stored_ranges_is_fetched(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    """What is missing is asked of the store for the REQUESTED range: bars stored before and after it do not make
    it look complete (the planner once looked at the whole stored series and fetched nothing here)."""
    mid_lo, mid_hi = FIRST_DAY + 500 * DAY, FIRST_DAY + 1500 * DAY
    for lo, hi in ((FIRST_DAY, mid_lo), (mid_hi, LAST_DAY + DAY)):
        ingest_cryptocompare("BTC/USD", "1d", db, since=ts(lo), until=ts(hi), client=cc, now=ts(LAST_DAY + DAY))
    assert len(stored(db)) == 1001
    fake.clear()
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(mid_lo), until=ts(mid_hi), client=cc,
                                     now=ts(LAST_DAY + DAY))
    assert (report.written, report.stored, report.missing) == (1000, 1000, 0)
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE), check_exact=True)
    for lo, hi in windows(fake, DAY):
        assert mid_lo <= lo and hi < mid_hi, (ts(lo), ts(hi))


@pytest.mark.parametrize("stored_first", [False, True], ids=["fresh_backward", "forward_after_stored"])
def test_killed_run_resumes_without_gap_or_duplicate(fake: FakeCryptoCompare, cc: CryptoCompareClient, db,
                                                     stored_first: bool) -> None:
    now = ts(LAST_DAY + DAY)
    if stored_first:  # older bars stored: the newer ones are paged FORWARDS from the last stored bar
        ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), until=ts(FIRST_DAY + 300 * DAY), client=cc,
                             now=now)
    fake.clear()
    fake.inject("error", after=2, message="simulated crash")
    with pytest.raises(CryptoCompareError, match="simulated crash"):
        ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), client=cc, now=now, limit=250)
    partial = stored(db)
    assert len(partial) == (300 + 2 * 251 if stored_first else 2 * 251)
    assert find_gaps(partial["ts"], "1d").empty  # the stored range grew contiguously: no hole
    ingest_cryptocompare("BTC/USD", "1d", db, since=ts(FIRST_DAY), client=cc, now=now, limit=250)
    pd.testing.assert_frame_equal(stored(db), expected_bars(DAY_FILE), check_exact=True)
    assert int(db.query("SELECT count(*) AS n FROM ohlcv")["n"].iloc[0]) == 2001


def test_exchange_param_and_series_name(fake: FakeCryptoCompare, cc: CryptoCompareClient, db) -> None:
    assert series_exchange(None) == series_exchange("CCCAGG") == "cryptocompare"
    assert series_exchange("Coinbase") == "cryptocompare:coinbase"
    (report,) = ingest_cryptocompare("BTC/USD", "1d", db, since=ts(LAST_DAY - 9 * DAY), exchange="Coinbase",
                                     client=cc, now=ts(LAST_DAY + DAY))
    assert {r.query.get("e") for r in fake.requests} == {"Coinbase"}
    assert report.exchange == "cryptocompare:coinbase"
    assert len(stored(db, exchange="cryptocompare:coinbase")) == 10
    with pytest.raises(CryptoCompareError, match="market does not exist"):
        ingest_cryptocompare("BTC/USD", "1d", db, since=ts(LAST_DAY - 9 * DAY), exchange="Kraken", client=cc,
                             now=ts(LAST_DAY + DAY))


def test_ingest_on_each_backend(fake: FakeCryptoCompare, store, uid: str) -> None:
    fsym = ("T" + uid)[:10].upper()  # a fresh pair per run: a QuestDB server keeps data between runs
    fake.add_saved("/data/histoday", fsym, "USD", DAY_FILE)
    with CryptoCompareClient(api_key=KEY, base_url=fake.url, backoff=0.001) as client:
        ingest_cryptocompare(f"{fsym}/USD", "1d", store, since=ts(FIRST_DAY), client=client, now=ts(LAST_DAY + DAY),
                             limit=900)
        ingest_cryptocompare(f"{fsym}/USD", "1d", store, since=ts(FIRST_DAY), client=client, now=ts(LAST_DAY + DAY))
    pd.testing.assert_frame_equal(stored(store, f"{fsym}/USD"), expected_bars(DAY_FILE), check_exact=True)


# ---------------------------------------------------------------------------------------------------------------
# API key
# ---------------------------------------------------------------------------------------------------------------
def test_api_key_sent_in_header_and_never_logged(fake: FakeCryptoCompare, cc: CryptoCompareClient, db,
                                                 caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    fake.inject("429")
    fake.inject("error", after=1, message="fsym param is invalid")
    ingest_cryptocompare("BTC/USD", "1d", db, since=ts(LAST_DAY - 99 * DAY), client=cc, now=ts(LAST_DAY + DAY))
    with pytest.raises(CryptoCompareError) as info:
        cc.histo("BTC", "USD", "1d", limit=5)
    assert fake.requests and all(r.headers.get("authorization") == f"Apikey {KEY}" for r in fake.requests)
    assert all(KEY not in json.dumps(r.query) for r in fake.requests)  # never in the URL
    assert caplog.records, "the client logs its requests at DEBUG"
    assert KEY not in caplog.text
    assert KEY not in str(info.value) and KEY not in repr(cc)
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "")  # never prints


def test_wrong_or_missing_key_is_the_apis_error(fake: FakeCryptoCompare) -> None:
    for key in ("wrong-key", ""):
        with CryptoCompareClient(api_key=key, base_url=fake.url, backoff=0.001) as client:
            with pytest.raises(CryptoCompareError, match="valid auth key or api key") as info:
                client.histo("BTC", "USD", "1d", limit=2)
        assert not isinstance(info.value, (CryptoCompareRateLimitError, CryptoCompareUnavailableError))


@pytest.mark.parametrize("variable", ["CRYPTOCOMPARE_API_KEY", "BTLAB_CRYPTOCOMPARE_API_KEY"])
def test_key_from_environment(fake: FakeCryptoCompare, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    from btlab.settings import get_settings

    monkeypatch.delenv("CRYPTOCOMPARE_API_KEY", raising=False)
    monkeypatch.delenv("BTLAB_CRYPTOCOMPARE_API_KEY", raising=False)
    monkeypatch.setenv(variable, KEY)
    get_settings.cache_clear()
    try:
        fake.clear()
        with CryptoCompareClient(base_url=fake.url) as client:
            assert client.has_api_key
            assert client.histo("BTC", "USD", "1d", to_ts=LAST_DAY, limit=3) == DAY_ROWS[-4:]
        assert fake.requests[-1].headers["authorization"] == f"Apikey {KEY}"
    finally:
        get_settings.cache_clear()


# ---------------------------------------------------------------------------------------------------------------
# errors and retries
# ---------------------------------------------------------------------------------------------------------------
def test_error_body_is_a_clear_error_not_retried(fake: FakeCryptoCompare, cc: CryptoCompareClient) -> None:
    fake.inject("error", message="toTs param is invalid.")
    with pytest.raises(CryptoCompareError) as info:
        cc.histo("BTC", "USD", "1d", to_ts=LAST_DAY, limit=5)
    err = info.value
    assert isinstance(err, BtlabError)
    assert err.message == "toTs param is invalid."
    assert str(err).startswith("CryptoCompare /data/histoday?fsym=BTC&tsym=USD&limit=5&toTs=")
    assert str(err).endswith(": toTs param is invalid.")
    assert len(fake.requests) == 1
    with pytest.raises(CryptoCompareError, match=r"market does not exist for this coin pair \(NOPE-USD\)"):
        cc.histo("NOPE", "USD", "1d")


@pytest.mark.parametrize("kind", ["429", "ratelimit", "500", "garbage"])
def test_transient_failures_are_retried(fake: FakeCryptoCompare, cc: CryptoCompareClient, kind: str) -> None:
    fake.inject(kind, times=2)
    assert cc.histo("BTC", "USD", "1d", to_ts=LAST_DAY, limit=3) == DAY_ROWS[-4:]
    assert len(fake.requests) == 3


def test_429_retry_after_is_honoured_and_bounded(fake: FakeCryptoCompare, cc: CryptoCompareClient) -> None:
    fake.inject("429", times=1, retry_after=0)
    assert cc.histo("BTC", "USD", "1d", to_ts=LAST_DAY, limit=1) == DAY_ROWS[-2:]
    fake.clear()
    fake.inject("429", times=10)
    with pytest.raises(CryptoCompareRateLimitError, match=r"HTTP 429 .*gave up after 4 attempts"):
        cc.histo("BTC", "USD", "1d", limit=1)
    assert len(fake.requests) == 4  # max_retries = 3
    fake.clear()
    fake.inject("ratelimit", times=10)
    with pytest.raises(CryptoCompareRateLimitError, match="over your rate limit"):
        cc.histo("BTC", "USD", "1d", limit=1)


def test_timeouts_retried_then_clear_error(fake: FakeCryptoCompare) -> None:
    with CryptoCompareClient(api_key=KEY, base_url=fake.url, timeout=0.3, backoff=0.001, max_retries=1) as client:
        fake.clear()
        fake.inject("slow", seconds=1.5)
        assert client.histo("BTC", "USD", "1d", to_ts=LAST_DAY, limit=2) == DAY_ROWS[-3:]
        assert len(fake.requests) == 2
        fake.clear()
        fake.inject("slow", times=2, seconds=1.5)
        with pytest.raises(CryptoCompareUnavailableError, match=r"no answer within 0.3 s \(timeout\).*2 attempts"):
            client.histo("BTC", "USD", "1d", limit=2)
    fake.clear()


def test_network_error_is_unavailable() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with CryptoCompareClient(api_key=KEY, base_url=f"http://127.0.0.1:{port}", backoff=0.001,
                             max_retries=1) as client:
        with pytest.raises(CryptoCompareUnavailableError, match="network error"):
            client.histo("BTC", "USD", "1d")


def test_invalid_arguments(cc: CryptoCompareClient, db) -> None:
    with pytest.raises(InvalidArgumentError, match="no 5m history endpoint"):
        ingest_cryptocompare("BTC/USD", "5m", db, since="2020-01-01", client=cc)
    with pytest.raises(InvalidArgumentError, match="BASE/QUOTE"):
        ingest_cryptocompare("BTCUSD", "1d", db, since="2020-01-01", client=cc)
    with pytest.raises(InvalidArgumentError, match="limit"):
        cc.histo("BTC", "USD", "1d", limit=2001)
    with pytest.raises(InvalidArgumentError, match="until"):
        ingest_cryptocompare("BTC/USD", "1d", db, since="2020-01-02", until="2020-01-01", client=cc)


def test_impossible_row_names_the_request(fake: FakeCryptoCompare, cc: CryptoCompareClient, db,
                                          tmp_path: Path) -> None:
    """A real row made impossible (high below low) fails validation, naming the request; nothing of it is stored."""
    body = json.loads(DAY_FILE.read_text())
    row = body["Data"][-5]
    row["high"], row["low"] = row["low"], row["high"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(body))
    fake.add_saved("/data/histoday", "BAD", "USD", bad)
    with pytest.raises(DataValidationError, match=r"CryptoCompare /data/histoday fsym=BAD tsym=USD toTs=\d+, row 6"):
        ingest_cryptocompare("BAD/USD", "1d", db, since=ts(LAST_DAY - 9 * DAY), client=cc, now=ts(LAST_DAY + DAY))
    assert stored(db, "BAD/USD").empty
