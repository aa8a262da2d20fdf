"""Walk-forward evaluation, the pure part: the windows (:func:`walkforward_windows`) and the statistics of a run
(:func:`evaluate_walkforward` -> :class:`WalkForwardResult`). No I/O.

The runs themselves (a sweep on each train window, the chosen combination on its test window) are made by
:func:`btlab.sweep.walkforward.run_walkforward`: ``sweep`` and ``evaluation`` are peers that do not import each
other (tests/test_layering.py), so a walk-forward is three calls::

    from btlab.evaluation.walkforward import evaluate_walkforward, walkforward_windows
    from btlab.sweep.walkforward import run_walkforward

    windows = walkforward_windows("2018-01-01", "2023-12-31", train="2y", test="6m")  # rolling, step = test
    run = run_walkforward("sma_cross", "grid.yaml", windows=windows, exchange="binance", symbols="BTC/USDT",
                          timeframe="1h", engine="vector")
    result = evaluate_walkforward(run)
    result.windows          # one row per window: ranges, chosen params, IS and OOS metric, DSR
    result.equity           # the chained out-of-sample equity: ts (UTC), value
    result.side_by_side     # in-sample vs out-of-sample metrics

Windows (all UTC; bounds inclusive like every btlab range: an end is the last nanosecond before the exclusive end):

* rolling (default): train ``[from + k*step, from + k*step + train)``, test ``[train end, train end + test)``;
* anchored (expanding train): train ``[from, from + train + k*step)``, test as above;
* ``step`` defaults to ``test``; ``step < test`` is refused (test windows would overlap);
  ``step > test`` leaves untested time between the test windows;
* the last test window must fit before ``--to``: a partial last window is DROPPED (never shortened), so every
  test window has the same length; the time between the last test end and ``--to`` is untested
  (:attr:`WalkForwardWindows.untested`).

Durations: ``<n>d`` days, ``<n>w`` weeks, ``<n>m`` calendar months, ``<n>y`` calendar years (``pandas.DateOffset``
arithmetic from ``from``: 2020-01-31 + 1m = 2020-02-29), n a whole number >= 1.

Statistics (:func:`evaluate_walkforward`):

* the out-of-sample (OOS) equity is the chain of the test segments: segment k is run with starting cash = the
  ending equity of segment k-1 (the first with the requested cash); no position is carried across a segment
  boundary (each segment starts flat, the open position of a segment is valued at its last close, without
  a closing commission, and is not among the closed trades). Its metrics are
  :func:`btlab.backtest.metrics.compute_metrics` of that curve and of the segments' closed trades, with the
  first segment's cash as start value;
* in-sample (IS) per window: the chosen combination's metrics on its train window (the sweep row);
* deflated Sharpe ratio (Bailey & López de Prado 2014, :func:`btlab.evaluation.sharpe.deflated_sharpe_ratio`) of
  each window's chosen combination: its daily returns on the train window, against the window's trials (every
  finished combination with a Sharpe ratio; their annualized Sharpe ratios are made per-period by dividing by
  ``sqrt(periods_per_year)``), n_trials = the finished combinations of the window's sweep;
* PBO (:func:`btlab.evaluation.overfitting.pbo`, CSCV with S = 16 blocks, per-period Sharpe ratio) of each
  window's grid on its train window, from every combination's daily train returns (the vector engine recomputes
  them with its kernel; on the Backtrader engine the sweep's workers return them); a train window of fewer than
  32 days has fewer blocks (:func:`pbo_splits`: at least 2 days per block); NaN when fewer than 8 blocks (16 days)
  or the grid has fewer than 2 combinations.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError
from btlab.model.timebounds import parse_range

__all__ = ["WalkForwardResult", "WalkForwardWindows", "Window", "bound_text", "evaluate_walkforward", "parse_period",
           "pbo_splits", "walkforward_windows", "window_dsr", "window_pbo"]

_PERIOD = re.compile(r"^(?P<n>\d+)\s*(?P<unit>[dwmy])$", re.IGNORECASE)
_ONE_NS = pd.Timedelta(1, "ns")


@dataclass(frozen=True)
class Window:
    """One walk-forward window: UTC timestamps, every bound INCLUSIVE (an end is 1 ns before the next start).

    Attributes:
        index: 0-based position in time order.
        train_start, train_end: the in-sample range.
        test_start, test_end: the out-of-sample range (``test_start = train_end + 1 ns``).
    """

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    @property
    def train(self) -> tuple[str, str]:
        """``(start, end)`` of the train range as btlab bounds (``YYYY-MM-DD`` when on whole UTC days, else ISO)."""
        return bound_text(self.train_start, end=False), bound_text(self.train_end, end=True)

    @property
    def test(self) -> tuple[str, str]:
        """``(start, end)`` of the test range as btlab bounds (see :attr:`train`)."""
        return bound_text(self.test_start, end=False), bound_text(self.test_end, end=True)


@dataclass(frozen=True)
class WalkForwardWindows:
    """The windows of a walk-forward, with how they were made.

    Attributes:
        windows: the :class:`Window` list, in time order (at least one).
        start, end: the requested range (inclusive UTC bounds).
        train, test, step: the durations as given (``"2y"``, ``"6m"``; step defaults to test).
        anchored: True for an expanding train window.
        untested: ``(first instant, last instant)`` after the last test window up to ``end``, or None when the
            last test window ends at ``end``.
    """

    windows: tuple[Window, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    train: str
    test: str
    step: str
    anchored: bool
    untested: tuple[pd.Timestamp, pd.Timestamp] | None

    def __iter__(self):
        return iter(self.windows)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> Window:
        return self.windows[i]

    @property
    def spec(self) -> dict[str, Any]:
        """A JSON-able description (what a walk-forward id hashes)."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "train": self.train,
                "test": self.test, "step": self.step, "anchored": self.anchored}


