"""Finite-state machines of a strategy, and the hook through which any strategy publishes its state changes.

Two pieces, usable separately:

* :class:`HysteresisMachine`: a three-state machine (``bullish`` / ``neutral`` / ``bearish``) driven by how far a
  close is from its simple moving average, with a hysteresis band (:func:`next_regime` is the rule itself, a pure
  function, so tests and notebooks can apply it to a pandas series);
* :class:`StateRecording`: a mixin for a Backtrader strategy. ``self.record_state(machine, state, data)`` records a
  change of ``machine`` to ``state``, decided by the bar of ``data`` that just closed; calling it with an unchanged
  state records nothing. The btlab recorder (:class:`btlab.backtest.recorder.Recorder`) reads the changes from the
  strategy's :attr:`StateRecording.state_changes` list while the run runs and writes them in its batches to the
  ``bt_states`` table (``ts, run_id, machine, from_state, to_state``); ``result.states`` holds them after the run.

Time of a change: the CLOSE time (UTC) of the bar that decided it -- the moment the new state became known, which
is Backtrader's datetime of that bar for btlab feeds (see :mod:`btlab.backtest.feed`). Unlike equity and trades
(stored at bar open times), a state holds from its ``ts`` on: it was not known during the deciding bar. The first
state of a machine is recorded as a change from :data:`WARMUP`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The ``from_state`` of a machine's first recorded state (its indicators were still warming up before it).
WARMUP = "warmup"

BULLISH, NEUTRAL, BEARISH = "bullish", "neutral", "bearish"
#: The states of a :class:`HysteresisMachine`, from most to least bullish.
REGIMES: tuple[str, ...] = (BULLISH, NEUTRAL, BEARISH)


def check_band(enter_pct: float, exit_pct: float) -> None:
    """Refuse a hysteresis band that cannot work: needs ``-enter_pct < exit_pct < enter_pct`` (fractions).

    Raises:
        ValueError: one line naming both values.
    """
    if not (enter_pct > 0 and -enter_pct < exit_pct < enter_pct):
        raise ValueError(
            f"needs enter_pct > 0 and -enter_pct < exit_pct < enter_pct (fractions of the SMA), got "
            f"enter_pct={enter_pct}, exit_pct={exit_pct}"
        )


def next_regime(state: str, deviation: float, enter_pct: float, exit_pct: float) -> str:
    """The rule of a :class:`HysteresisMachine`: the state after a bar, given the state before it.

    ``deviation = close / SMA - 1`` of the bar that just closed (a fraction). With ``e = enter_pct`` and
    ``x = exit_pct`` (``-e < x < e``), strict inequalities throughout:

    * ``neutral``: to ``bullish`` if ``deviation > e``; to ``bearish`` if ``deviation < -e``; else stays;
    * ``bullish``: to ``bearish`` if ``deviation < -e``; else to ``neutral`` if ``deviation < x``; else stays;
    * ``bearish``: to ``bullish`` if ``deviation > e``; else to ``neutral`` if ``deviation > -x``; else stays.

    So a machine enters ``bullish`` only above ``+e`` and leaves it only below ``x``: a close moving inside the band
    ``[x, e]`` never flips it back and forth (hysteresis; mirror image for ``bearish``). A NaN deviation keeps
    the state.
    """
    if deviation != deviation:  # NaN
        return state
    if state == BULLISH:
        return BEARISH if deviation < -enter_pct else NEUTRAL if deviation < exit_pct else BULLISH
    if state == BEARISH:
        return BULLISH if deviation > enter_pct else NEUTRAL if deviation > -exit_pct else BEARISH
    return BULLISH if deviation > enter_pct else BEARISH if deviation < -enter_pct else NEUTRAL


@dataclass
class HysteresisMachine:
    """One regime machine: its state and the rule :func:`next_regime` with ``enter_pct``/``exit_pct``.

    ``state`` is :data:`WARMUP` until the first :meth:`step`, which starts from ``neutral``.

    Raises:
        ValueError: (on creation) a band refused by :func:`check_band`.
    """

    name: str
    enter_pct: float
    exit_pct: float
    state: str = WARMUP

    def __post_init__(self) -> None:
        check_band(self.enter_pct, self.exit_pct)

    def step(self, deviation: float) -> str:
        """Apply the rule to one closed bar's ``close / SMA - 1``; return the new state (also in :attr:`state`)."""
        before = NEUTRAL if self.state == WARMUP else self.state
        self.state = next_regime(before, deviation, self.enter_pct, self.exit_pct)
        return self.state


@dataclass(frozen=True, slots=True)
class StateChange:
    """One recorded change: ``dt`` = Backtrader float datetime of the deciding bar (its close for btlab feeds)."""

    dt: float
    machine: str
    from_state: str
    to_state: str


class StateRecording:
    """Mixin for a ``bt.Strategy`` (list it first: ``class MyStrategy(StateRecording, bt.Strategy)``).

    Call :meth:`record_state` from ``next()`` whenever a machine's state may have changed; changes are appended to
    :attr:`state_changes` (which the btlab recorder writes to ``bt_states``), repeats are ignored. Works in plain
    Backtrader too (nothing is written then; the list is still there).
    """

    def record_state(self, machine: str, state: str, data: Any = None) -> bool:
        """Record that ``machine`` is now in ``state``, decided by the bar of ``data`` that just closed.

        Args:
            machine: the machine's name (e.g. its timeframe ``"1d"``), stored in ``bt_states.machine``.
            state: the new state (any short text, e.g. ``"bullish"``).
            data: the feed whose bar decided it (default: the strategy's clock, ``self.datas[0]``); its current
                datetime is the change's time.

        Returns: True if this was a change (recorded), False if ``machine`` already was in ``state``.
        """
        current = self.__dict__.setdefault("_btlab_states", {})
        before = current.get(machine, WARMUP)
        if state == before:
            return False
        feed = data if data is not None else self.datas[0]  # type: ignore[attr-defined]
        self.state_changes.append(StateChange(float(feed.datetime[0]), str(machine), before, str(state)))
        current[machine] = state
        return True

    @property
    def state_changes(self) -> list[StateChange]:
        """Every change recorded so far, in the order recorded."""
        return self.__dict__.setdefault("_btlab_state_changes", [])

    def machine_state(self, machine: str) -> str:
        """The last state recorded for ``machine`` (:data:`WARMUP` if none)."""
        return self.__dict__.get("_btlab_states", {}).get(machine, WARMUP)
