"""Weight tilts of a fixed index-tracking basket: the observation, the tilt rule and the reward, shared by the
reinforcement-learning environment (:mod:`btlab.rl.env`) and the Backtrader strategy ``rl_tilt``
(:mod:`btlab.strategies.rl_tilt`), so both see exactly the same numbers on the same date.

Everything here is a pure function of closes known at a bar's close (numpy, no I/O, no torch).

Basket and tilts
----------------
A basket is ``K`` constituents with base weights ``b`` (``b >= 0``, ``sum(b) = 1``; e.g. :func:`select_basket`:
the long-only matching pursuit of :mod:`btlab.strategies.mp_tracker`). An action ``a`` (K,) is clipped to
``[-max_tilt, +max_tilt]`` and the held weights are ``w = max(b + a, 0) / sum(max(b + a, 0))`` (:func:`apply_tilt`;
back to ``b`` if every name would be 0), so ``w >= 0`` and ``sum(w) = 1`` whatever the action.

Observation (float32, :func:`observation`; ``n`` = closes up to and including the decision bar ``t``)
-----------------------------------------------------------------------------------------------------
1. regimes: for each machine ``(window, enter_pct, exit_pct)`` of :attr:`TiltSpec.machines` (default 20-bar and
   60-bar SMA of the index), a :class:`btlab.backtest.states.HysteresisMachine` replayed over the deviations
   ``close / SMA(window) - 1`` of the last ``regime_memory`` bars (so the state is a function of the trailing
   window only: the environment and the strategy agree whatever date they started on), one-hot over
   ``bullish, neutral, bearish`` (3 per machine);
2. the index's simple returns of the last ``lags`` bars, in percent (newest first);
3. the base basket's returns (``b`` held for one bar: ``sum_i b_i r_i``) of the last ``lags`` bars, in percent;
4. the trailing tracking error of the CURRENT weights: ``std(R w - r_index, ddof=1) * sqrt(252)`` over the last
   ``te_window`` bars (annualized, in percent);
5. the current tilts ``w - b`` divided by ``max_tilt`` (K values, about -1..1).

Size ``3 * len(machines) + 2 * lags + 1 + K``. Bars needed before the first decision: :attr:`TiltSpec.warmup`.

Reward of one step (:func:`step_reward`; the environment's step = ``rebalance`` bars)
-------------------------------------------------------------------------------------
From the drifted weights ``w_prev`` held before the decision to the new ``w``: turnover ``u = sum |w - w_prev|``,
cost ``c = commission * u``; over the next ``rebalance`` bars (weights drift with prices, no trading) the basket's
return ``r_p = sum_i w_i (P_i,t+h / P_i,t) - 1 - c`` and the index's ``r_x = I_t+h / I_t - 1``; active return
``a = r_p - r_x``; reward ``= 100 * (a - penalty * a^2)``: the active return net of costs, minus a quadratic
tracking penalty (``penalty`` 20 by default: a 1 % miss over a step costs 0.2 % of reward, a 5 % miss as much as it
earns). Closes are close-to-close (the Backtrader strategy fills at the next open: a small difference the
out-of-sample run measures honestly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from btlab.backtest.states import BEARISH, BULLISH, NEUTRAL, HysteresisMachine, check_band
from btlab.strategies.mp_tracker import omp_simplex

__all__ = ["TiltSpec", "apply_tilt", "drift", "fill_forward", "observation", "regime_states", "select_basket",
           "step_reward"]

REGIME_ORDER = (BULLISH, NEUTRAL, BEARISH)
PERIODS = 252  # sessions a year (daily equity bars)


@dataclass(frozen=True)
class TiltSpec:
    """What the environment and the strategy share: the basket and every setting of the observation and reward.

    Attributes:
        names: the basket's constituents (stored symbols), in action order. base_weights: their weights (sum 1).
        index: the index's symbol.
        max_tilt: largest over/underweight per name (fraction of the portfolio), > 0.
        rebalance: bars between decisions (the environment's step), >= 1.
        machines: ``((window, enter_pct, exit_pct), ...)`` regime machines on the index's SMA deviation.
        regime_memory: bars over which each machine is replayed, >= 1.
        lags: returns per series in the observation, >= 1. te_window: bars of the trailing tracking error, >= 2.
        commission: fraction of traded value (0.001 = 0.1 %). penalty: quadratic tracking penalty of the reward.
    """

    names: tuple[str, ...]
    base_weights: tuple[float, ...]
    index: str = "^GSPC"
    max_tilt: float = 0.05
    rebalance: int = 5
    machines: tuple[tuple[int, float, float], ...] = ((20, 0.02, 0.005), (60, 0.04, 0.01))
    regime_memory: int = 20
    lags: int = 5
    te_window: int = 20
    commission: float = 0.001
    penalty: float = 20.0

    def __post_init__(self) -> None:
        if not self.names or len(self.names) != len(self.base_weights):
            raise ValueError(f"names ({len(self.names)}) and base_weights ({len(self.base_weights)}) must be as many, "
                             "at least one")
        if not self.max_tilt > 0 or self.rebalance < 1 or self.regime_memory < 1 or self.lags < 1 \
                or self.te_window < 2:
            raise ValueError("needs max_tilt > 0, rebalance >= 1, regime_memory >= 1, lags >= 1, te_window >= 2")
        for window, enter, exit_ in self.machines:
            if int(window) < 2:
                raise ValueError(f"a regime machine's SMA window must be >= 2 bars, got {window}")
            check_band(enter, exit_)

    @property
    def k(self) -> int:
        """Basket size."""
        return len(self.names)

    @property
    def warmup(self) -> int:
        """Closes needed up to a decision bar (inclusive) for a full observation and a trailing tracking error."""
        longest = max((int(w) for w, _, _ in self.machines), default=1)
        return max(longest + self.regime_memory - 1, self.lags + 1, self.te_window + 1)

    @property
    def obs_size(self) -> int:
        """Length of :func:`observation`'s vector."""
        return 3 * len(self.machines) + 2 * self.lags + 1 + self.k

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists for tuples)."""
        out = asdict(self)
        out["machines"] = [list(m) for m in self.machines]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TiltSpec:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        fields["names"] = tuple(fields["names"])
        fields["base_weights"] = tuple(float(w) for w in fields["base_weights"])
        fields["machines"] = tuple((int(w), float(e), float(x)) for w, e, x in fields.get("machines", ()))
        return cls(**fields)


def select_basket(closes: np.ndarray, index_close: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The basket: long-only OMP (:func:`btlab.strategies.mp_tracker.omp_simplex`) of the index's simple returns on
    the constituents' over the given closes.

    Args:
        closes: (L+1, N) constituents' closes on the index's bars (NaN where a name has no bar: such a name is
            left out). index_close: (L+1,).
        k: largest basket size.

    Returns: ``(columns, weights)``: the chosen columns of ``closes`` with a positive weight, in selection order,
    and their weights (sum 1).

    Raises:
        ValueError: no constituent has a close on every bar.
    """
    usable = np.flatnonzero(np.isfinite(closes).all(axis=0) & (closes > 0).all(axis=0))
    if usable.size == 0:
        raise ValueError("no constituent has a close on every bar of the selection window")
    X = closes[1:, usable] / closes[:-1, usable] - 1.0
    y = index_close[1:] / index_close[:-1] - 1.0
    chosen, weights = omp_simplex(X, y, k)
    keep = weights > 0
    return usable[chosen[keep]], weights[keep] / weights[keep].sum()


