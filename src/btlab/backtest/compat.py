"""Backtrader 1.9.78 on Python 3.11+: import Backtrader from here so its known breakages are mended first.

* ``collections.Iterable`` (and friends) were removed in Python 3.10; ``LineIterator.bindlines`` still uses them.
  The aliases are restored from :mod:`collections.abc` (they are the same classes).
* ``backtrader.plot`` calls ``matplotlib.use('TkAgg')`` on import, which breaks ``cerebro.plot()`` on headless
  machines and overrides the user's backend. :meth:`Cerebro.plot` is wrapped so that the import happens with
  ``matplotlib.use`` disabled: matplotlib keeps its own (or ``MPLBACKEND``'s) backend choice.
"""

from __future__ import annotations

import importlib.util

import btlab._pyfix  # noqa: F401  (collections.Iterable & co.)
import backtrader as bt  # noqa: E402

_plot_imported = False


def import_backtrader_plot() -> None:
    """Import ``backtrader.plot`` without letting it force the TkAgg backend.

    Raises:
        ImportError: matplotlib is not installed (plotting is optional in btlab: use ``btlab report``).
    """
    global _plot_imported
    if _plot_imported:
        return
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("cerebro.plot() needs matplotlib (pip install matplotlib); btlab's own report is `btlab report`")
    import matplotlib

    original = matplotlib.use
    matplotlib.use = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        import backtrader.plot  # noqa: F401
    finally:
        matplotlib.use = original
    _plot_imported = True


if not getattr(bt.Cerebro.plot, "_btlab_patched", False):
    _original_plot = bt.Cerebro.plot

    def _plot(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        import_backtrader_plot()
        return _original_plot(self, *args, **kwargs)

    _plot._btlab_patched = True  # type: ignore[attr-defined]
    _plot.__doc__ = _original_plot.__doc__
    bt.Cerebro.plot = _plot  # type: ignore[method-assign]

__all__ = ["bt", "import_backtrader_plot"]
