"""Equities are not crypto: venues with exchange calendars, session-only gaps, session filtering, per-session returns.

Real data: SPY 1m bars with extended hours (data/SPY_1min_2024-02-20_2024-05-17.csv.gz, 63 NYSE sessions, New York
times with offsets) and AAPL daily bars (data/AAPL_data.csv). Sessions, holidays and early closes are checked
against exchange_calendars directly (not through btlab), and metrics against empyrical-reloaded.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import empyrical
import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import btlab
from btlab.backtest.metrics import daily_returns
from btlab.cli.main import app
from btlab.errors import InvalidArgumentError
from btlab.marketdata.quality.coverage import coverage
from btlab.marketdata.sources.files.importer import import_bars
from btlab.marketdata.sources.files.reader import read_bars_file
from btlab.marketdata.quality.gaps import find_gaps
from btlab.model.instrument import Calendar, Instrument
from btlab.model.sessions import filter_session, session_labels, session_windows
from btlab.model.venue import crypto_exchange_ids, resolve_venue
from btlab.store.duckdb import DuckDBStore
from realdata import AAPL_1D, BTC_1H, DATA
from cliproc import btlab_cli

SPY_1M = DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz"
NY = "America/New_York"
with warnings.catch_warnings():  # exchange_calendars' own pandas deprecation notices
    warnings.simplefilter("ignore", DeprecationWarning)
    XNYS = xc.get_calendar("XNYS")
    xc.get_calendar("XLON")
SPY_SESSIONS = XNYS.sessions_in_range("2024-02-20", "2024-05-17")  # the library's own answer: 63 sessions
AAPL_SESSIONS = XNYS.sessions_in_range("2013-02-08", "2018-02-07")
runner = CliRunner()


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def spy() -> pd.DataFrame:
    return read_bars_file(SPY_1M, timeframe="1m")


@pytest.fixture(scope="module")
def aapl_ts() -> pd.Series:
    return pd.to_datetime(pd.read_csv(AAPL_1D)["date"], utc=True).astype("datetime64[ns, UTC]")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("equities") / "eq.duckdb"
    with DuckDBStore(path) as st:
        import_bars(SPY_1M, st, exchange="nyse", symbol="SPY", timeframe="1m")
        import_bars(AAPL_1D, st, exchange="nasdaq", symbol="AAPL", timeframe="1d")
        import_bars(AAPL_1D, st, exchange="kaggle", symbol="AAPL", timeframe="1d", calendar="XNYS")
        import_bars(BTC_1H, st, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    return path


@pytest.fixture(scope="module")
def store(store_path: Path):
    with DuckDBStore(store_path) as st:
        yield st


# ---------------------------------------------------------------------------------------------------------------
# 1. venues and calendars
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exchange", "calendar", "periods"),
    [("binance", "24/7", 365), ("kraken", "24/7", 365), ("cryptocompare:coinbase", "24/7", 365),
     ("XNYS", "XNYS", 252), ("nyse", "XNYS", 252), ("nasdaq", "XNYS", 252), ("XNAS", "XNYS", 252),
     ("ARCX", "XNYS", 252), ("arca", "XNYS", 252), ("XLON", "XLON", 252), ("lse", "XLON", 252)],
)
def test_venues_resolve_to_their_calendar(exchange: str, calendar: str, periods: int) -> None:
    venue = resolve_venue(exchange)
    assert (venue.name, venue.calendar, venue.periods_per_year) == (exchange, calendar, periods)
    assert Instrument(exchange, "X").calendar is (Calendar.crypto if periods == 365 else Calendar.equity)
    if calendar != "24/7":
        assert calendar in xc.get_calendar_names()  # a real exchange_calendars code


def test_crypto_venues_are_every_ccxt_id_without_importing_ccxt() -> None:
    import ccxt

    assert crypto_exchange_ids() == frozenset(ccxt.exchanges)
    code = ("import sys; from btlab.model.venue import resolve_venue; "
            "assert resolve_venue('okx').is_24_7; assert 'ccxt' not in sys.modules, 'ccxt imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_exchange_is_refused_unless_its_calendar_is_named() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        resolve_venue("moon")
    message = str(err.value)
    assert "\n" not in message and "unknown exchange 'moon'" in message
    for kind in ("ccxt exchange id", "XNYS/nyse", "XNAS/nasdaq", "--calendar 24/7"):
        assert kind in message
    with pytest.raises(InvalidArgumentError, match="unknown exchange 'moon'"):
        Instrument("moon", "X").calendar  # noqa: B018
    assert resolve_venue("mybroker", "XNYS").calendar == "XNYS"  # how a user adds a venue of their own
    assert resolve_venue("mybroker", "24/7").periods_per_year == 365
    assert resolve_venue("mybroker", "equity").calendar == "XNYS"
    assert Instrument("mybroker", "X", venue_calendar="lse").venue.calendar == "XLON"
    with pytest.raises(InvalidArgumentError, match="unknown calendar 'moon': use 24/7"):
        resolve_venue("binance", "moon")


def test_calendar_moon_is_a_one_line_error_listing_the_choices(tmp_path: Path) -> None:
    proc = btlab_cli("backtest", "--calendar", "moon", "--store", str(tmp_path / "c.duckdb"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = one_line(proc.stderr)
    assert "unknown calendar 'moon'" in line
    for choice in ("24/7", "crypto", "equity", "XNYS", "XNAS", "XLON"):
        assert choice in line


def test_backtest_refuses_an_unknown_exchange(tmp_path: Path) -> None:
    res = runner.invoke(app, ["backtest", "--exchange", "moon", "--store", str(tmp_path / "c.duckdb")],
                        env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "unknown exchange 'moon'" in " ".join(res.output.split())


# ---------------------------------------------------------------------------------------------------------------
# 2. gaps count session time only
# ---------------------------------------------------------------------------------------------------------------
def _missing_minutes(ts: pd.Series, first: str, last: str) -> set[int]:
    """Missing minutes of each XNYS session between local times first..last, from the library and pandas alone."""
    present = set(pd.DatetimeIndex(ts).as_unit("ns").asi8)
    out: set[int] = set()
    for day in SPY_SESSIONS:
        local = pd.date_range(day + pd.Timedelta(f"{first}:00"), day + pd.Timedelta(f"{last}:00"), freq="1min",
                              inclusive="left")
        out |= {t for t in local.tz_localize(NY).tz_convert("UTC").as_unit("ns").asi8 if t not in present}
    return out


def test_spy_gaps_count_only_session_minutes(spy: pd.DataFrame) -> None:
    ts = spy["ts"]
    assert find_gaps(ts, "1m")["missing_bars"].sum() == 76_460  # 24/7 (the default, unchanged): nights, weekends
    assert find_gaps(ts, "1m", calendar="XNYS").empty  # every regular-session minute of the 63 sessions is there
    assert not _missing_minutes(ts, "09:30", "16:00")
    ext = find_gaps(ts, "1m", calendar="nyse", session="extended")
    expected = _missing_minutes(ts, "04:00", "20:00")  # pre-market and after-hours minutes without a trade
    assert ext["missing_bars"].sum() == len(expected) == 10_762
    got = set()
    for g in ext.itertuples():  # every listed gap is a run of missing minutes inside the extended sessions
        run = pd.date_range(g.gap_start, g.gap_end, freq="1min").as_unit("ns").asi8
        inside = [t for t in run if t in expected]
        assert inside[0] == run[0] and inside[-1] == run[-1] and len(inside) == g.missing_bars
        got |= set(inside)
    assert got == expected


def test_aapl_daily_gaps_skip_weekends_and_holidays(aapl_ts: pd.Series) -> None:
    assert len(aapl_ts) == len(AAPL_SESSIONS) == 1_259
    assert find_gaps(aapl_ts, "1d")["missing_bars"].sum() == 567  # 24/7: weekends and holidays
    assert find_gaps(aapl_ts, "1d", calendar="XNYS").empty
    # drop the real bars around Good Friday 2013-03-29 (a holiday): one run of 2 missing sessions, not 5 days
    holed = aapl_ts[~aapl_ts.isin(pd.to_datetime(["2013-03-28", "2013-04-01"], utc=True))]
    gaps = find_gaps(holed, "1d", calendar="XNYS")
    assert gaps.to_dict("records") == [{"gap_start": pd.Timestamp("2013-03-28", tz="UTC"),
                                        "gap_end": pd.Timestamp("2013-04-01", tz="UTC"), "missing_bars": 2}]
    assert find_gaps(holed, "1d")["missing_bars"].sum() == 567 + 2


def test_holidays_and_early_closes_come_from_the_calendar(spy: pd.DataFrame) -> None:
    w = session_windows("XNYS", "2024-07-02", "2024-07-05")
    assert w["session"].dt.strftime("%Y-%m-%d").tolist() == ["2024-07-02", "2024-07-03", "2024-07-05"]  # 4th: holiday
    early = w.iloc[1]
    assert (early["open"], early["close"]) == (XNYS.session_open("2024-07-03"), XNYS.session_close("2024-07-03"))
    assert early["close"].tz_convert(NY).strftime("%H:%M") == "13:00"
    ext = session_windows("XNYS", "2024-07-03", "2024-07-03", "extended").iloc[0]
    assert (ext["open"].tz_convert(NY).strftime("%H:%M"), ext["close"].tz_convert(NY).strftime("%H:%M")) == \
        ("04:00", "17:00")
    # Good Friday 2024-03-29 inside the SPY data: no session, no bar, and no gap across it
    ny_dates = set(spy["ts"].dt.tz_convert(NY).dt.date.astype(str))
    assert "2024-03-29" not in ny_dates and pd.Timestamp("2024-03-29") not in SPY_SESSIONS
    assert len(ny_dates) == len(SPY_SESSIONS) == 63


def test_import_spy_with_new_york_offsets(tmp_path: Path) -> None:
    store = tmp_path / "spy.duckdb"
    res = runner.invoke(app, ["data", "import", str(SPY_1M), "--exchange", "XNYS", "--symbol", "SPY", "--timeframe",
                              "1m", "--store", str(store)], env={"COLUMNS": "300"}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "49,720 1m bars for XNYS:SPY" in out and "no gaps in XNYS regular sessions" in out
    assert "25,150 bars outside them" in out
    with DuckDBStore(store) as st:
        bars = st.read_bars(exchange="XNYS", symbol="SPY", timeframe="1m")
    raw = pd.read_csv(SPY_1M)
    at = dict(zip(raw["datetime"], bars["ts"], strict=True))
    assert at["2024-02-20 04:00:00-05:00"] == pd.Timestamp("2024-02-20 09:00", tz="UTC")
    assert at["2024-03-08 09:30:00-05:00"] == pd.Timestamp("2024-03-08 14:30", tz="UTC")  # before the DST change
    assert at["2024-03-11 09:30:00-04:00"] == pd.Timestamp("2024-03-11 13:30", tz="UTC")  # after it
    opens = pd.DatetimeIndex([XNYS.session_open(s) for s in SPY_SESSIONS])
    assert opens.isin(bars["ts"]).all()  # every session's 09:30 New York bar, as the right UTC instant


def test_coverage_counts_each_series_in_its_venue_calendar(store: DuckDBStore) -> None:
    for method in ("sql", "scan"):
        cov = coverage(store, method=method).set_index(["exchange", "symbol", "timeframe"])
        assert cov.loc[("nyse", "SPY", "1m"), ["missing_bars", "calendar"]].tolist() == [0, "XNYS"]
        assert cov.loc[("nasdaq", "AAPL", "1d"), ["missing_bars", "calendar"]].tolist() == [0, "XNYS"]
        assert cov.loc[("kaggle", "AAPL", "1d"), ["missing_bars", "calendar"]].tolist() == [567, "unknown (24/7)"]
        assert cov.loc[("binance", "BTC/USDT", "1h"), ["missing_bars", "calendar"]].tolist() == [128, "24/7"]
    ext = coverage(store, exchange="nyse", session="extended").iloc[0]
    assert ext["missing_bars"] == 10_762
    assert coverage(store, exchange="kaggle", calendar="XNYS").iloc[0]["missing_bars"] == 0


# ---------------------------------------------------------------------------------------------------------------
# 3. --session regular|extended
# ---------------------------------------------------------------------------------------------------------------
def test_filter_session_keeps_the_session_bars(spy: pd.DataFrame, aapl_ts: pd.Series) -> None:
    regular = filter_session(spy, "XNYS", "regular", "1m")
    local = regular["ts"].dt.tz_convert(NY)
    assert len(regular) == 63 * 390 == 24_570
    assert local.dt.strftime("%H:%M").between("09:30", "15:59").all()
    assert local.dt.date.value_counts().eq(390).all()
    extended = filter_session(spy, "nyse", "extended", "1m")
    dropped = spy[~spy["ts"].isin(extended["ts"])]
    assert len(extended) == 49_718  # only the two late prints opening at 20:00 New York fall outside 04:00-20:00
    assert dropped["ts"].dt.tz_convert(NY).dt.strftime("%H:%M").tolist() == ["20:00", "20:00"]
    assert filter_session(spy, "24/7", None, "1m").equals(spy)
    daily = pd.DataFrame({"ts": aapl_ts})
    assert len(filter_session(daily, "XNYS", "regular", "1d")) == 1_259  # a daily bar is its session
    with pytest.raises(InvalidArgumentError, match="does not apply to a 24/7 venue"):
        filter_session(spy, resolve_venue("binance"), "regular", "1m")
    with pytest.raises(InvalidArgumentError, match="no extended hours are known for calendar XLON"):
        filter_session(spy, "XLON", "extended", "1m")


def test_run_backtest_session(store: DuckDBStore) -> None:
    regular = btlab.run_backtest("buy_hold", exchange="nyse", symbol="SPY", timeframe="1m", store=store, record=False)
    assert len(regular.bars) == len(regular.equity) == 24_570 and regular.config.session == "regular"
    assert regular.config.venue_calendar == "XNYS" and regular.summary.periods_per_year == 252
    extended = btlab.run_backtest("buy_hold", exchange="nyse", symbol="SPY", timeframe="1m", store=store,
                                  record=False, session="extended")
    assert len(extended.bars) == 49_718 and extended.config.session == "extended"
    with pytest.raises(InvalidArgumentError, match="does not apply to a 24/7 venue"):
        btlab.run_backtest("buy_hold", store=store, record=False, session="regular")
    with pytest.raises(InvalidArgumentError, match="unknown session 'night'"):
        btlab.run_backtest("buy_hold", exchange="nyse", symbol="SPY", timeframe="1m", store=store, session="night")


def test_cli_session_option(store_path: Path) -> None:
    res = runner.invoke(app, ["backtest", "--strategy", "buy_hold", "--exchange", "nyse", "--symbol", "SPY",
                              "--timeframe", "1m", "--session", "extended", "--no-report", "--store", str(store_path)],
                        env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "49,718" in res.output and "annualization 252" in " ".join(res.output.split())
    assert "per exchange session" in " ".join(res.output.split())
    res = runner.invoke(app, ["backtest", "--session", "regular", "--store", str(store_path)], env={"COLUMNS": "300"})
    assert res.exit_code == 1 and "does not apply to a 24/7 venue" in " ".join(res.output.split())


# ---------------------------------------------------------------------------------------------------------------
# 4. returns per session close
# ---------------------------------------------------------------------------------------------------------------
def _session_returns(equity: pd.Series, cash: float) -> pd.Series:
    """Independent of btlab: last value per New York date, starting cash as the close before the first day."""
    closes = equity.groupby(equity.index.tz_convert(NY).date).last()
    return pd.concat([pd.Series([cash]), pd.Series(closes.to_numpy())]).pct_change().dropna().reset_index(drop=True)


def test_spy_extended_hours_give_one_return_per_session(store: DuckDBStore) -> None:
    result = btlab.run_backtest("buy_hold", exchange="nyse", symbol="SPY", timeframe="1m", store=store,
                                record=False, session="extended")
    value = result.equity["value"]
    assert len(daily_returns(value, result.config.cash)) == 66  # UTC days: after-hours bars make Saturday "days"
    ours = daily_returns(value, result.config.cash, "XNYS")
    assert result.summary.n_days == len(ours) == 63
    assert list(ours.index) == [pd.Timestamp(s, tz="UTC") for s in SPY_SESSIONS]
    r = _session_returns(value, result.config.cash)
    np.testing.assert_allclose(ours.to_numpy(), r.to_numpy(), rtol=1e-12)
    m = result.summary
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(r, annualization=252), rel=1e-12)
    assert m.sortino == pytest.approx(empyrical.sortino_ratio(r, annualization=252), rel=1e-12)
    assert m.volatility == pytest.approx(empyrical.annual_volatility(r, annualization=252), rel=1e-12)
    assert m.cagr == pytest.approx(empyrical.annual_return(r, annualization=252), rel=1e-12)


def test_spy_benchmark_statistics_use_the_same_sessions(store: DuckDBStore) -> None:
    """The benchmark statistics and the report's yearly table cut returns at session closes too (63, not 66)."""
    from btlab.backtest.metrics import benchmark_equity, yearly_returns

    result = btlab.run_backtest("buy_hold", exchange="nyse", symbol="SPY", timeframe="1m", store=store,
                                record=False, session="extended")
    value, cash = result.equity["value"], result.config.cash
    bench = benchmark_equity({"SPY": result.bars}, cash, index=value.index)
    r = daily_returns(value, cash, "XNYS")
    b = daily_returns(bench, cash, "XNYS")
    assert len(b) == 63
    m = result.summary
    assert m.beta == pytest.approx(empyrical.beta(r, b), rel=1e-9)
    assert m.alpha == pytest.approx(empyrical.alpha(r, b, annualization=252), rel=1e-9, abs=1e-12)
    assert m.benchmark_sharpe == pytest.approx(empyrical.sharpe_ratio(b, annualization=252), rel=1e-9)
    yearly = yearly_returns(value, cash, bench, "XNYS")
    assert yearly.loc[2024, "strategy"] == pytest.approx(float((1 + r).prod() - 1), rel=1e-12)


