"""The analytics of the run report (issue 6) on real runs: benchmark, drawdown periods, rolling statistics,
yearly returns, the position open at the end, warnings, the paginated and sortable trades table, the file size.

Every expected value comes from the run just made (its stored row, or a pure function of
``btlab.backtest.metrics`` on its stored data); the browser test pages and sorts the table in headless Chromium.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

import btlab
from btlab.backtest.compat import bt
from btlab.backtest.feed import BarFrameData
from btlab.backtest.metrics import (
    benchmark_equity,
    drawdown_periods,
    extended_conventions,
    open_positions,
    yearly_returns,
)
from btlab.backtest.recorder import Recorder
from btlab.report.format import METRIC_SECTIONS, format_value
from btlab.report.figures import MAX_LINE_POINTS
from btlab.report.html import render_report
from btlab.report.tables import price_decimals, size_decimals, trades_table_data
from btlab.report.write import write_report
from btlab.store.duckdb import DuckDBStore
from realdata import DATA, btc_1h, btc_1m
from browser import CHROMIUM, ERROR_TRAP as _ERROR_TRAP, run_chromium as _chromium

CASH = 10_000.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with DuckDBStore(tmp_path_factory.mktemp("report_analytics") / "r.duckdb") as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        yield st


@pytest.fixture(scope="module")
def demo_run(store):
    """What `make demo` runs: sma_cross 10/30 on BTC/USDT 1h 2020-2023, cash 10,000, commission 0.1 %."""
    return btlab.run_backtest("sma_cross", store=store, symbol="BTC/USDT", timeframe="1h", start="2020-01-01",
                              end="2023-12-31", params={"fast": 10, "slow": 30}, cash=CASH, commission=0.001)


@pytest.fixture(scope="module")
def demo_report(store, demo_run, tmp_path_factory) -> str:
    path = write_report(demo_run.run_id, tmp_path_factory.mktemp("demo") / "demo.html", store=store)
    return path.read_text(encoding="utf-8")


def _metric_cell(doc: str, key: str) -> str:
    m = re.search(rf'<tr data-metric="{key}"><td>[^<]*</td><td class="v">([^<]*)</td></tr>', doc)
    assert m, f"metric row {key} missing"
    return html.unescape(m.group(1))


def _plot(doc: str, div_id: str) -> tuple[list[dict], dict]:
    """The data and layout handed to Plotly.newPlot for one chart."""
    m = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*', doc)
    assert m, f"no chart {div_id}"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(doc, m.end())
    layout, _ = decoder.raw_decode(doc, doc.index("{", end))
    return data, layout


def _array(value) -> np.ndarray:
    """A plotly array: a base64 typed array ({dtype, bdata}) or a list."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).astype("float64")
    return np.asarray(value, dtype="float64")


def _trace(data: list[dict], name: str) -> dict:
    found = [t for t in data if t.get("name") == name]
    assert len(found) == 1, [t.get("name") for t in data]
    return found[0]


