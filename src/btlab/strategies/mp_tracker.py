"""Index tracking by orthogonal matching pursuit (``mp_tracker``): a basket of at most K constituents, rebalanced.

Selection (pure numpy; scikit-learn is not needed)
--------------------------------------------------
:func:`omp` is orthogonal matching pursuit (Pati, Rezaiifar & Krishnaprasad, 1993, "Orthogonal matching pursuit:
recursive function approximation with applications to wavelet decomposition"; Tropp & Gilbert, 2007, "Signal
recovery from random measurements via orthogonal matching pursuit", IEEE Trans. Inf. Theory 53(12), Algorithm 3):
with the index's returns ``y`` (T,) and the constituents' returns ``X`` (T, N), start from the residual ``r = y``
and an empty support; repeat K times: add the column most correlated with the residual,
``argmax_j |x_j . r| / ||x_j||``, then refit ``y`` by least squares on the support and set ``r`` to what is left.
This is what scikit-learn's ``OrthogonalMatchingPursuit(n_nonzero_coefs=K, fit_intercept=False)`` computes (it
normalizes the columns for the selection the same way). The weights are real numbers: they may be negative and need
not sum to one.

The documented long-only variant, :func:`omp_simplex` (``weights=simplex``, the default for trading): the same
greedy loop under the constraints ``w >= 0, sum(w) = 1`` (a portfolio). The first column is the one most
positively correlated with ``y`` (``argmax_j x_j . y / ||x_j||``). Within the constraints, shifting weight from the
current basket (fit ``f = X_S w``) to a new column j moves the fit along ``d_j = x_j - f``, so each next column is
``argmax_j d_j . r / ||d_j||`` over the columns not selected (the residual's positive correlation with that
direction, as in a Frank-Wolfe step; plain ``x_j . r`` would stop after one name whose variance exceeds the
index's), stopping early when no score is positive. The refit on the support is least squares under the
constraints, solved exactly by :func:`simplex_lstsq` (an active-set method, Lawson & Hanson 1974). Selected
names may end with weight 0 (the basket then holds fewer than K).

Strategy
--------
:class:`MatchingPursuitTracker` (bundled as ``mp_tracker``): every ``rebalance`` index bars, once ``lookback + 1``
index closes are known, it builds the simple daily returns of the last ``lookback`` bars of the index and of every
constituent with a close on each of those bars (a constituent missing any bar of the window -- not yet listed, a
missing row -- is left out of that selection), picks the basket (``basket=omp``: the pursuit above;
``equal_weight_k``: the same names, equal weights; ``top_k_corr``: the K names whose returns correlate most with
the index's, equal weights) and trades to target weights ``gross * w`` with ``order_target_percent`` (market orders,
filled at the next bar's open, commissions from the run's broker): sells first, then buys; names leaving the basket
are closed. Every rebalance is kept in ``strategy.rebalances`` (UTC time of the bar decided on, names, weights).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from btlab.backtest.compat import bt
from btlab.errors import StrategyParameterError

__all__ = ["MatchingPursuitTracker", "omp", "omp_simplex", "project_simplex", "simplex_lstsq", "top_k_correlated"]

BASKETS = ("omp", "equal_weight_k", "top_k_corr")
WEIGHTINGS = ("simplex", "ols")


def _column_norms(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=0)
    norms[norms == 0] = np.inf  # a constant-zero column is never selected
    return norms


def omp(X: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal matching pursuit: at most ``k`` columns of ``X`` and least-squares weights approximating ``y``.

    Args:
        X: (T, N) float array (e.g. daily simple returns of N constituents, T days).
        y: (T,) float array (the index's returns on the same days).
        k: largest support size, ``1 <= k``; fewer columns are chosen when the residual vanishes (relative norm
            below 1e-12) or ``k > min(T, N)``.

    Returns:
        ``(support, weights)``: column indices in order of selection (int array) and their weights (float array,
        any sign), the least-squares fit of ``y`` on ``X[:, support]``.

    Raises:
        ValueError: shapes do not match, non-finite values, or ``k < 1``.
    """
    X, y = _check(X, y, k)
    norms = _column_norms(X)
    support: list[int] = []
    weights = np.zeros(0)
    residual = y.copy()
    scale = np.linalg.norm(y) or 1.0
    for _ in range(min(k, *X.shape)):
        if np.linalg.norm(residual) <= 1e-12 * scale:
            break
        score = np.abs(X.T @ residual) / norms
        score[support] = -1.0
        support.append(int(np.argmax(score)))
        weights, *_ = np.linalg.lstsq(X[:, support], y, rcond=None)
        residual = y - X[:, support] @ weights
    return np.asarray(support, dtype=int), weights


