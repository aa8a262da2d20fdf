"""``btlab ingest ...``: fill the store from exchanges (ccxt), CryptoCompare and data.binance.vision files."""

from __future__ import annotations

from typing import Any

import typer

from btlab.cli.common import (
    APP_SETTINGS,
    ApiUrlOption,
    BarsOption,
    BinanceFilesArgument,
    BtlabGroup,
    DurationOption,
    EmptyOption,
    EmptyPolicy,
    ExchangeOption,
    HealthIntervalOption,
    IdleTimeoutOption,
    KafkaOption,
    LatenessOption,
    SinceOption,
    Source,
    SourceOption,
    StoreOption,
    SymbolOption,
    SymbolsOption,
    TimeframeOption,
    TimeframesOption,
    TradesOption,
    UntilOption,
    WatchTimeoutOption,
    WsUrlOption,
    console,
    friendly_errors,
    open_store_cli,
    parse_timeframes,
    progress_task,
    styled,
)

ingest_app = typer.Typer(help="Fill the store with market data: exchange history, CryptoCompare, Binance files.",
                         no_args_is_help=True, cls=BtlabGroup, **APP_SETTINGS)


def _need_symbols(text: str | None, option: str = "--symbols") -> list[str]:
    from btlab.errors import InvalidArgumentError

    names = [s.strip() for s in (text or "").split(",") if s.strip()]
    if not names:
        raise InvalidArgumentError(f"{option}: no symbol given (e.g. {option} BTC/USDT,ETH/USDT)")
    return names


def _positive(value: float | None, option: str, *, zero: bool = False) -> None:
    import math

    from btlab.errors import InvalidArgumentError

    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise InvalidArgumentError(f"{option} must be {'>= 0' if zero else '> 0'} seconds, got {value}")


@ingest_app.command("history")
@friendly_errors
def history(
    symbols: SymbolsOption = ...,
    since: SinceOption = ...,
    source: SourceOption = Source.ccxt,
    exchange: ExchangeOption = None,
    timeframe: TimeframeOption = "1m",
    until: UntilOption = None,
    trades: TradesOption = False,
    bars: BarsOption = None,
    api_url: ApiUrlOption = None,
    store: StoreOption = None,
) -> None:
    """Page through an exchange's history into the store: resumable, idempotent, gap-aware.

    ccxt: pages through fetch_ohlcv (or fetch_trades with --trades) within the exchange's page limits and rate
    limiter, retries 429/5xx/network errors with backoff, never stores the still-open bar, and resumes from the last
    stored bar on the next run; --exchange is the ccxt exchange id (default binance). cryptocompare:
    histominute/histohour/histoday (--timeframe 1m, 1h, 1d; symbols such as BTC/USD) with the API key from
    CRYPTOCOMPARE_API_KEY (or BTLAB_CRYPTOCOMPARE_API_KEY), paging backwards with toTs; --exchange is an optional
    market filter (e). Both report the gaps left. --bars (with --trades) also builds bars from the fetched trades.

    \b
    Examples:
      btlab ingest history --symbols BTC/USDT,ETH/USDT --timeframe 1m \\
          --since 2024-01-01
      btlab ingest history --trades --bars 1m,1h --symbols BTC/USDT \\
          --since 2024-08-08T23:00Z --until 2024-08-09
      btlab ingest history --source cryptocompare --symbols BTC/USD \\
          --timeframe 1d --since 2020-01-01
    """
    from btlab.model.timebounds import parse_range
    from btlab.model.timeframe import Timeframe

    names = _need_symbols(symbols)  # every argument is checked before anything is fetched or written
    start, stop = parse_range(since, until, names=("--since", "--until"), end_inclusive=False)
    timeframe = Timeframe.parse(timeframe).value
    bar_tfs = _check_history_options(source, trades, bars)
    fetch = (_history_cryptocompare(names, timeframe, exchange, api_url) if source is Source.cryptocompare
             else _history_ccxt(names, timeframe, exchange, api_url, trades=trades))
    with open_store_cli(store) as st:
        with progress_task(f"{source.value} {','.join(names)} {timeframe}") as progress:
            results = fetch(st, start, stop, progress)
        for result in results:
            console.print(str(result), highlight=False)
        if trades and bar_tfs:
            _bars_from_fetched_trades(st, results[0], bar_tfs)


