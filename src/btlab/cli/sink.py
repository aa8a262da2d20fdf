"""``btlab sink``: tick and bar topics -> the store, committing offsets after each write (see
:mod:`btlab.stream.sink`)."""

from __future__ import annotations

import time
from typing import Any

from btlab.cli.common import (
    BatchSizeOption,
    ConnectTimeoutOption,
    GroupOption,
    HealthIntervalOption,
    IdleExitOption,
    KafkaOption,
    MaxRecordsOption,
    StoreOption,
    TopicsOption,
    console,
    friendly_errors,
    need_text,
    open_store_cli,
    styled,
)

#: without a terminal (a compose service's log), a status line at most this often, in seconds
LOG_EVERY_S = 60.0


@friendly_errors
def sink(
    topics: TopicsOption = "btlab.ticks,btlab.bars.1m",
    group: GroupOption = "btlab-sink",
    batch_size: BatchSizeOption = 5000,
    max_records: MaxRecordsOption = None,
    idle_exit: IdleExitOption = None,
    health_interval: HealthIntervalOption = 10.0,
    kafka: KafkaOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    store: StoreOption = None,
) -> None:
    """Write tick and bar topics into the store, exactly once (a long-running service).

    Records of --topics are read as consumer group --group, written to the store in batches (ticks into ticks,
    bars into ohlcv), and their offsets committed only after the store accepted the batch; the store's keys make
    a batch read twice harmless, so a sink killed at any moment and restarted leaves no gap and no duplicate.
    End-of-replay markers are skipped; unreadable records go to <topic>.dlq with the reason and are counted.
    Every --health-interval seconds the sink writes records/s, consumer lag and dead letters per topic (and a
    heartbeat) to bt_health (service sink). Ctrl-C or SIGTERM: the batch in hand is written and committed, then
    it exits 130 / 143.

    \b
    Example:
      btlab sink --topics btlab.ticks,btlab.bars.1m --kafka 127.0.0.1:19092
      btlab sink --topics btlab.bars.1m --group backfill --idle-exit 10
    """
    from rich.live import Live

    from btlab.errors import InvalidArgumentError, RunInterruptedError
    from btlab.store.health import HealthWriter
    from btlab.stream.config import StreamConfig
    from btlab.stream.sink import SERVICE, Sink, SinkReport, check_topics

    need_text(topics.replace(",", " "), "--topics")  # every argument is checked before the store is opened
    names = check_topics(topics)
    need_text(group, "--group")
    if idle_exit is not None and not idle_exit > 0:
        raise InvalidArgumentError(f"--idle-exit must be > 0 seconds, got {idle_exit}")
    if not health_interval > 0:
        raise InvalidArgumentError(f"--health-interval must be > 0 seconds, got {health_interval}")
    if not kafka:
        raise InvalidArgumentError("no Kafka broker: give --kafka HOST:PORT or set BTLAB_KAFKA")
    config = StreamConfig(kafka, connect_timeout_s=connect_timeout)
    with open_store_cli(store) as st:
        job = Sink(st, names, group, config, batch_size=batch_size,
                   health=HealthWriter(st, SERVICE, interval=health_interval))
        logged = [time.monotonic()]
        with Live(console=console, transient=True, auto_refresh=False) as display:

            def on_progress(report: SinkReport) -> None:
                if console.is_terminal:
                    display.update(_status(report), refresh=True)
                elif time.monotonic() - logged[0] >= LOG_EVERY_S:
                    logged[0] = time.monotonic()
                    console.print(_status(report), highlight=False, soft_wrap=True)

            report = job.run(max_records=max_records, idle_exit_s=idle_exit, progress=on_progress)
    console.print(str(report), highlight=False, soft_wrap=True)
    if report.signal is not None:
        raise RunInterruptedError(
            f"sink stopped by {report.signal} after writing {report.rows:,} rows; every written batch is "
            f"committed (group {group})", run_id="", signal_name=report.signal, signal_number=report.signal_number)


def _status(report: Any) -> Any:
    """Rows written so far, records/s, dead letters and the lag behind the end of the topics."""
    lag = "…" if report.total_lag is None else f"{report.total_lag:,}"
    rate = report.records / report.seconds if report.seconds > 0 else 0.0
    return styled("sink: ", (f"{report.ticks:,}", "bold"), " ticks, ", (f"{report.bars:,}", "bold"),
                  f" bars written, {rate:,.0f} records/s, {report.dead_letters:,} dead letters, lag {lag}")