def omp_simplex(X: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-only OMP: at most ``k`` columns and weights ``w >= 0`` with ``sum(w) == 1`` (see the module text).

    Selection by the positive correlation of the residual with each column's direction from the current fit
    (module text); refit by :func:`simplex_lstsq` on the support. Stops early when no column not yet chosen
    scores positively, or when the residual vanishes
    (relative norm below 1e-9).

    Returns:
        ``(support, weights)`` as :func:`omp`; weights are >= 0 and sum to 1 (to about 1e-12).

    Raises:
        ValueError: as :func:`omp`.
    """
    X, y = _check(X, y, k)
    norms = _column_norms(X)
    support: list[int] = []
    weights = np.zeros(0)
    residual = y.copy()
    scale = np.linalg.norm(y) or 1.0
    for _ in range(min(k, X.shape[1])):
        if support and np.linalg.norm(residual) <= 1e-9 * scale:
            break
        if support:  # moving weight from the basket to column j changes the fit along x_j - fit
            directions = X - (y - residual)[:, None]
            score = (directions.T @ residual) / _column_norms(directions)
        else:
            score = (X.T @ residual) / norms
        score[support] = -np.inf
        best = int(np.argmax(score))
        if support and not score[best] > 0:
            break
        support.append(best)
        weights = simplex_lstsq(X[:, support], y, start=np.append(weights, 0.0) if len(weights) else None)
        residual = y - X[:, support] @ weights
    return np.asarray(support, dtype=int), weights


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v`` (n,) onto ``{w : w >= 0, sum(w) = 1}`` (Held et al. 1974; Duchi et al. 2008,
    Fig. 1: sort, find the threshold ``theta``, clip ``v - theta`` at 0)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    ranks = np.arange(1, len(v) + 1)
    rho = np.flatnonzero(u - cumulative / ranks > 0)[-1]
    theta = cumulative[rho] / (rho + 1)
    return np.maximum(v - theta, 0.0)


def simplex_lstsq(A: np.ndarray, y: np.ndarray, *, start: np.ndarray | None = None) -> np.ndarray:
    """``argmin ||A w - y||^2`` subject to ``w >= 0, sum(w) = 1``, exactly.

    A primal active-set method (Lawson & Hanson 1974, "Solving Least Squares Problems", ch. 23, with the equality
    ``sum(w) = 1`` kept in every subproblem; Nocedal & Wright 2006, Algorithm 16.3): on the passive set P (the
    weights allowed to be positive), solve the equality-constrained least squares by its KKT system
    ``[[A_P^T A_P, 1], [1^T, 0]] [z; lam] = [A_P^T y; 1]``; if some ``z`` is not positive, step from ``w`` towards
    ``z`` until a weight reaches 0 and drop it from P; else ``w = z`` and, if some weight outside P has a negative
    multiplier ``(A^T (A w - y))_i + lam``, add the most negative one to P; otherwise ``w`` is optimal (KKT). The
    problem is convex, so this is the global minimum (checked in tests against scipy's SLSQP).

    Args:
        A: (T, m) float array, ``m >= 1``. y: (T,).
        start: (m,) a first guess (projected onto the simplex, :func:`project_simplex`), e.g. the previous
            solution with 0 for a new column (:func:`omp_simplex` does so); default: the best single column.

    Returns: (m,) weights, >= 0, summing to 1. (Should the method cycle -- degenerate data; not seen -- it stops
    after ``10 m + 50`` steps with the last feasible weights.)
    """
    m = A.shape[1]
    gram, target = A.T @ A, A.T @ y
    scale = max(float(np.abs(gram).max()), np.finfo(float).tiny)
    if start is None or not np.any(np.asarray(start) > 0):
        w = np.zeros(m)
        w[int(np.argmin(np.diag(gram) - 2.0 * target))] = 1.0  # ||a_j - y||^2 smallest
    else:
        w = project_simplex(np.asarray(start, dtype=float))
    passive = [int(i) for i in np.flatnonzero(w > 0)]
    for _ in range(10 * m + 50):
        z, lam = _equality_lstsq(gram, target, passive)
        if (z > 0).all():
            w = np.zeros(m)
            w[passive] = z
            multipliers = gram @ w - target + lam
            multipliers[passive] = np.inf
            j = int(np.argmin(multipliers))
            if multipliers[j] >= -1e-12 * scale:
                return w
            passive.append(j)
            continue
        current = w[passive]
        blocked = z <= 0
        alpha = float(np.min(current[blocked] / (current[blocked] - z[blocked])))
        w[passive] = current + alpha * (z - current)
        passive = [i for i in passive if w[i] > 1e-15]
        kept = np.zeros(m, dtype=bool)
        kept[passive] = True
        w[~kept] = 0.0
        w /= w.sum()
    return w


def _equality_lstsq(gram: np.ndarray, target: np.ndarray, passive: list[int]) -> tuple[np.ndarray, float]:
    """Least squares on the columns ``passive`` with weights summing to 1: ``(weights, multiplier)`` from the KKT
    system (solved by ``lstsq``, so collinear columns do not fail)."""
    p = len(passive)
    kkt = np.zeros((p + 1, p + 1))
    kkt[:p, :p] = gram[np.ix_(passive, passive)]
    kkt[:p, p] = kkt[p, :p] = 1.0
    solution = np.linalg.lstsq(kkt, np.append(target[passive], 1.0), rcond=None)[0]
    return solution[:p], float(solution[p])


def top_k_correlated(X: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` columns of ``X`` whose Pearson correlation with ``y`` is highest (ties: lower index
    first), most correlated first. Constant columns have correlation NaN and come last."""
    X, y = _check(X, y, k)
    xc, yc = X - X.mean(axis=0), y - y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (xc.T @ yc) / (np.linalg.norm(xc, axis=0) * np.linalg.norm(yc))
    corr = np.where(np.isfinite(corr), corr, -np.inf)
    return np.argsort(-corr, kind="stable")[:k]


def _check(X: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (T, N) and y (T,), got {X.shape} and {y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return X, y


class MatchingPursuitTracker(bt.Strategy):
    """Track an index with at most k constituents picked by orthogonal matching pursuit, rebalanced on a schedule.

    How it selects and trades: the module text.

    Feeds: every feed of the run; the one named ``index`` is the index (never traded), the others are the
    constituents. Daily bars are meant (returns per bar; annualization is the report's business).

    Params:
        index: name of the index feed (its symbol), default ``^GSPC``.
        k: largest basket size (default 10), >= 1.
        lookback: returns per selection (default 252 bars), >= 2.
        rebalance: bars of the index between rebalances (default 21), >= 1.
        weights: ``simplex`` (long-only OMP, weights >= 0 summing to 1; default) or ``ols`` (plain OMP weights, may
            be negative: short positions).
        basket: ``omp`` (default), ``equal_weight_k`` (the names OMP picks, equal weights) or ``top_k_corr`` (the
            k names most correlated with the index over the lookback, equal weights): the last two are baselines.
        gross: fraction of the portfolio value invested (default 0.98; the rest pays commissions and the gap
            between the decision close and the next open, so that buys are not refused for lack of cash).

    Raises:
        StrategyParameterError: when the run starts, if no feed is named ``index`` (the run is then recorded as
            failed).

    Attributes:
        rebalances: list of ``{"ts": UTC datetime of the bar decided on (bar close), "names": [...],
            "weights": [...]}``, one per rebalance.
    """

    params: Any = (("index", "^GSPC"), ("k", 10), ("lookback", 252), ("rebalance", 21), ("weights", "simplex"),
                   ("basket", "omp"), ("gross", 0.98))

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Refuse parameters that cannot work (ValueError, one line)."""
        if int(params.get("k", 10)) < 1:
            raise ValueError(f"k must be >= 1, got {params.get('k')}")
        if int(params.get("lookback", 252)) < 2:
            raise ValueError(f"lookback must be >= 2 bars, got {params.get('lookback')}")
        if int(params.get("rebalance", 21)) < 1:
            raise ValueError(f"rebalance must be >= 1 bar, got {params.get('rebalance')}")
        if params.get("weights", "simplex") not in WEIGHTINGS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTINGS)}, got {params.get('weights')!r}")
        if params.get("basket", "omp") not in BASKETS:
            raise ValueError(f"basket must be one of {', '.join(BASKETS)}, got {params.get('basket')!r}")
        if not 0 < float(params.get("gross", 0.98)) <= 1:
            raise ValueError(f"gross must be in (0, 1], got {params.get('gross')}")

    @classmethod
    def warmup_bars(cls, params: dict[str, Any]) -> int:
        """Bars of history the strategy reads before its first rebalance: ``lookback`` (it rebalances on the bar
        where ``lookback + 1`` index closes are known). A walk-forward starts each test run this many bars before
        the test window (:func:`btlab.sweep.walkforward.warmup_of`), so the first rebalance is on the first test
        bar."""
        return int(params.get("lookback", 252))

    def __init__(self) -> None:
        self.validate_params(dict(self.p._getkwargs()))  # the values of this run (_getitems: the defaults)
        names = [d._name for d in self.datas]
        if self.p.index not in names:
            raise StrategyParameterError(
                f"mp_tracker: no feed named index={self.p.index!r}: add the index to --symbols; feeds: "
                + ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""))
        self.index_data = self.getdatabyname(self.p.index)
        self.members = [d for d in self.datas if d is not self.index_data]
        self.rebalances: list[dict[str, Any]] = []
        self._index_seen = 0

    def prenext(self) -> None:  # constituents listed later than the first bar: trade before all feeds started
        self.next()

    def next(self) -> None:
        if len(self.index_data) == self._index_seen:  # no new index bar in this step
            return
        self._index_seen = len(self.index_data)
        due = self._index_seen - self.p.lookback - 1
        if due >= 0 and due % self.p.rebalance == 0:
            self._rebalance()

    def _window(self) -> tuple[np.ndarray, np.ndarray]:
        """Closes on the last ``lookback + 1`` index bars: ``(members (L+1, N) with NaN where a member has no bar
        at that time, index (L+1,))``. Read from the feeds' lines at rebalance time only (a member's bars are
        matched to the index's by bar time)."""
        size = self.p.lookback + 1
        times = np.asarray(self.index_data.datetime.get(size=size))
        closes = np.full((size, len(self.members)), np.nan)
        for i, data in enumerate(self.members):
            n = min(len(data), size)
            if not n:
                continue
            mine = np.asarray(data.datetime.get(size=n))
            at = np.searchsorted(mine, times).clip(max=n - 1)
            hit = mine[at] == times
            closes[hit, i] = np.asarray(data.close.get(size=n))[at[hit]]
        return closes, np.asarray(self.index_data.close.get(size=size))

    def _rebalance(self) -> None:
        window, index_window = self._window()
        usable = np.flatnonzero(np.isfinite(window).all(axis=0) & (window > 0).all(axis=0))
        if usable.size == 0:
            return
        X = window[1:, usable] / window[:-1, usable] - 1.0
        y = index_window[1:] / index_window[:-1] - 1.0
        chosen, weights = self.select(X, y)
        members = usable[chosen]
        target = {int(i): float(w) * self.p.gross for i, w in zip(members, weights)}
        self._trade(target)
        self.rebalances.append({
            "ts": self.index_data.datetime.datetime(0).replace(tzinfo=_dt.timezone.utc),
            "names": [self.members[i]._name for i in members],
            "weights": [float(w) for w in weights],
        })

    def select(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The basket for returns ``X`` (T, N) and index returns ``y`` (T,): ``(columns, weights)`` per ``basket``."""
        k = int(self.p.k)
        if self.p.basket == "top_k_corr":
            chosen = top_k_correlated(X, y, k)
            return chosen, np.full(len(chosen), 1.0 / len(chosen))
        chosen, weights = (omp_simplex if self.p.weights == "simplex" else omp)(X, y, k)
        if self.p.basket == "equal_weight_k":
            weights = np.full(len(chosen), 1.0 / len(chosen))
        return chosen, weights

    def _trade(self, target: dict[int, float]) -> None:
        value = self.broker.getvalue()
        orders = []
        for i, data in enumerate(self.members):
            held = self.getposition(data).size
            goal = target.get(i, 0.0)
            if not held and not goal:
                continue
            now = held * data.close[0] / value if value else 0.0
            orders.append((goal - now, i, goal))
        for _, i, goal in sorted(orders):  # sells (negative change) before buys
            self.order_target_percent(data=self.members[i], target=goal)
