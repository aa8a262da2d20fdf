"""Source adapters: one sub-package per venue or format, each mapping its wire layout to btlab's frames.

* :mod:`~btlab.marketdata.sources.ccxt` -- exchanges through ccxt: client setup (``exchange``), REST history of bars
  and trades (``history``), live trades over WebSocket (``live``);
* :mod:`~btlab.marketdata.sources.cryptocompare` -- CryptoCompare's v1 ``histo*`` API: client and history;
* :mod:`~btlab.marketdata.sources.binance_vision` -- data.binance.vision klines, trades and aggTrades files;
* :mod:`~btlab.marketdata.sources.files` -- bar files (CSV, feather, parquet) and the block CSV reader.

Each source keeps its wire layouts in a ``schemas`` module (typed records, one converter each to the bar or tick
frame of :mod:`btlab.model`). The history sources page through :mod:`~btlab.marketdata.sources.resumable`, and every
ingest reports with :class:`~btlab.marketdata.sources.report.IngestReport`. No SQL here: the store is asked.

Sub-packages are imported explicitly (``from btlab.marketdata.sources.ccxt.history import ingest_ohlcv``): this
package imports none of them, so ``btlab`` starts without loading ccxt, httpx or pyarrow.
"""
