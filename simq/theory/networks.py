"""Networks of queues: open Jackson networks and closed networks by mean value analysis."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import _check
from .metrics import ClosedMetrics, NetworkMetrics
from .queues import _mmc

__all__ = ["jackson", "mva", "mva_curve"]

_TOL = 1e-9


# --- open networks ----------------------------------------------------------------------


def _routing_matrix(routing: object, n: int) -> np.ndarray:
    rows = _check.sequence("routing", routing, n)
    P = np.empty((n, n))
    for i, row in enumerate(rows):
        items = _check.sequence(f"routing[{i}]", row, n)
        for j, x in enumerate(items):
            P[i, j] = _check.probability(f"routing[{i}][{j}]", x)
        total = float(P[i].sum())
        if total > 1.0 + _TOL:
            raise _check.fail(f"routing[{i}]", "must sum to <= 1", total)
    radius = float(max(abs(np.linalg.eigvals(P)))) if n else 0.0
    if radius >= 1.0 - _TOL:
        # I - P singular: some set of nodes routes among itself forever
        raise _check.fail(
            "routing", "every node must be able to reach an exit (spectral radius < 1)", radius
        )
    return P


def _flows_with(P: np.ndarray, gamma: np.ndarray, cap: np.ndarray, sat: np.ndarray) -> np.ndarray:
    """Arrival rates when the nodes in ``sat`` emit their capacity and the rest their input."""
    free = ~sat
    lam = np.empty_like(gamma)
    if free.any():
        lam_free = np.linalg.solve(
            np.eye(int(free.sum())) - P[np.ix_(free, free)].T,
            gamma[free] + P[np.ix_(sat, free)].T @ cap[sat],
        )
    else:
        lam_free = np.empty(0)
    lam[free] = lam_free
    lam[sat] = gamma[sat] + P[np.ix_(free, sat)].T @ lam_free + P[np.ix_(sat, sat)].T @ cap[sat]
    return lam


def _effective_flows(P: np.ndarray, gamma: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Solve λ = γ + Pᵀ min(λ, cμ): an overloaded node passes on only cμ downstream.

    Below saturation this is the traffic equation λ = γ + Pᵀλ. Iterating from λ = γ
    increases monotonically to the (unique) solution, so every node found saturated on the
    way is truly saturated; once the guessed set gives a consistent linear solution, that
    solution is exact.
    """
    lam = gamma.copy()
    tried: set[bytes] = set()
    for _ in range(1_000_000):
        sat = lam >= cap
        key = sat.tobytes()
        if key not in tried:
            tried.add(key)
            cand = _flows_with(P, gamma, cap, sat)
            slack = _TOL * cap
            over = cand >= cap - slack
            under = cand <= cap + slack
            if np.all(over[sat]) and np.all(under[~sat]):
                return cand
        lam = gamma + P.T @ np.minimum(lam, cap)
    raise RuntimeError("jackson: effective flows did not converge")  # pragma: no cover


def jackson(
    arrivals: Sequence[float],
    routing: Sequence[Sequence[float]],
    mu: Sequence[float] | float,
    servers: Sequence[int] | int = 1,
) -> NetworkMetrics:
    """Open Jackson network: Poisson external arrivals, exponential FIFO M/M/c nodes.

    ``arrivals[i]`` is the external rate into node i, ``routing[i][j]`` the probability a
    message leaving i goes to j (a row may sum to < 1: the rest leaves). ``mu`` and
    ``servers`` are per node, or one value for all. Each node is solved as an M/M/c at the
    rate λ from λ = γ + Pᵀλ. If some node is overloaded, it passes only cμ downstream; the
    network is reported unstable with infinite sojourn and the per-node growth rates.
    """
    gamma_items = _check.sequence("arrivals", arrivals)
    n = len(gamma_items)
    gamma = np.array([_check.nonnegative(f"arrivals[{i}]", x) for i, x in enumerate(gamma_items)])
    if gamma.sum() <= 0.0:
        raise _check.fail("arrivals", "must have a positive total", list(gamma_items))
    P = _routing_matrix(routing, n)
    rates = np.array(
        [_check.positive(f"mu[{i}]", x) for i, x in enumerate(_check.sequence("mu", mu, n))]
    )
    cs = [
        _check.integer(f"servers[{i}]", x)
        for i, x in enumerate(_check.sequence("servers", servers, n))
    ]
    cap = rates * np.array(cs, dtype=float)

    external = float(gamma.sum())
    visits = np.linalg.solve(np.eye(n) - P.T, gamma / external)
    lam = _effective_flows(P, gamma, cap)
    nodes = tuple(_mmc(float(lam[i]), float(rates[i]), cs[i]) for i in range(n))
    stable = all(node.stable for node in nodes)
    out = np.minimum(lam, cap)
    throughput = float(out @ (1.0 - P.sum(axis=1)))
    number = sum(node.number_mean for node in nodes) if stable else math.inf
    note = ""
    if not stable:
        bad = [i for i, node in enumerate(nodes) if not node.stable]
        note = f"unstable: nodes {bad} have λ >= cμ; downstream rates use their capacity"
    return NetworkMetrics(
        nodes=nodes,
        arrival_rates=tuple(float(x) for x in lam),
        visit_ratios=tuple(float(x) for x in visits),
        sojourn_mean=number / external,
        number_mean=number,
        throughput=throughput,
        stable=stable,
        external_rate=external,
        growth_rate=external - throughput,
        note=note,
    )


