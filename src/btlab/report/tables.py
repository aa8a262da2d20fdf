"""The report's HTML blocks and tables: header, status, warnings, metrics cards, open position, drawdowns,
yearly returns and the paginated, sortable trades table. Every value from the run is HTML-escaped (:func:`esc`)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from btlab.report.format import METRIC_SECTIONS, format_value, to_number
from btlab.report.run_row import run_currency, run_metric

#: Closed trades per page of the trades table (the reader can pick 25, 50, 100 or all).
TRADES_PAGE_SIZE = 25


# ---- formatting --------------------------------------------------------------------------------------------------
def fmt_ts(value: Any) -> str:
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


def esc(value: Any) -> str:
    """``value`` as HTML text (``None`` as empty), quotes escaped too (safe in attributes)."""
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


def fmt_num(value: Any, decimals: int) -> str:
    """A number with thousands separators and ``decimals`` decimals, "—" when missing (no "-0.00")."""
    v = to_number(value)
    if v is None or math.isnan(v):
        return "—"
    text = f"{v:,.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text[1:].replace(",", "")) == 0 else text


def signed_class(value: Any) -> str:
    """CSS class of a signed value: ``pos``, ``neg`` or "" (zero or missing)."""
    v = to_number(value)
    return "pos" if v is not None and v > 0 else "neg" if v is not None and v < 0 else ""


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



def header_html(run: Mapping[str, Any], bench_note: str) -> str:
    status = str(run.get("status") or "unknown")
    params = run.get("params")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            pass
    if isinstance(params, Mapping) and params:
        params_html = ", ".join(f"<code>{esc(k)}={esc(json.dumps(v) if not isinstance(v, str) else v)}</code>"
                                for k, v in params.items())
    elif isinstance(params, Mapping) or params is None:
        params_html = "<i>defaults</i>"
    else:
        params_html = f"<code>{esc(params)}</code>"
    instrument = f"{run.get('exchange') or '?'}:{run.get('symbols') or '?'}"
    commission = to_number(run.get("commission"))
    rows = [
        ("Strategy", f"<b>{esc(run.get('strategy'))}</b>"),
        ("Parameters", params_html),
        ("Instrument", esc(instrument)),
        ("Timeframe", esc(run.get("timeframe"))),
        ("Data", f"{esc(fmt_ts(run.get('data_from')))} → {esc(fmt_ts(run.get('data_to')))} UTC "
                 f"(bar open times; {esc(format_value(run.get('bars'), 'int'))} bars, calendar "
                 f"{esc(run.get('calendar') or '—')})"),
        ("Cash", esc(format_value(run.get("cash"), "money", run_currency(run)))),
        ("Commission", esc("—" if commission is None else f"{commission * 100:g} % of traded value")),
        ("Benchmark", esc(bench_note)),
        ("Run id", f"<code>{esc(run.get('run_id'))}</code>"),
        ("Started / finished", f"{esc(fmt_ts(run.get('ts')))} / {esc(fmt_ts(run.get('finished_at')))} UTC"),
        ("Status", f'<span class="status {esc(status)}">{esc(status)}</span>'),
        ("Versions", f"btlab {esc(run.get('btlab_version') or '—')}, Backtrader "
                     f"{esc(run.get('backtrader_version') or '—')}"),
        ("Config hash", f"<code>{esc(run.get('config_hash') or '—')}</code>"),
        ("Data hash", f"<code>{esc(run.get('data_hash') or '—')}</code>"),
    ]
    if run.get("sweep_id"):
        rows.insert(9, ("Sweep id", f"<code>{esc(run.get('sweep_id'))}</code>"))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def status_html(run: Mapping[str, Any]) -> str:
    status = str(run.get("status") or "")
    if status == "failed":
        error = run.get("error") or "(no error message recorded)"
        return (f'<section class="error" id="run-error"><h2>Run failed</h2><pre>{esc(error)}</pre>'
                "<p class=\"note\">Whatever was recorded before the failure is shown below.</p></section>")
    if status and status != "finished":
        return (f'<div class="warn">Run status is <b>{esc(status)}</b>: the run has not finished; results below are '
                "partial.</div>")
    return ""


_ORDER_COUNTS = (  # (run row column, label, bt_orders statuses counted for runs recorded without the column)
    ("orders_rejected", "rejected by the broker", ("Rejected",)),
    ("orders_margin", "refused for lack of cash (Margin)", ("Margin",)),
    ("orders_canceled", "canceled or expired", ("Canceled", "Expired")),
)


def warnings_html(run: Mapping[str, Any], orders: pd.DataFrame | None) -> str:
    """The run row's warnings and counts of orders that did not fill; empty when there is nothing to say."""
    items = [line.strip() for line in str(run.get("warnings") or "").splitlines() if line.strip()]
    counts = []
    for column, label, statuses in _ORDER_COUNTS:
        n = to_number(run.get(column))
        source = ""
        if (n is None or math.isnan(n)) and orders is not None and len(orders) and "status" in orders:
            final = orders.sort_values("ts", kind="stable").groupby("order_ref").tail(1)
            n = float(final["status"].isin(statuses).sum())
            source = " (counted from the stored orders)"
        if n:
            counts.append(f'<li data-count="{esc(column)}"><b>{int(n):,d}</b> order(s) {esc(label)}{esc(source)}</li>')
    if not items and not counts:
        return ""
    lines = "".join(f"<li>{esc(line)}</li>" for line in items)
    return (f'<section class="warn" id="warnings"><h2>Warnings</h2><ul>{lines}{"".join(counts)}</ul>'
            '<p class="note">Orders that did not fill change the result: check the sizing, cash and commission '
            "(bt_orders holds every order's final state).</p></section>")


