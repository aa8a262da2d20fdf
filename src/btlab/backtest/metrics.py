"""Performance metrics of a backtest, from its equity curve and closed trades.

Conventions (stated in every report, see :data:`CONVENTIONS`):

* Returns are simple returns of equity resampled to daily closes: the last equity value of each day that has bars;
  the starting cash is the close of the day before the first bar. Days without bars are skipped. A day is a UTC
  day for 24/7 venues (crypto) and a SESSION for exchange-session venues (equities): the bars of one session --
  pre-market, regular and after-hours -- form one day, labelled by the session's local date (New York for XNYS),
  so after-hours bars never make a day of their own (:func:`btlab.model.sessions.session_labels`).
* Risk-free rate 0; sample standard deviation (ddof = 1).
* Annualization: 365 periods a year for 24/7 crypto, 252 for exchange-session equities (:class:`Calendar`).
* ``sharpe``, ``sortino``, ``cagr``, ``volatility`` and ``calmar`` follow empyrical (Quantopian; checked in tests
  against empyrical-reloaded on the same daily series):
  sharpe = mean(r) / std(r, ddof=1) * sqrt(N); sortino = mean(r) * N / (sqrt(mean(min(r, 0)^2)) * sqrt(N));
  cagr = (prod(1 + r)) ** (N / len(r)) - 1; volatility = std(r, ddof=1) * sqrt(N);
  calmar = cagr / |max drawdown of the daily closes|.
* ``max_drawdown`` is measured on every bar's equity (as Backtrader's DrawDown analyzer does), as a fraction
  <= 0 (empyrical's sign): min over t of value_t / max_{s<=t} value_s - 1, the starting cash being the first peak.
  ``max_drawdown_bars`` is the longest run of consecutive bars below the running peak (Backtrader's ``max.len``);
  ``max_drawdown_days`` is the longest time from a peak to the first bar back at or above it (or to the last bar
  if never recovered), in days.
* Trades: a win is a closed trade with net PnL (after commission) > 0, a loss < 0. ``profit_factor`` = sum of
  winning net PnL / |sum of losing net PnL|; ``avg_trade`` = mean net PnL in account currency.
  ``exposure`` = share of bars that closed with an open position.

One concept in one module (about 700 lines): the metric definitions and the series they are computed from (daily
returns, drawdowns, benchmark, rolling and calendar returns), so the run's scalars and the report's charts use the
same functions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from btlab.model.instrument import Calendar

CONVENTIONS = (
    "Returns: daily closes of equity, per UTC day for 24/7 venues and per exchange session (its local date) for "
    "equity venues (starting cash = close of the day before the first bar); rf = 0; "
    "sample std (ddof=1); annualization {periods} ({calendar}). Sharpe, Sortino, CAGR, volatility and Calmar as "
    "empyrical defines them; Calmar uses the max drawdown of daily closes. Max drawdown and its duration are "
    "measured on every bar. Win = net PnL > 0 after commission."
)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Headline metrics of one run. Fractions are plain (0.25 = 25 %); money is in account currency.

    ``NaN`` means undefined (e.g. Sharpe of a flat curve, win rate without trades).
    """

    start_value: float
    end_value: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_days: float
    max_drawdown_bars: int
    calmar: float
    n_trades: int
    win_rate: float
    profit_factor: float
    avg_trade: float
    avg_win: float
    avg_loss: float
    best_trade: float
    worst_trade: float
    exposure: float
    n_bars: int
    n_days: int
    periods_per_year: int
    calendar: str
    # ---- added for the run report (issue 6); defaults keep older callers and stored rows valid -------------
    best_day: float = math.nan
    worst_day: float = math.nan
    skew: float = math.nan
    kurtosis: float = math.nan
    var_95: float = math.nan
    cvar_95: float = math.nan
    avg_holding_days: float = math.nan
    expectancy: float = math.nan
    sqn: float = math.nan
    benchmark_total_return: float = math.nan
    benchmark_cagr: float = math.nan
    benchmark_volatility: float = math.nan
    benchmark_sharpe: float = math.nan
    benchmark_max_drawdown: float = math.nan
    alpha: float = math.nan
    beta: float = math.nan
    information_ratio: float = math.nan
    tracking_error: float = math.nan

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain dict (JSON-ready apart from NaN/inf)."""
        return asdict(self)

    def as_series(self) -> pd.Series:
        """The metrics as a labelled :class:`pandas.Series`."""
        return pd.Series(self.as_dict(), name="metrics")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def conventions(self) -> str:
        """The conventions sentence for this run's calendar."""
        return CONVENTIONS.format(periods=self.periods_per_year, calendar=self.calendar)


