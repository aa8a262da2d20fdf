"""The recorder: a Backtrader analyzer that writes a run to the store while it runs.

It writes the ``bt_runs`` row (status ``running`` at start, ``finished`` with metrics at the end -- ``stopped`` for a
paper run, which has no end of its own and ends when it is stopped (:mod:`btlab.backtest.paper`) --, ``interrupted``
when the runner's signal handler stopped the run, ``failed`` with the error via :meth:`Recorder.fail`), the
equity curve every bar, every closed trade and every order fill or final order state -- in batches (every
``flush_bars`` bars or ``flush_seconds`` of wall time, whichever comes first, checked at every bar), so a dashboard
can watch a long run progress. Every write of the row sets ``heartbeat`` (UTC wall time): at the start, at flushes
(at most once per ``flush_seconds``: a run row costs more to write than a batch of equity) and at the end, so a
``running`` run whose heartbeat is older than a few ``flush_seconds`` was killed without a chance to say so. The
per-bar cost is a few list appends and a clock read.

Time convention of what is stored. The feeds hand Backtrader bar CLOSE times (see :mod:`btlab.backtest.feed`);
the recorder converts them back so that every stored time is a bar OPEN time, by subtracting the bar length of the
feed concerned (a resampled feed has its own length):

* equity row ``ts`` = open time of the base bar after which the value was measured (the latest base bar of any
  instrument at that step; a run over several instruments has one row per distinct base bar time);
* order ``ts`` = open time of the bar of the order's feed the order filled in (for market orders: the moment of
  the fill, at that bar's open), or, for an order that ended without a fill, of the bar in which it ended;
* trade ``ts``/``entry_ts`` = open time of the bar of the trade's feed in which it was closed/opened;
* state change ``ts`` (``bt_states``) = CLOSE time of the bar that decided it, as the strategy recorded it (see
  :mod:`btlab.backtest.states`: a state holds from then on), not converted.

State changes: a strategy using :class:`btlab.backtest.states.StateRecording` (or any strategy with a
``state_changes`` list of :class:`~btlab.backtest.states.StateChange`) has its new changes written with each batch.

Backtrader float dates are rounded to the millisecond. Equity: ``value`` is the broker value after the bar,
``cash``, ``drawdown = value / running peak - 1`` (<= 0; the starting cash is the first peak) and
``position_value = value - cash`` (signed market value of open positions, all instruments).

Trade rows: ``size`` is the largest absolute size held, signed by direction; ``exit_price`` is the average exit
price derived from gross PnL, ``entry_price + pnl / (size * mult)`` -- exact unless a position was increased again
after being partly reduced. ``commission`` is entry plus exit commission; ``pnl_net = pnl - commission``.
Trades and orders carry the instrument's ``symbol`` (for a resampled feed too: ``BTC/USDT``, not ``BTC/USDT@1h``).

Orders that end ``Rejected``, ``Margin`` (not enough cash for size and commission) or ``Canceled``/``Expired``
are counted into ``bt_runs.orders_rejected``/``orders_margin``/``orders_canceled``, each non-zero count with a
human-readable line in ``bt_runs.warnings`` (lines separated by newlines, after any warning given before the run).
Before the first bar, :meth:`Recorder.start` refuses a range shorter than the strategy's warm-up
(:class:`~btlab.errors.WarmupError`), before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.compat import bt
from btlab.backtest.metrics import Metrics, benchmark_equity, compute_metrics
from btlab.errors import WarmupError
from btlab.store.schema import RUN_METRIC_COLUMNS

_EPOCH_ORDINAL = 719163.0  # bt.date2num(1970-01-01)
_RUN_METRIC_NAMES = frozenset(c.name for c in RUN_METRIC_COLUMNS)
_RECORDED_STATES = frozenset(
    (bt.Order.Completed, bt.Order.Partial, bt.Order.Canceled, bt.Order.Expired, bt.Order.Margin, bt.Order.Rejected)
)
_MARGIN, _REJECTED, _CANCELED, _EXPIRED = bt.Order.Margin, bt.Order.Rejected, bt.Order.Canceled, bt.Order.Expired


def num2ns(nums: list[float] | np.ndarray) -> np.ndarray:
    """Backtrader float dates (days since 0001-01-01, +1) to UTC epoch ns, rounded to the millisecond."""
    arr = np.asarray(nums, dtype="float64")
    ms = np.rint((arr - _EPOCH_ORDINAL) * 86_400_000.0).astype("int64")
    return ms * 1_000_000


def _ts(nums: list[float] | np.ndarray, minus_ns: int | np.ndarray = 0) -> pd.DatetimeIndex:
    return pd.DatetimeIndex((num2ns(nums) - minus_ns).view("datetime64[ns]"), tz="UTC")


def _bar_ns(data: Any) -> int:
    """Bar length in ns of a btlab feed (0 for a feed that is not one: its times are kept as they are)."""
    tf = getattr(data, "btlab_timeframe", None)
    return int(tf.nanos) if tf is not None else 0


@dataclass
class RunControl:
    """Shared by the runner's signal handlers and the recorder: ``signum`` is set when a stop was requested."""

    signum: int | None = None

    @property
    def signal_name(self) -> str:
        import signal

        return signal.Signals(self.signum).name if self.signum else ""


