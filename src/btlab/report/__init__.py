"""HTML reports of backtest runs: :func:`write_report` (``btlab.report.write_report(result, path)``).

Modules: :mod:`~btlab.report.write` (read a run, write the file), :mod:`~btlab.report.html` (the page),
:mod:`~btlab.report.figures` (charts), :mod:`~btlab.report.tables` (HTML blocks and tables),
:mod:`~btlab.report.run_row` (what is read of a run row), :mod:`~btlab.report.format` (value formatting, shared
with the CLI). Importing this package imports none of them (the CLI uses ``format`` alone, and starts fast).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # lazy: pandas and plotly only when a report is written
    if name == "write_report":
        from btlab.report.write import write_report

        return write_report
    raise AttributeError(f"module 'btlab.report' has no attribute {name!r}")


__all__ = ["write_report"]
