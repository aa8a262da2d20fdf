"""HTML report of a parameter sweep: :func:`write_sweep_report` (one self-contained file, the run report's style).

The page shows what the store holds about a sweep; it computes no backtest metric, only groups the stored ones:

* header: strategy, grid, instrument(s), timeframe, data range, engine, configuration, counts and status (a failed
  sweep shows its error first, an unfinished one a note that the results are partial);
* the metric over two parameters as a heatmap (:func:`heatmap_table`): each cell is the best value (max, or min for
  metrics where lower is better, :func:`btlab.sweep.top.ascending`) over the combinations of the other parameters;
* each parameter's marginal effect (:func:`marginal_table`): mean, median and max of the metric per value;
* the metric's distribution over the finished combinations (histogram);
* the top combinations (:func:`btlab.sweep.top.best_runs`) and the equity curves of the top runs recorded in full
  (``btlab sweep top`` re-runs them);
* the failed combinations with their errors.

Only finished combinations with a finite value of the metric enter the heatmap, marginals and histogram (+/-inf,
e.g. a profit factor without losing trades, is left out of them and said so). All text from the store (parameter
values, errors, ids) is HTML-escaped. All times UTC.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import btlab
from btlab.errors import InvalidArgumentError
from btlab.report.figures import _line, figure_html
from btlab.report.format import METRIC_UNITS, format_value, to_number
from btlab.report.html import html_document
from btlab.report.tables import esc, fmt_ts
from btlab.report.write import write_file_atomically
from btlab.sweep.top import FULL_SUFFIX, ascending, best_runs, check_metric, params_frame

#: Columns of the top combinations table after the parameters: (metric, label).
TOP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sharpe", "Sharpe"), ("total_return", "total return"), ("cagr", "CAGR"), ("max_drawdown", "max drawdown"),
    ("calmar", "Calmar"), ("win_rate", "win rate"), ("n_trades", "trades"), ("end_value", "end value"),
)

#: Number of combinations in the top table.
TOP_N = 20

#: Up to this many combinations the histogram carries the metric values (plotly bins them); beyond, the counts of
#: equal-width bins computed here (numpy), so the page size does not grow with the sweep.
HISTOGRAM_RAW_MAX = 10_000

_PLOTLY_FORMAT = {"pct": ".2%", "ratio": ".3f", "money": ",.2f", "int": ",d", "days": ".1f"}


def write_sweep_report(sweep: Mapping[str, Any], runs: pd.DataFrame, top: Mapping[str, pd.DataFrame],
                       path: str | Path, *, metric: str = "sharpe", x: str | None = None,
                       y: str | None = None) -> Path:
    """Write the HTML report of a sweep to ``path`` (atomically, UTF-8; missing folders created) and return it.

    Args:
        sweep: the ``bt_sweeps`` row (:meth:`btlab.store.Store.get_sweep`): ``sweep_id``, ``strategy``, ``grid``
            and ``params`` (JSON text or parsed), ``exchange``, ``symbols``, ``timeframe``, ``calendar``,
            ``data_from``/``data_to`` (UTC bar open times), ``engine``, ``config`` (cash, commission, size_pct,
            session), ``total``/``done``/``failed`` (``done`` counts the failed combinations too, as
            :data:`btlab.store.schema.BT_SWEEPS` says), ``status``, ``error``, ``ts``, ``finished_at``. Missing
            keys show as "—".
        runs: the sweep's runs (:meth:`btlab.store.Store.sweep_runs`): ``run_id``, ``params`` (JSON text),
            ``status``, ``error`` and the metric columns (fractions as fractions, money in account currency).
        top: equity curves of the top runs: combination run id (or its ``-full`` re-run id) -> frame with ``ts``
            (UTC) and ``value`` (:meth:`btlab.store.Store.read_equity`); may be empty.
        path: the output file.
        metric: the metric of the heatmap, marginals, histogram and ranking (a column of
            :data:`btlab.sweep.top.METRIC_COLUMNS`).
        x, y: the heatmap's parameters; default: the first two parameters (sweep order) with more than one value
            among the finished combinations.

    Raises:
        InvalidArgumentError: unknown metric, ``x``/``y`` not a parameter of the sweep, or ``x == y``.
        ReportWriteError: the file cannot be written.
    """
    check_metric(metric)
    out = Path(path).expanduser()
    write_file_atomically(out, render_sweep_report(sweep, runs, top, metric=metric, x=x, y=y))
    return out


def render_sweep_report(sweep: Mapping[str, Any], runs: pd.DataFrame, top: Mapping[str, pd.DataFrame], *,
                        metric: str = "sharpe", x: str | None = None, y: str | None = None) -> str:
    """The HTML document of :func:`write_sweep_report` (same arguments, no path)."""
    check_metric(metric)
    sweep = dict(sweep)
    names = _param_names(sweep, runs)
    params = params_frame(runs, names)
    finished = runs["status"] == "finished" if "status" in runs else pd.Series(True, index=runs.index)
    values = pd.to_numeric(runs[metric], errors="coerce") if metric in runs else pd.Series(np.nan, index=runs.index)
    usable = finished & np.isfinite(values.astype("float64"))
    x, y = heatmap_axes(params[usable], names, x, y)
    sections = [
        _heatmap_section(params[usable], values[usable], metric, x, y, names),
        _marginal_section(params[usable], values[usable], metric, names),
        _histogram_section(values[usable], metric, int((finished & values.notna() & ~usable).sum())),
        _top_section(runs, params, names, metric),
        _equity_section(top, runs, params, names),
        _failed_section(runs, params, names),
    ]
    title = f"btlab sweep report — {sweep.get('strategy') or '?'} — {sweep.get('sweep_id') or ''}"
    body = (
        f"<main><h1>Sweep · {esc(sweep.get('strategy') or '?')} · {esc(sweep.get('symbols') or '')} · "
        f"{esc(sweep.get('timeframe') or '')}</h1>"
        f'<p class="sub">btlab parameter sweep report · sweep <code>{esc(sweep.get("sweep_id"))}</code> · metric '
        f"<b>{esc(metric)}</b> ({'lower' if ascending(metric) else 'higher'} is better)</p>"
        f"{_status_html(sweep)}<div class=\"card\">{_header_html(sweep, runs, names)}</div>{''.join(sections)}"
        f"<footer>Generated by btlab {esc(btlab.__version__)} on {esc(fmt_ts(pd.Timestamp.now(tz='UTC')))} UTC. "
        "All times UTC; bar times are open times. Charts: plotly.js (MIT), embedded.</footer></main>"
    )
    return html_document(title, body)


# ---- data ----------------------------------------------------------------------------------------------------------
def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _param_names(sweep: Mapping[str, Any], runs: pd.DataFrame) -> list[str]:
    """The sweep's parameter names: the row's ``params`` list, else those found in the runs."""
    names = _json(sweep.get("params"))
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    return list(params_frame(runs).columns)


def _sorted_values(column: pd.Series) -> list[Any]:
    """The distinct values of a parameter column, numbers in numeric order, otherwise as text."""
    values = [v for v in dict.fromkeys(column.tolist()) if v is not None]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=str)


def heatmap_axes(params: pd.DataFrame, names: list[str], x: str | None, y: str | None
                 ) -> tuple[str | None, str | None]:
    """The heatmap's parameters: ``x``/``y`` as given (checked), else the first parameters (in ``names`` order)
    with more than one value in ``params``; None where there is none.

    Raises:
        InvalidArgumentError: ``x``/``y`` is not one of ``names``, or both are the same.
    """
    for axis, name in (("--x", x), ("--y", y)):
        if name is not None and name not in names:
            raise InvalidArgumentError(f"{axis} {name!r} is not a parameter of this sweep: use one of "
                                       f"{', '.join(names) or '(none)'}")
    if x is not None and x == y:
        raise InvalidArgumentError(f"--x and --y are both {x!r}: pick two different parameters")
    varying = [n for n in names if n in params and len(_sorted_values(params[n])) > 1 and n not in (x, y)]
    if x is None:
        x = varying.pop(0) if varying else None
    if y is None:
        y = varying.pop(0) if varying else None
    return x, y


def heatmap_table(params: pd.DataFrame, values: pd.Series, metric: str, x: str, y: str) -> pd.DataFrame:
    """The heatmap's cells: rows = values of ``y``, columns = values of ``x`` (both sorted), each cell the best
    ``metric`` (max; min when lower is better) over the combinations sharing that pair; NaN where there is none.

    Args:
        params: parameters of the finished combinations (:func:`btlab.sweep.top.params_frame`).
        values: their finite ``metric`` values, on the same index.
    """
    frame = pd.DataFrame({"x": params[x].map(_key), "y": params[y].map(_key), "v": values.astype("float64")})
    agg = "min" if ascending(metric) else "max"
    table = frame.groupby(["y", "x"], sort=False)["v"].agg(agg).unstack("x")
    xs = [_key(v) for v in _sorted_values(params[x])]
    ys = [_key(v) for v in _sorted_values(params[y])]
    return table.reindex(index=ys, columns=xs)


def marginal_table(params: pd.DataFrame, values: pd.Series, name: str) -> pd.DataFrame:
    """One parameter's marginal effect: per value of ``name`` (sorted), the number of combinations and the mean,
    median and max of the metric over them (columns ``value``, ``n``, ``mean``, ``median``, ``max``)."""
    frame = pd.DataFrame({"k": params[name].map(_key), "v": values.astype("float64")})
    stats = frame.groupby("k", sort=False)["v"].agg(["count", "mean", "median", "max"])
    order = [_key(v) for v in _sorted_values(params[name])]
    stats = stats.reindex(order)
    return pd.DataFrame({"value": order, "n": stats["count"].to_numpy(), "mean": stats["mean"].to_numpy(),
                         "median": stats["median"].to_numpy(), "max": stats["max"].to_numpy()})


def _key(value: Any) -> Any:
    """A parameter value as a hashable key (lists and dicts as their JSON text)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _label(value: Any) -> str:
    return "—" if value is None else value if isinstance(value, str) else json.dumps(value)


