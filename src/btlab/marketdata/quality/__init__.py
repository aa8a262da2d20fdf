"""Data quality: gaps in stored series (:mod:`~btlab.marketdata.quality.gaps`, counted in session time for
exchange venues) and what is stored where (:mod:`~btlab.marketdata.quality.coverage`). Both ask the store; no SQL
of their own."""
