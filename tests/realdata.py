"""Loaders for the real market data bundled in ``data/`` (copied from ../shared/data; see data/README.md)."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

TESTS = Path(__file__).resolve().parent
#: the repository root and its bundled real data (``data/``); ``../shared`` sits beside the repository in CI
REPO = TESTS.parent
DATA = REPO / "data"
SHARED = REPO.parent / "shared"
BTC_1H = DATA / "BTC_USDT-1h_2017-08-17_2024-04-21.feather"
BTC_1M = DATA / "BTC_USDT-1m_2025-05-20_2025-08-18.feather"
AAPL_1D = DATA / "AAPL_data.csv"


@lru_cache(maxsize=None)
def _btc_1h() -> pd.DataFrame:
    return pd.read_feather(BTC_1H).rename(columns={"date": "ts"})


def btc_1h() -> pd.DataFrame:
    """Binance BTC/USDT 1h klines, 2017-08-17 .. 2024-04-21 (58,419 bars; bar open time UTC)."""
    return _btc_1h().copy()


def btc_1m() -> pd.DataFrame:
    """Binance BTC/USDT 1m klines, 2025-05-20 .. 2025-08-18 (130,708 bars)."""
    return pd.read_feather(BTC_1M).rename(columns={"date": "ts"})


def aapl_1d() -> pd.DataFrame:
    """AAPL daily bars 2013-02-08 .. 2018-02-07 (split-adjusted), dates taken as UTC midnight."""
    frame = pd.read_csv(AAPL_1D)
    frame["ts"] = pd.to_datetime(frame.pop("date"), utc=True)
    return frame[["ts", "open", "high", "low", "close", "volume"]]


def as_stored_bars(freqtrade: pd.DataFrame) -> pd.DataFrame:
    """A freqtrade kline frame (date, open, high, low, close, volume) in the canonical layout the store returns:
    no trade count and no VWAP in the source, so ``trades`` is <NA> and ``vwap`` NaN."""
    out = pd.DataFrame({"ts": freqtrade["date"].astype("datetime64[ns, UTC]")})
    for col in ("open", "high", "low", "close", "volume"):
        out[col] = freqtrade[col].astype("float64")
    out["trades"] = pd.array([pd.NA] * len(freqtrade), dtype="Int64")
    out["vwap"] = float("nan")
    return out


def recorded_trades() -> pd.DataFrame:
    """The 19,904 real BTCUSDT trades of the recording, as ticks (exchange trade time T)."""
    rows = []
    for name in ("btcusdt_20240808.gz", "btcusdt_20240809.gz"):
        with gzip.open(DATA / name, "rt") as fh:
            for line in fh:
                msg = json.loads(line.split(" ", 1)[1])
                if msg.get("stream") == "btcusdt@trade":
                    d = msg["data"]
                    rows.append((d["T"], d["t"], float(d["p"]), float(d["q"])))
    frame = pd.DataFrame(rows, columns=["ms", "id", "price", "amount"]).drop_duplicates("id").sort_values("id")
    frame["ts"] = pd.to_datetime(frame.pop("ms"), unit="ms", utc=True).astype("datetime64[ns, UTC]")
    return frame.reset_index(drop=True)


def binance_klines() -> pd.DataFrame:
    """Binance's own 1m klines for the minutes fully covered by the recording (23:55 .. 00:04)."""
    k = pd.read_csv(DATA / "BTC_USDT-1m_2024-08-08T2352_2024-08-09T0006.csv")
    k["ts"] = pd.to_datetime(k.pop("date"), utc=True)
    return k[(k["ts"] >= "2024-08-08 23:55") & (k["ts"] <= "2024-08-09 00:04")].reset_index(drop=True)


def utc_daily_returns(result) -> "pd.Series":
    """A run's daily returns computed independently of btlab: the last equity value per UTC day, the starting cash
    as the close of the day before (the convention btlab's metrics state), as simple returns."""
    import pandas as pd

    closes = result.equity["value"].resample("1D").last().dropna()
    start = pd.Series([result.config.cash], index=[closes.index[0] - pd.Timedelta(days=1)])
    return pd.concat([start, closes]).pct_change().dropna()
