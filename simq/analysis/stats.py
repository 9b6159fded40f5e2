"""Small statistics used by every layer above the engine (numpy and scipy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special as _special

__all__ = ["batch_means", "mean_ci", "mser", "percentile_ci", "slope", "t_halfwidth", "verdict"]


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


def verdict(measured: float, halfwidth: float | None, theory: float | None,
            allowance: float = 0.0) -> str:
    """"within CI", "outside CI", "no CI" (one replication) or "no theory".

    ``allowance`` widens the interval by that fraction of |theory| (for approximations).
    """
    if theory is None or not math.isfinite(float(theory)) or not math.isfinite(float(measured)):
        if theory is not None and measured == theory:
            return "within CI"
        return "no theory"
    if halfwidth is None or not math.isfinite(float(halfwidth)):
        return "no CI"
    # The 1e-9 absorbs rounding in a theory value that is zero in exact arithmetic.
    ok = abs(measured - theory) <= halfwidth + allowance * abs(theory) + 1e-9
    return "within CI" if ok else "outside CI"
