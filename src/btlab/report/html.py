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
* for an index-tracking run (``mp_tracker``, whose run row holds ``metrics["tracking"]``): the tracking table
  (tracking error, active return, correlation, R², beta, turnover, costs) beside the two baselines, and the
  strategy against the index rebased with the active return and the rolling tracking error underneath;
* the 5 deepest drawdown periods (peak, trough, recovery, depth, lengths);
* rolling Sharpe and rolling volatility (window: :func:`~btlab.backtest.metrics.rolling_window`, 90 daily
  returns for crypto, 63 sessions for equities), strategy and benchmark;
* histogram of daily returns (strategy and benchmark) with the VaR/CVaR 95 % of the run row;
* yearly returns against the benchmark; monthly returns heatmap;
* close price with trade entries and exits, per instrument;
* when the run recorded state changes (``bt_states``, :mod:`btlab.backtest.states`): the state timeline, one lane
  per machine coloured by its state, under the close price of the first instrument;
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

import btlab
from btlab.backtest.metrics import (
    benchmark_equity,
    daily_returns,
    drawdown_periods,
    extended_conventions,
    monthly_returns,
    open_positions,
    rolling_window,
    yearly_returns,
)
from btlab.backtest.tracking import TRACKING_KEY, tracking_series
from btlab.model.instrument import Calendar
from btlab.model.timeframe import Timeframe
from btlab.report.figures import (
    MAX_LINE_POINTS,
    equity_figure,
    figure_html,
    histogram_figure,
    monthly_figure,
    price_figure,
    rolling_figure,
    states_figure,
    tracking_figure,
    yearly_figure,
)
from btlab.report.format import to_number
from btlab.report.run_row import (
    conventions_sentence,
    first_symbol,
    run_calendar,
    run_currency,
    run_metric,
    run_sessions,
    run_symbols,
)
from btlab.report.tables import (
    drawdown_table_html,
    esc,
    fmt_ts,
    header_html,
    metrics_html,
    open_position_html,
    status_html,
    tracking_table_html,
    trades_html,
    warnings_html,
    yearly_table_html,
)

#: The plotly.js bundle embedded in every report (MIT; see vendor/README.md).
PLOTLY_JS = Path(__file__).with_name("vendor") / "plotly-cartesian-4.1.1.min.js"


# ---- data helpers ------------------------------------------------------------------------------------------------
def with_ts(frame: pd.DataFrame | None, columns: Sequence[str] = ()) -> pd.DataFrame:
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


def _daily(value: pd.Series, start_value: float, sessions: str | None = None) -> pd.Series:
    """The run's daily returns as the metrics define them (one place, so the charts follow ``daily_returns``)."""
    return daily_returns(value, start_value, sessions)



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



# ---- the page ------------------------------------------------------------------------------------------------------
def _bars_by_symbol(bars: pd.DataFrame | Mapping[str, pd.DataFrame] | None, run: Mapping[str, Any]
                    ) -> dict[str, pd.DataFrame]:
    if bars is None:
        return {}
    if isinstance(bars, pd.DataFrame):
        return {first_symbol(run) or "price": bars}
    return dict(bars)