def test_aapl_daily_metrics_match_empyrical_with_252(store: DuckDBStore) -> None:
    result = btlab.run_backtest("sma_cross", exchange="nasdaq", symbol="AAPL", timeframe="1d", store=store,
                                record=False, params={"fast": 20, "slow": 50})
    value = result.equity["value"]
    ours = daily_returns(value, result.config.cash, "XNYS")
    assert list(ours.index) == [pd.Timestamp(s, tz="UTC") for s in AAPL_SESSIONS]  # dated bars keep their date
    r = pd.concat([pd.Series([result.config.cash]), pd.Series(value.to_numpy())]).pct_change().dropna()
    m = result.summary
    assert (m.calendar, m.periods_per_year, m.n_days) == ("equity", 252, 1_259)
    for ours_value, theirs in ((m.sharpe, empyrical.sharpe_ratio(r, annualization=252)),
                               (m.sortino, empyrical.sortino_ratio(r, annualization=252)),
                               (m.volatility, empyrical.annual_volatility(r, annualization=252)),
                               (m.cagr, empyrical.annual_return(r, annualization=252)),
                               (m.calmar, empyrical.calmar_ratio(r, annualization=252))):
        assert ours_value == pytest.approx(theirs, rel=1e-12)


def test_session_labels(spy: pd.DataFrame, aapl_ts: pd.Series) -> None:
    labels = session_labels(spy["ts"], "XNYS")
    assert labels.nunique() == 63
    assert (labels.strftime("%Y-%m-%d") == spy["ts"].dt.tz_convert(NY).dt.strftime("%Y-%m-%d")).all()
    assert session_labels(aapl_ts, "XNYS").equals(pd.DatetimeIndex(aapl_ts))  # dated: midnight UTC keeps its date
    assert session_labels(spy["ts"], "24/7").nunique() == 66


