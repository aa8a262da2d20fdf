"""The probabilistic and the deflated Sharpe ratio: is the best Sharpe ratio of a search more than luck?

Sources:

* PSR: D. H. Bailey and M. López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2),
  eq. (6) -- the probability that the true Sharpe ratio exceeds a benchmark ``SR*``, from the estimate's
  asymptotic distribution under non-normal (but IID) returns (Mertens 2002)::

      PSR(SR*) = Phi[ (SR - SR*) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2) ]

* Expected maximum Sharpe ratio ("False Strategy Theorem"): Bailey, Borwein, López de Prado and Zhu (2014),
  "Pseudo-Mathematics and Financial Charlatanism", Notices of the AMS 61(5); used as ``SR0`` in the DSR paper::

      E[max_n SR_n] ~= sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

  for N independent trials whose Sharpe ratios are normal with mean 0 and variance V across trials (gamma:
  Euler-Mascheroni constant, e: Euler's number). As in the DSR paper, the null is that every trial has a true
  Sharpe ratio of 0: the trials' mean Sharpe ratio is not added to SR0.

* DSR: D. H. Bailey and M. López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), 94-107 (SSRN 2460551):
  ``DSR = PSR(SR0)`` with ``SR0`` the expected maximum above.

Units. Every Sharpe ratio here is PER PERIOD (per observation: mean / std of the returns the statistic is computed
on; a daily series gives a daily Sharpe ratio) and ``n_obs`` counts those periods. To use an annualized Sharpe
ratio ``SR_a`` (btlab's ``metrics["sharpe"]`` is annualized with 365 days a year for crypto, 252 for equities),
convert it first: ``SR = SR_a / sqrt(periods_per_year)``, and a variance of annualized Sharpe ratios as
``V = V_a / periods_per_year``. Passing annualized values gives a meaningless (too high) probability.

Skewness ``g3`` and kurtosis ``g4`` are those of the returns of the selected strategy; ``g4`` is the plain kurtosis
(3 for normal returns), NOT the excess kurtosis. Pure numpy and math (the normal distribution from
:class:`statistics.NormalDist`); no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from btlab.errors import InvalidArgumentError

#: the Euler-Mascheroni constant gamma
EULER_GAMMA = 0.5772156649015329

_NORMAL = NormalDist()


def sharpe_ratio(returns: Iterable[float] | np.ndarray) -> float:
    """Per-period Sharpe ratio of a return series: ``mean(r) / std(r, ddof=1)``, risk-free rate 0.

    Args:
        returns: 1-D simple returns, one per period (fractions, 0.01 = 1 %), NaN-free.

    Returns: the per-period Sharpe ratio (multiply by ``sqrt(periods_per_year)`` to annualize).

    Raises:
        InvalidArgumentError: fewer than 2 returns, NaN/infinite returns, or zero variance.
    """
    r = _returns_array(returns)
    std = float(np.std(r, ddof=1))
    if not std > 0:
        raise InvalidArgumentError("returns: zero variance, the Sharpe ratio is undefined")
    return float(np.mean(r)) / std


def probabilistic_sharpe_ratio(sr: float, n_obs: int, skew: float, kurtosis: float,
                               sr_benchmark: float = 0.0) -> float:
    """Probability that the true Sharpe ratio exceeds ``sr_benchmark`` (Bailey & López de Prado 2012, eq. 6).

    ``Phi[(sr - sr_benchmark) * sqrt(n_obs - 1) / sqrt(1 - skew * sr + (kurtosis - 1) / 4 * sr^2)]``.

    Args:
        sr: the observed PER-PERIOD Sharpe ratio (see the module's *Units*).
        n_obs: number of returns it was computed from (T).
        skew: skewness of those returns (g3; 0 for normal returns).
        kurtosis: kurtosis of those returns, NOT excess (g4; 3 for normal returns).
        sr_benchmark: the per-period benchmark SR* (0: "is it positive at all?").

    Returns: a probability in [0, 1].

    Raises:
        InvalidArgumentError: ``n_obs < 2``, a NaN or infinite input, or moments no distribution has (the
            variance term ``1 - skew*sr + (kurtosis-1)/4*sr^2`` not positive; impossible when
            ``kurtosis >= 1 + skew^2``, which every distribution satisfies).
    """
    _check_finite(sr=sr, skew=skew, kurtosis=kurtosis, sr_benchmark=sr_benchmark)
    n = _check_n_obs(n_obs)
    var_term = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not var_term > 0:
        raise InvalidArgumentError(
            f"skew={skew}, kurtosis={kurtosis}: 1 - skew*sr + (kurtosis-1)/4*sr^2 = {var_term} is not positive "
            "(kurtosis must be the plain kurtosis, 3 for normal returns, not the excess kurtosis)")
    z = (sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(var_term)
    return _NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe ratios with true value 0 (False Strategy Theorem).

    ``sqrt(sr_variance) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))`` (Bailey, Borwein,
    López de Prado & Zhu 2014; ``SR0`` of the DSR paper). An approximation from extreme value theory: within 3 %
    of the exact expected maximum of N standard normals for N >= 10 (about 2.3 % high at N = 10, 0.9 % at 100,
    0.4 % at 1000; see tests/evaluation). For ``n_trials == 1`` it returns 0, the exact value (the formula itself
    diverges there).

    Args:
        n_trials: number of independent trials N (>= 1).
        sr_variance: variance of the trials' Sharpe ratios, in the same units as the Sharpe ratio it is compared
            with (per period: ``V_annual / periods_per_year``).

    Returns: the expected maximum Sharpe ratio in the units of ``sqrt(sr_variance)``.

    Raises:
        InvalidArgumentError: ``n_trials < 1``, a negative or NaN ``sr_variance``.
    """
    n = _check_n_trials(n_trials)
    _check_finite(sr_variance=sr_variance)
    if sr_variance < 0:
        raise InvalidArgumentError(f"sr_variance: must be >= 0, got {sr_variance}")
    if n == 1:
        return 0.0
    quantiles = ((1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n)
                 + EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e)))
    return math.sqrt(sr_variance) * quantiles


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of a selected strategy and what it was computed from (all per period).

    Attributes:
        dsr: the deflated Sharpe ratio, a probability in [0, 1]: the probability that the selected strategy's
            true Sharpe ratio exceeds what the best of ``n_trials`` zero-skill trials would show. 0.95 or more
            is the paper's bar for a discovery.
        sr: the selected strategy's per-period Sharpe ratio.
        sr0: the benchmark, the expected maximum Sharpe ratio of ``n_trials`` trials (:func:`expected_max_sharpe`).
        n_obs: number of returns ``sr`` was computed from.
        skew: skewness of those returns.
        kurtosis: their kurtosis (not excess; 3 for normal returns).
        n_trials: number of independent trials the selection was made from.
        sr_variance: variance of the trials' per-period Sharpe ratios.
    """

    dsr: float
    sr: float
    sr0: float
    n_obs: int
    skew: float
    kurtosis: float
    n_trials: int
    sr_variance: float

    def __float__(self) -> float:
        return self.dsr


def deflated_sharpe_ratio(
    returns: Iterable[float] | np.ndarray | None = None,
    *,
    sr: float | None = None,
    n_obs: int | None = None,
    skew: float | None = None,
    kurtosis: float | None = None,
    n_trials: int | None = None,
    sr_variance: float | None = None,
    trial_srs: Iterable[float] | np.ndarray | None = None,
) -> DeflatedSharpe:
    """The deflated Sharpe ratio (Bailey & López de Prado 2014): ``PSR(SR0)``, SR0 = expected max of the trials.

    Give the selected strategy either as ``returns`` (its per-period returns; ``sr`` = mean/std(ddof=1), ``skew``
    = m3/m2^1.5 and ``kurtosis`` = m4/m2^2 from central moments, as :func:`btlab.backtest.metrics.return_distribution`
    computes them, plus 3) or as ``sr``, ``n_obs``, ``skew``, ``kurtosis``. Give the search either as
    ``trial_srs`` (the per-period Sharpe ratios of ALL trials, the selected one included: ``n_trials`` = their
    number, ``sr_variance`` = their sample variance, ddof=1) or as ``n_trials`` and ``sr_variance``. With
    ``trial_srs``, ``n_trials`` may also be given when more trials were run than recorded (never fewer).

    Args:
        returns: 1-D per-period simple returns of the selected strategy (e.g. daily returns), NaN-free.
        sr, n_obs, skew, kurtosis: the same as numbers (per-period Sharpe ratio; kurtosis NOT excess).
        n_trials: number of independent trials (>= 1). Correlated trials count for fewer (the paper suggests the
            number of clusters of trials); counting every trial is the conservative choice.
        sr_variance: variance of the trials' per-period Sharpe ratios (annualized variance / periods per year).
        trial_srs: per-period Sharpe ratios of every trial.

    Returns: a :class:`DeflatedSharpe` (``float()`` of it is the DSR).

    Raises:
        InvalidArgumentError: both or neither of ``returns`` and ``sr`` (or a missing one of n_obs, skew,
            kurtosis), both or neither of ``trial_srs`` and ``sr_variance``, ``n_obs < 2``, ``n_trials < 1``
            (or fewer than ``len(trial_srs)``), fewer than 2 ``trial_srs``, NaN/infinite inputs, zero-variance
            returns, impossible moments (see :func:`probabilistic_sharpe_ratio`).
    """
    sr, n_obs, skew, kurtosis = _selected(returns, sr, n_obs, skew, kurtosis)
    n_trials, sr_variance = _search(n_trials, sr_variance, trial_srs)
    sr0 = expected_max_sharpe(n_trials, sr_variance)
    dsr = probabilistic_sharpe_ratio(sr, n_obs, skew, kurtosis, sr_benchmark=sr0)
    return DeflatedSharpe(dsr=dsr, sr=sr, sr0=sr0, n_obs=n_obs, skew=skew, kurtosis=kurtosis, n_trials=n_trials,
                          sr_variance=sr_variance)


def _selected(returns, sr, n_obs, skew, kurtosis) -> tuple[float, int, float, float]:
    """(sr, n_obs, skew, kurtosis) of the selected strategy, from its returns or as given."""
    given = {"sr": sr, "n_obs": n_obs, "skew": skew, "kurtosis": kurtosis}
    if returns is not None:
        if any(v is not None for v in given.values()):
            named = ", ".join(k for k, v in given.items() if v is not None)
            raise InvalidArgumentError(f"give either returns or sr/n_obs/skew/kurtosis, not both (got returns and "
                                       f"{named})")
        from btlab.backtest.metrics import return_distribution

        r = _returns_array(returns)
        shape = return_distribution(r)
        if math.isnan(shape["skew"]):
            raise InvalidArgumentError("returns: zero variance, the Sharpe ratio is undefined")
        return sharpe_ratio(r), len(r), shape["skew"], shape["kurtosis"] + 3.0
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise InvalidArgumentError(f"give returns, or all of sr, n_obs, skew, kurtosis (missing: {', '.join(missing)})")
    _check_finite(sr=sr, skew=skew, kurtosis=kurtosis)
    return float(sr), _check_n_obs(n_obs), float(skew), float(kurtosis)


def _search(n_trials, sr_variance, trial_srs) -> tuple[int, float]:
    """(n_trials, sr_variance) of the search, from the trials' Sharpe ratios or as given."""
    if trial_srs is not None:
        if sr_variance is not None:
            raise InvalidArgumentError("give either trial_srs or sr_variance, not both")
        srs = np.asarray(trial_srs if hasattr(trial_srs, "__len__") else list(trial_srs), dtype="float64")
        if srs.ndim != 1 or len(srs) < 2:
            raise InvalidArgumentError(f"trial_srs: need the Sharpe ratios of at least 2 trials, got {srs.size}")
        if not np.isfinite(srs).all():
            raise InvalidArgumentError("trial_srs: NaN or infinite Sharpe ratio among the trials")
        n = len(srs) if n_trials is None else _check_n_trials(n_trials)
        if n < len(srs):
            raise InvalidArgumentError(f"n_trials: {n} is fewer than the {len(srs)} trial_srs given")
        return n, float(np.var(srs, ddof=1))
    if n_trials is None or sr_variance is None:
        raise InvalidArgumentError("give trial_srs, or both n_trials and sr_variance")
    _check_finite(sr_variance=sr_variance)
    if sr_variance < 0:
        raise InvalidArgumentError(f"sr_variance: must be >= 0, got {sr_variance}")
    return _check_n_trials(n_trials), float(sr_variance)


def _returns_array(returns) -> np.ndarray:
    r = np.asarray(returns if hasattr(returns, "__len__") else list(returns), dtype="float64")
    if r.ndim != 1:
        raise InvalidArgumentError(f"returns: expected a 1-D series, got shape {r.shape}")
    if not np.isfinite(r).all():
        bad = int(np.flatnonzero(~np.isfinite(r))[0])
        raise InvalidArgumentError(f"returns: NaN or infinite value at position {bad}")
    if len(r) < 2:
        raise InvalidArgumentError(f"returns: need at least 2 returns, got {len(r)}")
    return r


def _check_finite(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidArgumentError(f"{name}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{name}: must be finite, got {value}")


def _check_n_obs(n_obs) -> int:
    if isinstance(n_obs, bool) or not isinstance(n_obs, (int, np.integer)) or n_obs < 2:
        raise InvalidArgumentError(f"n_obs: need at least 2 observations, got {n_obs!r}")
    return int(n_obs)


def _check_n_trials(n_trials) -> int:
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise InvalidArgumentError(f"n_trials: need at least 1 trial, got {n_trials!r}")
    return int(n_trials)
