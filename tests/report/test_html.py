"""HTML report of a run (btlab.report.html) on real BTC/USDT 1h runs made with btlab.run_backtest.

Nothing here is a hard-coded result: every expected value is read from the run the test just made.
The browser test loads the report in headless Chromium (Debian package ``chromium``) and checks from the DOM and a
screenshot that every chart drew; it is skipped when ``chromium`` is not on PATH.
"""

from __future__ import annotations

import html
import json
import os
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import btlab
from btlab.backtest.compat import bt
from btlab.backtest.metrics import CONVENTIONS, monthly_returns
from btlab.errors import RunNotFoundError
from btlab.report.figures import MAX_LINE_POINTS, downsample_minmax
from btlab.report.format import format_value
from btlab.report.html import render_report
from btlab.report.write import write_report
from btlab.store.duckdb import DuckDBStore
from btlab.strategies.sma_cross import SmaCross
from browser import CHROMIUM, ERROR_TRAP as _ERROR_TRAP, run_chromium as _chromium
from realdata import btc_1h

EVIL = "<script>alert(1)</script>"


class NotedSmaCross(SmaCross):
    """sma_cross with a free-text parameter (user text that must be escaped in the report)."""

    params = (("note", ""),)


class Idle(bt.Strategy):
    """Never trades."""


class Exploding(bt.Strategy):
    """Buys, then raises after ``after`` bars with an error message containing HTML."""

    params = (("after", 300),)

    def next(self) -> None:
        if len(self) == 50:
            self.buy()
        if len(self) == 120:
            self.close()
        if len(self) > self.p.after:
            raise RuntimeError(f'<img src=x onerror="alert(2)"> exploded at bar {len(self)}')


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with DuckDBStore(tmp_path_factory.mktemp("report") / "s.duckdb") as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        yield st


@pytest.fixture(scope="module")
def full_run(store):
    """sma_cross over all 58,419 bars, with a hostile free-text parameter."""
    return btlab.run_backtest(NotedSmaCross, store=store, params={"fast": 20, "slow": 100, "note": EVIL})


@pytest.fixture(scope="module")
def full_report(store, full_run, tmp_path_factory) -> Path:
    return write_report(full_run.run_id, tmp_path_factory.mktemp("out") / "full" / "report.html", store=store)


@pytest.fixture(scope="module")
def idle_run(store):
    return btlab.run_backtest(Idle, store=store, start="2023-01-01", end="2023-03-31")


@pytest.fixture(scope="module")
def failed_run_id(store):
    with pytest.raises(RuntimeError, match="exploded"):
        btlab.run_backtest(Exploding, store=store, start="2022-01-01", end="2022-06-30", run_id="failing-run")
    return "failing-run"


# ---- content ------------------------------------------------------------------------------------------------
def _metric_cell(doc: str, key: str) -> str:
    m = re.search(rf'<tr data-metric="{key}"><td>[^<]*</td><td class="v">([^<]*)</td></tr>', doc)
    assert m, f"metric row {key} missing"
    return html.unescape(m.group(1))


def test_report_shows_run_metrics_formatted_and_conventions(store, full_run, full_report):
    doc = full_report.read_text(encoding="utf-8")
    m = full_run.metrics
    run = store.get_run(full_run.run_id)
    assert run["metrics"]["end_value"] == m["end_value"]  # the report's source is the stored row
    assert _metric_cell(doc, "total_return") == f"{m['total_return'] * 100:,.2f} %"
    assert _metric_cell(doc, "cagr") == f"{m['cagr'] * 100:,.2f} %"
    assert _metric_cell(doc, "max_drawdown") == f"{m['max_drawdown'] * 100:,.2f} %"
    assert _metric_cell(doc, "win_rate") == f"{m['win_rate'] * 100:,.2f} %"
    assert _metric_cell(doc, "sharpe") == f"{m['sharpe']:.2f}"
    assert _metric_cell(doc, "sortino") == f"{m['sortino']:.2f}"
    assert _metric_cell(doc, "end_value") == f"{m['end_value']:,.2f} USDT"
    assert _metric_cell(doc, "avg_trade") == f"{m['avg_trade']:,.2f} USDT"
    assert _metric_cell(doc, "n_trades") == f"{int(m['n_trades']):,d}"
    assert _metric_cell(doc, "n_bars") == "58,419"
    assert _metric_cell(doc, "max_drawdown_days") == f"{m['max_drawdown_days']:,.1f} d"
    sentence = CONVENTIONS.format(periods=365, calendar="crypto")
    assert html.escape(sentence) in doc
    # header: strategy, instrument, range (the last bar's open time), ids and hashes
    assert html.escape(run["strategy"]) in doc
    assert "binance:BTC/USDT" in doc
    assert "2017-08-17 04:00 → 2024-04-21 14:00 UTC" in doc
    for key in ("run_id", "config_hash", "data_hash", "btlab_version", "backtrader_version"):
        assert html.escape(str(run[key])) in doc
    # all trades listed, one row each, and every entry/exit drawn as a marker (checked in the browser test)
    n = int(m["n_trades"])
    assert n > 50
    data = json.loads(re.search(r'<script type="application/json" id="trades-data">(.*?)</script>', doc, re.S)
                      .group(1))
    assert len(data["rows"]) == n  # every trade, paged by the table script (checked in the browser test)
    assert [r[0] for r in data["rows"]] == [int(v) for v in full_run.trades["trade_ref"]]
    assert f"Closed trades ({n:,d})" in doc


