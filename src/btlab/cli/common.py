"""Shared pieces of the CLI: consoles, options used by several commands, error display, progress bars, formats.

Errors (README, "The btlab command"): every :class:`~btlab.errors.BtlabError` is printed as one line
``error: ...`` on stderr and exits with its ``exit_code`` (1 bad input, 2 a store, broker or exchange that cannot be
reached); a usage error (unknown option, bad option value) is one line too, exit code 1; any other exception is a
bug: one line with its type and message, exit code 1. ``btlab --debug`` (or ``BTLAB_DEBUG=1``) adds the traceback.
"""

from __future__ import annotations

import functools
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from btlab.errors import BtlabError

try:  # typer 0.29 vendors click as typer._click; older versions use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters other than newline and tab (ESC, BEL, C1 ...) shown as ``\\xNN``: a value
    read from a file, an exchange, a topic or the store cannot start a terminal escape sequence."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class DataConsole(Console):
    """A rich console for output that quotes data: markup and emoji codes are OFF (a symbol ``BTC/USDT[/oops]`` or
    ``[link=...]`` is printed as it is, never parsed), and control characters in strings are made visible
    (:func:`printable`). Styled output is built from :class:`rich.text.Text` (see :func:`styled`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"markup": False, "emoji": False, **kwargs})

    def render_str(self, text: str, **kwargs: Any) -> Text:  # every str printed or put in a table goes through here
        return super().render_str(printable(text), **kwargs)


#: stdout and stderr (see :class:`DataConsole`)
console = DataConsole()
err_console = DataConsole(stderr=True)


def plain(value: Any, style: str = "") -> Text:
    """``value`` as literal text (never markup, control characters made visible), in ``style``."""
    return Text(printable(str(value)), style=style)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line of plain text and ``(text, style)`` pieces, e.g. ``styled(("error:", "bold red"), " ", message)``:
    every piece is shown literally (square brackets in data are never markup, see :func:`plain`)."""
    return Text.assemble(*(plain(*p) if isinstance(p, tuple) else plain(p) for p in parts))

#: set by ``btlab --debug`` / ``BTLAB_DEBUG``: print tracebacks with errors
DEBUG = {"on": False}

#: the apps' shared settings: plain click help (readable at 80 columns, no type noise), -h as --help
APP_SETTINGS: dict[str, Any] = {
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100},
    "add_completion": False,
    "pretty_exceptions_enable": False,
}

# ---- options, defined once (as freqtrade's commands/cli_options.py): commands name them -----------------------
# Each is the option's flag, metavar and help; a command gives its default in its signature (``= None``: optional,
# ``= ...``: required). Help says what the value is and how it is written; what a command does with it is in the
# command's own help.


class OutputFormat(str, Enum):
    """How a listing is printed: a table for people, json/csv for scripts (all columns, nothing else on stdout)."""

    table = "table"
    json = "json"
    csv = "csv"


class Source(str, Enum):
    """Where ``btlab ingest history`` pages from."""

    ccxt = "ccxt"
    cryptocompare = "cryptocompare"


class EmptyPolicy(str, Enum):
    """What live ingest does with a window without trades."""

    skip = "skip"
    flat = "flat"


# where the data is
StoreOption = Annotated[str | None, typer.Option(
    "--store", envvar="BTLAB_STORE", metavar="ADDRESS", show_default=False,
    help="A DuckDB file, or a QuestDB address such as 'http::addr=localhost:9000;'. Default: "
    "$BTLAB_HOME/btlab.duckdb (~/.local/share/btlab/btlab.duckdb).")]
ExchangeOption = Annotated[str | None, typer.Option(
    "--exchange", metavar="ID",
    help="Where the data is from: a ccxt exchange id such as binance (24/7), or, for stored bars, an equity venue "
    "(XNYS/nyse, XNAS/nasdaq, ...).")]
