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

#: cells of the (combinations, S, N) temporaries computed at once
_CHUNK_CELLS = 4_000_000


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
    score = _scorer(matrix.reshape(s, block, matrix.shape[1]), metric)
    combos = np.array(list(itertools.combinations(range(s), s // 2)), dtype=np.intp)
    chunk = max(64, _CHUNK_CELLS // (s * matrix.shape[1]))  # bounds the memory of the (combos, S, N) temporaries
    parts = []
    for first in range(0, len(combos), chunk):
        in_sample = np.zeros((len(combos[first:first + chunk]), s), dtype=bool)
        np.put_along_axis(in_sample, combos[first:first + chunk], True, axis=1)
        parts.append(_select(score(in_sample), score(~in_sample)))
    best, rank, is_perf, oos_perf = (np.concatenate(arrays) for arrays in zip(*parts))
    return _result(best, rank, is_perf, oos_perf, combos, block, trials)


def _as_matrix(returns_matrix: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
    """(T x N float array, trial names) of the input, checked."""
    columns = getattr(returns_matrix, "columns", None)
    try:
        matrix = np.asarray(returns_matrix.to_numpy(dtype="float64") if hasattr(returns_matrix, "to_numpy")
                            else returns_matrix, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"returns_matrix: not a matrix of numbers ({exc})") from None
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


def _scorer(blocks: np.ndarray, metric: str | Metric) -> Callable[[np.ndarray], np.ndarray]:
    """A function of a (C, S) boolean choice of blocks giving the (C, N) metric of every trial on the rows of each
    combination's chosen blocks. ``blocks``: the returns as (S, rows per block, N)."""
    if isinstance(metric, str):
        if metric != "sharpe":
            raise InvalidArgumentError(f"metric: unknown metric {metric!r} (known: 'sharpe', or a function)")
        return _BlockSharpe(blocks)
    if not callable(metric):
        raise InvalidArgumentError(f"metric: expected 'sharpe' or a function, got {metric!r}")
    return lambda chosen: _apply(metric, blocks, chosen)


class _BlockSharpe:
    """Per-period Sharpe ratio of every trial over the rows of chosen blocks, without re-reading the rows.

    Merges per-block means and sums of squared deviations (the pairwise update of Chan, Golub & LeVeque): after
    centring each trial on its overall mean no term cancels catastrophically, so the result equals
    ``mean / std(ddof=1)`` of the concatenated rows to rounding. Rows that are all the same value (a trial out of
    the market: all 0) are found exactly, from the blocks' minima and maxima, among the cells whose computed std
    is within rounding of 0: Sharpe 0 for 0, else +-inf.
    """

    def __init__(self, blocks: np.ndarray) -> None:
        self.size = blocks.shape[1]
        self.centre = blocks.mean(axis=(0, 1))  # (N,)
        centred = blocks - self.centre
        self.mean = centred.mean(axis=1)  # (S, N)
        self.m2 = ((centred - self.mean[:, None, :]) ** 2).sum(axis=1)  # (S, N)
        self.low, self.high = blocks.min(axis=1), blocks.max(axis=1)  # (S, N)
        self.scale = np.abs(blocks).max(axis=(0, 1))  # (N,)

    def __call__(self, chosen: np.ndarray) -> np.ndarray:
        weights = chosen.astype("float64")  # (C, S)
        n = self.size * weights.sum(axis=1, keepdims=True)  # (C, 1)
        mean = self.size * _sum_over(weights, self.mean) / n  # (C, N), centred
        m2 = _sum_over(weights, self.m2) + self.size * _sum_over(weights, self.mean**2) - n * mean**2
        std = np.sqrt(np.maximum(m2, 0.0) / (n - 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = (mean + self.centre) / std
        # rounding leaves a tiny std where every chosen row is the same value: check those cells exactly
        c, t = np.nonzero(std <= 1e-9 * self.scale)
        if len(c):
            inside = chosen[c]  # (K, S)
            low = np.where(inside, self.low[:, t].T, np.inf).min(axis=1)
            high = np.where(inside, self.high[:, t].T, -np.inf).max(axis=1)
            flat = low == high
            sharpe[c[flat], t[flat]] = np.copysign(np.inf, low[flat])
            zero = flat & (low == 0.0)
            sharpe[c[zero], t[zero]] = 0.0
        sharpe[np.isnan(sharpe)] = 0.0  # 0 / 0 left by rounding on rows not all equal: no signal either way
        return sharpe


def _sum_over(weights: np.ndarray, per_block: np.ndarray) -> np.ndarray:
    """(C, N) sums of the (S, N) per-block values over each combination's chosen blocks (``weights`` (C, S) of
    0/1). ``einsum`` without BLAS: a multithreaded BLAS call this small spends more time waiting for its threads
    than computing on a busy machine (20x slower measured on 2 shared cores)."""
    return np.einsum("cs,sn->cn", weights, per_block)


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
            raise InvalidArgumentError(f"metric: returned NaN on blocks {np.flatnonzero(mask).tolist()}")
        out[c] = scores
    return out


def _select(is_scores: np.ndarray, oos_scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """(IS winner, its OOS rank 1..N with average ranks on ties, its IS score, its OOS score) per combination."""
    rows = np.arange(len(is_scores))
    best = np.argmax(is_scores, axis=1)
    best_oos = oos_scores[rows, best]
    rank = (oos_scores < best_oos[:, None]).sum(axis=1) + ((oos_scores == best_oos[:, None]).sum(axis=1) + 1) / 2.0
    return best, rank, is_scores[rows, best], best_oos


def _result(best: np.ndarray, rank: np.ndarray, is_perf: np.ndarray, oos_perf: np.ndarray, combos: np.ndarray,
            block: int, trials: Sequence[Any]) -> PBOResult:
    """The CSCV statistics of section 3 from each combination's IS winner and its ranks and scores."""
    s = 2 * combos.shape[1]
    w = rank / (len(trials) + 1.0)
    logits = np.log(w / (1.0 - w))
    slope, intercept = _least_squares(is_perf, oos_perf)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)), logits=logits, oos_rank=w, is_best=best, is_performance=is_perf,
        oos_performance=oos_perf, degradation_slope=slope, degradation_intercept=intercept,
        prob_oos_loss=float(np.mean(oos_perf < 0.0)), n_splits=s, n_trials=len(trials), n_obs=block * s,
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