def bound_text(ts: pd.Timestamp, *, end: bool) -> str:
    """An inclusive bound as btlab parses it back to the same range: ``YYYY-MM-DD`` when it falls on whole UTC
    days (a start at 00:00, an end 1 ns before 00:00), else ISO 8601 with nanoseconds."""
    edge = ts + _ONE_NS if end else ts
    if edge == edge.normalize():
        return (edge - pd.Timedelta(days=1)).strftime("%Y-%m-%d") if end else edge.strftime("%Y-%m-%d")
    return ts.isoformat()


def parse_period(value: Any, *, what: str) -> pd.DateOffset:
    """``<n>d|w|m|y`` (days, weeks, calendar months, calendar years; n >= 1) as a :class:`pandas.DateOffset`.

    Raises:
        InvalidArgumentError: anything else (one line naming ``what``).
    """
    m = _PERIOD.match(str(value).strip())
    if not m or int(m["n"]) < 1:
        raise InvalidArgumentError(f"{what} {str(value)!r}: give a whole number >= 1 and a unit d, w, m (months) "
                                   f"or y, e.g. 2y, 6m, 90d")
    n, unit = int(m["n"]), m["unit"].lower()
    return {"d": pd.DateOffset(days=n), "w": pd.DateOffset(days=7 * n), "m": pd.DateOffset(months=n),
            "y": pd.DateOffset(years=n)}[unit]


def _after(origin: pd.Timestamp, *terms: tuple[pd.DateOffset, int]) -> pd.Timestamp:
    """``origin`` plus the sum of ``count * offset`` over ``terms``, added as ONE offset, so month ends do not
    drift (2020-01-31 + 2m = 2020-03-31, where + 1m + 1m = 2020-03-29)."""
    total: dict[str, int] = {}
    for offset, count in terms:
        for name, value in offset.kwds.items():
            total[name] = total.get(name, 0) + value * count
    return origin + pd.DateOffset(**{name: v for name, v in total.items() if v}) if any(total.values()) else origin