def _params_text(params: pd.DataFrame, names: list[str], index: Any) -> str:
    return ", ".join(f"{n}={_label(params.at[index, n])}" for n in names if n in params)


# ---- sections ------------------------------------------------------------------------------------------------------
def _header_html(sweep: Mapping[str, Any], runs: pd.DataFrame, names: list[str]) -> str:
    config = _json(sweep.get("config"))
    config = config if isinstance(config, Mapping) else {}
    grid = _json(sweep.get("grid"))
    grid_text = json.dumps(grid, sort_keys=False) if isinstance(grid, (dict, list)) else str(grid or "—")
    total = to_number(sweep.get("total"))
    done, failed = to_number(sweep.get("done")) or 0, to_number(sweep.get("failed")) or 0
    pending = None if total is None else max(0.0, total - done)  # done counts the failed ones too
    status = str(sweep.get("status") or "unknown")
    commission = to_number(config.get("commission"))
    rows = [
        ("Strategy", f"<b>{esc(sweep.get('strategy'))}</b>"),
        ("Parameters", ", ".join(f"<code>{esc(n)}</code>" for n in names) or "—"),
        ("Grid", f"<code>{esc(grid_text)}</code>"),
        ("Instrument", esc(f"{sweep.get('exchange') or '?'}:{sweep.get('symbols') or '?'}")),
        ("Timeframe", esc(sweep.get("timeframe"))),
        ("Data", f"{esc(fmt_ts(sweep.get('data_from')))} → {esc(fmt_ts(sweep.get('data_to')))} UTC (bar open "
                 f"times; calendar {esc(sweep.get('calendar') or '—')})"),
        ("Engine", esc(sweep.get("engine") or "—")),
        ("Cash", esc(format_value(config.get("cash"), "money"))),
        ("Commission", esc("—" if commission is None else f"{commission * 100:g} % of traded value")),
        ("Size", esc("—" if config.get("size_pct") is None else f"{config['size_pct']:g} % of cash per order")),
        ("Session", esc(config.get("session") or "—")),
        ("Combinations", f'<span id="sweep-counts">{esc(format_value(total, "int"))} total · '
                         f"{esc(format_value(done, 'int'))} done ({esc(format_value(failed, 'int'))} failed) · "
                         f"{esc(format_value(pending, 'int'))} not run</span> ({len(runs):,d} runs stored)"),
        ("Sweep id", f"<code>{esc(sweep.get('sweep_id'))}</code>"),
        ("Started / finished", f"{esc(fmt_ts(sweep.get('ts')))} / {esc(fmt_ts(sweep.get('finished_at')))} UTC"),
        ("Status", f'<span class="status {esc(status)}">{esc(status)}</span>'),
        ("Data hash", f"<code>{esc(sweep.get('data_hash') or '—')}</code>"),
        ("btlab", esc(sweep.get("btlab_version") or "—")),
    ]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv" id="sweep-header">{body}</table>'


