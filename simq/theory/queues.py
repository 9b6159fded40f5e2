"""Single-station queues: M/M/1, M/M/c, M/M/c/K, M/M/c/c, M/D/1, M/G/1, G/G/1, G/G/c.

Rates are per second, times in seconds. Every function returns the steady state, or, for
an unstable infinite buffer (λ >= cμ), a record with ``stable=False``, infinite waits and the
growth rate λ − cμ: overload is a result to report, not an error.

One cohesive thing: the single-station formulas, each a short function over numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from . import _check
from .metrics import PriorityMetrics, QueueMetrics

__all__ = [
    "erlang_b",
    "erlang_c",
    "little",
    "md1",
    "mg1",
    "gg1_kingman",
    "ggc_allen_cunneen",
    "mm1",
    "mm1_sojourn_quantile",
    "mm1_wait_quantile",
    "mmc",
    "mmc_wait_quantile",
    "mmcc",
    "mmck",
    "priority_mg1",
]


# --- Erlang formulas -------------------------------------------------------------------


def _erlang_b(c: int, a: float) -> float:
    # B(k) = a B(k-1) / (k + a B(k-1)): every term is in [0, 1], so no factorial or power
    # overflows, and it stays accurate for c in the thousands.
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def _erlang_c(c: int, a: float) -> float:
    if a >= c:
        return 1.0
    b = _erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c with offered load ``a`` = λ/μ Erlangs (Erlang B)."""
    return _erlang_b(_check.integer("c", c), _check.nonnegative("a", a))


def erlang_c(c: int, a: float) -> float:
    """Probability an arrival waits in M/M/c with offered load ``a`` = λ/μ (Erlang C).

    Returns 1.0 when a >= c (every arrival eventually waits in an overloaded system).
    """
    return _erlang_c(_check.integer("c", c), _check.nonnegative("a", a))


# --- shared builders --------------------------------------------------------------------


def _unstable(
    model: str, exact: bool, lam: float, capacity: float, c: int, service_mean: float
) -> QueueMetrics:
    growth = lam - capacity
    return QueueMetrics(
        model=model,
        exact=exact,
        arrival_rate=lam,
        throughput=capacity,
        utilization=1.0,
        wait_mean=math.inf,
        length_mean=math.inf,
        sojourn_mean=math.inf,
        number_mean=math.inf,
        p_wait=1.0,
        p_block=0.0,
        stable=False,
        growth_rate=growth,
        servers=c,
        service_mean=service_mean,
        note=(
            f"unstable: arrival rate {lam:g}/s >= service capacity {capacity:g}/s; "
            f"the queue grows by {growth:g} messages/s"
        ),
    )


def _infinite_buffer(
    model: str,
    exact: bool,
    lam: float,
    c: int,
    service_mean: float,
    wait_mean: float,
    p_wait: float,
    note: str = "",
) -> QueueMetrics:
    # Little's law closes every infinite-buffer model once Wq is known.
    sojourn = wait_mean + service_mean
    return QueueMetrics(
        model=model,
        exact=exact,
        arrival_rate=lam,
        throughput=lam,
        utilization=lam * service_mean / c,
        wait_mean=wait_mean,
        length_mean=lam * wait_mean,
        sojourn_mean=sojourn,
        number_mean=lam * sojourn,
        p_wait=p_wait,
        p_block=0.0,
        stable=True,
        servers=c,
        service_mean=service_mean,
        note=note,
    )


# --- Markovian queues -------------------------------------------------------------------


def mmc(lam: float, mu: float, c: int) -> QueueMetrics:
    """M/M/c: Poisson arrivals, c exponential servers, infinite FIFO buffer (Erlang C).

    Wq = C(c, λ/μ) / (cμ − λ). Stable only if λ < cμ.
    """
    lam = _check.nonnegative("lam", lam)
    mu = _check.positive("mu", mu)
    c = _check.integer("c", c)
    return _mmc(lam, mu, c)


def _mmc(lam: float, mu: float, c: int) -> QueueMetrics:
    model = "M/M/1" if c == 1 else "M/M/c"
    if lam >= c * mu:
        return _unstable(model, True, lam, c * mu, c, 1.0 / mu)
    p_wait = _erlang_c(c, lam / mu)
    wait = p_wait / (c * mu - lam)
    return _infinite_buffer(model, True, lam, c, 1.0 / mu, wait, p_wait)


