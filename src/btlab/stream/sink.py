"""The sink: tick and bar topics -> the store, exactly once through the store's natural keys.

:func:`run_sink` reads topics as a member of a consumer GROUP (``subscribe``: several sinks with one group share the
partitions, and a sink that dies hands them to the others), decodes each batch of records, writes it to the store
and only then commits the batch's offsets (:class:`~btlab.stream.consumer.StreamConsumer`). A sink killed at any
moment -- even with SIGKILL between the write and the commit -- re-reads at most the batch in flight when it (or
another member) starts again; the store's keys (``ticks``: ts, exchange, symbol, trade_id; ``ohlcv``: ts, exchange,
symbol, timeframe) make that second write change nothing. So the store ends up with every record once: no gap, no
duplicate.

Per batch: tick records become one :func:`~btlab.stream.codec.ticks_frame` written with ``store.upsert("ticks")``;
bar records one :func:`~btlab.stream.codec.bars_frame`, written per series with :meth:`Store.write_bars` (source
``kafka:<topic>``: the records do not say where the bars were first made). A record published twice (a replay run
again) is written once: within a batch the last one of a key wins, as in the store. End-of-replay markers are
skipped and counted; unreadable records go to ``<topic>.dlq`` with the reason (the consumer does it) and are counted,
and so do ticks without a trade id (valid on a stream, but the ``ticks`` key needs one: :data:`NO_TRADE_ID`).

Stopping: ``max_records``, ``idle_exit_s`` (nothing arrived for that long), :meth:`Sink.stop`, or -- in the main
thread -- SIGINT/SIGTERM: the batch in hand is written and committed, then :func:`run_sink` returns with
:attr:`SinkReport.signal` set (a second signal stops at once: the batch is not committed, and is re-read next time).

Health (``bt_health``, service ``sink``, with a :class:`~btlab.store.health.HealthWriter`): per interval
``records_per_s``, ``consumer_lag`` (at the end of the interval) and ``dead_letters`` with subject
``"topic (group)"``, ``rows_per_s`` per table, and a heartbeat; a last write when the sink stops.

This module calls the store's API only (no SQL).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from btlab.errors import InvalidArgumentError
from btlab.signals import on_stop_signals
from btlab.stream.codec import BarMessage, TickMessage, bars_frame, ticks_frame
from btlab.stream.config import StreamConfig
from btlab.stream.consumer import Record, StreamConsumer
from btlab.stream.topics import is_dead_letter_topic

if TYPE_CHECKING:
    from btlab.store.base import Store
    from btlab.store.health import HealthWriter

log = logging.getLogger(__name__)

#: ``bt_health.service`` of the sink
SERVICE = "sink"
#: the consumer group of ``btlab sink`` by default
DEFAULT_GROUP = "btlab-sink"
#: records fetched and written per batch by default
DEFAULT_BATCH = 5000
#: longest wait of one fetch, in seconds: how soon a stop request or an idle limit is noticed
_STEP_S = 0.5


@dataclass
class SinkReport:
    """What a sink did (cumulative; also handed to the progress callback while it runs).

    Attributes:
        topics, group: what it read, as which consumer group.
        ticks, bars: rows written to ``ticks`` and ``ohlcv`` (records, duplicates within a batch counted once).
        records: data records consumed (ticks + bars as read, before de-duplication within a batch).
        end_markers: end-of-replay markers skipped.
        dead_letters: unreadable records sent to ``<topic>.dlq``; ``reasons``: their count per reason.
        batches: batches written and committed.
        lag: records behind the end of each topic at the last look (None: not known yet / nothing assigned).
        seconds: wall time since the start; ``joined_s``: seconds until partitions were first assigned to this
            sink (the consumer group join; None: not yet), up to :data:`_STEP_S` late; ``first_batch_s``: seconds
            until the first batch was handed over for writing (None: none yet).
        stopped: why it returned: ``"max-records"``, ``"idle"``, ``"stop"`` or ``"signal"``.
        signal: ``"SIGINT"``/``"SIGTERM"`` when a signal stopped it, else None; ``signal_number`` its number.
    """

    topics: list[str]
    group: str
    ticks: int = 0
    bars: int = 0
    records: int = 0
    end_markers: int = 0
    dead_letters: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    lag: dict[str, int] | None = None
    seconds: float = 0.0
    joined_s: float | None = None
    first_batch_s: float | None = None
    stopped: str = ""
    signal: str | None = None
    signal_number: int = 0

    @property
    def rows(self) -> int:
        """Rows written to the store (ticks + bars)."""
        return self.ticks + self.bars

    @property
    def total_lag(self) -> int | None:
        """Records behind over all topics (None when unknown)."""
        return None if self.lag is None else sum(self.lag.values())

    def __str__(self) -> str:
        lag = "unknown" if self.total_lag is None else f"{self.total_lag:,}"
        text = (f"sink {', '.join(self.topics)} (group {self.group}) -> store: wrote {self.ticks:,} ticks and "
                f"{self.bars:,} bars in {self.batches:,} batches, {self.seconds:.1f} s; {self.end_markers:,} end "
                f"markers skipped; {self.dead_letters:,} records dead-lettered")
        if self.reasons:
            text += " (" + "; ".join(f"{reason}: {n}" for reason, n in self.reasons.most_common(3)) + ")"
        return text + f"; lag {lag}"


#: the dead-letter reason of a tick the store cannot key
NO_TRADE_ID = "tick without trade_id: the store's ticks key (ts, exchange, symbol, trade_id) needs one"


def _unstorable(message: TickMessage | BarMessage) -> str | None:
    """Why the store cannot take a valid record (a tick without trade id, as the ingest jobs quarantine), else
    None."""
    return NO_TRADE_ID if isinstance(message, TickMessage) and message.trade_id is None else None


def check_topics(topics: str | Sequence[str]) -> list[str]:
    """The topics a sink reads: ``"a,b"`` or a sequence, stripped, without repeats, in order.

    Raises:
        InvalidArgumentError: no topic, or a dead-letter topic (``<topic>.dlq``: unreadable records by design).
    """
    parts = topics.split(",") if isinstance(topics, str) else list(topics)
    names = list(dict.fromkeys(t.strip() for t in parts if t and t.strip()))
    if not names:
        raise InvalidArgumentError("the sink needs at least one topic (e.g. btlab.ticks,btlab.bars.1m)")
    bad = [t for t in names if is_dead_letter_topic(t)]
    if bad:
        raise InvalidArgumentError(f"{bad[0][:120]!r} is a dead-letter topic: its records are unreadable by design")
    return names


class Sink:
    """A running sink (see the module docs); :func:`run_sink` makes and runs one.

    Args: as :func:`run_sink`.
    """

    def __init__(self, store: Store, topics: Sequence[str], group: str = DEFAULT_GROUP,
                 config: StreamConfig | None = None, *, batch_size: int = DEFAULT_BATCH,
                 health: HealthWriter | None = None, from_beginning: bool = True) -> None:
        topics = check_topics(topics)
        if not group or not group.strip():
            raise InvalidArgumentError("the consumer group must not be empty")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"the batch size must be a whole number >= 1, got {batch_size!r}")
        self.store, self.topics, self.group = store, topics, group
        self.config = config or StreamConfig.require()
        self.batch_size, self.health, self.from_beginning = batch_size, health, from_beginning
        self.report = SinkReport(topics=list(topics), group=group)
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._consumer: StreamConsumer | None = None
        self._rows: Counter[str] = Counter()  # rows written per table (health)
        self._consumed: Counter[str] = Counter()  # records consumed per topic (health)

    def stop(self) -> None:
        """Ask the sink to return after the batch in hand (thread-safe)."""
        self._stop.set()
        if self._consumer is not None:
            self._consumer.stop()

    # ---- writing ----------------------------------------------------------------------------------------------
    def _write(self, records: list[Record]) -> None:
        """Write one batch to the store (the consumer commits its offsets after this returns)."""
        import pandas as pd

        if self.report.first_batch_s is None:
            self.report.first_batch_s = time.monotonic() - self._start
        ticks = [r.message for r in records if isinstance(r.message, TickMessage)]
        bars = [r for r in records if isinstance(r.message, BarMessage)]
        with self.store.session():
            if ticks:
                frame = ticks_frame(ticks)
                n = self.store.upsert("ticks", frame.drop_duplicates(["ts", "exchange", "symbol", "trade_id"],
                                                                     keep="last"))
                self.report.ticks += n
                self._rows["ticks"] += n
            if bars:
                frame = bars_frame([r.message for r in bars])
                frame["topic"] = pd.Series([r.topic for r in bars], dtype=object)
                frame = frame.drop_duplicates(["ts", "exchange", "symbol", "timeframe"], keep="last")
                for (exchange, symbol, timeframe, topic), series in frame.groupby(
                        ["exchange", "symbol", "timeframe", "topic"], sort=False):
                    n = self.store.write_bars(
                        series.drop(columns=["exchange", "symbol", "timeframe", "topic"]).sort_values(
                            "ts", kind="stable"),
                        exchange=str(exchange), symbol=str(symbol), timeframe=str(timeframe), source=f"kafka:{topic}")
                    self.report.bars += n
                    self._rows["ohlcv"] += n
        self._consumed.update(r.topic for r in records)
        self.report.records += len(records)
        self.report.batches += 1

    # ---- running ----------------------------------------------------------------------------------------------
    def run(self, *, max_records: int | None = None, idle_exit_s: float | None = None,
            progress: Callable[[SinkReport], None] | None = None, progress_interval_s: float = 1.0,
            handle_signals: bool = True) -> SinkReport:
        """Consume, write, commit until a stop condition (see :func:`run_sink`); returns :attr:`report`."""
        for value, name in ((max_records, "max_records"), (idle_exit_s, "idle_exit_s")):
            if value is not None and not value > 0:
                raise InvalidArgumentError(f"{name} must be > 0, got {value}")
        start = self._start = time.monotonic()
        report = self.report
        with StreamConsumer(self.topics, group_id=self.group, config=self.config, from_beginning=self.from_beginning,
                            reject=_unstorable) as consumer, on_stop_signals(self._on_signal, enabled=handle_signals):
            self._consumer = consumer
            if self._stop.is_set():
                consumer.stop()
            last_activity = shown = start
            seen = 0
            try:
                while True:
                    if self._stop.is_set():
                        report.stopped = report.stopped or ("signal" if report.signal else "stop")
                        break
                    left = None if max_records is None else max_records - report.records
                    if left is not None and left <= 0:
                        report.stopped = "max-records"
                        break
                    consumer.run(self._write, max_records=left, max_seconds=_STEP_S,
                                 batch_size=min(self.batch_size, left) if left else self.batch_size)
                    stats = consumer.stats
                    report.end_markers, report.dead_letters = stats.end_markers, stats.dead_lettered
                    report.reasons = Counter(stats.reasons)
                    now = time.monotonic()
                    activity = stats.records + stats.end_markers + stats.dead_lettered
                    if report.joined_s is None and (activity or consumer.assignment()):
                        report.joined_s = now - start
                    if activity != seen or report.joined_s is None:  # idle counts once partitions are ours
                        seen, last_activity = activity, now
                    report.seconds = now - start
                    if self.health is not None and self.health.due():
                        self._write_health(consumer)
                    if progress is not None and now - shown >= progress_interval_s:
                        report.lag = consumer.lag()
                        progress(report)
                        shown = now
                    if idle_exit_s is not None and now - last_activity >= idle_exit_s:
                        report.stopped = "idle"
                        break
            finally:
                self._consumer = None
                report.seconds = time.monotonic() - start
                if report.signal is None:  # after a signal the broker may be gone too: do not wait on it
                    report.lag = consumer.lag()
                if self.health is not None:
                    try:
                        self._write_health(consumer, lag=report.lag)
                    except Exception as exc:  # noqa: BLE001 - the figures must not hide why the sink stopped
                        log.warning("last bt_health write of the sink failed: %s", exc)
        return report

    def _write_health(self, consumer: StreamConsumer, lag: dict[str, int] | None = None) -> None:
        assert self.health is not None
        lag = consumer.lag() if lag is None else lag
        subject = {t: f"{t} ({self.group})" for t in self.topics}
        counts = {("dead_letters", subject[t]): float(consumer.stats.dead_per_topic.get(t, 0)) for t in self.topics}
        rates = {("records_per_s", subject[t]): float(self._consumed.get(t, 0)) for t in self.topics}
        gauges = {("consumer_lag", subject[t]): float(n) for t, n in (lag or {}).items() if t in subject}
        self.health.write(counts, dict(self._rows), rates=rates, gauges=gauges)

    def _on_signal(self, signum: int) -> None:
        """The first SIGINT/SIGTERM (:func:`btlab.signals.on_stop_signals`): stop after the batch in hand."""
        self.report.signal = signal.Signals(signum).name
        self.report.signal_number = int(signum)
        self.stop()


def run_sink(
    store: Store,
    topics: Sequence[str],
    group: str = DEFAULT_GROUP,
    config: StreamConfig | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_records: int | None = None,
    idle_exit_s: float | None = None,
    health: HealthWriter | None = None,
    progress: Callable[[SinkReport], None] | None = None,
    progress_interval_s: float = 1.0,
    from_beginning: bool = True,
    handle_signals: bool = True,
) -> SinkReport:
    """Consume tick and bar ``topics`` into ``store`` until a stop condition; offsets committed after each write.

    Args:
        store: where the rows go (``ticks``, ``ohlcv``; ``bt_health`` through ``health``).
        topics: topics to read (e.g. ``btlab.ticks``, ``btlab.bars.1m``); created if missing.
        group: consumer group; its committed offsets say where a restarted sink resumes.
        config: broker settings (default from ``BTLAB_KAFKA``).
        batch_size: records fetched, written and committed together (>= 1).
        max_records: return once at least this many records were consumed (a batch may go past it; None: no limit).
        idle_exit_s: return once nothing (no record, marker or unreadable record) arrived for this many seconds
            while partitions were assigned to this sink (the group join does not count).
        health: writes the sink's figures to ``bt_health`` when due and once at the end (None: none).
        progress: called about every ``progress_interval_s`` seconds with the :class:`SinkReport` so far (lag
            included).
        from_beginning: a group without committed offsets starts at the earliest record (else at the end).
        handle_signals: in the main thread, SIGINT/SIGTERM stop the sink cleanly (see the module docs).

    Returns:
        The :class:`SinkReport` (``signal`` set when a signal stopped it: the CLI exits 130/143).

    Raises:
        InvalidArgumentError: no topic, a dead-letter topic, an empty group, a bad batch size or limit.
        BrokerUnavailableError: the broker did not answer within ``config.connect_timeout_s`` (at the start, or
            after losing it while running); what was committed stays committed.
        StoreUnavailableError: the store cannot be written (the batch in hand is not committed).
        KeyboardInterrupt: a second signal (the batch in hand is not committed).
    """
    sink = Sink(store, topics, group, config, batch_size=batch_size, health=health, from_beginning=from_beginning)
    return sink.run(max_records=max_records, idle_exit_s=idle_exit_s, progress=progress,
                    progress_interval_s=progress_interval_s, handle_signals=handle_signals)
