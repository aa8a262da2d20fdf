"""``btlab ingest ...``: fill the store from exchanges (ccxt), CryptoCompare and data.binance.vision files."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from btlab.cli.common import StoreOption, console, friendly_errors, open_store_cli, progress_bar

ingest_app = typer.Typer(help="Fill the store with market data: exchange history, CryptoCompare, Binance files.",
                         no_args_is_help=True)


class Source(str, Enum):
    ccxt = "ccxt"
    cryptocompare = "cryptocompare"


def _symbols(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


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
    api_url: Annotated[str | None, typer.Option(help="Override the exchange's REST base URL (a proxy, or a local fake exchange).")] = None,
    store: StoreOption = None,
) -> None:
    """Page through an exchange's history into the store: resumable, idempotent, gap-aware.

    ccxt: pages through fetch_ohlcv (or fetch_trades with --trades) within the exchange's page limits and rate
    limiter, retries 429/5xx/network errors with backoff, never stores the still-open bar, and resumes from the last
    stored bar on the next run. cryptocompare: histominute/histohour/histoday with the API key from
    CRYPTOCOMPARE_API_KEY (or BTLAB_CRYPTOCOMPARE_API_KEY), paging backwards with toTs. Both report the gaps left.
    """
    names = _symbols(symbols)
    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task(f"{source.value} {','.join(names)} {timeframe}", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if source is Source.cryptocompare:
            if trades:
                raise typer.BadParameter("--trades is for --source ccxt only")
            from btlab.marketdata.cryptocompare import CryptoCompareClient, ingest_cryptocompare

            client = CryptoCompareClient(base_url=api_url) if api_url else None
            reports = ingest_cryptocompare(names, timeframe, st, since=since, until=until, exchange=exchange,
                                           progress=on_progress, client=client)
            progress.stop()
            for report in reports:
                console.print(str(report), highlight=False)
            return
        from btlab.marketdata.ccxt_exchange import make_exchange
        from btlab.marketdata.ccxt_history import ingest_ohlcv, ingest_trades

        client = make_exchange(exchange or "binance", origin=api_url)
        if trades:
            result = ingest_trades(client, names, st, since=since, until=until, progress=on_progress)
        else:
            result = ingest_ohlcv(client, names, timeframe, st, since=since, until=until, progress=on_progress)
        progress.stop()
        console.print(str(result), highlight=False)


@ingest_app.command("binance-vision")
@friendly_errors
def binance_vision(
    files: Annotated[list[Path], typer.Argument(help="data.binance.vision files: klines, trades or aggTrades, .zip or .csv.")],
    exchange: Annotated[str, typer.Option(help="Exchange id to store them under.")] = "binance",
    symbol: Annotated[str | None, typer.Option(help="Unified symbol (default: from the file name, e.g. BTCUSDT -> BTC/USDT).")] = None,
    store: StoreOption = None,
) -> None:
    """Bulk-import data.binance.vision files (with or without header, zipped or not).

    Klines go to the bars table (timeframe from the file name), trades and aggTrades to the ticks table. Big files
    are streamed in chunks. Malformed trade rows are set aside and counted; a bad kline file is rejected whole.
    """
    from btlab.marketdata.binance_vision import import_binance_vision

    with open_store_cli(store) as st, progress_bar() as progress:
        task = progress.add_task("importing", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        reports = import_binance_vision(files, st, exchange=exchange, symbol=symbol, progress=on_progress)
        progress.stop()
        for report in reports:
            console.print(str(report), highlight=False)
