"""Shared pieces of the CLI: consoles, the --store, --calendar and --session options, error display, progress bars,
formatting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
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

CalendarOption = Annotated[
    str | None,
    typer.Option(
        "--calendar",
        metavar="CALENDAR",
        help="Trading calendar: 24/7 (or crypto), equity (the venue's exchange calendar) or an exchange calendar "
        "such as XNYS, XNAS, XLON (nyse, nasdaq, lse ...; any exchange_calendars code). Default: from --exchange "
        "(ccxt ids are 24/7). Needed for an exchange btlab does not know.",
        show_default=False,
    ),
]

SessionOption = Annotated[
    str | None,
    typer.Option(
        "--session",
        metavar="regular|extended",
        help="For exchange venues: regular (default; e.g. 09:30-16:00 New York, early closes from the calendar) or "
        "extended (04:00-20:00 New York, US venues). Not for 24/7 venues.",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Print a :class:`BtlabError` as one red line on stderr and exit with its code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BtlabError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def open_store_cli(store: str | None):
    from btlab.store import open_store

    return open_store(store)


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
