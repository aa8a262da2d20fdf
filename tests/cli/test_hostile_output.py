"""Hostile values in data and options are shown as they are: never rich markup, never a terminal escape.

Square brackets in a symbol, an exchange, a strategy parameter or a file name were parsed as rich markup: an unmatched
closing tag (``[/oops]``) crashed the command (MarkupError) after the rows were stored, and then every later
``data coverage`` / ``runs list`` too; ``[link=...]`` put a terminal hyperlink into the output. These tests run the
real ``btlab`` command on real bars, with rich rendering as for a colour terminal (FORCE_COLOR), so that markup, if
parsed, would show up as escape sequences in the output.
"""

from __future__ import annotations

import re
import textwrap

import pandas as pd
import pytest

from cliproc import assert_one_line, btlab_cli
from realdata import btc_1h

#: rich renders styles, links and progress bars as for a terminal (stdout and stderr), whatever the test runner has
TERMINAL = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}
HYPERLINK = "\x1b]8;"  # OSC 8: the start of a terminal hyperlink
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours, cursor moves (rich's own styling)

STRATEGY = '''
import backtrader as bt


class Labelled(bt.Strategy):
    """Long while the close is above its close 24 bars ago; ``label`` is any text (recorded with the run)."""

    params = (("label", "none"), ("lookback", 24))

    def __init__(self):
        self.mom = bt.ind.Momentum(self.data.close, period=self.p.lookback)

    def next(self):
        if not self.position and self.mom[0] > 0:
            self.buy()
        elif self.position and self.mom[0] < 0:
            self.close()
'''


def _visible(proc) -> str:
    """stdout + stderr without rich's own colour and cursor sequences."""
    return _CSI.sub("", proc.stdout + proc.stderr)


def _ok(proc) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "MarkupError" not in out and "error:" not in out, out
    assert HYPERLINK not in out, out  # no markup was turned into a hyperlink
    return _visible(proc)


def _bars_csv(path) -> None:
    bars = btc_1h()
    bars = bars[(bars.ts >= pd.Timestamp("2021-01-01", tz="UTC")) & (bars.ts < pd.Timestamp("2021-03-01", tz="UTC"))]
    bars.to_csv(path, index=False)


@pytest.mark.parametrize("hostile", ["[/oops]", "[link=http://x]y[/link]"])
def test_brackets_in_symbol_exchange_param_and_file_name_are_shown_literally(tmp_path, hostile):
    store = tmp_path / "s.duckdb"
    csv_file = tmp_path / "bars[link=x]y[b].csv"  # a file name is data too (the progress bar shows it)
    _bars_csv(csv_file)
    exchange, symbol = f"binance{hostile}", f"BTC/USDT{hostile}"
    env = {**TERMINAL, "BTLAB_REPORTS": str(tmp_path / "reports")}

    def run(*args: str):
        return btlab_cli(*args, store=store, extra_env=env, columns="400")

    out = _ok(run("data", "import", str(csv_file), "--exchange", exchange, "--symbol", symbol, "--timeframe", "1h",
                  "--calendar", "24/7"))
    assert f"bars for {exchange}:{symbol}" in out
    assert "bars[link=x]y[b].csv" in out  # in the progress bar's description and the summary line

    out = _ok(run("data", "coverage"))
    assert f"{exchange}:{symbol} 1h" in out and "1,415" in out  # 59 days, one bar missing on Binance

    strategy = tmp_path / "labelled.py"
    strategy.write_text(textwrap.dedent(STRATEGY))
    proc = run("backtest", "--strategy", f"{strategy}:Labelled", "--exchange", exchange, "--symbol", symbol,
               "--calendar", "24/7", "--timeframe", "1h", "--from", "2021-01-05", "--to", "2021-02-20",
               "-p", f"label={hostile}")
    out = _ok(proc)
    title = f"Labelled(label={hostile}, lookback=24) on {exchange}:{symbol} 1h"  # wrapped to the table's width
    assert "".join(title.split()) in "".join(out.split())
    run_id = re.search(r"run id: (\S+)", out).group(1)
    assert (tmp_path / "reports" / f"{run_id}.html").is_file()

    for args in (("runs", "list"), ("runs", "list", "--wide"), ("runs", "show", run_id)):
        out = _ok(run(*args))
        assert f"{exchange} {symbol} 1h" in out, args
        assert f"label={hostile}" in out, args
    assert f"run {run_id}" in _ok(run("runs", "show", run_id))
    assert "report: " in _ok(run("report", run_id, "-o", str(tmp_path / "r.html")))


def test_control_characters_in_data_are_made_visible_not_sent_to_the_terminal(tmp_path):
    store = tmp_path / "s.duckdb"
    csv_file = tmp_path / "bars.csv"
    _bars_csv(csv_file)
    symbol = "BTC/USDT\x1b]8;;http://x\x1b\\y\x1b]8;;\x1b\\\x07"  # a raw hyperlink and a bell in the symbol
    proc = btlab_cli("data", "import", str(csv_file), "--exchange", "binance", "--symbol", symbol, "--timeframe", "1h",
                     store=store, extra_env=TERMINAL, columns="400")
    out = _ok(proc)
    assert "BTC/USDT\\x1b]8;;http://x\\x1b\\y\\x1b]8;;\\x1b\\\\x07" in out
    out = _ok(btlab_cli("data", "coverage", store=store, extra_env=TERMINAL, columns="400"))
    assert "binance:BTC/USDT\\x1b]8;;http://x\\x1b\\y" in out and "\x07" not in out


def test_error_messages_quote_brackets_literally(tmp_path):
    missing = tmp_path / "no[/oops]such[link=http://x]y.csv"
    proc = btlab_cli("data", "import", str(missing), "--exchange", "binance", "--symbol", "BTC/USDT",
                     "--timeframe", "1h", store=tmp_path / "s.duckdb", extra_env=TERMINAL)
    assert proc.returncode == 1 and HYPERLINK not in proc.stderr
    lines = [line for line in _visible(proc).splitlines() if line.strip()]
    assert len(lines) == 1 and str(missing) in lines[0], lines


def test_bars_stored_by_the_api_with_brackets_do_not_break_the_listings(tmp_path):
    """Bars stored by any path (here the Python API, as an exchange or topic would) under a hostile symbol: the
    listings keep working (they used to crash on every call from then on)."""
    from btlab.marketdata.sources.files.importer import import_bars
    from btlab.store.duckdb import DuckDBStore

    store = tmp_path / "s.duckdb"
    csv_file = tmp_path / "bars.csv"
    _bars_csv(csv_file)
    with DuckDBStore(store) as st:
        import_bars(csv_file, st, exchange="binance", symbol="ETH/USDT[/oops]", timeframe="1h")
    out = _ok(btlab_cli("data", "coverage", store=store, extra_env=TERMINAL, columns="400"))
    assert "gaps in binance:ETH/USDT[/oops] 1h (first 1 of 1):" in out
    out = _ok(btlab_cli("data", "coverage", "--symbol", "ETH/USDT[/oops]", store=store, extra_env=TERMINAL))
    assert "binance:ETH/USDT[/oops] 1h" in out


# ---- the HTML report's write path ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A store with one recorded run (real BTC/USDT 1h bars): ``(store, run_id)``."""
    folder = tmp_path_factory.mktemp("recorded")
    store, csv_file = folder / "s.duckdb", folder / "bars.csv"
    _bars_csv(csv_file)
    _ok(btlab_cli("data", "import", str(csv_file), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h",
                  store=store))
    out = _ok(btlab_cli("backtest", "--symbol", "BTC/USDT", "--from", "2021-01-05", "--to", "2021-02-20",
                        "--no-report", store=store))
    return store, re.search(r"run id: (\S+)", out).group(1)


def test_report_to_a_folder_is_one_line_and_leaves_nothing(recorded, tmp_path):
    store, run_id = recorded
    folder = tmp_path / "out"
    folder.mkdir()
    proc = btlab_cli("report", run_id, "-o", str(folder), store=store)
    line = assert_one_line(proc)
    assert str(folder) in line and "folder" in line
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_report_never_writes_through_a_symlink_planted_at_the_temporary_name(recorded, tmp_path):
    store, run_id = recorded
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "r.html"
    (tmp_path / "r.html.tmp").symlink_to(victim)  # where the report used to be written first
    proc = btlab_cli("report", run_id, "-o", str(out), store=store)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious" and (tmp_path / "r.html.tmp").is_symlink()
    assert out.read_text(encoding="utf-8").rstrip().endswith("</html>") and not out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.html.tmp", "victim.txt"]


def test_report_file_is_complete_or_not_there(recorded, tmp_path):
    """A write that fails half-way (the file-size limit of the process, EFBIG) leaves the previous report as it was
    and no temporary file; a write that succeeds replaces the file in one step (a new file, not rewritten in
    place), with the usual permissions."""
    import os
    import resource
    import signal
    import subprocess
    import sys
    from pathlib import Path

    store, run_id = recorded
    out = tmp_path / "r.html"
    out.write_text("the previous report")

    def limit_file_size() -> None:  # in the child: writes beyond 200 KB fail (EFBIG) instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    env = {**os.environ, "NO_COLOR": "1", "BTLAB_STORE": str(store), "COLUMNS": "200"}
    proc = subprocess.run([str(Path(sys.executable).with_name("btlab")), "report", run_id, "-o", str(out)],
                          capture_output=True, text=True, env=env, preexec_fn=limit_file_size, timeout=300)
    line = assert_one_line(proc)
    assert f"cannot write the report to {out}" in line
    assert out.read_text() == "the previous report" and [p.name for p in tmp_path.iterdir()] == ["r.html"]

    before = out.stat().st_ino
    proc = btlab_cli("report", run_id, "-o", str(out), store=store)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_ino != before and out.stat().st_size > 200_000
    assert out.read_text(encoding="utf-8").rstrip().endswith("</html>")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


# ---- --strategy runs code ---------------------------------------------------------------------------------------------
def _commands(group, path=()):
    for name, command in getattr(group, "commands", {}).items():
        yield (*path, name), command
        yield from _commands(command, (*path, name))


def test_every_strategy_option_says_whether_it_runs_code():
    """--strategy file.py:Class and module:Class import and run code by design: every command taking --strategy
    says so in its --help (or that it only compares names)."""
    import typer

    from btlab.cli.main import app

    found = []
    for path, command in _commands(typer.main.get_command(app)):
        for param in getattr(command, "params", []):
            if "--strategy" in getattr(param, "opts", []):
                found.append(path)
                help_text = " ".join((param.help or "").split())
                assert ("import and run that Python code" in help_text
                        or "nothing is imported or run" in help_text), (path, help_text)
    assert ("backtest",) in found and ("runs", "list") in found
    out = btlab_cli("backtest", "--help").stdout
    assert "run that Python code with your permissions" in " ".join(out.split())
