"""How a run ends: SIGTERM/SIGINT stop it honestly (status interrupted, exit 143/130, one line), the heartbeat shows
a live run, batches reach the store on time even when bars are slow, and the backtest command's user errors are
one line with exit 1 -- through the real console script in a subprocess, on real data in a real DuckDB file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import btlab
from btlab.backtest.compat import bt
from btlab.errors import RunInterruptedError
from btlab.store.duckdb import DuckDBStore
from realdata import BTC_1H, BTC_1M
from cliproc import btlab_cli


def _stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def bars_1m() -> pd.DataFrame:
    return pd.read_feather(BTC_1M).rename(columns={"date": "ts"})


@pytest.fixture(scope="module")
def m1_store(tmp_path_factory, bars_1m) -> Path:
    """A DuckDB file with the real BTC/USDT 1m bars (130,708) and 1h bars (58,419); closed (for subprocesses)."""
    path = tmp_path_factory.mktemp("lifecycle") / "store.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(bars_1m, exchange="binance", symbol="BTC/USDT", timeframe="1m", source="test")
        st.write_bars(pd.read_feather(BTC_1H).rename(columns={"date": "ts"}), exchange="binance",
                      symbol="BTC/USDT", timeframe="1h", source="test")
    return path


SLOW_STRATEGY = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from btlab.backtest.compat import bt


    class Slow(bt.Strategy):
        '''Trades now and then, and takes 2 ms a bar; says when it is at bar 300.'''

        def next(self):
            if len(self) == 300:
                Path(os.environ["BTLAB_TEST_MARK"]).write_text("at bar 300")
            if len(self) % 97 == 0:
                if self.position:
                    self.close()
                else:
                    self.buy(size=0.01)
            time.sleep(0.002)
    """
)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_run_honestly(tmp_path, m1_store, bars_1m, sig, code):
    strategy = tmp_path / "slow.py"
    strategy.write_text(SLOW_STRATEGY)
    mark = tmp_path / "mark"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "BTLAB_STORE": str(m1_store),
           "BTLAB_TEST_MARK": str(mark), "BTLAB_REPORTS": str(tmp_path / "reports")}
    exe = Path(sys.executable).with_name("btlab")
    proc = subprocess.Popen([str(exe), "backtest", "--strategy", f"{strategy}:Slow", "--timeframe", "1m"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached bar 300"
            time.sleep(0.05)
        time.sleep(2.5)  # at least one flush (every 2 s of wall time) has happened
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(sig).name
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"interrupted by {name}: stopped after" in lines[0] and "of 130,708 bars" in lines[0]
    assert "stored as interrupted (see: btlab runs show" in lines[0]
    with DuckDBStore(m1_store) as st:
        runs = st.list_runs(limit=1000)
        run = st.get_run(runs.loc[runs["strategy"].str.endswith(":Slow")].iloc[0]["run_id"])
        equity = st.read_equity(run["run_id"])
        orders = st.read_orders(run["run_id"])
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    done = len(equity)
    assert 300 < done < len(bars_1m)
    assert run["error"].startswith(f"{name}: stopped after {done:,} of 130,708 bars (last bar ")
    # what is stored is consistent: equity contiguous from the first bar up to the bar the run stopped after
    assert equity["ts"].tolist() == bars_1m["ts"].iloc[:done].tolist()
    assert f"(last bar {equity['ts'].iloc[-1]:%Y-%m-%d %H:%M} UTC)" in run["error"]
    assert len(orders) >= done // 97 - 1 and orders["ts"].max() <= equity["ts"].iloc[-1]
    assert run["ts"] <= run["heartbeat"] <= run["finished_at"]
    assert run["total_return"] is None and run["metrics"] is None  # no headline metrics for a partial run
    assert "Traceback" not in out


class SignalsItself(bt.Strategy):
    """Sends SIGINT to its own process at bar 500 (as Ctrl-C in a notebook would)."""

    def next(self):
        if len(self) == 500:
            os.kill(os.getpid(), signal.SIGINT)


def test_python_api_raises_run_interrupted_and_restores_handlers(m1_store, bars_1m, tmp_path):
    seen = []

    def previous(signum, frame):  # a handler the caller had installed
        seen.append(signum)

    old = signal.signal(signal.SIGINT, previous)
    try:
        store = DuckDBStore(tmp_path / "api.duckdb")
        store.write_bars(bars_1m.iloc[:5000], exchange="binance", symbol="BTC/USDT", timeframe="1m", source="t")
        with pytest.raises(RunInterruptedError) as info:
            btlab.run_backtest(SignalsItself, store=store, timeframe="1m")
        err = info.value
        assert err.exit_code == 130 and err.signal_name == "SIGINT"
        run = store.get_run(err.run_id)
        assert run["status"] == "interrupted" and run["error"].startswith("SIGINT: stopped after 500 of 5,000 bars")
        assert len(store.read_equity(err.run_id)) == 500
        assert signal.getsignal(signal.SIGINT) is previous and seen == []  # restored, never called
        # with a resampled feed Backtrader steps bar by bar (no preload): the same stop
        with pytest.raises(RunInterruptedError) as info:
            btlab.run_backtest(SignalsItself, store=store, timeframes=["1m", "1h"])
        run = store.get_run(info.value.run_id)
        assert run["status"] == "interrupted" and len(store.read_equity(info.value.run_id)) == 500
        # record=False: same stop, nothing stored
        with pytest.raises(RunInterruptedError, match="nothing stored"):
            btlab.run_backtest(SignalsItself, store=store, timeframe="1m", record=False)
        store.close()
    finally:
        signal.signal(signal.SIGINT, old)


def test_runs_in_a_worker_thread_without_touching_signals(m1_store, bars_1m, tmp_path):
    store = DuckDBStore(tmp_path / "thread.duckdb")
    store.write_bars(bars_1m.iloc[:3000], exchange="binance", symbol="BTC/USDT", timeframe="1m", source="t")
    before = signal.getsignal(signal.SIGTERM)
    out: dict = {}

    def work():
        try:
            out["result"] = btlab.run_backtest("sma_cross", store=store, timeframe="1m")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            out["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(120)
    assert "error" not in out, out.get("error")
    assert store.get_run(out["result"].run_id)["status"] == "finished"
    assert signal.getsignal(signal.SIGTERM) is before
    store.close()


class SlowBars(bt.Strategy):
    """5 ms a bar; looks at the store at bars 1 and 150 as a dashboard would."""

    looks: list = []

    def next(self):
        if len(self) in (1, 150):
            rec = self.analyzers.btlab_recorder
            st = rec.p.store
            n = int(st.query("SELECT count(*) AS n FROM bt_equity WHERE run_id = ?", [rec.run_id])["n"].iloc[0])
            run = st.get_run(rec.run_id)
            SlowBars.looks.append((len(self), n, run["status"], run["heartbeat"]))
        time.sleep(0.005)


def test_heartbeat_and_wall_time_flushes_with_slow_bars(bars_1m, tmp_path):
    SlowBars.looks = []
    with DuckDBStore(tmp_path / "slow.duckdb") as st:
        st.write_bars(bars_1m.iloc[:200], exchange="binance", symbol="BTC/USDT", timeframe="1m", source="t")
        started = pd.Timestamp.now(tz="UTC")
        result = btlab.run_backtest(SlowBars, store=st, timeframe="1m", flush_bars=10_000, flush_seconds=0.25)
        run = st.get_run(result.run_id)
    (_, n1, status1, beat1), (_, n150, status150, beat150) = SlowBars.looks
    assert status1 == status150 == "running"
    assert started - pd.Timedelta(seconds=1) <= beat1  # written when the run started
    # 150 bars at 5 ms = 0.75 s: at least two wall-time flushes of 0.25 s happened (old code: only every 256 bars)
    assert n150 >= 50 and beat150 > beat1
    assert run["status"] == "finished" and run["heartbeat"] >= beat150


# ---- the backtest command's errors and warnings, through the console script ----------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--commission", "1.5"], "commission must be a fraction of traded value in [0, 1)"),
        (["--cash", "nan"], "cash must be a finite number, got nan"),
        (["--size-pct", "inf"], "size_pct must be a finite number, got inf"),
        (["--slippage-pct", "0.7"], "slippage_pct must be a fraction of price in [0, 0.5)"),
        (["--slippage-fixed", "50000"], "slippage_fixed 50000 is at least the median close of BTC/USDT"),
        (["-p", "fast=50", "-p", "slow=10"], "needs 0 < fast < slow (SMA periods in bars), got fast=50, slow=10"),
        (["--from", "2020-01-01", "--to", "2020-01-01"], "needs 31 BTC/USDT 1h bars of warm-up before its first next(), but the range holds only 24"),
        (["--timeframe", "4h"], "--source-timeframe 1h --timeframe 4h"),
        (["--symbol", "btc/usdt"], "did you mean --exchange binance --symbol BTC/USDT?"),
        (["--symbol", "BTC/USDT", "--symbols", "ETH/USDT"], "give symbol (BTC/USDT) or symbols (ETH/USDT), not both"),
        (["--timeframe", "1m", "--resample", "3d"], "cannot resample to 3d"),
    ],
)
def test_backtest_user_errors_are_one_line_exit_1(m1_store, args, message):
    proc = btlab_cli("backtest", "--no-report", *args, store=m1_store)
    assert proc.returncode == 1, proc.stderr
    lines = _stderr_lines(proc)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[0]


def test_orders_ended_margin_are_a_yellow_warning_after_the_metrics(m1_store):
    proc = btlab_cli("backtest", "--no-report", "--stake", "100", "--from", "2021-01-01", "--to", "2021-12-31",
                     store=m1_store)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    conventions = next(i for i, line in enumerate(lines) if "Win = net PnL > 0" in line)
    warned = [i for i, line in enumerate(lines) if line.startswith("warning: ") and "ended Margin" in line]
    assert len(warned) == 1 and warned[0] > conventions
    assert "order(s) ended Margin: not enough cash" in lines[warned[0]]


def test_gaps_over_the_limit_need_allow_gaps(tmp_path, bars_1m):
    store = tmp_path / "holed.duckdb"
    with DuckDBStore(store) as st:
        holed = bars_1m[(bars_1m["ts"] < "2025-05-23") | (bars_1m["ts"] >= "2025-07-01")]
        st.write_bars(holed.iloc[:10_000], exchange="binance",
                      symbol="BTC/USDT", timeframe="1m", source="test")
    proc = btlab_cli("backtest", "--no-report", "--timeframe", "1m", store=store)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = _stderr_lines(proc)
    assert len(lines) == 1 and "over the limit for a run" in lines[0] and "--allow-gaps" in lines[0]
    with DuckDBStore(store) as st:
        assert st.list_runs().empty
    proc = btlab_cli("backtest", "--no-report", "--timeframe", "1m", "--allow-gaps", store=store)
    assert proc.returncode == 0, proc.stderr
    assert "1 gap(s) inside the range" in proc.stderr  # reported before the run
    assert "run id:" in proc.stdout
