"""``btlab replay``: publish stored bars (or trades) to a topic in event-time order, paced, as if live (see
:mod:`btlab.stream.replay`)."""

from __future__ import annotations

from btlab.cli.common import (
    ConnectTimeoutOption,
    ExchangeOption,
    FromOption,
    HealthIntervalOption,
    KafkaOption,
    ReplayBarsOption,
    ReplayTicksOption,
    SpeedOption,
    StoreOption,
    SymbolsOption,
    TickTopicOption,
    TimeframeOption,
    ToOption,
    TopicOption,
    console,
    friendly_errors,
    need_text,
    open_store_cli,
    styled,
)


@friendly_errors
def replay(
    symbols: SymbolsOption = ...,
    exchange: ExchangeOption = "binance",
    timeframe: TimeframeOption = "1m",
    ticks: ReplayTicksOption = False,
    bars: ReplayBarsOption = False,
    from_: FromOption = None,
    to: ToOption = None,
    speed: SpeedOption = "max",
    topic: TopicOption = None,
    tick_topic: TickTopicOption = None,
    kafka: KafkaOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    health_interval: HealthIntervalOption = 10.0,
    store: StoreOption = None,
) -> None:
    """Replay stored bars (or, with --ticks, trades) through Kafka/Redpanda as if live, for btlab backtest
    --source kafka.

    Bars of --symbols are read from the store window by window, merged in event-time order (a bar's event time is
    its close; bars closing together go out ordered by symbol), published keyed exchange:symbol with sequence
    numbers, paced as event time / --speed, and followed by the end-of-replay marker. With --ticks the stored
    trades go out instead (event time = trade time; equal times ordered by symbol, then trade id) to the ticks
    topic, and a backtest from that topic builds its --timeframe bars from them. With --ticks --with-bars both go out,
    trades to the ticks topic (--tick-topic) and --timeframe bars to the bars topic (--topic), merged into one
    event-time order (bar close, trade time; at equal time bars first, so no bar before the last trade of its
    window), each topic ending with its markers. Ctrl-C stops cleanly: the markers then say aborted (exit 130).

    \b
    Example:
      btlab replay --exchange binance --symbols BTC/USDT,ETH/USDT --timeframe 1m \\
          --from 2025-06-01 --to 2025-06-02 --speed 60 --topic bt.demo
      btlab backtest --symbols BTC/USDT,ETH/USDT --timeframe 1m --from 2025-06-01 --to 2025-06-02 \\
          --source kafka --topic bt.demo
      btlab replay --ticks --symbols BTC/USDT --from 2024-08-08 --to 2024-08-09 --topic bt.ticks
      btlab backtest --symbols BTC/USDT --timeframe 1m --from 2024-08-08 --to 2024-08-09 \\
          --source kafka --topic bt.ticks
      btlab replay --ticks --with-bars --symbols BTC/USDT --timeframe 1m --from 2024-08-08 --to 2024-08-09 \\
          --topic bt.bars --tick-topic bt.ticks
    """
    from rich.live import Live

    from btlab.errors import InvalidArgumentError, RunInterruptedError
    from btlab.model.timebounds import parse_range
    from btlab.model.timeframe import Timeframe
    from btlab.stream.config import StreamConfig
    from btlab.stream.replay import ReplayProgress, parse_speed, replay_bars, replay_ticks, replay_ticks_and_bars

    names = need_text(symbols, "--symbols")
    pace = parse_speed(speed)  # every argument is checked before the store or the broker is opened
    tf = Timeframe.parse(timeframe or "1m")
    parse_range(from_, to)
    if not kafka:
        raise InvalidArgumentError("no Kafka broker: give --kafka HOST:PORT or set BTLAB_KAFKA")
    config = StreamConfig(kafka, connect_timeout_s=connect_timeout)
    if health_interval < 0:
        raise InvalidArgumentError(f"--health-interval must be >= 0 (0 = off), got {health_interval}")
    both = ticks and bars
    if bars and not ticks:
        raise InvalidArgumentError("--with-bars goes with --ticks (replay trades and bars together); bars alone are the "
                                   "default: drop --with-bars")
    if tick_topic and not both:
        raise InvalidArgumentError("--tick-topic goes with --ticks --with-bars (with --ticks alone, name the topic with "
                                   "--topic)")
    if both and topic and topic == tick_topic:
        raise InvalidArgumentError(f"--topic and --tick-topic must differ, got {topic!r} for both")
    unit = "records" if both else "trades" if ticks else "bars"
    # bt_health rows need a writable store; without them the store is only read
    with open_store_cli(store, read_only=not health_interval, existing=True) as st, \
            Live(console=console, transient=True, auto_refresh=False) as display:

        def on_progress(p: ReplayProgress) -> None:
            display.update(styled(f"{p.event_time:%Y-%m-%d %H:%M:%S} UTC  ", (f"{p.records:,}", "bold"),
                                  f" {unit}  {p.records_per_s:,.0f}/s  lag {p.lag_s * 1000:.1f} ms"), refresh=True)

        common = dict(config=config, topic=topic, speed=pace, progress=on_progress,
                      health_interval_s=health_interval or None)
        try:
            if both:
                common.pop("topic")
                result = replay_ticks_and_bars(st, exchange or "binance", names, tf, from_, to, bars_topic=topic,
                                               ticks_topic=tick_topic, **common)
            elif ticks:
                result = replay_ticks(st, exchange or "binance", names, from_, to, **common)
            else:
                result = replay_bars(st, exchange or "binance", names, tf, from_, to, **common)
        except KeyboardInterrupt as exc:
            raise RunInterruptedError(f"{exc or 'replay aborted'}", run_id="", signal_name="SIGINT",
                                      signal_number=2) from None
    if both:
        counts = [sum(result.per_topic[t].values()) for t in result.topics]
        what, event = (f"{tf} bars and trades ({counts[0]:,} + {counts[1]:,})",
                       "event = bar close, trade time")
    else:
        what, event = ("trades", "event = trade time") if ticks else (f"{tf} bars", "event = bar close")
    pacing = result.pacing
    paced = (f"; pacing error p50 {pacing.p50_s * 1000:.2f} ms, p99 {pacing.p99_s * 1000:.2f} ms"
             if pacing.records else "")
    health = f"; {result.health_rows} bt_health rows written" if result.health_rows else ""
    console.print(
        f"replayed {result.records:,} {what} of {exchange}:{names} "
        f"({result.first_event:%Y-%m-%d %H:%M:%S} .. {result.last_event:%Y-%m-%d %H:%M:%S} UTC, {event}) to "
        f"topic {' and '.join(result.topics)} as replay {result.replay_id} in {result.seconds:.1f} s; "
        f"largest lag behind schedule {result.max_lag_s * 1000:.1f} ms{paced}{health}", highlight=False)


def kafka_source(source: str, topic: str | None, kafka: str | None, timeframe: str | None):
    """``btlab backtest --source``: None for ``store``, a :class:`~btlab.backtest.kafka_feed.KafkaSource` for
    ``kafka`` (topic default ``btlab.bars.<timeframe>``).

    Raises:
        InvalidArgumentError: an unknown source, or kafka without a broker address.
    """
    from btlab.errors import InvalidArgumentError

    if source == "store":
        if topic:
            raise InvalidArgumentError("--topic needs --source kafka")
        return None
    if source != "kafka":
        raise InvalidArgumentError(f"--source must be store or kafka, got {source[:40]!r}")
    if not kafka:
        raise InvalidArgumentError("--source kafka needs a broker: give --kafka HOST:PORT or set BTLAB_KAFKA")
    from btlab.backtest.kafka_feed import KafkaSource
    from btlab.stream.config import StreamConfig
    from btlab.stream.topics import bars_topic

    return KafkaSource(topic or bars_topic(timeframe or "1h"), config=StreamConfig(kafka))
