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
"""

from __future__ import annotations

import math
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
    if calendar is None:
        return value.groupby(idx.floor("D")).last()
    from btlab.model.sessions import session_labels

    return value.groupby(session_labels(idx, calendar)).last()


def daily_returns(value: pd.Series, start_value: float, calendar: Calendar | str | None = None) -> pd.Series:
    """Simple daily returns of the equity curve (see module conventions); index = UTC day or session date.

    ``calendar`` as :func:`daily_closes` (None: UTC days).
    """
    closes = daily_closes(value, calendar)
    prev = closes.shift(1)
    if len(prev):
        prev.iloc[0] = start_value
    return (closes / prev - 1.0).rename("return")


def max_drawdown_of(values: np.ndarray) -> float:
    """Max drawdown (<= 0) of a value path whose first element is the first peak."""
    if len(values) == 0:
        return float("nan")
    peak = np.maximum.accumulate(values)
    return float(np.min(values / peak - 1.0))


def _drawdown_runs(ts: np.ndarray, values: np.ndarray) -> tuple[int, float]:
    """Longest underwater run in bars and in days. ``values[0]`` is the start (at ``ts[0]``)."""
    peak = np.maximum.accumulate(values)
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
    equity: pd.DataFrame, trades: pd.DataFrame, *, start_value: float, calendar: Calendar | str
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
    r = daily_returns(value, start_value, None if cal is Calendar.crypto else sessions).to_numpy()

    end_value = float(value.iloc[-1])
    total_return = end_value / start_value - 1.0
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

    bar_values = np.concatenate(([start_value], value.to_numpy()))
    idx = pd.DatetimeIndex(equity.index)
    bar_ts = np.concatenate((idx[:1].asi8, idx.asi8)).astype("datetime64[ns]")
    mdd = max_drawdown_of(bar_values)
    mdd_bars, mdd_days = _drawdown_runs(bar_ts, bar_values)

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

    exposure = float(np.mean(equity["position_value"].to_numpy() != 0.0)) if "position_value" in equity else float("nan")
    return Metrics(
        start_value=float(start_value),
        end_value=end_value,
        total_return=total_return,
        cagr=float(cagr),
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=mdd,
        max_drawdown_days=mdd_days,
        max_drawdown_bars=mdd_bars,
        calmar=float(calmar),
        n_trades=n_trades,
        win_rate=len(wins) / n_trades if n_trades else float("nan"),
        profit_factor=profit_factor,
        avg_trade=float(pnl.mean()) if n_trades else float("nan"),
        avg_win=float(wins.mean()) if len(wins) else float("nan"),
        avg_loss=float(losses.mean()) if len(losses) else float("nan"),
        best_trade=float(pnl.max()) if n_trades else float("nan"),
        worst_trade=float(pnl.min()) if n_trades else float("nan"),
        exposure=exposure,
        n_bars=int(len(equity)),
        n_days=int(len(r)),
        periods_per_year=n,
        calendar=cal.value,
    )


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
