"""Writing a run's report: :func:`write_report` reads the run from the store, renders it
(:func:`btlab.report.html.render_report`) and writes the file atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from btlab.errors import BtlabError
from btlab.report.html import render_report
from btlab.report.run_row import run_symbols


class ReportWriteError(BtlabError, OSError):
    """The report cannot be written where asked: the path is a folder, or the file system refused (one line naming
    the path and why; exit code 1)."""


def report_path(run_id: str, path: str | Path | None = None) -> Path:
    """Where :func:`write_report` writes: ``path`` (``~`` expanded), or ``<settings.reports>/<run id>.html`` with
    the run id made a plain file name (characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``).

    Raises:
        ReportWriteError: the path is an existing folder.
    """
    if path is None:
        from btlab.settings import get_settings

        name = re.sub(r"[^A-Za-z0-9._-]", "_", str(run_id)).lstrip(".") or "run"
        path = get_settings().reports / f"{name}.html"
    out = Path(path).expanduser()
    if out.is_dir():
        raise ReportWriteError(f"cannot write the report to {out}: it is a folder; name a file, e.g. "
                               f"{out / (re.sub(r'[^A-Za-z0-9._-]', '_', str(run_id)) + '.html')}")
    return out


def write_file_atomically(out: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``out`` so that ``out`` is either its old self or complete, never partial.

    The text goes to a new private temporary file in ``out``'s folder (:func:`tempfile.mkstemp`: a fresh random
    name created exclusively, so a file or symlink planted there is never written through), is flushed to disk,
    gets the usual permissions (0666 minus the umask) and replaces ``out`` in one ``os.replace`` (a symlink AT
    ``out`` is replaced, not followed). On any failure the temporary file is removed and ``out`` is untouched.
    Missing parent folders are created.

    Raises:
        ReportWriteError: ``out`` is a folder, a parent is not a folder, or the file system refused (no space,
            no permission, ...).
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise ReportWriteError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
            umask = os.umask(0o22)
            os.umask(umask)
            os.fchmod(fh.fileno(), 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ReportWriteError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
        raise


def write_report(run: Any, path: str | Path | None = None, *, store: Any = None) -> Path:
    """Write the HTML report of a run (:func:`btlab.report.html.render_report`) and return the path written.

    Args:
        run: a :class:`~btlab.backtest.runner.BacktestResult` (the report is read back from the store the run was
            recorded in, reopened read-only with its private configuration, see
            :meth:`~btlab.backtest.runner.BacktestResult.open_store`), or a run id (str) in ``store``.
        path: output file; default ``<settings.reports>/<run_id>.html`` (``BTLAB_REPORTS``, default ``./reports``;
            see :func:`report_path`). Missing parent folders are created; an existing file is replaced atomically
            (:func:`write_file_atomically`: the file is complete or not there, never partial).
        store: a :class:`btlab.store.Store`, or an address (opened read-only and closed here). For a result: the
            store to read instead of the run's own; for a run id: None means the default store
            (``BTLAB_STORE`` or the default DuckDB file).

    Reads the run row, its equity, trades, orders and state changes, and the bars of each of the run's symbols (the
    comma-separated ``symbols``) on its exchange and timeframe with ``data_from <= ts <= data_to`` (``data_to``
    is the last bar's open time). A run without a recorded data range gets no price chart and no benchmark.

    Returns: the path written (UTF-8).

    Raises:
        RunNotFoundError: the store has no such run.
        StoreUnavailableError, StoreNotFoundError: the store cannot be reached or is not there.
        ReportWriteError: ``path`` is a folder, or the file cannot be written (checked for a folder before
            anything is read).
    """
    from btlab.store import Store, open_store

    if isinstance(store, Store):
        return _write_stored(store, run if isinstance(run, str) else run.run_id, path)
    if isinstance(run, str):
        opened = open_store(store, read_only=True)
    else:  # a BacktestResult: its own store unless another is named
        opened = run.open_store(store)
        run = run.run_id
    with opened:
        return _write_stored(opened, run, path)


def _write_stored(store: Any, run_id: str, path: str | Path | None) -> Path:
    """Read run ``run_id`` from the open ``store``, render it and write it (see :func:`write_report`)."""
    out = report_path(run_id, path)
    run = store.get_run(run_id)
    equity = store.read_equity(run_id)
    trades = store.read_trades(run_id)
    orders = store.read_orders(run_id)
    bars: dict[str, pd.DataFrame] = {}
    data_from, data_to = run.get("data_from"), run.get("data_to")
    if run.get("exchange") and run.get("timeframe") and data_from is not None and data_to is not None:
        for symbol in run_symbols(run):
            bars[symbol] = store.read_bars(
                exchange=run["exchange"], symbol=symbol, timeframe=run["timeframe"], start=data_from,
                end=pd.Timestamp(data_to) + pd.Timedelta(1, "us"),  # store precision is 1 µs
            )
    document = render_report(run, equity, trades, bars or None, orders, states=store.read_states(run_id))
    write_file_atomically(out, document)
    return out


__all__ = ["ReportWriteError", "report_path", "write_file_atomically", "write_report"]
