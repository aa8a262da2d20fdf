"""Constants of the RL tests: the bundled real S&P 500 daily files, the in-sample and out-of-sample ranges, the
tiny PPO settings."""

from __future__ import annotations

from btlab.marketdata.sources.files.folder import bar_files, symbol_of_file
from realdata import DATA

STOCKS = DATA / "sp500_daily" / "individual_stocks_5yr"
GSPC = DATA / "sp500_daily" / "index" / "GSPC_2013-02-08_2018-02-07.csv.gz"
INDEX = "^GSPC"
SYMBOLS = sorted(symbol_of_file(f) for f in bar_files([STOCKS]))
TRAIN = ("2013-02-08", "2016-12-31")
OOS = ("2017-01-01", "2018-02-07")
TINY = 256  # PPO timesteps in tests (n_steps 128)
TINY_PPO = {"n_steps": 128, "batch_size": 64, "n_epochs": 2}
