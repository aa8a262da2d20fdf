"""Loaders for the real market data bundled in ``data/`` (copied from ../shared/data; see data/README.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent.parent / "data"
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
