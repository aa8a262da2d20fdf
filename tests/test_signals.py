"""btlab.signals.on_stop_signals: the one SIGINT/SIGTERM handler pair of long jobs (runs, sweeps, the sink)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from btlab.signals import on_stop_signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_asks_to_stop_second_stops_at_once_and_handlers_are_restored(sig) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    asked: list[int] = []
    with pytest.raises(KeyboardInterrupt, match=f"second {sig.name}: stopping at once"):
        with on_stop_signals(asked.append):
            os.kill(os.getpid(), sig)  # delivered to the main thread before kill returns to Python code
            assert asked == [sig]
            os.kill(os.getpid(), sig)
    assert asked == [sig]
    assert {s: signal.getsignal(s) for s in before} == before


def test_disabled_or_off_the_main_thread_installs_nothing() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with on_stop_signals(lambda s: None, enabled=False):
        assert signal.getsignal(signal.SIGTERM) is before
    seen: list[object] = []

    def worker() -> None:
        with on_stop_signals(lambda s: None):
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [before]
