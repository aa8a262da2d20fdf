"""A saved tilt policy: the stable-baselines3 PPO file (``NAME.zip``) and its JSON sidecar (``NAME.zip.json``).

The sidecar (written by :func:`btlab.rl.train`) holds ``format`` (:data:`FORMAT`), ``spec`` (the
:class:`btlab.strategies.tilts.TiltSpec`: basket names, base weights, index, every observation/reward setting),
``train`` (exchange, timeframe, universe ``symbols``, the requested range ``from``/``to`` and the bars used
``first_bar``/``last_bar``, ISO 8601 UTC; the bars the basket was selected on ``basket_from``/``basket_to``),
``data_hash`` (:func:`btlab.backtest.runner.hash_bars` of the bars used), ``seed``, ``timesteps``, ``ppo`` (the
PPO settings), ``versions`` (btlab, torch, gymnasium, stable-baselines3, numpy) and ``policy_sha256`` (sha256 of the
zip, so a zip swapped after training is refused).

Loading needs the optional extra ``btlab[rl]``; without it :func:`load_policy` raises one line saying how to
install it (:data:`EXTRA_HINT`). Reading the sidecar and the checks here need nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from btlab.errors import InvalidArgumentError

__all__ = ["EXTRA_HINT", "FORMAT", "check_run_range", "check_symbols", "file_sha256", "load_policy", "read_sidecar",
           "require_rl", "sidecar_path"]

FORMAT = "btlab-rl-tilt/1"
EXTRA_HINT = "btlab rl needs the optional extra: pip install 'btlab[rl]'"


def require_rl() -> None:
    """Import the extra's packages (torch, gymnasium, stable-baselines3) or refuse in one line.

    Raises:
        InvalidArgumentError: :data:`EXTRA_HINT` (naming the missing package).
    """
    try:
        import gymnasium  # noqa: F401
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise InvalidArgumentError(f"{EXTRA_HINT} ({exc.name or exc} is missing)") from None


def sidecar_path(model: str | Path) -> Path:
    """``models/x.zip`` -> ``models/x.zip.json`` (named after the whole file name, so that no other file
    called ``x.json`` -- e.g. the output of ``btlab rl evaluate --format json > x.json`` -- is taken for it)."""
    path = Path(model)
    return path.with_name(path.name + ".json")


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sidecar(model: str | Path) -> dict[str, Any]:
    """The sidecar of the policy file ``model`` (``.zip``), checked against the zip.

    Raises:
        InvalidArgumentError: the zip or sidecar is missing or unreadable, of another format, or the zip's sha256
            differs from the one recorded at training.
    """
    path = Path(model)
    side = sidecar_path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"model file not found: {path}")
    if not side.is_file():
        raise InvalidArgumentError(f"model {path}: its sidecar {side} is missing (written by btlab rl train)")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"model sidecar {side}: not readable JSON ({exc})") from None
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != FORMAT:
        raise InvalidArgumentError(f"model sidecar {side}: format {found!r} is not {FORMAT!r}")
    if meta.get("policy_sha256") != file_sha256(path):
        raise InvalidArgumentError(f"model {path}: its sha256 differs from the one in {side} (file replaced after "
                                   "training?)")
    return meta


def check_symbols(meta: dict[str, Any], feeds: list[str]) -> None:
    """Refuse a run whose feeds are not the model's basket names followed by its index, in that order.

    Raises:
        InvalidArgumentError: naming both lists.
    """
    expected = [*meta["spec"]["names"], meta["spec"]["index"]]
    if list(feeds) != expected:
        raise InvalidArgumentError(f"the model was trained for the feeds {','.join(expected)} (basket, then index); "
                                   f"this run has {','.join(feeds)}")


def check_run_range(meta: dict[str, Any], start: Any, *, allow_overlap: bool = False) -> None:
    """Refuse a run starting on or before the last training bar (unless ``allow_overlap``): a run inside the
    training range, or before it (the policy has seen what followed), is not out of sample.

    Args:
        meta: the sidecar. start: the run's first bar time or requested start (anything ``pd.Timestamp`` takes;
            naive = UTC).

    Raises:
        InvalidArgumentError: the ranges overlap, naming both.
    """
    if allow_overlap:
        return
    trained_to = pd.Timestamp(meta["train"]["last_bar"])
    begin = pd.Timestamp(start)
    begin = begin.tz_localize("UTC") if begin.tzinfo is None else begin.tz_convert("UTC")
    if begin <= trained_to:
        raise InvalidArgumentError(
            f"the run starts {begin:%Y-%m-%d}, not after the model's training range {meta['train']['first_bar'][:10]}"
            f" .. {meta['train']['last_bar'][:10]}: start after it to judge the policy out of sample (or allow the "
            "overlap explicitly: allow_overlap=True, --allow-overlap)")


def load_policy(model: str | Path) -> Any:
    """The PPO policy saved at ``model`` (a ``stable_baselines3.PPO``, on the CPU, one torch thread).

    Raises:
        InvalidArgumentError: the extra is not installed (:data:`EXTRA_HINT`), or the file cannot be loaded.
    """
    require_rl()
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    try:
        return PPO.load(str(model), device="cpu")
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign zip: one line
        raise InvalidArgumentError(f"model {model}: cannot be loaded by stable-baselines3 ({exc})") from None
