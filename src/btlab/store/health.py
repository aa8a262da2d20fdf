"""Per-interval pipeline figures of a running btlab service, written to ``bt_health``.

A service keeps cumulative counters (what it has done since it started, e.g.
:class:`~btlab.marketdata.sources.ccxt.live.LiveReport`); :class:`HealthWriter` turns them into the per-interval rows of :data:`btlab.store.schema.BT_HEALTH`: counts are the
difference from the previous write, ``rows_per_s`` the rows written to each table divided by the seconds elapsed,
plus one ``heartbeat`` row per write, so the pipeline-health dashboard and its alerts only read the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from btlab.errors import InvalidArgumentError
from btlab.store.schema import HEALTH_METRICS

if TYPE_CHECKING:
    import pandas as pd

    from btlab.store.base import Store

#: Seconds between two writes by default (``ingest live --health-interval``).
DEFAULT_HEALTH_INTERVAL = 10.0


class HealthWriter:
    """Writes one service's figures to ``bt_health`` at most every ``interval`` seconds (see the module docs).

    Args:
        store: where the rows go (:meth:`Store.write_health <btlab.store.base.Store.write_health>`).
        service: the ``service`` column, e.g. ``ingest-live``.
        interval: seconds between writes (> 0); :meth:`due` tells when the next one is.
        clock: monotonic seconds (for the interval and the rates); ``now``: wall time of a row (UTC).

    Raises:
        InvalidArgumentError: ``interval`` is not a positive number.
    """

    def __init__(self, store: Store, service: str, *, interval: float = DEFAULT_HEALTH_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], pd.Timestamp] | None = None) -> None:
        if not interval > 0:  # NaN fails too
            raise InvalidArgumentError(f"the health interval must be > 0 seconds, got {interval}")
        self.store, self.service, self.interval = store, service, float(interval)
        self._clock = clock
        self._now = now
        self._last_at = clock()
        self._counts: dict[tuple[str, str], float] = {}
        self._rows: dict[str, float] = {}
        self._rates: dict[tuple[str, str], float] = {}
        self.written = 0  # rows written to bt_health so far

    def due(self) -> bool:
        """Whether ``interval`` seconds have passed since the last write (or the start)."""
        return self._clock() - self._last_at >= self.interval

    def write(self, counts: Mapping[tuple[str, str], float], rows: Mapping[str, float], *,
              rates: Mapping[tuple[str, str], float] | None = None,
              gauges: Mapping[tuple[str, str], float] | None = None) -> int:
        """Write the interval's rows and start the next interval.

        Args:
            counts: cumulative counts since the service started, ``{(metric, subject): total}``; ``metric`` one of
                :data:`~btlab.store.schema.HEALTH_METRICS`. The row's value is the increase since the last write
                (a total that went down, e.g. after a counter reset, counts from zero).
            rows: cumulative rows written per table, ``{table: total}`` -> ``rows_per_s`` rows (subject = table).
            rates: cumulative totals ``{(metric, subject): total}`` of a per-second metric (``records_per_s``): the
                row's value is the increase since the last write divided by the seconds elapsed.
            gauges: figures measured now, ``{(metric, subject): value}`` (``consumer_lag``), written as they are.

        Returns: rows written to ``bt_health`` (the heartbeat included).

        Raises:
            ValueError: an unknown metric name (a programming error).
        """
        import pandas as pd

        at = self._clock()
        elapsed = max(at - self._last_at, 1e-9)
        out: list[tuple[str, str, float]] = [("heartbeat", self.service, 1.0)]
        rates = dict(rates or {})
        for metric, _ in (*counts, *rates, *(gauges or {})):
            if metric not in HEALTH_METRICS:
                raise ValueError(f"unknown bt_health metric {metric!r}")
        for (metric, subject), total in counts.items():
            before = self._counts.get((metric, subject), 0.0)
            out.append((metric, subject, float(total - before if total >= before else total)))
        for (metric, subject), total in rates.items():
            before = self._rates.get((metric, subject), 0.0)
            out.append((metric, subject, float(total - before if total >= before else total) / elapsed))
        out.extend((metric, subject, float(value)) for (metric, subject), value in (gauges or {}).items())
        for table, total in rows.items():
            before = self._rows.get(table, 0.0)
            out.append(("rows_per_s", table, float(total - before if total >= before else total) / elapsed))
        ts = (self._now() if self._now is not None else pd.Timestamp.now(tz="UTC")).floor("us")
        frame = pd.DataFrame(out, columns=["metric", "subject", "value"])
        frame.insert(0, "service", self.service)
        frame.insert(0, "ts", ts)
        written = self.store.write_health(frame)
        self._counts, self._rows, self._rates, self._last_at = dict(counts), dict(rows), rates, at
        self.written += written
        return written