def _table_rows(doc: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table class="data" id="{table_id}">.*?<tbody>(.*?)</tbody>', doc, re.S).group(1)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body)]


# ---- size ------------------------------------------------------------------------------------------------------
def test_demo_report_is_under_2_mb_with_plotly_once(demo_report):
    size = len(demo_report.encode("utf-8"))
    assert size < 2_000_000, size  # was 5.6 MB with the full plotly.js and uncompressed series
    assert demo_report.count("plotly.js (cartesian - minified) v") == 1
    assert demo_report.count("Plotly.newPlot(") == 6


# ---- metrics, read from the run row ----------------------------------------------------------------------------
def test_every_metric_section_is_shown_from_the_stored_row(store, demo_run, demo_report):
    stored = store.get_run(demo_run.run_id)["metrics"]
    for _, rows in METRIC_SECTIONS:
        for key, _, unit in rows:
            assert _metric_cell(demo_report, key) == format_value(stored[key], unit, "USDT"), key
    for key in ("alpha", "beta", "information_ratio", "sqn", "var_95", "cvar_95", "skew", "kurtosis",
                "benchmark_total_return", "expectancy", "avg_holding_days"):
        assert math.isfinite(stored[key]), key
    assert _metric_cell(demo_report, "avg_holding_days") == f"{stored['avg_holding_days']:.1f} d"
    assert html.escape(extended_conventions("crypto")) in demo_report
    assert "windows of 90 daily returns" in extended_conventions("crypto")
    assert "windows of 63 daily returns" in extended_conventions("equity")


def test_duration_unit():
    assert format_value(2.25, "duration") == "2.2 d"
    assert format_value(0.5, "duration") == "12.0 h"
    assert format_value(10 / 1440, "duration") == "10 min"
    assert format_value(float("nan"), "duration") == "—"


# ---- benchmark and drawdowns on the equity chart ---------------------------------------------------------------
def test_equity_chart_draws_the_benchmark_the_metrics_measured(store, demo_run, demo_report):
    m = store.get_run(demo_run.run_id)["metrics"]
    data, layout = _plot(demo_report, "chart-equity")
    bench = benchmark_equity(demo_run.bars, CASH, index=demo_run.equity.index)
    line = _trace(data, "buy and hold")
    x, y = _array(line["x"]), _array(line["y"])
    assert len(y) <= MAX_LINE_POINTS + 2 < len(bench)  # decimated for display...
    at = pd.to_datetime(x.astype("int64"), unit="ms", utc=True)
    np.testing.assert_allclose(y, bench.reindex(at).to_numpy(), rtol=1e-6)  # ...with real points (float32)
    assert y[-1] == pytest.approx(CASH * (1 + m["benchmark_total_return"]), rel=1e-6)
    bench_dd = _array(_trace(data, "buy and hold drawdown")["y"])
    assert bench_dd.min() == pytest.approx(m["benchmark_max_drawdown"], rel=1e-6)  # the extremes are kept
    strat_dd = _array(_trace(data, "strategy drawdown")["y"])
    assert strat_dd.min() == pytest.approx(m["max_drawdown"], rel=1e-6)
    assert _array(_trace(data, "strategy")["y"]).max() == pytest.approx(demo_run.equity["value"].max(), rel=1e-6)
    assert [b["label"] for b in layout["updatemenus"][0]["buttons"]] == ["linear", "log"]


def test_worst_drawdowns_table(store, demo_run, demo_report):
    m = store.get_run(demo_run.run_id)["metrics"]
    periods = drawdown_periods(store.read_equity(demo_run.run_id).set_index("ts")["value"], CASH)
    rows = _table_rows(demo_report, "drawdown-table")
    assert len(rows) == 5
    assert rows[0][4] == format_value(m["max_drawdown"], "pct")  # the deepest is the max drawdown
    for row, p in zip(rows, periods.itertuples()):
        assert row[1] == p.peak.strftime("%Y-%m-%d %H:%M") and row[2] == p.trough.strftime("%Y-%m-%d %H:%M")
        assert row[3] == ("not recovered" if pd.isna(p.recovery) else p.recovery.strftime("%Y-%m-%d %H:%M"))
        assert row[4] == format_value(p.depth, "pct") and row[7] == format_value(p.days, "days")
    depths = [float(r[4].replace(" %", "")) for r in rows]
    assert depths == sorted(depths)


def test_rolling_and_histogram_charts_use_the_daily_returns(store, demo_run, demo_report):
    m = store.get_run(demo_run.run_id)["metrics"]
    data, layout = _plot(demo_report, "chart-rolling")
    sharpe = [t for t in data if t.get("yaxis", "y") == "y"]
    assert {t["name"] for t in sharpe} == {"strategy", "buy and hold"}
    strategy = _trace(sharpe, "strategy")
    assert strategy["dx"] == 86_400_000  # one point a day, no times to send
    y = _array(strategy["y"])
    assert len(y) == m["n_days"] and np.isnan(y[:89]).all() and np.isfinite(y[89:]).any()
    assert layout["yaxis"]["title"]["text"] == "Sharpe (90 d)"
    hist, hist_layout = _plot(demo_report, "chart-histogram")
    values = _array(_trace(hist, "strategy")["x"])
    assert len(values) == m["n_days"]
    assert values.max() == pytest.approx(m["best_day"], rel=1e-6)
    assert values.min() == pytest.approx(m["worst_day"], rel=1e-6)
    lines = [s["x0"] for s in hist_layout["shapes"]]
    assert lines == [pytest.approx(m["var_95"]), pytest.approx(m["cvar_95"])]


def test_yearly_returns_table_against_the_benchmark(store, demo_run, demo_report):
    value = store.read_equity(demo_run.run_id).set_index("ts")["value"]
    bench = benchmark_equity(demo_run.bars, CASH, index=value.index)
    table = yearly_returns(value, CASH, bench)
    rows = _table_rows(demo_report, "yearly-table")
    assert [r[0] for r in rows] == ["2020", "2021", "2022", "2023"]
    for row, (_, exp) in zip(rows, table.iterrows()):
        assert row[1:] == [format_value(exp[c], "pct") for c in ("strategy", "benchmark", "excess")]


# ---- the position open at the end, and "closed trades 0" ---------------------------------------------------------
def test_open_position_at_the_end_is_shown(store, demo_run, demo_report):
    position = demo_run.strategy.getposition(demo_run.strategy.datas[0])
    assert position.size > 0  # the demo ends long
    rows = _table_rows(demo_report, "open-positions")
    assert len(rows) == 1
    symbol, side, size, opened, avg, last, market, unrealized = rows[0]
    d = size_decimals(demo_run.trades["size"])  # the same precision as the trades table
    assert (symbol, side, size) == ("BTC/USDT", "long", f"{position.size:,.{d}f}")
    assert avg == f"{position.price:,.2f}" and last == f"{demo_run.bars['close'].iloc[-1]:,.2f}"
    assert market == f"{demo_run.equity['position_value'].iloc[-1]:,.2f}"
    expected = open_positions(store.read_orders(demo_run.run_id), {"BTC/USDT": demo_run.bars["close"].iloc[-1]})
    assert opened == expected["opened"].iloc[0].strftime("%Y-%m-%d %H:%M")
    assert "This position is not in the closed trades" in demo_report


def test_buy_and_hold_with_no_closed_trade_is_explained(store, tmp_path):
    result = btlab.run_backtest("buy_hold", store=store, start="2021-01-01", end="2021-06-30")
    assert result.summary.n_trades == 0
    doc = write_report(result.run_id, tmp_path / "bh.html", store=store).read_text(encoding="utf-8")
    assert _metric_cell(doc, "n_trades") == "0"
    note = re.search(r'<p class="note" id="closed-trades-note">(.*?)</p>', doc).group(1)
    assert html.unescape(note).startswith("No closed trades: the position below was still open when the run ended")
    assert "No closed trades (a position was still open at the end: see above)." in doc
    rows = _table_rows(doc, "open-positions")
    position = result.strategy.getposition(result.strategy.datas[0])
    assert rows[0][2] == f"{position.size:,.{size_decimals([position.size])}f}"
    # without the orders, the equity curve still tells that a position was open
    run = store.get_run(result.run_id)
    bare = render_report(run, result.equity, result.trades, result.bars)
    assert "A position worth" in bare and 'id="open-position"' in bare


# ---- warnings ---------------------------------------------------------------------------------------------------
def test_orders_that_did_not_fill_are_warned_about(store, tmp_path):
    """--stake 100 (100 BTC) cannot be paid: every order ends Margin; the report says so, from the orders."""
    result = btlab.run_backtest("sma_cross", store=store, start="2021-01-01", end="2021-02-28", stake=100,
                                params={"fast": 10, "slow": 30})
    margin = int((result.orders["status"] == "Margin").sum())
    assert margin > 0 and result.summary.n_trades == 0
    doc = write_report(result.run_id, tmp_path / "margin.html", store=store).read_text(encoding="utf-8")
    box = re.search(r'<section class="warn" id="warnings">(.*?)</section>', doc, re.S).group(1)
    # the recorder stored the count with the run
    assert f'<li data-count="orders_margin"><b>{margin:,d}</b> order(s) refused for lack of cash (Margin)</li>' in box
    assert doc.index('id="warnings"') < doc.index("<h2>Metrics</h2>")

    # a run recorded before the counts existed: counted from the stored orders, and said so
    run = store.get_run(result.run_id)
    store.write_run({**run, "warnings": None, "orders_margin": None, "orders_rejected": None,
                     "orders_canceled": None})
    doc = write_report(result.run_id, tmp_path / "margin0.html", store=store).read_text(encoding="utf-8")
    box = re.search(r'<section class="warn" id="warnings">(.*?)</section>', doc, re.S).group(1)
    assert (f'<li data-count="orders_margin"><b>{margin:,d}</b> order(s) refused for lack of cash (Margin) '
            "(counted from the stored orders)</li>") in box

    # a run row that carries the warnings and counts (as the recorder writes them) shows them as they are
    store.write_run({**run, "warnings": f"{margin} orders refused: not enough cash <b>stake 100</b>\nsecond line",
                     "orders_margin": margin, "orders_rejected": 0, "orders_canceled": 2})
    doc = write_report(result.run_id, tmp_path / "margin2.html", store=store).read_text(encoding="utf-8")
    box = re.search(r'<section class="warn" id="warnings">(.*?)</section>', doc, re.S).group(1)
    assert f"<li>{margin} orders refused: not enough cash &lt;b&gt;stake 100&lt;/b&gt;</li><li>second line</li>" in box
    assert f'<li data-count="orders_margin"><b>{margin:,d}</b> order(s) refused for lack of cash (Margin)</li>' in box
    assert '<li data-count="orders_canceled"><b>2</b> order(s) canceled or expired</li>' in box
    assert "orders_rejected" not in box  # zero: not listed


def test_demo_warns_only_of_its_real_data_gaps(demo_report, demo_run):
    """The demo's orders all fill; its only warning is the exchange outages in the bundled 1h data."""
    box = re.search(r'<section class="warn" id="warnings">(.*?)</section>', demo_report, re.S).group(1)
    assert "data-count" not in box  # no Margin/Rejected/Canceled orders
    items = re.findall(r"<li>(.*?)</li>", box)
    assert items == [html.escape(w, quote=False) for w in demo_run.warnings]
    assert len(items) == 1 and "binance:BTC/USDT 1h: 15 gap(s) inside the range, 32 missing bar(s)" in items[0]


# ---- trades table -------------------------------------------------------------------------------------------------
def test_trades_table_data_has_one_precision_per_column(demo_run, demo_report):
    data = json.loads(re.search(r'<script type="application/json" id="trades-data">(.*?)</script>', demo_report,
                                re.S).group(1))
    cols = {c["label"]: (j, c) for j, c in enumerate(data["cols"])}
    j, size_col = cols["size"]
    d = size_col["d"]
    assert d == size_decimals(demo_run.trades["size"]) == 8  # PercentSizer sizes: the full 8 decimals
    sizes = np.array([r[j] for r in data["rows"]])
    np.testing.assert_allclose(sizes, demo_run.trades["size"].to_numpy(), atol=0.5 * 10**-d)
    assert cols["entry price"][1]["d"] == cols["exit price"][1]["d"] == 2 and cols["net PnL"][1]["d"] == 2
    assert len(data["rows"]) == len(demo_run.trades) and data["page"] == 25
    first = demo_run.trades.iloc[0]
    row = data["rows"][0]
    assert row[cols["entry (UTC)"][0]] == first["entry_ts"].value // 10**9
    assert row[cols["net PnL"][0]] == round(first["pnl_net"], 2)


def test_size_and_price_decimals():
    assert size_decimals([1.0, 2.0, -3.0]) == 0  # whole units (stakes)
    assert size_decimals([0.5, 1.25, 2.0]) == 2
    assert size_decimals([0.123456789123]) == 8
    assert price_decimals([42_283.58]) == 2 and price_decimals([1.2345]) == 5 and price_decimals([0.000123]) == 9
    frame = pd.DataFrame({"size": [1.0, -2.0], "entry_price": [10.0, 11.0], "exit_price": [12.0, 9.5],
                          "pnl_net": [2.0, 3.0], "direction": ["long", "short"]})
    data = trades_table_data(frame)
    assert next(c for c in data["cols"] if c["label"] == "size")["d"] == 0
    assert [r[0] for r in data["rows"]] == [None, None]  # no trade_ref column: empty cells, not an error


def test_text_in_the_trades_data_cannot_close_the_script(demo_run):
    trades = demo_run.trades.head(3).copy()
    trades["symbol"] = "</script><img src=x onerror=alert(1)>"
    run = {"run_id": "x", "symbols": "BTC/USDT", "status": "finished", "cash": CASH}
    doc = render_report(run, demo_run.equity, trades, demo_run.bars)
    blob = re.search(r'<script type="application/json" id="trades-data">(.*?)</script>', doc, re.S).group(1)
    assert "<" not in blob and json.loads(blob)["rows"][0][1] == "</script><img src=x onerror=alert(1)>"


def test_short_run_is_drawn_in_full(store, tmp_path):
    result = btlab.run_backtest("sma_cross", store=store, start="2022-03-01", end="2022-03-31")
    assert len(result.equity) <= MAX_LINE_POINTS
    doc = write_report(result.run_id, tmp_path / "short.html", store=store).read_text(encoding="utf-8")
    assert 'id="downsample-note"' not in doc
    data, _ = _plot(doc, "chart-equity")
    assert len(_array(_trace(data, "strategy")["y"])) == len(result.equity)


# ---- several instruments ------------------------------------------------------------------------------------------
class Basket(bt.Strategy):
    """Buys both instruments on bar 10, sells BTC on bar 1,000 (ETH stays open)."""

    def next(self):
        if len(self) == 10:
            for d in self.datas:  # fractional units (Backtrader's order_target_* would round them down)
                self.buy(data=d, size=0.45 * self.broker.getvalue() / d.close[0])
        if len(self) == 1_000:
            self.close(data=self.datas[0])


@pytest.fixture(scope="module")
def basket_run(tmp_path_factory):
    """A recorded two-feed run on real 1m BTC/USDT and ETH/USDT bars (symbols 'BTC/USDT,ETH/USDT')."""
    btc = btc_1m().iloc[:3_000].reset_index(drop=True)
    eth = pd.read_feather(DATA / "ETH_USDT-1m_2025-05-20_2025-08-18.feather").rename(columns={"date": "ts"})
    eth = eth.iloc[:3_000].reset_index(drop=True)
    st = DuckDBStore(tmp_path_factory.mktemp("basket") / "b.duckdb")
    st.write_bars(btc, exchange="binance", symbol="BTC/USDT", timeframe="1m", source="test")
    st.write_bars(eth, exchange="binance", symbol="ETH/USDT", timeframe="1m", source="test")
    run = {"run_id": "basket-1", "ts": datetime.now(timezone.utc), "strategy": "Basket", "params": {},
           "exchange": "binance", "symbols": "BTC/USDT,ETH/USDT", "timeframe": "1m", "data_from": btc["ts"].iloc[0],
           "data_to": btc["ts"].iloc[-1], "bars": len(btc), "calendar": "crypto", "cash": CASH, "commission": 0.001}
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(BarFrameData(bars=btc, bars_timeframe="1m"), name="BTC/USDT")
    cerebro.adddata(BarFrameData(bars=eth, bars_timeframe="1m"), name="ETH/USDT")
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=0.001)
    cerebro.addstrategy(Basket)
    cerebro.addanalyzer(Recorder, _name="rec", store=st, run=run)
    strat = cerebro.run()[0]
    yield st, strat, btc, eth
    st.close()