def test_report_is_self_contained_and_reasonably_small(full_report):
    doc = full_report.read_text(encoding="utf-8")
    assert re.search(r"<script[^>]*\ssrc=", doc) is None and "<link" not in doc  # nothing fetched
    assert doc.count("plotly.js (cartesian - minified) v") == 1  # plotly.js once, inline
    assert doc.count("<script") == 1 + 6 + 2  # plotly.js, one call per chart, the trades data and its script
    assert doc.count('Plotly.newPlot(') == 6
    size = full_report.stat().st_size
    assert size < 2_000_000, size  # 58,419 bars and 387 trades
    assert 'id="downsample-note"' in doc  # 58k bars > MAX_LINE_POINTS: said so in the report


def test_user_text_is_escaped(full_report, failed_run_id, store, tmp_path):
    doc = full_report.read_text(encoding="utf-8")
    assert EVIL not in doc
    assert html.escape(EVIL) in doc
    failed = write_report(failed_run_id, tmp_path / "failed.html", store=store).read_text(encoding="utf-8")
    assert '<img src=x onerror="alert(2)">' not in failed
    assert html.escape('<img src=x onerror="alert(2)">') in failed


def test_failed_run_shows_error_prominently(store, failed_run_id, tmp_path):
    run = store.get_run(failed_run_id)
    assert run["status"] == "failed"
    doc = write_report(failed_run_id, tmp_path / "failed.html", store=store).read_text(encoding="utf-8")
    box = re.search(r'<section class="error" id="run-error"><h2>Run failed</h2><pre>(.*?)</pre>', doc, re.S)
    assert box, "no error box"
    assert html.unescape(box.group(1)) == run["error"]
    assert "exploded at bar" in run["error"]
    assert doc.index('id="run-error"') < doc.index("<h2>Metrics</h2>")  # before everything else
    assert "No metrics recorded for this run." in doc
    # what was recorded before the failure is still drawn
    assert 'id="chart-equity"' in doc and 'id="chart-price"' in doc


def test_zero_trade_run_renders(store, idle_run, tmp_path):
    assert int(idle_run.metrics["n_trades"]) == 0
    doc = write_report(idle_run.run_id, tmp_path / "idle.html", store=store).read_text(encoding="utf-8")
    assert "No closed trades." in doc
    assert 'id="trades-table"' not in doc
    for div in ("chart-equity", "chart-price", "chart-monthly", "chart-rolling", "chart-histogram"):
        assert f'id="{div}"' in doc
    assert 'id="open-position"' not in doc  # never traded: nothing held
    warnings = re.search(r'<section class="warn" id="warnings">(.*?)</section>', doc, re.S)
    assert warnings is None or ("data-count" not in warnings.group(1)  # no refused orders, only data gaps
                                and all("gap(s) inside the range" in li
                                        for li in re.findall(r"<li>(.*?)</li>", warnings.group(1))))
    assert _metric_cell(doc, "win_rate") == "—"  # NaN
    assert _metric_cell(doc, "profit_factor") == "—"
    assert _metric_cell(doc, "total_return") == "0.00 %"
    assert len(idle_run.equity) > MAX_LINE_POINTS and 'id="downsample-note"' in doc  # said when reduced


def test_monthly_heatmap_uses_metrics_monthly_returns(store, full_run, full_report):
    doc = full_report.read_text(encoding="utf-8")
    equity = store.read_equity(full_run.run_id).set_index("ts")["value"]
    table = monthly_returns(equity, float(full_run.metrics["start_value"]))
    for (year, month) in ((2019, 5), (2021, 11), (2024, 4)):
        assert f'"{table.loc[year, month] * 100:.1f}%"' in doc
    assert f'"{table.loc[2020, "year"] * 100:.1f}%"' in doc
    assert '"Year"' in doc


