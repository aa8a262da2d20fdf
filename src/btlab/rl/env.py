"""The tilt environment: a gymnasium ``Env`` that over/underweights a fixed tracking basket, on real closes.

:class:`TiltEnv` steps through aligned daily closes of the basket names and the index. Observation, tilt rule and
reward are those of :mod:`btlab.strategies.tilts` (the same functions the ``rl_tilt`` strategy calls):

* decisions at bar ``t0 = spec.warmup - 1`` (0-based: the first bar with a full observation), then every
  ``spec.rebalance`` bars while ``rebalance`` more bars follow; an episode is the whole range once (the
  in-sample years when training);
* action: Box ``[-max_tilt, max_tilt]^K`` -> weights :func:`~btlab.strategies.tilts.apply_tilt`;
* reward: :func:`~btlab.strategies.tilts.step_reward` (active return net of commission on turnover, minus a
  quadratic tracking penalty), the weights then drift with prices (:func:`~btlab.strategies.tilts.drift`) until the
  next decision;
* it starts holding the base weights (no cost for the first purchase: the untilted basket pays it too).

``info`` of each step: ``ts`` (decision bar's open time, when ``times`` were given), ``weights`` and the
``step_reward`` figures. :func:`env_from_bars` builds one from btlab bar frames (``ts``, ``close``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError
from btlab.strategies.tilts import TiltSpec, apply_tilt, drift, fill_forward, observation, step_reward

__all__ = ["TiltEnv", "aligned_closes", "env_from_bars"]


class TiltEnv(gym.Env):
    """Tilts of a basket as a gymnasium environment (module text).

    Args:
        index_close: (T,) the index's closes. basket_close: (T, K) the basket names' closes on the same bars, in
            ``spec.names`` order (finite, > 0).
        spec: :class:`~btlab.strategies.tilts.TiltSpec`.
        times: (T,) the bars' open times (UTC), for ``info["ts"]``; optional.

    Raises:
        InvalidArgumentError: shapes differ, non-finite or non-positive closes, or fewer bars than
            ``spec.warmup + spec.rebalance`` (not one step).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, index_close: np.ndarray, basket_close: np.ndarray, spec: TiltSpec,
                 times: Sequence[Any] | None = None) -> None:
        super().__init__()
        self.index_close = np.asarray(index_close, dtype=float)
        self.basket_close = np.asarray(basket_close, dtype=float)
        self.spec = spec
        self.times = None if times is None else pd.DatetimeIndex(times)
        T = len(self.index_close)
        if self.basket_close.shape != (T, spec.k):
            raise InvalidArgumentError(f"basket closes must be ({T}, {spec.k}), got {self.basket_close.shape}")
        if not (np.isfinite(self.basket_close).all() and (self.basket_close > 0).all()
                and np.isfinite(self.index_close).all() and (self.index_close > 0).all()):
            raise InvalidArgumentError("closes must be finite and positive on every bar (a basket name without a "
                                       "bar on an index bar?)")
        if T < spec.warmup + spec.rebalance:
            raise InvalidArgumentError(f"{T} bars are fewer than warm-up {spec.warmup} + one step of "
                                       f"{spec.rebalance}: give a longer range")
        self.base = np.asarray(spec.base_weights, dtype=float)
        self.action_space = gym.spaces.Box(-spec.max_tilt, spec.max_tilt, shape=(spec.k,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(spec.obs_size,), dtype=np.float32)
        self.t0 = spec.warmup - 1
        self.t = self.t0
        self.held = self.base.copy()

    @property
    def steps_per_episode(self) -> int:
        """Decisions in one episode."""
        return (len(self.index_close) - 1 - self.t0) // self.spec.rebalance

    def _observe(self) -> np.ndarray:
        t = self.t
        return observation(self.index_close[: t + 1], self.basket_close[: t + 1], self.held, self.spec)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to the first decision bar holding the base weights."""
        super().reset(seed=seed)
        self.t = self.t0
        self.held = self.base.copy()
        return self._observe(), self._info()

    def _info(self) -> dict[str, Any]:
        return {"t": self.t, **({"ts": self.times[self.t]} if self.times is not None else {})}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Trade to the tilted weights at bar ``t``'s close, hold ``rebalance`` bars; see the module text."""
        h = self.spec.rebalance
        t = self.t
        weights = apply_tilt(self.base, action, self.spec.max_tilt)
        growth = self.basket_close[t + h] / self.basket_close[t]
        index_growth = self.index_close[t + h] / self.index_close[t]
        outcome = step_reward(weights, self.held, growth, index_growth, self.spec)
        info = {**self._info(), "weights": weights, **outcome}
        self.held = drift(weights, growth)
        self.t = t + h
        terminated = self.t + h > len(self.index_close) - 1
        return self._observe(), float(outcome["reward"]), terminated, False, info


def aligned_closes(bars: Mapping[str, pd.DataFrame], names: Sequence[str], index: str
                   ) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Closes of ``names`` on the index's bars: ``(index bar open times, index closes (T,), closes (T, N) with NaN
    where a name has no bar)``, from btlab bar frames (``ts``, ``close``) by symbol."""
    if index not in bars:
        raise InvalidArgumentError(f"no bars of the index {index}")
    times = pd.DatetimeIndex(bars[index]["ts"])
    index_close = bars[index]["close"].to_numpy(dtype=float)
    closes = np.column_stack([
        bars[n].set_index("ts")["close"].reindex(times).to_numpy(dtype=float) for n in names
    ]) if names else np.zeros((len(times), 0))
    return times, index_close, closes


def env_from_bars(bars: Mapping[str, pd.DataFrame], spec: TiltSpec) -> TiltEnv:
    """A :class:`TiltEnv` over ``bars`` (``{symbol: frame}``, as :func:`btlab.backtest.runner.load_backtest_bars`
    returns them) for the basket and index of ``spec``.

    Raises:
        InvalidArgumentError: a basket name or the index has no bars, or as :class:`TiltEnv`.
    """
    missing = [n for n in [*spec.names, spec.index] if n not in bars]
    if missing:
        raise InvalidArgumentError(f"no bars of {', '.join(missing)}")
    times, index_close, closes = aligned_closes(bars, spec.names, spec.index)
    return TiltEnv(index_close, fill_forward(closes), spec, times)
