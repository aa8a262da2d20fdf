"""CryptoCompare: ``client`` (the v1 ``histo*`` API over httpx), ``history`` (resumable ingest into the store),
``schemas`` (the histo row)."""
