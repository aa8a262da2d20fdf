"""``btlab paper``: paper-trade a strategy on live trades through the broker (see :mod:`btlab.backtest.paper`)."""

from __future__ import annotations

import typer

from btlab.cli.common import (
    ApiUrlOption,
    CashOption,
    CommissionOption,
    ConnectTimeoutOption,
    EmptyOption,
    EmptyPolicy,
    ExchangeOption,
    HealthIntervalOption,
    IdleTimeoutOption,
    KafkaOption,
    LatenessOption,
    MaxBarsOption,
    ParamOption,
    SizePctOption,
    SlippageFixedOption,
    SlippagePctOption,
    StakeOption,
    StoreOption,
    StrategyOption,
    SymbolsOption,
    TimeframeOption,
    TopicOption,
    WatchTimeoutOption,
    WsUrlOption,
    console,
    friendly_errors,
    need_text,
    open_store_cli,
)


@friendly_errors
def paper(
    strategy: StrategyOption = "sma_cross",
    symbols: SymbolsOption = ...,
    exchange: ExchangeOption = "binance",
    timeframe: TimeframeOption = "1m",
    param: ParamOption = None,
    cash: CashOption = 10_000.0,
    commission: CommissionOption = 0.001,
    size_pct: SizePctOption = 95.0,
    stake: StakeOption = None,
    slippage_pct: SlippagePctOption = 0.0,
    slippage_fixed: SlippageFixedOption = 0.0,
    topic: TopicOption = None,
    kafka: KafkaOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    idle_timeout: IdleTimeoutOption = None,
    max_bars: MaxBarsOption = None,
    lateness: LatenessOption = 2.0,
    empty: EmptyOption = EmptyPolicy.skip,
    watch_timeout: WatchTimeoutOption = 30.0,
    health_interval: HealthIntervalOption = 10.0,
    api_url: ApiUrlOption = None,
    ws_url: WsUrlOption = None,
    store: StoreOption = None,
) -> None:
    """Paper-trade a strategy on live trades: exchange -> bars -> topic -> strategy on a simulated broker.

    Live trades of --symbols (the ingest live path: ticks and bars also go to the store) become --timeframe bars,
    which are published to a topic on the broker (--kafka) and played from it to the strategy through the same
    live feed as btlab backtest --source kafka, on Backtrader's simulated broker (cash, commission, sizing and
    slippage as for backtests). Equity, orders and trades are stored while it runs (btlab runs show, the
    dashboards); the run is running until it stops, then stopped. The strategy starts without history: its
    warm-up is played live. Ctrl-C or SIGTERM stops it after the current bar (exit 130/143); --idle-timeout
    (seconds without a trade) and --max-bars stop it too. Its ingest writes figures and a heartbeat to bt_health
    as service paper (btlab health --service paper).

    \b
    Example:
      btlab paper --exchange binance --symbols BTC/USDT --timeframe 1m \\
          --strategy sma_cross -p fast=5 -p slow=20 --kafka 127.0.0.1:19092
    """
    from btlab.backtest.registry import parse_param_pairs
    from btlab.backtest.runner import check_backtest
    from btlab.cli.ingest import _positive
    from btlab.errors import InvalidArgumentError

    names = need_text(symbols, "--symbols")  # every argument is checked before the broker or the store is opened
    params = parse_param_pairs(param)
    settings = dict(cash=cash, commission=commission, size_pct=size_pct, stake=stake, slippage_pct=slippage_pct,
                    slippage_fixed=slippage_fixed)
    check_backtest(strategy, symbols=names, exchange=exchange, timeframe=timeframe, params=params, **settings)
    for value, option in ((lateness, "--lateness"), (idle_timeout, "--idle-timeout"),
                          (watch_timeout, "--watch-timeout"), (health_interval, "--health-interval")):
        _positive(value, option, zero=option == "--lateness")
    if not kafka:
        raise InvalidArgumentError("no Kafka broker: give --kafka HOST:PORT or set BTLAB_KAFKA")

    from btlab.backtest.paper import PaperRun
    from btlab.stream.config import StreamConfig, check_broker

    config = StreamConfig(kafka, connect_timeout_s=connect_timeout)
    check_broker(config)  # a broker that is down: one line, exit 2, before the store is opened
    with open_store_cli(store) as st:
        run = PaperRun(strategy, symbols=names, exchange=exchange or "binance", timeframe=timeframe or "1m",
                       params=params, **settings, store=st, kafka=config, topic=topic, idle_timeout=idle_timeout,
                       max_bars=max_bars, lateness=lateness, empty=empty.value, api_url=api_url, ws_url=ws_url,
                       watch_timeout=watch_timeout, health_interval=health_interval)
        console.print(f"paper run {run.run_id}: {strategy} on {exchange}:{names} {timeframe} bars via topic "
                      f"{run.topic}; Ctrl-C stops it", highlight=False, soft_wrap=True)
        result = run.run()
        r = result.run
        span = (f"{r.bars['ts'].iloc[0]:%Y-%m-%d %H:%M:%S} .. {r.bars['ts'].iloc[-1]:%Y-%m-%d %H:%M:%S} UTC"
                if len(r.bars) else "no bar")
        value = r.equity["value"].iloc[-1] if len(r.equity) else r.config.cash
        console.print(f"paper run {r.run_id} stopped ({result.stopped_by}) after {len(r.equity):,} bars ({span}): "
                      f"{len(r.trades):,} trades, value {value:,.2f}; stored in {st.address} (btlab runs show "
                      f"{r.run_id})", highlight=False, soft_wrap=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