SymbolOption = Annotated[str | None, typer.Option(
    "--symbol", metavar="SYMBOL", help="Instrument: a ccxt unified symbol such as BTC/USDT, or a ticker such as AAPL.")]
SymbolsOption = Annotated[str | None, typer.Option(
    "--symbols", metavar="SYMBOLS", help="Several instruments, comma-separated, e.g. BTC/USDT,ETH/USDT.")]
TimeframeOption = Annotated[str | None, typer.Option(
    "--timeframe", metavar="TF", help="Bar timeframe, written as ccxt does: 1s, 1m, 5m, 1h, 4h, 1d, ...")]
TimeframesOption = Annotated[str | None, typer.Option(
    "--timeframes", metavar="TFS", help="Bar timeframes, comma-separated, e.g. 1s,1m.")]
BarsOption = Annotated[str | None, typer.Option(
    "--bars", metavar="TFS", show_default=False,
    help="Also build these bar timeframes from the trades, comma-separated (e.g. 1m,1h).")]
CalendarOption = Annotated[str | None, typer.Option(
    "--calendar", metavar="CALENDAR", show_default=False,
    help="Trading calendar: 24/7 (or crypto), equity (the venue's exchange calendar) or an exchange calendar "
    "such as XNYS, XNAS, XLON (nyse, nasdaq, lse ...; any exchange_calendars code). Default: from --exchange "
    "(ccxt ids are 24/7). Needed for an exchange btlab does not know.")]
SessionOption = Annotated[str | None, typer.Option(
    "--session", metavar="regular|extended", show_default=False,
    help="For exchange venues: regular (default; e.g. 09:30-16:00 New York, early closes from the calendar) or "
    "extended (04:00-20:00 New York, US venues). Not for 24/7 venues.")]

# when
FromOption = Annotated[str | None, typer.Option(
    "--from", metavar="DATE", show_default=False, help="First day or time (UTC, inclusive), e.g. 2020-01-01.")]
ToOption = Annotated[str | None, typer.Option(
    "--to", metavar="DATE", show_default=False,
    help="Last day (UTC, inclusive: 2020-12-31 includes that whole day) or time.")]
SinceOption = Annotated[str, typer.Option("--since", metavar="DATE", help="First bar or trade (UTC), e.g. 2024-01-01.")]
UntilOption = Annotated[str | None, typer.Option(
    "--until", metavar="DATE", show_default=False,
    help="Stop before this time (UTC, exclusive); default: the last closed bar.")]

# files and runs
BarFilesArgument = Annotated[list[Path], typer.Argument(
    metavar="FILES...", help="CSV (.csv, .csv.gz, .zip), feather or parquet files, or folders of them (every such "
    "file directly inside, by name).")]
BinanceFilesArgument = Annotated[list[Path], typer.Argument(
    metavar="FILES...", help="data.binance.vision files: klines, trades or aggTrades, .zip or .csv.")]
RunIdArgument = Annotated[str, typer.Argument(
    metavar="RUN_ID", help="Run id, or a unique part of it such as the 8 hex digits btlab runs list shows.")]
RunIdsArgument = Annotated[list[str], typer.Argument(metavar="RUN_ID...", help="Run ids (see btlab runs list).")]
OutputFileOption = Annotated[Path | None, typer.Option(
    "--output", "-o", metavar="FILE", show_default=False,
    help="HTML file to write (default reports/RUN_ID.html; for a sweep reports/SWEEP_ID.html).")]
FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", "-f", metavar="table|json|csv", case_sensitive=False,
    help="table for people; json or csv for scripts (all columns, full values, nothing else on stdout).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

# data commands
AllowMismatchOption = Annotated[bool, typer.Option(
    "--allow-timeframe-mismatch",
    help="Import even when the bars are spaced by a whole multiple of --timeframe (1h bars given as 1m are "
    "refused without it).")]
