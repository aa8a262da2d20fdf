"""The vector engine: numba kernels that reproduce the Backtrader engine's fills exactly, for fast sweeps.

:func:`run_vector` runs one strategy on bars; :func:`supports` says whether a strategy has a kernel (``sma_cross``
for now). A strategy without a kernel runs on the Backtrader engine: nothing falls back silently.
"""

from btlab.backtest.vector.engine import KERNELS, run_vector, simulate, supports

__all__ = ["KERNELS", "run_vector", "simulate", "supports"]
