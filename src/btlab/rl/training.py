"""Training a tilt policy: PPO (stable-baselines3) on :class:`btlab.rl.env.TiltEnv`, in-sample years only.

:func:`train`:

1. reads the daily bars of the constituents and the index from the store over ``start .. end`` (the in-sample
   range) with :func:`btlab.backtest.runner.load_backtest_bars` (the runner's own checks: gaps, venue sessions) and
   hashes them with :func:`btlab.backtest.runner.hash_bars`;
2. selects the basket once: long-only OMP (:func:`btlab.strategies.tilts.select_basket`) on the LAST ``lookback``
   returns of that range (the latest in-sample information; nothing after ``end`` is read);
3. trains PPO (``MlpPolicy``, two hidden layers of ``hidden`` units, tanh; one torch thread, CPU, seeded) over
   episodes of the whole in-sample range;
4. writes the policy file and its sidecar (:mod:`btlab.strategies.tilt_policy`) atomically (temporary files then
   renames): an interrupted training writes nothing.

Determinism: the same bars, settings and seed give the same policy parameters (one torch thread; PPO's sampling,
initialization and minibatch order all come from the seed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from btlab.errors import InvalidArgumentError, RunInterruptedError
from btlab.strategies.tilt_policy import FORMAT, file_sha256, require_rl, sidecar_path
from btlab.strategies.tilts import TiltSpec, select_basket

__all__ = ["PPO_DEFAULTS", "TrainResult", "policy_parameters", "train"]

#: PPO settings (stable-baselines3 names); ``hidden``: units per hidden layer of the policy and value nets.
PPO_DEFAULTS: dict[str, Any] = {"learning_rate": 3e-4, "n_steps": 512, "batch_size": 64, "n_epochs": 10,
                                "gamma": 0.9, "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.0, "hidden": 32}


@dataclass
class TrainResult:
    """What :func:`train` returns: the files written, the basket and settings, the sidecar, the wall time (s) and
    the mean episode reward of the untrained and trained policy on the in-sample env (deterministic actions)."""

    model: Path
    sidecar: Path
    spec: TiltSpec
    meta: dict[str, Any]
    seconds: float
    reward_untilted: float
    reward_trained: float


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("btlab", "torch", "gymnasium", "stable-baselines3", "numpy", "backtrader"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _episode_reward(env: Any, act: Callable[[np.ndarray], np.ndarray]) -> float:
    """Sum of the rewards of one episode of ``env`` under ``act`` (observation -> action)."""
    obs, _ = env.reset()
    total, done = 0.0, False
    while not done:
        obs, reward, done, _, _ = env.step(act(obs))
        total += reward
    return total


def train(symbols: Sequence[str], *, out: str | Path, index: str = "^GSPC", start: Any = "2013-02-08",
          end: Any = "2016-12-31", k: int = 10, lookback: int = 252, timesteps: int = 20_000, seed: int = 0,
          max_tilt: float = 0.05, rebalance: int = 5, commission: float = 0.001, penalty: float = 20.0,
          exchange: str = "nyse", timeframe: str = "1d", store: Any = None, ppo: dict[str, Any] | None = None,
          progress: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train a tilt policy in sample and save it (module text).

    Args:
        symbols: the constituents to select the basket from (stored symbols). index: the index's symbol.
        out: the policy file to write (``.zip``; the sidecar ``.zip.json`` beside it). Parent folders are created.
        start, end: the in-sample range (inclusive UTC days, as ``run_backtest``).
        k: largest basket size. lookback: returns of the basket selection (the last ones of the range).
        timesteps: PPO environment steps (one step = ``rebalance`` bars), >= 1.
        seed: seeds PPO and the environment.
        max_tilt, rebalance, commission, penalty: the :class:`~btlab.strategies.tilts.TiltSpec` settings.
        exchange, timeframe: the stored series (``nyse``, ``1d``). store: a Store, an address or None (default).
        ppo: overrides of :data:`PPO_DEFAULTS`.
        progress: ``(timesteps done, total)`` callback.

    Signals: in the main thread, SIGINT (Ctrl-C) and SIGTERM stop training after the current step
    (:func:`btlab.backtest.signals.stop_on_signals`); nothing is written and RunInterruptedError is raised.

    Returns: :class:`TrainResult`.

    Raises:
        InvalidArgumentError: the extra is missing, bad settings, too few bars (for the selection or one step),
            the index among the symbols; as ``load_backtest_bars`` (NoDataError, DataGapError, ...).
        RunInterruptedError: stopped by SIGINT/SIGTERM (exit code 130/143); nothing written.
    """
    require_rl()
    from btlab.backtest.recorder import RunControl
    from btlab.backtest.runner import hash_bars
    from btlab.backtest.signals import stop_on_signals
    from btlab.rl.env import env_from_bars

    names = [s for s in symbols if s]
    if not names or index in names:
        raise InvalidArgumentError("give the constituents in symbols (at least one) and the index apart, once")
    if int(timesteps) < 1 or int(lookback) < 2 or int(k) < 1:
        raise InvalidArgumentError(f"needs timesteps >= 1, lookback >= 2, k >= 1; got {timesteps}, {lookback}, {k}")
    settings = {**PPO_DEFAULTS, **(ppo or {})}
    unknown = set(settings) - set(PPO_DEFAULTS)
    if unknown:
        raise InvalidArgumentError(f"unknown PPO setting(s) {', '.join(sorted(unknown))}; known: "
                                   f"{', '.join(PPO_DEFAULTS)}")
    control = RunControl()
    with stop_on_signals(control, lambda: None):  # from here on a signal stops training, writing nothing
        config, bars, times, spec = _in_sample(names, index=index, start=start, end=end, k=k, lookback=lookback,
                                               max_tilt=max_tilt, rebalance=rebalance, commission=commission,
                                               penalty=penalty, exchange=exchange, timeframe=timeframe,
                                               store=store)
        env = env_from_bars(bars, spec)
        began = time.perf_counter()
        model = _learn(env, settings, int(timesteps), int(seed), progress, lambda: control.signum)
    seconds = time.perf_counter() - began
    reward_untilted = _episode_reward(env, lambda obs: np.zeros(spec.k))
    reward_trained = _episode_reward(env, lambda obs: model.predict(obs, deterministic=True)[0])
    meta = {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "train": {"exchange": exchange, "timeframe": timeframe, "symbols": names, "from": config.start,
                  "to": config.end, "first_bar": times[0].isoformat(), "last_bar": times[-1].isoformat(),
                  "basket_from": times[-(lookback + 1)].isoformat(), "basket_to": times[-1].isoformat(),
                  "lookback": int(lookback), "k": int(k), "bars": len(times),
                  "steps_per_episode": env.steps_per_episode},
        "data_hash": hash_bars(bars),
        "seed": int(seed), "timesteps": int(timesteps), "ppo": settings,
        "reward": {"untilted": reward_untilted, "trained": reward_trained}, "seconds": round(seconds, 3),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    model_path, side = _save(model, meta, Path(out))
    return TrainResult(model_path, side, spec, meta, seconds, reward_untilted, reward_trained)


def _in_sample(names: list[str], *, index: str, start: Any, end: Any, k: int, lookback: int, max_tilt: float,
               rebalance: int, commission: float, penalty: float, exchange: str, timeframe: str, store: Any
               ) -> tuple[Any, dict[str, Any], Any, TiltSpec]:
    """Steps 1-2 of :func:`train`: the in-sample bars and the basket, as ``(config, bars, index bar times,
    spec)``."""
    from btlab.backtest.runner import load_backtest_bars
    from btlab.rl.env import aligned_closes

    config, bars, _ = load_backtest_bars("mp_tracker", symbols=[*names, index], exchange=exchange,
                                         timeframe=timeframe, start=start, end=end, commission=commission,
                                         store=store)
    times, index_close, closes = aligned_closes(bars, names, index)
    if len(times) < lookback + 1:
        raise InvalidArgumentError(f"{len(times)} bars of {index} in the range: fewer than lookback + 1 = "
                                   f"{lookback + 1} for the basket selection")
    columns, weights = select_basket(closes[-(lookback + 1):], index_close[-(lookback + 1):], k)
    try:
        spec = TiltSpec(names=tuple(names[c] for c in columns), base_weights=tuple(float(w) for w in weights),
                        index=index, max_tilt=float(max_tilt), rebalance=int(rebalance),
                        commission=float(commission), penalty=float(penalty))
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    return config, bars, times, spec


def _learn(env: Any, settings: dict[str, Any], timesteps: int, seed: int,
           progress: Callable[[int, int], None] | None, stop: Callable[[], int | None] | None) -> Any:
    """PPO on ``env`` for ``timesteps`` steps, seeded, one torch thread; stops early through ``stop``.

    Raises:
        RunInterruptedError: ``stop`` returned a signal number.
    """
    import signal

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    ppo = dict(settings)
    hidden = int(ppo.pop("hidden"))
    ppo["batch_size"] = min(int(ppo["batch_size"]), int(ppo["n_steps"]))

    class Watch(BaseCallback):
        signum: int | None = None

        def _on_step(self) -> bool:
            if progress is not None:
                progress(min(self.num_timesteps, timesteps), timesteps)
            self.signum = stop() if stop is not None else None
            return self.signum is None

    watch = Watch()
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": [hidden, hidden], "activation_fn": torch.nn.Tanh}, **ppo)
    model.learn(total_timesteps=timesteps, callback=watch)
    if watch.signum is not None:
        name = signal.Signals(watch.signum).name
        raise RunInterruptedError(f"training stopped by {name} after {model.num_timesteps} of {timesteps} steps: "
                                  "nothing written", run_id="", signal_name=name, signal_number=watch.signum)
    return model


def _save(model: Any, meta: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out`` (.zip) and its sidecar through temporary files and renames."""
    out = out if out.suffix == ".zip" else out.with_name(out.name + ".zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    side = sidecar_path(out)
    tmp_zip = out.with_name(f".{out.stem}.{os.getpid()}.tmp.zip")
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        model.save(str(tmp_zip))
        meta = {**meta, "policy_sha256": file_sha256(tmp_zip)}
        tmp_side.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp_zip, out)
        os.replace(tmp_side, side)
    finally:
        for leftover in (tmp_zip, tmp_side):
            leftover.unlink(missing_ok=True)
    return out, side


def policy_parameters(model_path: str | Path) -> dict[str, np.ndarray]:
    """The saved policy's parameters by name (numpy), e.g. to compare two trainings."""
    from btlab.strategies.tilt_policy import load_policy

    return {k: v.detach().cpu().numpy() for k, v in load_policy(model_path).policy.state_dict().items()}