def walkforward_windows(start: Any, end: Any, *, train: str, test: str, step: str | None = None,
                        anchored: bool = False) -> WalkForwardWindows:
    """The walk-forward windows over ``start .. end`` (see the module docstring for the layout).

    Args:
        start, end: inclusive UTC bounds (``YYYY-MM-DD`` or ISO 8601, as ``--from``/``--to``), both required.
        train, test: durations ``<n>d|w|m|y`` of the (first) train window and of each test window.
        step: how far each window moves (default ``test``); at least ``test``.
        anchored: expanding train window (always from ``start``) instead of a rolling one.

    Returns: :class:`WalkForwardWindows` (at least one window).

    Raises:
        InvalidArgumentError: a missing or bad bound, ``start`` after ``end``, a bad duration, ``step`` shorter
            than ``test``, or a range too short for one train + test window.
    """
    if start is None or end is None or any(isinstance(v, str) and not v.strip() for v in (start, end)):
        raise InvalidArgumentError("walk-forward needs both --from and --to (the range the windows cover)")
    lo, hi = parse_range(start, end)  # hi exclusive
    train_off = parse_period(train, what="--train")
    test_off = parse_period(test, what="--test")
    step_text = test if step is None else step
    step_off = parse_period(step_text, what="--step")
    probe = pd.Timestamp("2000-01-01", tz="UTC")
    if probe + step_off < probe + test_off:
        raise InvalidArgumentError(f"--step {step_text} is shorter than --test {test}: test windows would overlap")
    windows = []
    k = 0
    while True:
        train_lo = lo if anchored else _after(lo, (step_off, k))
        train_hi = _after(lo, (train_off, 1), (step_off, k))  # exclusive
        test_hi = _after(lo, (train_off, 1), (step_off, k), (test_off, 1))
        if test_hi > hi:
            break
        windows.append(Window(k, train_lo, train_hi - _ONE_NS, train_hi, test_hi - _ONE_NS))
        k += 1
    if not windows:
        raise InvalidArgumentError(f"--from {bound_text(lo, end=False)} --to {bound_text(hi - _ONE_NS, end=True)} "
                                   f"is too short for one window of --train {train} + --test {test}")
    last = windows[-1].test_end + _ONE_NS
    untested = (last, hi - _ONE_NS) if last < hi else None
    return WalkForwardWindows(tuple(windows), lo, hi - _ONE_NS, str(train), str(test), str(step_text),
                              bool(anchored), untested)


# ---- statistics of a run ------------------------------------------------------------------------------------------
@dataclass
class WalkForwardResult:
    """What a walk-forward found (:func:`evaluate_walkforward`).

    Attributes:
        walkforward_id: the id (sweeps ``<id>-wNN``, test runs ``<id>-wNN-oos`` in the store).
        by: the metric the combinations were chosen by.
        windows: one row per window: ``window, train_start, train_end, test_start, test_end`` (inclusive UTC),
            ``sweep_id, params`` (dict), ``is_<by>`` (the chosen combination's metric on the train window, from
            its sweep), ``oos_<by>`` (on its test segment alone), ``is_sharpe, oos_sharpe, oos_return``
            (fraction), ``n_trials`` (finished combinations), ``dsr`` (deflated Sharpe ratio, probability in
            [0, 1]; NaN when undefined: fewer than 2 trials with a Sharpe ratio, or flat IS returns), ``pbo``
            (probability of backtest overfitting of the grid on the train window; NaN when not available),
            ``oos_run_id``.
        equity: the chained out-of-sample equity: columns ``ts`` (datetime64[ns, UTC], bar open time) and
            ``value`` (account currency), one row per bar of the test windows.
        metrics: :class:`~btlab.backtest.metrics.Metrics` of the chained curve (start value = the requested cash).
        side_by_side: DataFrame indexed by metric name (:data:`SIDE_BY_SIDE`, and ``tracking_error`` for an
            index tracker such as ``mp_tracker``: annualized std of the active returns against the index)
            with columns ``in_sample`` (mean over windows of the chosen combination's train-window metric) and
            ``out_of_sample`` (the chained OOS metric).
        untested: as :attr:`WalkForwardWindows.untested`.
    """

    walkforward_id: str
    by: str
    windows: pd.DataFrame
    equity: pd.DataFrame
    metrics: Any
    side_by_side: pd.DataFrame
    untested: tuple[pd.Timestamp, pd.Timestamp] | None = None
    trades: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


