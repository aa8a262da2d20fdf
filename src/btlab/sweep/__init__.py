"""Parameter sweeps: grids (:mod:`btlab.sweep.grid`) and their execution on Dask with resume (:mod:`btlab.sweep.run`).

``from btlab.sweep import run_sweep, Grid`` works; the names are loaded on first use (importing the package imports
neither Dask nor Backtrader).
"""

from __future__ import annotations

from typing import Any

_NAMES = {
    "Grid": "btlab.sweep.grid", "make_grid": "btlab.sweep.grid", "combo_id": "btlab.sweep.grid",
    "run_sweep": "btlab.sweep.run", "SweepProgress": "btlab.sweep.run", "SweepResult": "btlab.sweep.run",
    "sweep_id_for": "btlab.sweep.run", "ENGINES": "btlab.sweep.run",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
