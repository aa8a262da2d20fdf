"""``btlab backtest --strategy regime_fsm --resample 1d`` on the real BTC/USDT 1h bars, as a user runs it."""

from __future__ import annotations

import re
from pathlib import Path

from btlab.store.duckdb import DuckDBStore
from cliproc import btlab_cli
from realdata import BTC_1H, btc_1h


def test_backtest_regime_fsm_prints_stores_and_draws_the_state_changes(tmp_path: Path):
    path = tmp_path / "h1.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source=BTC_1H.name)
    proc = btlab_cli("backtest", "--strategy", "regime_fsm", "--resample", "1d", "--from", "2021-01-01", "--to",
                     "2021-12-31", "-p", "enter_pct=0.03", store=path, extra_env={"BTLAB_REPORTS": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    run_id = re.search(r"run id: (\S+)", proc.stdout).group(1)
    with DuckDBStore(path, read_only=True) as st:
        states = st.read_states(run_id)
        assert st.get_run(run_id)["params"]["enter_pct"] == 0.03
    counts = states.groupby("machine").size()
    assert set(counts.index) == {"1h", "1d"} and counts["1d"] > 10
    assert f"state changes: {counts['1h']:,} of 1h, {counts['1d']:,} of 1d" in proc.stdout
    report = re.search(r"report: (\S+\.html)", proc.stdout).group(1)
    assert 'id="chart-states"' in Path(report).read_text(encoding="utf-8")