def apply_tilt(base: np.ndarray, action: np.ndarray, max_tilt: float) -> np.ndarray:
    """Held weights from base weights ``base`` (K,) and an action (K,): clip to ``[-max_tilt, max_tilt]``, add,
    floor at 0, renormalize to sum 1 (``base`` again if nothing is left). Non-finite actions count as 0."""
    a = np.clip(np.nan_to_num(np.asarray(action, dtype=float), nan=0.0, posinf=0.0, neginf=0.0), -max_tilt, max_tilt)
    w = np.maximum(np.asarray(base, dtype=float) + a, 0.0)
    total = w.sum()
    return w / total if total > 0 else np.asarray(base, dtype=float).copy()


def regime_states(index_close: np.ndarray, spec: TiltSpec) -> list[str]:
    """The state of each machine of ``spec`` at the last close of ``index_close`` (>= :attr:`TiltSpec.warmup`
    closes): the machine replayed from ``neutral`` over the last ``regime_memory`` SMA deviations."""
    closes = np.asarray(index_close, dtype=float)
    states = []
    for i, (window, enter, exit_) in enumerate(spec.machines):
        window = int(window)
        sma = np.convolve(closes[-(window + spec.regime_memory - 1):], np.ones(window) / window, mode="valid")
        deviation = closes[-spec.regime_memory:] / sma - 1.0
        machine = HysteresisMachine(f"sma{window}", enter, exit_)
        for d in deviation:
            machine.step(float(d))
        states.append(machine.state)
    return states


