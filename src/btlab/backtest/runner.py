"""Running one backtest: :func:`run_backtest` and its :class:`BacktestResult`."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

import btlab
from btlab.backtest.checks import check_gaps, check_settings, check_slippage_fixed, gap_report
from btlab.backtest.compat import bt
from btlab.backtest.feed import (
    BarFrameData,
    StoreData,
    backtrader_timeframe,
    check_resample,
    complete_windows,
    traded_bars,
)
from btlab.backtest.metrics import Metrics
from btlab.backtest.recorder import Recorder, RunControl
from btlab.backtest.registry import coerce_params, resolve_strategy
from btlab.backtest.signals import stop_on_signals
from btlab.errors import InvalidArgumentError, NoDataError, RunInterruptedError
from btlab.model.instrument import Calendar
from btlab.model.sessions import check_session, filter_session
from btlab.model.timebounds import parse_bound, parse_range
from btlab.model.timeframe import Timeframe
from btlab.model.venue import resolve_venue
from btlab.store import Store, open_store
from btlab.store.factory import StoreTarget, reopen_target

__all__ = [
    "BacktestConfig", "BacktestResult", "check_backtest", "hash_bars", "load_backtest_bars", "new_run_id",
    "parse_bound", "run_backtest",
]


@dataclass(frozen=True)
class BacktestConfig:
    """Everything that determines a run's result (hashed into ``config_hash``).

    ``symbol`` is the instrument, or the comma-separated instruments of a run over several (as ``bt_runs.symbols``);
    ``timeframe`` the stored base timeframe and ``resample`` the timeframes built from it with Backtrader's
    resampler. Money in account currency; ``commission`` and ``slippage_pct`` are fractions of traded value/price
    (0.001 = 0.1 %); ``slippage_fixed`` is in price units; sizing is either ``stake`` units per order or
    ``size_pct`` percent of cash per order (Backtrader's PercentSizer), never both. ``calendar`` is the kind
    (``crypto``/``equity``: annualization 365/252), ``venue_calendar`` the calendar whose sessions apply (``24/7`` or
    an exchange_calendars code such as ``XNYS``), ``session`` the session the bars were filtered to (``regular``,
    ``extended``; None for 24/7 venues).
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
    venue_calendar: str = "24/7"
    session: str | None = None
    resample: tuple[str, ...] = ()

    @property
    def symbols(self) -> tuple[str, ...]:
        """The instruments, in feed order."""
        return tuple(self.symbol.split(","))

    def hash(self) -> str:
        """sha256 of the canonical JSON of this config (first 16 hex digits); a run without resampled timeframes
        hashes as before they existed."""
        fields = asdict(self)
        if not fields["resample"]:
            del fields["resample"]
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def hash_bars(bars: pd.DataFrame | Mapping[str, pd.DataFrame]) -> str:
    """sha256 (first 16 hex digits) of the bars' open times (int64 ns) and OHLCV (float64), in order.

    ``bars`` is one frame, or ``{symbol: frame}`` for a run over several instruments (each symbol's name, then its
    bars, in the mapping's order; a mapping of one frame hashes like the frame alone).
    """
    frames = dict(bars) if isinstance(bars, Mapping) else {"": bars}
    h = hashlib.sha256()
    for name, frame in frames.items():
        if len(frames) > 1:
            h.update(name.encode() + b"\0")
        h.update(pd.DatetimeIndex(frame["ts"]).asi8.tobytes())
        for col in ("open", "high", "low", "close", "volume"):
            h.update(np.ascontiguousarray(frame[col].to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()[:16]


@dataclass
class BacktestResult:
    """The outcome of :func:`run_backtest`.

    Attributes:
        run_id: the run's id in the store.
        config: what was run.
        summary: the :class:`~btlab.backtest.metrics.Metrics`.
        equity: per base bar time, indexed by UTC bar open time: ``value, cash, drawdown, position_value``
            (the whole portfolio).
        trades: closed trades: ``ts`` (exit, UTC), ``trade_ref, symbol, direction, size, entry_ts, entry_price,
            exit_price, pnl, pnl_net, commission, bars_held``.
        orders: order fills and final order states: ``ts, order_ref, symbol, side, type, status, size, price,
            executed_size, executed_price, commission``.
        bars: the base bars of the first instrument (``btlab.model.bar`` layout); all of them in
            ``bars_by_symbol``.
        strategy: the Backtrader strategy instance after the run (indicators, your attributes).
        analyzers: results of extra analyzers passed to :func:`run_backtest`, by name.
        store_address: where the run was recorded (None if not recorded), as shown to people: without password or
            token. :meth:`open_store` reopens the store with its private configuration (credentials included), which
            this object keeps out of its ``repr``, equality and pickles.
        warnings: human-readable warnings, one line each (gaps in the range, orders that ended Margin/Rejected/
            Canceled), as stored in ``bt_runs.warnings``.
        order_counts: ``{"orders_rejected": n, "orders_margin": n, "orders_canceled": n}`` (Canceled includes
            Expired), as stored in ``bt_runs``.
        bars_by_symbol: the base bars of every instrument, in feed order.
        states: the state changes the strategy recorded (:mod:`btlab.backtest.states`), as stored in
            ``bt_states``: ``ts`` (UTC close time of the deciding bar), ``machine, from_state, to_state``, in the
            order recorded; empty for a strategy without state machines.
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
    warnings: list[str] = field(default_factory=list)
    order_counts: dict[str, int] = field(default_factory=dict)
    bars_by_symbol: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    states: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: what open_store needs to reopen the run's store (a QuestDBConfig holds credentials): in this process only
    _reopen: StoreTarget | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the store's private configuration (credentials stay in this process)."""
        state = dict(self.__dict__)
        state["_reopen"] = None
        return state

    @property
    def metrics(self) -> pd.Series:
        """The metrics as a pandas Series (see :mod:`btlab.backtest.metrics` for definitions)."""
        return self.summary.as_series().rename(self.run_id)

    def open_store(self, store: Store | str | None = None) -> Store:
        """Open the store the run was recorded in, read-only (the caller closes it).

        ``store``: an address to open instead. Default: the run's store reopened with its private configuration
        (so a password-protected QuestDB works), else :attr:`store_address`, else the default store
        (``BTLAB_STORE`` or the default DuckDB file). Its HTML report: ``btlab.write_report(result, path)``.

        Raises:
            StoreUnavailableError, StoreNotFoundError: the store cannot be reached or is not there.
        """
        return open_store(store or self._reopen or self.store_address, read_only=True)


def new_run_id(now: datetime | None = None) -> str:
    """A sortable unique run id: ``YYYYmmddTHHMMSS-<8 hex>`` (UTC)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def run_backtest(
    strategy: str | type = "sma_cross",
    *,
    symbol: str | None = None,
    symbols: str | Sequence[str] | None = None,
    exchange: str = "binance",
    timeframe: str | None = None,
    timeframes: str | Sequence[str] | None = None,
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
    session: str | None = None,
    allow_gaps: bool = False,
    store: Store | str | None = None,
    record: bool = True,
    run_id: str | None = None,
    sweep_id: str | None = None,
    analyzers: Mapping[str, type] | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    flush_bars: int = 10_000,
    flush_seconds: float = 2.0,
    source: Any = None,
    bars: Mapping[str, pd.DataFrame] | None = None,
) -> BacktestResult:
    """Run a Backtrader strategy on stored bars, record it, and return its result.

    Feeds (``strategy.datas``), aligned by time: first the base feeds, one per symbol in the order of
    ``symbols``, named by their symbol (``BTC/USDT``); then, for each resampled timeframe in order, one feed per
    symbol in the same order, named ``SYMBOL@TIMEFRAME`` (``BTC/USDT@1h``); all reachable with
    ``self.getdatabyname(name)``. Resampled feeds are built by Backtrader's resampler (``cerebro.resampledata``)
    from the base bars; a strategy sees a resampled bar in the step of the base bar that closes its window, never
    earlier, and its values equal :func:`btlab.marketdata.bars.resample_bars` (the exchange's klines). Inside
    Backtrader, datetimes are bar CLOSE times; what is stored and returned uses bar OPEN times (see
    :mod:`btlab.backtest.feed` and :mod:`btlab.backtest.recorder`).

    Args:
        strategy: bundled name (``sma_cross``, ``buy_hold``), ``package.module:Class``, ``file.py:Class`` or a
            ``bt.Strategy`` subclass.
        symbol, symbols: the instrument (ccxt unified symbol), or several (a list or a comma-separated string);
            default ``BTC/USDT``. Give one of the two.
        exchange: ccxt id of the stored bars.
        timeframe, timeframes: the stored base timeframe (default ``1h``), or a list whose first item is the base
            timeframe and the others timeframes to build from it (each a multiple of the base that divides a day,
            or ``1d``, or ``1w``: ISO weeks from Monday 00:00 UTC, seen when a base bar closes the week or else at
            the next week's first base bar, see :class:`btlab.backtest.feed.ClosedWindowResampler`). Give one of
            the two (or the same base in both).
        start, end: inclusive UTC bounds: ``YYYY-MM-DD`` dates or ISO 8601 times (strictly, see
            :mod:`btlab.model.timebounds`; a date ``end`` includes that whole day). None = all.
        params: strategy parameters; strings are converted to each parameter's type (CLI values); the strategy's
            ``validate_params`` classmethod, if any, checks them.
        cash: starting cash. commission: fraction of traded value per fill (0.001 = 0.1 %), below 1.
        size_pct: percent of cash per order (default 95 %), or ``stake``: fixed units per order (then
            ``size_pct`` is ignored).
        slippage_pct, slippage_fixed: Backtrader slippage, as a fraction of price (below 0.5) or in price units
            (below the median close).
        calendar: the venue's trading calendar; default from ``exchange`` (a ccxt id -> ``24/7``, an equity venue
            such as ``XNYS``/``nyse``/``nasdaq`` -> its exchange calendar; see :func:`btlab.model.venue.resolve_venue`).
            Give it for an exchange btlab does not know: ``24/7`` (or ``crypto``), ``equity`` (XNYS) or an exchange
            calendar code. 24/7 venues annualize with 365 and return per UTC day, exchange venues with 252 and
            return per session.
        session: for exchange-session venues, ``regular`` (the default: e.g. 09:30-16:00 New York, early closes
            from the calendar) or ``extended`` (04:00-20:00 New York for US venues): bars outside it are dropped
            before the run (:func:`btlab.model.sessions.filter_session`; daily bars are kept). Must be None for
            24/7 venues.
        allow_gaps: run even when bars are missing beyond the limits of :mod:`btlab.backtest.checks` (one gap
            longer than 7 days, or more than 5 % of the range, in the venue's session time); the gaps are still
            reported as warnings.
        store: a Store, an address, or None for ``BTLAB_STORE``/the default DuckDB file.
        record: write the run (row, equity, trades, orders) to the store while it runs.
        run_id, sweep_id: ids to record; a new run id by default.
        analyzers: extra Backtrader analyzers to attach, ``{name: AnalyzerClass}``; results in ``.analyzers``.
        progress: callable ``(bars_done, bars_total)`` for progress display (bars = base bar times).
        on_warning: callable receiving each warning found before the run (gaps) when it is found; all warnings
            are also in ``result.warnings``.
        flush_bars, flush_seconds: recorder batch size and maximum delay (wall time, checked every bar).
        source: where the bars come from: None = the store (as above); a
            :class:`btlab.backtest.kafka_feed.KafkaSource` = a bar topic written by ``btlab replay``, played through
            Backtrader live feeds (same trades and metrics as the stored bars). With a source: bars outside
            ``start``/``end`` are skipped, the run row's data range, bar count and hash are those of the bars
            played (written when the run ends), and gap, warm-up and fixed-slippage checks are not made before the
            run; sessions are refused (InvalidArgumentError) in this version. Resampled timeframes work as above.
        bars: bars already loaded, ``{symbol: frame}`` for every symbol of the run in order, as
            :func:`load_backtest_bars` returns them (inside the range and the session, gap-checked): played as they
            are, without reading the store (which is not even opened when ``record`` is False; a parameter sweep's
            workers run this way). The run row's data range, bar count and hash are those of these bars. Not with
            ``source``.

    Signals: in the main thread, SIGINT (Ctrl-C) and SIGTERM stop the run after the current bar; what ran is
    flushed, the run is stored as ``interrupted`` (``error`` names the signal and the bars done) and
    :class:`~btlab.errors.RunInterruptedError` is raised (exit code 130/143); a second signal stops at once. The
    previous handlers are restored afterwards.

    Returns: :class:`BacktestResult`.

    Raises:
        UnknownStrategyError, StrategyParameterError: bad strategy or parameters (nothing recorded).
        InvalidArgumentError: bad settings (NaN/infinite numbers, commission >= 1, absurd slippage, symbols or
            timeframes given twice, a timeframe that cannot be resampled), a bound that is not a date/time or an
            ambiguous one (``01/02/2020``), ``start`` after ``end``, unknown exchange without ``calendar``,
            unknown calendar or session, a session for a 24/7 venue; nothing recorded.
        NoDataError: no bars in the store for the request (or none in the session); the message lists what is
            stored (nothing recorded).
        DataGapError: gaps over the limit and not ``allow_gaps`` (nothing recorded).
        WarmupError: the range holds fewer bars than the strategy's warm-up (nothing recorded).
        RunInterruptedError: stopped by SIGINT/SIGTERM (stored as ``interrupted``).
        StoreUnavailableError: the store cannot be reached.
        Exception: an error inside the strategy is re-raised after the run is recorded as ``failed``.
    """
    plan = _plan(strategy, symbol=symbol, symbols=symbols, exchange=exchange, timeframe=timeframe,
                 timeframes=timeframes, start=start, end=end, params=params, cash=cash, commission=commission,
                 size_pct=size_pct, stake=stake, slippage_pct=slippage_pct, slippage_fixed=slippage_fixed,
                 calendar=calendar, session=session)
    if source is not None and plan.config.session:
        raise InvalidArgumentError("sessions are not supported with a Kafka source yet")
    if source is not None and bars is not None:
        raise InvalidArgumentError("give bars or a source, not both")
    given = _given_bars(plan, bars) if bars is not None else None
    owns_store = not isinstance(store, Store) and not (given is not None and not record)
    the_store = open_store(store) if owns_store else store  # type: ignore[arg-type]
    try:
        if given is not None:
            feeds, bars, warnings = given
            cerebro, feed_bars = _build_cerebro(feeds, bars, plan)
        elif source is None:
            feeds, bars, warnings = _load(plan, the_store, allow_gaps=allow_gaps, on_warning=on_warning)
            cerebro, feed_bars = _build_cerebro(feeds, bars, plan)
        else:
            cerebro, feeds = _source_cerebro(plan, source)
            bars, warnings, feed_bars = {}, [], None
        for name, analyzer in (analyzers or {}).items():
            cerebro.addanalyzer(analyzer, _name=name)
        rid = run_id or new_run_id()
        control = RunControl()
        run_row = _run_row(plan, bars, rid, sweep_id)
        _add_recorder(cerebro, plan, run_row, store=the_store if record else None,
                      played=feeds if source is not None else None, progress=progress, bars_total=_steps(bars),
                      flush_bars=flush_bars, flush_seconds=flush_seconds, feed_bars=feed_bars, warnings=warnings,
                      control=control)
        strat = _run(cerebro, control, record=record, run_id=rid)
        if source is not None:
            bars = _played_bars(feeds, strat)
        return _result(plan, strat, bars, rid, analyzers, the_store if record else None)
    finally:
        if source is not None:
            source.close()
        if owns_store:
            the_store.close()


def load_backtest_bars(strategy: str | type = "sma_cross", *, symbol: str | None = None,
                       symbols: str | Sequence[str] | None = None, exchange: str = "binance",
                       timeframe: str | None = None, start: Any = None, end: Any = None,
                       params: Mapping[str, Any] | None = None, cash: float = 10_000.0, commission: float = 0.001,
                       size_pct: float | None = 95.0, calendar: Calendar | str | None = None,
                       session: str | None = None, allow_gaps: bool = False, store: Store | str | None = None,
                       on_warning: Callable[[str], None] | None = None,
                       ) -> tuple[BacktestConfig, dict[str, pd.DataFrame], list[str]]:
    """Check a request and read its bars as :func:`run_backtest` would, without running it: for callers that run
    the same bars many times (``run_backtest(..., bars=...)``, a parameter sweep).

    Arguments as :func:`run_backtest` (one base timeframe; no resampling).

    Returns: ``(config, {symbol: bars}, gap warnings)``: the run's :class:`BacktestConfig` (``params`` resolved),
    each symbol's bars (``btlab.model.bar`` layout, open times UTC) inside ``start``/``end`` and the session, in
    symbol order.

    Raises: as :func:`run_backtest` before a run starts (UnknownStrategyError, StrategyParameterError,
    InvalidArgumentError, NoDataError, DataGapError, StoreUnavailableError).
    """
    plan = _plan(strategy, symbol=symbol, symbols=symbols, exchange=exchange, timeframe=timeframe, timeframes=None,
                 start=start, end=end, params=params, cash=cash, commission=commission, size_pct=size_pct,
                 stake=None, slippage_pct=0.0, slippage_fixed=0.0, calendar=calendar, session=session)
    owns_store = not isinstance(store, Store)
    the_store = open_store(store) if owns_store else store  # type: ignore[arg-type]
    try:
        _, bars, warnings = _load(plan, the_store, allow_gaps=allow_gaps, on_warning=on_warning)
    finally:
        if owns_store:
            the_store.close()
    return plan.config, bars, warnings


def _given_bars(plan: _Plan, bars: Mapping[str, pd.DataFrame]) -> tuple[list[StoreData], dict[str, pd.DataFrame],
                                                                        list[str]]:
    """Step 2 with bars already loaded (``run_backtest(bars=...)``): in-memory feeds over them, in symbol order.

    Raises:
        InvalidArgumentError: the symbols differ from the run's. NoDataError: a symbol without bars.
    """
    if list(bars) != plan.names:
        raise InvalidArgumentError(f"bars are given for {', '.join(map(str, bars)) or 'no symbol'}; the run's "
                                   f"symbols are {', '.join(plan.names)} (same order)")
    frames = dict(bars)
    for name, frame in frames.items():
        if len(frame) == 0:
            raise NoDataError(f"no bars given for {plan.config.exchange}:{name}")
    check_slippage_fixed(plan.config.slippage_fixed, frames)
    # store feeds over the given frames (never reading the store): the strategy sees the same feed as from the store,
    # its exchange included (orb's calendar=auto reads it)
    c = plan.config
    feeds = [StoreData(store=None, exchange=c.exchange, symbol=name, bars_timeframe=plan.base_tf.value, start=plan.lo,
                       end=plan.hi, name=name, bars=frame) for name, frame in frames.items()]
    return feeds, frames, []


def check_backtest(strategy: str | type, *, symbol: str | None = None, symbols: str | Sequence[str] | None = None,
                   exchange: str = "binance", timeframe: str | None = None,
                   timeframes: str | Sequence[str] | None = None, start: Any = None, end: Any = None,
                   params: Mapping[str, Any] | None = None, cash: float = 10_000.0, commission: float = 0.001,
                   size_pct: float | None = 95.0, stake: float | None = None, slippage_pct: float = 0.0,
                   slippage_fixed: float = 0.0, calendar: Calendar | str | None = None,
                   session: str | None = None) -> BacktestConfig:
    """Check a backtest request without opening a store or reading a bar (what :func:`run_backtest` checks first).

    Takes :func:`run_backtest`'s request arguments (same meaning and defaults). Lets a caller (the CLI) refuse a
    bad strategy, parameter, setting, date or venue before it opens or creates anything.

    Returns: the run's :class:`BacktestConfig` (bounds as ISO 8601 UTC strings).

    Raises: UnknownStrategyError, StrategyParameterError, InvalidArgumentError as :func:`run_backtest`.
    """
    return _plan(strategy, symbol=symbol, symbols=symbols, exchange=exchange, timeframe=timeframe,
                 timeframes=timeframes, start=start, end=end, params=params, cash=cash, commission=commission,
                 size_pct=size_pct, stake=stake, slippage_pct=slippage_pct, slippage_fixed=slippage_fixed,
                 calendar=calendar, session=session).config


@dataclass(frozen=True)
class _Plan:
    """A validated request: what :func:`run_backtest` runs (nothing opened or read yet)."""

    config: BacktestConfig
    cls: type
    names: list[str]
    base_tf: Timeframe
    resampled: list[Timeframe]
    venue: Any
    lo: Any
    hi: Any


def _plan(strategy: str | type, *, symbol: str | None, symbols: str | Sequence[str] | None, exchange: str,
          timeframe: str | None, timeframes: str | Sequence[str] | None, start: Any, end: Any,
          params: Mapping[str, Any] | None, cash: float, commission: float, size_pct: float | None,
          stake: float | None, slippage_pct: float, slippage_fixed: float, calendar: Calendar | str | None,
          session: str | None) -> _Plan:
    """Step 1 of :func:`run_backtest`: check every argument (see its Raises) and build the run's config."""
    ref, cls = resolve_strategy(strategy)
    resolved = coerce_params(cls, params)
    names = _symbol_list(symbol, symbols)
    tfs = _timeframe_list(timeframe, timeframes)
    base_tf, resampled = tfs[0], [check_resample(tfs[0], t) for t in tfs[1:]]
    venue = resolve_venue(exchange, calendar)
    cal, session = venue.kind, check_session(session, venue)
    check_settings(cash=cash, commission=commission, size_pct=size_pct, stake=stake, slippage_pct=slippage_pct,
                   slippage_fixed=slippage_fixed)
    lo, hi = parse_range(start, end)
    config = BacktestConfig(
        strategy=ref, params=resolved, exchange=exchange, symbol=",".join(names), timeframe=base_tf.value,
        start=None if lo is None else lo.isoformat(), end=None if hi is None else hi.isoformat(),
        cash=float(cash), commission=float(commission), size_pct=None if stake is not None else size_pct,
        stake=stake, slippage_pct=float(slippage_pct), slippage_fixed=float(slippage_fixed), calendar=cal.value,
        venue_calendar=venue.calendar, session=session, resample=tuple(t.value for t in resampled),
    )
    return _Plan(config=config, cls=cls, names=names, base_tf=base_tf, resampled=resampled, venue=venue, lo=lo,
                 hi=hi)


def _load(plan: _Plan, store: Store, *, allow_gaps: bool, on_warning: Callable[[str], None] | None
          ) -> tuple[list[StoreData], dict[str, pd.DataFrame], list[str]]:
    """Step 2: the store feeds and their bars (reduced to the session), checked for slippage and gaps.

    Returns: ``(feeds, {symbol: bars}, gap warnings)``; each warning is also passed to ``on_warning``.
    """
    c = plan.config
    feeds = [StoreData(store=store, exchange=c.exchange, symbol=s, bars_timeframe=plan.base_tf.value, start=plan.lo,
                       end=plan.hi, name=s) for s in plan.names]
    bars = {s: _session_bars(feed, plan.venue, c.session, plan.base_tf, c.exchange)
            for s, feed in zip(plan.names, feeds)}
    check_slippage_fixed(c.slippage_fixed, bars)
    warnings = check_gaps(
        # exchange venues: gaps count in regular-session time (thin extended hours have minutes without a trade)
        [gap_report(b, plan.base_tf, f"{c.exchange}:{s} {plan.base_tf}", plan.venue.calendar)
         for s, b in bars.items()],
        allow_gaps=allow_gaps,
    )
    for line in warnings:
        if on_warning is not None:
            on_warning(line)
    return feeds, bars, warnings


class _PlayedBars(bt.Analyzer):
    """For a run from a live source: fills the run row's data fields (range, bar count, hash) from the bars the
    feeds played, when the run stops and before the recorder (added after it) writes the finished row."""

    params: Any = (("run", None), ("feeds", ()))

    def stop(self) -> None:
        played = _played_bars(self.p.feeds, self.strategy)
        self.p.run.update(_data_fields({s: b for s, b in played.items() if len(b)} or played))


def _played_bars(feeds: list[Any], strategy: Any) -> dict[str, pd.DataFrame]:
    """``{symbol: bars}`` the live ``feeds`` played to ``strategy`` (bar OPEN times): those closed by its last step.
    A stop request (``cerebro.runstop``) can leave one bar loaded by a feed but never played; it is not counted."""
    from btlab.backtest.recorder import num2ns

    last_close = int(num2ns([strategy.datetime[0]])[0]) if len(strategy) else None
    out = {}
    for f in feeds:
        bars = f.load_bars()
        if last_close is not None and len(bars):
            close = pd.DatetimeIndex(bars["ts"]).as_unit("ns").asi8 + f.btlab_timeframe.nanos
            bars = bars[close <= last_close].reset_index(drop=True)
        elif last_close is None:
            bars = bars.iloc[:0]
        out[f.btlab_symbol] = bars
    return out


def _data_fields(bars: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The run row's ``data_from``, ``data_to``, ``bars`` and ``data_hash`` of the bars played (None if none)."""
    if not bars or not any(len(b) for b in bars.values()):
        return {"data_from": None, "data_to": None, "bars": 0, "data_hash": None}
    filled = [b for b in bars.values() if len(b)]
    return {
        "data_from": min(b["ts"].iloc[0] for b in filled), "data_to": max(b["ts"].iloc[-1] for b in filled),
        "bars": sum(len(b) for b in bars.values()), "data_hash": hash_bars(bars),
    }


def _steps(bars: dict[str, pd.DataFrame]) -> int:
    """Base bar times of the run (the progress total): the union of every symbol's bar times."""
    if not bars:
        return 0
    if len(bars) == 1:
        return len(next(iter(bars.values())))
    return len(pd.DatetimeIndex(pd.concat([b["ts"] for b in bars.values()])).unique())


def _run_row(plan: _Plan, bars: dict[str, pd.DataFrame], run_id: str, sweep_id: str | None) -> dict[str, Any]:
    """The ``bt_runs`` row the recorder writes when the run starts (data range, hashes, versions)."""
    c = plan.config
    return {
        "ts": datetime.now(timezone.utc), "run_id": run_id, "sweep_id": sweep_id, "strategy": c.strategy,
        "params": c.params, "exchange": c.exchange, "symbols": c.symbol, "timeframe": c.timeframe,
        **_data_fields(bars),
        "calendar": c.calendar, "cash": c.cash, "commission": c.commission,
        "config": asdict(c), "config_hash": c.hash(),
        "btlab_version": btlab.__version__, "backtrader_version": bt.__version__,
    }


def _result(plan: _Plan, strat: Any, bars: dict[str, pd.DataFrame], run_id: str,
            analyzers: Mapping[str, type] | None, recorded_in: Store | None) -> BacktestResult:
    """Step 3's outcome: the recorder's analysis and the extra analyzers' results as a :class:`BacktestResult`."""
    recorder = strat.analyzers.btlab_recorder
    analysis = recorder.get_analysis()
    extra = {name: getattr(strat.analyzers, name).get_analysis() for name in (analyzers or {})}
    return BacktestResult(
        run_id=run_id, config=plan.config, summary=analysis["metrics"], equity=analysis["equity"],
        trades=analysis["trades"], orders=analysis["orders"], bars=bars[plan.names[0]], strategy=strat,
        analyzers=extra, store_address=recorded_in.address if recorded_in is not None else None,
        warnings=list(recorder.warnings), order_counts=dict(recorder.order_counts), bars_by_symbol=bars,
        states=analysis["states"],
        _reopen=reopen_target(recorded_in) if recorded_in is not None else None,
    )


def _session_bars(feed: StoreData, venue: Any, session: str | None, tf: Timeframe, exchange: str) -> pd.DataFrame:
    """The feed's bars, reduced to the venue's ``session`` for exchange venues (the feed then plays those).

    Raises:
        NoDataError: no bars stored for the request, or none of them inside the session.
    """
    bars = feed.load_bars()
    if session is None:  # 24/7 venue: every bar
        return bars
    bars = feed.p.bars = filter_session(bars, venue, session, tf)
    if bars.empty:
        raise NoDataError(f"no {tf.value} bars of {exchange}:{feed.p.symbol} in that range fall in a {session} "
                          f"session of calendar {venue.calendar}")
    return bars


def _symbol_list(symbol: str | None, symbols: str | Sequence[str] | None) -> list[str]:
    listed = _as_list(symbols)
    if symbols is not None and not listed:
        raise InvalidArgumentError("symbols is empty: give at least one symbol, e.g. BTC/USDT")
    if listed and symbol is not None and listed != [symbol]:
        raise InvalidArgumentError(f"give symbol ({symbol}) or symbols ({','.join(listed)}), not both")
    names = listed or [symbol or "BTC/USDT"]
    dupes = sorted({s for s in names if names.count(s) > 1})
    if dupes:
        raise InvalidArgumentError(f"symbol(s) listed twice: {', '.join(dupes)}")
    return names


def _timeframe_list(timeframe: str | None, timeframes: str | Sequence[str] | None) -> list[Timeframe]:
    listed = [Timeframe.parse(t) for t in _as_list(timeframes)]
    if timeframes is not None and not listed:
        raise InvalidArgumentError("timeframes is empty: give the stored base timeframe first, e.g. ['1m', '1h']")
    if timeframe is not None:
        base = Timeframe.parse(timeframe)
        if listed and listed[0] != base:
            raise InvalidArgumentError(
                f"timeframe {base} and timeframes[0] {listed[0]} differ: timeframes[0] is the stored base timeframe"
            )
        listed = listed or [base]
    tfs = listed or [Timeframe.parse("1h")]
    dupes = sorted({t.value for t in tfs if tfs.count(t) > 1})
    if dupes:
        raise InvalidArgumentError(f"timeframe(s) listed twice: {', '.join(dupes)}")
    return tfs


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def _build_cerebro(feeds: list[StoreData], bars: dict[str, pd.DataFrame], plan: _Plan) -> tuple[Any, list[int]]:
    """Step 2b: a Cerebro with the feeds (base, then resampled; see :func:`run_backtest`), the strategy, broker and
    sizer of ``plan``.

    Returns: ``(cerebro, bars each data will deliver in datas order)``.
    """
    c, base_tf = plan.config, plan.base_tf
    cerebro = bt.Cerebro(stdstats=False)
    feed_bars = []
    for feed, frame in zip(feeds, bars.values()):
        feed.btlab_calendar = plan.venue.calendar  # the run's calendar (--calendar wins over the exchange's)
        cerebro.adddata(feed)
        feed_bars.append(len(frame))
    for tf in plan.resampled:
        unit, compression = backtrader_timeframe(tf)
        for symbol, frame in bars.items():
            name = f"{symbol}@{tf}"
            traded = traded_bars(frame)
            source = BarFrameData(bars=traded, bars_timeframe=base_tf.value, name=name)
            cerebro.resampledata(source, name=name, timeframe=unit, compression=compression)
            source.btlab_timeframe = tf
            feed_bars.append(complete_windows(traded["ts"], base_tf, tf))
    cerebro.addstrategy(plan.cls, **c.params)
    cerebro.broker.setcash(c.cash)
    cerebro.broker.setcommission(commission=c.commission)
    if c.slippage_pct:
        cerebro.broker.set_slippage_perc(c.slippage_pct)
    elif c.slippage_fixed:
        cerebro.broker.set_slippage_fixed(c.slippage_fixed)
    if c.stake is not None:
        cerebro.addsizer(bt.sizers.FixedSize, stake=c.stake)
    elif c.size_pct is not None:
        cerebro.addsizer(bt.sizers.PercentSizer, percents=c.size_pct)
    return cerebro, feed_bars


def _source_cerebro(plan: _Plan, source: Any) -> tuple[Any, list[Any]]:
    """Step 2 for a live source (a :class:`~btlab.backtest.kafka_feed.KafkaSource`): a Cerebro with the source's
    base feeds, then its resampled feeds (per timeframe, per symbol, from the traded base bars, as
    :func:`_build_cerebro`), the strategy, broker and sizer of ``plan``.

    Returns: ``(cerebro, base feeds in symbol order)``.
    """
    feeds = source.feeds(plan.config.exchange, plan.names, plan.base_tf, plan.lo, plan.hi)
    cerebro, _ = _build_cerebro(feeds, {s: pd.DataFrame() for s in plan.names}, replace(plan, resampled=[]))
    for tf in plan.resampled:
        unit, compression = backtrader_timeframe(tf)
        for s in plan.names:
            name = f"{s}@{tf}"
            live = source.resample_feed(s, plan.base_tf, name, plan.lo, plan.hi)
            cerebro.resampledata(live, name=name, timeframe=unit, compression=compression)
            live.btlab_timeframe = tf
    return cerebro, feeds


def _add_recorder(cerebro: Any, plan: _Plan, run_row: dict[str, Any], *, store: Store | None,
                  played: list[Any] | None, progress: Callable[[int, int], None] | None, bars_total: int,
                  flush_bars: int, flush_seconds: float, feed_bars: list[int] | None, warnings: list[str],
                  control: RunControl | None, end_status: str = "finished") -> None:
    """Step 2c: the recorder (last analyzer) writing ``run_row`` and the run into ``store`` (None: memory only).

    ``played``: the live feeds of a run from a source; their bars fill the row's data fields (range, count, hash)
    when the run stops, before the recorder writes its last row. ``end_status``: the status of a run that ends
    normally (``finished``; ``stopped`` for paper runs). Other arguments: see :class:`Recorder`.
    """
    if played is not None:  # the data fields are known when the data has been played: before the recorder ends
        cerebro.addanalyzer(_PlayedBars, _name="btlab_played", run=run_row, feeds=played)
    cerebro.addanalyzer(
        Recorder, _name="btlab_recorder", store=store, run=run_row, calendar=plan.venue.calendar, progress=progress,
        bars_total=bars_total, flush_bars=flush_bars, flush_seconds=flush_seconds, n_base=len(plan.names),
        feed_bars=feed_bars, warnings=warnings, control=control, end_status=end_status,
    )


def _run(cerebro: Any, control: RunControl, *, record: bool, run_id: str) -> Any:
    """``cerebro.run()`` under the signal handlers; returns the strategy.

    Raises:
        RunInterruptedError: a signal stopped the run (the recorder stored it as ``interrupted``).
        Exception: anything the run raised, after the recorder stored the run as ``failed``.
    """
    try:
        with _stop_on_signals(cerebro, control):
            strategies = cerebro.run()
    except BaseException as exc:
        recorder = _find_recorder(cerebro)
        if recorder is not None and record:
            recorder.fail(exc)
        if control.signum and recorder is not None:
            raise _interrupted(recorder, control, record=record, run_id=run_id) from None
        raise
    strat = strategies[0]
    recorder = strat.analyzers.btlab_recorder
    if recorder.status == "interrupted":
        raise _interrupted(recorder, control, record=record, run_id=run_id)
    return strat


def _interrupted(recorder: Recorder, control: RunControl, *, record: bool, run_id: str) -> RunInterruptedError:
    where = (f"stored as interrupted (see: btlab runs show {run_id})" if record and recorder.p.store is not None
             else "nothing stored (record=False)")
    return RunInterruptedError(
        f"run {run_id} interrupted by {recorder.interruption_message()}; {where}",
        run_id=run_id, signal_name=control.signal_name, signal_number=int(control.signum or 0),
    )


def _stop_on_signals(cerebro: Any, control: RunControl) -> Any:
    """In the main thread: SIGINT/SIGTERM ask Backtrader to stop after the current bar (``cerebro.runstop``); a
    second signal raises KeyboardInterrupt at once (see :func:`btlab.backtest.signals.stop_on_signals`)."""
    return stop_on_signals(control, cerebro.runstop)


def _find_recorder(cerebro: Any) -> Recorder | None:
    for strat in getattr(cerebro, "runningstrats", []) or []:
        for analyzer in strat.analyzers:
            if isinstance(analyzer, Recorder):
                return analyzer
    return None
