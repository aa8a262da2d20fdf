"""Running one backtest: :func:`run_backtest` and its :class:`BacktestResult`."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.compat import bt
from btlab.backtest.feed import StoreData
from btlab.backtest.metrics import Metrics
from btlab.backtest.recorder import Recorder
from btlab.backtest.registry import coerce_params, resolve_strategy
from btlab.errors import InvalidArgumentError
from btlab.model.instrument import Calendar, Instrument
from btlab.model.timebounds import parse_bound, parse_range
from btlab.model.timeframe import Timeframe
from btlab.store import Store, open_store

__all__ = ["BacktestConfig", "BacktestResult", "hash_bars", "new_run_id", "parse_bound", "run_backtest"]


@dataclass(frozen=True)
class BacktestConfig:
    """Everything that determines a run's result (hashed into ``config_hash``).

    Money in account currency; ``commission`` and ``slippage_pct`` are fractions of traded value/price
    (0.001 = 0.1 %); ``slippage_fixed`` is in price units; sizing is either ``stake`` units per order or
    ``size_pct`` percent of cash per order (Backtrader's PercentSizer), never both.
    """

    strategy: str
    params: dict[str, Any]
    exchange: str
    symbol: str
    timeframe: str
    start: str | None
    end: str | None
    cash: float = 10_000.0
    commission: float = 0.001
    size_pct: float | None = 95.0
    stake: float | None = None
    slippage_pct: float = 0.0
    slippage_fixed: float = 0.0
    calendar: str = "crypto"

    def hash(self) -> str:
        """sha256 of the canonical JSON of this config (first 16 hex digits)."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def hash_bars(bars: pd.DataFrame) -> str:
    """sha256 (first 16 hex digits) of the bars' open times (int64 ns) and OHLCV (float64), in order."""
    h = hashlib.sha256()
    h.update(pd.DatetimeIndex(bars["ts"]).asi8.tobytes())
    for col in ("open", "high", "low", "close", "volume"):
        h.update(np.ascontiguousarray(bars[col].to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()[:16]


@dataclass
class BacktestResult:
    """The outcome of :func:`run_backtest`.

    Attributes:
        run_id: the run's id in the store.
        config: what was run.
        summary: the :class:`~btlab.backtest.metrics.Metrics`.
        equity: per bar, indexed by UTC bar open time: ``value, cash, drawdown, position_value``.
        trades: closed trades: ``ts`` (exit, UTC), ``trade_ref, symbol, direction, size, entry_ts, entry_price,
            exit_price, pnl, pnl_net, commission, bars_held``.
        orders: order fills and final states: ``ts, order_ref, symbol, side, type, status, size, price,
            executed_size, executed_price, commission``.
        bars: the bars the strategy saw (``btlab.model.bar`` layout).
        strategy: the Backtrader strategy instance after the run (indicators, your attributes).
        analyzers: results of extra analyzers passed to :func:`run_backtest`, by name.
        store_address: where the run was recorded (None if not recorded).
    """

    run_id: str
    config: BacktestConfig
    summary: Metrics
    equity: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    bars: pd.DataFrame
    strategy: Any = field(repr=False)
    analyzers: dict[str, Any] = field(default_factory=dict, repr=False)
    store_address: str | None = None

    @property
    def metrics(self) -> pd.Series:
        """The metrics as a pandas Series (see :mod:`btlab.backtest.metrics` for definitions)."""
        return self.summary.as_series().rename(self.run_id)

    def report(self, path: str | Path | None = None, store: Store | str | None = None) -> Path:
        """Write the run's HTML report (reads the run back from its store) and return its path."""
        from btlab.report.html import write_report

        target = store if isinstance(store, Store) else open_store(store or self.store_address)
        try:
            return write_report(target, self.run_id, path)
        finally:
            if not isinstance(store, Store):
                target.close()


def new_run_id(now: datetime | None = None) -> str:
    """A sortable unique run id: ``YYYYmmddTHHMMSS-<8 hex>`` (UTC)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def run_backtest(
    strategy: str | type = "sma_cross",
    *,
    symbol: str = "BTC/USDT",
    exchange: str = "binance",
    timeframe: str = "1h",
    start: Any = None,
    end: Any = None,
    params: Mapping[str, Any] | None = None,
    cash: float = 10_000.0,
    commission: float = 0.001,
    size_pct: float | None = 95.0,
    stake: float | None = None,
    slippage_pct: float = 0.0,
    slippage_fixed: float = 0.0,
    calendar: Calendar | str | None = None,
    store: Store | str | None = None,
    record: bool = True,
    run_id: str | None = None,
    sweep_id: str | None = None,
    analyzers: Mapping[str, type] | None = None,
    progress: Callable[[int, int], None] | None = None,
    flush_bars: int = 10_000,
    flush_seconds: float = 2.0,
) -> BacktestResult:
    """Run a Backtrader strategy on stored bars, record it, and return its result.

    Args:
        strategy: bundled name (``sma_cross``, ``buy_hold``), ``package.module:Class``, ``file.py:Class`` or a
            ``bt.Strategy`` subclass.
        symbol, exchange, timeframe: the bars to use (ccxt unified symbol, ccxt id, ccxt timeframe).
        start, end: inclusive UTC bounds: ``YYYY-MM-DD`` dates or ISO 8601 times (strictly, see
            :mod:`btlab.model.timebounds`; a date ``end`` includes that whole day). None = all.
        params: strategy parameters; strings are converted to each parameter's type (CLI values).
        cash: starting cash. commission: fraction of traded value per fill (0.001 = 0.1 %).
        size_pct: percent of cash per order (default 95 %), or ``stake``: fixed units per order (then
            ``size_pct`` is ignored).
        slippage_pct, slippage_fixed: Backtrader slippage, as a fraction of price or in price units.
        calendar: ``crypto`` (365 days/year) or ``equity`` (252); default from the symbol (``BASE/QUOTE`` -> crypto).
        store: a Store, an address, or None for ``BTLAB_STORE``/the default DuckDB file.
        record: write the run (row, equity, trades, orders) to the store while it runs.
        run_id, sweep_id: ids to record; a new run id by default.
        analyzers: extra Backtrader analyzers to attach, ``{name: AnalyzerClass}``; results in ``.analyzers``.
        progress: callable ``(bars_done, bars_total)`` for progress display.
        flush_bars, flush_seconds: recorder batch size and maximum delay.

    Returns: :class:`BacktestResult`.

    Raises:
        UnknownStrategyError, StrategyParameterError: bad strategy or parameters (nothing recorded).
        NoDataError: no bars in the store for the request (nothing recorded).
        InvalidArgumentError: a bound that is not a date/time, an ambiguous one (``01/02/2020``), ``start`` after
            ``end``, or a bad size/cash/commission/slippage (nothing recorded).
        StoreUnavailableError: the store cannot be reached.
        Exception: an error inside the strategy is re-raised after the run is recorded as ``failed``.
    """
    ref, cls = resolve_strategy(strategy)
    resolved = coerce_params(cls, params)
    tf = Timeframe.parse(timeframe)
    cal = Calendar(calendar) if calendar is not None else Instrument(exchange, symbol).calendar
    if stake is not None and stake <= 0:
        raise InvalidArgumentError(f"stake must be positive, got {stake}")
    if stake is None and size_pct is not None and not 0 < size_pct <= 100:
        raise InvalidArgumentError(f"size_pct must be in (0, 100], got {size_pct}")
    if cash <= 0:
        raise InvalidArgumentError(f"cash must be positive, got {cash}")
    if commission < 0 or slippage_pct < 0 or slippage_fixed < 0:
        raise InvalidArgumentError("commission and slippage must be >= 0")
    lo, hi = parse_range(start, end)
    config = BacktestConfig(
        strategy=ref, params=resolved, exchange=exchange, symbol=symbol, timeframe=tf.value,
        start=None if lo is None else lo.isoformat(), end=None if hi is None else hi.isoformat(),
        cash=float(cash), commission=float(commission), size_pct=None if stake is not None else size_pct,
        stake=stake, slippage_pct=float(slippage_pct), slippage_fixed=float(slippage_fixed), calendar=cal.value,
    )

    owns_store = not isinstance(store, Store)
    the_store = open_store(store) if owns_store else store  # type: ignore[arg-type]
    try:
        feed = StoreData(store=the_store, exchange=exchange, symbol=symbol, bars_timeframe=tf.value, start=lo, end=hi,
                         name=symbol)
        bars = feed.load_bars()
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(feed)
        cerebro.addstrategy(cls, **resolved)
        cerebro.broker.setcash(cash)
        cerebro.broker.setcommission(commission=commission)
        if slippage_pct:
            cerebro.broker.set_slippage_perc(slippage_pct)
        elif slippage_fixed:
            cerebro.broker.set_slippage_fixed(slippage_fixed)
        if stake is not None:
            cerebro.addsizer(bt.sizers.FixedSize, stake=stake)
        elif size_pct is not None:
            cerebro.addsizer(bt.sizers.PercentSizer, percents=size_pct)
        for name, analyzer in (analyzers or {}).items():
            cerebro.addanalyzer(analyzer, _name=name)

        rid = run_id or new_run_id()
        started = datetime.now(timezone.utc)
        run_row = {
            "ts": started, "run_id": rid, "sweep_id": sweep_id, "strategy": ref, "params": resolved,
            "exchange": exchange, "symbols": symbol, "timeframe": tf.value,
            "data_from": bars["ts"].iloc[0], "data_to": bars["ts"].iloc[-1], "bars": len(bars),
            "calendar": cal.value, "cash": float(cash), "commission": float(commission),
            "config": asdict(config), "config_hash": config.hash(), "data_hash": hash_bars(bars),
            "btlab_version": _btlab_version(), "backtrader_version": bt.__version__,
        }
        cerebro.addanalyzer(
            Recorder, _name="btlab_recorder", store=the_store if record else None, run=run_row, calendar=cal.value,
            progress=progress, bars_total=len(bars), flush_bars=flush_bars, flush_seconds=flush_seconds,
        )
        recorder: Recorder | None = None
        try:
            strategies = cerebro.run()
        except BaseException as exc:
            recorder = _find_recorder(cerebro)
            if recorder is not None and record:
                recorder.fail(exc)
            raise
        strat = strategies[0]
        recorder = strat.analyzers.btlab_recorder
        analysis = recorder.get_analysis()
        extra = {name: getattr(strat.analyzers, name).get_analysis() for name in (analyzers or {})}
        return BacktestResult(
            run_id=rid, config=config, summary=analysis["metrics"], equity=analysis["equity"],
            trades=analysis["trades"], orders=analysis["orders"], bars=bars, strategy=strat, analyzers=extra,
            store_address=the_store.address if record else None,
        )
    finally:
        if owns_store:
            the_store.close()


def _find_recorder(cerebro: Any) -> Recorder | None:
    for strat in getattr(cerebro, "runningstrats", []) or []:
        for analyzer in strat.analyzers:
            if isinstance(analyzer, Recorder):
                return analyzer
    return None


def _btlab_version() -> str:
    import btlab

    return btlab.__version__