def metrics_html(run: Mapping[str, Any]) -> str:
    metrics = run.get("metrics")
    has_any = isinstance(metrics, Mapping) and bool(metrics) or any(
        run.get(k) is not None for k in ("total_return", "sharpe", "max_drawdown"))
    if not has_any:
        return '<p class="empty">No metrics recorded for this run.</p>'
    currency = run_currency(run)
    cards = []
    for title, items in METRIC_SECTIONS:
        rows = "".join(
            f'<tr data-metric="{esc(key)}"><td>{esc(label)}</td>'
            f'<td class="v">{esc(format_value(run_metric(run, key), unit, currency))}</td></tr>'
            for key, label, unit in items
        )
        cards.append(f'<div class="card"><h3>{esc(title)}</h3><table class="metrics">{rows}</table></div>')
    return f'<div class="grid">{"".join(cards)}</div>'


def open_position_html(run: Mapping[str, Any], positions: pd.DataFrame | None, equity: pd.DataFrame,
                        currency: str | None) -> str:
    """The positions still open at the end of the run (not closed trades), or "" when flat."""
    last_pv = to_number(equity["position_value"].iloc[-1]) if len(equity) and "position_value" in equity else None
    n_trades = to_number(run_metric(run, "n_trades"))
    closed_note = ("No closed trades: the position below was still open when the run ended, and a trade counts "
                   "(in the trades table and the trade statistics) only once it is closed; its result is in the "
                   "equity, the returns and the risk metrics."
                   if n_trades == 0 else
                   "This position is not in the closed trades or the trade statistics; its result is in the "
                   "equity, the returns and the risk metrics.")
    if positions is None or positions.empty:
        if last_pv:  # orders not available: say what the equity curve shows
            return (f'<section id="open-position"><h2>Open at the end</h2><div class="card"><p>A position worth '
                    f"<b>{esc(format_value(last_pv, 'money', currency))}</b> was open at the last bar (from the "
                    f'equity curve; no orders to rebuild it from).</p><p class="note">{esc(closed_note)}</p>'
                    "</div></section>")
        return ""
    size_d = size_decimals(positions["size"])
    rows = []
    for p in positions.itertuples():
        price_d = price_decimals([p.avg_price, p.last_price])
        rows.append(
            f'<tr><td class="l">{esc(p.symbol)}</td><td class="l">{"long" if p.size > 0 else "short"}</td>'
            f"<td>{esc(fmt_num(p.size, size_d))}</td><td class=\"l\">{esc(fmt_ts(p.opened))}</td>"
            f"<td>{esc(fmt_num(p.avg_price, price_d))}</td><td>{esc(fmt_num(p.last_price, price_d))}</td>"
            f"<td>{esc(fmt_num(p.market_value, 2))}</td>"
            f'<td class="{signed_class(p.unrealized_pnl)}">{esc(fmt_num(p.unrealized_pnl, 2))}</td></tr>'
        )
    cur = f" ({esc(currency)})" if currency else ""
    pv = (f" The equity curve's position value at the last bar: {esc(format_value(last_pv, 'money', currency))}."
          if last_pv is not None else "")
    return (
        '<section id="open-position"><h2>Open at the end</h2><div class="card">'
        '<table class="data" id="open-positions"><thead><tr><th class="l">symbol</th><th class="l">side</th>'
        '<th>size</th><th class="l">opened (UTC)</th><th>average entry</th><th>last close</th>'
        f"<th>market value{cur}</th><th>unrealized PnL{cur}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p class="note">Rebuilt from the order fills (average fill price of the units held, commission '
        f"excluded), valued at the last bar's close.{pv}</p>"
        f'<p class="note" id="closed-trades-note">{esc(closed_note)}</p></div></section>'
    )


