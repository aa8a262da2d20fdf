"""One-line errors through the real ``btlab`` console script: exit 1 for bad input, 2 for an unreachable service,
a traceback only with ``--debug``; ambiguous dates refused; ``--version``; help that teaches; a README that is
true about the commands and their options."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pytest

from realdata import BTC_1H, REPO
from cliproc import assert_one_line, btlab_cli

ROOT = REPO


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def bars_store(tmp_path_factory) -> Path:
    """A store holding the bundled real BTC/USDT 1h bars."""
    store = tmp_path_factory.mktemp("errors") / "bars.duckdb"
    proc = btlab_cli("data", "import", str(BTC_1H), "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe",
                     "1h", store=store)
    assert proc.returncode == 0, proc.stderr
    return store


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_runs_list_bad_limit_is_one_line(tmp_path, limit):
    line = assert_one_line(btlab_cli("runs", "list", "--limit", limit, store=tmp_path / "s.duckdb"))
    assert "--limit" in line and "greater than or equal to 1" in line and "btlab runs list --help" in line


def test_runs_list_limit_api_refuses_bad_values(tmp_path):
    from btlab.errors import InvalidArgumentError
    from btlab.store.duckdb import DuckDBStore

    with DuckDBStore(tmp_path / "s.duckdb") as store:
        for bad in (0, -1):
            with pytest.raises(InvalidArgumentError, match="limit"):
                store.list_runs(limit=bad)
            with pytest.raises(InvalidArgumentError, match="limit"):
                store.run_rows(limit=bad)


def test_ingest_live_unreachable_exchange_is_one_line(tmp_path):
    port = closed_port()
    proc = btlab_cli("ingest", "live", "--symbols", "BTC/USDT", "--duration", "5", "--api-url",
                     f"http://127.0.0.1:{port}", store=tmp_path / "live.duckdb", timeout=120)
    line = assert_one_line(proc, code=2)
    assert "binance" in line and "exchangeInfo" in line and "connection refused" in line, line
    assert f"127.0.0.1:{port}" in line


def test_strategy_file_with_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad_strategy.py"
    bad.write_text("import backtrader as bt\n\n\nclass Broken(bt.Strategy)\n    pass\n")
    line = assert_one_line(btlab_cli("backtest", "--strategy", f"{bad}:Broken", store=tmp_path / "s.duckdb"))
    assert f"{bad}, line 4" in line and "SyntaxError" in line, line


def test_strategy_file_raising_on_import_names_file_and_line(tmp_path):
    bad = tmp_path / "raises.py"
    bad.write_text("import backtrader as bt\nLIMIT = 1 / 0\n")
    line = assert_one_line(btlab_cli("backtest", "--strategy", f"{bad}:X", store=tmp_path / "s.duckdb"))
    assert f"{bad}, line 2" in line and "ZeroDivisionError" in line, line


def test_strategy_load_error_from_python(tmp_path):
    from btlab.backtest.registry import resolve_strategy
    from btlab.errors import StrategyLoadError

    bad = tmp_path / "indent.py"
    bad.write_text("import backtrader as bt\nclass X(bt.Strategy):\n\tpass\n        y = 1\n")
    with pytest.raises(StrategyLoadError, match=r"indent\.py, line 4"):
        resolve_strategy(f"{bad}:X")
    assert not [m for m in sys.modules if m.startswith("btlab_user_indent")]  # nothing half-imported is left


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "01/02/2020"], "--from '01/02/2020' is ambiguous (2020-02-01 or 2020-01-02?): use YYYY-MM-DD"),
        (["--from", "13/02/2020"], "is not YYYY-MM-DD (2020-02-13?)"),
        (["--to", "1577836800"], "a bare number is not a time"),
        (["--from", "2020-01"], "is not a whole date"),
        (["--from", "2020-01-01", "--to", "2019-01-01"], "--from 2020-01-01 is after --to 2019-01-01"),
        (["--from", "2020-01-02", "--to", "2020-01-01"], "--from 2020-01-02 is after --to 2020-01-01"),
        (["--from", "2020-02-30"], "cannot parse --from value '2020-02-30'"),
    ],
)
def test_backtest_dates_are_strict(tmp_path, args, expected):
    line = assert_one_line(btlab_cli("backtest", *args, store=tmp_path / "s.duckdb"))
    assert expected in line, line


def test_ingest_history_dates_are_strict_before_any_request(tmp_path):
    port = closed_port()  # nothing is contacted: the dates are refused first
    base = ["ingest", "history", "--symbols", "BTC/USDT", "--api-url", f"http://127.0.0.1:{port}"]
    line = assert_one_line(btlab_cli(*base, "--since", "02/01/2024", store=tmp_path / "s.duckdb"))
    assert "--since '02/01/2024' is ambiguous" in line
    line = assert_one_line(btlab_cli(*base, "--since", "2024-02-01", "--until", "2024-01-01",
                                     store=tmp_path / "s.duckdb"))
    assert "--since 2024-02-01 is after --until 2024-01-01" in line


def test_iso_and_marked_epoch_bounds_are_accepted(bars_store):
    """The same range given as dates, ISO times with offsets and @epoch seconds selects the same bars."""
    import btlab

    first = btlab.run_backtest("buy_hold", start="2021-03-01", end="2021-03-02", store=str(bars_store),
                               record=False)
    second = btlab.run_backtest("buy_hold", start="2021-03-01T01:00+01:00", end="@1614729599",
                                store=str(bars_store), record=False)
    assert len(first.bars) == len(second.bars) == 48
    assert first.bars["ts"].iloc[0] == second.bars["ts"].iloc[0]


def test_unexpected_exception_is_one_line_and_debug_shows_traceback(bars_store, tmp_path):
    strat = tmp_path / "buggy.py"
    strat.write_text(
        "import backtrader as bt\n\n\nclass Buggy(bt.Strategy):\n    def next(self):\n"
        "        if len(self) == 5:\n            {}['missing']\n"
    )
    args = ["backtest", "--strategy", f"{strat}:Buggy", "--from", "2021-01-01", "--to", "2021-01-02", "--no-report"]
    line = assert_one_line(btlab_cli(*args, store=bars_store))
    assert "KeyError" in line and "'missing'" in line and "rerun with --debug for the traceback" in line
    proc = btlab_cli("--debug", *args, store=bars_store)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and f'File "{strat}", line 7' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: KeyError")
    proc = btlab_cli(*args, store=bars_store, extra_env={"BTLAB_DEBUG": "1"})
    assert "Traceback (most recent call last)" in proc.stderr


def test_debug_shows_traceback_of_user_errors_too(tmp_path):
    from btlab.store.duckdb import DuckDBStore

    DuckDBStore(tmp_path / "s.duckdb").close()
    proc = btlab_cli("--debug", "runs", "show", "nope-nope", store=tmp_path / "s.duckdb")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "RunNotFoundError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: no run 'nope-nope' in the store at " \
        f"{tmp_path / 's.duckdb'} (see: btlab runs list)"


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "--limit", "x"],
        ["runs", "list", "--bogus"],
        ["runs", "list", "--format", "xml"],
        ["runs", "show"],
        ["runs", "show", ""],
        ["runs", "show", "'; DROP TABLE bt_runs; --"],
        ["runs", "cleanup", "--older-than", "soon"],
        ["runs", "cleanup", "--older-than", "0s"],
        ["report", "no-such-run", "-o", "/nonexistent/dir/x.html"],
        ["data", "coverage", "--gaps", "-1"],
        ["data", "import", "no-such-file.csv", "--symbol", "BTC/USDT", "--timeframe", "1h"],
        ["data", "import"],
        ["backtest", "--strategy", "/nonexistent/strategy.py:X"],
        ["backtest", "--strategy", "os.path:join"],
        ["backtest", "--strategy", "no_such_module_xyz:X"],
        ["backtest", "--from", "2020-13-45"],
        ["backtest", "--cash", "lots"],
        ["strategies", "extra"],
        ["ingest", "history", "--since", "2024-01-01"],
        ["ingest", "history", "--symbols", "BTC/USDT", "--since", "garbage"],
        ["ingest", "history", "--symbols", "BTC/USDT", "--since", "2024-01-01", "--exchange", "nosuchexchange"],
        ["ingest", "binance-vision", "no-such-file.zip"],
        ["ingest", "live", "--symbols", "BTC/USDT", "--timeframes", "7q"],
        ["ingest", "live", "--symbols", "BTC/USDT", "--empty", "sometimes"],
        ["--nonsense"],
        ["nosuchcommand"],
    ],
)
def test_garbage_input_is_one_line(tmp_path, args):
    proc = btlab_cli(*args, store=tmp_path / "garbage.duckdb", timeout=120)
    assert_one_line(proc, code=1)


def test_usage_errors_name_the_help_of_their_command(tmp_path):
    line = assert_one_line(btlab_cli("runs", "list", "--bogus", store=tmp_path / "s.duckdb"))
    assert line == "error: No such option: --bogus (see: btlab runs list --help)"


def test_version():
    from importlib.metadata import version

    proc = btlab_cli("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == (f"btlab {version('btlab')} (Backtrader {version('backtrader')}, Python "
                                   f"{'.'.join(map(str, sys.version_info[:3]))} {sys.implementation.name.replace('cpython', 'CPython')})")


def test_no_arguments_prints_help():
    proc = btlab_cli()
    assert proc.returncode == 0 and "Usage: btlab" in proc.stdout and "Quick start" in proc.stdout


HELP_COMMANDS = [[], ["backtest"], ["data", "import"], ["data", "coverage"], ["runs", "list"], ["runs", "show"],
                 ["runs", "cleanup"], ["report"], ["strategies"], ["ingest", "history"], ["ingest", "binance-vision"],
                 ["ingest", "live"]]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "btlab")
def test_help_fits_80_columns_without_type_noise(command):
    proc = btlab_cli(*command, "--help", columns="80")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("Usage: btlab") and "{" not in text.splitlines()[0]
    assert not re.search(r"<(bool|str|int|float|list\[str\]|path)>", text), text
    assert not re.search(r"\b(TEXT|INTEGER|FLOAT|BOOLEAN)\b", text), text
    assert "[default: False]" not in text and "[default: True]" not in text
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_backtest_help_teaches():
    text = btlab_cli("backtest", "--help", columns="80").stdout
    for shown in ("--from DATE", "--to DATE", "-p, --param NAME=VALUE", "--store ADDRESS", "--cash AMOUNT",
                  "--commission FRACTION"):
        assert shown in text, shown


def _readme_commands() -> list[tuple[list[str], list[str]]]:
    """(command words, options) of every row of README's command table."""
    rows = []
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"^\| `btlab ([^`]+)` \|", line)
        if not m:
            continue
        words = m.group(1).replace("\\|", "|").split()
        command = []
        for word in words:
            if word.startswith(("-", "[")) or word.isupper() or "." in word or "/" in word:
                break
            command.append(word)
        options = sorted({w.split("=")[0] for w in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line)})
        rows.append((command, options))
    return rows


