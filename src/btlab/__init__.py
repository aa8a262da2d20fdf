"""btlab: Backtrader strategies on real market data, with every result durable and visible.

The Python API is the product; the ``btlab`` command is a thin caller of it::

    import btlab
    result = btlab.run_backtest("sma_cross", symbol="BTC/USDT", timeframe="1h",
                                start="2020-01-01", end="2023-12-31", params={"fast": 10, "slow": 30})
    result.metrics          # pandas Series
    result.equity           # DataFrame indexed by UTC bar time
    result.trades           # DataFrame, one row per closed trade
"""

from __future__ import annotations

import functools

import btlab._pyfix  # noqa: F401  (mends Backtrader on Python 3.10+ before anyone uses it)
from btlab.errors import BtlabError


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("btlab")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0.0.0+unknown"


#: the honest-evaluation statistics (btlab.evaluation), importable from btlab itself
_EVALUATION = ("DeflatedSharpe", "PBOResult", "deflated_sharpe_ratio", "expected_max_sharpe", "pbo",
               "probabilistic_sharpe_ratio")


def __getattr__(name: str):  # lazy: importing btlab imports neither pandas nor Backtrader, plotly, ccxt
    if name == "__version__":
        return _version()
    if name in ("Store", "open_store"):
        import btlab.store

        return getattr(btlab.store, name)
    if name in ("run_backtest", "BacktestResult", "BacktestConfig"):
        from btlab.backtest import runner

        return getattr(runner, name)
    if name == "import_bars":
        from btlab.marketdata.sources.files.importer import import_bars

        return import_bars
    if name in _EVALUATION:
        import btlab.evaluation

        return getattr(btlab.evaluation, name)
    if name == "write_report":
        from btlab.report import write_report

        return write_report
    raise AttributeError(f"module 'btlab' has no attribute {name!r}")


__all__ = ["BacktestConfig", "BacktestResult", "BtlabError", "DeflatedSharpe", "PBOResult", "Store", "__version__",
           "deflated_sharpe_ratio", "expected_max_sharpe", "import_bars", "open_store", "pbo",
           "probabilistic_sharpe_ratio", "run_backtest", "write_report"]