def _status_html(sweep: Mapping[str, Any]) -> str:
    status = str(sweep.get("status") or "")
    if status == "failed":
        return (f'<section class="error" id="sweep-error"><h2>Sweep failed</h2><pre>'
                f"{esc(sweep.get('error') or '(no error message recorded)')}</pre></section>")
    if status and status != "finished":
        return (f'<div class="warn" id="sweep-partial">Sweep status is <b>{esc(status)}</b>: not every combination '
                "has run; the results below are partial (the same <code>btlab sweep run</code> command resumes "
                "it).</div>")
    return ""


def _heatmap_section(params: pd.DataFrame, values: pd.Series, metric: str, x: str | None, y: str | None,
                     names: list[str]) -> str:
    head = f"<h2>{esc(metric)} over two parameters</h2>"
    if x is None or y is None or not len(values):
        return (f'{head}<p class="empty" id="no-heatmap">No heatmap: it needs two parameters with more than one '
                f"value among the finished combinations with a finite {esc(metric)}.</p>")
    import plotly.graph_objects as go

    table = heatmap_table(params, values, metric, x, y)
    z = [[None if math.isnan(v) else float(v) for v in row] for row in table.to_numpy(dtype="float64")]
    unit = METRIC_UNITS.get(metric, "ratio")
    text = [["" if v is None else format_value(v, unit) for v in row] for row in z]
    cells = len(table.index) * len(table.columns)
    fig = go.Figure(go.Heatmap(
        z=z, x=[esc(_label(v)) for v in table.columns], y=[esc(_label(v)) for v in table.index], text=text,
        texttemplate="%{text}" if cells <= 400 else None, colorscale="RdYlGn", reversescale=ascending(metric),
        xgap=1, ygap=1, hoverongaps=False, colorbar={"title": {"text": esc(metric)}},
        hovertemplate=f"{esc(x)}=%{{x}}<br>{esc(y)}=%{{y}}<br>{esc(metric)} %{{text}}<extra></extra>",
    ))
    fig.update_xaxes(type="category", title_text=esc(x))  # plotly reads titles as HTML: names escaped
    fig.update_yaxes(type="category", title_text=esc(y))
    others = [n for n in names if n not in (x, y)]
    best = "lowest" if ascending(metric) else "highest"
    note = (f"Each cell is the {best} {esc(metric)} over the combinations of the other parameters "
            f"({', '.join(f'<code>{esc(n)}</code>' for n in others)}) with that pair of values."
            if others else f"Each cell is one combination's {esc(metric)}.")
    chart = figure_html(fig, "chart-heatmap", max(320, 140 + 28 * len(table.index)))
    return (f'{head}<div class="card" id="heatmap" data-x="{esc(x)}" data-y="{esc(y)}">{chart}'
            f'<p class="note">{esc(x)} across, {esc(y)} down. {note} Blank: no finished combination with a finite '
            f"value there. Pick other axes with <code>btlab sweep report ID --x NAME --y NAME</code>.</p></div>")


