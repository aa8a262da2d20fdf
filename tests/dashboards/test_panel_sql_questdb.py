"""Every generated panel, variable and alert query run on a real QuestDB holding the demo data (BTLAB_TEST_QUESTDB).

Written from the QuestDB and plugin documentation; skipped here (no QuestDB can run on this machine). What each
case checks, on the real BTC/USDT 1h bars and a sma_cross run of 2023-01-01..2023-03-31 stored through btlab:

- the expanded SQL runs (QuestDB accepts it);
- it returns rows, for every statement over data the demo writes (ohlcv, bt_runs, bt_equity, bt_trades,
  bt_orders); statements over ticks, bt_health and the alert rules (live data) and over bt_states (sma_cross has no
  state machine) only have to run;
- the columns its panel type needs: time series and candlesticks a first column ``time`` of timestamps and numeric
  values (candlesticks: open/high/low/close/volume; multi-line: one text column second); stats a value; the bar
  chart a text ``month`` and a number; variables one or two columns; alert rules text labels and one number.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import QUESTDB_SKIP_REASON, questdb_address
from grafana_sql import expand
from panel_sql import SAMPLE_VALUES, Statement, statements
from realdata import BTC_1H

pytestmark = [pytest.mark.questdb, pytest.mark.skipif(questdb_address() is None, reason=QUESTDB_SKIP_REASON)]

UTC = dt.timezone.utc
DATA_FROM = dt.datetime(2023, 1, 1, tzinfo=UTC)
DATA_TO = dt.datetime(2023, 3, 31, 23, 59, 59, tzinfo=UTC)
DEMO_TABLES = ("ohlcv", "bt_runs", "bt_equity", "bt_trades", "bt_orders")


@pytest.fixture(scope="module")
def demo():
    """A QuestDB store with the demo data: BTC/USDT 1h bars and one finished sma_cross run (its id returned)."""
    import btlab

    store = btlab.open_store(questdb_address())
    try:
        btlab.import_bars(BTC_1H, store, exchange="binance", symbol="BTC/USDT", timeframe="1h")
        result = btlab.run_backtest("sma_cross", symbol="BTC/USDT", timeframe="1h", start="2023-01-01",
                                    end="2023-03-31", params={"fast": 10, "slow": 30}, store=store)
        yield store, result.run_id
    finally:
        store.close()


def _case(stmt: Statement, run_id: str) -> tuple[str, bool]:
    """The statement expanded for the demo (variables at the demo's values) and whether it must return rows."""
    values = {**SAMPLE_VALUES, "run_id": [run_id], "compare": [run_id], "strategy": ["sma_cross"],
              "status": ["finished"], "exchange": ["binance"], "symbols": ["BTC/USDT"]}
    chosen = {k: (v if k in stmt.multi else v[0]) for k, v in values.items()}
    sql = expand(stmt.sql, chosen, start=DATA_FROM, end=DATA_TO, interval=dt.timedelta(hours=6))
    live = any(t in stmt.sql for t in ("ticks", "bt_health")) or stmt.kind == "alert" or "now()" in stmt.sql
    stateless = "bt_states" in stmt.sql  # the demo's sma_cross records no state changes (regime_fsm's are checked
    # against this SQL in tests/backtest/test_regime_fsm.py, on QuestDB too when configured)
    return sql, not (live or stateless)


def _numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _shape_problems(stmt: Statement, frame: pd.DataFrame) -> list[str]:
    cols = list(frame.columns)
    if stmt.kind == "variable":
        return [] if 1 <= len(cols) <= 2 else [f"a variable query returns 1 or 2 columns, not {cols}"]
    if stmt.kind == "alert":
        nums = [c for c in cols if _numeric(frame[c])]
        return [] if len(nums) == 1 else [f"an alert query returns one numeric column, not {nums}"]
    if stmt.fmt == 0:  # time series and candlesticks
        out = [] if cols and cols[0] == "time" and pd.api.types.is_datetime64_any_dtype(frame["time"]) else \
            [f"first column must be a timestamp named time: {frame.dtypes.to_dict()}"]
        rest = cols[1:]
        if rest and not _numeric(frame[rest[0]]):
            rest = rest[1:]  # multi-line: the series name second
        out += [f"{c} is not numeric" for c in rest if not _numeric(frame[c])]
        if stmt.panel_type == "candlestick" and "open" in cols:
            out += [f"candlestick needs {c}" for c in ("open", "high", "low", "close", "volume") if c not in cols]
        return out
    if stmt.panel_type == "barchart":
        return [] if "month" in cols and any(_numeric(frame[c]) for c in cols if c != "month") else \
            [f"bar chart needs a month label and a number: {cols}"]
    if stmt.panel_type == "stat":
        return [] if cols else ["a stat needs a value"]
    return []


def test_every_panel_query_runs_on_questdb_with_the_demo_data(demo):
    store, run_id = demo
    checked, bad = 0, []
    for stmt in statements():
        sql, needs_rows = _case(stmt, run_id)
        try:
            frame = store.query(sql)
        except Exception as exc:  # noqa: BLE001 - report every failing statement at once
            bad.append(f"{stmt.where}: QuestDB refused it: {exc}\n    {sql}")
            continue
        checked += 1
        if needs_rows and frame.empty:
            bad.append(f"{stmt.where}: no rows on the demo data\n    {sql}")
        if not frame.empty:
            bad += [f"{stmt.where}: {p}" for p in _shape_problems(stmt, frame)]
    assert not bad, "\n".join(bad)
    assert checked >= 40
