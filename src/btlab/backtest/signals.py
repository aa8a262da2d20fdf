"""Stopping a backtest run or a parameter sweep cleanly on SIGINT (Ctrl-C) and SIGTERM (the handlers themselves are
:func:`btlab.signals.on_stop_signals`, shared with the stream sink)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from btlab.backtest.recorder import RunControl
from btlab.signals import on_stop_signals

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals(control: RunControl, stop: Callable[[], Any]) -> Iterator[None]:
    """In the main thread: the first SIGINT/SIGTERM sets ``control.signum`` and calls ``stop()`` (which must only
    ask the job to stop: set a flag, ``cerebro.runstop``); a second one raises KeyboardInterrupt at once. The
    previous handlers are restored on exit. In another thread (where Python cannot install handlers): nothing.
    """
    def first(signum: int) -> None:
        control.signum = signum
        stop()

    with on_stop_signals(first):
        yield