def test_report_of_a_two_instrument_run(basket_run, tmp_path):
    st, strat, btc, eth = basket_run
    doc = write_report("basket-1", tmp_path / "basket.html", store=st).read_text(encoding="utf-8")
    assert 'id="chart-price"' in doc and 'id="chart-price-2"' in doc
    assert "Price and trades (BTC/USDT)" in doc and "Price and trades (ETH/USDT)" in doc
    assert "equal-weight buy and hold of BTC/USDT, ETH/USDT" in doc
    data, _ = _plot(doc, "chart-equity")
    half = CASH / 2
    basket_end = half / btc["open"][0] * btc["close"].iloc[-1] + half / eth["open"][0] * eth["close"].iloc[-1]
    assert _array(_trace(data, "buy and hold")["y"])[-1] == pytest.approx(basket_end, rel=1e-6)
    assert st.get_run("basket-1")["metrics"]["benchmark_total_return"] == pytest.approx(basket_end / CASH - 1,
                                                                                          rel=1e-12)
    rows = _table_rows(doc, "open-positions")  # ETH still held, BTC closed
    assert [r[0] for r in rows] == ["ETH/USDT"]
    eth_size = strat.getposition(strat.datas[1]).size
    assert eth_size > 0 and rows[0][2] == f"{eth_size:,.{size_decimals([eth_size])}f}"
    trades = json.loads(re.search(r'id="trades-data">(.*?)</script>', doc, re.S).group(1))["rows"]
    assert [r[1] for r in trades] == ["BTC/USDT"]  # the one closed trade, with its symbol


