"""Bar files: ``importer`` (CSV, feather, parquet into the store, staged then published), ``reader`` (the chunked
bar-file reader and its column conversions), ``csvio`` (the block CSV reader with its size and line guards)."""
