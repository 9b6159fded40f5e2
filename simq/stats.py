"""Small statistics used by every layer above the engine (numpy and scipy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

__all__ = ["mean_ci", "t_halfwidth", "slope"]


def t_halfwidth(values: Sequence[float] | np.ndarray, level: float = 0.95) -> float:
    """Student-t half-width of the confidence interval for the mean of iid values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return math.nan
    sd = float(np.std(x, ddof=1))
    return float(_st.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))


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
