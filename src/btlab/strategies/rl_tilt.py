"""``rl_tilt``: trade a saved tilt policy (``btlab rl train``) on its basket, out of sample.

The strategy is the :class:`~btlab.strategies.mp_tracker.MatchingPursuitTracker` machinery (the rebalance
schedule, the closes window, sells before buys) with the basket fixed by the model: its names and base weights
(:class:`~btlab.strategies.tilts.TiltSpec` in the model's sidecar, :mod:`btlab.strategies.tilt_policy`). At each
decision bar -- the bar where ``spec.warmup`` index closes are known, then every ``spec.rebalance`` index bars, as
in the environment -- it builds the SAME observation as :class:`btlab.rl.env.TiltEnv`
(:func:`~btlab.strategies.tilts.observation`, the current weights being the last target weights drifted with the
closes since, exactly as the environment drifts them), asks the policy for its action (deterministic), and trades
to ``gross * apply_tilt(base, action)`` with ``order_target_percent`` (market orders, filled at the next bar's open).
With ``untilted=True`` the action is 0: the plain basket on the same schedule (the baseline of ``btlab rl
evaluate``). The regimes of the observation are recorded as state changes (``bt_states``: machines ``sma20``,
``sma60``).

Refused (InvalidArgumentError, before the first decision): feeds other than the model's basket names followed by
its index; a run whose start (its requested start, else its first bar) is on or before the model's last training
bar, unless ``allow_overlap``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from btlab.backtest.states import StateRecording
from btlab.errors import InvalidArgumentError
from btlab.strategies.mp_tracker import MatchingPursuitTracker
from btlab.strategies.tilt_policy import check_run_range, check_symbols, load_policy, read_sidecar
from btlab.strategies.tilts import TiltSpec, apply_tilt, drift, fill_forward, observation, regime_states

__all__ = ["RlTilt"]

#: parameters of mp_tracker that the model sets: giving them to rl_tilt is refused
FROM_MODEL = ("index", "k", "lookback", "rebalance", "weights", "basket")


class RlTilt(StateRecording, MatchingPursuitTracker):
    """Trade a saved PPO tilt policy on its fixed basket (see the module text).

    Feeds: the model's basket names, then its index (``--symbols`` in that order: ``btlab rl evaluate`` does it).

    Params:
        model: path of the policy file (``.zip``; its ``.zip.json`` sidecar beside it). Required.
        allow_overlap: run even when the run's range starts inside the training range (default False).
        untilted: ignore the policy, hold the base weights (default False).
        gross: fraction of the portfolio invested (default 0.98, as mp_tracker).
        index, k, lookback, rebalance, weights, basket: set by the model (refused if given).

    Attributes:
        spec: the model's :class:`~btlab.strategies.tilts.TiltSpec`. meta: its sidecar.
        decisions: one ``{"ts": UTC close time of the decision bar, "observation": float32 array, "action":
            array, "weights": array}`` per decision.

    Raises:
        InvalidArgumentError: no ``model``, a model that cannot be read/loaded, feeds that differ from the model's,
            a run overlapping the training range (see the module text).
    """

    params: Any = (("model", None), ("allow_overlap", False), ("untilted", False))

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """``model`` is required; the mp_tracker parameters the model sets must keep their defaults."""
        if not params.get("model"):
            raise ValueError("give the policy file: model=PATH (from btlab rl train)")
        defaults = dict(MatchingPursuitTracker.params._getitems())
        changed = [n for n in FROM_MODEL if n in params and params[n] != defaults[n]]
        if changed:
            raise ValueError(f"{', '.join(changed)} are set by the model, not by parameters")
        if not 0 < float(params.get("gross", 0.98)) <= 1:
            raise ValueError(f"gross must be in (0, 1], got {params.get('gross')}")

    def __init__(self) -> None:
        self.validate_params({name: getattr(self.p, name) for name in self.p._getkeys()})
        self.meta = read_sidecar(self.p.model)
        self.spec = TiltSpec.from_dict(self.meta["spec"])
        check_symbols(self.meta, [d._name for d in self.datas])
        self.p.index, self.p.k = self.spec.index, self.spec.k
        self.p.lookback, self.p.rebalance = self.spec.warmup - 1, self.spec.rebalance
        # mp_tracker's state (its __init__ would re-check the parameters the model just set)
        self.index_data = self.getdatabyname(self.spec.index)
        self.members = [d for d in self.datas if d is not self.index_data]
        self.rebalances: list[dict[str, Any]] = []
        self._index_seen = 0
        requested = getattr(self.index_data.p, "start", None)
        if requested is not None:
            check_run_range(self.meta, requested, allow_overlap=bool(self.p.allow_overlap))
        self._range_checked = requested is not None
        self.policy = None if self.p.untilted else load_policy(self.p.model)
        self.base = np.asarray(self.spec.base_weights, dtype=float)
        self.decisions: list[dict[str, Any]] = []
        self._held: np.ndarray | None = None  # target weights of the last decision, drifted to the last close seen
        self._held_close: np.ndarray | None = None

    def next(self) -> None:
        if not self._range_checked:  # no requested start: the first bar's open time (daily bars: close - 1 day)
            first = self.index_data.datetime.datetime(0) - _dt.timedelta(days=1)
            check_run_range(self.meta, first.replace(tzinfo=_dt.timezone.utc),
                            allow_overlap=bool(self.p.allow_overlap))
            self._range_checked = True
        super().next()

    def _rebalance(self) -> None:
        window, index_window = self._window()
        closes = fill_forward(window)
        if not np.isfinite(closes).all():
            raise InvalidArgumentError(f"rl_tilt: a basket name has no close in the {len(closes)} bars before "
                                       f"{self.index_data.datetime.datetime(0):%Y-%m-%d}: not listed yet?")
        now = closes[-1]
        held = self.base if self._held is None else drift(self._held, now / self._held_close)
        obs = observation(index_window, closes, held, self.spec)
        action = np.zeros(self.spec.k) if self.policy is None else np.asarray(
            self.policy.predict(obs, deterministic=True)[0], dtype=float)
        weights = apply_tilt(self.base, action, self.spec.max_tilt)
        self._trade({i: float(w) * self.p.gross for i, w in enumerate(weights)})
        self._held, self._held_close = weights, now
        for (window_, _, _), state in zip(self.spec.machines, regime_states(index_window, self.spec)):
            self.record_state(f"sma{int(window_)}", state, self.index_data)
        ts = self.index_data.datetime.datetime(0).replace(tzinfo=_dt.timezone.utc)
        self.decisions.append({"ts": ts, "observation": obs, "action": action, "weights": weights})
        self.rebalances.append({"ts": ts, "names": list(self.spec.names), "weights": [float(w) for w in weights]})