# --- closed networks --------------------------------------------------------------------


def _closed_args(
    N: object,
    demands: Sequence[float],
    think: float,
    kinds: Sequence[str] | None,
    servers: Sequence[int] | int | None,
    name: str = "N",
) -> tuple[int, np.ndarray, float, np.ndarray, np.ndarray]:
    n = _check.integer(name, N, low=0)
    items = _check.sequence("demands", demands)
    k = len(items)
    D = np.array([_check.nonnegative(f"demands[{i}]", x) for i, x in enumerate(items)])
    Z = _check.nonnegative("think", think)
    kind_items = ["queue"] * k if kinds is None else _check.sequence("kinds", kinds, k)
    for i, x in enumerate(kind_items):
        if x not in ("queue", "delay"):
            raise _check.fail(f"kinds[{i}]", "must be 'queue' or 'delay'", x)
    delay = np.array([x == "delay" for x in kind_items])
    server_items = _check.sequence("servers", 1 if servers is None else servers, k)
    c = np.array([_check.integer(f"servers[{i}]", x) for i, x in enumerate(server_items)])
    if Z + D.sum() <= 0.0:
        raise _check.fail("demands", "at least one demand or the think time must be > 0", items)
    return n, D, Z, delay, c


def _empty(D: np.ndarray, Z: float, exact_model: str) -> ClosedMetrics:
    # N = 0: nobody is there; a first customer would see the bare demands.
    return ClosedMetrics(
        n=0,
        throughput=0.0,
        response_time=float(D.sum()),
        queue_lengths=tuple(0.0 for _ in D),
        utilizations=tuple(0.0 for _ in D),
        residence_times=tuple(float(x) for x in D),
        think=Z,
        model=exact_model,
        note="N = 0: residence times are what a first customer would see",
    )


def _record(
    n: int,
    X: float,
    R: np.ndarray,
    D: np.ndarray,
    Z: float,
    delay: np.ndarray,
    c: np.ndarray,
    model: str,
) -> ClosedMetrics:
    util = np.where(delay, X * D, X * D / c)
    return ClosedMetrics(
        n=n,
        throughput=float(X),
        response_time=float(R.sum()),
        queue_lengths=tuple(float(x) for x in X * R),
        utilizations=tuple(float(x) for x in util),
        residence_times=tuple(float(x) for x in R),
        think=Z,
        model=model,
    )


_MVA = "closed network (exact MVA)"
_CONV = "closed network (exact, load-dependent convolution)"


def _mva_recursion(
    N: int, D: np.ndarray, Z: float, delay: np.ndarray, curve: bool
) -> list[ClosedMetrics]:
    # Reiser-Lavenberg: an arrival sees the network with one customer fewer (arrival theorem).
    ones = np.ones(len(D), dtype=int)
    out: list[ClosedMetrics] = []
    Q = np.zeros(len(D))
    for n in range(1, N + 1):
        R = np.where(delay, D, D * (1.0 + Q))
        X = n / (Z + R.sum())
        Q = X * R
        if curve or n == N:
            out.append(_record(n, X, R, D, Z, delay, ones, _MVA))
    return out


