"""Probability of backtest overfitting (CSCV) against a plain brute-force version, on noise, on an edge, on real runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from btlab.errors import InvalidArgumentError
from btlab.evaluation import overfitting, pbo


def brute_force_cscv(frame: pd.DataFrame, n_splits: int, metric=None) -> pd.DataFrame:
    """CSCV written out as the paper describes it, one combination at a time with pandas (section 2 of Bailey,
    Borwein, López de Prado & Zhu 2017): S equal blocks of rows (the oldest T mod S rows dropped), every choice of
    S/2 blocks as in-sample, the rest out of sample; Sharpe ratio = mean / std (pandas, ddof=1) of the rows; the
    in-sample winner (first on ties); its out-of-sample rank among the trials (pandas' average rank), w = rank /
    (N + 1), logit = ln(w / (1 - w)). One row per combination."""
    metric = metric or (lambda part: part.mean() / part.std())
    size = len(frame) // n_splits
    frame = frame.iloc[len(frame) - size * n_splits:]
    blocks = [frame.iloc[i * size:(i + 1) * size] for i in range(n_splits)]
    rows = []
    for combo in itertools.combinations(range(n_splits), n_splits // 2):
        train = pd.concat([blocks[i] for i in combo])
        test = pd.concat([blocks[i] for i in range(n_splits) if i not in combo])
        in_sample, out_of_sample = metric(train), metric(test)
        winner = in_sample.idxmax()
        w = out_of_sample.rank()[winner] / (frame.shape[1] + 1)
        rows.append({"winner": winner, "is": in_sample[winner], "oos": out_of_sample[winner], "w": w,
                     "logit": math.log(w / (1 - w))})
    return pd.DataFrame(rows)


def _noise(seed: int, n_obs: int = 1000, n_trials: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(0.0, 0.01, size=(n_obs, n_trials)), columns=[f"t{i}" for i in range(n_trials)])


@pytest.mark.parametrize(("n_obs", "n_splits"), [(1000, 8), (1003, 8), (250, 10), (64, 2)])
@pytest.mark.parametrize("chunked", [False, True])
def test_agrees_with_the_brute_force_version(n_obs, n_splits, chunked, monkeypatch):
    """Same winners, same ranks, same logits (to rounding) and the same PBO as the plain version; also when T is
    not a multiple of S (1003 rows: the 3 oldest are dropped), and when the splits are computed in several chunks
    (64 combinations at a time, as for large matrices)."""
    if chunked:
        monkeypatch.setattr(overfitting, "_CHUNK_CELLS", 1)
    frame = _noise(11, n_obs=n_obs, n_trials=25)
    frame.iloc[:, 3] += 0.0004  # a weak edge, so the winners are not uniform noise
    expected = brute_force_cscv(frame, n_splits)
    result = pbo(frame, n_splits=n_splits)
    assert result.n_combinations == math.comb(n_splits, n_splits // 2) == len(expected)
    assert [result.trials[i] for i in result.is_best] == expected["winner"].tolist()
    np.testing.assert_array_equal(result.oos_rank, expected["w"].to_numpy())
    np.testing.assert_allclose(result.logits, expected["logit"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.is_performance, expected["is"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(result.oos_performance, expected["oos"].to_numpy(), rtol=1e-10)
    assert result.pbo == float(np.mean(expected["logit"] <= 0))
    assert result.prob_oos_loss == float(np.mean(expected["oos"] < 0))
    slope, intercept = np.polyfit(expected["is"], expected["oos"], 1)
    assert result.degradation_slope == pytest.approx(slope, rel=1e-9)
    assert result.degradation_intercept == pytest.approx(intercept, rel=1e-9, abs=1e-12)
    assert result.n_obs == n_obs // n_splits * n_splits and result.block_size == n_obs // n_splits


def test_a_metric_function_agrees_with_the_brute_force_version():
    """A user's metric (here: mean return) gets each split's rows in time order, as a (rows, N) array."""
    frame = _noise(5, n_obs=400, n_trials=12)
    expected = brute_force_cscv(frame, 8, metric=lambda part: part.mean())
    result = pbo(frame.to_numpy(), n_splits=8, metric=lambda rows: rows.mean(axis=0))
    assert result.is_best.tolist() == expected["winner"].str[1:].astype(int).tolist()
    np.testing.assert_allclose(result.logits, expected["logit"].to_numpy(), rtol=0, atol=1e-12)
    assert result.trials == tuple(range(12))


def test_pure_noise_gives_pbo_near_one_half():
    """Trials without any edge: the in-sample winner is a random trial out of sample, so PBO is 1/2 in
    expectation (with an even N no rank sits exactly on the median). One matrix's PBO varies a lot (its
    combinations share data), so this averages 40 seeded matrices of 1000 x 40 with S = 8: the mean is within
    0.06 of 0.5 (the spread of the 40 values, printed, puts the standard error of the mean near 0.03)."""
    values = np.array([pbo(_noise(seed), n_splits=8).pbo for seed in range(40)])
    print(f"\nPBO of 40 noise matrices: mean {values.mean():.3f}, std {values.std(ddof=1):.3f}, "
          f"min {values.min():.3f}, max {values.max():.3f}")
    assert abs(values.mean() - 0.5) < 0.06
    assert values.std(ddof=1) / math.sqrt(len(values)) < 0.04


def test_a_real_edge_gives_pbo_near_zero():
    """One trial out of 40 has a true per-period Sharpe ratio of 0.15 (2.9 annualized on days), the others 0:
    the in-sample winner is that trial in more than 90 % of the splits, and PBO is near 0 (below 0.02)."""
    frame = _noise(21)
    frame["t0"] += 0.0015
    result = pbo(frame, n_splits=16)
    print(f"\nedge: PBO {result.pbo:.4f}, winner t0 in {np.mean(result.is_best == 0):.1%} of "
          f"{result.n_combinations} splits, P(OOS loss) {result.prob_oos_loss:.4f}")
    assert result.pbo < 0.02
    assert np.mean(result.is_best == 0) > 0.9
    assert result.prob_oos_loss < 0.02


def test_flat_trials_score_zero_and_never_make_nan():
    """A trial that never trades (all returns 0) has Sharpe 0 in every split, not NaN; a trial flat on some
    blocks still gets a finite Sharpe on the blocks where it moves."""
    frame = _noise(2, n_obs=160, n_trials=5)
    frame["flat"] = 0.0
    frame.loc[frame.index[:80], "t1"] = 0.0
    result = pbo(frame, n_splits=4)
    assert np.isfinite(result.logits).all()
    expected = brute_force_cscv(frame, 4, metric=lambda part: (part.mean() / part.std()).fillna(0.0))
    np.testing.assert_allclose(result.logits, expected["logit"].to_numpy(), rtol=0, atol=1e-12)


def test_a_constant_positive_trial_wins_every_split():
    """A trial earning the same positive return every period has an infinite Sharpe ratio, in and out of sample:
    it is the winner everywhere, ranked first out of sample, and the degradation fit is undefined (NaN)."""
    frame = _noise(4, n_obs=200, n_trials=6)
    frame["cash"] = 0.0001
    result = pbo(frame, n_splits=8)
    assert (np.array(result.trials)[result.is_best] == "cash").all()
    assert np.isinf(result.is_performance).all() and np.isinf(result.oos_performance).all()
    assert result.pbo == 0.0 and (result.oos_rank == 7 / 8).all()
    assert math.isnan(result.degradation_slope)


@pytest.mark.parametrize(("matrix", "kwargs", "message"), [
    (np.zeros(10), {}, "2-D"),
    (np.zeros((100, 1)), {}, "at least 2 trials"),
    (np.array([[0.1, math.nan], [0.2, 0.3]] * 20), {"n_splits": 4}, "row 0, trial 1"),
    (pd.DataFrame({"a": [0.1] * 40, "b": [math.inf] * 40}), {"n_splits": 4}, "trial 'b'"),
    (np.zeros((100, 3)), {"n_splits": 7}, "even"),
    (np.zeros((100, 3)), {"n_splits": 0}, "even"),
    (np.zeros((100, 3)), {"n_splits": 24}, "combinations"),
    (np.zeros((15, 3)), {"n_splits": 16}, "too few"),
    (np.zeros((3, 3)), {"n_splits": 2}, "need at least 4"),
    (np.zeros((100, 3)), {"metric": "sortino"}, "unknown metric"),
    (np.ones((100, 3)), {"n_splits": 4, "metric": lambda rows: rows.mean()}, "one score per trial"),
    (np.ones((100, 3)), {"n_splits": 4, "metric": lambda rows: rows.mean(axis=0) * math.nan}, "NaN"),
])
def test_bad_inputs_are_refused_with_one_line(matrix, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message) as info:
        pbo(matrix, **kwargs)
    assert "\n" not in str(info.value)


def test_pbo_of_a_real_sma_cross_grid(sma_grid):
    """The 12 real sma_cross runs (BTC/USDT 1h, daily returns 2020-2021): the fast CSCV equals the brute-force one
    at S = 12 (924 splits), and at the paper's S = 16 the statistics are printed and consistent with each other:
    PBO is the share of non-positive logits, every winner is one of the 12 trials, and the OOS Sharpe ratio of
    the in-sample winner is on average below its in-sample one (selection inflates in-sample scores)."""
    expected = brute_force_cscv(sma_grid, 12)
    at_12 = pbo(sma_grid, n_splits=12)
    assert [at_12.trials[i] for i in at_12.is_best] == expected["winner"].tolist()
    np.testing.assert_allclose(at_12.logits, expected["logit"].to_numpy(), rtol=0, atol=1e-12)
    result = pbo(sma_grid, n_splits=16)
    winners = pd.Series([result.trials[i] for i in result.is_best]).value_counts()
    print(f"\nsma_cross grid, S=16: PBO {result.pbo:.3f}, degradation slope {result.degradation_slope:.3f}, "
          f"P(OOS loss) {result.prob_oos_loss:.3f}, IS-best mean SR {result.is_performance.mean():.4f}/day, "
          f"its OOS mean SR {result.oos_performance.mean():.4f}/day; winners: {winners.head(4).to_dict()}; "
          f"S=12 PBO {at_12.pbo:.3f}")
    assert result.n_combinations == 12870 and result.n_obs == 720 and result.block_size == 45
    assert result.pbo == float(np.mean(result.logits <= 0))
    assert set(winners.index) <= set(sma_grid.columns)
    assert result.oos_performance.mean() < result.is_performance.mean()


def test_a_matrix_of_text_is_refused():
    with pytest.raises(InvalidArgumentError, match="not a matrix of numbers"):
        pbo(pd.DataFrame({"a": ["x"] * 40, "b": [0.1] * 40}), n_splits=4)
