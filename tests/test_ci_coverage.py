"""CI honesty: the 95% replication CI for M/M/1 mean wait covers the exact value ~95%."""

from __future__ import annotations

import pytest

import simq
from simq import theory
from simq.analysis.stats import agrees


@pytest.mark.slow
def test_mm1_wait_ci_covers_the_exact_value() -> None:
    # 200 independent seeds, each 5 replications of about 8,000 messages at rho = 0.5,
    # 10% warm-up. Coverage is binomial(200, 0.95): sd 1.5%, so [0.90, 0.99] is more than
    # three sd either side of 0.95; a CI that ignored the t quantile (z = 1.96 with 4 df)
    # would cover only about 88% and fail.
    exact = theory.mm1(0.5, 1.0).wait_mean
    sc = simq.loads("""
run: {until: 16000, warmup: 1600}
producers: {app: {to: q, rate: 0.5}}
queues: {q: {}}
consumers: {w: {from: q, rate: 1.0}}
""")
    trials = 200
    covered = 0
    for seed in range(trials):
        res = simq.run(sc, seed=10_000 + seed, replications=5)
        m = res.summary["queues"]["q"]["wait_mean"]
        h = res.summary["ci95"]["queues"]["q"]["wait_mean"]
        # The agreement rule for one check with no bias allowance: the bare 95% interval.
        covered += bool(agrees(m, h, exact, allowance=0.0))
    assert 0.90 <= covered / trials <= 0.99, covered
