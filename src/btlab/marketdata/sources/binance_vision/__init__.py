"""data.binance.vision files: ``importer`` (klines, trades, aggTrades; zipped or not, with or without header),
``schemas`` (their column layouts and the converters to bar and tick frames)."""
