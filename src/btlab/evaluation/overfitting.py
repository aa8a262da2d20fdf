"""Probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation (CSCV).

Source: D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu, "The Probability of Backtest Overfitting",
Journal of Computational Finance 20(4), 2017 (SSRN 2326253, 2015), section 2 (CSCV) and section 3 (statistics).

Given the per-period returns of N trials (the configurations of a search) over the same T periods:

1. the T rows are cut into S blocks of equal length (S even; the oldest ``T mod S`` rows are dropped);
2. for each of the C(S, S/2) ways to choose S/2 blocks as in-sample (IS; the other S/2 blocks, in time order,
   are out-of-sample, OOS -- every split and its mirror image appear, hence "symmetric"):
   the metric (per-period Sharpe ratio by default) of every trial on IS and on OOS; ``n*`` = the best trial IS;
   its OOS relative rank ``w = rank / (N + 1)`` (rank 1 = worst OOS, ties get their average rank);
   its logit ``lambda = ln(w / (1 - w))`` (> 0: the IS winner is above the OOS median);
3. PBO = the share of splits with ``lambda <= 0``: how often the configuration picked in-sample does no better than
   the median configuration out of sample. Near 0: the selection generalizes; near 0.5 or above: it is noise.

Also from the same splits (section 3): the performance degradation (least-squares slope and intercept of the IS
winner's OOS metric on its IS metric; a negative slope means higher IS scores were followed by lower OOS scores)
and the probability of loss (share of splits where the IS winner's OOS metric is below 0).

Pure numpy, no I/O. The rows must be in time order; periods can be days, bars, weeks, as long as every trial has a
return for every row (a flat period is a return of 0, not a missing value).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from btlab.errors import InvalidArgumentError

#: more splits than this is refused (C(22, 11) = 705,432 combinations is the largest even S below it)
MAX_COMBINATIONS = 1_000_000

Metric = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class PBOResult:
    """What CSCV found. Arrays have one entry per combination, in ``itertools.combinations(range(S), S // 2)``
    order of the in-sample blocks (block 0 = the oldest rows).

    Attributes:
        pbo: probability of backtest overfitting, share of ``logits <= 0``, in [0, 1].
        logits: lambda of each combination, ``ln(w / (1 - w))``.
        oos_rank: w, the IS winner's relative OOS rank ``rank / (N + 1)`` in (0, 1).
        is_best: column index of the IS winner of each combination (first one on ties).
        is_performance: the IS winner's metric in-sample (per period).
        oos_performance: the IS winner's metric out of sample (per period).
        degradation_slope: least-squares slope of ``oos_performance`` on ``is_performance`` (NaN when undefined,
            e.g. the IS metric is the same in every split or infinite somewhere).
        degradation_intercept: the intercept of that fit.
        prob_oos_loss: share of combinations with ``oos_performance < 0``.
        n_splits: S.
        n_trials: N.
        n_obs: rows used (T rounded down to a multiple of S).
        block_size: rows per block.
        trials: the trials' names (the DataFrame's columns, else ``0 .. N-1``).
        in_sample_blocks: the IS block indices of each combination, shape (C, S/2).
    """

    pbo: float
    logits: np.ndarray
    oos_rank: np.ndarray
    is_best: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    degradation_slope: float
    degradation_intercept: float
    prob_oos_loss: float
    n_splits: int
    n_trials: int
    n_obs: int
    block_size: int
    trials: tuple[Any, ...]
    in_sample_blocks: np.ndarray

    @property
    def n_combinations(self) -> int:
        """C(S, S/2), the number of IS/OOS splits."""
        return len(self.logits)


def pbo(returns_matrix: Any, n_splits: int = 16, metric: str | Metric = "sharpe") -> PBOResult:
    """Probability of backtest overfitting of a search, by CSCV (Bailey, Borwein, López de Prado & Zhu 2017).

    Args:
        returns_matrix: shape (T observations, N trials): per-period returns (fractions) of every trial of the
            search over the same periods, rows in time order; a 2-D numpy array or a DataFrame (one column per
            trial; its column labels name the trials). NaN/infinite values are refused.
        n_splits: S, the number of blocks, even, >= 2 (16 as in the paper); each block holds ``T // S`` rows.
        metric: ``"sharpe"`` (per-period ``mean / std(ddof=1)``, rf = 0; a block set with zero variance scores 0
            when its mean is 0, else +-inf) or a function taking a (rows, N) array and returning the N trials'
            scores (higher = better; NaN refused).

    Returns: a :class:`PBOResult`.

    Raises:
        InvalidArgumentError: not 2-D, fewer than 2 trials, NaN/infinite returns, an odd or too small or too large
            ``n_splits`` (more than :data:`MAX_COMBINATIONS` combinations), fewer rows than the blocks need
            (1 row per block, 2 per half), an unknown metric name, a metric returning NaN or the wrong shape.
    """
    matrix, trials = _as_matrix(returns_matrix)
    s = _check_splits(n_splits, len(matrix))
    block = len(matrix) // s
    matrix = matrix[len(matrix) - block * s:]  # drop the oldest T mod S rows: S equal blocks
    combos = np.array(list(itertools.combinations(range(s), s // 2)), dtype=np.intp)
    in_sample = np.zeros((len(combos), s), dtype=bool)
    np.put_along_axis(in_sample, combos, True, axis=1)
    is_scores, oos_scores = _scores(matrix, in_sample, block, metric)
    return _statistics(is_scores, oos_scores, combos, s, block, trials)


def _as_matrix(returns_matrix: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
    """(T x N float array, trial names) of the input, checked."""
    columns = getattr(returns_matrix, "columns", None)
    values = returns_matrix.to_numpy(dtype="float64") if hasattr(returns_matrix, "to_numpy") else returns_matrix
    matrix = np.asarray(values, dtype="float64")
    if matrix.ndim != 2:
        raise InvalidArgumentError(f"returns_matrix: expected a 2-D (observations x trials) matrix, got shape "
                                   f"{matrix.shape}")
    if matrix.shape[1] < 2:
        raise InvalidArgumentError(f"returns_matrix: need at least 2 trials (columns), got {matrix.shape[1]}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        name = columns[col] if columns is not None else col
        raise InvalidArgumentError(f"returns_matrix: NaN or infinite return at row {row}, trial {name!r}")
    trials = tuple(columns) if columns is not None else tuple(range(matrix.shape[1]))
    return matrix, trials


def _check_splits(n_splits: Any, n_rows: int) -> int:
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2 or n_splits % 2:
        raise InvalidArgumentError(f"n_splits: must be an even integer >= 2, got {n_splits!r}")
    s = int(n_splits)
    if math.comb(s, s // 2) > MAX_COMBINATIONS:
        raise InvalidArgumentError(f"n_splits: {s} gives {math.comb(s, s // 2):,} combinations, more than "
                                   f"{MAX_COMBINATIONS:,}; use 22 or fewer")
    min_rows = s * max(1, math.ceil(2 / (s // 2)))  # 1 row per block and 2 per half
    if n_rows < min_rows:
        raise InvalidArgumentError(f"returns_matrix: {n_rows} rows are too few for {s} blocks (need at least "
                                   f"{min_rows})")
    return s


def _scores(matrix: np.ndarray, in_sample: np.ndarray, block: int, metric: str | Metric) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """(IS scores, OOS scores), each (C, N): the metric of every trial on each combination's IS and OOS rows."""
    if isinstance(metric, str):
        if metric != "sharpe":
            raise InvalidArgumentError(f"metric: unknown metric {metric!r} (known: 'sharpe', or a function)")
        return _block_sharpe(matrix, in_sample, block), _block_sharpe(matrix, ~in_sample, block)
    if not callable(metric):
        raise InvalidArgumentError(f"metric: expected 'sharpe' or a function, got {metric!r}")
    blocks = matrix.reshape(in_sample.shape[1], block, matrix.shape[1])
    return _apply(metric, blocks, in_sample), _apply(metric, blocks, ~in_sample)