def test_readme_commands_and_options_exist():
    """Every command of README's table exists and every --option named in its row is in that command's help."""
    rows = _readme_commands()
    assert len(rows) >= 10
    for command, options in rows:
        proc = btlab_cli(*command, "--help")
        assert proc.returncode == 0, (command, proc.stderr)
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", proc.stdout), (command, option)


def test_friendly_errors_in_process(capsys):
    """The wrapper itself: a bug becomes one line and exit 1, a BtlabError its own exit code, exits pass."""
    import typer

    from btlab.cli.common import DEBUG, friendly_errors
    from btlab.errors import StoreUnavailableError

    @friendly_errors
    def bug() -> None:
        {}["missing"]

    @friendly_errors
    def unreachable() -> None:
        raise StoreUnavailableError("http::addr=127.0.0.1:9;", "connection refused")

    @friendly_errors
    def done() -> None:
        raise typer.Exit(3)

    DEBUG["on"] = False
    with pytest.raises(typer.Exit) as exit_info:
        bug()
    assert exit_info.value.exit_code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: unexpected KeyError: 'missing' (rerun with --debug for the "
                                "traceback)"]
    with pytest.raises(typer.Exit) as exit_info:
        unreachable()
    assert exit_info.value.exit_code == 2
    assert capsys.readouterr().err.strip() == ("error: cannot reach the store at http::addr=127.0.0.1:9;: "
                                               "connection refused")
    with pytest.raises(typer.Exit) as exit_info:
        done()
    assert exit_info.value.exit_code == 3 and capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_bad_health_interval_is_one_line_naming_the_option(tmp_path, value):
    """ingest live checks --health-interval before connecting: one line naming the option, exit 1, no store written."""
    store = tmp_path / "h.duckdb"
    line = assert_one_line(btlab_cli("ingest", "live", "--symbols", "BTC/USDT", "--health-interval", value,
                                     "--api-url", "http://127.0.0.1:9", store=store, timeout=120), code=1)
    assert "--health-interval" in line, line
    assert not store.exists()