def test_default_path_and_unknown_run(store, idle_run, tmp_path, monkeypatch):
    from btlab.settings import get_settings

    monkeypatch.setenv("BTLAB_REPORTS", str(tmp_path / "deep" / "reports"))
    get_settings.cache_clear()
    try:
        path = write_report(idle_run.run_id, store=store)
    finally:
        get_settings.cache_clear()
    assert path == tmp_path / "deep" / "reports" / f"{idle_run.run_id}.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(RunNotFoundError):
        write_report("no-such-run", tmp_path / "x.html", store=store)
    assert not (tmp_path / "x.html").exists()


def test_write_report_reads_the_runs_exact_bar_range(store, idle_run, tmp_path, monkeypatch):
    import btlab.report.write as report_write

    seen = {}
    real = report_write.render_report

    def spy(run, equity, trades, bars, orders=None, states=None):
        seen.update(run=run, equity=equity, trades=trades, bars=bars, orders=orders)
        return real(run, equity, trades, bars, orders)

    monkeypatch.setattr(report_write, "render_report", spy)
    write_report(idle_run.run_id, tmp_path / "r.html", store=store)
    assert list(seen["bars"]) == ["BTC/USDT"]  # {symbol: bars} for every symbol of the run
    bars, run = seen["bars"]["BTC/USDT"], seen["run"]
    assert len(bars) == run["bars"] == len(idle_run.bars)  # data_to is the last bar's open time: included
    assert bars["ts"].iloc[0] == run["data_from"] and bars["ts"].iloc[-1] == run["data_to"]
    assert len(seen["equity"]) == len(idle_run.equity)


def test_render_report_accepts_backtest_result_frames(full_run, store):
    """The frames of a BacktestResult (equity indexed by ts) render like the stored ones."""
    run = store.get_run(full_run.run_id)
    doc = render_report(run, full_run.equity, full_run.trades, full_run.bars)
    assert _metric_cell(doc, "sharpe") == f"{full_run.metrics['sharpe']:.2f}"
    for div in ("chart-equity", "chart-price", "chart-monthly"):
        assert f'id="{div}"' in doc


def test_format_value_units():
    assert format_value(0.123456, "pct") == "12.35 %"
    assert format_value(-0.5, "pct") == "-50.00 %"
    assert format_value(1234567.891, "money", "USDT") == "1,234,567.89 USDT"
    assert format_value(float("nan"), "ratio") == "—"
    assert format_value(None, "money") == "—"
    assert format_value(float("inf"), "ratio") == "∞"
    assert format_value(float("-inf"), "ratio") == "−∞"
    assert format_value(21934, "int") == "21,934"
    assert format_value(913.958, "days") == "914.0 d"


def test_downsample_keeps_extremes_and_ends():
    close = btc_1h()["close"].to_numpy()
    x = np.arange(len(close))
    xs, ys = downsample_minmax(x, close)
    assert len(ys) <= MAX_LINE_POINTS + 2
    assert ys.max() == close.max() and ys.min() == close.min()
    assert xs[0] == 0 and xs[-1] == len(close) - 1
    assert np.all(np.diff(xs) > 0)
    assert np.array_equal(ys, close[xs])  # real points, not averages
    small = close[:100]
    assert downsample_minmax(x[:100], small)[1] is small


# ---- browser -----------------------------------------------------------------------------------------------


