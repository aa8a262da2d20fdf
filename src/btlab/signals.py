"""Stopping long jobs cleanly on SIGINT (Ctrl-C) and SIGTERM: the one handler pair every long job installs (a
backtest run, a parameter sweep, the stream sink). A root module so that every layer can use it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["STOP_SIGNALS", "on_stop_signals"]

#: the signals that ask a long job to stop: Ctrl-C and ``kill``/``docker stop``
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_stop_signals(first: Callable[[int], Any], *, enabled: bool = True) -> Iterator[None]:
    """Install SIGINT/SIGTERM handlers for the duration of the block.

    The first signal calls ``first(signum)``, which must only ask the job to stop (record the signal, set a flag,
    ``cerebro.runstop``): the job finishes the batch in hand and records an honest status. A second signal raises
    KeyboardInterrupt at once (``"second SIGINT: stopping at once"``). The previous handlers are restored on exit.

    Does nothing when ``enabled`` is false or outside the main thread (Python installs signal handlers only there).
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if seen:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping at once")
        seen.append(signum)
        first(signum)

    previous: dict[int, Any] = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
