"""Small statistics used by every layer above the engine (numpy and scipy only).

It also holds the one rule for "the simulation agrees with theory" (:func:`agrees`,
:func:`agreement`, :class:`Agreement`), which run summaries, compare tables,
``simq validate`` and the tests all apply; docs/theory.md, "When is agreement agreement?",
states it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special as _special

__all__ = ["ALPHA", "APPROX", "EXACT", "Agreement", "agreement", "agrees", "batch_means",
           "check_level", "mean_ci", "mser", "percentile_ci", "slope", "t_halfwidth",
           "verdict"]


def t_halfwidth(values: Sequence[float] | np.ndarray, level: float = 0.95) -> float:
    """Student-t half-width of the confidence interval for the mean of iid values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return math.nan
    sd = float(np.std(x, ddof=1))
    # scipy.special rather than scipy.stats: a fraction of the import cost (memory floor).
    return float(_special.stdtrit(n - 1, 0.5 + level / 2) * sd / math.sqrt(n))


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of a confidence interval from independent replications."""
    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    if len(finite) == 0:
        return (float(x[0]) if len(x) else math.nan, math.nan)
    return float(finite.mean()), t_halfwidth(finite, level)


def slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against t (0 for fewer than two distinct times)."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(t) < 2 or np.ptp(t) == 0:
        return 0.0
    tc = t - t.mean()
    return float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))


def mser(values: Sequence[float] | np.ndarray, batch: int = 5) -> int:
    """MSER-m truncation point: how many leading observations to delete (MSER-5 by default).

    The series is cut into batch means of ``batch`` observations; the truncation d (in
    batches) minimises the squared standard error of the mean of what is left,
    ``sum((Y_i - mean)^2) / (k - d)^2``, searched over the first half only (White 1997:
    beyond that the statistic is unreliable). Returns d * batch observations.
    """
    x = np.asarray(values, dtype=float)
    k = len(x) // batch
    if k < 4:
        return 0
    y = x[: k * batch].reshape(k, batch).mean(axis=1)
    # Sums over the tails y[d:], for every d at once.
    s1 = np.cumsum(y[::-1])[::-1]
    s2 = np.cumsum((y * y)[::-1])[::-1]
    m = k - np.arange(k)
    sse = s2 - s1 * s1 / m
    stat = sse / (m * m)
    half = k // 2
    return int(np.argmin(stat[: half + 1])) * batch


def batch_means(
    values: Sequence[float] | np.ndarray, batches: int = 20, level: float = 0.95
) -> tuple[float, float]:
    """(mean, half-width) from one long correlated run: Student-t over ``batches`` batch means.

    Valid when a batch is much longer than the correlation time of the series; the
    leftover observations at the end (fewer than one batch) are ignored.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    size = len(x) // batches
    if batches < 2 or size < 1:
        return (float(x.mean()) if len(x) else math.nan, math.nan)
    y = x[: size * batches].reshape(batches, size).mean(axis=1)
    return float(y.mean()), t_halfwidth(y, level)


def percentile_ci(
    values: Sequence[float] | np.ndarray, q: float, level: float = 0.95
) -> tuple[float, float, float]:
    """(estimate, low, high): distribution-free CI for the q-quantile of iid values.

    Uses the order statistics whose ranks bracket n·q by the binomial distribution; for a
    correlated series (waits in one run) use per-replication percentiles and
    :func:`mean_ci` instead.
    """
    x = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    n = len(x)
    if n == 0 or not 0 < q < 1:
        return (math.nan, math.nan, math.nan)
    est = float(np.quantile(x, q))
    from scipy import stats as _st  # only here: scipy.stats is heavy to import

    a = (1 - level) / 2
    lo = int(_st.binom.ppf(a, n, q))
    hi = int(_st.binom.ppf(1 - a, n, q))
    low = float(x[max(lo - 1, 0)]) if lo >= 1 else -math.inf
    high = float(x[hi]) if hi < n else math.inf
    return est, low, high


# The rule. A check compares the mean m of R independent replications with a theory value
# θ and passes when |m − θ| <= h + a·|θ|: h is the Student-t half-width over the
# replications at the per-check level (Bonferroni-adjusted when N checks are judged
# together, so that all N hold together with probability 1 − α), and a·|θ| allows for the
# model bias that no number of replications removes. For an exact result that bias is the
# finite window's (the transient left after the warm-up, messages that straddle the
# window's edges): well under 1% for the run lengths simq's checks use, so EXACT = 1%.
# For an approximation (Kingman, Allen–Cunneen) it is the formula's own error, about
# 10–20% at the loads checked, so APPROX = 20%.
ALPHA = 0.05
EXACT = 0.01
APPROX = 0.20
Kind = Literal["exact", "approximate"]


