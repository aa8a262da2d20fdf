"""Honest evaluation of backtests: is the best run of a search more than luck? (no I/O)

* :mod:`btlab.evaluation.sharpe` -- probabilistic Sharpe ratio, expected maximum Sharpe ratio of N trials, deflated
  Sharpe ratio (Bailey & López de Prado 2012, 2014).
* :mod:`btlab.evaluation.overfitting` -- probability of backtest overfitting by combinatorially symmetric
  cross-validation (Bailey, Borwein, López de Prado & Zhu 2017).
"""

from btlab.evaluation.overfitting import PBOResult, pbo
from btlab.evaluation.sharpe import (
    DeflatedSharpe,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)

__all__ = ["DeflatedSharpe", "PBOResult", "deflated_sharpe_ratio", "expected_max_sharpe", "pbo",
           "probabilistic_sharpe_ratio", "sharpe_ratio"]