# ---- in the browser: paging and sorting ---------------------------------------------------------------------------
_PROBE = """<script>window.addEventListener('load',function(){setTimeout(function(){
var d=document.documentElement,t=document.getElementById('trades-table'),info=document.getElementById('trades-info');
function rows(){return t.tBodies[0].rows;}
function first(k){return rows()[0].cells[k].textContent;}
d.setAttribute('data-p1',rows().length+'|'+first(0)+'|'+info.textContent);
document.getElementById('trades-next').click();
d.setAttribute('data-p2',rows().length+'|'+first(0)+'|'+info.textContent);
document.getElementById('trades-last').click();
d.setAttribute('data-plast',rows().length+'|'+first(0)+'|'+document.getElementById('trades-next').disabled);
var net=t.tHead.rows[0].cells.length-1;
t.tHead.rows[0].cells[net].click();
d.setAttribute('data-asc',first(net)+'|'+t.tHead.rows[0].cells[net].getAttribute('aria-sort'));
t.tHead.rows[0].cells[net].click();
d.setAttribute('data-desc',first(net)+'|'+first(0)+'|'+t.tHead.rows[0].cells[net].getAttribute('aria-sort'));
var sel=document.getElementById('trades-size');sel.value='0';sel.dispatchEvent(new Event('change'));
d.setAttribute('data-all',rows().length+'|'+rows()[0].cells[net].className);
},50);});</script>"""


