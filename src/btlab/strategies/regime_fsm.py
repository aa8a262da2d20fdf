"""Multi-timescale regime machines: one hysteresis state machine per timeframe of one instrument, one position rule."""

from __future__ import annotations

from typing import Any

from btlab.backtest.compat import bt
from btlab.backtest.states import BEARISH, BULLISH, HysteresisMachine, StateRecording, check_band
from btlab.errors import InvalidArgumentError


class RegimeFsm(StateRecording, bt.Strategy):
    """Long when every timescale is bullish; flat otherwise (short when all are bearish, with short=True).

    One :class:`~btlab.backtest.states.HysteresisMachine` per feed of the run, all of the same instrument: the base
    feed and each resampled one (``btlab.run_backtest(..., timeframes=["1h", "1d"])`` gives feeds ``BTC/USDT`` and
    ``BTC/USDT@1d``; machines are named by timeframe, ``"1h"`` and ``"1d"``). A machine steps once per closed bar of
    its own feed, on ``deviation = close / SMA(close, period) - 1`` of that feed (``period`` bars of its own
    timeframe), with the rule of :func:`~btlab.backtest.states.next_regime`: enter ``bullish`` above
    ``+enter_pct``, leave it below ``exit_pct`` (mirror image for ``bearish``). Every machine takes its first
    step (from ``neutral``) at the strategy's first step -- once every feed's SMA is full (Backtrader's minimum
    period: ``period`` bars of the longest timeframe) -- on the latest closed bar of its feed. Every change is recorded with
    :meth:`~btlab.backtest.states.StateRecording.record_state` at the close of the deciding bar (``bt_states``).

    Position rule, checked after every base bar: target long if all machines are ``bullish``; short if ``short``
    and all are ``bearish``; flat otherwise (also while a machine warms up). Market orders, filled at the next base
    bar's open, sized by the run's sizer; a reversal closes then opens.

    Params:
        period: SMA length in bars of each machine's own timeframe (default 20).
        enter_pct: band to enter bullish/bearish, a fraction of the SMA (default 0.02 = 2 %).
        exit_pct: level to leave it, a fraction (default 0.0: leave bullish below the SMA); ``-enter_pct <
            exit_pct < enter_pct``.
        short: also go short when every machine is bearish (default False).

    Raises:
        ValueError: (``validate_params``) period < 1 or a band refused by
            :func:`~btlab.backtest.states.check_band`.
        InvalidArgumentError: feeds of more than one instrument (when the run starts, before any bar).
    """

    params: Any = (("period", 20), ("enter_pct", 0.02), ("exit_pct", 0.0), ("short", False))

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Refuse ``period < 1`` and a band that cannot work (ValueError; btlab checks it before a run)."""
        period = params.get("period", 20)
        if not isinstance(period, int) or period < 1:
            raise ValueError(f"needs period >= 1 (SMA length in bars), got period={period!r}")
        check_band(float(params.get("enter_pct", 0.02)), float(params.get("exit_pct", 0.0)))

    def __init__(self) -> None:
        p = self.p
        self.validate_params({"period": p.period, "enter_pct": p.enter_pct, "exit_pct": p.exit_pct})
        symbols = {getattr(d, "btlab_symbol", None) or d._name.split("@")[0] for d in self.datas}
        if len(symbols) > 1:
            raise InvalidArgumentError(
                f"regime_fsm trades one instrument on several timeframes, got {', '.join(sorted(symbols))}: "
                "give one symbol and resampled timeframes (e.g. timeframes=['1h', '1d'])")
        self.machines = [HysteresisMachine(_machine_name(d), p.enter_pct, p.exit_pct) for d in self.datas]
        self.smas = [bt.indicators.SMA(d.close, period=p.period) for d in self.datas]
        self._seen = [0] * len(self.datas)

    def next(self) -> None:
        for i, (data, machine, sma) in enumerate(zip(self.datas, self.machines, self.smas)):
            if len(data) == self._seen[i]:
                continue  # no new bar of this timeframe closed at this step
            self._seen[i] = len(data)
            machine.step(data.close[0] / sma[0] - 1.0)
            self.record_state(machine.name, machine.state, data)
        self._trade(self.target())

    def target(self) -> int:
        """The combined rule: +1 long, -1 short, 0 flat (see the class docstring)."""
        states = {m.state for m in self.machines}
        if states == {BULLISH}:
            return 1
        if states == {BEARISH} and self.p.short:
            return -1
        return 0

    def _trade(self, target: int) -> None:
        size = self.position.size
        side = (size > 0) - (size < 0)
        if side == target:
            return
        if side:
            self.close()
        if target > 0:
            self.buy()
        elif target < 0:
            self.sell()


def _machine_name(data: Any) -> str:
    """A feed's timeframe (``1h``, ``1d``) as the machine's name; its Backtrader name for other feeds."""
    tf = getattr(data, "btlab_timeframe", None)
    return str(tf) if tf is not None else str(data._name)
