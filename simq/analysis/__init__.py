"""Statistics over runs: confidence intervals, MSER warm-up, batch means and the one
agreement rule (:mod:`~simq.analysis.stats`); the fold of replication summaries
(:mod:`~simq.analysis.replications`); the document's formula table and its theory
columns (:mod:`~simq.analysis.formulas`); comparison tables (:mod:`~simq.analysis.compare`).

Everything but ``compare`` is free of pandas, so the accumulators can read it while a run
goes; ``compare`` builds pandas tables and is imported only when asked.
"""