def check_level(level: float = 1 - ALPHA, checks: int = 1) -> float:
    """Per-check confidence level when ``checks`` checks must hold together at ``level``
    (Bonferroni: 1 − (1 − level) / checks)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1): {level}")
    if checks < 1:
        raise ValueError(f"checks must be >= 1: {checks}")
    return 1.0 - (1.0 - level) / checks


@dataclass(frozen=True)
class Agreement:
    """One check of a measured mean against theory, judged by :func:`agrees`.

    True when it passes. ``halfwidth`` is the interval at the per-check ``level``,
    ``margin`` the half-width plus the allowance (what |measured − theory| is held to),
    ``verdict`` the text run summaries and compare tables show.
    """

    measured: float
    theory: float
    halfwidth: float
    allowance: float
    level: float
    margin: float
    ok: bool
    verdict: str
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok

    @property
    def error(self) -> float:
        """|measured − theory|: what the margin bounds."""
        return abs(self.measured - self.theory)

    def __str__(self) -> str:
        why = f"; {self.reason}" if self.reason else ""
        return (f"measured {self.measured:.5g} vs theory {self.theory:.5g}: off by "
                f"{self.error:.3g}, allowed {self.margin:.3g} = {self.halfwidth:.3g} "
                f"({100 * self.level:.4g}% CI) + {100 * self.allowance:.3g}% of theory"
                f"{why}: {self.verdict}")


def _allowance(kind: Kind, allowance: float | None) -> float:
    if allowance is not None:
        if allowance < 0:
            raise ValueError(f"allowance must be >= 0: {allowance}")
        return float(allowance)
    if kind == "exact":
        return EXACT
    if kind == "approximate":
        return APPROX
    raise ValueError(f"kind must be 'exact' or 'approximate': {kind!r}")


def agrees(measured: float, halfwidth: float | None, theory: float | None, *,
           replications: int | None = None, level: float = 0.95, checks: int = 1,
           kind: Kind = "exact", allowance: float | None = None,
           reason: str = "") -> Agreement:
    """Judge a mean against theory from its 95% half-width (what ``summary["ci95"]`` holds).

    The half-width is rescaled to the Bonferroni per-check level of ``checks`` checks at
    ``level`` (which needs the number of ``replications``: the ratio of Student-t
    quantiles with R − 1 degrees of freedom). The allowance is ``EXACT`` or ``APPROX`` by
    ``kind``; an explicit ``allowance`` replaces it and should come with its ``reason``.
    """
    a = _allowance(kind, allowance)
    per_check = check_level(level, checks)
    h = math.nan if halfwidth is None else float(halfwidth)
    if per_check != 0.95 and math.isfinite(h):
        if replications is None or replications < 2:
            raise ValueError("rescaling a 95% half-width to another level needs the number "
                             f"of replications (>= 2): {replications}")
        dof = replications - 1
        h *= float(_special.stdtrit(dof, 0.5 + per_check / 2) / _special.stdtrit(dof, 0.975))
    return _judge(float(measured), h, theory, a, per_check, reason)


def agreement(values: Sequence[float] | np.ndarray, theory: float | None, *,
              level: float = 0.95, checks: int = 1, kind: Kind = "exact",
              allowance: float | None = None, reason: str = "",
              reference: Sequence[float] | np.ndarray | None = None) -> Agreement:
    """Judge the mean of per-replication ``values`` against theory (see :func:`agrees`).

    With ``reference`` (per-replication values of another simulator, where theory is
    silent) the theory value is their mean and the half-width combines both intervals,
    sqrt(h² + h_ref²); ``theory`` is then ignored.
    """
    a = _allowance(kind, allowance)
    per_check = check_level(level, checks)
    h, m = _interval(values, per_check)
    if reference is not None:
        h_ref, theory = _interval(reference, per_check)
        h = math.hypot(h, h_ref)
    return _judge(m, h, theory, a, per_check, reason)


def _interval(values: Sequence[float] | np.ndarray, level: float) -> tuple[float, float]:
    """(half-width, mean); the half-width is NaN unless every value is finite."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean()) if len(x) else math.nan
    return (t_halfwidth(x, level) if np.all(np.isfinite(x)) else math.nan), m


def _judge(m: float, h: float, theory: float | None, a: float, level: float,
           reason: str) -> Agreement:
    th = math.nan if theory is None else float(theory)
    if not (math.isfinite(th) and math.isfinite(m)):
        # A utilization of exactly 1 in overload, an infinite wait in both: equal is equal.
        same = theory is not None and m == th
        return Agreement(m, th, h, a, level, math.nan, same,
                         "within CI" if same else "no theory", reason)
    # The 1e-9 absorbs rounding in a theory value that is zero in exact arithmetic.
    margin = h + a * abs(th) + 1e-9
    if not math.isfinite(h):
        # One replication: no interval; a value equal to theory (zero spread) still agrees.
        return Agreement(m, th, h, a, level, margin, m == th, "no CI", reason)
    ok = abs(m - th) <= margin
    return Agreement(m, th, h, a, level, margin, ok, "within CI" if ok else "outside CI",
                     reason)


def verdict(measured: float, halfwidth: float | None, theory: float | None,
            allowance: float = 0.0) -> str:
    """"within CI", "outside CI", "no CI" (one replication) or "no theory".

    The agreement rule (:func:`agrees`) for one check at 95% from a 95% half-width, with
    ``allowance`` the fraction of |theory| allowed for model bias (0 unless given: run
    summaries and compare tables show the bare interval, and pass the allowance of an
    approximation).
    """
    return agrees(measured, halfwidth, theory, allowance=allowance).verdict