def _block_sharpe(matrix: np.ndarray, chosen: np.ndarray, block: int) -> np.ndarray:
    """Per-period Sharpe ratio of every trial over the rows of the chosen blocks, for every combination.

    Merges per-block means and sums of squared deviations (Chan, Golub & LeVeque's pairwise update) instead of
    re-reading the rows for each combination: after centring each trial on its overall mean, no term cancels
    catastrophically, so the result equals ``mean / std(ddof=1)`` of the concatenated rows to rounding.
    """
    s, n_trials = chosen.shape[1], matrix.shape[1]
    blocks = (matrix - matrix.mean(axis=0)).reshape(s, block, n_trials)
    block_mean = blocks.mean(axis=1)  # (S, N)
    block_m2 = ((blocks - block_mean[:, None, :]) ** 2).sum(axis=1)  # (S, N)
    weights = chosen.astype("float64")  # (C, S)
    n = block * chosen.sum(axis=1, keepdims=True).astype("float64")  # (C, 1)
    mean = block * (weights @ block_mean) / n  # (C, N), centred
    m2 = weights @ block_m2 + block * (weights @ block_mean**2) - n * mean**2
    var = np.maximum(m2, 0.0) / (n - 1.0)
    raw_mean = mean + matrix.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0.0, raw_mean / np.sqrt(var), np.where(raw_mean == 0.0, 0.0, np.sign(raw_mean) * np.inf))


