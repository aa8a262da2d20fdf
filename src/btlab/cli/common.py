"""Shared pieces of the CLI: consoles, the --store option, error display, progress bars, formatting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from btlab.errors import BtlabError

console = Console()
err_console = Console(stderr=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="BTLAB_STORE",
        help="Store address: a DuckDB file (default ~/.local/share/btlab/btlab.duckdb) or QuestDB, "
        "e.g. 'http::addr=localhost:9000;'.",
        show_default=False,
    ),
]

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
FromDayOption = Annotated[
    str | None,
    typer.Option("--from", help="First day or time (UTC, inclusive), e.g. 2020-01-01.", show_default=False),
]
ToDayOption = Annotated[
    str | None,
    typer.Option("--to", help="Last day (UTC, inclusive: 2020-12-31 includes that whole day) or time.",
                 show_default=False),
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Print a :class:`BtlabError` as one red line on stderr and exit with its code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BtlabError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def open_store_cli(store: str | None, *, read_only: bool = False, listing: bool = False):
    """Open the store named by ``--store``/``BTLAB_STORE`` (``store``; None = the default DuckDB file).

    ``read_only``: for commands that only read -- nothing is created (no file, folder or table). A missing store
    at an address the user gave is an error (exit 1). A missing DEFAULT store is the normal state of a new
    installation: with ``listing`` (``runs list``, ``data coverage``) it prints one line saying so and exits 0;
    otherwise it is an error naming the file and how to fill it.
    """
    from btlab.errors import StoreNotFoundError
    from btlab.store import open_store

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
    from btlab.report.format import METRIC_SECTIONS

    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("section", style="dim")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for section, rows in METRIC_SECTIONS:
        for i, (key, label, unit) in enumerate(rows):
            table.add_row(section if i == 0 else "", label, fmt(metrics.get(key), unit))
    return table


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True,
        disable=not err_console.is_terminal,
    )


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
        InvalidArgumentError: unparsable, or ``--from`` not before ``--to``.
    """
    from btlab.backtest.runner import parse_bound
    from btlab.errors import InvalidArgumentError

    start, end = parse_bound(from_, end=False), parse_bound(to, end=True)
    if start is not None and end is not None and end <= start:
        raise InvalidArgumentError(f"--from {from_} is after --to {to}")
    return start, end


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
