"""The MMPP/M/1 queue by the matrix-geometric method (Neuts).

Arrivals are Poisson at ``rates[i]`` while a continuous-time Markov chain with generator
``generator`` is in state i; one exponential server at rate ``mu``. The number in system
and the arrival phase form a quasi-birth-death process with blocks

    up   A0 = diag(rates),   local A1 = Q - diag(rates) - mu I,   down A2 = mu I,

and level 0's local block B1 = Q - diag(rates). The stationary vector is
pi_n = pi_0 R^n with R the minimal solution of A0 + R A1 + R^2 A2 = 0, pi_0 solving
pi_0 (B1 + R A2) = 0 with pi_0 (I - R)^-1 1 = 1. The mean number in system is
L = pi_0 R (I - R)^-2 1; Little's law gives the mean sojourn L / lambda and the mean
wait in line L / lambda - 1 / mu (any work-conserving order of service).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MMPPQueue", "mmpp_m1"]


@dataclass(frozen=True)
class MMPPQueue:
    """Steady state of an MMPP/M/1 queue."""

    lam: float  # mean arrival rate
    mu: float
    rho: float
    stable: bool
    length_mean: float  # L, in system
    sojourn_mean: float  # W
    wait_mean: float  # Wq, in line before service
    queue_mean: float  # Lq


def mmpp_m1(rates: Sequence[float], generator: Sequence[Sequence[float]] | np.ndarray,
            mu: float, *, tol: float = 1e-13, max_iter: int = 200_000) -> MMPPQueue:
    """Mean wait, sojourn and lengths of the MMPP/M/1 queue (see the module docstring)."""
    lam_vec = np.asarray(rates, dtype=float)
    q = np.asarray(generator, dtype=float)
    m = len(lam_vec)
    if m < 1 or q.shape != (m, m):
        raise ValueError(f"generator must be {m}x{m} (one row per rate), got shape {q.shape}")
    if (lam_vec < 0).any() or not np.isfinite(lam_vec).all():
        raise ValueError(f"rates must be finite and >= 0, got {list(rates)!r}")
    if not np.allclose(q.sum(axis=1), 0, atol=1e-12) or (q - np.diag(np.diag(q)) < 0).any():
        raise ValueError("generator rows must sum to 0 with off-diagonal entries >= 0")
    if not (mu > 0 and math.isfinite(mu)):
        raise ValueError(f"mu must be a finite number > 0, got {mu!r}")
    a = np.vstack([q.T, np.ones(m)])
    b = np.zeros(m + 1)
    b[-1] = 1.0
    phase = np.linalg.lstsq(a, b, rcond=None)[0]
    lam = float(phase @ lam_vec)
    rho = lam / mu
    if rho >= 1:
        return MMPPQueue(lam, mu, rho, False, math.inf, math.inf, math.inf, math.inf)
    a0 = np.diag(lam_vec)
    a1 = q - a0 - mu * np.eye(m)
    a2 = mu * np.eye(m)
    inv_a1 = np.linalg.inv(a1)
    r = np.zeros((m, m))
    for _ in range(max_iter):
        nxt = -(a0 + r @ r @ a2) @ inv_a1
        if np.abs(nxt - r).max() < tol:
            r = nxt
            break
        r = nxt
    else:
        raise ValueError("the matrix-geometric iteration did not converge")
    eye = np.eye(m)
    boundary = (q - a0) + r @ a2
    inv = np.linalg.inv(eye - r)
    sys_ = np.vstack([boundary.T, (inv @ np.ones(m))[None, :]])
    rhs = np.zeros(m + 1)
    rhs[-1] = 1.0
    pi0 = np.linalg.lstsq(sys_, rhs, rcond=None)[0]
    length = float(pi0 @ r @ inv @ inv @ np.ones(m))
    sojourn = length / lam
    wait = sojourn - 1.0 / mu
    return MMPPQueue(lam, mu, rho, True, length, sojourn, wait, lam * wait)