def render_report(run: Mapping[str, Any], equity: pd.DataFrame | None, trades: pd.DataFrame | None,
                  bars: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
                  orders: pd.DataFrame | None = None, states: pd.DataFrame | None = None) -> str:
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
        states: :meth:`~btlab.store.Store.read_states` (optional) -- ``ts`` (UTC close time of the deciding bar),
            ``machine``, ``from_state``, ``to_state``; when not empty, the state timeline is drawn.

    Returns:
        The HTML document (str). It embeds :data:`PLOTLY_JS` once (1.5 MB) and needs no network. Long lines are
        decimated for display only (see :data:`MAX_LINE_POINTS`).
    """
    d = _prepare(run, equity, trades, bars, orders)
    equity_html, reduced = _equity_sections(d)
    price_html, price_reduced = _price_sections(d)
    last_prices = {s: float(f["close"].iloc[-1]) for s, f in d.bars.items() if len(f)}
    positions = open_positions(d.orders, last_prices) if d.orders is not None else None
    open_html = open_position_html(d.run, positions, d.equity, d.currency)
    closed = (f'<h2>Closed trades ({len(d.trades):,d})</h2><div class="card">'
              f"{trades_html(d.trades, d.currency, bool(open_html))}</div>")
    states_html = _states_sections(d, states)
    tracking_html, tracking_reduced = _tracking_sections(d)
    sections = [*equity_html, *tracking_html, *_return_sections(d), *_calendar_sections(d), *price_html,
                *states_html, closed]
    return _page(d, sections, open_html, reduced or price_reduced or tracking_reduced)


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
    equity = with_ts(equity, ("value", "cash", "drawdown", "position_value"))
    bars_map = {s: with_ts(f, ("open", "high", "low", "close", "volume"))
                for s, f in _bars_by_symbol(bars, run).items()}
    symbols = run_symbols(run) or list(bars_map) or ["price"]
    start_value = to_number(run_metric(run, "start_value")) or to_number(run.get("cash"))
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
        run=run, equity=equity, trades=with_ts(trades) if trades is not None else pd.DataFrame(), bars=bars_map,
        orders=with_ts(orders) if orders is not None and len(orders) else None, symbols=symbols,
        currency=run_currency(run), cal=run_calendar(run), start_value=start_value, value=value, bench=bench,
        bench_note=note, sessions=run_sessions(run),
    )


def _equity_sections(d: _Inputs) -> tuple[list[str], bool]:
    """Equity against the benchmark with both drawdowns, and the worst drawdowns table."""
    if d.value is None:
        return ['<h2>Equity and drawdown</h2><p class="empty">No equity recorded for this run.</p>'], False
    fig, reduced = equity_figure(d.equity, d.bench, d.start_value, d.currency)
    periods = drawdown_periods(d.value, d.start_value, top=5)
    return [
        f'<h2>Equity and drawdown</h2><div class="card">{figure_html(fig, "chart-equity", 580, top=50)}'
        f'<p class="note">Strategy (blue) against the buy-and-hold benchmark (grey): {esc(d.bench_note)}. '
        "Drawdown = value / running peak − 1, on every bar; the starting cash is the first peak.</p></div>",
        f'<h2>Worst drawdowns</h2><div class="card">{drawdown_table_html(periods)}<p class="note">The 5 deepest '
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
        chart = figure_html(rolling_figure(r, b, window, periods), "chart-rolling", 460, top=50)
    else:
        chart = (f'<p class="empty">{len(r):,d} daily returns: fewer than one {window}-day window, no rolling '
                 "statistics.</p>")
    var, cvar = to_number(run_metric(d.run, "var_95")), to_number(run_metric(d.run, "cvar_95"))
    hist = figure_html(histogram_figure(r, b, var, cvar), "chart-histogram", 380, top=50)
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
    bars_chart = figure_html(yearly_figure(yearly), "chart-yearly", max(260, 180 + 12 * len(yearly)), top=50)
    table = monthly_returns(d.value, d.start_value, d.sessions)
    monthly = figure_html(monthly_figure(table), "chart-monthly", max(240, 150 + 32 * len(table)))
    return [
        '<h2>Yearly returns against buy and hold</h2><div class="two">'
        f'<div class="card">{yearly_table_html(yearly)}<p class="note">Compounded daily returns within each '
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
            fig, was_reduced = price_figure(frame, trades, sym)
            reduced |= was_reduced
            chart = figure_html(fig, "chart-price" if i == 0 else f"chart-price-{i + 1}", 500, top=70)
        else:
            chart = '<p class="empty">No bars in the store for this run\'s instrument and range.</p>'
        out.append(
            f'<h2>Price and trades ({esc(sym)})</h2><div class="card">{chart}<p class="note">▲ long entry, ▼ short '
            "entry, ✕ exit (green: net win, red: net loss or break-even). Open positions at the end of the run are "
            "not trades yet.</p></div>")
    return out, reduced


def _tracking_sections(d: _Inputs) -> tuple[list[str], bool]:
    """For an index-tracking run (``metrics["tracking"]`` recorded, :func:`btlab.backtest.tracking.track_result`):
    the tracking table beside the baselines, and the strategy against the index (rebased) with the active return
    and the rolling tracking error (:func:`~btlab.backtest.tracking.tracking_series` on the stored equity and the
    index's stored bars)."""
    metrics = d.run.get("metrics")
    record = metrics.get(TRACKING_KEY) if isinstance(metrics, Mapping) else None
    if not isinstance(record, Mapping) or not record.get("rows"):
        return [], False
    index, periods = str(record.get("index")), int(record.get("periods") or d.cal.periods_per_year)
    window = rolling_window(d.cal)
    bars = d.bars.get(index)
    own = record["rows"].get(record.get("own"), {})
    chart, reduced = f'<p class="empty">No bars of {esc(index)} in the store: no tracking chart.</p>', False
    if d.value is not None and bars is not None and len(bars) and own.get("first"):
        series = tracking_series(d.value, bars.set_index("ts")["close"], pd.Timestamp(own["first"]), window, periods)
        fig, reduced = tracking_figure(series, index, window)
        chart = figure_html(fig, "chart-tracking", 560, top=50)
    first = fmt_ts(pd.Timestamp(own["first"])) if own.get("first") else "—"
    note = (f"Active return = the portfolio's return − {esc(index)}'s return per bar, from the bar of the first "
            f"fill ({esc(first)} UTC; its return from the close before, where both curves are rebased to 1); "
            f"tracking error = std(active, ddof=1) × √{periods}; correlation "
            f"and R² of the per-bar returns; turnover = traded value / portfolio value before each fill, a year; "
            f"costs = commission / mean value a year. The baselines ran on the same bars, dates, K, lookback, "
            f"rebalance schedule and costs (btlab.backtest.tracking). Rolling tracking error over {window} bars.")
    return [f'<h2>Index tracking ({esc(index)})</h2><div class="card">'
            f'{tracking_table_html(record, d.currency)}{chart}<p class="note" id="tracking-note">{note}</p></div>'
            ], reduced


def _states_sections(d: _Inputs, states: pd.DataFrame | None) -> list[str]:
    """The state timeline (one lane per machine) under the first instrument's close, when states were recorded."""
    if states is None or not len(states):
        return []
    sym = d.symbols[0]
    frame = d.bars.get(sym)
    if frame is None or not len(frame):
        frame = pd.DataFrame({"ts": pd.DatetimeIndex([], tz="UTC"), "close": pd.Series([], dtype="float64")})
    states = with_ts(states)
    end = states["ts"].max()
    if len(frame):
        step = Timeframe.parse(str(d.run["timeframe"])).nanos if d.run.get("timeframe") else 0
        end = max(end, frame["ts"].iloc[-1] + pd.Timedelta(step, "ns"))  # the close of the last bar
    fig, _ = states_figure(frame, states, sym, end)
    machines = ", ".join(esc(str(m)) for m in pd.unique(states["machine"]))
    chart = figure_html(fig, "chart-states", 420 + 30 * states["machine"].nunique(), top=70)
    return [
        f'<h2>State timeline ({esc(sym)})</h2><div class="card">{chart}<p class="note" id="states-note">'
        f"{len(states):,d} state changes of machine(s) {machines}. A state holds from the close of the bar that "
        "decided it (the change's time) to the machine's next change.</p></div>"
    ]


def _page(d: _Inputs, sections: list[str], open_html: str, reduced: bool) -> str:
    """The whole document around the sections: head (CSS, plotly.js), title, status, warnings, header, metrics."""
    run = d.run
    title = (f"btlab report — {run.get('strategy') or '?'} on {run.get('exchange') or '?'}:"
             f"{run.get('symbols') or '?'} {run.get('timeframe') or ''} — {run.get('run_id') or ''}")
    ds_note = (f'<p class="note" id="downsample-note">Long lines are decimated for display to at most '
               f"{MAX_LINE_POINTS:,d} points (the minimum and maximum of {MAX_LINE_POINTS // 2:,d} equal time "
               "slices, about one per pixel, so peaks and troughs are exact); metrics and tables use every bar."
               "</p>") if reduced else ""
    conventions = (f'<div class="conventions" id="conventions"><p>{esc(conventions_sentence(run))}</p>'
                   f'<p id="conventions-extended">{esc(extended_conventions(d.cal))}</p></div>')
    body = (
        f"<main><h1>{esc(run.get('strategy') or 'run')} · {esc(', '.join(d.symbols))} · "
        f"{esc(run.get('timeframe') or '')}</h1>"
        f'<p class="sub">btlab backtest report · run <code>{esc(run.get("run_id"))}</code></p>'
        f"{status_html(run)}{warnings_html(run, d.orders)}"
        f'<div class="card">{header_html(run, d.bench_note)}</div>'
        f"<h2>Metrics</h2>{metrics_html(run)}{conventions}{open_html}"
        f"{ds_note}{''.join(sections)}"
        f"<footer>Generated by btlab {esc(btlab.__version__)} on {esc(fmt_ts(pd.Timestamp.now(tz='UTC')))} UTC. "
        "All times UTC; bar times are open times. Charts: plotly.js (MIT), embedded.</footer></main>"
    )
    return html_document(title, body)


def html_document(title: str, body: str) -> str:
    """A whole self-contained report document: ``title`` (plain text, escaped here), the report CSS, plotly.js
    (:data:`PLOTLY_JS`, embedded inline: no network needed) and ``body`` (HTML, already escaped by the caller)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{_plotly_js()}</script>'
        f"</head><body>{body}</body></html>\n"
    )


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    return PLOTLY_JS.read_text(encoding="utf-8")


__all__ = ["PLOTLY_JS", "html_document", "render_report"]
