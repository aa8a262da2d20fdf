"""``btlab replay``: publish stored bars to a topic in event-time order, paced, as if live (see
:mod:`btlab.stream.replay`)."""

from __future__ import annotations

from btlab.cli.common import (
    ConnectTimeoutOption,
    ExchangeOption,
    FromOption,
    KafkaOption,
    SpeedOption,
    StoreOption,
    SymbolsOption,
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
    from_: FromOption = None,
    to: ToOption = None,
    speed: SpeedOption = "max",
    topic: TopicOption = None,
    kafka: KafkaOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    store: StoreOption = None,
) -> None:
    """Replay stored bars through Kafka/Redpanda as if live, for btlab backtest --source kafka.

    Bars of --symbols are read from the store window by window, merged in event-time order (a bar's event time is
    its close; bars closing together go out ordered by symbol), published keyed exchange:symbol with sequence
    numbers, paced as event time / --speed, and followed by the end-of-replay marker. Ctrl-C stops cleanly: the
    marker then says aborted (exit 130).

    \b
    Example:
      btlab replay --exchange binance --symbols BTC/USDT,ETH/USDT --timeframe 1m \\
          --from 2025-06-01 --to 2025-06-02 --speed 60 --topic bt.demo
      btlab backtest --symbols BTC/USDT,ETH/USDT --timeframe 1m --from 2025-06-01 --to 2025-06-02 \\
          --source kafka --topic bt.demo
    """
    from rich.live import Live

    from btlab.errors import InvalidArgumentError, RunInterruptedError
    from btlab.model.timebounds import parse_range
    from btlab.model.timeframe import Timeframe
    from btlab.stream.config import StreamConfig
    from btlab.stream.replay import ReplayProgress, parse_speed, replay_bars

    names = need_text(symbols, "--symbols")
    pace = parse_speed(speed)  # every argument is checked before the store or the broker is opened
    tf = Timeframe.parse(timeframe or "1m")
    parse_range(from_, to)
    if not kafka:
        raise InvalidArgumentError("no Kafka broker: give --kafka HOST:PORT or set BTLAB_KAFKA")
    config = StreamConfig(kafka, connect_timeout_s=connect_timeout)
    with open_store_cli(store, read_only=True, existing=True) as st, \
            Live(console=console, transient=True, auto_refresh=False) as display:

        def on_progress(p: ReplayProgress) -> None:
            display.update(styled(f"{p.event_time:%Y-%m-%d %H:%M} UTC  ", (f"{p.records:,}", "bold"),
                                  f" bars  {p.records_per_s:,.0f}/s  lag {p.lag_s * 1000:.1f} ms"), refresh=True)

        try:
            result = replay_bars(st, exchange or "binance", names, tf, from_, to, config=config, topic=topic,
                                 speed=pace, progress=on_progress)
        except KeyboardInterrupt as exc:
            raise RunInterruptedError(f"{exc or 'replay aborted'}", run_id="", signal_name="SIGINT",
                                      signal_number=2) from None
    console.print(
        f"replayed {result.records:,} {tf} bars of {exchange}:{names} "
        f"({result.first_event:%Y-%m-%d %H:%M} .. {result.last_event:%Y-%m-%d %H:%M} UTC, event = bar close) to "
        f"topic {result.topic} as replay {result.replay_id} in {result.seconds:.1f} s; "
        f"largest lag behind schedule {result.max_lag_s * 1000:.1f} ms", highlight=False)


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