def _apply(metric: Metric, blocks: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The user's metric on the rows of the chosen blocks (in time order) of every combination."""
    n_trials = blocks.shape[2]
    out = np.empty((len(chosen), n_trials))
    for c, mask in enumerate(chosen):
        scores = np.asarray(metric(blocks[mask].reshape(-1, n_trials)), dtype="float64")
        if scores.shape != (n_trials,):
            raise InvalidArgumentError(f"metric: must return one score per trial, shape ({n_trials},), got "
                                       f"{scores.shape}")
        if np.isnan(scores).any():
            raise InvalidArgumentError(f"metric: returned NaN for combination {c} (blocks "
                                       f"{np.flatnonzero(mask).tolist()})")
        out[c] = scores
    return out


def _statistics(is_scores: np.ndarray, oos_scores: np.ndarray, combos: np.ndarray, s: int, block: int,
                trials: Sequence[Any]) -> PBOResult:
    """The CSCV statistics of section 3 from the IS and OOS scores (C, N) of every combination."""
    n_trials = is_scores.shape[1]
    rows = np.arange(len(is_scores))
    best = np.argmax(is_scores, axis=1)
    best_oos = oos_scores[rows, best][:, None]
    rank = (oos_scores < best_oos).sum(axis=1) + ((oos_scores == best_oos).sum(axis=1) + 1) / 2.0
    w = rank / (n_trials + 1.0)
    logits = np.log(w / (1.0 - w))
    is_perf, oos_perf = is_scores[rows, best], oos_scores[rows, best]
    slope, intercept = _least_squares(is_perf, oos_perf)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)), logits=logits, oos_rank=w, is_best=best, is_performance=is_perf,
        oos_performance=oos_perf, degradation_slope=slope, degradation_intercept=intercept,
        prob_oos_loss=float(np.mean(oos_perf < 0.0)), n_splits=s, n_trials=n_trials, n_obs=block * s,
        block_size=block, trials=tuple(trials), in_sample_blocks=combos)


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line y = a + b x; NaN when x is constant or not finite."""
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan, math.nan
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx == 0.0:
        return math.nan, math.nan
    slope = float(dx @ (y - y.mean())) / sxx
    return slope, float(y.mean() - slope * x.mean())
