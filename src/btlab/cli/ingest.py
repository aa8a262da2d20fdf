"""``btlab ingest ...``: fill the store from exchanges (ccxt), CryptoCompare and data.binance.vision files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from btlab.cli.common import (
    APP_SETTINGS,
    BtlabGroup,
    StoreOption,
    console,
    friendly_errors,
    open_store_cli,
    parse_timeframes,
    progress_bar,
    styled,
)

ingest_app = typer.Typer(help="Fill the store with market data: exchange history, CryptoCompare, Binance files.",
                         no_args_is_help=True, cls=BtlabGroup, **APP_SETTINGS)


class Source(str, Enum):
    ccxt = "ccxt"
    cryptocompare = "cryptocompare"


def _symbols(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _need_symbols(text: str, option: str = "--symbols") -> list[str]:
    from btlab.errors import InvalidArgumentError

    names = _symbols(text)
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
    symbols: Annotated[str, typer.Option(help="Comma-separated unified symbols, e.g. BTC/USDT,ETH/USDT (BTC/USD for CryptoCompare).")],
    since: Annotated[str, typer.Option(help="First bar (UTC), e.g. 2024-01-01.")],
    source: Annotated[Source, typer.Option(help="ccxt (any of its 100+ exchanges) or cryptocompare.")] = Source.ccxt,
    exchange: Annotated[str | None, typer.Option(help="ccxt exchange id (default binance); for cryptocompare: an optional market filter (e).")] = None,
    timeframe: Annotated[str, typer.Option(help="Bar timeframe: 1m, 5m, 1h, 1d, ... (CryptoCompare: 1m, 1h, 1d).")] = "1m",
    until: Annotated[str | None, typer.Option(help="Stop before this time (UTC, exclusive); default: the last closed bar.")] = None,
    trades: Annotated[bool, typer.Option("--trades", help="ccxt only: fetch trade history into the ticks table instead of bars.")] = False,
    bars: Annotated[str | None, typer.Option("--bars", help="With --trades: also build these bar timeframes from the fetched trades (e.g. 1m,1h).")] = None,
    api_url: Annotated[str | None, typer.Option(help="Override the exchange's REST base URL (a proxy, or a local fake exchange).")] = None,
    store: StoreOption = None,
) -> None:
    """Page through an exchange's history into the store: resumable, idempotent, gap-aware.

    ccxt: pages through fetch_ohlcv (or fetch_trades with --trades) within the exchange's page limits and rate
    limiter, retries 429/5xx/network errors with backoff, never stores the still-open bar, and resumes from the last
    stored bar on the next run. cryptocompare: histominute/histohour/histoday with the API key from
    CRYPTOCOMPARE_API_KEY (or BTLAB_CRYPTOCOMPARE_API_KEY), paging backwards with toTs. Both report the gaps left.

    \b
    Examples:
      btlab ingest history --symbols BTC/USDT,ETH/USDT --timeframe 1m \\
          --since 2024-01-01
      btlab ingest history --trades --bars 1m,1h --symbols BTC/USDT \\
          --since 2024-08-08T23:00Z --until 2024-08-09
      btlab ingest history --source cryptocompare --symbols BTC/USD \\
          --timeframe 1d --since 2020-01-01
    """
    from btlab.errors import InvalidArgumentError
    from btlab.model.timebounds import parse_range
    from btlab.model.timeframe import Timeframe

    names = _need_symbols(symbols)  # every argument is checked before anything is fetched or written
    start, stop = parse_range(since, until, names=("--since", "--until"), end_inclusive=False)
    timeframe = Timeframe.parse(timeframe).value
    bar_tfs = parse_timeframes(bars, "--bars") if bars is not None else []
    if bars is not None and not trades:
        raise InvalidArgumentError("--bars builds bars from fetched trades: use it with --trades")
    if trades and source is Source.cryptocompare:
        raise InvalidArgumentError("--trades is for --source ccxt only")
    client = None
    if source is Source.ccxt:
        from btlab.marketdata.sources.ccxt.exchange import make_exchange

        client = make_exchange(exchange or "binance", origin=api_url)  # an unknown exchange id fails here
    else:
        from btlab.marketdata.sources.cryptocompare.client import ENDPOINTS

        if timeframe not in ENDPOINTS:
            raise InvalidArgumentError(
                f"CryptoCompare has no {timeframe} history endpoint: use --timeframe {', '.join(ENDPOINTS)}"
            )
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task(f"{source.value} {','.join(names)} {timeframe}", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if source is Source.cryptocompare:
            from btlab.marketdata.sources.cryptocompare.client import CryptoCompareClient
            from btlab.marketdata.sources.cryptocompare.history import ingest_cryptocompare

            cc_client = CryptoCompareClient(base_url=api_url) if api_url else None
            reports = ingest_cryptocompare(names, timeframe, st, since=start, until=stop, exchange=exchange,
                                           progress=on_progress, client=cc_client)
            progress.stop()
            for report in reports:
                console.print(str(report), highlight=False)
            return
        from btlab.marketdata.sources.ccxt.history import ingest_ohlcv, ingest_trades

        if trades:
            result = ingest_trades(client, names, st, since=start, until=stop, progress=on_progress)
        else:
            result = ingest_ohlcv(client, names, timeframe, st, since=start, until=stop, progress=on_progress)
        progress.stop()
        console.print(str(result), highlight=False)
        if trades and bar_tfs:
            from btlab.marketdata.bars.from_ticks import bars_from_ticks

            for series in result.series:
                built = bars_from_ticks(st, exchange=series.exchange, symbol=series.symbol,
                                        timeframes=bar_tfs, start=series.start, end=series.end)
                console.print(f"{series.exchange}:{series.symbol}: bars from trades: "
                              + ", ".join(f"{n:,} {tf}" for tf, n in built.items()), highlight=False)


@ingest_app.command("binance-vision")
@friendly_errors
def binance_vision(
    files: Annotated[list[Path], typer.Argument(help="data.binance.vision files: klines, trades or aggTrades, .zip or .csv.")],
    exchange: Annotated[str, typer.Option(help="Exchange id to store them under.")] = "binance",
    symbol: Annotated[str | None, typer.Option(help="Unified symbol (default: from the file name, e.g. BTCUSDT -> BTC/USDT).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Klines files: the bars' timeframe when the file name does not say it (e.g. 1h).")] = None,
    bars: Annotated[str | None, typer.Option("--bars", help="For trades/aggTrades files: also build these bar timeframes from them (e.g. 1m,1h).")] = None,
    store: StoreOption = None,
) -> None:
    """Bulk-import data.binance.vision files (with or without header, zipped or not).

    Klines go to the bars table (timeframe from the file name, else --timeframe, else the first row), trades and
    aggTrades to the ticks table. Every file and option is checked before anything is written. Big files are
    streamed in chunks. Malformed trade rows are set aside and counted (by file line); a bad kline file is
    rejected whole.
    """
    from btlab.marketdata.sources.binance_vision.importer import check_binance_vision, import_binance_vision
    from btlab.model.timeframe import Timeframe

    tf = Timeframe.parse(timeframe).value if timeframe is not None else None
    bar_tfs = parse_timeframes(bars, "--bars") if bars is not None else None
    # every file and option is checked before the store is opened or anything written
    check_binance_vision(files, exchange=exchange, symbol=symbol, timeframe=tf, bars=bar_tfs)
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task("importing", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        reports = import_binance_vision(files, st, exchange=exchange, symbol=symbol, timeframe=tf, bars=bar_tfs,
                                        progress=on_progress)
        progress.stop()
        for report in reports:
            console.print(str(report), highlight=False)
            if report.bars_span is not None:
                start, end = report.bars_span
                console.print(f"  bars from its trades ({start} .. {end}): "
                              + ", ".join(f"{n:,} {tf}" for tf, n in report.bars_built.items()), highlight=False)


class EmptyPolicy(str, Enum):
    skip = "skip"
    flat = "flat"


@ingest_app.command("live")
@friendly_errors
def live(
    symbols: Annotated[str, typer.Option(help="Comma-separated unified symbols, e.g. BTC/USDT,ETH/USDT.")],
    exchange: Annotated[str, typer.Option(help="ccxt exchange id (with WebSocket support in ccxt.pro).")] = "binance",
    timeframes: Annotated[str, typer.Option(help="Comma-separated bar timeframes built from the trades, e.g. 1s,1m.")] = "1m",
    lateness: Annotated[float, typer.Option(help="Allowed lateness in seconds: a bar is final once trades newer than its end + this arrived (the watermark).")] = 2.0,
    empty: Annotated[EmptyPolicy, typer.Option(help="Windows without trades: skip (no bar) or flat (zero-volume bar at the previous close).")] = EmptyPolicy.skip,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds without a trade.")] = None,
    watch_timeout: Annotated[float, typer.Option(help="Reconnect when the subscription is silent this many seconds.")] = 30.0,
    api_url: Annotated[str | None, typer.Option(help="Override the exchange's REST base URL (used for markets and gap backfill).")] = None,
    ws_url: Annotated[str | None, typer.Option(help="Override the exchange's WebSocket base URL (e.g. ws://127.0.0.1:8765).")] = None,
    kafka: Annotated[str | None, typer.Option(envvar="BTLAB_KAFKA", help="Kafka/Redpanda bootstrap servers: ticks and bars also go to topics.")] = None,
    store: StoreOption = None,
) -> None:
    """Stream live trades into ticks and bars by event time (ccxt.pro watch_trades).

    Bars are written when their window has closed by exchange time (plus the allowed lateness); late trades are
    counted, never merged into a finished bar. Duplicates are dropped, malformed trades quarantined, trade-id gaps
    filled over REST, dropped connections resubscribed with backoff. Stop it any time (Ctrl-C, or kill): the next
    run rebuilds the open bars from the stored ticks and backfills what it missed, without gaps or duplicates.

    \b
    Example:
      btlab ingest live --exchange binance --symbols BTC/USDT,ETH/USDT \\
          --timeframes 1s,1m
    """
    import asyncio

    from rich.live import Live

    names = _need_symbols(symbols)  # every argument is checked before connecting
    tfs = parse_timeframes(timeframes, "--timeframes")
    _positive(lateness, "--lateness", zero=True)
    _positive(duration, "--duration")
    _positive(idle_timeout, "--idle-timeout")
    _positive(watch_timeout, "--watch-timeout")

    from btlab.marketdata.sources.ccxt.live import LiveIngest, LiveReport
    from btlab.stream.config import StreamConfig
    from btlab.stream.producer import StreamProducer

    producer = StreamProducer(StreamConfig(bootstrap_servers=kafka)) if kafka else None
    with open_store_cli(store) as st:
        job = LiveIngest(exchange, names, tfs, st, producer=producer,
                         allowed_lateness=lateness, empty=empty.value, origin=api_url, ws_origin=ws_url,
                         watch_timeout=watch_timeout)
        with Live(console=console, transient=True, auto_refresh=False) as display:

            def on_update(report: LiveReport) -> None:
                marks = ", ".join(f"{s} {w:%H:%M:%S}" for s, w in report.watermark.items() if w is not None)
                display.update(styled((f"{report.ticks_written:,}", "bold"), f" ticks, bars {report.bars_written}, "
                                      f"watermark {marks or '—'}"), refresh=True)

            try:
                report = asyncio.run(job.run(duration=duration, idle_timeout=idle_timeout, on_update=on_update))
            except KeyboardInterrupt:
                report = job.report
        console.print(str(report), highlight=False)