SymbolFromFileOption = Annotated[bool, typer.Option(
    "--symbol-from-file",
    help="Take each file's symbol from its Name/symbol/ticker column (the same on every row), or else from its "
    "name up to the first '_' (AAPL_data.csv -> AAPL). Instead of --symbol.")]
SkipInvalidOption = Annotated[bool, typer.Option(
    "--skip-invalid",
    help="Import the valid files and skip (and list) the invalid ones, instead of stopping at the first.")]
GapsOption = Annotated[int, typer.Option(
    "--gaps", min=0, metavar="N", help="List at most this many gaps per series (0: none).")]
SourceTimeframeOption = Annotated[str, typer.Option(
    "--source-timeframe", metavar="TF", help="Timeframe of the stored bars to build from, e.g. 1h.")]
AllowPartialOption = Annotated[bool, typer.Option(
    "--allow-partial", help="Also build windows with some source bars missing (e.g. equity sessions); never at "
    "the ends of the stored span or of --from/--to.")]

# backtest
StrategyOption = Annotated[str, typer.Option(
    "--strategy", metavar="NAME",
    help="Bundled name (see btlab strategies), package.module:Class or file.py:Class. The last two import and run "
    "that Python code with your permissions (by design): only name code you trust.")]
ResampleOption = Annotated[str | None, typer.Option(
    "--resample", metavar="TFS", show_default=False,
    help="Also feed these timeframes, built from the stored bars by Backtrader's resampler, comma-separated, e.g. "
    "1h,1d (each divides a day, or 1d, or 1w: ISO weeks from Monday 00:00 UTC). Feeds after the base ones, per "
    "timeframe then symbol, named SYMBOL@TF (e.g. BTC/USDT@1h); a bar is seen once its window has closed.")]
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", "-p", metavar="NAME=VALUE", help="Strategy parameter name=value (repeatable).")]
CashOption = Annotated[float, typer.Option("--cash", metavar="AMOUNT", help="Starting cash in quote currency.")]
CommissionOption = Annotated[float, typer.Option(
    "--commission", metavar="FRACTION", help="Commission as a fraction of traded value (0.001 = 0.1 %), below 1.")]
SizePctOption = Annotated[float, typer.Option(
    "--size-pct", metavar="PERCENT", help="Order size as percent of available cash.")]
StakeOption = Annotated[float | None, typer.Option(
    "--stake", metavar="UNITS", help="Fixed order size in units (overrides --size-pct).")]
SlippagePctOption = Annotated[float, typer.Option(
    "--slippage-pct", metavar="FRACTION", help="Slippage as a fraction of price (0.0005 = 5 bp), below 0.5.")]
SlippageFixedOption = Annotated[float, typer.Option(
    "--slippage-fixed", metavar="PRICE",
    help="Slippage in price units, below the median price (ignored if --slippage-pct).")]
AllowGapsOption = Annotated[bool, typer.Option(
    "--allow-gaps", help="Run even across missing bars over the limit: one gap longer than 7 days, or more than "
    "5 % of the range missing (gaps are always reported).")]
ReportOption = Annotated[bool, typer.Option("--report/--no-report", help="Also write the HTML report.")]

# runs
LimitOption = Annotated[int, typer.Option("--limit", min=1, metavar="N", help="Show at most N runs, newest first.")]
StrategyFilterOption = Annotated[str | None, typer.Option(
    "--strategy", metavar="NAME", help="Only runs of this strategy (as recorded: sma_cross, pkg.module:Class, "
    "file.py:Class; only compared with the recorded name, nothing is imported or run).")]
WideOption = Annotated[bool, typer.Option(
    "--wide", "-w", help="All columns: every setting, metric, hash and version, nothing shortened.")]
OlderThanOption = Annotated[str, typer.Option(
    "--older-than", metavar="DURATION",
    help="A run still marked running without a heartbeat for this long is stale: 90s, 2m, 1h, 3d.")]

