"""The agreement rule itself (simq.analysis.stats.agrees / agreement): what it accepts,
what it refuses, how Bonferroni widens it, and that its t interval covers as stated."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simq.analysis.stats import (
    APPROX,
    EXACT,
    agreement,
    agrees,
    check_level,
    t_halfwidth,
    verdict,
)


def test_a_value_inside_the_interval_agrees() -> None:
    got = agrees(1.0, 0.1, 1.05, allowance=0.0)
    assert got and got.verdict == "within CI"
    assert got.margin == pytest.approx(0.1)


def test_a_value_outside_interval_and_allowance_is_refused() -> None:
    # |1.0 - 1.05| = 0.05 against 0.01 + 1% of 1.05.
    got = agrees(1.0, 0.01, 1.05)
    assert not got and got.verdict == "outside CI"
    assert got.margin == pytest.approx(0.01 + EXACT * 1.05)
    # The same numbers are within an approximation's 20%: the allowance is the difference.
    assert agrees(1.0, 0.01, 1.05, kind="approximate")
    assert agrees(1.0, 0.01, 1.05, kind="approximate").allowance == APPROX
    # An explicit allowance replaces the kind's, and its reason is reported.
    loose = agrees(1.0, 0.01, 1.05, allowance=0.05, reason="start-up transient")
    assert loose and "start-up transient" in str(loose)


def test_the_allowance_is_relative_to_theory() -> None:
    assert agrees(100.0, 0.0, 100.9)  # 0.9 <= 1% of 100.9
    assert not agrees(100.0, 0.0, 101.5)
    assert agrees(0.0, 0.0, 0.0)  # zero in exact arithmetic: the 1e-9 rounding slack


def test_bonferroni_widens_the_interval_with_the_number_of_checks() -> None:
    widths = [agrees(1.0, 0.1, 1.0, replications=10, checks=k).halfwidth
              for k in (1, 2, 10, 50, 137)]
    assert widths[0] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(widths, widths[1:], strict=False))
    # The per-check level is 1 - alpha / N, and the width the t quantile at that level.
    assert check_level(0.95, 50) == pytest.approx(0.999)
    want = 0.1 * stats.t.ppf(1 - 0.05 / (2 * 50), 9) / stats.t.ppf(0.975, 9)
    assert widths[3] == pytest.approx(want, rel=1e-9)
    # A value just outside the single check's interval is inside the family's.
    assert not agrees(1.0, 0.1, 1.15, replications=10, allowance=0.0)
    assert agrees(1.0, 0.1, 1.15, replications=10, checks=50, allowance=0.0)


def test_from_values_and_from_a_half_width_are_the_same_rule() -> None:
    x = np.random.default_rng(3).normal(2.0, 0.5, size=8)
    h95 = t_halfwidth(x, 0.95)
    a = agreement(x, 2.1, checks=20)
    b = agrees(float(x.mean()), h95, 2.1, replications=8, checks=20)
    assert a.halfwidth == pytest.approx(b.halfwidth, rel=1e-9)
    assert a.halfwidth == pytest.approx(t_halfwidth(x, check_level(0.95, 20)), rel=1e-12)
    assert a.ok == b.ok and a.margin == pytest.approx(b.margin)


def test_a_reference_simulator_combines_both_intervals() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(1.0, 0.1, 10), rng.normal(1.0, 0.1, 10)
    got = agreement(x, None, reference=y, allowance=0.0)
    assert got.theory == pytest.approx(y.mean())
    assert got.halfwidth == pytest.approx(math.hypot(t_halfwidth(x), t_halfwidth(y)))


def test_verdict_is_the_rule_at_95_percent() -> None:
    assert verdict(1.0, 0.1, 1.05) == agrees(1.0, 0.1, 1.05, allowance=0.0).verdict
    assert verdict(1.0, math.nan, 1.0) == "no CI"
    assert verdict(1.0, None, 1.0) == "no CI"
    assert verdict(1.0, 0.1, None) == "no theory"
    assert verdict(math.inf, 0.1, math.inf) == "within CI"  # equal is equal


def test_bad_arguments_are_refused_with_their_value() -> None:
    with pytest.raises(ValueError, match="replications"):
        agrees(1.0, 0.1, 1.0, checks=5)  # rescaling needs R
    with pytest.raises(ValueError, match="allowance must be >= 0: -0.1"):
        agrees(1.0, 0.1, 1.0, allowance=-0.1)
    with pytest.raises(ValueError, match="kind"):
        agrees(1.0, 0.1, 1.0, kind="roughly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="checks must be >= 1: 0"):
        check_level(0.95, 0)


def test_the_t_interval_covers_a_known_mean_95_percent_of_the_time() -> None:
    # 200 samples of 5 normal values with mean 3: with no allowance the rule accepts when
    # the 95% t interval covers 3, which it does with probability exactly 0.95 (normal
    # data). Accepted ~ Binomial(200, 0.95): mean 190, sd 3.1; 181..199 holds with
    # probability 0.996, so a fixed seed outside it would mean a wrong interval.
    rng = np.random.default_rng(2024)
    samples = rng.normal(3.0, 2.0, size=(200, 5))
    accepted = sum(bool(agreement(s, 3.0, allowance=0.0)) for s in samples)
    assert 181 <= accepted <= 199
    # The Bonferroni interval for 10 checks at once covers all ten at least 95% of the
    # time: 200 families of 10, at least 181 with every check accepted (same bound).
    families = rng.normal(3.0, 2.0, size=(200, 10, 5))
    whole = sum(all(agreement(s, 3.0, checks=10, allowance=0.0) for s in fam)
                for fam in families)
    assert whole >= 181