def drawdown_table_html(periods: pd.DataFrame) -> str:
    if periods.empty:
        return '<p class="empty">The equity never fell below a previous peak.</p>'
    rows = []
    for i, p in enumerate(periods.itertuples(), 1):
        recovery = fmt_ts(p.recovery) if not pd.isna(p.recovery) else "not recovered"
        rows.append(
            f"<tr><td>{i}</td><td class=\"l\">{esc(fmt_ts(p.peak))}</td><td class=\"l\">{esc(fmt_ts(p.trough))}</td>"
            f"<td class=\"l\">{esc(recovery)}</td><td class=\"neg\">{esc(format_value(p.depth, 'pct'))}</td>"
            f"<td>{esc(format_value(p.days_to_trough, 'days'))}</td>"
            f"<td>{esc(format_value(p.days_to_recovery, 'days'))}</td>"
            f"<td>{esc(format_value(p.days, 'days'))}</td><td>{esc(format_value(p.bars, 'int'))}</td></tr>"
        )
    return (
        '<table class="data" id="drawdown-table"><thead><tr><th>#</th><th class="l">peak (UTC)</th>'
        '<th class="l">trough</th><th class="l">recovery</th><th>depth</th><th>peak to trough</th>'
        "<th>trough to recovery</th><th>length</th><th>bars under water</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def tracking_table_html(record: Mapping[str, Any], currency: str | None) -> str:
    """The tracking table (``metrics["tracking"]``, :func:`btlab.backtest.tracking.tracking_record`): one row per
    basket (the run's own first, marked), one column per figure of :data:`~btlab.report.format.TRACKING_COLUMNS`."""
    from btlab.report.format import TRACKING_COLUMNS, TRACKING_ROWS

    rows, own = record.get("rows") or {}, record.get("own")
    body = []
    for name in [own, *(n for n in rows if n != own)]:
        row = rows[name]
        cells = "".join(f'<td data-col="{esc(key)}">{esc(format_value(row.get(key), unit, currency))}</td>'
                        for key, _, unit in TRACKING_COLUMNS)
        label = f"<b>{esc(name)}</b> (this run)" if name == own else esc(name)
        body.append(f'<tr data-row="{esc(name)}"><td class="l">{label}<br><span class="note">'
                    f"{esc(TRACKING_ROWS.get(name, ''))}</span></td>{cells}</tr>")
    head = "".join(f"<th>{esc(label)}</th>" for _, label, _ in TRACKING_COLUMNS)
    return (f'<table class="data" id="tracking-table"><thead><tr><th class="l">basket</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def yearly_table_html(table: pd.DataFrame) -> str:
    rows = []
    for year, row in table.iterrows():
        rows.append(
            f"<tr><td class=\"l\">{int(year)}</td>"
            + "".join(f'<td class="{signed_class(row[c])}">{esc(format_value(row[c], "pct"))}</td>'
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


def trades_html(trades: pd.DataFrame, currency: str | None, has_open: bool) -> str:
    if trades.empty:
        extra = " (a position was still open at the end: see above)" if has_open else ""
        return f'<p class="empty" id="no-trades">No closed trades{esc(extra)}.</p>'
    data = trades_table_data(trades)
    cur = f" ({esc(currency)})" if currency else ""
    heads = "".join(
        f'<th data-col="{j}" class="{"l" if c["t"] in ("text", "ts") else ""}">{esc(c["label"])}'
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
