"""HTML tearsheet of one backtest run: one self-contained file, no network needed to open it.

The report shows what the store holds about a run; it never computes metrics (they are read from the run row,
see :mod:`btlab.backtest.metrics`), only the monthly-returns table, which comes from
:func:`btlab.backtest.metrics.monthly_returns` on the stored equity curve.

Layout, top to bottom:

* header: strategy, parameters, instrument, timeframe, data range, run id, status, versions, hashes; a failed run
  shows its error in a red box first;
* metrics table (fractions as percent, money in the account currency, ``NaN`` as "—", infinity as "∞") and the
  metrics conventions sentence (:data:`btlab.backtest.metrics.CONVENTIONS`);
* chart 1: equity with the drawdown underneath (shared time axis);
* chart 2: close price with trade entries (▲ long, ▼ short) and exits (✕, green for a net win, red otherwise);
* chart 3: monthly returns heatmap (years x months, plus the whole-year column), diverging colours centred on 0;
* the table of all closed trades.

Charts are plotly figures; plotly.js is embedded once, inline, so the file works from ``file://`` offline.

Big runs: every line (equity, drawdown, close) is downsampled *for display only* to at most
:data:`MAX_LINE_POINTS` points, keeping the minimum and the maximum of each of ``MAX_LINE_POINTS / 2`` equal
slices of the series (so peaks, troughs and the max drawdown stay visible and exact), and drawn as SVG (no WebGL
needed). Trade markers and the trades table are never downsampled. A 58k-bar hourly run gives a file of a few MB,
most of it plotly.js. The metrics are not affected: they come from the run row, computed on every bar.

All times are UTC. All text from the run (parameters, errors, symbols) is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from btlab.backtest.metrics import CONVENTIONS, monthly_returns
from btlab.model.instrument import Calendar
from btlab.report.format import METRIC_SECTIONS as _METRIC_SECTIONS
from btlab.report.format import format_value
from btlab.report.format import to_number as _number

#: Most points drawn per line chart trace (see the module docstring); the data itself is never reduced.
MAX_LINE_POINTS = 5_000

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_GREEN, _RED, _BLUE, _GREY = "#1a9850", "#d73027", "#1f77b4", "#555555"
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False}


# ---- formatting --------------------------------------------------------------------------------------------------
def _fmt_price(value: Any) -> str:
    v = _number(value)
    if v is None or math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    a = abs(v)
    if a >= 1 or a == 0:
        decimals = max(2, 6 - len(str(int(a))))
        return f"{v:,.{decimals}f}"
    return f"{v:.4g}"


def _fmt_size(value: Any) -> str:
    v = _number(value)
    if v is None or math.isnan(v):
        return "—"
    text = f"{v:,.8f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


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


def _naive_utc(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC times as naive ``datetime64[ns]`` (plotly.js has no time zones; axes are labelled UTC)."""
    return pd.DatetimeIndex(ts).tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")


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


def _currency(run: Mapping[str, Any]) -> str | None:
    symbol = _first_symbol(run)
    if symbol and "/" in symbol:
        quote = symbol.split("/", 1)[1]
        return quote.split(":", 1)[0] or None
    return None


def _first_symbol(run: Mapping[str, Any]) -> str | None:
    symbols = run.get("symbols")
    if not symbols:
        return None
    first = str(symbols).split(",")[0].strip()
    return first or None


def _metric(run: Mapping[str, Any], key: str) -> Any:
    metrics = run.get("metrics")
    if isinstance(metrics, Mapping) and key in metrics:
        return metrics[key]
    return run.get(key)  # headline columns of bt_runs


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


# ---- figures -----------------------------------------------------------------------------------------------------
def _figure_html(fig: Any, div_id: str, height: int, top: int = 40) -> str:
    import plotly.io as pio

    fig.update_layout(height=height, margin={"l": 70, "r": 30, "t": top, "b": 40}, template="plotly_white")
    return pio.to_html(
        fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOTLY_CONFIG,
        default_width="100%", default_height=f"{height}px",
    )


