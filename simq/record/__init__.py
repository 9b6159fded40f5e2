"""What a run measured, read from the engine's records: the accumulators fed in both
record modes (:mod:`~simq.record.accumulators`, with the window, sketches, spells and
invariant checks they use), the summary, the streaming driver, the monitor that samples
levels, measures over time and the per-message frames."""