def mm1(lam: float, mu: float) -> QueueMetrics:
    """M/M/1: Poisson arrivals, one exponential server. Wq = ρ/(μ − λ), stable if λ < μ."""
    return mmc(lam=lam, mu=mu, c=1)


def mmck(lam: float, mu: float, c: int, K: float) -> QueueMetrics:
    """M/M/c/K: c exponential servers and room for K messages in total (K >= c).

    In a simq scenario a queue's ``capacity`` is the waiting room only, so K = c + capacity.
    Arrivals finding K present are lost (``p_block``); waits and ``p_wait`` are those of the
    admitted messages. Always stable; K = math.inf falls back to :func:`mmc`.
    """
    lam = _check.nonnegative("lam", lam)
    mu = _check.positive("mu", mu)
    c = _check.integer("c", c)
    if isinstance(K, float) and math.isinf(K) and K > 0:
        return _mmc(lam, mu, c)
    K = _check.integer("K", K, low=c)
    model = f"M/M/{'1' if c == 1 else 'c'}/K"
    if lam == 0.0:
        p = np.zeros(K + 1)
        p[0] = 1.0
    else:
        # State probabilities in log space: p_n ∝ a^n / (n! for n <= c, c! c^(n-c) after),
        # which overflows as plain floats long before c = 1000 or K = 10^5.
        n = np.arange(1, K + 1)
        logp = np.concatenate(([0.0], np.cumsum(math.log(lam / mu) - np.log(np.minimum(n, c)))))
        p = np.exp(logp - logp.max())
        p /= p.sum()
    p_block = float(p[K])
    carried = lam * (1.0 - p_block)
    states = np.arange(K + 1)
    number = float(states @ p)
    length = float(np.maximum(states - c, 0) @ p)
    waiting = float(p[c:K].sum())
    if carried > 0.0:
        wait = length / carried
        p_wait = waiting / (1.0 - p_block)
    else:
        wait, p_wait = 0.0, 0.0
    return QueueMetrics(
        model=model,
        exact=True,
        arrival_rate=lam,
        throughput=carried,
        utilization=carried / (c * mu),
        wait_mean=wait,
        length_mean=length,
        sojourn_mean=wait + 1.0 / mu,
        number_mean=number,
        p_wait=p_wait,
        p_block=p_block,
        stable=True,
        servers=c,
        service_mean=1.0 / mu,
        note=f"K={K} in total (c={c} in service + {K - c} waiting); p_wait is of admitted",
    )


def mmcc(lam: float, mu: float, c: int) -> QueueMetrics:
    """M/M/c/c: c exponential servers and no waiting room (Erlang B loss system).

    Service may be any distribution with mean 1/μ (Erlang B is insensitive to it).
    """
    lam = _check.nonnegative("lam", lam)
    mu = _check.positive("mu", mu)
    c = _check.integer("c", c)
    p_block = _erlang_b(c, lam / mu)
    carried = lam * (1.0 - p_block)
    return QueueMetrics(
        model="M/M/1/1" if c == 1 else "M/M/c/c",
        exact=True,
        arrival_rate=lam,
        throughput=carried,
        utilization=carried / (c * mu),
        wait_mean=0.0,
        length_mean=0.0,
        sojourn_mean=1.0 / mu,
        number_mean=carried / mu,
        p_wait=0.0,
        p_block=p_block,
        stable=True,
        servers=c,
        service_mean=1.0 / mu,
        note="Erlang B loss system: no waiting room",
    )


# --- M/G/1 and approximations -----------------------------------------------------------


def mg1(lam: float, mean: float, scv: float) -> QueueMetrics:
    """M/G/1 by Pollaczek-Khinchine: Wq = ρ·mean·(1 + scv) / (2(1 − ρ)), ρ = λ·mean.

    ``scv`` is the service time's squared coefficient of variation (variance / mean²).
    """
    lam = _check.nonnegative("lam", lam)
    mean = _check.positive("mean", mean)
    scv = _check.nonnegative("scv", scv)
    return _mg1(lam, mean, scv, "M/G/1 (Pollaczek-Khinchine)")


def _mg1(lam: float, mean: float, scv: float, model: str) -> QueueMetrics:
    rho = lam * mean
    if rho >= 1.0:
        return _unstable(model, True, lam, 1.0 / mean, 1, mean)
    wait = rho * mean * (1.0 + scv) / (2.0 * (1.0 - rho))
    # PASTA: an arrival waits iff it finds the server busy, which has probability ρ
    return _infinite_buffer(model, True, lam, 1, mean, wait, rho)