class Recorder(bt.Analyzer):
    """Records one run into a store (see module docstring).

    Params:
        store: the :class:`~btlab.store.Store`, or None to keep everything in memory only.
        run: the ``bt_runs`` row to write (must hold ``run_id`` and ``ts``; ``cash`` is the starting value).
        calendar: ``crypto``/``24/7``, ``equity`` or an exchange calendar code such as ``XNYS`` (annualization and
            daily grouping of metrics: see :func:`btlab.backtest.metrics.compute_metrics`).
        flush_bars: write buffered rows at least every this many bars.
        flush_seconds: ... or when this much wall time passed since the last write (checked at every bar).
        progress: optional callable ``(bars_done, bars_total)``, called every 256 bars and at the end.
        bars_total: equity rows expected (distinct base bar times), for progress and the interruption message.
        n_base: how many of the strategy's first datas are base feeds (the others are resampled); default 1.
        feed_bars: bars each data of the strategy will deliver, in ``strategy.datas`` order, for the warm-up
            check (None: no check).
        warnings: warning lines found before the run (gaps), stored first in ``bt_runs.warnings``.
        control: the :class:`RunControl` the runner's signal handlers set; a stop request ends the run as
            ``interrupted``.
        end_status: the status written when the run ends normally, with its metrics: ``finished`` (default), or
            ``stopped`` (a paper run: it has no end of its own, so every normal end is a stop).

    After the run: :meth:`get_analysis` returns ``{"metrics": Metrics, "equity": DataFrame, "trades": DataFrame,
    "orders": DataFrame}``; :attr:`status` is ``finished`` (or ``end_status``)/``interrupted``/``failed``; :attr:`warnings` and
    :attr:`order_counts` what was stored with the run.

    Raises:
        WarmupError: (from :meth:`start`) a data feeds fewer bars than the strategy's minimum period on it.
    """

    params: Any = (
        ("store", None),
        ("run", None),
        ("calendar", "crypto"),
        ("flush_bars", 10_000),
        ("flush_seconds", 2.0),
        ("progress", None),
        ("bars_total", 0),
        ("n_base", 1),
        ("feed_bars", None),
        ("warnings", ()),
        ("control", None),
        ("end_status", "finished"),
    )

    def __init__(self) -> None:
        self._dt: list[float] = []
        self._value: list[float] = []
        self._cash: list[float] = []
        self._flushed = 0
        self._trades: list[dict[str, Any]] = []
        self._orders: list[dict[str, Any]] = []
        self._trades_flushed = 0
        self._orders_flushed = 0
        self._states_flushed = 0
        self._trade_size: dict[int, float] = {}
        self._last_flush = self._last_beat = time.monotonic()
        self._flush_seconds = float(self.p.flush_seconds)
        self._progress: Callable[[int, int], None] | None = self.p.progress
        self._flushed_peak = 0.0
        self._order_refs: set[int] = set()
        self.order_counts = {"orders_rejected": 0, "orders_margin": 0, "orders_canceled": 0}
        self._first_unfilled: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = list(self.p.warnings or ())
        self.metrics: Metrics | None = None
        self.run_id: str = self.p.run["run_id"] if self.p.run else "memory"
        self.status = "created"
        self._started = False
        self._finished = False

    # ---- Backtrader hooks ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._check_warmup()
        datas = self.strategy.datas
        self._bases = list(datas[: max(1, int(self.p.n_base or 1))])
        self._base0 = self._bases[0]
        self._single = len(self._bases) == 1
        self._base_ns = _bar_ns(self._base0)
        self._data_ns = {id(d): _bar_ns(d) for d in datas}
        self._store = self.p.store
        self._flush_bars = int(self.p.flush_bars)
        self._flush_seconds = float(self.p.flush_seconds)
        self._start_value = float(self.strategy.broker.startingcash)
        self._flushed_peak = self._start_value
        self.status = "running"
        if self._store is not None:
            self._store.write_run(self._row("running"))
        self._started = True
        self._last_flush = self._last_beat = time.monotonic()

    def _check_warmup(self) -> None:
        """Refuse a run whose strategy would never reach ``next()``: a data feeds fewer bars than its warm-up."""
        have = self.p.feed_bars
        if have is None:
            return
        strat = self.strategy
        name = (self.p.run or {}).get("strategy") or type(strat).__name__
        for data, need, bars in zip(strat.datas, strat._minperiods, have):
            if need > bars:
                tf = getattr(data, "btlab_timeframe", None)
                label = f"{getattr(data, 'btlab_symbol', '') or data._name} {tf}" if tf else str(data._name)
                raise WarmupError(
                    f"strategy {name} needs {need:,} {label} bars of warm-up before its first next(), "
                    f"but the range holds only {bars:,}: start earlier (--from) or use shorter indicator periods"
                )

    def next(self) -> None:
        if self._single:
            dt = self._base0.datetime[0]
        else:
            dt = max(d.datetime[0] for d in self._bases if len(d))
        broker = self.strategy.broker
        if self._dt and dt == self._dt[-1]:  # no base bar moved (only a resampled feed): the value after that bar
            if self._flushed == len(self._dt):
                self._flushed -= 1  # re-written with the value measured last
            self._value[-1] = broker.getvalue()
            self._cash[-1] = broker.getcash()
            return
        self._dt.append(dt)
        self._value.append(broker.getvalue())
        self._cash.append(broker.getcash())
        n = len(self._dt)
        if self._store is not None and (
            n - self._flushed >= self._flush_bars or time.monotonic() - self._last_flush >= self._flush_seconds
        ):
            self.flush()
        if n & 255 == 0 and self._progress is not None and self.p.bars_total:
            self._progress(n, int(self.p.bars_total))

    def notify_order(self, order: bt.Order) -> None:
        self._order_refs.add(order.ref)
        status = order.status
        if status not in _RECORDED_STATES:
            return
        filled = status in (bt.Order.Completed, bt.Order.Partial)
        dt = order.executed.dt if filled and order.executed.dt else order.data.datetime[0]
        row = {
            "dt": dt,
            "bar_ns": self._data_ns.get(id(order.data), 0),
            "order_ref": int(order.ref),
            "symbol": getattr(order.data, "btlab_symbol", None) or getattr(order.data, "_name", "") or "",
            "side": "buy" if order.isbuy() else "sell",
            "type": order.getordername(),
            "status": order.getstatusname(),
            "size": float(order.created.size),
            "price": _float(order.created.price),
            "executed_size": float(order.executed.size),
            "executed_price": _float(order.executed.price) if order.executed.size else None,
            "commission": float(order.executed.comm),
        }
        self._orders.append(row)
        if status in (_MARGIN, _REJECTED, _CANCELED, _EXPIRED):
            key = {_MARGIN: "orders_margin", _REJECTED: "orders_rejected"}.get(status, "orders_canceled")
            self.order_counts[key] += 1
            self._first_unfilled.setdefault(key, row)

    def notify_trade(self, trade: bt.Trade) -> None:
        ref = int(trade.ref)
        if trade.size:
            prev = self._trade_size.get(ref, 0.0)
            if abs(trade.size) > abs(prev):
                self._trade_size[ref] = float(trade.size)
        if not trade.isclosed:
            return
        size = self._trade_size.pop(ref, 0.0)
        mult = float(self.strategy.broker.getcommissioninfo(trade.data).p.mult or 1.0)
        exit_price = trade.price + trade.pnl / (size * mult) if size else None
        self._trades.append(
            {
                "dt": trade.dtclose,
                "entry_dt": trade.dtopen,
                "bar_ns": self._data_ns.get(id(trade.data), 0),
                "trade_ref": ref,
                "symbol": getattr(trade.data, "btlab_symbol", None) or getattr(trade.data, "_name", "") or "",
                "direction": "long" if trade.long else "short",
                "size": size,
                "entry_price": float(trade.price),
                "exit_price": exit_price,
                "pnl": float(trade.pnl),
                "pnl_net": float(trade.pnlcomm),
                "commission": float(trade.commission),
                "bars_held": int(trade.barlen),
            }
        )

    def stop(self) -> None:
        control = self.p.control
        self.warnings.extend(self._order_warnings())
        if control is not None and control.signum:
            self._end_interrupted()
            return
        if not self._dt and self.p.end_status != "finished":  # a paper run stopped before its first bar: no metrics
            self.status = str(self.p.end_status)
            if self._store is not None:
                self._store.write_run(self._row(self.status, finished_at=datetime.now(timezone.utc)))
            self._finished = True
            return
        # buy-and-hold benchmark of the run's instruments, from the feeds' bars
        benchmark_bars = run_instrument_bars(self.strategy.datas, (self.p.run or {}).get("symbols"))
        benchmark_bars = {s: b for s, b in benchmark_bars.items() if len(b)}  # a run stopped before its first bar
        benchmark = benchmark_equity(benchmark_bars, self._start_value) if benchmark_bars else None
        self.metrics = compute_metrics(
            self.equity_frame(), self.trades_frame(), start_value=self._start_value, calendar=self.p.calendar,
            benchmark=benchmark,
        )
        self.status = str(self.p.end_status)
        if self._store is not None:
            self.flush()
            self._store.write_run(
                self._row(
                    self.status,
                    finished_at=datetime.now(timezone.utc),
                    metrics=self.metrics.as_dict(),
                    **{k: v for k, v in self.metrics.as_dict().items() if k in _RUN_METRIC_NAMES},
                )
            )
        if self._progress is not None and self.p.bars_total:
            self._progress(len(self._dt), int(self.p.bars_total))
        self._finished = True

    def get_analysis(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "equity": self.equity_frame(),
            "trades": self.trades_frame(),
            "orders": self.orders_frame(),
            "states": self.states_frame(),
        }

    # ---- run row ----------------------------------------------------------------------------------------------
    def _row(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.p.run,
            "status": status,
            "heartbeat": extra.get("finished_at") or datetime.now(timezone.utc),
            "warnings": "\n".join(self.warnings) or None,
            **self.order_counts,
            **extra,
        }

    def _order_warnings(self) -> list[str]:
        """One line per non-zero count of orders that ended without a fill."""
        counts, first = self.order_counts, self._first_unfilled
        total = len(self._order_refs)
        out = []
        for key, what in (
            ("orders_margin", "ended Margin: not enough cash for the order's value plus commission (check --stake, "
                              "--size-pct, --commission and --cash)"),
            ("orders_rejected", "were Rejected by the broker"),
            ("orders_canceled", "were Canceled or Expired before filling"),
        ):
            n = counts[key]
            if not n:
                continue
            row = first[key]
            when = _ts([row["dt"]], row["bar_ns"])[0]
            price = f" at {row['price']:,.8g}" if row["price"] else ""
            out.append(
                f"{n:,} of {total:,} order(s) {what}; first: {row['side']} {abs(row['size']):,.8g} {row['symbol']}"
                f"{price} in the bar of {when:%Y-%m-%d %H:%M} UTC"
            )
        return out

    def interruption_message(self) -> str:
        """``SIGTERM: stopped after N of M bars (last bar ... UTC)`` (also stored in ``bt_runs.error``)."""
        control = self.p.control
        done, total = len(self._dt), int(self.p.bars_total or 0)
        what = "bars" if self._single else "bar times"
        last = f" (last bar {_ts(self._dt[-1:], self._base_ns)[0]:%Y-%m-%d %H:%M} UTC)" if self._dt else ""
        name = control.signal_name if control is not None else "signal"
        return f"{name}: stopped after {done:,} of {total:,} {what}{last}"

    def _end_interrupted(self) -> None:
        self.status = "interrupted"
        if self._store is None or not self._started:
            return
        try:
            self.flush()
        finally:
            self._store.write_run(
                self._row("interrupted", error=self.interruption_message(), finished_at=datetime.now(timezone.utc))
            )
            self._finished = True

    # ---- frames and writes --------------------------------------------------------------------------------------
    def equity_frame(self, start: int = 0) -> pd.DataFrame:
        """Equity rows from bar ``start`` on, indexed by UTC base bar open time."""
        end = len(self._dt)
        values = np.asarray(self._value[start:end], dtype="float64")
        cash = np.asarray(self._cash[start:end], dtype="float64")
        if start == self._flushed:  # batches continue from the peak of what was already written
            prior = self._flushed_peak
        else:
            prior = max([self._start_value, *self._value[:start]])
        peak = np.maximum.accumulate(np.concatenate(([prior], values)))[1:]
        drawdown = values / peak - 1.0
        return pd.DataFrame(
            {"value": values, "cash": cash, "drawdown": drawdown, "position_value": values - cash},
            index=_ts(self._dt[start:end], self._base_ns).rename("ts"),
        )

    def trades_frame(self, start: int = 0) -> pd.DataFrame:
        """Closed trades from the ``start``-th on (exit time ``ts``, entry time ``entry_ts``: bar open times, UTC)."""
        rows = self._trades[start:]
        cols = ["ts", "trade_ref", "symbol", "direction", "size", "entry_ts", "entry_price", "exit_price", "pnl",
                "pnl_net", "commission", "bars_held"]
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c.endswith("ts") else "float64")
                                 for c in cols})
        frame = pd.DataFrame(rows)
        bar_ns = frame.pop("bar_ns").to_numpy(dtype="int64")
        frame["ts"] = _ts(frame.pop("dt").to_numpy(), bar_ns)
        frame["entry_ts"] = _ts(frame.pop("entry_dt").to_numpy(), bar_ns)
        return frame[cols]

    def orders_frame(self, start: int = 0) -> pd.DataFrame:
        """Order fills and final order states from the ``start``-th on (``ts``: bar open time, UTC)."""
        rows = self._orders[start:]
        cols = ["ts", "order_ref", "symbol", "side", "type", "status", "size", "price", "executed_size",
                "executed_price", "commission"]
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "ts" else "float64") for c in cols})
        frame = pd.DataFrame(rows)
        frame["ts"] = _ts(frame.pop("dt").to_numpy(), frame.pop("bar_ns").to_numpy(dtype="int64"))
        return frame[cols]

    def states_frame(self, start: int = 0) -> pd.DataFrame:
        """State changes from the ``start``-th on: ``ts`` (close time of the deciding bar, UTC), ``machine,
        from_state, to_state``, in the order recorded."""
        rows = (getattr(self.strategy, "state_changes", None) or [])[start:]
        return pd.DataFrame({
            "ts": _ts([r.dt for r in rows]),
            "machine": pd.Series([r.machine for r in rows], dtype="object"),
            "from_state": pd.Series([r.from_state for r in rows], dtype="object"),
            "to_state": pd.Series([r.to_state for r in rows], dtype="object"),
        })

    def flush(self) -> None:
        """Write buffered equity points, trades, orders and state changes, and the run row's heartbeat (no-op
        without a store)."""
        store = self.p.store
        if store is None:
            return
        run_id = self.run_id
        n = len(self._dt)
        if n > self._flushed:
            equity = self.equity_frame(self._flushed).reset_index()
            equity["run_id"] = run_id
            store.write_equity(equity)
            self._flushed_peak = max(self._flushed_peak, float(equity["value"].max()))
            self._flushed = n
        if len(self._trades) > self._trades_flushed:
            trades = self.trades_frame(self._trades_flushed)
            trades["run_id"] = run_id
            store.write_trades(trades)
            self._trades_flushed = len(self._trades)
        if len(self._orders) > self._orders_flushed:
            orders = self.orders_frame(self._orders_flushed)
            orders["run_id"] = run_id
            store.write_orders(orders)
            self._orders_flushed = len(self._orders)
        n_states = len(getattr(self.strategy, "state_changes", None) or ())
        if n_states > self._states_flushed:
            states = self.states_frame(self._states_flushed)
            states["run_id"] = run_id
            store.write_states(states)
            self._states_flushed = n_states
        now = time.monotonic()
        if self.status == "running" and now - self._last_beat >= self._flush_seconds:
            store.write_run(self._row("running"))  # the heartbeat (a run row costs more than 10k equity rows)
            self._last_beat = now
        self._last_flush = now

    def fail(self, error: BaseException) -> None:
        """Mark the run failed (or ``interrupted`` when a stop was requested): write what was recorded so far and
        the error (type and message). No-op when the run row was never written (e.g. refused before the start)."""
        if self._finished or self.p.store is None or not self._started:
            return
        control = self.p.control
        if control is not None and control.signum:
            self._end_interrupted()
            return
        self.status = "failed"
        try:
            self.flush()
        finally:
            self.p.store.write_run(
                self._row("failed", error=f"{type(error).__name__}: {error}", finished_at=datetime.now(timezone.utc))
            )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# ---- benchmark input (issue 6) ----------------------------------------------------------------------------------
def run_instrument_bars(datas: list[Any], symbols: str | None) -> dict[str, pd.DataFrame]:
    """The bars of each of the run's instruments, ``{symbol: bars}``, for the buy-and-hold benchmark.

    ``symbols`` is the run row's comma-separated list; for each symbol the first feed named after it that holds
    btlab bars (``load_bars()``, bar open times) is used; without ``symbols`` (or no feed named after one) the
    first such feed. Feeds without btlab bars (other Backtrader feeds) are skipped: an empty dict means no
    benchmark.
    """
    feeds = [(getattr(d, "_name", "") or "", d) for d in datas if callable(getattr(d, "load_bars", None))]
    wanted = [s.strip() for s in (symbols or "").split(",") if s.strip()]
    out: dict[str, pd.DataFrame] = {}
    for symbol in wanted:
        feed = next((d for name, d in feeds if name == symbol), None)
        if feed is not None:
            out[symbol] = feed.load_bars()
    if not out and feeds:
        name, feed = feeds[0]
        out[wanted[0] if wanted else name] = feed.load_bars()
    return out