#: metrics shown in the in-sample vs out-of-sample table: rates and ratios, comparable across lengths (a total
#: return or a trade count of one train window is not comparable to the whole chained test curve's)
SIDE_BY_SIDE = ("sharpe", "sortino", "cagr", "volatility", "max_drawdown", "calmar", "win_rate")


def evaluate_walkforward(run: Any) -> WalkForwardResult:
    """The statistics of a walk-forward run (:class:`btlab.sweep.walkforward.WalkForwardRun`): chained OOS
    metrics, each window's deflated Sharpe ratio, IS vs OOS side by side (see the module docstring).

    Raises:
        InvalidArgumentError: the run has no window.
    """
    from btlab.backtest.metrics import compute_metrics

    if not run.windows:
        raise InvalidArgumentError("the walk-forward run has no window")
    equity = pd.concat([w.oos_equity[["value", "position_value"]] for w in run.windows])
    trades = pd.concat([w.oos_trades for w in run.windows if len(w.oos_trades)] or [run.windows[0].oos_trades])
    metrics = compute_metrics(equity, trades, start_value=run.cash, calendar=run.calendar)
    rows = [_window_row(run, w) for w in run.windows]
    table = pd.DataFrame(rows)
    ins = {name: float(np.nanmean([w.is_metrics.get(name, math.nan) for w in run.windows]))
           if any(_finite(w.is_metrics.get(name)) for w in run.windows) else math.nan for name in SIDE_BY_SIDE}
    outs = {name: float(getattr(metrics, name)) for name in SIDE_BY_SIDE}
    tracking = _chained_tracking_error(run, equity)
    if tracking is not None:  # an index tracker: how closely it tracked, IS (mean of the windows) vs chained OOS
        ins["tracking_error"] = float(np.nanmean([_num(w.is_metrics.get("tracking_error")) for w in run.windows]))
        outs["tracking_error"] = tracking
    side = pd.DataFrame({"in_sample": ins, "out_of_sample": outs})
    side.index.name = "metric"
    curve = pd.DataFrame({"ts": pd.DatetimeIndex(equity.index), "value": equity["value"].to_numpy()})
    return WalkForwardResult(walkforward_id=run.walkforward_id, by=run.by, windows=table, equity=curve,
                             metrics=metrics, side_by_side=side, untested=run.untested, trades=trades)


def _chained_tracking_error(run: Any, equity: pd.DataFrame) -> float | None:
    """Annualized tracking error of the chained OOS curve against the index (every window's ``index_close``),
    as :func:`btlab.backtest.tracking.tracking_metrics` defines it (std of per-bar active returns, ddof 1, x
    sqrt(periods_per_year)); None when the run is not an index tracker's."""
    closes = [getattr(w, "index_close", None) for w in run.windows]
    if any(c is None for c in closes):
        return None
    from btlab.backtest.tracking import active_returns

    returns = active_returns(equity["value"], pd.concat(closes))
    if len(returns) < 2:
        return math.nan
    return float(returns["active"].std(ddof=1) * math.sqrt(run.periods_per_year))


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _window_row(run: Any, w: Any) -> dict[str, Any]:
    by = run.by
    return {
        "window": w.window.index, "train_start": w.window.train_start, "train_end": w.window.train_end,
        "test_start": w.window.test_start, "test_end": w.window.test_end, "sweep_id": w.sweep_id,
        "params": w.params, f"is_{by}": _num(w.is_metrics.get(by)), f"oos_{by}": _num(w.oos_metrics.get(by)),
        **({} if by == "sharpe" else {"is_sharpe": _num(w.is_metrics.get("sharpe")),
                                      "oos_sharpe": _num(w.oos_metrics.get("sharpe"))}),
        "oos_return": _num(w.oos_metrics.get("total_return")), "n_trials": w.n_trials,
        "dsr": window_dsr(w.is_returns, w.trial_sharpes, n_trials=w.n_trials,
                          periods_per_year=run.periods_per_year),
        "pbo": window_pbo(getattr(w, "trial_returns", None)),
        "oos_run_id": w.oos_run_id,
    }


