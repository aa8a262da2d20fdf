"""Bundled Backtrader strategies (no I/O). Resolve them by name with :func:`btlab.backtest.registry.resolve_strategy`."""
