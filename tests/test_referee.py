"""Where theory is silent, Ciw referees: the same model in both simulators agrees.

Short runs (8 replications each). The tolerance is the combined interval
sqrt(h_simq^2 + h_ciw^2), each a 99% Student-t half-width over the replications: with six
comparisons, if the two simulators agree a false failure has a chance of about 6% for a
random seed (Bonferroni), and the seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simq
from simq.validate.referee import referee_cases

pytest.importorskip("ciw")

REPS = 8


def _half(x: np.ndarray, level: float = 0.99) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * np.std(x, ddof=1)
                 / math.sqrt(len(x)))


@pytest.mark.parametrize("index", [0, 1], ids=["gg2-lognormal", "blocking-tandem"])
def test_simq_and_ciw_agree(index: int) -> None:
    case = referee_cases(0.25)[index]
    res = simq.run(case.scenario, replications=REPS)
    until = float(case.scenario["run"]["until"])
    warmup = float(case.scenario["run"]["warmup"])
    ciw = [case.ciw_run(500 + r, until, warmup) for r in range(REPS)]
    for q, measure in case.measures.items():
        a = np.array([measure(r) for r in res.replications])
        b = np.array([c[q] for c in ciw])
        tol = math.hypot(_half(a), _half(b))
        assert abs(a.mean() - b.mean()) <= tol, (q, a.mean(), b.mean(), tol)
        # The comparison must have teeth: the interval is a fraction of the value.
        assert tol < 0.5 * abs(b.mean()), (q, tol)