# health
ServiceOption = Annotated[str, typer.Option(
    "--service", metavar="NAME", help="The btlab service whose heartbeat is checked (bt_health.service): ingest-live, sink.")]
MaxAgeOption = Annotated[str, typer.Option(
    "--max-age", metavar="DURATION", help="Healthy when its last heartbeat is at most this old: 90s, 2m, 1h.")]

# ingest
SourceOption = Annotated[Source, typer.Option("--source", help="ccxt (any of its 100+ exchanges) or cryptocompare.")]
TradesOption = Annotated[bool, typer.Option(
    "--trades", help="ccxt only: fetch trade history into the ticks table instead of bars.")]
ApiUrlOption = Annotated[str | None, typer.Option(
    "--api-url", metavar="URL", show_default=False,
    help="Override the exchange's REST base URL (a proxy, or a local fake exchange; live ingest uses it for "
    "markets and gap backfill).")]
WsUrlOption = Annotated[str | None, typer.Option(
    "--ws-url", metavar="URL", show_default=False,
    help="Override the exchange's WebSocket base URL (e.g. ws://127.0.0.1:8765).")]
KafkaOption = Annotated[str | None, typer.Option(
    "--kafka", envvar="BTLAB_KAFKA", metavar="HOST:PORT", show_default=False,
    help="Kafka/Redpanda bootstrap servers (ingest live: ticks and bars also go to topics; replay and backtest "
    "--source kafka: the broker to use).")]
LatenessOption = Annotated[float, typer.Option(
    "--lateness", metavar="SECONDS", help="Allowed lateness in seconds: a bar is final once trades newer than its "
    "end + this arrived (the watermark).")]
EmptyOption = Annotated[EmptyPolicy, typer.Option(
    "--empty", help="Windows without trades: skip (no bar) or flat (zero-volume bar at the previous close).")]
DurationOption = Annotated[float | None, typer.Option(
    "--duration", metavar="SECONDS", help="Stop after this many seconds (default: run until Ctrl-C).")]
IdleTimeoutOption = Annotated[float | None, typer.Option(
    "--idle-timeout", metavar="SECONDS", help="Stop after this many seconds without a trade.")]
WatchTimeoutOption = Annotated[float, typer.Option(
    "--watch-timeout", metavar="SECONDS", help="Reconnect when the subscription is silent this many seconds.")]
GrafanaDirOption = Annotated[Path, typer.Option(
    "--out", metavar="DIR", help="The Grafana folder to write: dashboards/*.json and provisioning/alerting/ under it "
    "(the compose stack provisions deploy/grafana).")]
CheckOption = Annotated[bool, typer.Option(
    "--check", help="Write nothing; exit 1 naming every file that is missing or differs from the generated one.")]
HealthIntervalOption = Annotated[float, typer.Option(
    "--health-interval", metavar="SECONDS", help="Write pipeline figures (ingest live: rows/s, late and quarantined "
    "trades, gaps filled, reconnects; sink: records/s, consumer lag, dead letters; replay: records/s and the lag "
    "behind schedule per topic) and a heartbeat to the store's bt_health table this often, for the pipeline-health "
    "dashboard (replay: 0 = off).")]

F = TypeVar("F", bound=Callable[..., Any])