class _Charts(HTMLParser):
    """Collects, per chart div (id chart-*), the classes and tags of its rendered descendants."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []  # (tag, chart id this element opened)
        self.current: str | None = None
        self.charts: dict[str, dict] = {}
        self.root_attrs: dict[str, str | None] = {}

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root_attrs = a
        opened = None
        if self.current is None and (a.get("id") or "").startswith("chart-"):
            self.current = opened = a["id"]
            self.charts[opened] = {"div_class": a.get("class") or "", "classes": [], "tags": [], "paths": [],
                                   "images": [], "texts": []}
        if self.current is not None:
            c = self.charts[self.current]
            c["tags"].append(tag)
            c["classes"].extend((a.get("class") or "").split())
            if tag == "path":
                c["paths"].append((a.get("class") or "", a.get("d") or ""))
            if tag == "image":
                c["images"].append(a.get("href") or a.get("xlink:href") or "")
        if tag not in self._VOID:
            self.stack.append((tag, opened))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self._VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        while self.stack:
            t, opened = self.stack.pop()
            if opened is not None:
                self.current = None
            if t == tag:
                break

    def handle_data(self, data):
        if self.current is not None and data.strip():
            self.charts[self.current]["texts"].append(data.strip())


def _png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) to an (h, w, channels) uint8 array.

    PNG filters are undone along anti-diagonals, so each step is one vectorized numpy operation.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    w, h, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, w * bpp + 1)
    kinds = raw[:, 0].astype(np.int16)
    filt = raw[:, 1:].reshape(h, w, bpp).astype(np.int16)
    out = np.zeros((h + 1, w + 1, bpp), np.int16)  # row 0 / column 0: zero padding
    for k in range(h + w - 1):
        i = np.arange(max(0, k - w + 1), min(h - 1, k) + 1)
        j = k - i
        a, b, c = out[i + 1, j], out[i, j + 1], out[i, j]  # left, up, up-left
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        t = kinds[i][:, None]
        pred = np.select([t == 1, t == 2, t == 3, t == 4], [a, b, (a + b) // 2, paeth], 0)
        out[i + 1, j + 1] = (filt[i, j] + pred) % 256
    return out[1:, 1:, :3].astype(np.uint8)


@pytest.mark.browser
# CI installs Chromium and sets BTLAB_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping.
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("BTLAB_REQUIRE_BROWSER"),
                    reason="chromium not on PATH (Debian: apt-get install chromium)")
def test_report_draws_in_headless_chromium(full_run, full_report, tmp_path):
    doc = full_report.read_text(encoding="utf-8")
    page = tmp_path / "page.html"
    page.write_text(doc.replace("<head>", "<head>" + _ERROR_TRAP, 1), encoding="utf-8")

    res = _chromium(page.as_uri(), tmp_path / "profile1", "--window-size=1400,1000", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    parser = _Charts()
    parser.feed(res.stdout)
    assert "data-jserr" not in parser.root_attrs, parser.root_attrs.get("data-jserr")
    assert "Uncaught" not in res.stderr
    assert set(parser.charts) == {"chart-equity", "chart-rolling", "chart-histogram", "chart-yearly",
                                  "chart-monthly", "chart-price"}
    for name, chart in parser.charts.items():
        assert "js-plotly-plot" in chart["div_class"], name  # plotly.js took the div over
        assert chart["classes"].count("main-svg") >= 2, name
    n_trades = int(full_run.metrics["n_trades"])

    eq = parser.charts["chart-equity"]
    lines = [d for cls, d in eq["paths"] if "js-line" in cls.split() and d.count("L") > 1000]
    assert len(lines) == 4  # strategy and buy-and-hold equity, their drawdowns (legend samples are short)
    assert sum(1 for cls, d in eq["paths"] if "js-fill" in cls.split() and d) == 1  # strategy drawdown area
    assert "buy and hold" in eq["texts"] and "strategy" in eq["texts"]

    rolling = parser.charts["chart-rolling"]  # Sharpe and volatility of strategy and benchmark
    lines = [d for cls, d in rolling["paths"] if "js-line" in cls.split() and d.count("L") > 1000]
    assert len(lines) == 4
    hist = parser.charts["chart-histogram"]
    assert hist["classes"].count("point") > 50  # the bars (<g class="point"><path>) of two histograms
    assert any(t.startswith("VaR 95 %") for t in hist["texts"]) and any(t.startswith("CVaR 95 %")
                                                                         for t in hist["texts"])
    yearly = parser.charts["chart-yearly"]
    years = full_run.equity.index.year.nunique()
    assert yearly["classes"].count("point") == 2 * years  # a bar per year for strategy and benchmark

    price = parser.charts["chart-price"]
    assert price["classes"].count("scatter") >= 3  # close, long entries, exits
    lines = [d for cls, d in price["paths"] if "js-line" in cls.split() and d.count("L") > 1000]
    assert len(lines) == 1  # the close (the legend's sample lines are short)
    markers = [d for cls, d in price["paths"] if "point" in cls.split()]
    assert len(markers) == 2 * n_trades  # every entry and every exit
    assert "long entry" in price["texts"] and "exit" in price["texts"]

    hm = parser.charts["chart-monthly"]
    assert hm["classes"].count("hm") == 2  # months and year
    assert len(hm["images"]) == 2 and all(src.startswith("data:image/png") and len(src) > 1000
                                          for src in hm["images"])
    cells = [t for t in hm["texts"] if re.fullmatch(r"-?\d+\.\d%", t)]
    assert len(cells) >= years * 2  # percent labels drawn in the cells
    assert "Year" in hm["texts"]

    # the pixels: a screenshot that is not blank and looks like the page (light background, coloured charts)
    shot = tmp_path / "shot.png"
    res = _chromium(page.as_uri(), tmp_path / "profile2", "--window-size=1400,6800", f"--screenshot={shot}")
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    px = _png_pixels(shot)
    assert px.shape == (6800, 1400, 3)  # the whole report
    colors, counts = np.unique(px.reshape(-1, 3), axis=0, return_counts=True)
    background = colors[counts.argmax()]
    assert background.min() >= 240  # the page background is light
    assert len(colors) > 500  # text, lines, fills, heatmap cells
    assert (px.std(axis=2) > 40).mean() > 0.01  # saturated (coloured) pixels: lines, drawdown area, heatmap
    assert (np.abs(px.astype(int) - background).sum(axis=2) > 30).mean() > 0.05  # ink, not a blank page