def _num(value: Any) -> float:
    return float(value) if _finite(value) else math.nan


def window_dsr(is_returns: Any, trial_sharpes: Any, *, n_trials: int, periods_per_year: int) -> float:
    """Deflated Sharpe ratio of a window's chosen combination (a probability in [0, 1]).

    Args:
        is_returns: the chosen combination's per-period (daily) simple returns on the train window.
        trial_sharpes: the ANNUALIZED Sharpe ratios of the window's trials (the sweep rows' ``sharpe``; NaN ones
            are left out), converted here to per-period as ``SR / sqrt(periods_per_year)``.
        n_trials: finished combinations of the window (at least the number of finite trial Sharpe ratios).
        periods_per_year: 365 (24/7) or 252 (exchange sessions).

    Returns: the DSR, or NaN when it is undefined (fewer than 2 trials with a Sharpe ratio, fewer than 2 returns,
    flat returns).
    """
    from btlab.evaluation.sharpe import deflated_sharpe_ratio

    srs = np.asarray(trial_sharpes, dtype="float64")
    srs = srs[np.isfinite(srs)] / math.sqrt(periods_per_year)
    r = np.asarray(is_returns, dtype="float64")
    if len(srs) < 2 or len(r) < 2 or not np.isfinite(r).all() or np.std(r) == 0:
        return math.nan
    return float(deflated_sharpe_ratio(r, trial_srs=srs, n_trials=max(int(n_trials), len(srs))))


#: CSCV blocks of a window's PBO (the paper's 16)
PBO_SPLITS = 16


def window_pbo(trial_returns: Any, n_splits: int = PBO_SPLITS) -> float:
    """PBO of a window's grid on its train window (:func:`btlab.evaluation.overfitting.pbo`, per-period Sharpe).

    Args:
        trial_returns: (days x combinations) daily simple returns, rows in time order, or None.
        n_splits: CSCV blocks S.

    Returns: the PBO in [0, 1], or NaN when ``trial_returns`` is None, has fewer than 2 columns or fewer than
    ``2 * MIN_PBO_SPLITS`` rows. A train window of fewer than ``2 * n_splits`` days (e.g. 4 weeks of sessions) is
    cut into fewer blocks: the largest even S <= ``n_splits`` with at least 2 days per block (:func:`pbo_splits`).
    """
    from btlab.evaluation.overfitting import pbo

    if trial_returns is None or trial_returns.shape[1] < 2:
        return math.nan
    splits = pbo_splits(len(trial_returns), n_splits)
    if splits < MIN_PBO_SPLITS:
        return math.nan
    return float(pbo(trial_returns, n_splits=splits).pbo)


#: fewest CSCV blocks a window's PBO is computed with (fewer: NaN)
MIN_PBO_SPLITS = 8


def pbo_splits(n_rows: int, n_splits: int = PBO_SPLITS) -> int:
    """The CSCV blocks S for ``n_rows`` daily returns: ``n_splits``, or fewer (even) when the rows cannot give
    every block at least 2 days: ``min(n_splits, 2 * (n_rows // 4))``."""
    return int(min(n_splits, 2 * (n_rows // 4)))
