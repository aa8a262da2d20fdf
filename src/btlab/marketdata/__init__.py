"""Market data: ``sources`` (one adapter per venue or format), ``bars`` (tick->bar aggregation, resampling),
``quality`` (gaps, coverage). No SQL: every read and write goes through :class:`btlab.store.base.Store`."""
