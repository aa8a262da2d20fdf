"""The tilt environment on the bundled real bars: spaces and shapes, the reward against a hand computation from
the raw CSV files, weights under extreme actions, the observation's regimes against the hysteresis rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from btlab.backtest.runner import load_backtest_bars
from btlab.backtest.states import next_regime
from btlab.rl.env import TiltEnv, env_from_bars
from btlab.strategies.tilts import TiltSpec, apply_tilt, fill_forward, observation
from rlsetup import GSPC, INDEX, STOCKS, SYMBOLS, TRAIN

NAMES = ("JPM", "KO", "GOOGL", "XOM")
BASE = (0.4, 0.3, 0.2, 0.1)


@pytest.fixture(scope="module")
def bars(sp_store):
    _, frames, _ = load_backtest_bars("mp_tracker", symbols=[*SYMBOLS, INDEX], exchange="nyse", timeframe="1d",
                                      start=TRAIN[0], end=TRAIN[1], store=str(sp_store))
    return frames


@pytest.fixture
def env(bars):
    return env_from_bars(bars, TiltSpec(names=NAMES, base_weights=BASE))


def _raw_closes() -> pd.DataFrame:
    """Closes straight from the bundled CSV files (pandas only), indexed by session date."""
    frame = pd.concat({n: pd.read_csv(STOCKS / f"{n}_data.csv.gz", index_col="date")["close"] for n in NAMES},
                      axis=1)
    frame[INDEX] = pd.read_csv(GSPC, index_col="Date")["Close"]
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame


def test_spaces_shapes_and_episode_length(env):
    spec = env.spec
    assert env.action_space.shape == (4,)
    assert np.all(env.action_space.low == -0.05) and np.all(env.action_space.high == 0.05)
    obs, info = env.reset(seed=1)
    # 2 machines x 3 one-hot + 5 index returns + 5 basket returns + tracking error + 4 tilts
    assert obs.shape == (spec.obs_size,) == (6 + 5 + 5 + 1 + 4,) == env.observation_space.shape
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert spec.warmup == 79 and info["t"] == 78
    assert info["ts"] == pd.Timestamp("2013-06-03", tz="UTC")  # the 79th session from 2013-02-08
    assert np.all(obs[-4:] == 0)  # starts untilted
    steps, done = 0, False
    while not done:
        obs, reward, done, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert np.isfinite(reward) and not truncated and obs.shape == (spec.obs_size,)
    assert steps == env.steps_per_episode == (len(env.index_close) - 79) // 5
    assert info["ts"] <= pd.Timestamp("2016-12-30", tz="UTC")  # never past the in-sample range


def test_reward_equals_a_hand_computation_on_real_closes(env):
    raw = _raw_closes()
    env.reset()
    action = np.array([0.05, -0.05, 0.02, 0.9])  # the last is clipped to +0.05
    _, _, _, _, first = env.step(np.zeros(4))  # hold the base for one step, then tilt from drifted weights
    _, reward, _, _, info = env.step(action)
    t0, t1 = raw.index.get_loc(first["ts"]), raw.index.get_loc(info["ts"])
    assert t1 - t0 == 5
    p0, p1, p2 = raw.iloc[t0][list(NAMES)], raw.iloc[t1][list(NAMES)], raw.iloc[t1 + 5][list(NAMES)]
    held = np.array(BASE) * (p1 / p0).to_numpy()
    held /= held.sum()
    target = np.array([0.45, 0.25, 0.22, 0.15]) / 1.07
    cost = 0.001 * np.abs(target - held).sum()
    basket = float(target @ (p2 / p1).to_numpy()) - 1 - cost
    index = raw.iloc[t1 + 5][INDEX] / raw.iloc[t1][INDEX] - 1
    active = basket - index
    np.testing.assert_allclose(info["weights"], target, rtol=1e-12)
    assert info["cost"] == pytest.approx(cost, rel=1e-12)
    assert info["active"] == pytest.approx(active, rel=1e-9, abs=1e-15)
    assert reward == pytest.approx(100 * (active - 20 * active ** 2), rel=1e-9)


@pytest.mark.parametrize("action", [
    [np.inf, -np.inf, np.nan, 1e9], [-1e9] * 4, [-0.05] * 4, [0.05, -0.05, -0.05, -0.05], [1e-30, 0, 0, 0],
])
def test_weights_stay_a_portfolio_under_extreme_actions(env, action):
    env.reset()
    for _ in range(3):
        _, reward, _, _, info = env.step(np.asarray(action))
        w = info["weights"]
        assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12) and np.isfinite(reward)
        # before renormalizing, no name moved by more than max_tilt (non-finite actions count as 0)
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=float), nan=0, posinf=0, neginf=0), -0.05, 0.05)
        np.testing.assert_allclose(w * np.maximum(np.array(BASE) + a, 0).sum(), np.maximum(np.array(BASE) + a, 0),
                                   rtol=1e-12, atol=1e-15)


def test_apply_tilt_when_every_name_would_vanish():
    base = np.array([0.02, 0.03, 0.95])
    np.testing.assert_allclose(apply_tilt(base, [-0.05, -0.05, 0.0], 0.05), [0, 0, 1])
    small = np.array([0.5, 0.5])
    np.testing.assert_allclose(apply_tilt(small, [-0.5, -0.5], 0.6), small)  # all zero -> the base


def test_regimes_follow_the_hysteresis_rule_by_hand(bars):
    spec = TiltSpec(names=NAMES, base_weights=BASE)
    close = bars[INDEX]["close"].to_numpy()
    members = fill_forward(np.column_stack([bars[n].set_index("ts")["close"].reindex(bars[INDEX]["ts"])
                                            for n in NAMES]))
    for end in (79, 200, 500, 900):
        obs = observation(close[:end], members[:end], np.array(BASE), spec)
        for m, (window, enter, exit_) in enumerate(spec.machines):
            sma = pd.Series(close[:end]).rolling(window).mean().to_numpy()
            state = "neutral"
            for i in range(end - spec.regime_memory, end):
                state = next_regime(state, close[i] / sma[i] - 1, enter, exit_)
            expected = [state == s for s in ("bullish", "neutral", "bearish")]
            assert list(obs[3 * m: 3 * m + 3] == 1) == expected, (end, window)
        # lagged returns, newest first, in percent
        np.testing.assert_allclose(obs[6:11], 100 * (close[end - 1:end - 6:-1] / close[end - 2:end - 7:-1] - 1),
                                   rtol=1e-5)


def test_env_refuses_too_short_or_broken_data(bars):
    spec = TiltSpec(names=NAMES, base_weights=BASE)
    with pytest.raises(ValueError, match="fewer than warm-up"):
        TiltEnv(np.ones(80), np.ones((80, 4)), spec)
    closes = np.ones((200, 4))
    closes[50, 2] = np.nan
    with pytest.raises(ValueError, match="finite and positive"):
        TiltEnv(np.ones(200), closes, spec)
