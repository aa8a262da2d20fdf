"""Exchanges through ccxt: ``exchange`` (client setup, errors), ``history`` (REST bars and trades, resumable),
``live`` (WebSocket trades -> ticks and bars by event time), ``schemas`` (ccxt's OHLCV row and trade dict)."""