def _check_history_options(source: Source, trades: bool, bars: str | None) -> list[str]:
    """The ``--bars`` timeframes, after checking that ``--bars`` and ``--trades`` fit ``--source``.

    Raises:
        InvalidArgumentError: ``--bars`` without ``--trades``, ``--trades`` for CryptoCompare, a bad timeframe.
    """
    from btlab.errors import InvalidArgumentError

    bar_tfs = parse_timeframes(bars, "--bars") if bars is not None else []
    if bars is not None and not trades:
        raise InvalidArgumentError("--bars builds bars from fetched trades: use it with --trades")
    if trades and source is Source.cryptocompare:
        raise InvalidArgumentError("--trades is for --source ccxt only")
    return bar_tfs


def _history_ccxt(names: list[str], timeframe: str, exchange: str | None, api_url: str | None, *,
                  trades: bool) -> Any:
    """``fetch(store, start, stop, progress) -> [report]`` for ccxt bars or trades; the exchange is set up (and
    an unknown exchange id refused) now, before the store is opened."""
    from btlab.marketdata.sources.ccxt.exchange import make_exchange

    client = make_exchange(exchange or "binance", origin=api_url)  # an unknown exchange id fails here

    def fetch(st: Any, start: Any, stop: Any, progress: Any) -> list[Any]:
        from btlab.marketdata.sources.ccxt.history import ingest_ohlcv, ingest_trades

        if trades:
            return [ingest_trades(client, names, st, since=start, until=stop, progress=progress)]
        return [ingest_ohlcv(client, names, timeframe, st, since=start, until=stop, progress=progress)]

    return fetch


def _history_cryptocompare(names: list[str], timeframe: str, exchange: str | None, api_url: str | None) -> Any:
    """``fetch(store, start, stop, progress) -> [report per symbol]`` for CryptoCompare history.

    Raises:
        InvalidArgumentError: CryptoCompare has no endpoint for ``timeframe``.
    """
    from btlab.errors import InvalidArgumentError
    from btlab.marketdata.sources.cryptocompare.client import ENDPOINTS

    if timeframe not in ENDPOINTS:
        raise InvalidArgumentError(
            f"CryptoCompare has no {timeframe} history endpoint: use --timeframe {', '.join(ENDPOINTS)}"
        )

    def fetch(st: Any, start: Any, stop: Any, progress: Any) -> list[Any]:
        from btlab.marketdata.sources.cryptocompare.client import CryptoCompareClient
        from btlab.marketdata.sources.cryptocompare.history import ingest_cryptocompare

        cc_client = CryptoCompareClient(base_url=api_url) if api_url else None
        return ingest_cryptocompare(names, timeframe, st, since=start, until=stop, exchange=exchange,
                                    progress=progress, client=cc_client)

    return fetch


def _bars_from_fetched_trades(st: Any, result: Any, bar_tfs: list[str]) -> None:
    """Build ``bar_tfs`` bars from the trades each series of ``result`` fetched, and say how many."""
    from btlab.marketdata.bars.from_ticks import bars_from_ticks

    for series in result.series:
        built = bars_from_ticks(st, exchange=series.exchange, symbol=series.symbol,
                                timeframes=bar_tfs, start=series.start, end=series.end)
        console.print(f"{series.exchange}:{series.symbol}: bars from trades: "
                      + ", ".join(f"{n:,} {tf}" for tf, n in built.items()), highlight=False)


@ingest_app.command("binance-vision")
@friendly_errors
def binance_vision(
    files: BinanceFilesArgument,
    exchange: ExchangeOption = "binance",
    symbol: SymbolOption = None,
    timeframe: TimeframeOption = None,
    bars: BarsOption = None,
    store: StoreOption = None,
) -> None:
    """Bulk-import data.binance.vision files (with or without header, zipped or not).

    Klines go to the bars table (timeframe from the file name, else --timeframe, else the first row), trades and
    aggTrades to the ticks table (--bars: also build bars from them). --exchange is the id to store them under,
    --symbol the unified symbol (default: from the file name, e.g. BTCUSDT -> BTC/USDT). Every file and option is
    checked before anything is written. Big files are streamed in chunks. Malformed trade rows are set aside and
    counted (by file line); a bad kline file is rejected whole.
    """
    from btlab.marketdata.sources.binance_vision.importer import (
        check_binance_vision,
        import_binance_vision,
    )
    from btlab.model.timeframe import Timeframe

    tf = Timeframe.parse(timeframe).value if timeframe is not None else None
    bar_tfs = parse_timeframes(bars, "--bars") if bars is not None else None
    # every file and option is checked before the store is opened or anything written
    check_binance_vision(files, exchange=exchange, symbol=symbol, timeframe=tf, bars=bar_tfs)
    with open_store_cli(store) as st:
        with progress_task("importing") as progress:
            reports = import_binance_vision(files, st, exchange=exchange, symbol=symbol, timeframe=tf, bars=bar_tfs,
                                            progress=progress)
        for report in reports:
            console.print(str(report), highlight=False)
            if report.bars_span is not None:
                start, end = report.bars_span
                console.print(f"  bars from its trades ({start} .. {end}): "
                              + ", ".join(f"{n:,} {tf}" for tf, n in report.bars_built.items()), highlight=False)


