"""Training and trading a tilt policy on the bundled real bars: determinism (same seed -> same parameters; the
same evaluation twice -> the same equity), the saved sidecar, the strategy's observations equal to the
environment's on the same dates, refusals (training-range overlap, other symbols, a replaced file)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from btlab.backtest.runs import list_runs
from btlab.backtest.runner import hash_bars, load_backtest_bars, run_backtest
from btlab.errors import InvalidArgumentError, StrategyParameterError
from btlab.rl import evaluate, policy_parameters, train
from btlab.rl.env import env_from_bars
from btlab.store.duckdb import DuckDBStore
from btlab.strategies.tilt_policy import load_policy, sidecar_path
from rlsetup import GSPC, INDEX, OOS, SYMBOLS, TINY, TINY_PPO, TRAIN


def test_same_seed_same_parameters_other_seed_others(trained, sp_store, tmp_path):
    seen: list[tuple[int, int]] = []
    again = train(SYMBOLS, out=tmp_path / "again.zip", index=INDEX, start=TRAIN[0], end=TRAIN[1], timesteps=TINY,
                  seed=0, store=str(sp_store), ppo=TINY_PPO, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (1, TINY) and seen[-1] == (TINY, TINY) and len(seen) == TINY  # progress on every step
    other = train(SYMBOLS, out=tmp_path / "other.zip", index=INDEX, start=TRAIN[0], end=TRAIN[1], timesteps=TINY,
                  seed=1, store=str(sp_store), ppo=TINY_PPO)
    first, second, third = (policy_parameters(r.model) for r in (trained, again, other))
    assert first.keys() == second.keys() and len(first) > 4
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert any(not np.array_equal(first[n], third[n]) for n in first)
    assert again.spec == trained.spec == other.spec  # the basket does not depend on the seed


def test_sidecar_records_config_dates_and_the_bars_hash(trained, sp_store):
    meta = json.loads(trained.sidecar.read_text())
    _, bars, _ = load_backtest_bars("mp_tracker", symbols=[*SYMBOLS, INDEX], exchange="nyse", timeframe="1d",
                                    start=TRAIN[0], end=TRAIN[1], store=str(sp_store))
    assert meta["data_hash"] == hash_bars(bars)
    assert meta["train"]["first_bar"].startswith("2013-02-08") and meta["train"]["last_bar"].startswith("2016-12-30")
    # the selection window: the last 253 closes (252 returns) of the range
    assert meta["train"]["basket_from"].startswith("2015-12-31") and meta["train"]["symbols"] == SYMBOLS
    assert meta["seed"] == 0 and meta["timesteps"] == TINY and meta["ppo"]["n_steps"] == 128
    assert meta["versions"]["torch"].startswith("2.13.0") and meta["versions"]["stable-baselines3"]
    spec = meta["spec"]
    assert 1 <= len(spec["names"]) <= 10 and set(spec["names"]) <= set(SYMBOLS)
    assert sum(spec["base_weights"]) == pytest.approx(1.0) and min(spec["base_weights"]) > 0
    assert (spec["max_tilt"], spec["rebalance"], spec["commission"], spec["penalty"]) == (0.05, 5, 0.001, 20.0)


@pytest.fixture(scope="module")
def oos_run(trained, sp_store):
    spec = trained.spec
    return run_backtest("rl_tilt", symbols=[*spec.names, INDEX], exchange="nyse", timeframe="1d", start=OOS[0],
                        end=OOS[1], cash=1_000_000, commission=0.001, params={"model": str(trained.model)},
                        store=str(sp_store), record=False)


def test_strategy_observations_equal_the_environments(trained, oos_run):
    """The env over the run's own bars, stepped with the policy's actions, sees what the strategy saw."""
    env = env_from_bars(oos_run.bars_by_symbol, trained.spec)
    policy = load_policy(trained.model)
    decisions = oos_run.strategy.decisions
    assert len(decisions) >= env.steps_per_episode >= 30
    obs, _ = env.reset()
    for i in range(env.steps_per_episode):
        decision = decisions[i]
        assert decision["ts"] == env.times[env.t].to_pydatetime() + pd.Timedelta(days=1)  # close vs open time
        np.testing.assert_array_equal(decision["observation"], obs, err_msg=str(decision["ts"]))
        action = policy.predict(obs, deterministic=True)[0]
        np.testing.assert_array_equal(decision["action"], action)
        ts = env.times[env.t]
        obs, _, _, _, info = env.step(action)
        assert info["ts"] == ts  # a step's info is about its decision bar
        np.testing.assert_allclose(decision["weights"], info["weights"], rtol=0, atol=0)
    assert decisions[0]["ts"].date() == pd.Timestamp("2017-04-27").date()  # the 79th session of 2017 (close)


def test_strategy_trades_the_tilted_basket_and_records_regimes(trained, oos_run):
    spec = trained.spec
    filled = oos_run.orders[oos_run.orders["status"] == "Completed"]
    assert set(filled["symbol"]) <= set(spec.names) and INDEX not in set(filled["symbol"])
    assert set(oos_run.states["machine"]) == {"sma20", "sma60"}
    last = oos_run.strategy.decisions[-1]["weights"]
    assert np.all(last >= 0) and last.sum() == pytest.approx(1.0)


def test_evaluate_twice_gives_identical_equity_and_records_both_runs(trained, sp_store, tmp_path):
    store = tmp_path / "copy.duckdb"
    shutil.copy(sp_store, store)
    one = evaluate(trained.model, start=OOS[0], end=OOS[1], store=str(store))
    two = evaluate(trained.model, start=OOS[0], end=OOS[1], store=str(store))
    for row in ("rl_tilt", "untilted"):
        pd.testing.assert_frame_equal(one.results[row].equity, two.results[row].equity)
    assert list(one.table.index) == ["rl_tilt", "untilted"]
    assert (one.table["first"] == one.table["first"].iloc[0]).all() and one.table["bars"].nunique() == 1
    # the index's return over the same days, from the raw file: close at the last bar / close before the first - 1
    raw = pd.read_csv(GSPC, index_col="Date")["Close"]
    raw.index = pd.to_datetime(raw.index, utc=True)
    first, last = one.table["first"].iloc[0], one.table["last"].iloc[0]
    expected = raw[last] / raw.iloc[raw.index.get_loc(first) - 1] - 1
    assert one.table["index_return"].tolist() == pytest.approx([expected, expected], rel=1e-9)
    untilted = one.results["untilted"].strategy.decisions
    assert all(np.array_equal(d["weights"], np.array(trained.spec.base_weights)) for d in untilted)
    with DuckDBStore(store, read_only=True) as st:
        runs = list_runs(st, limit=10, strategy="rl_tilt")
    assert {r["run_id"] for r in runs} == {*one.table["run_id"], *two.table["run_id"]}
    assert all(r["status"] == "finished" for r in runs), [r["status"] for r in runs]


def test_a_run_inside_the_training_range_is_refused(trained, sp_store):
    spec = trained.spec
    with pytest.raises(InvalidArgumentError, match="not after the model's training range"):
        evaluate(trained.model, start="2016-06-01", end="2017-06-30", store=str(sp_store), record=False)
    with pytest.raises(InvalidArgumentError, match="not after the model's training range"):
        run_backtest("rl_tilt", symbols=[*spec.names, INDEX], exchange="nyse", timeframe="1d", start="2016-12-30",
                     end="2017-12-31", params={"model": str(trained.model)}, store=str(sp_store), record=False)
    allowed = evaluate(trained.model, start="2016-06-01", end="2017-06-30", allow_overlap=True,
                       store=str(sp_store), record=False)
    assert allowed.table.loc["rl_tilt", "bars"] > 0


def test_other_symbols_a_replaced_file_and_missing_model_are_refused(trained, sp_store, tmp_path):
    names = list(trained.spec.names)
    with pytest.raises(InvalidArgumentError, match="trained for the feeds"):
        run_backtest("rl_tilt", symbols=[*names[::-1], INDEX], exchange="nyse", timeframe="1d", start=OOS[0],
                     params={"model": str(trained.model)}, store=str(sp_store), record=False)
    with pytest.raises(StrategyParameterError, match="model=PATH"):
        run_backtest("rl_tilt", symbols=[*names, INDEX], exchange="nyse", timeframe="1d", start=OOS[0],
                     store=str(sp_store), record=False)
    with pytest.raises(StrategyParameterError, match="set by the model"):
        run_backtest("rl_tilt", symbols=[*names, INDEX], exchange="nyse", timeframe="1d", start=OOS[0],
                     params={"model": str(trained.model), "k": 3}, store=str(sp_store), record=False)
    copy = tmp_path / "swapped.zip"
    shutil.copy(trained.model, copy)
    shutil.copy(trained.sidecar, sidecar_path(copy))
    with open(copy, "ab") as f:
        f.write(b"\0")
    with pytest.raises(InvalidArgumentError, match="sha256 differs"):
        evaluate(copy, store=str(sp_store), record=False)
    sidecar_path(copy).unlink()
    with pytest.raises(InvalidArgumentError, match="sidecar .* is missing"):
        evaluate(copy, store=str(sp_store), record=False)
