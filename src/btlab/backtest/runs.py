"""Recorded runs as a user sees them: listing with the status a run really has, finding, cleaning up killed runs.

A run's row in ``bt_runs`` says ``running`` from its start until the recorder writes ``finished``, ``failed`` or
``interrupted`` -- or ``stopped``: a paper run (:mod:`btlab.backtest.paper`) has no end of its own, so its normal end
is a stop (a signal, its idle timeout or its bar limit), recorded with metrics as ``finished`` is. A process killed without warning (SIGKILL, power loss) leaves ``running`` behind, so the recorder
also writes a ``heartbeat`` (UTC wall time) at the start and every few seconds. A ``running`` run whose last sign of
life -- its heartbeat, or its start time if it has none (runs recorded before heartbeats existed) -- is older than
:data:`STALE_AFTER` is **stale**: shown as ``stale``, and :func:`cleanup_stale_runs` marks it ``interrupted``.

Nothing here imports pandas or Backtrader (``btlab runs list`` starts fast).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from btlab.errors import InvalidArgumentError, RunNotFoundError
from btlab.store.base import Store

#: a ``running`` run without a heartbeat for this long is stale (the recorder writes one every few seconds)
STALE_AFTER = timedelta(minutes=2)

#: the ``config`` keys that change a run's result besides strategy, parameters and data (see BacktestConfig)
SETTINGS = ("cash", "commission", "size_pct", "stake", "slippage_pct", "slippage_fixed", "calendar")

_JSON_COLUMNS = ("params", "config", "metrics")


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    to_pydatetime = getattr(value, "to_pydatetime", None)  # a pandas Timestamp
    return _utc(to_pydatetime()) if to_pydatetime is not None else None


def last_sign_of_life(run: Mapping[str, Any]) -> datetime | None:
    """The run's heartbeat, or its start time (``ts``) when it has none; UTC."""
    return _utc(run.get("heartbeat")) or _utc(run.get("ts"))


def is_stale(run: Mapping[str, Any], *, now: datetime | None = None, stale_after: timedelta = STALE_AFTER) -> bool:
    """True if the run's stored status is ``running`` but it has shown no sign of life for ``stale_after``."""
    if run.get("status") != "running":
        return False
    seen = last_sign_of_life(run)
    return seen is None or (now or datetime.now(timezone.utc)) - seen > stale_after


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON_COLUMNS:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass  # shown as stored
    for key, value in list(row.items()):
        if isinstance(value, float) and value != value:  # NaN (no value) -> None
            row[key] = None
    return row


def _view(row: dict[str, Any], now: datetime, stale_after: timedelta) -> dict[str, Any]:
    row = _decode(row)
    row["recorded_status"] = row.get("status")
    if is_stale(row, now=now, stale_after=stale_after):
        row["status"] = "stale"
    return row


