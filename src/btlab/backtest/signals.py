"""Stopping long jobs cleanly on SIGINT (Ctrl-C) and SIGTERM: one place for the handlers a backtest run and a
parameter sweep install (the stream sink has its own, tied to its consumer loop)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from btlab.backtest.recorder import RunControl

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals(control: RunControl, stop: Callable[[], Any]) -> Iterator[None]:
    """In the main thread: the first SIGINT/SIGTERM sets ``control.signum`` and calls ``stop()`` (which must only
    ask the job to stop: set a flag, ``cerebro.runstop``); a second one raises KeyboardInterrupt at once. The
    previous handlers are restored on exit. In another thread (where Python cannot install handlers): nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if control.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping at once")
        control.signum = signum
        stop()

    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