def md1(lam: float, mu: float) -> QueueMetrics:
    """M/D/1: Poisson arrivals, constant service 1/μ. Lq = ρ² / (2(1 − ρ))."""
    lam = _check.nonnegative("lam", lam)
    mu = _check.positive("mu", mu)
    return _mg1(lam, 1.0 / mu, 0.0, "M/D/1")


def gg1_kingman(lam: float, ca2: float, mean: float, cs2: float) -> QueueMetrics:
    """G/G/1 by Kingman's heavy-traffic formula (approximate; equals P-K when ca2 = 1).

    Wq ≈ ρ/(1 − ρ) · (ca2 + cs2)/2 · mean, with ca2 and cs2 the interarrival and service
    SCVs. ``p_wait`` is set to ρ, the M/G/1 value.
    """
    lam = _check.nonnegative("lam", lam)
    ca2 = _check.nonnegative("ca2", ca2)
    mean = _check.positive("mean", mean)
    cs2 = _check.nonnegative("cs2", cs2)
    model = "G/G/1 (Kingman, approximate)"
    rho = lam * mean
    if rho >= 1.0:
        return _unstable(model, False, lam, 1.0 / mean, 1, mean)
    wait = rho / (1.0 - rho) * (ca2 + cs2) / 2.0 * mean
    return _infinite_buffer(
        model, False, lam, 1, mean, wait, rho, note="approximate; p_wait is the M/G/1 value ρ"
    )


def ggc_allen_cunneen(lam: float, ca2: float, mean: float, cs2: float, c: int) -> QueueMetrics:
    """G/G/c by Allen-Cunneen (approximate; exact for M/M/c when ca2 = cs2 = 1).

    Wq ≈ C(c, λ·mean) / (c/mean − λ) · (ca2 + cs2)/2. ``p_wait`` is the Erlang C value.
    """
    lam = _check.nonnegative("lam", lam)
    ca2 = _check.nonnegative("ca2", ca2)
    mean = _check.positive("mean", mean)
    cs2 = _check.nonnegative("cs2", cs2)
    c = _check.integer("c", c)
    model = "G/G/c (Allen-Cunneen, approximate)"
    if lam * mean >= c:
        return _unstable(model, False, lam, c / mean, c, mean)
    p_wait = _erlang_c(c, lam * mean)
    wait = p_wait / (c / mean - lam) * (ca2 + cs2) / 2.0
    return _infinite_buffer(
        model, False, lam, c, mean, wait, p_wait, note="approximate; p_wait is the Erlang C value"
    )


# --- quantiles --------------------------------------------------------------------------


def mm1_sojourn_quantile(lam: float, mu: float, q: float) -> float:
    """The q-quantile of the M/M/1 FIFO sojourn time, which is exponential(μ − λ).

    ``math.inf`` if unstable (λ >= μ) and q > 0, or if q = 1.
    """
    lam = _check.nonnegative("lam", lam)
    mu = _check.positive("mu", mu)
    q = _check.probability("q", q)
    if q == 0.0:
        return 0.0
    if lam >= mu or q == 1.0:
        return math.inf
    return -math.log1p(-q) / (mu - lam)


def _atom_quantile(p_wait: float, rate: float, q: float) -> float:
    # P(Wq > t) = p_wait · exp(-rate·t): an atom of mass 1 − p_wait at zero, then exponential.
    if q <= 1.0 - p_wait:
        return 0.0
    if q == 1.0:
        return math.inf
    return math.log(p_wait / (1.0 - q)) / rate


def mm1_wait_quantile(lam: float, mu: float, q: float) -> float:
    """The q-quantile of the M/M/1 FIFO waiting time Wq (0 for q <= 1 − ρ, the atom at zero)."""
    return mmc_wait_quantile(lam=lam, mu=mu, c=1, q=q)


def mmc_wait_quantile(lam: float, mu: float, c: int, q: float) -> float:
    """The q-quantile of the M/M/c FIFO waiting time: P(Wq > t) = C(c, a)·exp(−(cμ − λ)t).

    0 for q <= 1 − C (the atom at zero); ``math.inf`` if unstable and q > 0.
    """
    lam = _check.nonnegative("lam", lam)
    mu = _check.positive("mu", mu)
    c = _check.integer("c", c)
    q = _check.probability("q", q)
    if q == 0.0:
        return 0.0
    if lam >= c * mu:
        return math.inf
    return _atom_quantile(_erlang_c(c, lam / mu), c * mu - lam, q)