def _print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, the message shown literally (it may quote any input)."""
    err_console.print(styled(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def _error_line(message: str, code: int) -> typer.Exit:
    _print_error(message)
    return typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= 300 else text[:297] + "..."


def friendly_errors(func: F) -> F:
    """Run a command: a :class:`BtlabError` becomes one red line on stderr and its exit code; any other exception
    (a bug) one line with its type and message, exit code 1. With ``--debug`` the traceback is printed first."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click_exceptions.ClickException, BrokenPipeError):
            raise  # usage errors and exits are the command line's own business (see BtlabGroup)
        except BtlabError as exc:
            if DEBUG["on"]:
                traceback.print_exc()
            raise _error_line(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            if DEBUG["on"]:
                traceback.print_exc()
            raise _error_line("interrupted (Ctrl-C)", 130) from None
        except Exception as exc:  # noqa: BLE001 - a bug: say so in one line, the traceback on request
            if DEBUG["on"]:
                traceback.print_exc()
                raise _error_line(f"{type(exc).__name__}: {_one_line(exc)}", 1) from None
            raise _error_line(f"unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the "
                              "traceback)", 1) from None

    return wrapper  # type: ignore[return-value]


def _teach(command: Any) -> None:
    """Give each option of ``command`` without a declared metavar one saying what its value is, and drop "[default: False]"-style noise
    from flags (their help says what they do)."""
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "argument":
            _teach_argument(param)
            continue
        if getattr(param, "param_type_name", "") != "option":
            continue
        if getattr(param, "is_flag", False):
            param.show_default = False
            continue
        if param.metavar is not None:
            continue
        described = getattr(param, "type_descriptor", None)  # typer >= 0.29; older typers have click types
        choices = described.choices if described is not None else getattr(getattr(param, "type", None), "choices",
                                                                           None)
        kind = str(described.annotation if described is not None else getattr(getattr(param, "type", None), "name",
                                                                               ""))
        if choices:
            param.metavar = "|".join(str(getattr(c, "value", c)) for c in choices)
        elif "int" in kind:
            param.metavar = "N"
        elif "float" in kind:
            param.metavar = "NUMBER"
        else:
            param.metavar = (param.name or "value").upper()


def _teach_argument(param: Any) -> None:
    """``RUN_ID`` in help and usage, not ``RUN_ID <str>`` and ``{RUN_ID}`` (typer >= 0.29's rendering)."""
    name = str(param.metavar or (param.name or "arg").upper())
    shown = name if name.endswith("...") or getattr(param, "nargs", 1) == 1 else name + "..."
    param.metavar = shown
    if hasattr(param, "display_type_rich"):
        param.display_type_rich = lambda ctx: None
    if hasattr(param, "_usage_display_name"):
        param._usage_display_name = lambda: shown if param.required else f"[{shown}]"


class BtlabGroup(TyperGroup):
    """The command group of every btlab app: usage errors (unknown option, bad value, missing argument) are one
    line on stderr naming the command's ``--help``, exit code 1 (2 is kept for unreachable services)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `btlab` or `btlab runs` alone: the help
                typer.echo(exc.format_message())
                sys.exit(0)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            _print_error(f"{message}{hint}")
            sys.exit(1)
        except click_exceptions.ClickException as exc:
            _print_error(exc.format_message())
            sys.exit(exc.exit_code)
        except typer.Abort:
            _print_error("aborted")
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - a bug outside a command (friendly_errors handles those inside)
            if DEBUG["on"] or "--debug" in sys.argv:
                traceback.print_exc()
            _print_error(f"unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the traceback)")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not getattr(command, "_btlab_taught", False):
            _teach(command)
            command._btlab_taught = True
        return command


def open_store_cli(store: str | None, *, read_only: bool = False, listing: bool = False, existing: bool = False):
    """Open the store named by ``--store``/``BTLAB_STORE`` (``store``; None = the default DuckDB file).

    ``read_only``: for commands that only read -- nothing is created (no file, folder or table). A missing store
    at an address the user gave is an error (exit 1). A missing DEFAULT store is the normal state of a new
    installation: with ``listing`` (``runs list``, ``data coverage``) it prints one line saying so and exits 0;
    otherwise it is an error naming the file and how to fill it.

    ``existing``: for commands that write into what is already stored (``backtest``, ``runs cleanup``, ``data
    resample``): a missing store is the same error as with ``read_only`` and nothing is created.
    """
    from btlab.errors import StoreNotFoundError
    from btlab.store import open_store

    if existing and not read_only:
        open_store_cli(store, read_only=True).close()  # a missing store is an error here, never created
    try:
        return open_store(store, read_only=read_only)
    except StoreNotFoundError as exc:
        if store is not None:
            raise
        hint = (f"no store yet at {exc.address} (the default): nothing imported or recorded; start with "
                f"btlab data import FILE --symbol S --timeframe T, or pass --store")
        if listing:
            console.print(hint, highlight=False, soft_wrap=True)
            raise typer.Exit(0) from None
        raise StoreNotFoundError(exc.address, hint) from None


def fmt(value: Any, unit: str = "ratio") -> str:
    from btlab.report.format import format_value

    return format_value(value, unit)


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """The metrics of a run in sections (:data:`btlab.report.format.METRIC_SECTIONS`); ``title`` shown literally."""
    from rich.table import Table

    from btlab.report.format import METRIC_SECTIONS

    table = Table(title=plain(title), show_header=True, header_style="bold")
    table.add_column("section", style="dim")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for section, rows in METRIC_SECTIONS:
        for i, (key, label, unit) in enumerate(rows):
            table.add_row(section if i == 0 else "", label, fmt(metrics.get(key), unit))
    return table


def progress_bar() -> Progress:
    """A transient progress bar on stderr, shown only when stderr is a terminal. Task descriptions are shown
    literally (they name files and symbols: never parsed as markup)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TimeElapsedColumn, TimeRemainingColumn

    class Description(ProgressColumn):
        def render(self, task: Any) -> Text:
            return plain(task.description, "progress.description")

    return Progress(
        Description(), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True,
        disable=not err_console.is_terminal,
    )


class ProgressTask:
    """One task of a :func:`progress_bar`: call it as ``progress(done, total)`` (the API's progress callbacks);
    :meth:`warn` prints a yellow warning line above the bar and remembers it (:attr:`warned`)."""

    def __init__(self, progress: Progress, description: str, total: int | None = None) -> None:
        self.progress, self.task, self.warned = progress, progress.add_task(description, total=total), []

    def __call__(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def warn(self, line: str) -> None:
        self.warned.append(line)
        warn(line, self.progress.console)


@contextmanager
def progress_task(description: str) -> Iterator[ProgressTask]:
    """A transient progress bar (:func:`progress_bar`) with one task, gone when the block ends."""
    with progress_bar() as progress:
        yield ProgressTask(progress, description)


def warn(line: str, out: Console | None = None) -> None:
    """``warning: LINE`` in yellow on stdout (or ``out``), shown literally."""
    (out or console).print(styled((f"warning: {line}", "yellow")), highlight=False, soft_wrap=True)


def need_text(value: str, option: str) -> str:
    """``value`` if it is not blank.

    Raises:
        InvalidArgumentError: ``OPTION must not be empty``.
    """
    from btlab.errors import InvalidArgumentError

    if not value.strip():
        raise InvalidArgumentError(f"{option} must not be empty")
    return value


def parse_timeframes(text: str | None, option: str) -> list[str]:
    """``"1m,1h"`` -> ``["1m", "1h"]``, every timeframe checked (before any work is done).

    Raises:
        InvalidArgumentError: a timeframe is invalid, or the list is empty -- naming ``option``.
    """
    from btlab.errors import InvalidArgumentError
    from btlab.model.timeframe import Timeframe

    if text is None:
        return []
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(Timeframe.parse(item).value)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{option}: {exc}") from None
    if not out:
        raise InvalidArgumentError(f"{option}: no timeframe given (e.g. {option} 1m,1h)")
    return out


def parse_range(from_: str | None, to: str | None) -> tuple[Any, Any]:
    """``--from``/``--to`` (inclusive UTC days or times) -> ``(start, end)`` for ``start <= ts < end``.

    Raises:
        InvalidArgumentError: unparsable or ambiguous, or ``--from`` after ``--to``
            (:func:`btlab.model.timebounds.parse_range`).
    """
    from btlab.model.timebounds import parse_range as parse_bounds

    return parse_bounds(from_, to)


def confirm(question: str, yes: bool) -> bool:
    """True if ``yes`` or the user answers yes (an answer piped on stdin counts; end of input means no)."""
    import sys

    if yes:
        return True
    try:
        answer = bool(typer.confirm(question, default=False, err=True))
    except (typer.Abort, EOFError):
        answer = False
    if not sys.stdin.isatty():  # a piped answer is not echoed: end the prompt's line
        err_console.print("yes" if answer else "no", highlight=False)
    return answer

# replay through the broker (btlab replay; btlab backtest --source kafka)
TopicOption = Annotated[str | None, typer.Option(
    "--topic", metavar="TOPIC", show_default=False,
    help="Topic (default btlab.bars.<timeframe>, btlab.ticks with --ticks, the bars topic with --ticks --with-bars; "
    "btlab paper: btlab.paper.bars.<timeframe>, one run at a time).")]
ReplayTicksOption = Annotated[bool, typer.Option(
    "--ticks", help="Replay the stored trades (ticks) instead of bars, to the ticks topic (default btlab.ticks).")]
ReplayBarsOption = Annotated[bool, typer.Option(
    "--with-bars", help="With --ticks: replay the stored bars too, to the bars topic (--topic), merged with the trades "
    "in one event-time order (bar close, trade time; bars first at equal time).")]
TickTopicOption = Annotated[str | None, typer.Option(
    "--tick-topic", metavar="TOPIC", show_default=False,
    help="With --ticks --with-bars: the ticks topic (default btlab.ticks); --topic is then the bars topic.")]
SpeedOption = Annotated[str, typer.Option(
    "--speed", metavar="1|60|max", help="Event-time seconds per wall second (1 = real time), or max: no pacing.")]
ConnectTimeoutOption = Annotated[float, typer.Option(
    "--connect-timeout", metavar="SECONDS", min=0.1, help="Wait this long for the broker before giving up (exit 2).")]
BarSourceOption = Annotated[str, typer.Option(
    "--source", metavar="store|kafka",
    help="Where the bars come from: the store, or kafka: a topic written by btlab replay (--topic, --kafka).")]

# the sink (btlab sink: topics -> store)
TopicsOption = Annotated[str, typer.Option(
    "--topics", metavar="TOPIC,TOPIC", help="Tick and bar topics to write into the store, comma-separated.")]
GroupOption = Annotated[str, typer.Option(
    "--group", metavar="GROUP", help="Kafka consumer group: where a restarted sink resumes; sinks with one group "
    "share the partitions.")]
BatchSizeOption = Annotated[int, typer.Option(
    "--batch-size", metavar="N", min=1, help="Records written to the store and committed together.")]
MaxRecordsOption = Annotated[int | None, typer.Option(
    "--max-records", metavar="N", min=1, show_default=False,
    help="Stop after about N records (whole batches; default: run until stopped).")]
IdleExitOption = Annotated[float | None, typer.Option(
    "--idle-exit", metavar="SECONDS", show_default=False,
    help="Stop once nothing arrived for this many seconds (default: run until stopped).")]
# paper trading (btlab paper)
MaxBarsOption = Annotated[int | None, typer.Option(
    "--max-bars", metavar="N", min=1, show_default=False, help="Stop after the strategy has seen N bars.")]

# parameter sweeps (btlab sweep)
SweepIdArgument = Annotated[str, typer.Argument(metavar="SWEEP_ID", help="Sweep id (see btlab sweep list).")]
SweepIdOption = Annotated[str | None, typer.Option(
    "--sweep-id", metavar="ID", show_default=False,
    help="The sweep's id (default: derived from the strategy, grid, data range and hash, engine and settings, so "
    "the same command again resumes the same sweep). Finished combinations are skipped; failed ones run again.")]
GridOption = Annotated[Path | None, typer.Option(
    "--grid", metavar="FILE", show_default=False,
    help="Grid YAML file: params (name: {range: [start, stop, step]} or a list), constraints, sample, seed.")]
GridParamOption = Annotated[list[str] | None, typer.Option(
    "--grid-param", metavar="NAME=SPEC", show_default=False,
    help="A parameter's values: name=5:60:5 (inclusive range), name=a,b,c (list) or name=x (repeatable; "
    "replaces the grid file's parameter of that name).")]
ConstraintOption = Annotated[list[str] | None, typer.Option(
    "--constraint", metavar="EXPR", show_default=False,
    help="Keep only combinations where EXPR holds, e.g. \"fast < slow\" (repeatable; parameters, numbers, "
    "+ - * / // %, comparisons, and/or/not).")]
SampleOption = Annotated[int | None, typer.Option(
    "--sample", metavar="N", min=1, show_default=False,
    help="Run N combinations drawn at random (without replacement, after the constraints).")]
SeedOption = Annotated[int | None, typer.Option(
    "--seed", metavar="K", show_default=False, help="Seed of --sample's draw (default 0: the same draw every time).")]
WorkersOption = Annotated[int | None, typer.Option(
    "--workers", metavar="N", min=1, show_default=False,
    help="Worker processes of the local Dask cluster (default 2, one thread each).")]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", metavar="tcp://HOST:8786", envvar="BTLAB_DASK_SCHEDULER", show_default=False,
    help="A Dask scheduler to run on instead of a local cluster.")]
