"""Tick -> bar aggregation on real Binance trades (issue 3).

Data (bundled in data/, see data/README.md): the 19,904 BTC/USDT trades recorded from Binance's spot WebSocket
2024-08-08 23:54:15 .. 2024-08-09 00:05:04 (``btcusdt_2024080[89].gz``) and Binance's own 1m klines for those
minutes (``BTC_USDT-1m_2024-08-08T2352_2024-08-09T0006.csv``). Cases with late, duplicated, shuffled or malformed
trades are built from these real trades.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from btlab.errors import InvalidArgumentError
from btlab.marketdata.bars import AGG_BAR_COLUMNS, StreamingAggregator, aggregate_ticks, resample_bars
from btlab.model import tick as tick_model
from btlab.model.bar import validate_bars
from btlab.model.tick import split_valid_ticks, ticks_from_arrays
from realdata import DATA

RECORDINGS = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
KLINES = DATA / "BTC_USDT-1m_2024-08-08T2352_2024-08-09T0006.csv"
BTC_1H = DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"
FULL_MINUTES = pd.date_range("2024-08-08 23:55", "2024-08-09 00:04", freq="1min", tz="UTC")
SECOND = 1_000_000_000


@lru_cache(maxsize=None)
def _recorded() -> tuple[np.ndarray, ...]:
    ts, ids, px, qty, maker = [], [], [], [], []
    for name in RECORDINGS:
        with gzip.open(DATA / name, "rt") as fh:
            for line in fh:
                _, raw = line.split(" ", 1)
                msg = json.loads(raw)
                if msg.get("stream") != "btcusdt@trade":
                    continue
                event = msg["data"]
                ts.append(event["T"] * 1_000_000)
                ids.append(event["t"])
                px.append(float(event["p"]))
                qty.append(float(event["q"]))
                maker.append(event["m"])
    return (np.array(ts, dtype=np.int64), np.array(ids, dtype=np.int64), np.array(px), np.array(qty),
            np.array(maker, dtype=bool))


def trades() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(trade time ns, trade id, price, amount) of the recorded trades in arrival order (copies)."""
    ts, ids, px, qty, _ = _recorded()
    return ts.copy(), ids.copy(), px.copy(), qty.copy()


def tick_frame(**kwargs) -> pd.DataFrame:
    ts, ids, px, qty, maker = _recorded()
    return ticks_from_arrays(ts, px, qty, ids, maker, exchange="binance", symbol="BTC/USDT", **kwargs)