def fill_forward(closes: np.ndarray) -> np.ndarray:
    """(T, K) closes with each NaN replaced by the name's last close before it (a session without a bar of that
    name: its price did not move); leading NaNs stay NaN."""
    frame = np.array(closes, dtype=float)
    for j in range(frame.shape[1]):
        column = frame[:, j]
        known = np.where(np.isfinite(column), np.arange(len(column)), -1)
        last = np.maximum.accumulate(known)
        frame[:, j] = np.where(last >= 0, column[np.maximum(last, 0)], np.nan)
    return frame


def _returns(closes: np.ndarray) -> np.ndarray:
    return closes[1:] / closes[:-1] - 1.0


def observation(index_close: np.ndarray, basket_close: np.ndarray, weights: np.ndarray, spec: TiltSpec
                ) -> np.ndarray:
    """The observation at the last bar of the given closes (layout: module text).

    Args:
        index_close: (n,) the index's closes up to the decision bar, ``n >= spec.warmup``.
        basket_close: (n, K) the basket names' closes on the same bars (finite, > 0).
        weights: (K,) the weights held now (after drift), summing to 1.
        spec: the :class:`TiltSpec`.

    Returns: float32 array (``spec.obs_size``,).

    Raises:
        ValueError: fewer closes than ``spec.warmup`` or mismatched shapes.
    """
    index_close = np.asarray(index_close, dtype=float)
    basket_close = np.asarray(basket_close, dtype=float)
    n = len(index_close)
    if n < spec.warmup or basket_close.shape != (n, spec.k):
        raise ValueError(f"needs {spec.warmup} closes of the index and (n, {spec.k}) basket closes, got "
                         f"{index_close.shape} and {basket_close.shape}")
    onehots = [np.array([s == r for r in REGIME_ORDER], dtype=float) for s in regime_states(index_close, spec)]
    base = np.asarray(spec.base_weights, dtype=float)
    w = np.asarray(weights, dtype=float)
    idx_r = _returns(index_close[-(spec.lags + 1):])[::-1]
    basket_r = (_returns(basket_close[-(spec.lags + 1):]) @ base)[::-1]
    window = spec.te_window + 1
    active = _returns(basket_close[-window:]) @ w - _returns(index_close[-window:])
    te = float(np.std(active, ddof=1) * np.sqrt(PERIODS))
    parts = [*onehots, 100.0 * idx_r, 100.0 * basket_r, [100.0 * te], (w - base) / spec.max_tilt]
    return np.concatenate([np.asarray(p, dtype=float) for p in parts]).astype(np.float32)


def drift(weights: np.ndarray, growth: np.ndarray) -> np.ndarray:
    """Weights after prices moved by ``growth`` (K,) = ``P_end / P_start`` with no trade: ``w g / sum(w g)``."""
    moved = np.asarray(weights, dtype=float) * np.asarray(growth, dtype=float)
    return moved / moved.sum()


def step_reward(new: np.ndarray, held: np.ndarray, growth: np.ndarray, index_growth: float, spec: TiltSpec
                ) -> dict[str, float]:
    """One step's outcome (module text): trade from ``held`` to ``new`` weights, hold while prices move by
    ``growth`` (K,) (``P_t+h / P_t``) and the index by ``index_growth``.

    Returns: ``{reward, active, basket_return, index_return, turnover, cost}`` (fractions; reward as defined).
    """
    turnover = float(np.abs(np.asarray(new) - np.asarray(held)).sum())
    cost = spec.commission * turnover
    basket_return = float(np.asarray(new) @ np.asarray(growth)) - 1.0 - cost
    index_return = float(index_growth) - 1.0
    active = basket_return - index_return
    return {"reward": 100.0 * (active - spec.penalty * active * active), "active": active,
            "basket_return": basket_return, "index_return": index_return, "turnover": turnover, "cost": cost}
