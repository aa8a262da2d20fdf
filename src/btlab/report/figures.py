"""The report's charts: plotly figures built from the stored series and :mod:`btlab.backtest.metrics` functions.

Series are sent compactly: times as float64 milliseconds (or a start and a step for regular series), values as
float32, lines longer than :data:`MAX_LINE_POINTS` decimated for display only (:func:`downsample_minmax`).
plotly is imported inside the functions (it is only needed while a report is rendered).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.metrics import drawdown_curve, rolling_sharpe, rolling_volatility

#: Most points drawn per line trace (min and max of ``MAX_LINE_POINTS / 2`` slices: about one slice per pixel
#: of a full-width chart); the data itself is never reduced.
MAX_LINE_POINTS = 2_000

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_GREEN, _RED, _BLUE, _GREY, _BENCH = "#1a9850", "#d73027", "#1f77b4", "#555555", "#8c8c8c"
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False}


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


def figure_html(fig: Any, div_id: str, height: int, top: int = 40) -> str:
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


def equity_figure(equity: pd.DataFrame, bench: pd.Series | None, start_value: float,
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


def rolling_figure(r: pd.Series, b: pd.Series | None, window: int, periods: int) -> Any:
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


def tracking_figure(series: pd.DataFrame, index: str, window: int) -> tuple[Any, bool]:
    """The strategy against the index, both rebased to 1 (top), and the per-bar active return with the rolling
    tracking error (bottom); ``series`` = :func:`btlab.backtest.tracking.tracking_series`."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.6, 0.4],
                        specs=[[{}], [{"secondary_y": True}]])
    ts = series.index
    traces = [
        (_line(ts, series["index"], name=f"{index} (rebased)", line={"color": _BENCH, "width": 1.2},
               hovertemplate=f"{index} %{{y:.4f}}<extra></extra>"), 1, False),
        (_line(ts, series["portfolio"], name="strategy (rebased)", line={"color": _BLUE, "width": 1.5},
               hovertemplate="%{x|%Y-%m-%d} UTC<br>strategy %{y:.4f}<extra></extra>"), 1, False),
        (_line(ts, series["active"], name="active return (per bar)", line={"color": _GREY, "width": 0.8},
               hovertemplate="active %{y:.3%}<extra></extra>"), 2, False),
        (_line(ts, series["rolling_tracking_error"], name=f"rolling tracking error ({window} bars, ann.)",
               line={"color": _RED, "width": 1.5}, hovertemplate="tracking error %{y:.2%}<extra></extra>"), 2, True),
    ]
    reduced = False
    for (trace, was_reduced), row, secondary in traces:
        reduced |= was_reduced
        fig.add_trace(trace, row=row, col=1, **({"secondary_y": secondary} if row == 2 else {}))
    fig.update_yaxes(title_text="rebased (1 = close before the first fill)", tickformat=".2f", row=1, col=1)
    fig.update_yaxes(title_text="active return", tickformat=".1%", row=2, col=1, secondary_y=False)
    fig.update_yaxes(title_text="tracking error", tickformat=".1%", rangemode="tozero", row=2, col=1,
                     secondary_y=True)
    fig.update_xaxes(type="date")
    fig.update_layout(hovermode="x unified", legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"})
    return fig, reduced


def histogram_figure(r: pd.Series, b: pd.Series | None, var: float | None, cvar: float | None) -> Any:
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


def price_figure(bars: pd.DataFrame, trades: pd.DataFrame, symbol: str) -> tuple[Any, bool]:
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


def yearly_figure(table: pd.DataFrame) -> Any:
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


def monthly_figure(table: pd.DataFrame) -> Any:
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


#: Colours of the state timeline: known regime names, then a cycle for any other state a strategy records.
STATE_COLORS: dict[str, str] = {"bullish": _GREEN, "neutral": "#bdbdbd", "bearish": _RED}
_OTHER_STATE_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def state_segments(states: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """The time each machine spent in each state: one row per recorded change, ``machine, state, start, stop``.

    ``states``: ``ts`` (UTC, the change's time), ``machine``, ``to_state`` (as :meth:`btlab.store.Store.read_states`
    returns them); a segment runs from its change to the machine's next change, the last one to ``end`` (the close
    of the run's last bar). Sorted by machine (first appearance) then start.
    """
    if states is None or not len(states):
        return pd.DataFrame({"machine": [], "state": [], "start": pd.DatetimeIndex([], tz="UTC"),
                             "stop": pd.DatetimeIndex([], tz="UTC")})
    frame = states.assign(ts=pd.to_datetime(states["ts"], utc=True)).sort_values("ts", kind="stable")
    out = []
    for machine in pd.unique(frame["machine"]):
        rows = frame[frame["machine"] == machine]
        start = pd.DatetimeIndex(rows["ts"])
        stop = start[1:].append(pd.DatetimeIndex([max(pd.Timestamp(end), start[-1])]))
        out.append(pd.DataFrame({"machine": machine, "state": rows["to_state"].to_numpy(), "start": start,
                                 "stop": stop}))
    return pd.concat(out, ignore_index=True)


def states_figure(bars: pd.DataFrame, states: pd.DataFrame, symbol: str, end: pd.Timestamp) -> tuple[Any, bool]:
    """Close price (top) over one lane per state machine (bottom), each lane coloured by the machine's state.

    Lanes are horizontal bars, one per :func:`state_segments` row, one trace per state (legend); times UTC. Returns
    ``(figure, whether the price line was decimated)``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    segments = state_segments(states, end)
    machines = list(pd.unique(segments["machine"]))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        row_heights=[0.72, 0.28] if len(machines) <= 3 else [0.6, 0.4])
    line, reduced = _line(bars["ts"], bars["close"].astype("float64").to_numpy(), name=f"{symbol} close",
                          line={"color": _GREY, "width": 1},
                          hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>close %{y:,.2f}<extra></extra>")
    fig.add_trace(line, row=1, col=1)
    others = iter(_OTHER_STATE_COLORS * (1 + len(segments) // len(_OTHER_STATE_COLORS)))
    for state in pd.unique(segments["state"]):
        sel = segments[segments["state"] == state]
        start, stop = _ms(sel["start"]), _ms(sel["stop"])
        fig.add_trace(
            go.Bar(
                base=start, x=stop - start, y=sel["machine"].astype(str).tolist(), orientation="h",
                name=str(state), marker={"color": STATE_COLORS.get(str(state)) or next(others), "line": {"width": 0}},
                customdata=np.stack([sel["start"].dt.strftime("%Y-%m-%d %H:%M"),
                                     sel["stop"].dt.strftime("%Y-%m-%d %H:%M")], axis=1),
                hovertemplate=(f"%{{y}}: {state}<br>from %{{customdata[0]}} UTC<br>"
                               "to %{customdata[1]} UTC<extra></extra>"),
            ),
            row=2, col=1,
        )
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="machine", type="category", categoryorder="array", categoryarray=machines[::-1],
                     row=2, col=1)
    fig.update_xaxes(type="date")
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_layout(barmode="overlay", bargap=0.15, legend={"orientation": "h", "y": 1.02, "x": 0,
                                                              "yanchor": "bottom"})
    return fig, reduced
