"""The recorder: a Backtrader analyzer that writes a run to the store while it runs.

It writes the ``bt_runs`` row (status ``running`` at start, ``finished`` with metrics at the end, ``failed`` with the
error via :meth:`Recorder.fail`), the equity curve every bar, every closed trade and every order fill or final
order state -- in batches (every ``flush_bars`` bars or ``flush_seconds`` of wall time, whichever comes first), so a
dashboard can watch a long run progress. The per-bar cost is a few list appends.

Equity rows: ``ts`` is the bar's open time (UTC, rounded to the millisecond from Backtrader's float dates),
``value`` the broker value after the bar, ``cash``, ``drawdown = value / running peak - 1`` (<= 0; the starting cash
is the first peak) and ``position_value = value - cash`` (signed market value of open positions).

Trade rows: ``size`` is the largest absolute size held, signed by direction; ``exit_price`` is the average exit
price derived from gross PnL, ``entry_price + pnl / (size * mult)`` -- exact unless a position was increased again
after being partly reduced. ``commission`` is entry plus exit commission; ``pnl_net = pnl - commission``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.compat import bt
from btlab.backtest.metrics import Metrics, benchmark_equity, compute_metrics
from btlab.store.schema import RUN_METRIC_COLUMNS

_EPOCH_ORDINAL = 719163.0  # bt.date2num(1970-01-01)
_RUN_METRIC_NAMES = frozenset(c.name for c in RUN_METRIC_COLUMNS)
_RECORDED_STATES = frozenset(
    (bt.Order.Completed, bt.Order.Partial, bt.Order.Canceled, bt.Order.Expired, bt.Order.Margin, bt.Order.Rejected)
)


def num2ns(nums: list[float] | np.ndarray) -> np.ndarray:
    """Backtrader float dates (days since 0001-01-01, +1) to UTC epoch ns, rounded to the millisecond."""
    arr = np.asarray(nums, dtype="float64")
    ms = np.rint((arr - _EPOCH_ORDINAL) * 86_400_000.0).astype("int64")
    return ms * 1_000_000


def _ts(nums: list[float] | np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(num2ns(nums).view("datetime64[ns]"), tz="UTC")


class Recorder(bt.Analyzer):
    """Records one run into a store (see module docstring).

    Params:
        store: the :class:`~btlab.store.Store`, or None to keep everything in memory only.
        run: the ``bt_runs`` row to write (must hold ``run_id`` and ``ts``; ``cash`` is the starting value).
        calendar: ``crypto``/``24/7``, ``equity`` or an exchange calendar code such as ``XNYS`` (annualization and
            daily grouping of metrics: see :func:`btlab.backtest.metrics.compute_metrics`).
        flush_bars: write buffered rows at least every this many bars.
        flush_seconds: ... or when this much wall time passed since the last write.
        progress: optional callable ``(bars_done, bars_total)``, called every 256 bars and at the end.

    After the run: :meth:`get_analysis` returns ``{"metrics": Metrics, "equity": DataFrame, "trades": DataFrame,
    "orders": DataFrame}``.
    """

    params: Any = (
        ("store", None),
        ("run", None),
        ("calendar", "crypto"),
        ("flush_bars", 10_000),
        ("flush_seconds", 2.0),
        ("progress", None),
        ("bars_total", 0),
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
        self._trade_size: dict[int, float] = {}
        self._last_flush = time.monotonic()
        self._progress: Callable[[int, int], None] | None = self.p.progress
        self._flushed_peak = 0.0
        self.metrics: Metrics | None = None
        self.run_id: str = self.p.run["run_id"] if self.p.run else "memory"
        self._finished = False

    # ---- Backtrader hooks ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._start_value = float(self.strategy.broker.startingcash)
        self._flushed_peak = self._start_value
        if self.p.store is not None:
            self.p.store.write_run({**self.p.run, "status": "running"})

    def next(self) -> None:
        broker = self.strategy.broker
        value = broker.getvalue()
        self._dt.append(self.data.datetime[0])
        self._value.append(value)
        self._cash.append(broker.getcash())
        n = len(self._dt)
        if n & 255 == 0:
            if self.p.store is not None and (
                n - self._flushed >= self.p.flush_bars or time.monotonic() - self._last_flush >= self.p.flush_seconds
            ):
                self.flush()
            if self._progress is not None and self.p.bars_total:
                self._progress(n, int(self.p.bars_total))

    def notify_order(self, order: bt.Order) -> None:
        if order.status not in _RECORDED_STATES:
            return
        filled = order.status in (bt.Order.Completed, bt.Order.Partial)
        dt = order.executed.dt if filled and order.executed.dt else order.data.datetime[0]
        self._orders.append(
            {
                "dt": dt,
                "order_ref": int(order.ref),
                "symbol": getattr(order.data, "_name", "") or "",
                "side": "buy" if order.isbuy() else "sell",
                "type": order.getordername(),
                "status": order.getstatusname(),
                "size": float(order.created.size),
                "price": _float(order.created.price),
                "executed_size": float(order.executed.size),
                "executed_price": _float(order.executed.price) if order.executed.size else None,
                "commission": float(order.executed.comm),
            }
        )

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
                "trade_ref": ref,
                "symbol": getattr(trade.data, "_name", "") or "",
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
        # -- benchmark (issue 6): buy-and-hold of the run's instruments, from the feeds' bars --
        benchmark_bars = run_instrument_bars(self.strategy.datas, (self.p.run or {}).get("symbols"))
        benchmark = benchmark_equity(benchmark_bars, self._start_value) if benchmark_bars else None
        # -- end benchmark --
        self.metrics = compute_metrics(
            self.equity_frame(), self.trades_frame(), start_value=self._start_value, calendar=self.p.calendar,
            benchmark=benchmark,
        )
        if self.p.store is not None:
            self.flush()
            self.p.store.write_run(
                {
                    **self.p.run,
                    "status": "finished",
                    "finished_at": datetime.now(timezone.utc),
                    "metrics": self.metrics.as_dict(),
                    **{k: v for k, v in self.metrics.as_dict().items() if k in _RUN_METRIC_NAMES},
                }
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
        }

    # ---- frames and writes --------------------------------------------------------------------------------------
    def equity_frame(self, start: int = 0) -> pd.DataFrame:
        """Equity rows from bar ``start`` on, indexed by UTC bar open time."""
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
            index=_ts(self._dt[start:end]).rename("ts"),
        )

    def trades_frame(self, start: int = 0) -> pd.DataFrame:
        """Closed trades from the ``start``-th on (exit time ``ts``, entry time ``entry_ts``, UTC)."""
        rows = self._trades[start:]
        cols = ["ts", "trade_ref", "symbol", "direction", "size", "entry_ts", "entry_price", "exit_price", "pnl",
                "pnl_net", "commission", "bars_held"]
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c.endswith("ts") else "float64")
                                 for c in cols})
        frame = pd.DataFrame(rows)
        frame["ts"] = _ts(frame.pop("dt").to_numpy())
        frame["entry_ts"] = _ts(frame.pop("entry_dt").to_numpy())
        return frame[cols]

    def orders_frame(self, start: int = 0) -> pd.DataFrame:
        """Order fills and final order states from the ``start``-th on (``ts`` UTC)."""
        rows = self._orders[start:]
        cols = ["ts", "order_ref", "symbol", "side", "type", "status", "size", "price", "executed_size",
                "executed_price", "commission"]
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "ts" else "float64") for c in cols})
        frame = pd.DataFrame(rows)
        frame["ts"] = _ts(frame.pop("dt").to_numpy())
        return frame[cols]

    def flush(self) -> None:
        """Write buffered equity points, trades and orders to the store (no-op without a store)."""
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
        self._last_flush = time.monotonic()

    def fail(self, error: BaseException) -> None:
        """Mark the run failed: write what was recorded so far and the error (type and message)."""
        if self._finished or self.p.store is None:
            return
        try:
            self.flush()
        finally:
            self.p.store.write_run(
                {
                    **self.p.run,
                    "status": "failed",
                    "error": f"{type(error).__name__}: {error}",
                    "finished_at": datetime.now(timezone.utc),
                }
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
