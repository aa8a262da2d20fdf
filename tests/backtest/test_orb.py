"""The bundled opening-range breakout (``orb``) on real SPY 1-minute bars (and real BTC/USDT 1m bars for 24/7 venues).

Everything the strategy should do is recomputed here with pandas from the bars (New York session open 09:30 from
the bars' own New York times, not through btlab's calendars): the opening ranges, that entries come after the
range and on the right side of it, flat by the session end, stops per day, the cool-off.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from realdata import BTC_1M, DATA
from typer.testing import CliRunner

import btlab
from btlab.backtest.vector.engine import run_vector
from btlab.cli.main import app
from btlab.errors import StrategyParameterError
from btlab.marketdata.sources.files.importer import import_bars
from btlab.store.duckdb import DuckDBStore

SPY_1M = DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz"
NY = "America/New_York"
PARAMS = {"range_minutes": 15, "stop_pct": 0.15, "take_profit_pct": 0.6, "max_stops": 2, "cooloff_minutes": 20}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("orb") / "orb.duckdb"
    with DuckDBStore(path) as st:
        import_bars(SPY_1M, st, exchange="nyse", symbol="SPY", timeframe="1m")
        import_bars(BTC_1M, st, exchange="binance", symbol="BTC/USDT", timeframe="1m")
    return path


@pytest.fixture(scope="module")
def run(store_path: Path):
    return btlab.run_backtest("orb", exchange="nyse", symbol="SPY", timeframe="1m", store=str(store_path),
                              record=False, params=PARAMS)


def _ny_sessions(bars: pd.DataFrame, range_minutes: int) -> pd.DataFrame:
    """Per New York date: session open (09:30 New York, in UTC), range end, range high and low, last bar open."""
    local = bars["ts"].dt.tz_convert(NY)
    frame = bars.assign(day=local.dt.normalize())
    frame["s_open"] = (frame["day"] + pd.Timedelta(hours=9, minutes=30)).dt.tz_convert("UTC")
    frame["r_end"] = frame["s_open"] + pd.Timedelta(minutes=range_minutes)
    in_range = frame[(frame["ts"] >= frame["s_open"]) & (frame["ts"] < frame["r_end"])]
    rng = in_range.groupby("s_open").agg(hi=("high", "max"), lo=("low", "min"))
    days = frame.groupby("s_open").agg(r_end=("r_end", "first"), last=("ts", "max"))
    return days.join(rng)


def test_trades_happen_after_the_range_on_the_right_side(run) -> None:
    bars, trades = run.bars, run.trades
    assert run.config.venue_calendar == "XNYS" and len(bars) == 24_570  # the regular session, 63 days
    assert len(trades) >= 40
    sessions = _ny_sessions(bars, PARAMS["range_minutes"])
    ts = bars["ts"].reset_index(drop=True)
    pos = ts.searchsorted(trades["entry_ts"])  # the fill bar; the signal is the bar before it
    assert (ts.iloc[pos].to_numpy() == trades["entry_ts"].to_numpy()).all()
    signal = bars.iloc[pos - 1].reset_index(drop=True)
    s_open = (signal["ts"].dt.tz_convert(NY).dt.normalize() + pd.Timedelta(hours=9, minutes=30)).dt.tz_convert("UTC")
    day = sessions.loc[s_open].reset_index()
    assert (signal["ts"].to_numpy() >= day["r_end"].to_numpy()).all()  # the range had closed
    long = (trades["direction"] == "long").to_numpy()
    assert long.any() and (~long).any()
    assert (signal["close"].to_numpy()[long] > day["hi"].to_numpy()[long]).all()
    assert (signal["close"].to_numpy()[~long] < day["lo"].to_numpy()[~long]).all()
    # the ranges the strategy used are the ones computed here, for every session
    seen = pd.Series({pd.Timestamp(k, tz="UTC"): v for k, v in run.strategy.ranges.items()})
    assert len(seen) == 63
    for s, (hi, lo) in seen.items():
        assert (hi, lo) == (sessions.loc[s, "hi"], sessions.loc[s, "lo"])


def test_flat_at_session_end(run) -> None:
    sessions = _ny_sessions(run.bars, PARAMS["range_minutes"])
    last = run.equity.loc[sessions["last"].to_numpy()]
    assert (last["position_value"] == 0).all()  # flat after every session's last bar
    trades = run.trades
    entry_day = trades["entry_ts"].dt.tz_convert(NY).dt.date
    exit_local = trades["ts"].dt.tz_convert(NY)
    assert (exit_local.dt.date == entry_day).all()
    assert (exit_local.dt.strftime("%H:%M") <= "15:59").all()
    assert (exit_local.dt.strftime("%H:%M") == "15:59").any()  # some positions were closed by the session end


def test_stops_per_day_and_cool_off(store_path: Path) -> None:
    params = dict(PARAMS, stop_pct=0.05, take_profit_pct=0.0, max_stops=1, cooloff_minutes=30)
    result = btlab.run_backtest("orb", exchange="nyse", symbol="SPY", timeframe="1m", store=str(store_path),
                                record=False, params=params)
    orders = result.orders
    stops = orders[(orders["type"] == "Stop") & (orders["status"] == "Completed")]
    per_day = stops.groupby(stops["ts"].dt.tz_convert(NY).dt.date).size()
    assert len(per_day) >= 20 and per_day.max() == 1
    # with max_stops=1 no entry follows a stop the same day; with 3, entries wait out the cool-off
    entries = result.trades["entry_ts"]
    for ts in stops["ts"]:
        same_day = entries[(entries.dt.tz_convert(NY).dt.date == ts.tz_convert(NY).date()) & (entries > ts)]
        assert same_day.empty
    params["max_stops"] = 3
    result = btlab.run_backtest("orb", exchange="nyse", symbol="SPY", timeframe="1m", store=str(store_path),
                                record=False, params=params)
    orders = result.orders
    stops = orders[(orders["type"] == "Stop") & (orders["status"] == "Completed")]
    per_day = stops.groupby(stops["ts"].dt.tz_convert(NY).dt.date).size()
    assert per_day.max() == 3
    entries = result.trades["entry_ts"]
    waited = 0
    for ts in stops["ts"]:
        later = entries[(entries.dt.tz_convert(NY).dt.date == ts.tz_convert(NY).date()) & (entries > ts)]
        if len(later):  # the signal bar closes at the entry's fill time; the stop bar closes a minute after ts
            assert later.min() >= ts + pd.Timedelta(minutes=1 + 30)
            waited += 1
    assert waited >= 5


def test_dst_week(run) -> None:
    """2024-03-10: New York moves to UTC-4; the session opens at 14:30 UTC before and 13:30 UTC after."""
    seen = {pd.Timestamp(k, tz="UTC") for k in run.strategy.ranges}
    assert pd.Timestamp("2024-03-08 14:30", tz="UTC") in seen
    assert {pd.Timestamp(f"2024-03-{d} 13:30", tz="UTC") for d in range(11, 16)} <= seen
    week = run.trades[(run.trades["entry_ts"] >= "2024-03-11") & (run.trades["entry_ts"] < "2024-03-16")]
    assert len(week) >= 3
    assert (week["entry_ts"] >= week["entry_ts"].dt.normalize() + pd.Timedelta(hours=13, minutes=46)).all()
    assert (week["entry_ts"] < week["entry_ts"].dt.normalize() + pd.Timedelta(hours=14, minutes=46)).any()


def test_extended_hours_bars_do_not_trade(store_path: Path, run) -> None:
    ext = btlab.run_backtest("orb", exchange="nyse", symbol="SPY", timeframe="1m", store=str(store_path),
                             record=False, params=PARAMS, session="extended")
    assert len(ext.bars) > len(run.bars)
    assert ext.strategy.ranges == run.strategy.ranges
    local = ext.trades["entry_ts"].dt.tz_convert(NY).dt.strftime("%H:%M")
    assert ((local > "09:45") & (local < "16:00")).all()


def test_crypto_session_start(store_path: Path) -> None:
    result = btlab.run_backtest("orb", exchange="binance", symbol="BTC/USDT", timeframe="1m", store=str(store_path),
                                record=False, start="2025-06-02", end="2025-06-08",
                                params=dict(PARAMS, range_minutes=30, session_start="13:30"))
    bars = result.bars
    opens = pd.date_range("2025-06-02 13:30", "2025-06-08 13:30", freq="D", tz="UTC")
    expect = {}
    for o in opens:
        window = bars[(bars["ts"] >= o) & (bars["ts"] < o + pd.Timedelta(minutes=30))]
        expect[o] = (window["high"].max(), window["low"].min())
    first = pd.Timestamp("2025-06-01 13:30", tz="UTC")  # the session the data starts inside (its range is missed)
    seen = {pd.Timestamp(k, tz="UTC"): v for k, v in result.strategy.ranges.items()}
    assert first not in seen and seen == expect
    assert len(result.trades) >= 3
    for entry, exit_ts in zip(result.trades["entry_ts"], result.trades["ts"]):
        day = (entry - pd.Timedelta(hours=13, minutes=30)).normalize() + pd.Timedelta(hours=13, minutes=30)
        assert day + pd.Timedelta(minutes=31) <= entry and exit_ts <= day + pd.Timedelta(hours=23, minutes=59)


def test_orb_params_checked() -> None:
    with pytest.raises(StrategyParameterError, match="max_stops must be >= 1"):
        btlab.run_backtest("orb", exchange="nyse", symbol="SPY", params={"max_stops": 0}, store=":memory:")
    with pytest.raises(StrategyParameterError, match="session_start must be HH:MM"):
        btlab.run_backtest("orb", params={"session_start": "25:00"}, store=":memory:")
    with pytest.raises(StrategyParameterError, match="calendar"):
        btlab.run_backtest("orb", params={"calendar": "NOPE"}, store=":memory:")


def test_cli_backtest_orb(store_path: Path) -> None:
    res = CliRunner().invoke(app, ["backtest", "--strategy", "orb", "--exchange", "nyse", "--symbol", "SPY",
                                   "--timeframe", "1m", "--param", "range_minutes=30", "--param", "stop_pct=0.2",
                                   "--no-report", "--store", str(store_path)],
                             env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "orb" in flat and "24,570" in flat
    with DuckDBStore(store_path, read_only=True) as st:
        runs = st.list_runs(strategy="orb")
        assert len(runs) == 1
        assert len(st.read_trades(runs["run_id"].iloc[0])) > 10


def test_calendar_auto_takes_the_runs_calendar_on_an_exchange_btlab_does_not_know(store_path: Path, run,
                                                                                    tmp_path: Path) -> None:
    """SPY stored under a venue name btlab does not know, run with ``calendar="XNYS"``: ``calendar=auto`` sessions
    are the run's New York sessions (the same trades as the nyse run), as the vector kernel takes them."""
    path = tmp_path / "renamed.duckdb"
    with DuckDBStore(path) as st:
        import_bars(SPY_1M, st, exchange="myvenue", symbol="SPY", timeframe="1m", calendar="XNYS")
    renamed = btlab.run_backtest("orb", exchange="myvenue", symbol="SPY", timeframe="1m", calendar="XNYS",
                                 store=str(path), record=False, params=PARAMS)
    assert renamed.config.venue_calendar == "XNYS"
    assert len(renamed.trades) == len(run.trades) >= 40
    cols = ["entry_ts", "ts", "size", "entry_price", "exit_price", "pnl_net"]
    pd.testing.assert_frame_equal(renamed.trades[cols].reset_index(drop=True), run.trades[cols].reset_index(drop=True))
    c = renamed.config
    _, vector = run_vector("orb", renamed.bars, PARAMS, c.cash, c.commission, c.size_pct, calendar=c.venue_calendar,
                           timeframe="1m")
    assert vector["pnl_net"].tolist() == pytest.approx(renamed.trades["pnl_net"].tolist(), rel=1e-9)
