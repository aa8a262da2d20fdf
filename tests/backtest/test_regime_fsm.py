"""regime_fsm on the real BTC/USDT 1h bars resampled to 1d: the machines' transitions against the rule applied by hand
with pandas, hysteresis, what is stored, the position rule, the report's state timeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import btlab
from btlab.backtest.compat import bt
from btlab.backtest.states import HysteresisMachine, StateRecording, check_band, next_regime
from btlab.errors import InvalidArgumentError, StrategyParameterError
from btlab.strategies.regime_fsm import RegimeFsm
from conftest import STORE_BACKENDS, open_backend
from realdata import btc_1h

START, END = "2021-01-01", "2022-12-31"
PARAMS = {"period": 20, "enter_pct": 0.02, "exit_pct": 0.0}
HOUR, DAY = pd.Timedelta(hours=1), pd.Timedelta(days=1)


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def store(request, tmp_path_factory):
    """The real BTC/USDT 1h bars in each backend (QuestDB only with BTLAB_TEST_QUESTDB)."""
    with open_backend(request.param, tmp_path_factory.mktemp("fsm")) as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        yield st


@pytest.fixture(scope="module")
def result(store):
    """One recorded run of the bundled strategy: 1h and 1d machines, small batches (several flushes)."""
    return btlab.run_backtest("regime_fsm", store=store, timeframes=["1h", "1d"], start=START, end=END,
                              params=PARAMS, flush_bars=500)


def _by_hand(close: pd.Series, period: int, enter: float, exit_: float, first: pd.Timestamp) -> list[tuple]:
    """The rule of the strategy's docstring applied with pandas and a plain loop (independent of btlab.states).

    ``close`` is indexed by bar CLOSE time; the machine steps on every bar closing at or after ``first`` (the
    strategy's first step), starting from neutral; returns ``(ts, from, to)`` per change, the first from warmup."""
    dev = close / close.rolling(period).mean() - 1.0
    out, state = [], "warmup"
    for ts, d in dev[dev.index >= first].items():
        prev = "neutral" if state == "warmup" else state
        if prev == "neutral":
            new = "bullish" if d > enter else "bearish" if d < -enter else "neutral"
        elif prev == "bullish":
            new = "bearish" if d < -enter else "neutral" if d < exit_ else "bullish"
        else:
            new = "bullish" if d > enter else "neutral" if d > -exit_ else "bearish"
        if new != state:
            out.append((ts, state, new))
        state = new
    return out


@pytest.fixture(scope="module")
def closes():
    """The run's hourly closes and the pandas-resampled daily closes, both indexed by bar CLOSE time (UTC).

    A day's close is its last traded hour's close (bars without volume set no price of a longer bar); the range
    holds real gaps (6 days with 20-23 hours), which the daily bars span as they are."""
    bars = btc_1h().set_index("ts").loc[START:END]
    hourly = bars["close"].copy()
    hourly.index = hourly.index + HOUR
    traded = bars.loc[bars["volume"] > 0, "close"].resample("1D")
    assert (traded.count() < 24).sum() >= 6 and (traded.count() > 0).all()
    daily = traded.last()
    daily.index = daily.index + DAY
    return {"1h": hourly, "1d": daily}


def _first_step(closes) -> pd.Timestamp:
    """The strategy's first step: the close of the period-th daily bar (the longest SMA is full then)."""
    return closes["1d"].index[PARAMS["period"] - 1]


def _changes(states: pd.DataFrame, machine: str) -> list[tuple]:
    rows = states[states["machine"] == machine]
    return list(zip(rows["ts"], rows["from_state"], rows["to_state"]))


@pytest.mark.parametrize("machine", ["1h", "1d"])
def test_transitions_equal_the_rule_applied_by_hand(result, closes, machine):
    expected = _by_hand(closes[machine], PARAMS["period"], PARAMS["enter_pct"], PARAMS["exit_pct"],
                        _first_step(closes))
    got = _changes(result.states, machine)
    assert len(got) > (60 if machine == "1d" else 300)
    assert got == expected


@pytest.mark.parametrize("machine", ["1h", "1d"])
def test_hysteresis_no_flip_flop_inside_the_band(result, closes, machine):
    close = closes[machine]
    dev = (close / close.rolling(PARAMS["period"]).mean() - 1.0)[lambda s: s.index >= _first_step(closes)]
    enter, exit_ = PARAMS["enter_pct"], PARAMS["exit_pct"]
    got = result.states[result.states["machine"] == machine].set_index("ts")
    # every change happened outside the band that would have held the state
    for ts, row in got.iloc[1:].iterrows():
        d, move = dev.loc[ts], (row["from_state"], row["to_state"])
        assert {("neutral", "bullish"): d > enter, ("bearish", "bullish"): d > enter,
                ("neutral", "bearish"): d < -enter, ("bullish", "bearish"): d < -enter,
                ("bullish", "neutral"): -enter <= d < exit_, ("bearish", "neutral"): -exit_ < d <= enter}[move]
    # after every bar the state is consistent with the band: bullish is held down to exit_pct, not to enter_pct
    state = got["to_state"].reindex(dev.index, method="ffill")
    assert (dev[state == "bullish"] >= exit_).all() and (dev[state == "bearish"] <= -exit_).all()
    assert dev[state == "neutral"].abs().le(enter).all()
    naive = np.select([dev > enter, dev < -enter], ["bullish", "bearish"], "neutral")
    naive_changes = int((naive[1:] != naive[:-1]).sum())
    assert naive_changes > len(got) * 1.2  # the band really absorbed crossings the plain threshold rule flips on
    inside = (dev > exit_) & (dev <= enter) & (state == "bullish")
    assert inside.sum() > 0  # bars inside the band where the machine stayed bullish


def test_stored_transitions_equal_the_emitted_ones(store, result):
    emitted = result.strategy.state_changes
    stored = store.read_states(result.run_id)
    assert list(stored.columns) == ["ts", "machine", "from_state", "to_state"]
    assert str(stored["ts"].dtype) == "datetime64[ns, UTC]"
    mine = pd.DataFrame({"ts": [pd.Timestamp(bt.num2date(c.dt)) for c in emitted], "machine": [c.machine for c in emitted],
                         "from_state": [c.from_state for c in emitted], "to_state": [c.to_state for c in emitted]})
    mine["ts"] = mine["ts"].dt.round("ms").dt.tz_localize("UTC")
    mine = mine.sort_values(["ts", "machine"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, mine, check_dtype=False)
    pd.testing.assert_frame_equal(
        stored, result.states.sort_values(["ts", "machine"], kind="stable").reset_index(drop=True),
        check_dtype=False)
    counts = store.run_row_counts([result.run_id])
    assert int(counts["bt_states"].iloc[0]) == len(emitted)


def test_positions_follow_the_combined_rule(result):
    """Long after every base bar whose close left both machines bullish (filled at the next bar's open), flat
    otherwise: the position held during base bar i+1 is the rule decided at the close of bar i."""
    assert result.order_counts == {"orders_rejected": 0, "orders_margin": 0, "orders_canceled": 0}
    equity = result.equity
    closes_at = equity.index + HOUR
    lanes = {m: result.states[result.states["machine"] == m].set_index("ts")["to_state"] for m in ("1h", "1d")}
    state = pd.DataFrame({m: s.reindex(closes_at, method="ffill") for m, s in lanes.items()}, index=closes_at)
    rule = ((state["1h"] == "bullish") & (state["1d"] == "bullish")).astype(int).to_numpy()
    held = np.sign(equity["position_value"].round(6).to_numpy()).astype(int)
    assert (held[1:] == rule[:-1]).all()
    assert held[0] == 0 and rule.sum() > 100 and 5 < len(result.trades) < len(result.states)


def test_short_side_when_every_machine_is_bearish(store):
    res = btlab.run_backtest("regime_fsm", store=store, timeframes=["1h", "1d"], start="2022-01-01",
                             end="2022-06-30", params={**PARAMS, "short": True}, record=False)
    equity = res.equity
    closes_at = equity.index + HOUR
    state = pd.DataFrame({m: res.states[res.states["machine"] == m].set_index("ts")["to_state"]
                          .reindex(closes_at, method="ffill") for m in ("1h", "1d")}, index=closes_at)
    rule = np.where((state == "bullish").all(axis=1), 1, np.where((state == "bearish").all(axis=1), -1, 0))
    held = np.sign(equity["position_value"].round(6).to_numpy()).astype(int)
    assert (rule == -1).sum() > 100
    assert (held[1:] == rule[:-1]).all()


class _Peek(RegimeFsm):
    """regime_fsm that looks into the store during the run (after 2,000 base bars)."""

    store = None
    run_id = ""
    seen: int | None = None

    def next(self) -> None:
        super().next()
        if len(self.data0) == 2_000:
            type(self).seen = len(type(self).store.read_states(type(self).run_id))


def test_states_are_written_while_the_run_runs(store, uid):
    _Peek.store, _Peek.run_id = store, f"peek-{uid}"
    res = btlab.run_backtest(_Peek, store=store, timeframes=["1h", "1d"], start="2021-01-01", end="2021-09-30",
                             params=PARAMS, run_id=f"peek-{uid}", flush_bars=200, flush_seconds=3600)
    assert 0 < _Peek.seen < len(res.states)
    assert len(store.read_states(f"peek-{uid}")) == len(res.states)


def test_report_draws_the_state_timeline(store, result, tmp_path):
    path = btlab.write_report(result, tmp_path / "report.html", store=store)
    html = path.read_text(encoding="utf-8")
    assert 'id="chart-states"' in html
    assert f"{len(result.states):,d} state changes of machine(s) 1h, 1d" in html or \
        f"{len(result.states):,d} state changes of machine(s) 1d, 1h" in html
    for state in ("bullish", "neutral", "bearish"):
        assert f'"name":"{state}"' in html
    # a run without state machines has no timeline
    plain = btlab.run_backtest("sma_cross", store=store, start="2021-01-01", end="2021-03-31")
    assert plain.states.empty and store.read_states(plain.run_id).empty
    assert 'id="chart-states"' not in btlab.write_report(plain, tmp_path / "plain.html", store=store).read_text()


def test_state_segments_cover_the_run_without_overlap(result):
    from btlab.report.figures import state_segments

    end = result.equity.index[-1] + HOUR
    seg = state_segments(result.states, end)
    for machine, rows in seg.groupby("machine"):
        assert (rows["start"].iloc[1:].to_numpy() == rows["stop"].iloc[:-1].to_numpy()).all()
        assert rows["stop"].iloc[-1] == end
        assert (rows["state"].iloc[1:].to_numpy() != rows["state"].iloc[:-1].to_numpy()).all()
    # the figure draws exactly these segments: one bar per change, lanes covering first change .. end
    from btlab.report.figures import states_figure

    fig, _ = states_figure(result.bars, result.states, "BTC/USDT", end)
    bars = [t for t in fig.data if t.type == "bar"]
    assert sorted(t.name for t in bars) == ["bearish", "bullish", "neutral"]
    assert sum(len(t.base) for t in bars) == len(result.states)
    for machine in ("1h", "1d"):
        width = sum(float(np.sum(np.asarray(t.x)[np.asarray(t.y) == machine])) for t in bars)
        first = result.states.loc[result.states["machine"] == machine, "ts"].iloc[0]
        assert width == (end - first) / pd.Timedelta(milliseconds=1)


def test_rule_and_hook_units():
    assert next_regime("neutral", 0.021, 0.02, 0.0) == "bullish"
    assert next_regime("bullish", 0.001, 0.02, 0.0) == "bullish"  # inside the band: held
    assert next_regime("bullish", -0.001, 0.02, 0.0) == "neutral"
    assert next_regime("bullish", -0.03, 0.02, 0.0) == "bearish"
    assert next_regime("bearish", -0.001, 0.02, 0.0) == "bearish"
    assert next_regime("bearish", float("nan"), 0.02, 0.0) == "bearish"
    m = HysteresisMachine("x", 0.02, 0.005)
    assert m.state == "warmup" and m.step(0.01) == "neutral" and m.step(0.03) == "bullish"
    for bad in ((0.0, 0.0), (0.02, 0.02), (0.02, -0.03)):
        with pytest.raises(ValueError, match="enter_pct"):
            check_band(*bad)
    with pytest.raises(StrategyParameterError, match="exit_pct"):
        btlab.run_backtest("regime_fsm", params={"enter_pct": 0.01, "exit_pct": 0.02}, record=False)
    assert issubclass(RegimeFsm, StateRecording)


def test_several_instruments_are_refused_in_one_line(store, uid):
    other = btc_1h().loc[lambda f: f["ts"] >= "2021-01-01"].head(2_000)
    symbol = f"FSM{uid}/USDT"
    store.write_bars(other, exchange="binance", symbol=symbol, timeframe="1h", source="test")
    with pytest.raises(InvalidArgumentError, match=f"one instrument on several timeframes, got BTC/USDT, {symbol}"):
        btlab.run_backtest("regime_fsm", store=store, symbols=["BTC/USDT", symbol], start="2021-01-01",
                           end="2021-02-28", record=False)


def test_grafana_states_panel_reads_every_change_of_the_run(store, result):
    """The run dashboard's state-timeline SQL, with ``$run_id`` substituted as Grafana substitutes a single-valued
    variable (raw text), returns every stored change of this run: per machine, in time order, the new state at the
    close time of the deciding bar -- the rows the panel splits into one lane per machine."""
    from btlab.dashboards.boards import STATES_SQL

    rows = store.query(STATES_SQL.replace("$run_id", result.run_id))
    assert list(rows.columns) == ["time", "machine", "state"]
    rows["time"] = pd.to_datetime(rows["time"], utc=True)
    expected = result.states.sort_values(["machine", "ts"], kind="stable")
    assert len(rows) == len(expected) > 300
    assert rows["machine"].tolist() == expected["machine"].tolist()
    assert rows["time"].tolist() == expected["ts"].tolist()
    assert rows["state"].tolist() == expected["to_state"].tolist()


# ---- weekly machines: 1d and 1w from daily bars ---------------------------------------------------------------------
WEEK = pd.Timedelta(days=7)


def _daily_sets():
    """Real daily bars of an exchange-session venue (AAPL, Mon-Fri with holidays) and of a 24/7 venue (BTC/USDT
    days built from the real 1h bars, 2021-2022), with their exchange, as bar frames (ns UTC open times)."""
    from btlab.marketdata.bars import resample_bars
    from realdata import aapl_1d

    aapl = aapl_1d()
    aapl["ts"] = aapl["ts"].astype("datetime64[ns, UTC]")
    hourly = btc_1h()
    hourly = hourly[(hourly["ts"] >= pd.Timestamp(START, tz="UTC")) & (hourly["ts"] <= pd.Timestamp(END, tz="UTC"))]
    btc = resample_bars(hourly, "1d")[["ts", "open", "high", "low", "close", "volume"]]
    return {"AAPL": (aapl, "nyse"), "BTC/USDT": (btc, "binance")}


def _iso_weeks(daily: pd.DataFrame) -> pd.DataFrame:
    """Weekly bars by pandas, independently of btlab: ISO weeks (Monday 00:00 UTC), first open, max high, min low,
    last close, summed volume; ``ts`` the week's open; the last week left out when the data ends inside it."""
    monday = (daily["ts"] - pd.to_timedelta(daily["ts"].dt.dayofweek, unit="D")).dt.normalize()
    weeks = daily.groupby(monday).agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                                      close=("close", "last"), volume=("volume", "sum"))
    last_close = daily["ts"].iloc[-1] + DAY
    return weeks[weeks.index + WEEK <= last_close].rename_axis("ts").reset_index()


class _WeekPeek(bt.Strategy):
    """Keeps each weekly bar when it is first seen: (base step close time, week bar time, OHLCV)."""

    def __init__(self) -> None:
        self.seen, self._n = [], 0

    def next(self) -> None:
        week = self.datas[1]
        if len(week) > self._n:
            self._n = len(week)
            self.seen.append((bt.num2date(self.datas[0].datetime[0]), bt.num2date(week.datetime[0]), week.open[0],
                              week.high[0], week.low[0], week.close[0], week.volume[0]))


@pytest.mark.parametrize("symbol", ["AAPL", "BTC/USDT"])
def test_weekly_bars_are_iso_weeks_never_seen_early(symbol):
    """1w from real daily bars equals pandas' ISO weeks and resample_bars(..., "1w"); each week is stamped with its
    end (Monday 00:00 UTC, its close time) and first seen in the step of its last daily bar when that bar closes the
    week (24/7: the Sunday bar), else in the step of the next week's first daily bar (exchange sessions end on
    Fridays); the week the data ends inside is never delivered."""
    from btlab.marketdata.bars import resample_bars

    daily, exchange = _daily_sets()[symbol]
    r = btlab.run_backtest(_WeekPeek, symbol=symbol, exchange=exchange, timeframes=["1d", "1w"],
                           bars={symbol: daily}, record=False)
    seen = pd.DataFrame(r.strategy.seen, columns=["step", "end", "open", "high", "low", "close", "volume"])
    expected = _iso_weeks(daily)
    assert len(seen) == len(expected) > 50
    assert (pd.to_datetime(seen["end"], utc=True) == expected["ts"] + WEEK).all()
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(seen[col].to_numpy(), expected[col].to_numpy())
    np.testing.assert_allclose(seen["volume"], expected["volume"], rtol=1e-12)
    ref = resample_bars(daily, "1w").iloc[:len(expected)]  # btlab's batch resampler, the exchange's rule
    assert (ref["ts"] == expected["ts"]).all() and (ref["close"].to_numpy() == expected["close"].to_numpy()).all()
    # when each week is first seen: never before its last daily bar's close
    closes = daily["ts"] + DAY
    step = pd.to_datetime(seen["step"], utc=True)
    end = expected["ts"] + WEEK
    last_daily = [closes[closes <= e].iloc[-1] for e in end]
    assert (step >= pd.Series(last_daily)).all()
    if symbol == "BTC/USDT":  # every day traded: the Sunday bar closes the week, seen in that very step
        assert (step == end).all()
    else:  # the first session after the week (a Monday, or Tuesday after a Monday holiday)
        assert all(s == closes[closes > e].iloc[0] for s, e in zip(step, end))
        assert (step > end).all()


@pytest.fixture(scope="module")
def aapl_store(store):
    """The real AAPL daily bars (nyse, 1d) in the module's store."""
    daily, _ = _daily_sets()["AAPL"]
    store.write_bars(daily, exchange="nyse", symbol="AAPL", timeframe="1d", source="test")
    return store


def _weekly_by_hand(daily: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Timestamp, pd.Timestamp]:
    """Daily and weekly closes indexed by bar CLOSE time (pandas), and each machine's first step: the 20th week's
    close for the weekly machine; for the daily one, the close of the daily bar in whose step that week is seen."""
    day = daily.set_index(daily["ts"] + DAY)["close"]
    weeks = _iso_weeks(daily)
    week = pd.Series(weeks["close"].to_numpy(), index=weeks["ts"] + WEEK)
    first_week = week.index[PARAMS["period"] - 1]
    return day, week, day.index[day.index >= first_week][0], first_week


def test_regime_fsm_on_days_and_weeks_equals_the_rule_by_hand(aapl_store):
    """regime_fsm with timeframes ["1d", "1w"] from real daily bars (API): each machine's recorded changes equal
    the hysteresis rule applied by hand to pandas' daily closes and ISO-week closes; the stored changes are the
    same."""
    daily, _ = _daily_sets()["AAPL"]
    res = btlab.run_backtest("regime_fsm", symbol="AAPL", exchange="nyse", timeframes=["1d", "1w"],
                             params=PARAMS, store=aapl_store)
    day, week, first_day, first_week = _weekly_by_hand(daily)
    for machine, close, first in (("1d", day, first_day), ("1w", week, first_week)):
        expected = _by_hand(close, PARAMS["period"], PARAMS["enter_pct"], PARAMS["exit_pct"], first)
        got = _changes(res.states, machine)
        assert len(got) > (60 if machine == "1d" else 15)
        assert got == expected, machine
    stored = aapl_store.read_states(res.run_id)
    assert len(stored) == len(res.states)
    assert sorted(zip(stored["ts"], stored["machine"], stored["to_state"])) == \
        sorted(zip(res.states["ts"], res.states["machine"], res.states["to_state"]))


def test_regime_fsm_weekly_from_the_cli(tmp_path):
    """btlab backtest --strategy regime_fsm --timeframe 1d --resample 1w on stored real daily bars: exit 0, the
    run records the 1d and 1w machines' changes, equal to the rule by hand."""
    from cliproc import btlab_cli

    from btlab.store.duckdb import DuckDBStore

    daily, _ = _daily_sets()["AAPL"]
    path = tmp_path / "weekly.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(daily, exchange="nyse", symbol="AAPL", timeframe="1d", source="test")
    params = [x for k, v in PARAMS.items() for x in ("-p", f"{k}={v}")]
    proc = btlab_cli("backtest", "--strategy", "regime_fsm", "--symbol", "AAPL", "--exchange", "nyse",
                     "--timeframe", "1d", "--resample", "1w", *params, "--no-report", store=path)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.split("run id: ")[1].split()[0]
    with DuckDBStore(path, read_only=True) as st:
        states = st.read_states(run_id)
        run = st.get_run(run_id)
    assert "1w" in str(run["config"]) and set(states["machine"]) == {"1d", "1w"}
    day, week, first_day, first_week = _weekly_by_hand(daily)
    expected = _by_hand(week, PARAMS["period"], PARAMS["enter_pct"], PARAMS["exit_pct"], first_week)
    assert _changes(states.sort_values("ts", kind="stable"), "1w") == expected
    assert "state changes: " in proc.stdout and " of 1w" in proc.stdout