def _marginal_section(params: pd.DataFrame, values: pd.Series, metric: str, names: list[str]) -> str:
    head = "<h2>Marginal effect of each parameter</h2>"
    if not len(values):
        return f'{head}<p class="empty">No finished combination with a finite {esc(metric)}.</p>'
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    tables = {n: marginal_table(params, values, n) for n in names if n in params}
    fig = make_subplots(rows=1, cols=max(1, len(tables)), subplot_titles=[esc(n) for n in tables], horizontal_spacing=0.06)
    unit = METRIC_UNITS.get(metric, "ratio")
    fmt = _PLOTLY_FORMAT.get(unit, ".3f")
    blocks = []
    for i, (name, table) in enumerate(tables.items(), 1):
        labels = [esc(_label(v)) for v in table["value"]]
        for stat, color, dash in (("max", "#1a9850", "dot"), ("mean", "#1f77b4", "solid"), ("median", "#555555", "dash")):
            fig.add_trace(go.Scatter(x=labels, y=table[stat].astype("float64").tolist(), mode="lines+markers",
                                     name=stat, legendgroup=stat, showlegend=i == 1,
                                     line={"color": color, "dash": dash, "width": 1.5},
                                     hovertemplate=f"{esc(name)}=%{{x}}<br>{stat} %{{y:{fmt}}}<extra></extra>"),
                          row=1, col=i)
        fig.update_xaxes(type="category", row=1, col=i)
        rows = "".join(
            f'<tr data-param="{esc(name)}" data-value="{esc(_label(r.value))}"><td class="l">{esc(_label(r.value))}'
            f"</td><td>{int(r.n):,d}</td>" + "".join(f"<td>{esc(format_value(getattr(r, s), unit))}</td>"
                                                    for s in ("mean", "median", "max")) + "</tr>"
            for r in table.itertuples(index=False))
        blocks.append(f'<div class="card"><h3>{esc(name)}</h3><table class="data marginal" '
                      f'data-param="{esc(name)}"><thead><tr><th class="l">value</th><th>combinations</th><th>mean'
                      f"</th><th>median</th><th>max</th></tr></thead><tbody>{rows}</tbody></table></div>")
    fig.update_yaxes(title_text=metric, row=1, col=1)
    fig.update_layout(legend={"orientation": "h", "y": 1.08, "x": 0, "yanchor": "bottom"})
    chart = figure_html(fig, "chart-marginal", 340, top=70)
    return (f'{head}<div class="card" id="marginal">{chart}<p class="note">For each value of a parameter: the '
            f"mean, median and max of {esc(metric)} over every finished combination with that value (all values of "
            f'the other parameters).</p></div><div class="grid">{"".join(blocks)}</div>')


