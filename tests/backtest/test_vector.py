"""The vector engine reproduces the Backtrader engine exactly: same trades (times, prices, sizes, pnl), same value
after every bar, same metrics, on the real BTC/USDT 1h bars (data/BTC_USDT-1h_*.feather), over a grid that includes
the near-tie combinations where a running-sum SMA would flip a cross (15/30, 20/30, 45/60) and where the two SMAs
are exactly equal on a bar (5/10, 15/30, 30/60, 45/60: an equal pair is no cross in Backtrader).

The Backtrader runs cost ~4 s each on the 58k bars: two combinations run on all of them, the others on the
ranges that hold the near-ties (2018-07 .. 2019-03, 2023-07 .. 2023-09).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from realdata import BTC_1H, btc_1h

import btlab
from btlab.backtest.vector import kernels, run_vector, supports
from btlab.errors import InvalidArgumentError
from btlab.marketdata.sources.files.importer import import_bars
from btlab.store.duckdb import DuckDBStore

NEAR_TIES = [(15, 30), (20, 30), (45, 60)]
GRID_2018 = NEAR_TIES + [(5, 20), (5, 60), (10, 30), (10, 100), (15, 45), (20, 50), (25, 75), (30, 90), (40, 80),
                         (50, 200), (8, 21), (12, 26), (35, 70)]
GRID_2023 = [(5, 10), (30, 60), (10, 40)]
FULL = [(10, 30), (45, 60)]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vector") / "btc.duckdb"
    with DuckDBStore(path) as st:
        import_bars(BTC_1H, st, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    return path


def _check_parity(store_path: Path, fast: int, slow: int, start: str | None, end: str | None) -> int:
    params = {"fast": fast, "slow": slow}
    bt_run = btlab.run_backtest("sma_cross", symbol="BTC/USDT", timeframe="1h", start=start, end=end, params=params,
                                store=str(store_path), record=False, allow_gaps=True)
    metrics, trades = run_vector("sma_cross", bt_run.bars, params, cash=10_000.0, commission=0.001, size_pct=95.0,
                                 symbol="BTC/USDT")
    ours, theirs = trades.drop(columns="trade_ref"), bt_run.trades.drop(columns="trade_ref").reset_index(drop=True)
    assert len(theirs) > 0
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True, check_dtype=False)
    value, cash, _, margin = btlab.backtest.vector.simulate("sma_cross", bt_run.bars["open"].to_numpy(),
                                                             bt_run.bars["close"].to_numpy(), params, 10_000.0,
                                                             0.001, 95.0)
    assert (value == bt_run.equity["value"].to_numpy()).all()  # every bar, bit for bit
    assert (cash == bt_run.equity["cash"].to_numpy()).all()
    assert margin == bt_run.order_counts["orders_margin"]
    assert metrics.end_value == bt_run.summary.end_value
    assert abs(metrics.end_value / bt_run.summary.end_value - 1) < 1e-9
    a, b = metrics.as_dict(), bt_run.summary.as_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key] or (isinstance(a[key], float) and math.isnan(a[key]) and math.isnan(b[key])), key
    return len(theirs)


def test_parity_on_all_bars(store_path: Path) -> None:
    for fast, slow in FULL:
        assert _check_parity(store_path, fast, slow, None, None) > 500


def test_parity_over_a_grid_with_near_ties(store_path: Path) -> None:
    for fast, slow in GRID_2018:
        _check_parity(store_path, fast, slow, "2018-07-01", "2019-03-31")
    for fast, slow in GRID_2023:
        _check_parity(store_path, fast, slow, "2023-07-01", "2023-09-30")


def _running_mean(close: np.ndarray, period: int) -> np.ndarray:
    out, total = np.full(len(close), np.nan), 0.0
    for i, x in enumerate(close):
        total += x
        if i >= period:
            total -= close[i - period]
        if i >= period - 1:
            out[i] = total / period
    return out


def test_the_near_ties_are_real() -> None:
    """Backtrader's SMA is math.fsum over the window; a running sum flips a cross on the near-tie combinations and
    equal SMAs occur on real bars: the grid above would catch a kernel that got either wrong."""
    close = btc_1h()["close"].to_numpy(dtype="float64")
    means = {p: kernels.fsum_rolling_mean(close, p) for p in (5, 10, 15, 20, 30, 45, 60)}
    for p, mean in means.items():
        ref = [math.fsum(close[i - p + 1: i + 1]) / p for i in range(p - 1, len(close))]
        assert (mean[p - 1:] == np.asarray(ref)).all() and np.isnan(mean[: p - 1]).all()
    for fast, slow in NEAR_TIES:
        exact = kernels.sma_cross_signals(means[fast], means[slow], slow)
        naive = kernels.sma_cross_signals(_running_mean(close, fast), _running_mean(close, slow), slow)
        assert (exact != naive).sum() == 2
    for fast, slow in [(5, 10), (15, 30), (30, 60), (45, 60)]:
        assert (means[fast] == means[slow]).sum() == 1


def test_supports_and_refusals() -> None:
    from btlab.strategies.sma_cross import SmaCross

    assert supports("sma_cross") and supports(SmaCross)
    assert not supports("buy_hold") and not supports("btlab.strategies.buy_hold:BuyAndHold")
    bars = btc_1h().head(100)
    with pytest.raises(InvalidArgumentError, match="has no vector kernel.*Backtrader engine"):
        run_vector("buy_hold", bars)
    with pytest.raises(InvalidArgumentError, match="0 < fast < slow"):
        run_vector("sma_cross", bars, {"fast": 30, "slow": 30})
    with pytest.raises(InvalidArgumentError, match="no parameter"):
        run_vector("sma_cross", bars, {"period": 3})


def test_daily_returns_fast_path_equals_groupby() -> None:
    """compute_metrics finds the days by position (sorted index, no NaN); it must pick exactly the rows of pandas'
    ``groupby(day).last()`` it replaced, for UTC days and for XNYS sessions (pre-market and after-hours bars
    belong to their session), and fall back to groupby when the values hold a NaN."""
    from realdata import DATA

    from btlab.backtest.metrics import daily_closes, daily_returns
    from btlab.model.sessions import session_labels

    bars = btc_1h()
    value = pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["ts"]).rename("ts"))
    ref = value.groupby(value.index.floor("D")).last()
    pd.testing.assert_series_equal(daily_closes(value), ref, check_exact=True)
    prev = ref.shift(1)
    prev.iloc[0] = 1.0
    pd.testing.assert_series_equal(daily_returns(value, 1.0), (ref / prev - 1.0).rename("return"), check_exact=True)
    spy = pd.read_csv(DATA / "SPY_1min_2024-02-20_2024-05-17.csv.gz", nrows=60_000)
    idx = pd.DatetimeIndex(pd.to_datetime(spy.iloc[:, 0], utc=True)).rename("ts")
    sv = pd.Series(spy["close"].to_numpy(dtype="float64"), index=idx)
    labels = session_labels(idx, "XNYS")
    assert (labels.normalize() != idx.normalize()).any()  # after-hours bars carry the session's date
    pd.testing.assert_series_equal(daily_closes(sv, "XNYS"), sv.groupby(labels).last(), check_exact=True)
    sv.iloc[-1] = np.nan  # the last non-missing value of the day, as groupby.last()
    pd.testing.assert_series_equal(daily_closes(sv, "XNYS"), sv.groupby(labels).last(), check_exact=True)


def test_a_shared_cache_changes_nothing() -> None:
    """run_vector(cache=) reuses SMAs and the benchmark between runs on the same bars: same metrics and trades as
    runs without it, whatever the order of the combinations."""
    bars = btc_1h().tail(5_000).reset_index(drop=True)
    cache: dict = {}
    for fast, slow in [(10, 30), (5, 30), (10, 60), (10, 30)]:
        params = {"fast": fast, "slow": slow}
        m1, t1 = run_vector("sma_cross", bars, params, cache=cache)
        m2, t2 = run_vector("sma_cross", bars, params)
        pd.testing.assert_frame_equal(t1, t2, check_exact=True)
        a, b = m1.as_dict(), m2.as_dict()
        assert all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)
    assert {5, 10, 30, 60, ("benchmark", 10_000.0)} <= set(cache)