EngineOption = Annotated[str, typer.Option(
    "--engine", metavar="backtrader|vector",
    help="backtrader (any strategy), or vector: numba kernels with Backtrader's fills (strategies with a kernel).")]
ByOption = Annotated[str, typer.Option(
    "--by", metavar="METRIC",
    help="Rank by this metric: sharpe, sortino, calmar, cagr, total_return, max_drawdown (<= 0, closer to 0 is "
    "better), win_rate, profit_factor, avg_trade, exposure, n_trades, end_value (higher first), or volatility, "
    "max_drawdown_days (lower first).")]
WalkForwardByOption = Annotated[str, typer.Option(
    "--by", metavar="METRIC",
    help="Choose each window's combination by this metric: as sweep show --by (sharpe, ..., volatility lower "
    "first), or tracking_error (lower first) for an index tracker such as mp_tracker.")]
TopNOption = Annotated[int, typer.Option("-n", "--top", metavar="N", min=1, help="How many combinations.")]
MetricOption = Annotated[str, typer.Option(
    "--metric", metavar="METRIC", help="Metric of the heatmap, marginals, histogram and ranking (as --by).")]
XParamOption = Annotated[str | None, typer.Option(
    "--x", metavar="PARAM", show_default=False,
    help="Parameter across the heatmap (default: the first with more than one value).")]
YParamOption = Annotated[str | None, typer.Option(
    "--y", metavar="PARAM", show_default=False, help="Parameter down the heatmap (default: the next one).")]

# walk-forward (btlab walkforward)
TrainOption = Annotated[str, typer.Option(
    "--train", metavar="DURATION",
    help="Length of the (first) train window: <n>d, <n>w, <n>m (calendar months) or <n>y, e.g. 2y.")]
TestOption = Annotated[str, typer.Option(
    "--test", metavar="DURATION", help="Length of each test window (as --train), e.g. 6m.")]
StepOption = Annotated[str | None, typer.Option(
    "--step", metavar="DURATION", show_default=False,
    help="How far each window moves (as --train; default: --test; not shorter than --test).")]
AnchoredOption = Annotated[bool, typer.Option(
    "--anchored", help="Expanding train window (always from --from) instead of a rolling one.")]
WalkForwardIdOption = Annotated[str | None, typer.Option(
    "--walkforward-id", metavar="ID", show_default=False,
    help="The walk-forward's id (default: derived from the request and the bars, so the same command again "
    "resumes: each window's sweep skips its finished combinations).")]