def _histogram_section(values: pd.Series, metric: str, infinite: int) -> str:
    head = f"<h2>Distribution of {esc(metric)}</h2>"
    if not len(values):
        return f'{head}<p class="empty">No finished combination with a finite {esc(metric)}.</p>'
    import plotly.graph_objects as go

    v = values.astype("float64").to_numpy()
    unit = METRIC_UNITS.get(metric, "ratio")
    bins = min(60, max(5, int(math.sqrt(len(v))) * 2))
    if len(v) <= HISTOGRAM_RAW_MAX:  # the values themselves (plotly bins them)
        trace = go.Histogram(x=v.tolist(), nbinsx=bins, marker_color="#1f77b4",
                             hovertemplate=f"{esc(metric)} %{{x}}: %{{y}} combinations<extra></extra>")
    else:  # binned here: the page stays small for any number of combinations
        counts, edges = np.histogram(v, bins=bins)
        trace = go.Bar(x=((edges[:-1] + edges[1:]) / 2).tolist(), y=counts.tolist(), width=float(edges[1] - edges[0]),
                       marker_color="#1f77b4", hovertemplate=f"{esc(metric)} %{{x}}: %{{y}} combinations<extra></extra>")
    fig = go.Figure(trace)
    fig.update_layout(bargap=0.02)
    fig.update_xaxes(title_text=metric, tickformat=".0%" if unit == "pct" else None)
    fig.update_yaxes(title_text="combinations")
    stats = (f"{len(v):,d} combinations · mean {format_value(v.mean(), unit)} · median "
             f"{format_value(np.median(v), unit)} · min {format_value(v.min(), unit)} · max "
             f"{format_value(v.max(), unit)}")
    inf_note = f" {infinite:,d} finished combination(s) with an infinite value are left out." if infinite else ""
    return (f'{head}<div class="card" id="distribution">{figure_html(fig, "chart-distribution", 340)}'
            f'<p class="note" id="distribution-stats">{esc(stats)}.{esc(inf_note)}</p></div>')


