"""The steps of a flyer run: one module per stage, each a cached, retryable Prefect task."""