@ingest_app.command("live")
@friendly_errors
def live(
    symbols: SymbolsOption = ...,
    exchange: ExchangeOption = "binance",
    timeframes: TimeframesOption = "1m",
    lateness: LatenessOption = 2.0,
    empty: EmptyOption = EmptyPolicy.skip,
    duration: DurationOption = None,
    idle_timeout: IdleTimeoutOption = None,
    watch_timeout: WatchTimeoutOption = 30.0,
    health_interval: HealthIntervalOption = 10.0,
    api_url: ApiUrlOption = None,
    ws_url: WsUrlOption = None,
    kafka: KafkaOption = None,
    store: StoreOption = None,
) -> None:
    """Stream live trades into ticks and bars by event time (ccxt.pro watch_trades).

    --exchange is a ccxt exchange id with WebSocket support in ccxt.pro; --timeframes are the bar timeframes
    built from the trades. Bars are written when their window has closed by exchange time (plus the allowed
    lateness); late trades are counted, never merged into a finished bar. Duplicates are dropped, malformed trades
    quarantined, trade-id gaps filled over REST, dropped connections resubscribed with backoff. Stop it any time
    (Ctrl-C, or kill): the next run rebuilds the open bars from the stored ticks and backfills what it missed,
    without gaps or duplicates. Every --health-interval seconds the job writes its figures and a heartbeat to the
    bt_health table (service ingest-live), which the pipeline-health dashboard and alerts read.

    \b
    Example:
      btlab ingest live --exchange binance --symbols BTC/USDT,ETH/USDT \\
          --timeframes 1s,1m
    """
    import asyncio

    from rich.live import Live

    names = _need_symbols(symbols)  # every argument is checked before connecting
    tfs = parse_timeframes(timeframes, "--timeframes")
    for value, option in ((lateness, "--lateness"), (duration, "--duration"), (idle_timeout, "--idle-timeout"),
                          (watch_timeout, "--watch-timeout"), (health_interval, "--health-interval")):
        _positive(value, option, zero=option == "--lateness")

    from btlab.marketdata.sources.ccxt.live import LiveIngest, LiveReport
    from btlab.store.health import HealthWriter
    from btlab.stream.config import StreamConfig
    from btlab.stream.producer import StreamProducer

    producer = StreamProducer(StreamConfig(bootstrap_servers=kafka)) if kafka else None
    with open_store_cli(store) as st:
        job = LiveIngest(exchange, names, tfs, st, producer=producer,
                         allowed_lateness=lateness, empty=empty.value, origin=api_url, ws_origin=ws_url,
                         watch_timeout=watch_timeout,
                         health=HealthWriter(st, "ingest-live", interval=health_interval))
        with Live(console=console, transient=True, auto_refresh=False) as display:

            def on_update(report: LiveReport) -> None:
                display.update(_live_line(report), refresh=True)

            try:
                report = asyncio.run(job.run(duration=duration, idle_timeout=idle_timeout, on_update=on_update))
            except KeyboardInterrupt:
                report = job.report
        console.print(str(report), highlight=False)


def _live_line(report: Any) -> Any:
    """Ticks and bars written so far and each symbol's watermark (exchange time)."""
    marks = ", ".join(f"{s} {w:%H:%M:%S}" for s, w in report.watermark.items() if w is not None)
    return styled((f"{report.ticks_written:,}", "bold"), f" ticks, bars {report.bars_written}, "
                  f"watermark {marks or '—'}")