def _top_section(runs: pd.DataFrame, params: pd.DataFrame, names: list[str], metric: str) -> str:
    best = best_runs(runs.assign(row_index=runs.index), metric, TOP_N) if len(runs) else runs
    head = f"<h2>Top {min(TOP_N, len(best))} combinations by {esc(metric)}</h2>"
    if not len(best):
        return f'{head}<p class="empty">No finished combination.</p>'
    columns = [(metric, metric)] + [(c, label) for c, label in TOP_COLUMNS if c != metric]
    heads = ("<th>#</th><th class=\"l\">run id</th>" + "".join(f'<th class="l">{esc(n)}</th>' for n in names)
             + "".join(f"<th>{esc(label)}</th>" for _, label in columns))
    rows = []
    for rank, row in enumerate(best.to_dict("records"), 1):
        cells = "".join(f'<td class="l">{esc(_label(params.at[row["row_index"], n]))}</td>' for n in names)
        cells += "".join(f'<td data-metric="{esc(c)}">{esc(format_value(row.get(c), METRIC_UNITS.get(c, "ratio")))}'
                         "</td>" for c, _ in columns)
        rows.append(f'<tr data-run="{esc(row["run_id"])}"><td>{rank}</td><td class="l"><code>{esc(row["run_id"])}'
                    f"</code></td>{cells}</tr>")
    return (f'{head}<div class="card" style="overflow-x:auto"><table class="data" id="top-table"><thead><tr>{heads}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table><p class=\"note\">Finished combinations, best "
            f"first ({'lowest' if ascending(metric) else 'highest'} {esc(metric)}; ties by run id).</p></div>")


def _equity_section(top: Mapping[str, pd.DataFrame], runs: pd.DataFrame, params: pd.DataFrame,
                    names: list[str]) -> str:
    head = "<h2>Equity of the top runs</h2>"
    curves = {k: f for k, f in top.items() if f is not None and len(f) and "value" in f}
    if not curves:
        return (f'{head}<p class="empty" id="no-equity">No top run recorded in full: <code>btlab sweep top ID --by '
                "METRIC -n 10</code> re-runs the best combinations with their equity and trades.</p>")
    import plotly.graph_objects as go

    index_of = dict(zip(runs["run_id"], runs.index)) if "run_id" in runs else {}
    fig = go.Figure()
    for run_id, frame in curves.items():
        combo = run_id[: -len(FULL_SUFFIX)] if run_id.endswith(FULL_SUFFIX) and run_id not in index_of else run_id
        name = _params_text(params, names, index_of[combo]) if combo in index_of else run_id
        frame = frame.reset_index() if "ts" not in frame else frame
        trace, _ = _line(frame["ts"], frame["value"].astype("float64").to_numpy(), name=esc(name),
                         line={"width": 1.3}, hovertemplate=f"{esc(name)}<br>%{{x|%Y-%m-%d %H:%M}} UTC<br>"
                                                            "equity %{y:,.2f}<extra></extra>")
        fig.add_trace(trace)
    fig.update_xaxes(type="date", title_text="time (UTC)")
    fig.update_yaxes(title_text="equity", tickformat=",.2~f")
    fig.update_layout(hovermode="closest", legend={"orientation": "h", "y": -0.2, "x": 0, "yanchor": "top"})
    return (f'{head}<div class="card" id="equity-top">{figure_html(fig, "chart-equity-top", 520)}<p class="note">'
            f"{len(curves):,d} run(s) re-run with full recording (<code>btlab sweep top</code>); lines longer than "
            "2,000 points are decimated for display (min and max per slice).</p></div>")


def _failed_section(runs: pd.DataFrame, params: pd.DataFrame, names: list[str]) -> str:
    failed = runs[runs["status"] == "failed"] if "status" in runs else runs.iloc[0:0]
    head = f"<h2>Failed combinations ({len(failed):,d})</h2>"
    if failed.empty:
        return f'{head}<p class="empty" id="no-failures">No combination failed.</p>'
    rows = "".join(
        f'<tr data-run="{esc(r.run_id)}"><td class="l"><code>{esc(r.run_id)}</code></td><td class="l">'
        f'{esc(_params_text(params, names, i))}</td><td class="l err">{esc(r.error or "(no error recorded)")}</td></tr>'
        for i, r in zip(failed.index, failed.itertuples(index=False)))
    return (f'{head}<div class="card" style="overflow-x:auto"><table class="data" id="failed-table"><thead><tr>'
            '<th class="l">run id</th><th class="l">parameters</th><th class="l">error</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


__all__ = ["TOP_COLUMNS", "TOP_N", "heatmap_axes", "heatmap_table", "marginal_table", "render_sweep_report",
           "write_sweep_report"]
