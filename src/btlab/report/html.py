"""HTML tearsheet of one backtest run: one self-contained file, no network needed to open it.

The report shows what the store holds about a run; it never computes metrics: the scalars are read from the run
row (computed at the end of the run by :func:`btlab.backtest.metrics.compute_metrics`), and every series drawn
or tabulated comes from a pure function of :mod:`btlab.backtest.metrics` applied to the stored equity, trades,
orders and bars (``daily_returns``, ``benchmark_equity``, ``drawdown_curve``, ``drawdown_periods``,
``rolling_sharpe``, ``rolling_volatility``, ``yearly_returns``, ``monthly_returns``, ``open_positions``).

Layout, top to bottom:

* header: strategy, parameters, instrument(s), timeframe, data range, cash, commission, benchmark, run id,
  status, versions, hashes; a failed run shows its error in a red box first, an unfinished one a yellow note;
* warnings: the run row's ``warnings`` and its counts of rejected / margin / canceled orders (when recorded; for
  older runs the counts are taken from the stored orders);
* metrics cards (returns, benchmark, risk, daily returns, trades, sample; fractions as percent, money in the
  account currency, ``NaN`` as "—") and the conventions (:data:`~btlab.backtest.metrics.CONVENTIONS` and
  :data:`~btlab.backtest.metrics.EXTENDED_CONVENTIONS`);
* the position still open at the end (rebuilt from the orders, valued at the last close), and why it is not a
  closed trade;
* equity against the buy-and-hold benchmark (linear/log), drawdowns of both underneath;
* the 5 deepest drawdown periods (peak, trough, recovery, depth, lengths);
* rolling Sharpe and rolling volatility (window: :func:`~btlab.backtest.metrics.rolling_window`, 90 daily
  returns for crypto, 63 sessions for equities), strategy and benchmark;
* histogram of daily returns (strategy and benchmark) with the VaR/CVaR 95 % of the run row;
* yearly returns against the benchmark; monthly returns heatmap;
* close price with trade entries and exits, per instrument;
* all closed trades: a table paginated and sortable by any column (plain JavaScript inside the file).

Size: plotly.js is embedded once, inline: the official "cartesian" partial bundle (1.5 MB, :data:`PLOTLY_JS`,
see ``vendor/README.md``) instead of the 4.8 MB full bundle. Series are sent compactly: times as float64
milliseconds (or a start and a step for regular daily series), values as float32 (7 significant digits, far
below what a chart can show), as plotly's base64 typed arrays. Lines longer than :data:`MAX_LINE_POINTS` are
decimated for display only, keeping the minimum and the maximum of each of ``MAX_LINE_POINTS / 2`` equal slices:
with at least one slice per horizontal pixel of the chart the drawn line is the same, and peaks, troughs and the
max drawdown stay exact. Trade markers, tables and metrics are never reduced. The demo run (35,032 hourly bars,
700 trades) gives a file of 1.88 MB (5.6 MB before).

All times are UTC. All text from the run (parameters, errors, symbols, warnings) is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import btlab
from btlab.backtest.metrics import (
    CONVENTIONS,
    benchmark_equity,
    daily_returns,
    drawdown_curve,
    drawdown_periods,
    extended_conventions,
    monthly_returns,
    open_positions,
    rolling_sharpe,
    rolling_volatility,
    rolling_window,
    yearly_returns,
)
from btlab.errors import BtlabError
from btlab.model.instrument import Calendar
from btlab.report.format import METRIC_SECTIONS as _METRIC_SECTIONS
from btlab.report.format import format_value
from btlab.report.format import to_number as _number

#: Most points drawn per line trace (min and max of ``MAX_LINE_POINTS / 2`` slices: about one slice per pixel
#: of a full-width chart); the data itself is never reduced.
MAX_LINE_POINTS = 2_000

#: The plotly.js bundle embedded in every report (MIT; see vendor/README.md).
PLOTLY_JS = Path(__file__).with_name("vendor") / "plotly-cartesian-4.1.1.min.js"

#: Closed trades per page of the trades table (the reader can pick 25, 50, 100 or all).
TRADES_PAGE_SIZE = 25

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_GREEN, _RED, _BLUE, _GREY, _BENCH = "#1a9850", "#d73027", "#1f77b4", "#555555", "#8c8c8c"
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False}
_DAY_MS = 86_400_000


# ---- formatting --------------------------------------------------------------------------------------------------
def _fmt_ts(value: Any) -> str:
    """A UTC time as ``YYYY-MM-DD HH:MM`` (``:SS`` when not whole minutes), "—" when missing."""
    if value is None:
        return "—"
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if ts is pd.NaT or pd.isna(ts):
        return "—"
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts.second or ts.microsecond or ts.nanosecond:
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    return ts.strftime("%Y-%m-%d %H:%M")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def size_decimals(sizes: Any, max_decimals: int = 8) -> int:
    """Decimals that show every size of a column exactly, at most ``max_decimals`` (one precision per column)."""
    v = np.abs(np.asarray(sizes, dtype="float64"))
    v = v[np.isfinite(v)]
    for d in range(max_decimals + 1):
        if np.all(np.abs(np.round(v, d) - v) <= 1e-9 * np.maximum(1.0, v)):
            return d
    return max_decimals


def price_decimals(prices: Any) -> int:
    """Decimals for a price column: 6 significant digits of its median price, at least 2 (BTC 42,283.58 -> 2)."""
    v = np.abs(np.asarray(prices, dtype="float64"))
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return 2
    a = float(np.median(v))
    return max(2, min(10, 5 - int(math.floor(math.log10(a)))))


def _fmt_num(value: Any, decimals: int) -> str:
    v = _number(value)
    if v is None or math.isnan(v):
        return "—"
    text = f"{v:,.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text[1:].replace(",", "")) == 0 else text


def _signed_class(value: Any) -> str:
    v = _number(value)
    return "pos" if v is not None and v > 0 else "neg" if v is not None and v < 0 else ""


# ---- data helpers ------------------------------------------------------------------------------------------------
def _with_ts(frame: pd.DataFrame | None, columns: Sequence[str] = ()) -> pd.DataFrame:
    """A copy of ``frame`` with a ``ts`` column of UTC times (taken from the index if needed), sorted by it."""
    if frame is None:
        return pd.DataFrame({"ts": pd.Series(dtype="datetime64[ns, UTC]"), **{c: pd.Series(dtype="float64")
                                                                               for c in columns}})
    out = frame.copy()
    if "ts" not in out.columns:
        out = out.reset_index()
        if "ts" not in out.columns:
            out = out.rename(columns={out.columns[0]: "ts"})
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def _ms(ts: Any) -> np.ndarray:
    """UTC times as float64 milliseconds since the epoch (plotly date axes take numbers as ms)."""
    idx = pd.DatetimeIndex(ts)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return (idx.asi8 // 1_000_000).astype("float64")


def _f4(values: Any) -> np.ndarray:
    """Values as float32 for display (sent as a base64 typed array: 4 bytes a value)."""
    return np.asarray(values, dtype="float32")


def _x(ts: Any) -> dict[str, Any]:
    """Plotly x arguments for times: ``x0``/``dx`` when evenly spaced (nothing to send), else ms values."""
    ms = _ms(ts)
    if len(ms) > 2:
        step = np.diff(ms)
        if step[0] > 0 and np.all(step == step[0]):
            return {"x0": float(ms[0]), "dx": float(step[0])}
    return {"x": ms}


def downsample_minmax(x: np.ndarray, y: np.ndarray, max_points: int = MAX_LINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a line for display: the min and max point of each of ``max_points // 2`` equal slices, in order.

    The first and last points are always kept. Series with at most ``max_points`` points are returned unchanged.
    NaN values count as neither min nor max (a slice of only NaN keeps its first point).
    """
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max(1, max_points // 2)
    bucket = (np.arange(n) * buckets) // n  # non-decreasing slice id per point
    yy = np.asarray(y, dtype="float64")
    isnan = np.isnan(yy)
    order = np.lexsort((np.where(isnan, np.inf, yy), bucket))  # by slice, then by value, NaN last
    sb = bucket[order]
    first = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
    last = np.r_[first[1:] - 1, n - 1]
    last = np.maximum(last - np.add.reduceat(isnan[order].astype(np.int64), first), first)  # last non-NaN
    keep = np.unique(np.concatenate((order[first], order[last], [0, n - 1])))
    return x[keep], y[keep]


def _symbols(run: Mapping[str, Any]) -> list[str]:
    return [s.strip() for s in str(run.get("symbols") or "").split(",") if s.strip()]


def _currency(run: Mapping[str, Any]) -> str | None:
    symbol = _first_symbol(run)
    if symbol and "/" in symbol:
        quote = symbol.split("/", 1)[1]
        return quote.split(":", 1)[0] or None
    return None


def _first_symbol(run: Mapping[str, Any]) -> str | None:
    symbols = _symbols(run)
    return symbols[0] if symbols else None


def _metric(run: Mapping[str, Any], key: str) -> Any:
    metrics = run.get("metrics")
    if isinstance(metrics, Mapping) and key in metrics:
        return metrics[key]
    return run.get(key)  # headline columns of bt_runs


def _calendar(run: Mapping[str, Any]) -> Calendar:
    try:
        return Calendar(str(_metric(run, "calendar") or run.get("calendar") or "crypto"))
    except ValueError:
        return Calendar.crypto


def conventions_sentence(run: Mapping[str, Any]) -> str:
    """The metrics conventions sentence for the run's calendar (annualization from its metrics or calendar)."""
    periods = _number(_metric(run, "periods_per_year"))
    calendar = _metric(run, "calendar") or run.get("calendar") or "crypto"
    try:
        cal = Calendar(str(calendar))
        calendar_name = cal.value
        if periods is None or math.isnan(periods):
            periods = cal.periods_per_year
    except ValueError:
        calendar_name = str(calendar)
        if periods is None or math.isnan(periods):
            periods = Calendar.crypto.periods_per_year
    return CONVENTIONS.format(periods=int(periods), calendar=calendar_name)


def _sessions(run: Mapping[str, Any]) -> str | None:
    """The exchange calendar whose sessions cut the run's daily returns (None: UTC days), from its config."""
    config = run.get("config")
    code = config.get("venue_calendar") if isinstance(config, Mapping) else None
    return None if not code or code == "24/7" else str(code)


def _daily(value: pd.Series, start_value: float, sessions: str | None = None) -> pd.Series:
    """The run's daily returns as the metrics define them (one place, so the charts follow ``daily_returns``)."""
    return daily_returns(value, start_value, sessions)


# ---- figures -----------------------------------------------------------------------------------------------------
def _template() -> Any:
    """A small plotly template (white, light grid): the stock ones add about 7 kB to every chart."""
    import plotly.graph_objects as go

    axis = {"gridcolor": "#EBF0F8", "linecolor": "#d0d7de", "zerolinecolor": "#d0d7de", "automargin": True,
            "ticks": ""}
    return go.layout.Template(layout={
        "autotypenumbers": "strict",  # "2021" stays a category label, never a number
        "font": {"color": "#2a3f5f", "size": 12}, "paper_bgcolor": "white", "plot_bgcolor": "white",
        "hoverlabel": {"align": "left"}, "xaxis": axis, "yaxis": axis,
    })


def _figure_html(fig: Any, div_id: str, height: int, top: int = 40) -> str:
    import plotly.io as pio

    fig.layout.template = _template()
    fig.update_layout(height=height, margin={"l": 70, "r": 30, "t": top, "b": 40})
    return pio.to_html(
        fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOTLY_CONFIG,
        default_width="100%", default_height=f"{height}px",
    )


def _line(ts: Any, values: Any, **kwargs: Any) -> Any:
    """A decimated line trace (x as ms, y as float32)."""
    import plotly.graph_objects as go

    x, y = downsample_minmax(_ms(ts), np.asarray(values, dtype="float64"))
    return go.Scatter(x=x, y=_f4(y), mode="lines", **kwargs), len(x) < len(values)


def _scale_buttons(axis: str, y: float = 1.0) -> dict[str, Any]:
    return {
        "type": "buttons", "direction": "left", "x": 0.8, "xanchor": "right", "y": y, "yanchor": "bottom",
        "showactive": True, "pad": {"t": 0, "b": 0}, "buttons": [
            {"label": "linear", "method": "relayout", "args": [{f"{axis}.type": "linear"}]},
            {"label": "log", "method": "relayout", "args": [{f"{axis}.type": "log"}]},
        ],
    }


def _equity_figure(equity: pd.DataFrame, bench: pd.Series | None, start_value: float,
                   currency: str | None) -> tuple[Any, bool]:
    from plotly.subplots import make_subplots

    ts = equity["ts"]
    value = equity["value"].astype("float64").to_numpy()
    if "drawdown" in equity and equity["drawdown"].notna().any():
        dd = equity["drawdown"].astype("float64").to_numpy()
    else:  # not stored: the same definition, from the values
        dd = drawdown_curve(equity.set_index("ts")["value"].astype("float64"), start_value).to_numpy()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.7, 0.3])
    reduced = False
    traces = []
    if bench is not None:
        bench_dd = drawdown_curve(bench, start_value).to_numpy()
        traces += [
            (_line(ts, bench.to_numpy(), name="buy and hold", line={"color": _BENCH, "width": 1.2},
                   hovertemplate="benchmark %{y:,.2f}<extra></extra>"), 1),
            (_line(ts, bench_dd, name="buy and hold drawdown", showlegend=False,
                   line={"color": _BENCH, "width": 1}, hovertemplate="benchmark dd %{y:.2%}<extra></extra>"), 2),
        ]
    traces += [
        (_line(ts, value, name="strategy", line={"color": _BLUE, "width": 1.5},
               hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>equity %{y:,.2f}<extra></extra>"), 1),
        (_line(ts, dd, name="strategy drawdown", showlegend=False, fill="tozeroy",
               line={"color": _RED, "width": 1}, fillcolor="rgba(215,48,39,0.3)",
               hovertemplate="drawdown %{y:.2%}<extra></extra>"), 2),
    ]
    for (trace, was_reduced), row in traces:
        reduced |= was_reduced
        fig.add_trace(trace, row=row, col=1)
    finite = dd[np.isfinite(dd)]
    low = float(finite.min()) if finite.size else 0.0
    if bench is not None:
        low = min(low, float(np.nanmin(bench_dd)))
    low = low * 1.08 if low < -1e-4 else -0.01
    fig.update_yaxes(title_text=f"equity ({currency})" if currency else "equity", tickformat=",.2~f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%" if low < -0.05 else ".1%", range=[low, -low * 0.03],
                     row=2, col=1)
    fig.update_xaxes(type="date")
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_layout(hovermode="x unified", updatemenus=[_scale_buttons("yaxis", 1.02)],
                      legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"})
    return fig, reduced


def _rolling_figure(r: pd.Series, b: pd.Series | None, window: int, periods: int) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    x = _x(r.index)
    series = [("strategy", r, _BLUE, 1.5)] + ([("buy and hold", b, _BENCH, 1.2)] if b is not None else [])
    for name, returns, color, width in series:
        for row, values, fmt in ((1, rolling_sharpe(returns, window, periods), ".2f"),
                                 (2, rolling_volatility(returns, window, periods), ".1%")):
            fig.add_trace(
                go.Scatter(y=_f4(values.to_numpy()), **x, mode="lines", name=name, legendgroup=name,
                           showlegend=row == 1, line={"color": color, "width": width},
                           hovertemplate=f"{name} %{{y:{fmt}}}<extra></extra>"),
                row=row, col=1,
            )
    fig.add_hline(y=0, line={"color": "#999", "width": 1}, row=1, col=1)
    fig.update_yaxes(title_text=f"Sharpe ({window} d)", tickformat=".1f", row=1, col=1)
    fig.update_yaxes(title_text=f"volatility ({window} d)", tickformat=".0%", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(type="date")
    fig.update_layout(hovermode="x unified", legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"})
    return fig


def _histogram_figure(r: pd.Series, b: pd.Series | None, var: float | None, cvar: float | None) -> Any:
    import plotly.graph_objects as go

    values = [r.to_numpy()] + ([b.to_numpy()] if b is not None else [])
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-0.01, 0.01)
    width = max((hi - lo) / 150.0, 1e-4)
    step = 10 ** math.floor(math.log10(width))  # a round bin width: 1, 2 or 5 x 10^k
    width = min((m * step for m in (1, 2, 5, 10) if m * step >= width), default=width)
    bins = {"start": math.floor(lo / width) * width, "end": math.ceil(hi / width) * width + width, "size": width}
    fig = go.Figure()
    if b is not None:
        fig.add_trace(go.Histogram(x=_f4(b.to_numpy()), xbins=bins, name="buy and hold", marker_color=_BENCH,
                                   opacity=0.45, hovertemplate="benchmark %{x}: %{y} days<extra></extra>"))
    fig.add_trace(go.Histogram(x=_f4(r.to_numpy()), xbins=bins, name="strategy", marker_color=_BLUE, opacity=0.7,
                               hovertemplate="strategy %{x}: %{y} days<extra></extra>"))
    for value, label, dash, side in ((var, "VaR 95 %", "dash", "top right"), (cvar, "CVaR 95 %", "dot", "top left")):
        if value is not None and math.isfinite(value):
            fig.add_vline(x=value, line={"color": _RED, "width": 1.5, "dash": dash},
                          annotation={"text": f"{label} {value:.2%}", "font": {"size": 11, "color": _RED}},
                          annotation_position=side)
    fig.update_layout(barmode="overlay", bargap=0.02,
                      legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"})
    fig.update_xaxes(title_text="daily return", tickformat=".0%" if hi - lo > 0.1 else ".1%")
    fig.update_yaxes(title_text="days")
    return fig


def _price_figure(bars: pd.DataFrame, trades: pd.DataFrame, symbol: str) -> tuple[Any, bool]:
    import plotly.graph_objects as go

    close = bars["close"].astype("float64").to_numpy()
    line, reduced = _line(bars["ts"], close, name=f"{symbol} close", line={"color": _GREY, "width": 1},
                          hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>close %{y:,.2f}<extra></extra>")
    fig = go.Figure(line)
    if len(trades):
        direction = trades["direction"].astype(str).str.lower()
        for side, marker, color in (("long", "triangle-up", _GREEN), ("short", "triangle-down", _RED)):
            sel = trades[direction == side]
            if sel.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=_ms(pd.to_datetime(sel["entry_ts"], utc=True)), y=_f4(sel["entry_price"]),
                    mode="markers", name=f"{side} entry",
                    marker={"symbol": marker, "size": 8, "color": color, "line": {"width": 0.5, "color": "#222"}},
                    customdata=np.stack([sel["trade_ref"].to_numpy("float64"), sel["size"].to_numpy("float64")],
                                        axis=1).astype("float32"),
                    hovertemplate=(f"{side} entry #%{{customdata[0]}}<br>%{{x|%Y-%m-%d %H:%M}} UTC<br>"
                                   "price %{y:,.2f}<br>size %{customdata[1]:,.6g}<extra></extra>"),
                )
            )
        pnl_net = trades["pnl_net"].to_numpy("float64")
        fig.add_trace(
            go.Scatter(
                x=_ms(trades["ts"]), y=_f4(trades["exit_price"]), mode="markers", name="exit",
                marker={"symbol": "x", "size": 7, "color": np.where(pnl_net > 0, _GREEN, _RED).tolist(),
                        "line": {"width": 0.5, "color": "#222"}},
                customdata=np.stack([trades["trade_ref"].to_numpy("float64"), pnl_net], axis=1).astype("float32"),
                hovertemplate=("exit #%{customdata[0]}<br>%{x|%Y-%m-%d %H:%M} UTC<br>price %{y:,.2f}<br>"
                               "net PnL %{customdata[1]:,.2f}<extra></extra>"),
            )
        )
    fig.update_yaxes(title_text="price")
    fig.update_xaxes(title_text="time (UTC)", type="date")
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
                      updatemenus=[_scale_buttons("yaxis", 1.02)])
    return fig, reduced


def _yearly_figure(table: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    years = [str(y) for y in table.index]
    fig = go.Figure()
    for column, name, color in (("benchmark", "buy and hold", _BENCH), ("strategy", "strategy", _BLUE)):
        values = table[column].to_numpy(dtype="float64")
        if np.isnan(values).all():
            continue
        fig.add_trace(go.Bar(x=years, y=[None if math.isnan(v) else round(float(v), 5) for v in values],
                             name=name, marker_color=color, texttemplate="%{y:.1%}", textposition="outside",
                             hovertemplate=f"{name} %{{x}}: %{{y:.2%}}<extra></extra>"))
    fig.update_layout(barmode="group", bargap=0.25, showlegend=True,
                      legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"})
    fig.update_yaxes(tickformat=".0%", zeroline=True)
    fig.update_xaxes(type="category")
    return fig


def _monthly_figure(table: pd.DataFrame) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    years = [str(y) for y in table.index]
    months = table[list(range(1, 13))].to_numpy(dtype="float64")
    yearly = table[["year"]].to_numpy(dtype="float64")

    def text(z: np.ndarray) -> list[list[str]]:
        return [["" if math.isnan(v) else f"{v * 100:.1f}%" for v in row] for row in z]

    def bound(z: np.ndarray) -> float:
        finite = np.abs(z[np.isfinite(z)])
        return float(finite.max()) if finite.size and finite.max() > 0 else 0.01

    def rounded(z: np.ndarray) -> list[list[float | None]]:
        return [[None if math.isnan(v) else round(float(v), 5) for v in row] for row in z]

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.88, 0.12], horizontal_spacing=0.015)
    common = {"colorscale": "RdYlGn", "zmid": 0.0, "texttemplate": "%{text}", "xgap": 1, "ygap": 1,
              "hoverongaps": False}
    mb, yb = bound(months), bound(yearly)
    fig.add_trace(
        go.Heatmap(z=rounded(months), x=list(_MONTHS), y=years, text=text(months), zmin=-mb, zmax=mb, name="month",
                   colorbar={"title": {"text": "month"}, "x": 1.02,
                             "tickformat": ".0%" if mb >= 0.05 else ".1%"},
                   hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>", **common),
        row=1, col=1,
    )
    fig.add_trace(
        go.Heatmap(z=rounded(yearly), x=["Year"], y=years, text=text(yearly), zmin=-yb, zmax=yb, showscale=False,
                   name="year", hovertemplate="%{y}: %{z:.2%}<extra></extra>", **common),
        row=1, col=2,
    )
    fig.update_yaxes(autorange="reversed", type="category", showgrid=False)  # both columns: years top down
    fig.update_xaxes(type="category", side="top", showgrid=False)
    return fig


# ---- HTML pieces -------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
 background:#f6f7f9;color:#222;font-size:14px}
main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:14px;margin:0 0 6px;color:#444}
.sub{color:#555;margin:0 0 12px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:12px 16px;margin:10px 0}
.status{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;
 background:#888;vertical-align:middle}
.status.finished{background:#1a9850}.status.failed{background:#d73027}.status.running{background:#e6a100}
.error{background:#fdecea;border:2px solid #d73027;color:#611a15;border-radius:6px;padding:12px 16px;margin:12px 0}
.error h2{border:none;margin:0 0 6px;color:#b71c1c}
.error pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:13px}
.warn{background:#fff8e1;border:1px solid #e6a100;border-radius:6px;padding:8px 12px;margin:12px 0}
.warn h2{border:none;margin:0 0 6px;font-size:15px;color:#8a5300}.warn ul{margin:4px 0 0;padding-left:20px}
table{border-collapse:collapse}
.kv td,.kv th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
.kv th{color:#555;font-weight:500;white-space:nowrap}
.kv code{font-size:12px;word-break:break-all}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:10px}
.grid .card{margin:0}
.metrics td{padding:2px 0;font-variant-numeric:tabular-nums}
.metrics td.v{text-align:right;padding-left:12px;white-space:nowrap}
.metrics{width:100%}
.note{color:#555;font-size:12.5px;margin:6px 0}
.conventions{font-size:12.5px;color:#333;background:#eef3f8;border-left:3px solid #1f77b4;padding:8px 12px;
 margin:10px 0}
.conventions p{margin:0 0 4px}
.data{width:100%;font-size:12.5px;font-variant-numeric:tabular-nums;background:#fff}
.data th,.data td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
.data th{position:sticky;top:0;background:#f0f2f5;font-weight:600}
.data td.l,.data th.l{text-align:left}
.data th[data-col]{cursor:pointer;user-select:none}.data th[data-col]:hover{background:#e3e7ec}
.data th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
.data th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
.pager{display:flex;gap:8px;align-items:center;margin:8px 0;font-size:13px;flex-wrap:wrap}
.pager button{padding:2px 10px;border:1px solid #c9d1d9;background:#fff;border-radius:4px;cursor:pointer}
.pager button:disabled{opacity:.4;cursor:default}
.pager .info{color:#555;margin-left:auto}
.pos{color:#1a7f37}.neg{color:#c62828}
.empty{color:#666;font-style:italic;padding:12px 0}
.two{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.4fr);gap:10px;align-items:start}
.two .card{margin:0}
@media (max-width:900px){.two{grid-template-columns:1fr}}
footer{color:#888;font-size:12px;margin-top:32px}
"""

#: The trades table: paging and sorting over the JSON in ``#trades-data`` (plain JavaScript, no library).
_TRADES_JS = """
(function(){
var src=document.getElementById('trades-data');if(!src)return;
var D=JSON.parse(src.textContent),rows=D.rows,cols=D.cols,size=D.page,page=0,key=0,dir=1;
var table=document.getElementById('trades-table'),body=table.tBodies[0],heads=table.tHead.rows[0].cells;
var info=document.getElementById('trades-info'),sel=document.getElementById('trades-size');
function ts(s){return new Date(s*1000).toISOString().slice(0,16).replace('T',' ');}
function num(v,d){if(v===null)return '\\u2014';var t=Math.abs(v).toLocaleString('en-US',
 {minimumFractionDigits:d,maximumFractionDigits:d});return (v<0&&Number(t.replace(/,/g,''))!==0?'-':'')+t;}
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;',
 '"':'&quot;'}[c];});}
function cell(c,v){if(c.t==='ts')return v===null?'\\u2014':ts(v);if(c.t==='text')return esc(v);return num(v,c.d);}
function render(){var n=rows.length,per=size>0?size:n,pages=Math.max(1,Math.ceil(n/per));
 page=Math.min(page,pages-1);var a=page*per,b=Math.min(n,a+per),html=[];
 for(var i=a;i<b;i++){var r=rows[i],tds=[];for(var j=0;j<cols.length;j++){var c=cols[j],v=r[j],cls=[];
  if(c.t==='text'||c.t==='ts')cls.push('l');if(c.s&&v!==null&&v!==0)cls.push(v>0?'pos':'neg');
  tds.push('<td class="'+cls.join(' ')+'">'+cell(c,v)+'</td>');}html.push('<tr>'+tds.join('')+'</tr>');}
 body.innerHTML=html.join('');
 info.textContent='rows '+(n?a+1:0)+'\\u2013'+b+' of '+n+' \\u00b7 page '+(page+1)+' of '+pages;
 document.getElementById('trades-first').disabled=document.getElementById('trades-prev').disabled=page===0;
 document.getElementById('trades-next').disabled=document.getElementById('trades-last').disabled=page>=pages-1;}
function sortBy(k){dir=(k===key)?-dir:1;key=k;rows.sort(function(p,q){var x=p[k],y=q[k];
 if(x===y)return p[0]-q[0];if(x===null)return 1;if(y===null)return -1;return (x<y?-1:1)*dir;});
 for(var j=0;j<heads.length;j++)heads[j].removeAttribute('aria-sort');
 heads[k].setAttribute('aria-sort',dir>0?'ascending':'descending');page=0;render();}
for(var j=0;j<heads.length;j++)(function(k){heads[k].addEventListener('click',function(){sortBy(k);});})(j);
document.getElementById('trades-first').onclick=function(){page=0;render();};
document.getElementById('trades-prev').onclick=function(){page=Math.max(0,page-1);render();};
document.getElementById('trades-next').onclick=function(){page++;render();};
document.getElementById('trades-last').onclick=function(){page=1e9;render();};
sel.onchange=function(){size=Number(sel.value);page=0;render();};
heads[0].setAttribute('aria-sort','ascending');render();
})();
"""


def _header_html(run: Mapping[str, Any], bench_note: str) -> str:
    status = str(run.get("status") or "unknown")
    params = run.get("params")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            pass
    if isinstance(params, Mapping) and params:
        params_html = ", ".join(f"<code>{_e(k)}={_e(json.dumps(v) if not isinstance(v, str) else v)}</code>"
                                for k, v in params.items())
    elif isinstance(params, Mapping) or params is None:
        params_html = "<i>defaults</i>"
    else:
        params_html = f"<code>{_e(params)}</code>"
    instrument = f"{run.get('exchange') or '?'}:{run.get('symbols') or '?'}"
    commission = _number(run.get("commission"))
    rows = [
        ("Strategy", f"<b>{_e(run.get('strategy'))}</b>"),
        ("Parameters", params_html),
        ("Instrument", _e(instrument)),
        ("Timeframe", _e(run.get("timeframe"))),
        ("Data", f"{_e(_fmt_ts(run.get('data_from')))} → {_e(_fmt_ts(run.get('data_to')))} UTC "
                 f"(bar open times; {_e(format_value(run.get('bars'), 'int'))} bars, calendar "
                 f"{_e(run.get('calendar') or '—')})"),
        ("Cash", _e(format_value(run.get("cash"), "money", _currency(run)))),
        ("Commission", _e("—" if commission is None else f"{commission * 100:g} % of traded value")),
        ("Benchmark", _e(bench_note)),
        ("Run id", f"<code>{_e(run.get('run_id'))}</code>"),
        ("Started / finished", f"{_e(_fmt_ts(run.get('ts')))} / {_e(_fmt_ts(run.get('finished_at')))} UTC"),
        ("Status", f'<span class="status {_e(status)}">{_e(status)}</span>'),
        ("Versions", f"btlab {_e(run.get('btlab_version') or '—')}, Backtrader "
                     f"{_e(run.get('backtrader_version') or '—')}"),
        ("Config hash", f"<code>{_e(run.get('config_hash') or '—')}</code>"),
        ("Data hash", f"<code>{_e(run.get('data_hash') or '—')}</code>"),
    ]
    if run.get("sweep_id"):
        rows.insert(9, ("Sweep id", f"<code>{_e(run.get('sweep_id'))}</code>"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _status_html(run: Mapping[str, Any]) -> str:
    status = str(run.get("status") or "")
    if status == "failed":
        error = run.get("error") or "(no error message recorded)"
        return (f'<section class="error" id="run-error"><h2>Run failed</h2><pre>{_e(error)}</pre>'
                "<p class=\"note\">Whatever was recorded before the failure is shown below.</p></section>")
    if status and status != "finished":
        return (f'<div class="warn">Run status is <b>{_e(status)}</b>: the run has not finished; results below are '
                "partial.</div>")
    return ""


_ORDER_COUNTS = (  # (run row column, label, bt_orders statuses counted for runs recorded without the column)
    ("orders_rejected", "rejected by the broker", ("Rejected",)),
    ("orders_margin", "refused for lack of cash (Margin)", ("Margin",)),
    ("orders_canceled", "canceled or expired", ("Canceled", "Expired")),
)


def _warnings_html(run: Mapping[str, Any], orders: pd.DataFrame | None) -> str:
    """The run row's warnings and counts of orders that did not fill; empty when there is nothing to say."""
    items = [line.strip() for line in str(run.get("warnings") or "").splitlines() if line.strip()]
    counts = []
    for column, label, statuses in _ORDER_COUNTS:
        n = _number(run.get(column))
        source = ""
        if (n is None or math.isnan(n)) and orders is not None and len(orders) and "status" in orders:
            final = orders.sort_values("ts", kind="stable").groupby("order_ref").tail(1)
            n = float(final["status"].isin(statuses).sum())
            source = " (counted from the stored orders)"
        if n:
            counts.append(f'<li data-count="{_e(column)}"><b>{int(n):,d}</b> order(s) {_e(label)}{_e(source)}</li>')
    if not items and not counts:
        return ""
    lines = "".join(f"<li>{_e(line)}</li>" for line in items)
    return (f'<section class="warn" id="warnings"><h2>Warnings</h2><ul>{lines}{"".join(counts)}</ul>'
            '<p class="note">Orders that did not fill change the result: check the sizing, cash and commission '
            "(bt_orders holds every order's final state).</p></section>")


def _metrics_html(run: Mapping[str, Any]) -> str:
    metrics = run.get("metrics")
    has_any = isinstance(metrics, Mapping) and bool(metrics) or any(
        run.get(k) is not None for k in ("total_return", "sharpe", "max_drawdown"))
    if not has_any:
        return '<p class="empty">No metrics recorded for this run.</p>'
    currency = _currency(run)
    cards = []
    for title, items in _METRIC_SECTIONS:
        rows = "".join(
            f'<tr data-metric="{_e(key)}"><td>{_e(label)}</td>'
            f'<td class="v">{_e(format_value(_metric(run, key), unit, currency))}</td></tr>'
            for key, label, unit in items
        )
        cards.append(f'<div class="card"><h3>{_e(title)}</h3><table class="metrics">{rows}</table></div>')
    return f'<div class="grid">{"".join(cards)}</div>'


def _open_position_html(run: Mapping[str, Any], positions: pd.DataFrame | None, equity: pd.DataFrame,
                        currency: str | None) -> str:
    """The positions still open at the end of the run (not closed trades), or "" when flat."""
    last_pv = _number(equity["position_value"].iloc[-1]) if len(equity) and "position_value" in equity else None
    n_trades = _number(_metric(run, "n_trades"))
    closed_note = ("No closed trades: the position below was still open when the run ended, and a trade counts "
                   "(in the trades table and the trade statistics) only once it is closed; its result is in the "
                   "equity, the returns and the risk metrics."
                   if n_trades == 0 else
                   "This position is not in the closed trades or the trade statistics; its result is in the "
                   "equity, the returns and the risk metrics.")
    if positions is None or positions.empty:
        if last_pv:  # orders not available: say what the equity curve shows
            return (f'<section id="open-position"><h2>Open at the end</h2><div class="card"><p>A position worth '
                    f"<b>{_e(format_value(last_pv, 'money', currency))}</b> was open at the last bar (from the "
                    f'equity curve; no orders to rebuild it from).</p><p class="note">{_e(closed_note)}</p>'
                    "</div></section>")
        return ""
    size_d = size_decimals(positions["size"])
    rows = []
    for p in positions.itertuples():
        price_d = price_decimals([p.avg_price, p.last_price])
        rows.append(
            f'<tr><td class="l">{_e(p.symbol)}</td><td class="l">{"long" if p.size > 0 else "short"}</td>'
            f"<td>{_e(_fmt_num(p.size, size_d))}</td><td class=\"l\">{_e(_fmt_ts(p.opened))}</td>"
            f"<td>{_e(_fmt_num(p.avg_price, price_d))}</td><td>{_e(_fmt_num(p.last_price, price_d))}</td>"
            f"<td>{_e(_fmt_num(p.market_value, 2))}</td>"
            f'<td class="{_signed_class(p.unrealized_pnl)}">{_e(_fmt_num(p.unrealized_pnl, 2))}</td></tr>'
        )
    cur = f" ({_e(currency)})" if currency else ""
    pv = (f" The equity curve's position value at the last bar: {_e(format_value(last_pv, 'money', currency))}."
          if last_pv is not None else "")
    return (
        '<section id="open-position"><h2>Open at the end</h2><div class="card">'
        '<table class="data" id="open-positions"><thead><tr><th class="l">symbol</th><th class="l">side</th>'
        '<th>size</th><th class="l">opened (UTC)</th><th>average entry</th><th>last close</th>'
        f"<th>market value{cur}</th><th>unrealized PnL{cur}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p class="note">Rebuilt from the order fills (average fill price of the units held, commission '
        f"excluded), valued at the last bar's close.{pv}</p>"
        f'<p class="note" id="closed-trades-note">{_e(closed_note)}</p></div></section>'
    )


def _drawdown_table_html(periods: pd.DataFrame) -> str:
    if periods.empty:
        return '<p class="empty">The equity never fell below a previous peak.</p>'
    rows = []
    for i, p in enumerate(periods.itertuples(), 1):
        recovery = _fmt_ts(p.recovery) if not pd.isna(p.recovery) else "not recovered"
        rows.append(
            f"<tr><td>{i}</td><td class=\"l\">{_e(_fmt_ts(p.peak))}</td><td class=\"l\">{_e(_fmt_ts(p.trough))}</td>"
            f"<td class=\"l\">{_e(recovery)}</td><td class=\"neg\">{_e(format_value(p.depth, 'pct'))}</td>"
            f"<td>{_e(format_value(p.days_to_trough, 'days'))}</td>"
            f"<td>{_e(format_value(p.days_to_recovery, 'days'))}</td>"
            f"<td>{_e(format_value(p.days, 'days'))}</td><td>{_e(format_value(p.bars, 'int'))}</td></tr>"
        )
    return (
        '<table class="data" id="drawdown-table"><thead><tr><th>#</th><th class="l">peak (UTC)</th>'
        '<th class="l">trough</th><th class="l">recovery</th><th>depth</th><th>peak to trough</th>'
        "<th>trough to recovery</th><th>length</th><th>bars under water</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _yearly_table_html(table: pd.DataFrame) -> str:
    rows = []
    for year, row in table.iterrows():
        rows.append(
            f"<tr><td class=\"l\">{int(year)}</td>"
            + "".join(f'<td class="{_signed_class(row[c])}">{_e(format_value(row[c], "pct"))}</td>'
                      for c in ("strategy", "benchmark", "excess"))
            + "</tr>"
        )
    return ('<table class="data" id="yearly-table"><thead><tr><th class="l">year</th><th>strategy</th>'
            f"<th>buy and hold</th><th>difference</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no HTML)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def trades_table_data(trades: pd.DataFrame) -> dict[str, Any]:
    """The trades table's data: ``cols`` (label, type ``int|text|ts|num``, decimals, signed) and ``rows``.

    One precision per column: sizes with :func:`size_decimals` of the column, prices with
    :func:`price_decimals`, money with 2 decimals; times are UTC epoch seconds. Values are rounded to the shown
    precision (the stored trades keep full precision).
    """
    size_d = size_decimals(trades["size"]) if "size" in trades else 8
    price_d = price_decimals(pd.concat([trades.get("entry_price", pd.Series(dtype=float)),
                                        trades.get("exit_price", pd.Series(dtype=float))]))
    spec = [  # (column, label, type, decimals, signed)
        ("trade_ref", "#", "int", 0, False), ("symbol", "symbol", "text", 0, False),
        ("direction", "direction", "text", 0, False), ("size", "size", "num", size_d, False),
        ("entry_ts", "entry (UTC)", "ts", 0, False), ("entry_price", "entry price", "num", price_d, False),
        ("ts", "exit (UTC)", "ts", 0, False), ("exit_price", "exit price", "num", price_d, False),
        ("bars_held", "bars held", "int", 0, False), ("pnl", "PnL", "num", 2, True),
        ("commission", "commission", "num", 2, False), ("pnl_net", "net PnL", "num", 2, True),
    ]
    columns = []
    for col, label, kind, decimals, signed in spec:
        if col in trades:
            s = trades[col]
        else:
            s = pd.Series([None] * len(trades), index=trades.index, dtype=object)
        if kind == "ts":
            t = pd.to_datetime(s, utc=True)
            values = [None if pd.isna(v) else int(v.value // 1_000_000_000) for v in t]
        elif kind == "text":
            values = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in s]
        else:
            nums = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")
            values = [None if not math.isfinite(v) else (int(round(v)) if kind == "int" else round(float(v), decimals))
                      for v in nums]
        columns.append(({"label": label, "t": kind, "d": decimals, "s": signed}, values))
    rows = [list(r) for r in zip(*(v for _, v in columns))] if len(trades) else []
    return {"cols": [c for c, _ in columns], "rows": rows, "page": TRADES_PAGE_SIZE}


def _trades_html(trades: pd.DataFrame, currency: str | None, has_open: bool) -> str:
    if trades.empty:
        extra = " (a position was still open at the end: see above)" if has_open else ""
        return f'<p class="empty" id="no-trades">No closed trades{_e(extra)}.</p>'
    data = trades_table_data(trades)
    cur = f" ({_e(currency)})" if currency else ""
    heads = "".join(
        f'<th data-col="{j}" class="{"l" if c["t"] in ("text", "ts") else ""}">{_e(c["label"])}'
        f'{cur if c["label"] in ("PnL", "net PnL", "commission") else ""}</th>'
        for j, c in enumerate(data["cols"])
    )
    options = "".join(f'<option value="{n}"{" selected" if n == TRADES_PAGE_SIZE else ""}>{n or "all"}</option>'
                      for n in (25, 50, 100, 0))
    pager = (
        '<div class="pager"><button id="trades-first" type="button">«</button>'
        '<button id="trades-prev" type="button">‹ previous</button>'
        '<button id="trades-next" type="button">next ›</button><button id="trades-last" type="button">»</button>'
        f'<label>rows per page <select id="trades-size">{options}</select></label>'
        '<span class="info" id="trades-info"></span></div>'
    )
    return (
        f'<script type="application/json" id="trades-data">{_json_for_script(data)}</script>{pager}'
        f'<table class="data" id="trades-table"><thead><tr>{heads}</tr></thead><tbody></tbody></table>'
        '<p class="note">Click a column header to sort (again to reverse). Sizes in units of the instrument, one '
        "precision per column; prices and money rounded for display.</p>"
        f"<script>{_TRADES_JS}</script>"
    )


# ---- public API --------------------------------------------------------------------------------------------------
def _bars_by_symbol(bars: pd.DataFrame | Mapping[str, pd.DataFrame] | None, run: Mapping[str, Any]
                    ) -> dict[str, pd.DataFrame]:
    if bars is None:
        return {}
    if isinstance(bars, pd.DataFrame):
        return {_first_symbol(run) or "price": bars}
    return dict(bars)


def render_report(run: Mapping[str, Any], equity: pd.DataFrame | None, trades: pd.DataFrame | None,
                  bars: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
                  orders: pd.DataFrame | None = None) -> str:
    """Render the HTML tearsheet of one run as a single self-contained document.

    Args:
        run: the ``bt_runs`` row as returned by :meth:`btlab.store.Store.get_run` (``params`` and ``metrics`` as
            dicts; ``metrics`` = :meth:`btlab.backtest.metrics.Metrics.as_dict`, fractions plain, money in the
            account currency; NaN/inf allowed; ``warnings`` and ``orders_rejected``/``orders_margin``/
            ``orders_canceled`` shown when present). Missing keys are shown as "—". A run with
            ``status="failed"`` shows its ``error`` prominently.
        equity: :meth:`~btlab.store.Store.read_equity` -- ``ts`` (``datetime64[ns, UTC]``, bar open time, as a
            column or the index), ``value`` (currency), ``drawdown`` (<= 0 fraction; recomputed for display if
            absent), ``cash``, ``position_value``. May be empty or None (failed run): the charts built on it are
            then replaced by a note.
        trades: :meth:`~btlab.store.Store.read_trades` -- ``ts`` (exit time, UTC), ``trade_ref``, ``symbol``,
            ``direction`` (``long``/``short``), ``size``, ``entry_ts``, ``entry_price``, ``exit_price``, ``pnl``,
            ``pnl_net``, ``commission``, ``bars_held``. May be empty or None.
        bars: the bars of the run's instruments and range (:meth:`~btlab.store.Store.read_bars`: ``ts`` UTC open
            time, ``open``, ``close``), as one frame (the first symbol) or ``{symbol: frame}``. They draw the
            price charts and the buy-and-hold benchmark (:func:`~btlab.backtest.metrics.benchmark_equity`, on
            the equity's bar times); the benchmark is left out when a symbol of the run has no bars.
        orders: :meth:`~btlab.store.Store.read_orders` (optional): rebuilds the position open at the end
            (:func:`~btlab.backtest.metrics.open_positions`) and counts orders that did not fill for runs
            recorded without those counts.

    Returns:
        The HTML document (str). It embeds :data:`PLOTLY_JS` once (1.5 MB) and needs no network. Long lines are
        decimated for display only (see :data:`MAX_LINE_POINTS`).
    """
    d = _prepare(run, equity, trades, bars, orders)
    equity_html, reduced = _equity_sections(d)
    price_html, price_reduced = _price_sections(d)
    last_prices = {s: float(f["close"].iloc[-1]) for s, f in d.bars.items() if len(f)}
    positions = open_positions(d.orders, last_prices) if d.orders is not None else None
    open_html = _open_position_html(d.run, positions, d.equity, d.currency)
    trades_html = (f'<h2>Closed trades ({len(d.trades):,d})</h2><div class="card">'
                   f"{_trades_html(d.trades, d.currency, bool(open_html))}</div>")
    sections = [*equity_html, *_return_sections(d), *_calendar_sections(d), *price_html, trades_html]
    return _page(d, sections, open_html, reduced or price_reduced)


@dataclass
class _Inputs:
    """One report's inputs, prepared once: frames with a UTC ``ts`` column, the benchmark on the equity's times."""

    run: dict[str, Any]
    equity: pd.DataFrame
    trades: pd.DataFrame
    bars: dict[str, pd.DataFrame]
    orders: pd.DataFrame | None
    symbols: list[str]
    currency: str | None
    cal: Calendar
    start_value: float | None
    value: pd.Series | None  # equity values indexed by time; None without a usable equity curve
    bench: pd.Series | None
    bench_note: str
    sessions: str | None = None  # exchange calendar of the daily returns (None: UTC days)


def _prepare(run: Mapping[str, Any], equity: pd.DataFrame | None, trades: pd.DataFrame | None,
             bars: pd.DataFrame | Mapping[str, pd.DataFrame] | None, orders: pd.DataFrame | None) -> _Inputs:
    run = dict(run)
    equity = _with_ts(equity, ("value", "cash", "drawdown", "position_value"))
    bars_map = {s: _with_ts(f, ("open", "high", "low", "close", "volume"))
                for s, f in _bars_by_symbol(bars, run).items()}
    symbols = _symbols(run) or list(bars_map) or ["price"]
    start_value = _number(_metric(run, "start_value")) or _number(run.get("cash"))
    has_equity = bool(len(equity)) and bool(equity["value"].notna().any()) and bool(start_value)
    value = equity.set_index("ts")["value"].astype("float64") if has_equity else None
    # the benchmark curve on the equity's bar times: the same function and inputs as the run's metrics
    bench = None
    note = (f"equal-weight buy and hold of {', '.join(symbols)}: the starting cash split equally, bought at the "
            "first bar's open, no costs, never rebalanced")
    usable = {s: bars_map[s] for s in symbols if s in bars_map and len(bars_map[s])}
    if value is not None and len(usable) == len(symbols):
        bench = benchmark_equity(usable, start_value, index=value.index)
    elif value is not None:
        note += f" (not drawn: no bars in the store for {', '.join(s for s in symbols if s not in usable)})"
    return _Inputs(
        run=run, equity=equity, trades=_with_ts(trades) if trades is not None else pd.DataFrame(), bars=bars_map,
        orders=_with_ts(orders) if orders is not None and len(orders) else None, symbols=symbols,
        currency=_currency(run), cal=_calendar(run), start_value=start_value, value=value, bench=bench,
        bench_note=note, sessions=_sessions(run),
    )


def _equity_sections(d: _Inputs) -> tuple[list[str], bool]:
    """Equity against the benchmark with both drawdowns, and the worst drawdowns table."""
    if d.value is None:
        return ['<h2>Equity and drawdown</h2><p class="empty">No equity recorded for this run.</p>'], False
    fig, reduced = _equity_figure(d.equity, d.bench, d.start_value, d.currency)
    periods = drawdown_periods(d.value, d.start_value, top=5)
    return [
        f'<h2>Equity and drawdown</h2><div class="card">{_figure_html(fig, "chart-equity", 580, top=50)}'
        f'<p class="note">Strategy (blue) against the buy-and-hold benchmark (grey): {_e(d.bench_note)}. '
        "Drawdown = value / running peak − 1, on every bar; the starting cash is the first peak.</p></div>",
        f'<h2>Worst drawdowns</h2><div class="card">{_drawdown_table_html(periods)}<p class="note">The 5 deepest '
        "drawdown periods, measured on every bar: from a peak to the first bar back at or above it (its recovery); "
        "length = peak to recovery, or to the last bar if not recovered.</p></div>",
    ], reduced


def _return_sections(d: _Inputs) -> list[str]:
    """Rolling Sharpe and volatility, and the histogram of daily returns (strategy and benchmark)."""
    r = _daily(d.value, d.start_value, d.sessions) if d.value is not None else None
    if r is None or not len(r):
        return []
    b = _daily(d.bench, d.start_value, d.sessions) if d.bench is not None else None
    window, periods = rolling_window(d.cal), d.cal.periods_per_year
    if len(r) >= window:
        chart = _figure_html(_rolling_figure(r, b, window, periods), "chart-rolling", 460, top=50)
    else:
        chart = (f'<p class="empty">{len(r):,d} daily returns: fewer than one {window}-day window, no rolling '
                 "statistics.</p>")
    var, cvar = _number(_metric(d.run, "var_95")), _number(_metric(d.run, "cvar_95"))
    hist = _figure_html(_histogram_figure(r, b, var, cvar), "chart-histogram", 380, top=50)
    unit = "days" if d.cal is Calendar.crypto else "sessions"
    return [
        f'<h2>Rolling Sharpe and volatility</h2><div class="card">{chart}<p class="note">Over trailing windows of '
        f"{window} daily returns ({unit}), annualized with {periods}, rf = 0, sample std; each point is labelled "
        "with its window's last day.</p></div>",
        f'<h2>Daily returns</h2><div class="card">{hist}<p class="note">Histogram of the daily returns (strategy '
        "and benchmark, same bins); the lines mark the strategy's historical one-day VaR and CVaR at 95 % from "
        "the metrics.</p></div>",
    ]


def _calendar_sections(d: _Inputs) -> list[str]:
    """Yearly returns against the benchmark (table and bars) and the monthly returns heatmap."""
    if d.value is None:
        return ['<h2>Monthly returns</h2><p class="empty">No equity recorded: no monthly returns.</p>']
    yearly = yearly_returns(d.value, d.start_value, d.bench, d.sessions)
    bars_chart = _figure_html(_yearly_figure(yearly), "chart-yearly", max(260, 180 + 12 * len(yearly)), top=50)
    table = monthly_returns(d.value, d.start_value, d.sessions)
    monthly = _figure_html(_monthly_figure(table), "chart-monthly", max(240, 150 + 32 * len(table)))
    return [
        '<h2>Yearly returns against buy and hold</h2><div class="two">'
        f'<div class="card">{_yearly_table_html(yearly)}<p class="note">Compounded daily returns within each '
        "calendar year (UTC) of the run; difference = strategy − buy and hold.</p></div>"
        f'<div class="card">{bars_chart}</div></div>',
        f'<h2>Monthly returns</h2><div class="card">{monthly}<p class="note">Compounded daily returns per calendar '
        "month (UTC), from <code>btlab.backtest.metrics.monthly_returns</code>; the Year column is the whole "
        "calendar year within the run. Blank: no days in the run.</p></div>",
    ]


def _price_sections(d: _Inputs) -> tuple[list[str], bool]:
    """Close price with the trades' entries and exits, one chart per instrument."""
    out, reduced = [], False
    for i, sym in enumerate(d.symbols):
        frame = d.bars.get(sym)
        trades = d.trades
        if len(trades) and "symbol" in trades and len(d.symbols) > 1:
            trades = trades[trades["symbol"] == sym]
        if frame is not None and len(frame) and frame["close"].notna().any():
            fig, was_reduced = _price_figure(frame, trades, sym)
            reduced |= was_reduced
            chart = _figure_html(fig, "chart-price" if i == 0 else f"chart-price-{i + 1}", 500, top=70)
        else:
            chart = '<p class="empty">No bars in the store for this run\'s instrument and range.</p>'
        out.append(
            f'<h2>Price and trades ({_e(sym)})</h2><div class="card">{chart}<p class="note">▲ long entry, ▼ short '
            "entry, ✕ exit (green: net win, red: net loss or break-even). Open positions at the end of the run are "
            "not trades yet.</p></div>")
    return out, reduced


def _page(d: _Inputs, sections: list[str], open_html: str, reduced: bool) -> str:
    """The whole document around the sections: head (CSS, plotly.js), title, status, warnings, header, metrics."""
    run = d.run
    title = (f"btlab report — {run.get('strategy') or '?'} on {run.get('exchange') or '?'}:"
             f"{run.get('symbols') or '?'} {run.get('timeframe') or ''} — {run.get('run_id') or ''}")
    ds_note = (f'<p class="note" id="downsample-note">Long lines are decimated for display to at most '
               f"{MAX_LINE_POINTS:,d} points (the minimum and maximum of {MAX_LINE_POINTS // 2:,d} equal time "
               "slices, about one per pixel, so peaks and troughs are exact); metrics and tables use every bar."
               "</p>") if reduced else ""
    conventions = (f'<div class="conventions" id="conventions"><p>{_e(conventions_sentence(run))}</p>'
                   f'<p id="conventions-extended">{_e(extended_conventions(d.cal))}</p></div>')
    body = (
        f"<main><h1>{_e(run.get('strategy') or 'run')} · {_e(', '.join(d.symbols))} · "
        f"{_e(run.get('timeframe') or '')}</h1>"
        f'<p class="sub">btlab backtest report · run <code>{_e(run.get("run_id"))}</code></p>'
        f"{_status_html(run)}{_warnings_html(run, d.orders)}"
        f'<div class="card">{_header_html(run, d.bench_note)}</div>'
        f"<h2>Metrics</h2>{_metrics_html(run)}{conventions}{open_html}"
        f"{ds_note}{''.join(sections)}"
        f"<footer>Generated by btlab {_e(btlab.__version__)} on {_e(_fmt_ts(pd.Timestamp.now(tz='UTC')))} UTC. "
        "All times UTC; bar times are open times. Charts: plotly.js (MIT), embedded.</footer></main>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{_plotly_js()}</script>'
        f"</head><body>{body}</body></html>\n"
    )


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    return PLOTLY_JS.read_text(encoding="utf-8")


class ReportWriteError(BtlabError, OSError):
    """The report cannot be written where asked: the path is a folder, or the file system refused (one line naming
    the path and why; exit code 1)."""


def report_path(run_id: str, path: str | Path | None = None) -> Path:
    """Where :func:`write_report` writes: ``path`` (``~`` expanded), or ``<settings.reports>/<run id>.html`` with
    the run id made a plain file name (characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``).

    Raises:
        ReportWriteError: the path is an existing folder.
    """
    if path is None:
        from btlab.settings import get_settings

        name = re.sub(r"[^A-Za-z0-9._-]", "_", str(run_id)).lstrip(".") or "run"
        path = get_settings().reports / f"{name}.html"
    out = Path(path).expanduser()
    if out.is_dir():
        raise ReportWriteError(f"cannot write the report to {out}: it is a folder; name a file, e.g. "
                               f"{out / (re.sub(r'[^A-Za-z0-9._-]', '_', str(run_id)) + '.html')}")
    return out


def write_file_atomically(out: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``out`` so that ``out`` is either its old self or complete, never partial.

    The text goes to a new private temporary file in ``out``'s folder (:func:`tempfile.mkstemp`: a fresh random
    name created exclusively, so a file or symlink planted there is never written through), is flushed to disk,
    gets the usual permissions (0666 minus the umask) and replaces ``out`` in one ``os.replace`` (a symlink AT
    ``out`` is replaced, not followed). On any failure the temporary file is removed and ``out`` is untouched.
    Missing parent folders are created.

    Raises:
        ReportWriteError: ``out`` is a folder, a parent is not a folder, or the file system refused (no space,
            no permission, ...).
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
            umask = os.umask(0o22)
            os.umask(umask)
            os.fchmod(fh.fileno(), 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ReportWriteError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
        raise


def write_report(store: Any, run_id: str, path: str | Path | None = None) -> Path:
    """Load a run from ``store``, render its report (:func:`render_report`) and write it to ``path``.

    Args:
        store: a :class:`btlab.store.Store` (or a store address string, opened and closed here).
        run_id: the run to report.
        path: output file; default ``<settings.reports>/<run_id>.html`` (``BTLAB_REPORTS``, default ``./reports``;
            see :func:`report_path`). Missing parent folders are created; an existing file is replaced atomically
            (:func:`write_file_atomically`: the file is complete or not there, never partial).

    Reads the run row, its equity, trades and orders, and the bars of each of the run's symbols (the
    comma-separated ``symbols``) on its exchange and timeframe with ``data_from <= ts <= data_to`` (``data_to``
    is the last bar's open time). A run without a recorded data range gets no price chart and no benchmark.

    Returns: the path written (UTF-8).

    Raises:
        RunNotFoundError: the store has no such run.
        StoreUnavailableError: the store cannot be reached.
        ReportWriteError: ``path`` is a folder, or the file cannot be written (checked for a folder before
            anything is read).
    """
    if isinstance(store, str):
        from btlab.store import open_store

        with open_store(store, read_only=True) as opened:
            return write_report(opened, run_id, path)
    out = report_path(run_id, path)
    run = store.get_run(run_id)
    equity = store.read_equity(run_id)
    trades = store.read_trades(run_id)
    orders = store.read_orders(run_id)
    bars: dict[str, pd.DataFrame] = {}
    data_from, data_to = run.get("data_from"), run.get("data_to")
    if run.get("exchange") and run.get("timeframe") and data_from is not None and data_to is not None:
        for symbol in _symbols(run):
            bars[symbol] = store.read_bars(
                exchange=run["exchange"], symbol=symbol, timeframe=run["timeframe"], start=data_from,
                end=pd.Timestamp(data_to) + pd.Timedelta(1, "us"),  # store precision is 1 µs
            )
    document = render_report(run, equity, trades, bars or None, orders)
    write_file_atomically(out, document)
    return out


__all__ = ["MAX_LINE_POINTS", "PLOTLY_JS", "TRADES_PAGE_SIZE", "ReportWriteError", "conventions_sentence",
           "downsample_minmax", "format_value", "price_decimals", "render_report", "report_path", "size_decimals",
           "trades_table_data", "write_file_atomically", "write_report"]