# --- priorities -------------------------------------------------------------------------


def priority_mg1(
    lams: Sequence[float], means: Sequence[float], scvs: Sequence[float]
) -> PriorityMetrics:
    """Non-preemptive priority M/G/1 (Cobham); class 0 is served first, FIFO within a class.

    Wq_k = W0 / ((1 − σ_{k−1})(1 − σ_k)), σ_k = ρ_0 + … + ρ_k, W0 = Σ λ_i E[S_i²]/2.
    Classes with σ_k >= 1 get ``math.inf``; higher classes stay finite, with W0 taken over
    the work actually served (the server is then always busy).
    """
    lam_items = _check.sequence("lams", lams)
    k = len(lam_items)
    lam = [_check.nonnegative(f"lams[{i}]", x) for i, x in enumerate(lam_items)]
    mean_items = _check.sequence("means", means, k)
    scv_items = _check.sequence("scvs", scvs, k)
    mean = [_check.positive(f"means[{i}]", x) for i, x in enumerate(mean_items)]
    scv = [_check.nonnegative(f"scvs[{i}]", x) for i, x in enumerate(scv_items)]

    rho = [lam[i] * mean[i] for i in range(k)]
    cum = list(itertools.accumulate(rho))
    # The first class whose cumulative load reaches 1 gets what the higher ones leave;
    # the classes below it get nothing.
    first_bad = next((i for i in range(k) if cum[i] >= 1.0), k)
    served = list(lam)
    if first_bad < k:
        above = cum[first_bad - 1] if first_bad > 0 else 0.0
        served[first_bad] = min(lam[first_bad], (1.0 - above) / mean[first_bad])
        for i in range(first_bad + 1, k):
            served[i] = 0.0
    w0 = sum(served[i] * mean[i] ** 2 * (1.0 + scv[i]) / 2.0 for i in range(k))

    waits: list[float] = []
    for i in range(k):
        if i >= first_bad:
            waits.append(math.inf)
        else:
            above = cum[i - 1] if i > 0 else 0.0
            waits.append(w0 / ((1.0 - above) * (1.0 - cum[i])))
    sojourns = [waits[i] + mean[i] for i in range(k)]
    lengths = [lam[i] * waits[i] if lam[i] > 0.0 else 0.0 for i in range(k)]
    total = sum(lam)
    stable = first_bad == k
    if not stable:
        overall_wait = overall_sojourn = overall_length = math.inf
    elif total > 0.0:
        overall_wait = sum(lam[i] * waits[i] for i in range(k)) / total
        overall_sojourn = sum(lam[i] * sojourns[i] for i in range(k)) / total
        overall_length = sum(lengths)
    else:
        overall_wait, overall_sojourn, overall_length = 0.0, sum(mean) / k, 0.0
    return PriorityMetrics(
        arrival_rates=tuple(lam),
        utilizations=tuple(rho),
        wait_means=tuple(waits),
        sojourn_means=tuple(sojourns),
        length_means=tuple(lengths),
        throughputs=tuple(served),
        growth_rates=tuple(lam[i] - served[i] for i in range(k)),
        wait_mean=overall_wait,
        sojourn_mean=overall_sojourn,
        length_mean=overall_length,
        utilization=min(1.0, cum[-1]),
        stable=stable,
        note="" if stable else f"classes {first_bad}.. have cumulative load >= 1",
    )


# --- Little's law -----------------------------------------------------------------------


def little(L: float | None = None, lam: float | None = None, W: float | None = None) -> float:
    """Little's law L = λW for any stable system: give exactly two, get the third."""
    given = {k: v for k, v in (("L", L), ("lam", lam), ("W", W)) if v is not None}
    if len(given) != 2:
        raise ValueError(f"little: give exactly two of L, lam, W, got {sorted(given)}")
    vals = {k: _check.nonnegative(k, v) for k, v in given.items()}
    if "L" not in vals:
        return vals["lam"] * vals["W"]
    if "lam" not in vals:
        if vals["W"] == 0.0:
            raise _check.fail("W", "must be > 0 to compute lam", W)
        return vals["L"] / vals["W"]
    if vals["lam"] == 0.0:
        raise _check.fail("lam", "must be > 0 to compute W", lam)
    return vals["L"] / vals["lam"]