def daily_closes(value: pd.Series, calendar: Calendar | str | None = None) -> pd.Series:
    """Last equity value of each day that has bars: UTC days, or sessions for an exchange calendar.

    Args:
        value: equity in account currency indexed by ``datetime64[ns, UTC]`` bar times (sorted).
        calendar: None, ``"crypto"`` or ``"24/7"``: UTC days. An exchange calendar (``"XNYS"``, ``"nyse"``, a
            :class:`~btlab.model.venue.Venue`, or ``"equity"`` = XNYS): one close per session, grouped by
            :func:`btlab.model.sessions.session_labels`.

    Returns: values indexed by the day's midnight UTC (for sessions: midnight UTC of the session date).

    Raises:
        InvalidArgumentError: unknown calendar.
    """
    idx = pd.DatetimeIndex(value.index)
    labels = _day_labels(idx, calendar)
    ends = _day_ends(labels, value)
    if ends is None:  # unsorted labels or missing values: pandas' groupby (last non-missing value per day)
        return value.groupby(labels).last()
    return pd.Series(value.to_numpy()[ends], index=labels[ends], name=value.name)


def _day_labels(idx: pd.DatetimeIndex, calendar: Calendar | str | None) -> pd.DatetimeIndex:
    """The day of each bar time: its UTC midnight (``calendar`` None) or its session date (see daily_closes)."""
    if calendar is None:
        if str(idx.tz) not in ("UTC", "None"):
            return idx.floor("D")
        ns = idx.as_unit("ns").asi8
        days = pd.DatetimeIndex((ns - ns % 86_400_000_000_000).view("datetime64[ns]"), name=idx.name)
        return (days if idx.tz is None else days.tz_localize("UTC")).as_unit(idx.unit)  # = idx.floor("D")
    from btlab.model.sessions import session_labels

    key = (str(getattr(calendar, "value", calendar)), str(idx.tz), idx.unit,
           hashlib.blake2b(idx.asi8.view(np.uint8), digest_size=16).digest())
    labels = _SESSION_LABELS.get(key)
    if labels is None:
        labels = session_labels(idx, calendar)
        if len(_SESSION_LABELS) >= 8:
            _SESSION_LABELS.pop(next(iter(_SESSION_LABELS)))
        _SESSION_LABELS[key] = labels
    return labels


#: session labels of recent indexes (a sweep computes metrics over the same bar times again and again; finding the
#: sessions costs ~10 ms for 25k bars, the key -- a digest of the bar times -- ~0.1 ms)
_SESSION_LABELS: dict[tuple[str, str, str, bytes], pd.DatetimeIndex] = {}


def _day_ends(labels: pd.DatetimeIndex, value: pd.Series | np.ndarray) -> np.ndarray | None:
    """Positions of the last bar of each day when ``labels`` never decrease and ``value`` has no NaN (then they
    are exactly the rows ``groupby(labels).last()`` picks); None otherwise."""
    if np.isnan(np.asarray(value, dtype="float64")).any():
        return None
    return _label_ends(labels)


def _label_ends(labels: pd.DatetimeIndex) -> np.ndarray | None:
    """Positions where each day's run of ``labels`` ends; None when empty, with NaT or decreasing."""
    keys = labels.asi8
    if len(keys) == 0 or labels.hasnans:
        return None
    step = np.diff(keys)
    if (step < 0).any():
        return None
    return np.append(np.flatnonzero(step), len(keys) - 1)


def _returns_at(closes: np.ndarray, start_value: float) -> np.ndarray:
    """Simple returns of daily closes, the first against ``start_value`` (the arithmetic of daily_returns)."""
    prev = np.empty_like(closes)
    if len(closes):
        prev[0] = start_value
        prev[1:] = closes[:-1]
    return closes / prev - 1.0


def daily_returns(value: pd.Series, start_value: float, calendar: Calendar | str | None = None) -> pd.Series:
    """Simple daily returns of the equity curve (see module conventions); index = UTC day or session date.

    ``calendar`` as :func:`daily_closes` (None: UTC days).
    """
    closes = daily_closes(value, calendar)
    return pd.Series(_returns_at(closes.to_numpy(dtype="float64"), float(start_value)), index=closes.index,
                     name="return")


def max_drawdown_of(values: np.ndarray, peak: np.ndarray | None = None) -> float:
    """Max drawdown (<= 0) of a value path whose first element is the first peak (``peak``: its running maximum,
    when already known)."""
    if len(values) == 0:
        return float("nan")
    peak = np.maximum.accumulate(values) if peak is None else peak
    return float(np.min(values / peak - 1.0))


