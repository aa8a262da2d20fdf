"""Storage of market data and backtest results: the :class:`Store` interface and its backends."""

from btlab.store.base import Store
from btlab.store.factory import open_store

__all__ = ["Store", "open_store"]