def _log_conv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log of the convolution of exp(a) and exp(b), without leaving log space."""
    out = np.empty_like(a)
    for n in range(len(a)):
        v = a[: n + 1] + b[n::-1]
        m = v.max()
        out[n] = m if m == -math.inf else m + math.log(float(np.exp(v - m).sum()))
    return out


def _log_factors(N: int, D: float, delay: bool, c: int) -> np.ndarray:
    # g(j) = D^j / Π_{i<=j} min(i, c): the product-form factor of j customers at a station
    g = np.full(N + 1, -math.inf)
    g[0] = 0.0
    if D > 0.0 and N > 0:
        j = np.arange(1, N + 1)
        alpha = j if delay else np.minimum(j, c)
        g[1:] = np.cumsum(math.log(D) - np.log(alpha))
    return g


def _convolution(
    N: int, D: np.ndarray, Z: float, delay: np.ndarray, c: np.ndarray, curve: bool
) -> list[ClosedMetrics]:
    # Load-dependent MVA computes p(0|n) as 1 − Σ p(j|n), which loses all accuracy within a
    # few dozen customers once a multi-server station saturates. The normalising constants
    # are sums of positive terms, so Buzen's convolution in log space gives the same exact
    # product-form answer without cancellation.
    k = len(D)
    factors = [_log_factors(N, float(D[i]), bool(delay[i]), int(c[i])) for i in range(k)]
    if Z > 0.0:
        factors.append(_log_factors(N, Z, True, 1))
    unit = np.full(N + 1, -math.inf)
    unit[0] = 0.0
    m = len(factors)
    prefix = [unit]
    for f in factors:
        prefix.append(_log_conv(prefix[-1], f))
    suffix = [unit]
    for f in reversed(factors):
        suffix.append(_log_conv(suffix[-1], f))
    suffix.reverse()  # suffix[i] covers factors i..m-1
    G = prefix[m]
    without = [_log_conv(prefix[i], suffix[i + 1]) for i in range(k)]

    out: list[ClosedMetrics] = []
    for n in range(1 if curve else N, N + 1):
        X = math.exp(G[n - 1] - G[n])
        R = np.empty(k)
        for i in range(k):
            # p_i(j | n) = g_i(j) G_{-i}(n - j) / G(n)
            p = np.exp(factors[i][: n + 1] + without[i][n::-1] - G[n])
            R[i] = float(np.arange(n + 1) @ p) / X
        out.append(_record(n, X, R, D, Z, delay, c, _CONV))
    return out


def _solve_closed(
    N: int, D: np.ndarray, Z: float, delay: np.ndarray, c: np.ndarray, curve: bool
) -> list[ClosedMetrics]:
    if N == 0:
        return [] if curve else [_empty(D, Z, _MVA)]
    if np.all(delay | (c == 1)):
        return _mva_recursion(N, D, Z, delay, curve)
    return _convolution(N, D, Z, delay, c, curve)


def mva(
    N: int,
    demands: Sequence[float],
    think: float = 0.0,
    kinds: Sequence[str] | None = None,
    servers: Sequence[int] | int | None = None,
) -> ClosedMetrics:
    """Exact mean value analysis of a closed product-form network of N customers.

    ``demands[k]`` is the service demand at station k (visits × mean service time);
    ``kinds[k]`` is "queue" (FCFS exponential or PS, default) or "delay" (infinite servers);
    ``servers[k]`` the servers of a queue station (ignored for delays); ``think`` a delay
    outside the response time. Single-server networks use the MVA recursion; with any
    multi-server station the same exact solution is computed by the load-dependent
    convolution algorithm in log space (numerically stable; ``exact`` is True either way).
    """
    n, D, Z, delay, c = _closed_args(N, demands, think, kinds, servers)
    return _solve_closed(n, D, Z, delay, c, curve=False)[-1]


def mva_curve(
    Nmax: int,
    demands: Sequence[float],
    think: float = 0.0,
    kinds: Sequence[str] | None = None,
    servers: Sequence[int] | int | None = None,
) -> list[ClosedMetrics]:
    """:func:`mva` for N = 1 .. Nmax, computed in one pass; element i is N = i + 1."""
    n, D, Z, delay, c = _closed_args(Nmax, demands, think, kinds, servers, name="Nmax")
    return _solve_closed(n, D, Z, delay, c, curve=True)
