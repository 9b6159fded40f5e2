"""What a run measured: the accumulators fed by the engine's records in both record modes,
the summary, the streaming driver, time series and measures over time."""
