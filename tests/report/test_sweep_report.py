"""The sweep report (btlab.report.sweep) on REAL sma_cross runs of the bundled BTC/USDT 1h bars.

A small grid (fast x slow) is run with btlab.run_backtest into a DuckDB store, each run recorded with the sweep's id,
plus one combination whose strategy raises (a real failed run). The runs frame is read back from the store; every
expected value below is taken from those stored rows, never written by hand.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import btlab
from btlab.errors import InvalidArgumentError
from btlab.report.format import format_value
from btlab.report.sweep import heatmap_table, marginal_table, write_sweep_report
from btlab.store.duckdb import DuckDBStore
from btlab.strategies.sma_cross import SmaCross
from btlab.sweep.top import best_runs, params_frame
from realdata import btc_1h

SWEEP = "swtest"
FAST, SLOW = (10, 20, 30), (50, 100)
EVIL = "<script>alert(1)</script>"


class FailingSmaCross(SmaCross):
    """sma_cross that raises (with HTML in its message) once it has seen 200 bars."""

    def next(self) -> None:
        super().next()
        if len(self) > 200:
            raise RuntimeError(f"{EVIL} broke at bar {len(self)}")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with DuckDBStore(tmp_path_factory.mktemp("sweeprep") / "s.duckdb") as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        yield st


@pytest.fixture(scope="module")
def runs(store) -> pd.DataFrame:
    """The bt_runs rows of a real 3 x 2 sma_cross grid on 2022 plus one failed combination."""
    common = {"store": store, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h",
              "start": "2022-01-01", "end": "2022-12-31", "sweep_id": SWEEP}
    for i, (fast, slow) in enumerate((f, s) for f in FAST for s in SLOW):
        btlab.run_backtest("sma_cross", params={"fast": fast, "slow": slow}, run_id=f"{SWEEP}-c{i}", **common)
    with pytest.raises(Exception):
        btlab.run_backtest(FailingSmaCross, params={"fast": 40, "slow": 100}, run_id=f"{SWEEP}-cfail", **common)
    rows = store.query("SELECT * FROM bt_runs WHERE sweep_id = ? ORDER BY run_id", [SWEEP])
    assert len(rows) == 7 and (rows["status"] == "failed").sum() == 1
    return rows


@pytest.fixture(scope="module")
def sweep_row(runs) -> dict:
    finished = runs[runs["status"] == "finished"]
    return {"sweep_id": SWEEP, "strategy": "sma_cross", "grid": json.dumps({"fast": list(FAST), "slow": list(SLOW)}),
            "params": json.dumps(["fast", "slow"]), "exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1h",
            "calendar": "crypto", "data_from": finished["data_from"].min(), "data_to": finished["data_to"].max(),
            "engine": "backtrader", "config": json.dumps({"cash": 10000.0, "commission": 0.001, "size_pct": 95.0}),
            "total": 8, "done": 7, "failed": 1, "status": "interrupted", "ts": finished["ts"].min()}


@pytest.fixture(scope="module")
def report(store, runs, sweep_row, tmp_path_factory) -> tuple[Path, str]:
    top = {f"{rid}": store.read_equity(rid) for rid in best_runs(runs, "sharpe", 2)["run_id"]}
    path = write_sweep_report(sweep_row, runs, top, tmp_path_factory.mktemp("out") / "sub" / "sweep.html")
    return path, path.read_text(encoding="utf-8")


def _plotly_data(document: str, div_id: str) -> list[dict]:
    """The traces of the plotly chart in ``div_id`` (the JSON of its Plotly.newPlot call)."""
    at = document.index(f'Plotly.newPlot(                        "{div_id}",')
    start = document.index("[", at)
    data, _ = json.JSONDecoder().raw_decode(document[start:])
    return data


def test_heatmap_cells_are_the_stored_metric_of_each_combination(runs, report):
    _, document = report
    finished = runs[runs["status"] == "finished"]
    (trace,) = _plotly_data(document, "chart-heatmap")
    assert trace["type"] == "heatmap"
    assert trace["x"] == [str(f) for f in FAST] and trace["y"] == [str(s) for s in SLOW]
    params = params_frame(finished)
    for row_i, slow in enumerate(SLOW):
        for col_i, fast in enumerate(FAST):
            stored = finished.loc[(params["fast"] == fast) & (params["slow"] == slow), "sharpe"]
            assert len(stored) == 1
            assert trace["z"][row_i][col_i] == pytest.approx(float(stored.iloc[0]), rel=0, abs=0)
            assert trace["text"][row_i][col_i] == format_value(stored.iloc[0], "ratio")
    assert 'data-x="fast" data-y="slow"' in document


def test_heatmap_aggregates_other_parameters_by_best(runs):
    """With slow as the aggregated parameter (x=fast, y=fast is refused; one axis over a 3rd param): the cell is
    the max over the other parameter's combinations, the min for a lower-is-better metric."""
    finished = runs[runs["status"] == "finished"].reset_index(drop=True)
    params = params_frame(finished)
    params["dummy"] = 0  # a constant third parameter: each (fast, dummy) cell aggregates over slow
    sharpe = finished["sharpe"].astype(float)
    table = heatmap_table(params, sharpe, "sharpe", "fast", "dummy")
    vol = heatmap_table(params, finished["volatility"].astype(float), "volatility", "fast", "dummy")
    for fast in FAST:
        sel = params["fast"] == fast
        assert table.loc[0, fast] == sharpe[sel].max()
        assert vol.loc[0, fast] == finished["volatility"].astype(float)[sel].min()