# ---------------------------------------------------------------------------------------------------------------
# 5. no silent exchange default for files
# ---------------------------------------------------------------------------------------------------------------
def test_import_without_exchange_is_refused_before_any_work(tmp_path: Path) -> None:
    store = tmp_path / "none.duckdb"
    proc = btlab_cli("data", "import", str(AAPL_1D), "--symbol", "AAPL", "--timeframe", "1d", "--store", str(store))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = one_line(proc.stderr)
    assert str(AAPL_1D) in line and "no exchange given" in line and "--exchange" in line
    assert not store.exists()  # nothing written, no store created
    res = runner.invoke(app, ["data", "import", str(AAPL_1D), "--exchange", "nasdaqq", "--symbol", "AAPL",
                              "--timeframe", "1d", "--store", str(store)], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "unknown exchange 'nasdaqq'" in res.output and not store.exists()
    with pytest.raises(InvalidArgumentError, match="no exchange given"):
        with DuckDBStore(tmp_path / "api.duckdb") as st:
            import_bars(AAPL_1D, st, symbol="AAPL", timeframe="1d")


def test_import_infers_binance_from_a_binance_vision_name(tmp_path: Path) -> None:
    h1 = pd.read_feather(BTC_1H).set_index("date").loc["2024-03-01":"2024-03-31 23:00"].reset_index()
    open_ms = pd.DatetimeIndex(h1["date"]).as_unit("ms").asi8
    klines = pd.DataFrame({"open_time": open_ms, **{c: h1[c].to_numpy() for c in
                                                   ("open", "high", "low", "close", "volume")},
                           "close_time": open_ms + 3_599_999, "quote_volume": "", "count": "",
                           "taker_buy_volume": "", "taker_buy_quote_volume": "", "ignore": 0})
    path = tmp_path / "BTCUSDT-1h-2024-03.csv"  # data.binance.vision layout and name, no header
    path.write_text(klines.to_csv(index=False, header=False, lineterminator="\n"))
    store = tmp_path / "v.duckdb"
    res = runner.invoke(app, ["data", "import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", "--store",
                              str(store)], env={"COLUMNS": "400"}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "744 1h bars for binance:BTC/USDT (exchange binance assumed from the data.binance.vision file name)" in out
    with DuckDBStore(store) as st:
        stored = st.read_bars(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert np.array_equal(stored["close"].to_numpy(), h1["close"].to_numpy())