def assert_same_bars(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Bit-for-bit equality (NaN == NaN), column by column."""
    assert list(got.columns) == list(AGG_BAR_COLUMNS)
    assert len(got) == len(expected), (len(got), len(expected))
    assert (got["ts"].to_numpy() == expected["ts"].to_numpy()).all()
    for col in AGG_BAR_COLUMNS[1:]:
        a = got[col].to_numpy(dtype="float64", na_value=np.nan)
        b = expected[col].to_numpy(dtype="float64", na_value=np.nan)
        bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        assert not bad.any(), f"{col} differs at {got['ts'][bad].tolist()[:3]}: {a[bad][:3]} vs {b[bad][:3]}"


def streamed(
    arrival: np.ndarray | None = None,
    timeframes: tuple[str, ...] = ("1s", "1m"),
    *,
    mode: str = "batch",
    seed: int = 0,
    **kwargs,
) -> tuple[StreamingAggregator, dict[str, pd.DataFrame]]:
    """Feed the recorded trades (in ``arrival`` order) and return final + still-open bars per timeframe."""
    ts, ids, px, qty = trades()
    if arrival is not None:
        ts, ids, px, qty = ts[arrival], ids[arrival], px[arrival], qty[arrival]
    agg = StreamingAggregator(list(timeframes), **kwargs)
    rng = np.random.default_rng(seed)
    final: dict[str, list[pd.DataFrame]] = {tf: [] for tf in timeframes}
    i = 0
    while i < ts.size:
        n = int(rng.integers(1, 700))
        single = mode == "single" or (mode == "mixed" and rng.random() < 0.5)
        if single:
            for j in range(i, min(i + n, ts.size)):
                if agg.add(int(ts[j]), float(px[j]), float(qty[j]), int(ids[j])):
                    for tf, bars in agg.pop_bars().items():
                        final[tf].append(bars)
        else:
            agg.add_batch(ts[i : i + n], px[i : i + n], qty[i : i + n], ids[i : i + n])
        i += n
    for tf, bars in agg.pop_bars().items():
        final[tf].append(bars)
    still_open = agg.flush()
    out = {tf: pd.concat([*final[tf], still_open[tf]], ignore_index=True) for tf in timeframes}
    return agg, out


# ---- the exchange's own klines ---------------------------------------------------------------------------------
def test_batch_reproduces_binance_1m_klines_exactly() -> None:
    klines = pd.read_csv(KLINES)
    klines["ts"] = pd.to_datetime(klines.pop("date"), utc=True)
    bars = aggregate_ticks(tick_frame(), "1m")
    got = bars[bars["ts"].isin(FULL_MINUTES)].reset_index(drop=True)
    want = klines[klines["ts"].isin(FULL_MINUTES)].reset_index(drop=True)
    assert len(got) == len(want) == 10
    assert (got["ts"] == want["ts"]).all()
    for col in ("open", "high", "low", "close", "volume"):
        assert (got[col].to_numpy() == want[col].to_numpy()).all(), col  # exact float equality
    assert bars.attrs == {"invalid_ticks": 0, "duplicate_ticks": 0}
    # the volume needs the exchange's 8-decimal rounding: the raw float sum misses it in some minutes
    raw = aggregate_ticks(tick_frame(), "1m", volume_decimals=None)
    raw = raw[raw["ts"].isin(FULL_MINUTES)].reset_index(drop=True)
    assert (raw["volume"].to_numpy() != want["volume"].to_numpy()).any()
    assert np.allclose(raw["volume"], want["volume"], rtol=0, atol=1e-9)
    # vwap and trade counts are consistent with the trades
    assert got["trades"].sum() == int(((tick_frame()["ts"] >= FULL_MINUTES[0])
                                       & (tick_frame()["ts"] < FULL_MINUTES[-1] + pd.Timedelta("1min"))).sum())
    assert ((got["vwap"] >= got["low"]) & (got["vwap"] <= got["high"])).all()
    validate_bars(bars, "aggregate", "1m")  # btlab's bar layout and rules


def test_streaming_reproduces_binance_1m_klines_exactly() -> None:
    klines = pd.read_csv(KLINES)
    klines["ts"] = pd.to_datetime(klines.pop("date"), utc=True)
    _, out = streamed(timeframes=("1m",), mode="mixed")
    got = out["1m"][out["1m"]["ts"].isin(FULL_MINUTES)].reset_index(drop=True)
    want = klines[klines["ts"].isin(FULL_MINUTES)].reset_index(drop=True)
    for col in ("open", "high", "low", "close", "volume"):
        assert (got[col].to_numpy() == want[col].to_numpy()).all(), col


def test_binance_emits_flat_zero_volume_klines_for_windows_without_trades() -> None:
    """What the exchange does (documented in btlab.marketdata.bars): an interval without trades while the
    market is up gets a kline at the previous close with volume 0; outages get no kline at all."""
    bars = pd.read_feather(BTC_1H)
    zero = bars.index[bars["volume"] == 0]
    assert [str(bars["date"][i]) for i in zero] == [
        "2017-09-06 16:00:00+00:00", "2019-06-07 21:00:00+00:00",
        "2021-02-11 03:00:00+00:00", "2023-03-24 12:00:00+00:00",
    ]
    for i in zero:
        prev_close = bars["close"][i - 1]
        assert (bars.loc[i, ["open", "high", "low", "close"]] == prev_close).all()
    # BTC/USDT trades every minute: its 1m klines hold no zero-volume minute
    assert not (pd.read_feather(DATA / "BTC_USDT-1m_2025-05-20_2025-08-18.feather")["volume"] == 0).any()


# ---- batch == streaming ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("empty", ["skip", "flat"])
@pytest.mark.parametrize("mode", ["batch", "single", "mixed"])
def test_streaming_equals_batch_in_order(empty: str, mode: str) -> None:
    agg, out = streamed(timeframes=("1s", "1m"), mode=mode, empty=empty)
    ticks = tick_frame()
    for tf in ("1s", "1m"):
        assert_same_bars(out[tf], aggregate_ticks(ticks, tf, empty=empty))
    stats = agg.stats()
    assert stats["late_ticks"] == stats["duplicate_ticks"] == stats["invalid_ticks"] == 0
    assert stats["accepted_ticks"] == len(ticks)


@pytest.mark.parametrize("empty", ["skip", "flat"])
@pytest.mark.parametrize("lateness", [0.5, 3.0])
def test_streaming_equals_batch_with_trades_shuffled_within_lateness(empty: str, lateness: float) -> None:
    ts, _, _, _ = trades()
    rng = np.random.default_rng(7)
    # arrival order by time + a random delay below the lateness: no trade lags the newest by more than that
    delay = (rng.random(ts.size) * lateness * SECOND).astype(np.int64)
    arrival = np.argsort(ts + delay, kind="stable")
    assert (np.diff(ts[arrival]) < 0).sum() > 1000  # really out of order
    agg, out = streamed(arrival, ("1s", "1m"), mode="mixed", empty=empty, allowed_lateness=lateness, seed=3)
    assert agg.late_ticks == 0
    ticks = tick_frame()
    for tf in ("1s", "1m"):
        assert_same_bars(out[tf], aggregate_ticks(ticks, tf, empty=empty))
    # the batch form does not care about row order either
    shuffled = ticks.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert_same_bars(aggregate_ticks(shuffled, "1s", empty=empty), aggregate_ticks(ticks, "1s", empty=empty))


def test_batch_tie_order_uses_numeric_trade_ids_and_any_id_type() -> None:
    ticks = tick_frame()
    ts = ticks["ts"]
    assert ts.duplicated().sum() > 5000  # many trades share a millisecond: the tie rule matters
    ref = aggregate_ticks(ticks, "1s")
    # reverse the rows: equal times must still be ordered by trade id (open = lowest id, close = highest)
    assert_same_bars(aggregate_ticks(ticks.iloc[::-1].reset_index(drop=True), "1s"), ref)
    assert_same_bars(aggregate_ticks(tick_frame(trade_id_as_text=False), "1s"), ref)
    as_object = ticks.assign(trade_id=ticks["trade_id"].astype(object))
    assert_same_bars(aggregate_ticks(as_object, "1s"), ref)
    # ids that differ in length compare numerically ("999" < "1000"), not as text
    small = ticks.iloc[:3].copy()
    small["ts"] = small["ts"].iloc[0]
    small["trade_id"] = pd.Series(["1000", "999", "1001"], dtype="str")
    bar = aggregate_ticks(small, "1m").iloc[0]
    assert bar["open"] == small["price"].iloc[1] and bar["close"] == small["price"].iloc[2]


def test_weekly_bars_open_on_monday() -> None:
    bars = aggregate_ticks(tick_frame(), "1w")
    assert bars["ts"].tolist() == [pd.Timestamp("2024-08-05", tz="UTC")]
    assert bars["trades"].iloc[0] == len(tick_frame())


# ---- resampling ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("empty", ["skip", "flat"])
@pytest.mark.parametrize(("low", "high"), [("1m", "5m"), ("1m", "1h"), ("1s", "1m"), ("1s", "5m"), ("5s", "1d")])
def test_resample_equals_aggregating_ticks(low: str, high: str, empty: str) -> None:
    ticks = tick_frame()
    direct = aggregate_ticks(ticks, high, empty=empty)
    for source_empty in ("skip", "flat"):
        lower = aggregate_ticks(ticks, low, empty=source_empty)
        got = resample_bars(lower, high, empty=empty, source_timeframe=low)
        assert_same_bars(got.drop(columns="vwap").assign(vwap=direct["vwap"]), direct)
        np.testing.assert_allclose(got["vwap"], direct["vwap"], rtol=1e-12)
    # bars without trades/vwap columns (exchange klines): volume > 0 marks a traded bar
    plain = aggregate_ticks(ticks, low)[["ts", "open", "high", "low", "close", "volume"]]
    got = resample_bars(plain, high, empty=empty)
    for col in ("open", "high", "low", "close", "volume"):
        assert (got[col].to_numpy() == direct[col].to_numpy()).all(), col
    assert got["trades"].isna().all() or empty == "flat"


def test_resample_streamed_minutes_to_5m_equals_ticks() -> None:
    _, out = streamed(timeframes=("1m",), mode="mixed", empty="flat")
    got = resample_bars(out["1m"], "5m", empty="flat")
    direct = aggregate_ticks(tick_frame(), "5m", empty="flat")
    assert_same_bars(got.assign(vwap=direct["vwap"]), direct)


def test_resample_rejects_misaligned_timeframes() -> None:
    minutes = aggregate_ticks(tick_frame(), "1m")
    with pytest.raises(InvalidArgumentError):
        resample_bars(minutes, "90s", source_timeframe="1m")
    with pytest.raises(InvalidArgumentError):
        aggregate_ticks(tick_frame(), "1m", empty="zero")  # type: ignore[arg-type]


# ---- late, duplicate and malformed trades ----------------------------------------------------------------------
def test_late_trade_is_counted_and_never_merged_into_a_final_bar() -> None:
    ts, ids, px, qty = trades()
    agg = StreamingAggregator(["1m"], log_size=5)
    agg.add_batch(ts, px, qty, ids)
    final = agg.pop_bars()["1m"]
    assert final["ts"].iloc[-1] == pd.Timestamp("2024-08-09 00:04", tz="UTC")  # 00:05 still open
    minute = pd.Timestamp("2024-08-08 23:56", tz="UTC")
    before = final[final["ts"] == minute].iloc[0].copy()
    # a real trade of 23:56 re-sent with a new id and a price above that minute's high, after 23:56 closed
    i = int(np.flatnonzero(ts >= minute.value)[10])
    late_id = int(ids.max()) + 1
    assert agg.add(int(ts[i]), before["high"] + 100.0, float(qty[i]), late_id) is False
    assert agg.late_ticks == 1 and agg.late_by_timeframe == {"1m": 1}
    log = agg.late_log()
    assert log["trade_id"].tolist() == [late_id] and log["timeframes"].tolist() == ["1m"]
    assert log["ts"].iloc[0] == pd.Timestamp(int(ts[i]), tz="UTC")
    assert (agg.pop_bars()["1m"]).empty  # nothing re-emitted
    still_open = agg.flush()["1m"]
    assert still_open["ts"].tolist() == [pd.Timestamp("2024-08-09 00:05", tz="UTC")]
    assert_same_bars(pd.concat([final, still_open], ignore_index=True), aggregate_ticks(tick_frame(), "1m"))


def test_trade_late_for_1s_still_counts_in_the_open_minute() -> None:
    ts, ids, px, qty = trades()
    cut = int(np.searchsorted(ts, pd.Timestamp("2024-08-09 00:02:30", tz="UTC").value))
    j = int(np.searchsorted(ts, pd.Timestamp("2024-08-09 00:02:10", tz="UTC").value))
    first = np.r_[0:j, j + 1 : cut]
    agg = StreamingAggregator(["1s", "1m"])
    agg.add_batch(ts[first], px[first], qty[first], ids[first])
    # trade j (00:02:10) arrives after the watermark passed 00:02:29: late for 1s, on time for the open minute
    assert agg.add(int(ts[j]), float(px[j]), float(qty[j]), int(ids[j]))
    agg.add_batch(ts[cut:], px[cut:], qty[cut:], ids[cut:])
    assert agg.late_by_timeframe == {"1s": 1, "1m": 0} and agg.late_ticks == 1
    assert agg.late_log()["timeframes"].tolist() == ["1s"]
    bars, still = agg.pop_bars(), agg.flush()
    everything = tick_frame()
    minutes = pd.concat([bars["1m"], still["1m"]], ignore_index=True)
    seconds = pd.concat([bars["1s"], still["1s"]], ignore_index=True)
    assert_same_bars(minutes, aggregate_ticks(everything, "1m"))
    assert_same_bars(seconds, aggregate_ticks(everything.drop(index=j).reset_index(drop=True), "1s"))


def test_duplicate_trades_are_dropped_and_counted_in_both_forms() -> None:
    ts, ids, px, qty = trades()
    rng = np.random.default_rng(5)
    again = np.sort(rng.choice(ts.size, 300, replace=False))
    # a reconnect re-sends trades: each duplicate arrives up to 50 trades after the original (same data)
    arrival = np.r_[np.arange(ts.size), again]
    position = np.r_[np.arange(ts.size), again + rng.integers(1, 50, again.size) + 0.5]
    arrival = arrival[np.argsort(position, kind="stable")]
    agg, out = streamed(arrival, ("1s", "1m"), mode="mixed", allowed_lateness=2.0)
    assert agg.duplicate_ticks == 300 and agg.late_ticks == 0
    ticks = tick_frame()
    for tf in ("1s", "1m"):
        assert_same_bars(out[tf], aggregate_ticks(ticks, tf))
    with_dups = ticks.iloc[arrival].reset_index(drop=True)
    bars = aggregate_ticks(with_dups, "1m")
    assert bars.attrs["duplicate_ticks"] == 300
    assert_same_bars(bars, aggregate_ticks(ticks, "1m"))


def _malformed(ticks: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Real trades with six rows broken the ways a feed breaks them (raw text/number values, as received)."""
    raw = pd.DataFrame(
        {
            "ts": ticks["ts"].astype(object),
            "price": ticks["price"].astype(object),
            "amount": ticks["amount"].astype(object),
            "trade_id": ticks["trade_id"].astype(object),
            "side": ticks["side"].astype(object),
        }
    )
    broken = {100: ("price", "NaN"), 200: ("price", 0.0), 300: ("amount", -0.001), 400: ("ts", "2024-13-45 99:00"),
              500: ("ts", None), 600: ("amount", float("inf"))}
    for row, (col, value) in broken.items():
        raw.at[row, col] = value
    reasons = [tick_model.REASON_PRICE_MISSING, tick_model.REASON_PRICE_NONPOSITIVE,
               tick_model.REASON_AMOUNT_NONPOSITIVE, tick_model.REASON_TIME, tick_model.REASON_TIME,
               tick_model.REASON_AMOUNT_INFINITE]
    return raw, reasons


def test_split_valid_ticks_quarantines_malformed_trades() -> None:
    ticks = tick_frame()
    raw, reasons = _malformed(ticks)
    valid, quarantined = split_valid_ticks(raw, "btcusdt@trade")
    assert quarantined["reason"].tolist() == reasons
    assert quarantined["row"].tolist() == [101, 201, 301, 401, 501, 601]
    assert (quarantined["source"] == "btcusdt@trade").all()
    assert len(valid) == len(ticks) - 6
    assert list(valid.columns) == list(tick_model.TICK_COLUMNS)
    assert str(valid["ts"].dtype) == "datetime64[ns, UTC]"
    kept = ticks.drop(index=[100, 200, 300, 400, 500, 600]).reset_index(drop=True)
    assert (valid["ts"] == kept["ts"]).all() and (valid["price"] == kept["price"]).all()
    assert (valid["trade_id"] == kept["trade_id"]).all() and (valid["side"] == kept["side"]).all()
    assert set(valid["side"]) == {"buy", "sell"}
    assert_same_bars(aggregate_ticks(valid, "1m"), aggregate_ticks(kept, "1m"))
    # decimal strings as Binance sends them, epoch-ms numbers, and the taker side from the "m" flag
    ts, ids, px, qty, maker = _recorded()
    first = pd.DataFrame({"ts": [int(ts[0] // 1_000_000)], "price": ["61837.63000000"], "amount": ["0.02000000"],
                          "trade_id": [int(ids[0])], "side": ["sell" if maker[0] else "buy"]})
    one, bad = split_valid_ticks(first, "ws")
    assert bad.empty and one["price"].iloc[0] == px[0] and one["amount"].iloc[0] == qty[0]
    assert one["ts"].iloc[0] == ticks["ts"].iloc[0] and one["trade_id"].iloc[0] == str(ids[0])


def test_malformed_trades_never_stop_either_form() -> None:
    ticks = tick_frame()
    kept = ticks.drop(index=[100, 200, 300, 600]).reset_index(drop=True)
    ts, ids, px, qty = trades()
    px[100], px[200], qty[300], qty[600] = np.nan, 0.0, -0.001, np.inf
    bad_frame = ticks.assign(price=px, amount=qty)
    bars = aggregate_ticks(bad_frame, "1m")
    assert bars.attrs["invalid_ticks"] == 4
    assert_same_bars(bars, aggregate_ticks(kept, "1m"))
    agg = StreamingAggregator(["1m"])
    for i in range(ts.size):
        agg.add(int(ts[i]), float(px[i]), float(qty[i]), int(ids[i]))
    assert agg.invalid_ticks == 4
    log = agg.quarantine_log()
    assert log["reason"].tolist() == [tick_model.REASON_PRICE_MISSING, tick_model.REASON_PRICE_NONPOSITIVE,
                                      tick_model.REASON_AMOUNT_NONPOSITIVE, tick_model.REASON_AMOUNT_INFINITE]
    assert_same_bars(pd.concat([agg.pop_bars()["1m"], agg.flush()["1m"]], ignore_index=True),
                     aggregate_ticks(kept, "1m"))


# ---- event time: watermark, advance, flush ----------------------------------------------------------------------
def test_bars_are_final_only_when_the_watermark_passes_their_end() -> None:
    ts, ids, px, qty = trades()
    agg = StreamingAggregator(["1m"], allowed_lateness=5.0)
    end_2358 = pd.Timestamp("2024-08-08 23:59", tz="UTC").value
    upto = int(np.searchsorted(ts, end_2358 + 5 * SECOND))  # trades before 23:59:05
    agg.add_batch(ts[:upto], px[:upto], qty[:upto], ids[:upto])
    assert agg.pop_bars()["1m"]["ts"].iloc[-1] == pd.Timestamp("2024-08-08 23:57", tz="UTC")
    assert agg.watermark_ns == int(ts[upto - 1]) - 5 * SECOND < end_2358
    agg.add_batch(ts[upto:], px[upto:], qty[upto:], ids[upto:])
    assert agg.pop_bars()["1m"]["ts"].iloc[0] == pd.Timestamp("2024-08-08 23:58", tz="UTC")


def test_advance_closes_windows_without_trades() -> None:
    ts, ids, px, qty = trades()
    agg = StreamingAggregator(["1m"], empty="flat")
    agg.add_batch(ts, px, qty, ids)
    agg.pop_bars()
    assert agg.advance(pd.Timestamp("2024-08-09 00:07:30", tz="UTC").value) == 2  # 00:05 with trades, 00:06 flat
    bars = agg.pop_bars()["1m"]
    last = aggregate_ticks(tick_frame(), "1m").iloc[-1]
    assert bars["ts"].tolist() == [pd.Timestamp(f"2024-08-09 00:0{m}", tz="UTC") for m in (5, 6)]
    assert bars.iloc[0]["close"] == last["close"] and bars.iloc[0]["trades"] == last["trades"]
    flat = bars.iloc[1]
    assert flat["open"] == flat["high"] == flat["low"] == flat["close"] == last["close"]
    assert flat["volume"] == 0 and flat["trades"] == 0 and np.isnan(flat["vwap"])
    assert agg.flush()["1m"].empty  # no trade after 00:05: nothing open
    # the same with skip: no bar for 00:06
    agg = StreamingAggregator(["1m"])
    agg.add_batch(ts, px, qty, ids)
    agg.advance(pd.Timestamp("2024-08-09 00:07:30", tz="UTC").value)
    assert agg.pop_bars()["1m"]["ts"].iloc[-1] == pd.Timestamp("2024-08-09 00:05", tz="UTC")


def test_flush_returns_open_bars_without_finalizing_them() -> None:
    ts, ids, px, qty = trades()
    half = ts.size // 2
    agg = StreamingAggregator(["1m"])
    agg.add_batch(ts[:half], px[:half], qty[:half], ids[:half])
    open_now = agg.flush()["1m"]
    assert len(open_now) == 1 and agg.flush()["1m"].equals(open_now)  # no state change
    agg.add_batch(ts[half:], px[half:], qty[half:], ids[half:])
    final = agg.pop_bars()["1m"]
    same_minute = final[final["ts"] == open_now["ts"].iloc[0]].iloc[0]
    assert same_minute["trades"] > open_now["trades"].iloc[0]  # later trades changed the bar flush showed


def test_streaming_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        StreamingAggregator([])
    with pytest.raises(InvalidArgumentError):
        StreamingAggregator(["1m"], allowed_lateness=-1)
    with pytest.raises(InvalidArgumentError):
        StreamingAggregator(["1m"]).add_ticks(tick_frame().assign(trade_id="x"))


@pytest.mark.parametrize("empty", ["skip", "flat"])
def test_streaming_with_late_trades_equals_batch_of_the_trades_it_kept(empty: str) -> None:
    """Shuffled beyond the lateness: every timeframe's bars are the batch bars of exactly the trades not reported
    late for it (the late log names each late trade and the timeframes it missed)."""
    ts, ids, _, _ = trades()
    rng = np.random.default_rng(11)
    arrival = np.argsort(ts + (rng.random(ts.size) * 6 * SECOND).astype(np.int64), kind="stable")
    tfs = ("1s", "5s", "1m")
    agg, out = streamed(arrival, tfs, mode="mixed", empty=empty, allowed_lateness=1.0, log_size=ts.size, seed=2)
    log = agg.late_log()
    assert agg.late_ticks == len(log) > 100 and agg.duplicate_ticks == 0
    assert agg.late_by_timeframe["1s"] >= agg.late_by_timeframe["5s"] >= agg.late_by_timeframe["1m"]
    ticks = tick_frame()
    for tf in tfs:
        missed = log.loc[log["timeframes"].str.split(",").map(lambda names: tf in names), "trade_id"]
        assert len(missed) == agg.late_by_timeframe[tf]
        kept = ticks[~ticks["trade_id"].astype("int64").isin(missed)]
        assert_same_bars(out[tf], aggregate_ticks(kept, tf, empty=empty))
