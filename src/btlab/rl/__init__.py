"""Reinforcement-learning weight tilts of an index-tracking basket (optional extra ``btlab[rl]``).

* :mod:`btlab.rl.env`: ``TiltEnv``, a gymnasium environment on btlab's bars and costs (imports gymnasium);
* :mod:`btlab.rl.training`: :func:`train`, PPO (stable-baselines3) with a fixed seed on the in-sample years, saved
  with its config and data hashes;
* :mod:`btlab.rl.evaluation`: :func:`evaluate`, the ``rl_tilt`` strategy out of sample beside the untilted basket.

What the environment and the strategy share (observation, tilt rule, reward, the saved file) lives below, in
:mod:`btlab.strategies.tilts` and :mod:`btlab.strategies.tilt_policy`. ``import btlab.rl`` works without the extra;
``train`` and ``evaluate`` refuse in one line when it is missing.
"""

from __future__ import annotations

from btlab.rl.evaluation import EvaluationResult, evaluate
from btlab.rl.training import TrainResult, policy_parameters, train

__all__ = ["EvaluationResult", "TrainResult", "evaluate", "policy_parameters", "train"]