def list_runs(
    store: Store,
    *,
    limit: int = 20,
    strategy: str | None = None,
    stale_after: timedelta = STALE_AFTER,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The most recent runs, newest first, as a user should see them.

    Args:
        store: the store.
        limit: at most this many (>= 1).
        strategy: only runs of this strategy reference (as recorded: ``sma_cross``, ``pkg.mod:Class``, ...).
        stale_after: see :data:`STALE_AFTER`.
        now: the current time (UTC; tests).

    Returns:
        One dict per run with every ``bt_runs`` column (``params``/``config``/``metrics`` decoded from JSON,
        timestamps timezone-aware UTC, missing values None), where ``status`` is ``stale`` for a stale run and
        ``recorded_status`` is the stored status.

    Raises:
        InvalidArgumentError: ``limit`` < 1.
        RunNotFoundError: ``strategy`` was given and no run of it is stored (the message lists the strategies
            that have runs).
    """
    now = now or datetime.now(timezone.utc)
    rows = store.run_rows(limit=limit, strategy=strategy)
    if not rows and strategy:
        counts = store.run_strategies()
        listing = ", ".join(f"{name} ({n})" for name, n in counts.items()) or "none"
        raise RunNotFoundError(f"no run of strategy {strategy!r} in {store.address}; strategies with runs: {listing}")
    return [_view(row, now, stale_after) for row in rows]


def resolve_run_id(store: Store, ref: str) -> str:
    """The run id ``ref`` stands for: the id itself or a unique prefix or suffix of one (such as the 8 hex
    digits ``btlab runs list`` shows).

    Raises:
        RunNotFoundError: no run matches, or several do (the message lists them).
    """
    ids = store.find_run_ids(ref)
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise RunNotFoundError(f"no run {str(ref).strip()!r} in the store at {store.address} (see: btlab runs list)")
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    raise RunNotFoundError(f"run id {ref!r} is ambiguous: it matches {shown}; give more of it")


def get_run(store: Store, ref: str, *, stale_after: timedelta = STALE_AFTER,
            now: datetime | None = None) -> dict[str, Any]:
    """One run as :func:`list_runs` shows it, by id or unique part of one (:func:`resolve_run_id`).

    Raises:
        RunNotFoundError: no such run, or an ambiguous part of an id.
    """
    row = store.run_row(resolve_run_id(store, ref))
    return _view(row, now or datetime.now(timezone.utc), stale_after)


def run_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that change a run's result besides strategy, parameters and data: cash, commission, sizing
    (``size_pct`` or ``stake``), slippage, calendar -- from the run's ``config`` (older rows: their columns)."""
    config = run.get("config") if isinstance(run.get("config"), Mapping) else {}
    out = {key: config.get(key, run.get(key)) for key in SETTINGS}
    if out.get("stake") is not None:
        out["size_pct"] = None  # a fixed stake overrides the percent sizer
    return out


def find_stale_runs(store: Store, *, older_than: timedelta = STALE_AFTER,
                    now: datetime | None = None) -> list[dict[str, Any]]:
    """Runs stored as ``running`` without a sign of life for ``older_than``, oldest first (see :func:`is_stale`)."""
    if older_than <= timedelta(0):
        raise InvalidArgumentError(f"older_than must be positive, got {older_than}")
    now = now or datetime.now(timezone.utc)
    rows = store.run_rows(limit=None, status="running")
    stale = [_decode(r) for r in rows if is_stale(r, now=now, stale_after=older_than)]
    return sorted(stale, key=lambda r: last_sign_of_life(r) or now)


def cleanup_stale_runs(store: Store, *, older_than: timedelta = STALE_AFTER, now: datetime | None = None,
                       run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Mark stale runs ``interrupted``, with the error "no heartbeat since ..., presumed killed".

    Each run is checked again just before it is written, so a run that came back to life (or finished) in the
    meantime is left alone. The rest of each row (metrics, hashes, ...) is kept; ``finished_at`` is set to the
    last sign of life.

    Args:
        store: the store.
        older_than: how long without a heartbeat makes a run stale.
        now: the current time (UTC; tests).
        run_ids: only these of the stale runs (None: all).

    Returns: the rows as written (status ``interrupted``), oldest first.
    """
    now = now or datetime.now(timezone.utc)
    marked = []
    for run in find_stale_runs(store, older_than=older_than, now=now):
        if run_ids is not None and run["run_id"] not in run_ids:
            continue
        current = store.run_row(run["run_id"])
        if not is_stale(current, now=now, stale_after=older_than):
            continue
        seen = last_sign_of_life(current)
        since = f"{seen:%Y-%m-%d %H:%M:%S} UTC" if seen else "its start"
        what = "no heartbeat" if current.get("heartbeat") is not None else "no heartbeat (none recorded)"
        current.update(status="interrupted", finished_at=seen or now,
                       error=f"{what} since {since}, presumed killed (marked by btlab runs cleanup at "
                             f"{now:%Y-%m-%d %H:%M:%S} UTC)")
        store.write_run(current)
        marked.append(_decode(dict(current)))
    return marked