def test_marginal_tables_are_mean_median_max_of_the_stored_metric(runs, report):
    _, document = report
    finished = runs[runs["status"] == "finished"]
    params = params_frame(finished)
    sharpe = finished["sharpe"].astype(float)
    for name, values in (("fast", FAST), ("slow", SLOW)):
        table = marginal_table(params, sharpe, name)
        assert table["value"].tolist() == list(values)
        for r in table.itertuples():
            sel = sharpe[params[name] == r.value]
            assert (r.n, r.mean, r.median, r.max) == (len(sel), sel.mean(), sel.median(), sel.max())
            row = re.search(rf'<tr data-param="{name}" data-value="{r.value}">(.*?)</tr>', document).group(1)
            cells = re.findall(r"<td>(.*?)</td>", row)
            assert cells == [str(len(sel))] + [format_value(v, "ratio") for v in (sel.mean(), sel.median(), sel.max())]


def test_distribution_and_top_table_follow_the_runs(runs, report):
    _, document = report
    finished = runs[runs["status"] == "finished"]
    (hist,) = _plotly_data(document, "chart-distribution")
    assert sorted(hist["x"]) == sorted(finished["sharpe"].astype(float).tolist())
    ranked = finished.sort_values("sharpe", ascending=False)["run_id"].tolist()
    assert re.findall(r'<tr data-run="([^"]+)"><td>\d+</td>', document) == ranked
    best = finished.loc[finished["sharpe"].idxmax()]
    first = re.search(r'<table class="data" id="top-table">.*?<tbody><tr[^>]*>(.*?)</tr>', document, re.S).group(1)
    assert f'<td data-metric="total_return">{format_value(best["total_return"], "pct")}</td>' in first
    assert "7 done (1 failed) · 1 not run" in document
    assert 'id="sweep-partial"' in document  # interrupted: said to be partial


def test_failed_combination_listed_with_its_escaped_error(runs, report):
    _, document = report
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert EVIL not in document
    table = re.search(r'<table class="data" id="failed-table">(.*?)</table>', document, re.S).group(1)
    assert f'data-run="{failed["run_id"]}"' in table and "fast=40, slow=100" in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt; broke at bar" in table


def test_top_equity_curves_are_drawn_from_the_given_frames(store, runs, report):
    _, document = report
    traces = _plotly_data(document, "chart-equity-top")
    best = best_runs(runs, "sharpe", 2)
    assert len(traces) == 2
    params = params_frame(best)
    assert [t["name"] for t in traces] == [f"fast={p.fast}, slow={p.slow}" for p in params.itertuples()]
    equity = store.read_equity(best["run_id"].iloc[0])
    assert len(equity) > 2000  # decimated for display, first and last kept
    assert traces[0]["type"] == "scatter"


def test_report_is_self_contained_and_written_atomically(report):
    path, document = report
    assert path.name == "sweep.html" and path.parent.name == "sub"
    assert document.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in document
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="http', document)  # no network needed
    assert not list(path.parent.glob(".*tmp"))


def test_axes_given_and_refused(store, runs, sweep_row, tmp_path):
    out = write_sweep_report(sweep_row, runs, {}, tmp_path / "r.html", metric="max_drawdown", x="slow", y="fast")
    document = out.read_text(encoding="utf-8")
    (trace,) = _plotly_data(document, "chart-heatmap")
    assert trace["x"] == [str(s) for s in SLOW] and trace["y"] == [str(f) for f in FAST]
    assert 'id="no-equity"' in document
    finished = runs[runs["status"] == "finished"]
    assert np.nanmax(trace["z"]) == finished["max_drawdown"].astype(float).max()
    with pytest.raises(InvalidArgumentError, match="--x 'nope' is not a parameter of this sweep"):
        write_sweep_report(sweep_row, runs, {}, tmp_path / "r.html", x="nope")
    with pytest.raises(InvalidArgumentError, match="unknown metric 'bogus'"):
        write_sweep_report(sweep_row, runs, {}, tmp_path / "r.html", metric="bogus")


def test_histogram_of_a_large_sweep_is_binned_with_every_combination_counted(sweep_row, runs, tmp_path):
    """Beyond HISTOGRAM_RAW_MAX combinations the histogram is pre-binned: the counts add up to the combinations."""
    from btlab.report import sweep as sweep_report

    finished = runs[runs["status"] == "finished"]
    big = pd.concat([finished] * (sweep_report.HISTOGRAM_RAW_MAX // len(finished) + 1), ignore_index=True)
    big["run_id"] = [f"r{i}" for i in range(len(big))]
    document = write_sweep_report(sweep_row, big, {}, tmp_path / "big.html").read_text(encoding="utf-8")
    (bars,) = _plotly_data(document, "chart-distribution")
    assert bars["type"] == "bar" and sum(bars["y"]) == len(big) > sweep_report.HISTOGRAM_RAW_MAX
    assert min(bars["x"]) >= finished["sharpe"].min() and max(bars["x"]) <= finished["sharpe"].max()


def test_parameter_names_and_values_are_escaped_everywhere(runs, sweep_row, tmp_path):
    """A grid whose parameter values hold HTML (e.g. a free-text parameter): no raw tag reaches the page, in the
    tables or in the charts' labels (plotly reads them as HTML)."""
    evil = runs.copy()
    evil["params"] = [json.dumps({"fast": f"{EVIL}{i % 2}", "slow": json.loads(p)["slow"]})
                      for i, p in enumerate(evil["params"])]
    document = write_sweep_report(sweep_row, evil, {}, tmp_path / "evil.html").read_text(encoding="utf-8")
    assert EVIL not in document and "<script>alert" not in document.replace(EVIL, "")
    (trace,) = _plotly_data(document, "chart-heatmap")
    assert trace["x"] == [html.escape(f"{EVIL}0"), html.escape(f"{EVIL}1")]