def _drawdown_runs(ts: np.ndarray, values: np.ndarray, peak: np.ndarray | None = None) -> tuple[int, float]:
    """Longest underwater run in bars and in days. ``values[0]`` is the start (at ``ts[0]``); ``peak``: the
    running maximum of ``values``, when already known."""
    peak = np.maximum.accumulate(values) if peak is None else peak
    under = values < peak
    if not under.any():
        return 0, 0.0
    # runs of consecutive True
    padded = np.concatenate(([False], under, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]  # under[starts:ends] is a run
    lengths = ends - starts
    longest_bars = int(lengths.max())
    last = len(values) - 1
    # a run starting at i began at the peak at i-1 and ends at the recovery bar `end` (or the last bar)
    peak_ts = ts[np.maximum(starts - 1, 0)]
    end_ts = ts[np.minimum(ends, last)]
    days = (end_ts - peak_ts).astype("timedelta64[ns]").astype(np.int64) / 86_400e9
    return longest_bars, float(days.max())


def compute_metrics(
    equity: pd.DataFrame, trades: pd.DataFrame, *, start_value: float, calendar: Calendar | str,
    benchmark: pd.Series | None = None,
) -> Metrics:
    """Compute :class:`Metrics` for one run.

    Args:
        equity: one row per bar, indexed by bar time (``datetime64[ns, UTC]``, sorted), with columns ``value``
            (account value after the bar, currency) and ``position_value`` (market value of open positions).
        trades: closed trades with column ``pnl_net`` (currency, after commission); may be empty.
        start_value: starting cash.
        calendar: ``crypto`` or ``24/7`` (365 a year, UTC days), or an exchange calendar (252 a year, one return
            per session): ``"XNYS"``, an alias (``"nyse"``), a :class:`~btlab.model.venue.Venue`, or ``equity``
            (= XNYS sessions). ``Metrics.calendar`` holds the kind (``crypto``/``equity``).
        benchmark: optional benchmark equity in account currency indexed by UTC bar times, starting from the same
            ``start_value`` (e.g. :func:`benchmark_equity`); it is aligned to ``equity``'s index (last value at or
            before each bar). Without it the ``benchmark_*``, ``alpha``, ``beta``, ``information_ratio`` and
            ``tracking_error`` fields are NaN. See :data:`EXTENDED_CONVENTIONS` for the added fields.

    Raises:
        ValueError: ``equity`` is empty or ``start_value`` is not positive.
    """
    if equity.empty:
        raise ValueError("cannot compute metrics of an empty equity curve")
    if not start_value > 0:
        raise ValueError(f"start_value must be positive, got {start_value}")
    from btlab.model.venue import resolve_calendar

    sessions = resolve_calendar(calendar)
    cal = Calendar.crypto if sessions == "24/7" else Calendar.equity
    n = cal.periods_per_year
    value = equity["value"].astype("float64")
    days = _Days(pd.DatetimeIndex(equity.index), None if cal is Calendar.crypto else sessions)
    r = days.returns(value, start_value)

    exposure = float(np.mean(equity["position_value"].to_numpy() != 0.0)) if "position_value" in equity else float("nan")
    return Metrics(
        start_value=float(start_value),
        **_return_metrics(value, r, start_value, n),
        **_drawdown_metrics(equity, value, start_value),
        **_trade_metrics(trades),
        exposure=exposure,
        n_bars=int(len(equity)),
        n_days=int(len(r)),
        periods_per_year=n,
        calendar=cal.value,
        **_extended_metrics(equity, trades, r, start_value, cal, benchmark, days),
    )


class _Days:
    """The days of one equity index (UTC days or sessions), found once and shared by the strategy's and the
    benchmark's returns (the same bar times: the same days)."""

    def __init__(self, idx: pd.DatetimeIndex, sessions: str | None) -> None:
        self.idx, self.sessions = idx, sessions
        self._ends: np.ndarray | None = None
        self._found = False

    def returns(self, value: pd.Series, start_value: float) -> np.ndarray:
        """``daily_returns(value, start_value, sessions)`` as an array; ``value`` is indexed by ``idx``."""
        if not self._found:
            self._ends, self._found = _label_ends(_day_labels(self.idx, self.sessions)), True
        values = value.to_numpy(dtype="float64")
        if self._ends is None or np.isnan(values).any():
            return daily_returns(value, start_value, self.sessions).to_numpy()
        return _returns_at(values[self._ends], float(start_value))


def _return_metrics(value: pd.Series, r: np.ndarray, start_value: float, n: int) -> dict[str, float]:
    """End value, total return, CAGR, volatility, Sharpe, Sortino and Calmar from the daily returns ``r``."""
    end_value = float(value.iloc[-1])
    if len(r) >= 2:
        std = float(np.std(r, ddof=1))
        mean = float(np.mean(r))
        volatility = std * math.sqrt(n)
        sharpe = _div(mean, std) * math.sqrt(n)
        downside = math.sqrt(float(np.mean(np.square(np.clip(r, -np.inf, 0.0))))) * math.sqrt(n)
        sortino = _div(mean * n, downside)
    else:
        volatility = sharpe = sortino = float("nan")
    growth = float(np.prod(1.0 + r))
    cagr = growth ** (n / len(r)) - 1.0 if len(r) else float("nan")
    daily_path = np.concatenate(([start_value], start_value * np.cumprod(1.0 + r)))
    daily_mdd = max_drawdown_of(daily_path)
    calmar = cagr / abs(daily_mdd) if daily_mdd < 0 else float("nan")
    if math.isinf(calmar):
        calmar = float("nan")
    return {"end_value": end_value, "total_return": end_value / start_value - 1.0, "cagr": float(cagr),
            "volatility": volatility, "sharpe": sharpe, "sortino": sortino, "calmar": float(calmar)}


def _drawdown_metrics(equity: pd.DataFrame, value: pd.Series, start_value: float) -> dict[str, float]:
    """Max drawdown (a fraction <= 0) and its longest run in bars and days, on every bar (the start value first)."""
    bar_values = np.concatenate(([start_value], value.to_numpy()))
    idx = pd.DatetimeIndex(equity.index)
    bar_ts = np.concatenate((idx[:1].asi8, idx.asi8)).astype("datetime64[ns]")
    peak = np.maximum.accumulate(bar_values)
    mdd_bars, mdd_days = _drawdown_runs(bar_ts, bar_values, peak)
    return {"max_drawdown": max_drawdown_of(bar_values, peak), "max_drawdown_days": mdd_days,
            "max_drawdown_bars": mdd_bars}


def _trade_metrics(trades: pd.DataFrame) -> dict[str, float | int]:
    """Count, win rate, profit factor and average/best/worst net PnL of the closed trades (NaN without trades)."""
    pnl = trades["pnl_net"].astype("float64").to_numpy() if len(trades) else np.array([], dtype="float64")
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    n_trades = int(len(pnl))
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    if n_trades == 0:
        profit_factor = float("nan")
    elif gross_loss == 0:
        profit_factor = float("inf") if gross_win > 0 else float("nan")
    else:
        profit_factor = gross_win / gross_loss
    return {
        "n_trades": n_trades,
        "win_rate": len(wins) / n_trades if n_trades else float("nan"),
        "profit_factor": profit_factor,
        "avg_trade": float(pnl.mean()) if n_trades else float("nan"),
        "avg_win": float(wins.mean()) if len(wins) else float("nan"),
        "avg_loss": float(losses.mean()) if len(losses) else float("nan"),
        "best_trade": float(pnl.max()) if n_trades else float("nan"),
        "worst_trade": float(pnl.min()) if n_trades else float("nan"),
    }



def monthly_returns(value: pd.Series, start_value: float, calendar: Calendar | str | None = None) -> pd.DataFrame:
    """Compounded returns per calendar month (UTC) from the daily returns (``calendar`` as :func:`daily_closes`).

    Returns: a frame indexed by year with columns 1..12 (NaN where the run has no days), plus ``year`` (the
    compounded return of the whole calendar year within the run).
    """
    r = daily_returns(value, start_value, calendar)
    idx = pd.DatetimeIndex(r.index)
    growth = (1.0 + r).groupby([idx.year, idx.month]).prod() - 1.0
    table = growth.unstack().reindex(columns=range(1, 13))
    table.index.name = "year"
    table.columns.name = "month"
    yearly = (1.0 + r).groupby(idx.year).prod() - 1.0
    table["year"] = yearly.to_numpy()
    return table


def _div(a: float, b: float) -> float:
    if b == 0:
        return float("nan") if a == 0 else math.copysign(float("inf"), a)
    return a / b


# ==== Added for the run report (issue 6): benchmark, return distribution, trade quality, chart series ==========
# Pure functions over the same inputs as compute_metrics (equity values indexed by UTC bar time, closed trades,
# orders, bars). The report calls the time-series ones on stored data; compute_metrics adds the scalars.

#: Conventions of the fields added to :class:`Metrics` for the run report (``{window}`` = :func:`rolling_window`).
EXTENDED_CONVENTIONS = (
    "Benchmark: equal-weight buy-and-hold of the run's instrument(s): the starting cash split equally, each share "
    "bought at the open of that instrument's first bar in the run (fractional units, no commission, no slippage, "
    "never rebalanced) and valued at each bar's close. Alpha (annualized: (1 + mean(r - beta b))^N - 1) and beta "
    "(cov(r, b) / var(b)) on daily returns as empyrical defines them; information ratio = mean(r - b) / "
    "std(r - b) x sqrt(N); tracking error = std(r - b) x sqrt(N). Daily returns: skew and excess kurtosis "
    "(Fisher) are moment estimators without bias correction (scipy.stats defaults); VaR and CVaR 95 % are "
    "historical one-day returns as empyrical defines them (VaR = 5th percentile, linear interpolation; CVaR = "
    "mean of the worst floor((n - 1) x 0.05) + 1 days). Trades: expectancy = mean net return per trade (net PnL / "
    "entry value |size| x entry price); SQN (Van Tharp) = sqrt(N) x mean / std (ddof=1) of net PnL over all N "
    "closed trades (no cap at 100 trades); holding time = mean of exit minus entry time. Rolling Sharpe and "
    "volatility: windows of {window} daily returns."
)

#: Rolling-window length in daily returns per calendar: about three months (90 days 24/7, 63 sessions).
ROLLING_WINDOWS: dict[str, int] = {Calendar.crypto.value: 90, Calendar.equity.value: 63}


def rolling_window(calendar: Calendar | str) -> int:
    """The rolling Sharpe/volatility window (in daily returns) for a calendar (:data:`ROLLING_WINDOWS`)."""
    return ROLLING_WINDOWS[Calendar(calendar).value]


def extended_conventions(calendar: Calendar | str) -> str:
    """:data:`EXTENDED_CONVENTIONS` for a calendar."""
    return EXTENDED_CONVENTIONS.format(window=rolling_window(calendar))


def value_at_risk(returns: np.ndarray | pd.Series, level: float = 0.95) -> float:
    """Historical one-period VaR as a return (<= 0 for a loss): the ``1 - level`` percentile, linear interpolation.

    Same as ``empyrical.value_at_risk(returns, cutoff=1 - level)``. NaN for an empty series.
    """
    r = np.asarray(returns, dtype="float64")
    r = r[~np.isnan(r)]
    return float(np.percentile(r, 100.0 * (1.0 - level))) if len(r) else math.nan


def conditional_value_at_risk(returns: np.ndarray | pd.Series, level: float = 0.95) -> float:
    """Historical CVaR (expected shortfall) as a return: mean of the worst ``floor((n - 1) * (1 - level)) + 1``.

    Same as ``empyrical.conditional_value_at_risk(returns, cutoff=1 - level)``. NaN for an empty series.
    """
    r = np.asarray(returns, dtype="float64")
    r = r[~np.isnan(r)]
    if not len(r):
        return math.nan
    k = int((len(r) - 1) * (1.0 - level))
    return float(np.mean(np.partition(r, k)[: k + 1]))


def return_distribution(returns: np.ndarray | pd.Series) -> dict[str, float]:
    """Shape of a daily-return series: ``best_day, worst_day, skew, kurtosis, var_95, cvar_95`` (fractions).

    ``skew`` = m3 / m2^1.5 and ``kurtosis`` = m4 / m2^2 - 3 (excess, Fisher) with central moments
    m_k = mean((r - mean r)^k), i.e. ``scipy.stats.skew`` / ``scipy.stats.kurtosis`` with their defaults (biased
    moment estimators). NaN when undefined (fewer than 2 returns or zero variance).
    """
    r = np.asarray(returns, dtype="float64")
    r = r[~np.isnan(r)]
    out = {"best_day": math.nan, "worst_day": math.nan, "skew": math.nan, "kurtosis": math.nan,
           "var_95": value_at_risk(r), "cvar_95": conditional_value_at_risk(r)}
    if not len(r):
        return out
    out["best_day"], out["worst_day"] = float(r.max()), float(r.min())
    dev = r - r.mean()
    m2 = float(np.mean(dev**2))
    if len(r) >= 2 and m2 > 0:
        out["skew"] = float(np.mean(dev**3)) / m2**1.5
        out["kurtosis"] = float(np.mean(dev**4)) / m2**2 - 3.0
    return out


def trade_quality(trades: pd.DataFrame) -> dict[str, float]:
    """Per-trade statistics of closed trades: ``avg_holding_days``, ``expectancy``, ``sqn``.

    Args:
        trades: closed trades with ``pnl_net`` (currency) and, where available, ``ts`` (exit) and ``entry_ts``
            (UTC), ``size`` (signed units) and ``entry_price``. A missing column makes its statistic NaN.

    ``avg_holding_days`` = mean(exit - entry) in days; ``expectancy`` = mean(pnl_net / (|size| * entry_price)),
    the mean net return per trade on the value put in at entry (multiplier 1: spot instruments);
    ``sqn`` = sqrt(N) * mean(pnl_net) / std(pnl_net, ddof=1) (Van Tharp's System Quality Number on net PnL, all N
    trades; Backtrader's SQN analyzer uses ddof=0 instead). NaN without trades (SQN: fewer than 2 trades).
    """
    out = {"avg_holding_days": math.nan, "expectancy": math.nan, "sqn": math.nan}
    if trades is None or not len(trades):
        return out
    pnl = trades["pnl_net"].to_numpy(dtype="float64")
    if len(pnl) >= 2:
        out["sqn"] = _div(float(pnl.mean()), float(np.std(pnl, ddof=1))) * math.sqrt(len(pnl))
    if {"ts", "entry_ts"} <= set(trades.columns):
        held = pd.to_datetime(trades["ts"], utc=True) - pd.to_datetime(trades["entry_ts"], utc=True)
        out["avg_holding_days"] = float(held.dt.total_seconds().mean() / 86_400.0)
    if {"size", "entry_price"} <= set(trades.columns):
        entry_value = np.abs(trades["size"].to_numpy(dtype="float64")) * trades["entry_price"].to_numpy(dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = pnl / entry_value
        ret = ret[np.isfinite(ret)]
        out["expectancy"] = float(ret.mean()) if len(ret) else math.nan
    return out


def benchmark_equity(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame], start_value: float, index: pd.DatetimeIndex | None = None
) -> pd.Series:
    """Equity of the buy-and-hold benchmark: equal weights, bought at the first bar's open, no costs.

    The starting cash is split equally between the instruments; each share buys (fractional) units of its
    instrument at the OPEN of that instrument's first bar and is held to the end, never rebalanced, with no
    commission or slippage. Before an instrument's first bar its share is held as cash. The value at time t is
    ``sum_i units_i * close_i(t)`` with the last close at or before t (a bar's value is taken at its close, as
    the recorder's equity is).

    Args:
        bars: one instrument's bars, or ``{symbol: bars}``; each with ``ts`` (``datetime64[ns, UTC]`` bar open
            time, as a column or the index), ``open`` and ``close`` (price in account currency).
        start_value: starting cash (account currency), > 0.
        index: UTC times to value the benchmark at (e.g. the equity curve's bar times); default: the union of
            all the instruments' bar times.

    Returns: float64 Series named ``benchmark``, indexed by ``datetime64[ns, UTC]``.

    Raises:
        ValueError: no instrument, an instrument without bars, a first open that is not positive, or a
            ``start_value`` that is not positive.
    """
    frames = {"": bars} if isinstance(bars, pd.DataFrame) else dict(bars)
    if not frames:
        raise ValueError("benchmark_equity needs the bars of at least one instrument")
    if not start_value > 0:
        raise ValueError(f"start_value must be positive, got {start_value}")
    series: dict[str, pd.Series] = {}
    for name, frame in frames.items():
        ts = pd.DatetimeIndex(frame["ts"] if "ts" in frame.columns else frame.index)
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        if not len(ts):
            raise ValueError(f"benchmark_equity: no bars for {name or 'the instrument'}")
        order = np.argsort(ts.asi8, kind="stable")
        first_open = float(frame["open"].to_numpy(dtype="float64")[order[0]])
        if not first_open > 0:
            raise ValueError(f"benchmark_equity: first open of {name or 'the instrument'} is {first_open}")
        close = pd.Series(frame["close"].to_numpy(dtype="float64")[order], index=ts[order])
        series[name] = close * (1.0 / first_open)  # value of one currency unit invested at the first open
    if index is None:
        index = series[next(iter(series))].index
        for s in list(series.values())[1:]:
            index = index.union(s.index)
    index = pd.DatetimeIndex(index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    share = float(start_value) / len(series)
    total = np.zeros(len(index))
    for s in series.values():
        growth = s.reindex(index, method="ffill").to_numpy(dtype="float64")
        total += share * np.where(np.isnan(growth), 1.0, growth)  # before its first bar: cash
    return pd.Series(total, index=index, name="benchmark")


def _aligned(series: pd.Series, index: pd.DatetimeIndex, before: float) -> pd.Series:
    """``series`` at ``index``: the last value at or before each time; ``before`` where it has none yet."""
    s = series.sort_index()
    values = s.to_numpy(dtype="float64")
    if s.index.equals(index) and not np.isnan(values).any():  # already at the bar times (run_vector, the recorder)
        return pd.Series(values, index=index, name=s.name)
    out = s.reindex(index.union(s.index)).ffill().reindex(index)
    return out.fillna(before).astype("float64")


def _extended_metrics(
    equity: pd.DataFrame, trades: pd.DataFrame, r: np.ndarray, start_value: float, cal: Calendar,
    benchmark: pd.Series | None, days: _Days,
) -> dict[str, float]:
    """The fields added for the report (see :data:`EXTENDED_CONVENTIONS`), from compute_metrics' inputs.

    ``days``: the days (UTC days, or the sessions of an exchange calendar) of the equity's bar times.
    """
    out = {**return_distribution(r), **trade_quality(trades)}
    if benchmark is None or not len(benchmark):
        return out
    n = cal.periods_per_year
    bench = _aligned(benchmark, days.idx, float(start_value))
    b = days.returns(bench, start_value)  # same days as r: same bar times
    bm = _return_metrics(bench, b, float(start_value), n)  # the benchmark's own compute_metrics fields
    out.update(benchmark_total_return=bm["total_return"], benchmark_cagr=bm["cagr"],
               benchmark_volatility=bm["volatility"], benchmark_sharpe=bm["sharpe"],
               benchmark_max_drawdown=max_drawdown_of(np.concatenate(([float(start_value)], bench.to_numpy()))))
    if len(r) >= 2:
        b_res = b - b.mean()
        var_b = float(np.mean(b_res**2))
        beta = float(np.mean(b_res * r)) / var_b if var_b > 0 else math.nan
        active = r - b
        te = float(np.std(active, ddof=1))
        out.update(
            beta=beta,
            alpha=(1.0 + float(np.mean(r - beta * b))) ** n - 1.0 if not math.isnan(beta) else math.nan,
            information_ratio=_div(float(active.mean()), te) * math.sqrt(n),
            tracking_error=te * math.sqrt(n),
        )
    return out


def rolling_sharpe(returns: pd.Series, window: int, periods_per_year: int) -> pd.Series:
    """Annualized Sharpe over a trailing window of daily returns: mean / std(ddof=1) * sqrt(N), rf = 0.

    Args:
        returns: daily returns (e.g. :func:`daily_returns`), indexed by day.
        window: returns per window (e.g. :func:`rolling_window`).
        periods_per_year: N (365 or 252).

    Returns: a Series on ``returns``' index, labelled at each window's last day; NaN for the first
    ``window - 1`` days and where the window's std is 0 (as ``empyrical.roll_sharpe_ratio`` gives per window).
    """
    mean, std = _rolling_moments(returns, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / std * math.sqrt(periods_per_year)
    return pd.Series(np.where(np.isfinite(sharpe), sharpe, np.nan), index=returns.index, name="rolling_sharpe")


def rolling_volatility(returns: pd.Series, window: int, periods_per_year: int) -> pd.Series:
    """Annualized volatility over a trailing window of daily returns: std(ddof=1) * sqrt(N).

    Same shape and labels as :func:`rolling_sharpe` (``empyrical.roll_annual_volatility`` per window).
    """
    _, std = _rolling_moments(returns, window)
    return pd.Series(std * math.sqrt(periods_per_year), index=returns.index, name="rolling_volatility")


def _rolling_moments(returns: pd.Series, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std of each trailing window, computed exactly per window (NaN before the first full one)."""
    if window < 2:
        raise ValueError(f"rolling window must be at least 2 returns, got {window}")
    r = returns.to_numpy(dtype="float64")
    mean = np.full(len(r), np.nan)
    std = np.full(len(r), np.nan)
    if len(r) >= window:
        view = np.lib.stride_tricks.sliding_window_view(r, window)
        mean[window - 1:] = view.mean(axis=1)
        std[window - 1:] = view.std(axis=1, ddof=1)
    return mean, std


def drawdown_periods(value: pd.Series, start_value: float, top: int | None = 5) -> pd.DataFrame:
    """The drawdown periods of an equity curve, deepest first.

    Measured on every bar like ``max_drawdown``: the starting cash is the first peak (at the first bar's time); a
    period starts at a running peak, ends at the first bar back at or above that peak (its ``recovery``) or is
    still open at the last bar.

    Args:
        value: equity in account currency indexed by ``datetime64[ns, UTC]`` bar times (sorted).
        start_value: starting cash.
        top: keep the ``top`` deepest periods (None: all).

    Returns: one row per period with ``peak``, ``trough``, ``recovery`` (UTC times; ``recovery`` NaT if not
    recovered), ``depth`` (trough / peak - 1, a fraction < 0), ``peak_value``, ``trough_value``,
    ``days_to_trough``, ``days_to_recovery`` (trough to recovery, NaN if not recovered), ``days`` (peak to
    recovery, or to the last bar if not recovered; the longest equals ``Metrics.max_drawdown_days``) and
    ``bars`` (bars under water; the most equals ``Metrics.max_drawdown_bars``).
    """
    idx = pd.DatetimeIndex(value.index)
    values = np.concatenate(([float(start_value)], value.to_numpy(dtype="float64")))
    ts = np.concatenate((idx.asi8[:1], idx.asi8))
    columns = ["peak", "trough", "recovery", "depth", "peak_value", "trough_value", "days_to_trough",
               "days_to_recovery", "days", "bars"]
    peak = np.maximum.accumulate(values)
    under = values < peak
    if not len(idx) or not under.any():
        empty = pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c in columns[:3] else "float64")
                              for c in columns})
        return empty.astype({"bars": "int64"})
    edges = np.flatnonzero(np.diff(np.concatenate(([False], under, [False])).astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]  # values[starts:ends] are under the peak set at starts - 1
    bounds = np.column_stack((starts, ends)).ravel()  # min over each [start, end); +inf pads the last end
    depth = np.minimum.reduceat(np.append(values, np.inf), bounds)[::2]
    peak_values = values[starts - 1]
    rel = depth / peak_values - 1.0
    order = np.argsort(rel, kind="stable")
    if top is not None:
        order = order[:top]
    last = len(values) - 1
    rows = []
    day = 86_400e9
    for i in order:
        s, e = int(starts[i]), int(ends[i])
        t = s + int(np.argmin(values[s:e]))
        recovered = e <= last
        end_ts = ts[e] if recovered else ts[last]
        rows.append({
            "peak": ts[s - 1], "trough": ts[t], "recovery": ts[e] if recovered else None,
            "depth": float(rel[i]), "peak_value": float(peak_values[i]), "trough_value": float(values[t]),
            "days_to_trough": (ts[t] - ts[s - 1]) / day,
            "days_to_recovery": (ts[e] - ts[t]) / day if recovered else math.nan,
            "days": (end_ts - ts[s - 1]) / day, "bars": e - s,
        })
    frame = pd.DataFrame(rows, columns=columns)
    for c in ("peak", "trough", "recovery"):
        frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
    return frame.astype({"bars": "int64"})


def yearly_returns(
    value: pd.Series, start_value: float, benchmark: pd.Series | None = None, calendar: Calendar | str | None = None
) -> pd.DataFrame:
    """Compounded return per calendar year of the strategy and, if given, of the benchmark.

    Args:
        value: equity indexed by UTC bar times; benchmark: benchmark equity from the same ``start_value``
            (aligned to ``value``'s index as in :func:`compute_metrics`); calendar: as :func:`daily_closes`.

    Returns: a frame indexed by ``year`` with ``strategy``, ``benchmark`` and ``excess`` (strategy - benchmark)
    as fractions (NaN without a benchmark); each year's return compounds the run's daily returns of that year.
    """
    r = daily_returns(value, start_value, calendar)
    years = pd.DatetimeIndex(r.index).year
    out = pd.DataFrame({"strategy": (1.0 + r).groupby(years).prod() - 1.0})
    if benchmark is not None and len(benchmark):
        bench = _aligned(benchmark, pd.DatetimeIndex(value.index), float(start_value))
        b = daily_returns(bench, start_value, calendar)
        out["benchmark"] = ((1.0 + b).groupby(years).prod() - 1.0).to_numpy()
    else:
        out["benchmark"] = math.nan
    out["excess"] = out["strategy"] - out["benchmark"]
    out.index.name = "year"
    return out


def open_positions(orders: pd.DataFrame, last_prices: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Positions still open after the last order, rebuilt from the order fills (closed trades do not hold them).

    Args:
        orders: order events as stored (``bt_orders``): ``ts`` (UTC), ``order_ref``, ``symbol``,
            ``executed_size`` (signed, cumulative over the order's fills), ``executed_price`` (average over the
            fills). Each order's last event (its final state) counts once; orders that filled nothing are ignored.
        last_prices: optional ``{symbol: last close}`` to value the positions.

    Returns: one row per symbol with a non-zero position: ``symbol``, ``size`` (signed units), ``avg_price`` (the
    average fill price of the units held, as Backtrader's ``Position.price``, commission excluded), ``opened``
    (UTC time of the fill that opened it from flat), ``last_price``, ``market_value`` (size * last price) and
    ``unrealized_pnl`` (size * (last price - avg price)), NaN without a last price.
    """
    columns = ["symbol", "size", "avg_price", "opened", "last_price", "market_value", "unrealized_pnl"]
    rows = []
    if orders is not None and len(orders):
        final = orders.sort_values(["ts", "order_ref"], kind="stable").groupby("order_ref", sort=False).tail(1)
        final = final[final["executed_size"].fillna(0.0) != 0.0].sort_values(["ts", "order_ref"], kind="stable")
        for symbol, fills in final.groupby("symbol", sort=True):
            size, price, opened = 0.0, math.nan, None
            scale = float(np.abs(fills["executed_size"]).max())
            sizes, prices = fills["executed_size"].astype(float), fills["executed_price"].astype(float)
            for ts, q, px in zip(fills["ts"], sizes, prices):
                if size == 0.0 or (size > 0) == (q > 0):  # open or add: average the price
                    price = px if size == 0.0 else (price * abs(size) + px * abs(q)) / (abs(size) + abs(q))
                    opened = ts if size == 0.0 else opened
                    size += q
                elif abs(q) <= abs(size):  # reduce (or close)
                    size += q
                else:  # reverse: the remainder opens a new position at this fill
                    size, price, opened = size + q, px, ts
                if abs(size) <= 1e-9 * scale:
                    size, price, opened = 0.0, math.nan, None
            if size:
                last = math.nan if not last_prices else float(last_prices.get(symbol, math.nan))
                rows.append({"symbol": symbol, "size": size, "avg_price": price, "opened": opened,
                             "last_price": last, "market_value": size * last,
                             "unrealized_pnl": size * (last - price)})
    frame = pd.DataFrame(rows, columns=columns)
    frame["opened"] = pd.to_datetime(frame["opened"], utc=True).astype("datetime64[ns, UTC]")
    return frame


def drawdown_curve(value: pd.Series, start_value: float) -> pd.Series:
    """Drawdown at every bar, ``value / running peak - 1`` (<= 0), the starting cash being the first peak.

    The same definition as the recorder's stored ``drawdown`` column, for curves that are not stored (e.g. the
    benchmark's). Index and length as ``value``.
    """
    v = value.to_numpy(dtype="float64")
    peak = np.maximum.accumulate(np.concatenate(([float(start_value)], v)))[1:]
    return pd.Series(v / peak - 1.0, index=value.index, name="drawdown")