@pytest.mark.browser
# CI sets BTLAB_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping.
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("BTLAB_REQUIRE_BROWSER"),
                    reason="chromium not on PATH (Debian: apt-get install chromium)")
def test_trades_table_pages_and_sorts_in_chromium(demo_run, demo_report, tmp_path):
    page = tmp_path / "page.html"
    page.write_text(demo_report.replace("<head>", "<head>" + _ERROR_TRAP, 1).replace("</body>", _PROBE + "</body>"),
                    encoding="utf-8")
    res = _chromium(page.as_uri(), tmp_path / "profile", "--window-size=1400,1000", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    root = re.search(r"<html([^>]*)>", res.stdout).group(1)
    attrs = {k: html.unescape(v) for k, v in re.findall(r'(data-[a-z0-9]+)="([^"]*)"', root)}
    assert "data-jserr" not in attrs, attrs.get("data-jserr")
    trades = demo_run.trades
    n = len(trades)
    refs = [f"{ref:,d}" for ref in trades["trade_ref"].astype(int)]  # shown like every integer: 1,065
    assert attrs["data-p1"] == f"25|{refs[0]}|rows 1–25 of {n} · page 1 of {math.ceil(n / 25)}"
    assert attrs["data-p2"] == f"25|{refs[25]}|rows 26–50 of {n} · page 2 of {math.ceil(n / 25)}"
    last_page = n - 25 * (math.ceil(n / 25) - 1)
    assert attrs["data-plast"] == f"{last_page}|{refs[25 * (math.ceil(n / 25) - 1)]}|true"
    worst, best = trades["pnl_net"].min(), trades["pnl_net"].max()
    assert attrs["data-asc"] == f"{worst:,.2f}|ascending"
    best_ref = f'{int(trades.loc[trades["pnl_net"].idxmax(), "trade_ref"]):,d}'
    assert attrs["data-desc"] == f"{best:,.2f}|{best_ref}|descending"
    assert attrs["data-all"] == f"{n}|pos"  # every row at once; the best trade first, coloured as a win
    # the sections a quant reads all drew
    for div in ("chart-equity", "chart-rolling", "chart-histogram", "chart-yearly", "chart-monthly", "chart-price"):
        assert re.search(rf'id="{div}" class="[^"]*js-plotly-plot', res.stdout), div
