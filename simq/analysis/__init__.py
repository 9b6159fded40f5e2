"""Statistics over runs: confidence intervals, MSER warm-up, the agreement rule, the
document's formula table and the comparison of a run with theory.

:mod:`simq.analysis.stats` is pure numpy and scipy, read by the accumulators while a run
goes; :mod:`simq.analysis.compare` builds pandas tables and is imported only when asked.
"""