def _equity_figure(equity: pd.DataFrame, currency: str | None) -> tuple[Any, bool]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = _naive_utc(equity["ts"])
    value = equity["value"].astype("float64").to_numpy()
    if "drawdown" in equity and equity["drawdown"].notna().any():
        dd = equity["drawdown"].astype("float64").to_numpy()
    else:  # not stored: show it from the values (display only; the metric comes from the run row)
        dd = value / np.maximum.accumulate(value) - 1.0
    xv, yv = downsample_minmax(x, value)
    xd, yd = downsample_minmax(x, dd)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.7, 0.3])
    fig.add_trace(
        go.Scatter(x=xv, y=yv, mode="lines", name="equity", line={"color": _BLUE, "width": 1.5},
                   hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>equity %{y:,.2f}<extra></extra>"),
        row=1, col=1,
    )
    fig.add_trace(
        go.Scatter(x=xd, y=yd, mode="lines", name="drawdown", fill="tozeroy", line={"color": _RED, "width": 1},
                   fillcolor="rgba(215,48,39,0.3)",
                   hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>drawdown %{y:.2%}<extra></extra>"),
        row=2, col=1,
    )
    finite = dd[np.isfinite(dd)]
    low = float(finite.min()) if finite.size else 0.0
    low = low * 1.08 if low < -1e-4 else -0.01
    fig.update_yaxes(title_text=f"equity ({currency})" if currency else "equity", tickformat=",.2~f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%" if low < -0.05 else ".1%", range=[low, -low * 0.03],
                     row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_layout(showlegend=False, hovermode="x unified")
    return fig, len(xv) < len(x) or len(xd) < len(x)


def _price_figure(bars: pd.DataFrame, trades: pd.DataFrame, symbol: str) -> tuple[Any, bool]:
    import plotly.graph_objects as go

    x = _naive_utc(bars["ts"])
    close = bars["close"].astype("float64").to_numpy()
    xc, yc = downsample_minmax(x, close)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=xc, y=yc, mode="lines", name=f"{symbol} close", line={"color": _GREY, "width": 1},
                   hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>close %{y:,}<extra></extra>")
    )
    if len(trades):
        direction = trades["direction"].astype(str).str.lower()
        for side, marker, color in (("long", "triangle-up", _GREEN), ("short", "triangle-down", _RED)):
            sel = trades[direction == side]
            if sel.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=_naive_utc(pd.to_datetime(sel["entry_ts"], utc=True)), y=sel["entry_price"].astype("float64"),
                    mode="markers", name=f"{side} entry",
                    marker={"symbol": marker, "size": 8, "color": color, "line": {"width": 0.5, "color": "#222"}},
                    customdata=np.stack([sel["trade_ref"].astype("float64").to_numpy(),
                                         sel["size"].astype("float64").to_numpy()], axis=1),
                    hovertemplate=(f"{side} entry #%{{customdata[0]}}<br>%{{x|%Y-%m-%d %H:%M}} UTC<br>"
                                   "price %{y:,}<br>size %{customdata[1]:,}<extra></extra>"),
                )
            )
        pnl_net = trades["pnl_net"].astype("float64").to_numpy()
        fig.add_trace(
            go.Scatter(
                x=_naive_utc(trades["ts"]), y=trades["exit_price"].astype("float64"), mode="markers", name="exit",
                marker={"symbol": "x", "size": 7, "color": np.where(pnl_net > 0, _GREEN, _RED).tolist(),
                        "line": {"width": 0.5, "color": "#222"}},
                customdata=np.stack([trades["trade_ref"].astype("float64").to_numpy(), pnl_net], axis=1),
                hovertemplate=("exit #%{customdata[0]}<br>%{x|%Y-%m-%d %H:%M} UTC<br>price %{y:,}<br>"
                               "net PnL %{customdata[1]:,.2f}<extra></extra>"),
            )
        )
    fig.update_yaxes(title_text="price")
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_layout(
        legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
        updatemenus=[{
            "type": "buttons", "direction": "left", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom",
            "showactive": True, "buttons": [
                {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
            ],
        }],
    )
    return fig, len(xc) < len(x)


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

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.88, 0.12], horizontal_spacing=0.015)
    common = {"colorscale": "RdYlGn", "zmid": 0.0, "texttemplate": "%{text}", "xgap": 1, "ygap": 1,
              "hoverongaps": False}
    mb, yb = bound(months), bound(yearly)
    fig.add_trace(
        go.Heatmap(z=months, x=list(_MONTHS), y=years, text=text(months), zmin=-mb, zmax=mb, name="month",
                   colorbar={"title": {"text": "month"}, "x": 1.02,
                             "tickformat": ".0%" if mb >= 0.05 else ".1%"},
                   hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>", **common),
        row=1, col=1,
    )
    fig.add_trace(
        go.Heatmap(z=yearly, x=["Year"], y=years, text=text(yearly), zmin=-yb, zmax=yb, showscale=False,
                   name="year", hovertemplate="%{y}: %{z:.2%}<extra></extra>", **common),
        row=1, col=2,
    )
    fig.update_yaxes(autorange="reversed", type="category", showgrid=False, row=1, col=1)
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
table{border-collapse:collapse}
.kv td,.kv th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
.kv th{color:#555;font-weight:500;white-space:nowrap}
.kv code{font-size:12px;word-break:break-all}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:10px}
.metrics td{padding:2px 0;font-variant-numeric:tabular-nums}.metrics td.v{text-align:right;padding-left:12px}
.metrics{width:100%}
.note{color:#555;font-size:12.5px;margin:6px 0}
.conventions{font-size:13px;color:#333;background:#eef3f8;border-left:3px solid #1f77b4;padding:8px 12px;margin:10px 0}
.trades{width:100%;font-size:12.5px;font-variant-numeric:tabular-nums;background:#fff}
.trades th,.trades td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
.trades th{position:sticky;top:0;background:#f0f2f5}
.trades td.l,.trades th.l{text-align:left}
.pos{color:#1a7f37}.neg{color:#c62828}
.empty{color:#666;font-style:italic;padding:12px 0}
footer{color:#888;font-size:12px;margin-top:32px}
"""


def _header_html(run: Mapping[str, Any]) -> str:
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
        ("Run id", f"<code>{_e(run.get('run_id'))}</code>"),
        ("Started / finished", f"{_e(_fmt_ts(run.get('ts')))} / {_e(_fmt_ts(run.get('finished_at')))} UTC"),
        ("Status", f'<span class="status {_e(status)}">{_e(status)}</span>'),
        ("Versions", f"btlab {_e(run.get('btlab_version') or '—')}, Backtrader "
                     f"{_e(run.get('backtrader_version') or '—')}"),
        ("Config hash", f"<code>{_e(run.get('config_hash') or '—')}</code>"),
        ("Data hash", f"<code>{_e(run.get('data_hash') or '—')}</code>"),
    ]
    if run.get("sweep_id"):
        rows.insert(8, ("Sweep id", f"<code>{_e(run.get('sweep_id'))}</code>"))
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


def _trades_html(trades: pd.DataFrame, currency: str | None) -> str:
    if trades.empty:
        return '<p class="empty" id="no-trades">No closed trades.</p>'
    head = ("<tr><th>#</th><th class=\"l\">direction</th><th>size</th><th class=\"l\">entry (UTC)</th>"
            "<th>entry price</th><th class=\"l\">exit (UTC)</th><th>exit price</th><th>bars held</th>"
            f"<th>PnL</th><th>commission</th><th>net PnL{(' (' + _e(currency) + ')') if currency else ''}</th></tr>")
    cols = {c: trades[c].tolist() if c in trades else [None] * len(trades) for c in (
        "trade_ref", "direction", "size", "entry_ts", "entry_price", "ts", "exit_price", "bars_held", "pnl",
        "commission", "pnl_net")}
    out = []
    for i in range(len(trades)):
        net = _number(cols["pnl_net"][i])
        cls = "pos" if net is not None and net > 0 else "neg" if net is not None and net < 0 else ""
        pnl = _number(cols["pnl"][i])
        pcls = "pos" if pnl is not None and pnl > 0 else "neg" if pnl is not None and pnl < 0 else ""
        out.append(
            "<tr>"
            f"<td>{_e(format_value(cols['trade_ref'][i], 'int'))}</td>"
            f"<td class=\"l\">{_e(cols['direction'][i])}</td>"
            f"<td>{_e(_fmt_size(cols['size'][i]))}</td>"
            f"<td class=\"l\">{_e(_fmt_ts(cols['entry_ts'][i]))}</td>"
            f"<td>{_e(_fmt_price(cols['entry_price'][i]))}</td>"
            f"<td class=\"l\">{_e(_fmt_ts(cols['ts'][i]))}</td>"
            f"<td>{_e(_fmt_price(cols['exit_price'][i]))}</td>"
            f"<td>{_e(format_value(cols['bars_held'][i], 'int'))}</td>"
            f"<td class=\"{pcls}\">{_e(format_value(pnl, 'money'))}</td>"
            f"<td>{_e(format_value(cols['commission'][i], 'money'))}</td>"
            f"<td class=\"{cls}\">{_e(format_value(net, 'money'))}</td>"
            "</tr>"
        )
    return f'<table class="trades" id="trades-table"><thead>{head}</thead><tbody>{"".join(out)}</tbody></table>'


# ---- public API --------------------------------------------------------------------------------------------------
def render_report(run: Mapping[str, Any], equity: pd.DataFrame | None, trades: pd.DataFrame | None,
                  bars: pd.DataFrame | None) -> str:
    """Render the HTML tearsheet of one run as a single self-contained document.

    Args:
        run: the ``bt_runs`` row as returned by :meth:`btlab.store.Store.get_run` (``params`` and ``metrics`` as
            dicts; ``metrics`` = :meth:`btlab.backtest.metrics.Metrics.as_dict`, fractions plain, money in the
            account currency; NaN/inf allowed). Missing keys are shown as "—". A run with ``status="failed"``
            shows its ``error`` prominently.
        equity: :meth:`~btlab.store.Store.read_equity` -- ``ts`` (``datetime64[ns, UTC]``, bar open time, as a
            column or the index), ``value`` (currency), ``drawdown`` (<= 0 fraction; recomputed for display if
            absent), ``cash``, ``position_value``. May be empty or None (failed run): the equity chart and the
            monthly heatmap are then replaced by a note.
        trades: :meth:`~btlab.store.Store.read_trades` -- ``ts`` (exit time, UTC), ``trade_ref``, ``direction``
            (``long``/``short``), ``size``, ``entry_ts``, ``entry_price``, ``exit_price``, ``pnl``, ``pnl_net``,
            ``commission``, ``bars_held``. May be empty or None: the price chart has no markers and the trades
            table says "No closed trades".
        bars: :meth:`~btlab.store.Store.read_bars` of the run's instrument and range -- ``ts`` (UTC open time),
            ``close`` (other OHLCV columns unused). May be empty or None: the price chart is replaced by a note.

    Returns:
        The HTML document (str, UTF-8 text). It embeds plotly.js inline once (about 4.7 MB) and needs no network.
        Long series are downsampled for display only (see :data:`MAX_LINE_POINTS`).
    """
    import plotly.offline

    run = dict(run)
    equity = _with_ts(equity, ("value", "cash", "drawdown", "position_value"))
    trades = _with_ts(trades) if trades is not None else pd.DataFrame()
    bars = _with_ts(bars, ("open", "high", "low", "close", "volume"))
    currency = _currency(run)
    symbol = _first_symbol(run) or "price"

    downsampled = False
    sections: list[str] = []

    # chart 1: equity + drawdown
    if len(equity) and equity["value"].notna().any():
        fig, ds = _equity_figure(equity, currency)
        downsampled |= ds
        chart1 = _figure_html(fig, "chart-equity", 560)
    else:
        chart1 = '<p class="empty">No equity recorded for this run.</p>'
    sections.append(f'<h2>Equity and drawdown</h2><div class="card">{chart1}</div>')

    # chart 2: price + trades
    if len(bars) and bars["close"].notna().any():
        fig, ds = _price_figure(bars, trades, symbol)
        downsampled |= ds
        chart2 = _figure_html(fig, "chart-price", 500, top=70)
    else:
        chart2 = '<p class="empty">No bars in the store for this run\'s instrument and range.</p>'
    sections.append(f"<h2>Price and trades ({_e(symbol)})</h2><div class=\"card\">{chart2}"
                    '<p class="note">▲ long entry, ▼ short entry, ✕ exit (green: net win, red: net loss or '
                    "break-even). Open positions at the end of the run are not trades yet.</p></div>")

    # chart 3: monthly returns
    start_value = _number(_metric(run, "start_value")) or _number(run.get("cash"))
    if len(equity) and equity["value"].notna().any() and start_value:
        table = monthly_returns(equity.set_index("ts")["value"].astype("float64"), start_value)
        fig = _monthly_figure(table)
        chart3 = _figure_html(fig, "chart-monthly", max(240, 150 + 32 * len(table)))
    else:
        chart3 = '<p class="empty">No equity recorded: no monthly returns.</p>'
    sections.append(
        f'<h2>Monthly returns</h2><div class="card">{chart3}<p class="note">Compounded daily returns per calendar '
        "month (UTC), from <code>btlab.backtest.metrics.monthly_returns</code>; the Year column is the whole "
        "calendar year within the run. Blank: no days in the run.</p></div>"
    )

    # trades table
    n = len(trades)
    sections.append(f"<h2>Closed trades ({n:,d})</h2>{_trades_html(trades, currency)}")

    title = (f"btlab report — {run.get('strategy') or '?'} on {run.get('exchange') or '?'}:"
             f"{run.get('symbols') or '?'} {run.get('timeframe') or ''} — {run.get('run_id') or ''}")
    ds_note = (f'<p class="note" id="downsample-note">Charts are downsampled for display to at most '
               f"{MAX_LINE_POINTS:,d} points per line (min and max of equal time slices, so peaks and troughs are "
               "kept); metrics and tables use every bar.</p>") if downsampled else ""
    body = (
        f"<main><h1>{_e(run.get('strategy') or 'run')} · {_e(symbol)} · {_e(run.get('timeframe') or '')}</h1>"
        f'<p class="sub">btlab backtest report · run <code>{_e(run.get("run_id"))}</code></p>'
        f"{_status_html(run)}"
        f'<div class="card">{_header_html(run)}</div>'
        f"<h2>Metrics</h2>{_metrics_html(run)}"
        f'<p class="conventions" id="conventions">{_e(conventions_sentence(run))}</p>'
        f"{ds_note}{''.join(sections)}"
        f"<footer>Generated by btlab {_e(_btlab_version())} on {_e(_fmt_ts(pd.Timestamp.now(tz='UTC')))} UTC. "
        "All times UTC; bar times are open times.</footer></main>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        f"</head><body>{body}</body></html>\n"
    )


def write_report(store: Any, run_id: str, path: str | Path | None = None) -> Path:
    """Load a run from ``store``, render its report (:func:`render_report`) and write it to ``path``.

    Args:
        store: a :class:`btlab.store.Store` (or a store address string, opened and closed here).
        run_id: the run to report.
        path: output file; default ``<settings.reports>/<run_id>.html`` (``BTLAB_REPORTS``, default ``./reports``).
            Missing parent folders are created; an existing file is replaced.

    Reads the run row, its equity and trades, and the bars of the run's exchange, first symbol (of the
    comma-separated ``symbols``) and timeframe with ``data_from <= ts <= data_to`` (``data_to`` is the last
    bar's open time). A run without a recorded data range gets no price chart.

    Returns: the path written (UTF-8).

    Raises:
        RunNotFoundError: the store has no such run.
        StoreUnavailableError: the store cannot be reached.
    """
    if isinstance(store, str):
        from btlab.store import open_store

        with open_store(store) as opened:
            return write_report(opened, run_id, path)
    run = store.get_run(run_id)
    equity = store.read_equity(run_id)
    trades = store.read_trades(run_id)
    bars = None
    symbol = _first_symbol(run)
    data_from, data_to = run.get("data_from"), run.get("data_to")
    if run.get("exchange") and symbol and run.get("timeframe") and data_from is not None and data_to is not None:
        bars = store.read_bars(
            exchange=run["exchange"], symbol=symbol, timeframe=run["timeframe"], start=data_from,
            end=pd.Timestamp(data_to) + pd.Timedelta(1, "us"),  # store precision is 1 µs
        )
    document = render_report(run, equity, trades, bars)
    if path is None:
        from btlab.settings import get_settings

        path = get_settings().reports / f"{run_id}.html"
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(out)
    return out


def _btlab_version() -> str:
    import btlab

    return btlab.__version__


__all__ = ["MAX_LINE_POINTS", "conventions_sentence", "downsample_minmax", "format_value", "render_report",
           "write_report"]

