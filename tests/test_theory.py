"""simq.theory against published values and against independent numerical solutions.

Published numbers are checked to 4 significant digits (rel=5e-5 or the table's own
rounding); every one is also recomputed here another way (direct sums, birth-death chains,
CTMCs), so a typo in a table cannot hide an error.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from simq import theory as th
from simq.theory.networks import _convolution, _mva_recursion

SIG4 = 5e-5  # relative tolerance for "4 significant digits"


# --- helpers: independent solutions -----------------------------------------------------


def erlang_b_direct(c: int, a: float) -> float:
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    return terms[-1] / sum(terms)


def erlang_c_direct(c: int, a: float) -> float:
    # textbook form: (a^c/c! · c/(c−a)) / (Σ_{k<c} a^k/k! + a^c/c! · c/(c−a))
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def stationary(Q: np.ndarray) -> np.ndarray:
    """π with πQ = 0, Σπ = 1 (replace one balance equation by the normalisation)."""
    n = Q.shape[0]
    A = np.vstack([Q.T[:-1], np.ones(n)])
    b = np.zeros(n)
    b[-1] = 1.0
    return np.linalg.solve(A, b)


def birth_death(lam: float, mu: float, c: int, K: int) -> np.ndarray:
    Q = np.zeros((K + 1, K + 1))
    for n in range(K):
        Q[n, n + 1] = lam
        Q[n + 1, n] = min(n + 1, c) * mu
    Q -= np.diag(Q.sum(axis=1))
    return stationary(Q)


def closed_ctmc(N: int, rates: list[float], servers: list[float], P: list[list[float]]):
    """Solve a closed network's CTMC; servers = math.inf is a delay station.

    Returns (per-station throughput, per-station mean number).
    """
    m = len(rates)
    states = [s for s in itertools.product(range(N + 1), repeat=m) if sum(s) == N]
    index = {s: i for i, s in enumerate(states)}
    Q = np.zeros((len(states), len(states)))

    def rate(k: int, j: int) -> float:
        return min(j, servers[k]) * rates[k]

    for s in states:
        for k in range(m):
            if s[k] == 0:
                continue
            for dest in range(m):
                if P[k][dest] == 0.0 or dest == k:
                    continue
                t = list(s)
                t[k] -= 1
                t[dest] += 1
                Q[index[s], index[tuple(t)]] += rate(k, s[k]) * P[k][dest]
    Q -= np.diag(Q.sum(axis=1))
    pi = stationary(Q)
    X = np.array([sum(pi[i] * rate(k, s[k]) for i, s in enumerate(states)) for k in range(m)])
    L = np.array([sum(pi[i] * s[k] for i, s in enumerate(states)) for k in range(m)])
    return X, L


def ld_mva(N: int, D: list[float], Z: float, c: list[int]) -> tuple[float, list[float]]:
    """Textbook load-dependent MVA with marginal probabilities (fine for small N)."""
    k = len(D)
    p = [np.array([1.0]) for _ in range(k)]  # p_k(j | 0)
    X = 0.0
    R = [0.0] * k
    for n in range(1, N + 1):
        for i in range(k):
            j = np.arange(1, n + 1)
            R[i] = float(np.sum(j / np.minimum(j, c[i]) * D[i] * p[i][:n]))
        X = n / (Z + sum(R))
        for i in range(k):
            j = np.arange(1, n + 1)
            new = np.empty(n + 1)
            new[1:] = X * D[i] / np.minimum(j, c[i]) * p[i][:n]
            new[0] = 1.0 - new[1:].sum()
            p[i] = new
    return X, [X * r for r in R]


# --- Erlang B and C ---------------------------------------------------------------------


def test_erlang_c_two_servers_one_erlang():
    # M/M/2 with a = 1: C = (1/2 · 2) / (1 + 1 + 1) = 1/3 (hand computation)
    assert th.erlang_c(c=2, a=1.0) == pytest.approx(1 / 3, rel=1e-12)


def test_erlang_c_call_centre_table():
    # a = 10 Erlangs, 11 agents: P(wait) = 0.6821 (standard Erlang C tables, e.g. the
    # worked example in Koole, "Call Center Optimization", ch. 5); recomputed by direct sum.
    assert th.erlang_c(11, 10.0) == pytest.approx(0.6821, abs=5e-5)
    assert th.erlang_c(11, 10.0) == pytest.approx(erlang_c_direct(11, 10.0), rel=1e-12)


def test_erlang_b_table_values():
    # Erlang B tables (e.g. Kleinrock, Queueing Systems vol. 1, and any traffic table):
    # B(5, 3) = 0.11005, B(10, 5) = 0.01838
    assert th.erlang_b(5, 3.0) == pytest.approx(0.11005, rel=SIG4)
    assert th.erlang_b(10, 5.0) == pytest.approx(0.01838, rel=3e-4)  # table gives 4 digits
    for c, a in [(5, 3.0), (10, 5.0), (1, 0.5), (30, 25.0)]:
        assert th.erlang_b(c, a) == pytest.approx(erlang_b_direct(c, a), rel=1e-12)


def test_erlang_large_c_is_stable():
    # B(c, a) = Poisson pmf(c) / cdf(c): an independent route that never forms a^c/c!
    for c, a in [(200, 190.0), (1000, 990.0), (1000, 1200.0)]:
        expected = stats.poisson.pmf(c, a) / stats.poisson.cdf(c, a)
        assert th.erlang_b(c, a) == pytest.approx(expected, rel=1e-9)
    m = th.mmc(lam=990.0, mu=1.0, c=1000)
    assert m.stable and 0.0 < m.p_wait < 1.0 and math.isfinite(m.wait_mean)
    assert th.erlang_c(1000, 1000.0) == 1.0


def test_erlang_c_from_erlang_b_identity():
    # C = c B / (c − a (1 − B)) must agree with the direct textbook sum
    for c, a in [(1, 0.3), (3, 2.5), (8, 7.9), (20, 12.0)]:
        assert th.erlang_c(c, a) == pytest.approx(erlang_c_direct(c, a), rel=1e-10)
    assert th.erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = ρ


# --- M/M/1, M/M/c, M/D/1, M/G/1 ---------------------------------------------------------


def test_mm1_textbook():
    # λ = 0.8, μ = 1: ρ = 0.8, Lq = ρ²/(1−ρ) = 3.2, Wq = 4, W = 5, L = 4
    m = th.mm1(lam=0.8, mu=1.0)
    assert m.model == "M/M/1" and m.exact and m.stable
    assert m.length_mean == pytest.approx(3.2)
    assert m.wait_mean == pytest.approx(4.0)
    assert m.sojourn_mean == pytest.approx(5.0)
    assert m.number_mean == pytest.approx(4.0)
    assert m.utilization == pytest.approx(0.8)
    assert m.p_wait == pytest.approx(0.8)
    assert m.throughput == 0.8 and m.p_block == 0.0 and m.growth_rate == 0.0


def test_mmc_matches_little_and_erlang_c():
    m = th.mmc(lam=3.0, mu=1.0, c=4)
    C = erlang_c_direct(4, 3.0)
    assert m.p_wait == pytest.approx(C)
    assert m.wait_mean == pytest.approx(C / (4.0 - 3.0))
    assert m.length_mean == pytest.approx(3.0 * m.wait_mean)
    assert m.number_mean == pytest.approx(m.length_mean + 3.0)
    assert m.utilization == pytest.approx(0.75)
    assert th.mmc(lam=0.8, mu=1.0, c=1) == th.mm1(lam=0.8, mu=1.0)


def test_md1_and_pollaczek_khinchine():
    lam, mu = 0.8, 1.0
    rho = lam / mu
    d = th.md1(lam=lam, mu=mu)
    assert d.length_mean == pytest.approx(rho**2 / (2 * (1 - rho)))
    # P-K with scv = 1 is M/M/1, with scv = 0 is M/D/1
    pk1 = th.mg1(lam=lam, mean=1 / mu, scv=1.0)
    pk0 = th.mg1(lam=lam, mean=1 / mu, scv=0.0)
    mm = th.mm1(lam=lam, mu=mu)
    for field in ("wait_mean", "length_mean", "sojourn_mean", "number_mean", "p_wait"):
        assert getattr(pk1, field) == pytest.approx(getattr(mm, field))
        assert getattr(pk0, field) == pytest.approx(getattr(d, field))
    assert pk1.model == "M/G/1 (Pollaczek-Khinchine)" and d.model == "M/D/1"


def test_kingman_and_allen_cunneen():
    # Allen-Cunneen with Poisson arrivals and exponential service is exact M/M/c
    for c in (1, 2, 5, 20):
        ac = th.ggc_allen_cunneen(lam=0.9 * c, ca2=1.0, mean=1.0, cs2=1.0, c=c)
        ex = th.mmc(lam=0.9 * c, mu=1.0, c=c)
        assert not ac.exact
        assert ac.wait_mean == pytest.approx(ex.wait_mean, rel=1e-12)
        assert ac.number_mean == pytest.approx(ex.number_mean, rel=1e-12)
    # Kingman with ca2 = 1 is P-K; with c = 1 both approximations coincide
    k = th.gg1_kingman(lam=0.7, ca2=1.0, mean=1.0, cs2=0.3)
    assert k.wait_mean == pytest.approx(th.mg1(lam=0.7, mean=1.0, scv=0.3).wait_mean)
    k2 = th.gg1_kingman(lam=0.7, ca2=0.5, mean=1.0, cs2=2.0)
    ac1 = th.ggc_allen_cunneen(lam=0.7, ca2=0.5, mean=1.0, cs2=2.0, c=1)
    assert k2.wait_mean == pytest.approx(ac1.wait_mean)
    assert k2.wait_mean == pytest.approx(0.7 / 0.3 * 1.25)
    assert k2.model == "G/G/1 (Kingman, approximate)"
    assert ac1.model == "G/G/c (Allen-Cunneen, approximate)"


# --- finite buffers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "mu", "c", "K"),
    [(3.0, 1.0, 2, 6), (0.5, 1.0, 1, 4), (5.0, 1.0, 2, 10), (7.0, 2.0, 4, 4)],
)
def test_mmck_against_birth_death_chain(lam, mu, c, K):
    p = birth_death(lam, mu, c, K)
    n = np.arange(K + 1)
    m = th.mmck(lam=lam, mu=mu, c=c, K=K)
    carried = lam * (1 - p[K])
    assert m.p_block == pytest.approx(p[K], rel=1e-9)
    assert m.throughput == pytest.approx(carried, rel=1e-9)
    assert m.number_mean == pytest.approx(n @ p, rel=1e-9)
    assert m.length_mean == pytest.approx(np.maximum(n - c, 0) @ p, rel=1e-9, abs=1e-15)
    assert m.sojourn_mean == pytest.approx((n @ p) / carried, rel=1e-9)
    assert m.utilization == pytest.approx(carried / (c * mu), rel=1e-9)
    assert m.p_wait == pytest.approx(p[c:K].sum() / (1 - p[K]), rel=1e-9, abs=1e-15)
    assert m.stable


def test_mmck_limits():
    # K = c is the Erlang B loss system; K → ∞ is M/M/c
    for c, a in [(1, 0.5), (5, 3.0), (10, 5.0)]:
        loss = th.mmck(lam=a, mu=1.0, c=c, K=c)
        assert loss.p_block == pytest.approx(th.erlang_b(c, a), rel=1e-12)
        mmcc = th.mmcc(lam=a, mu=1.0, c=c)
        for field in ("p_block", "throughput", "number_mean", "utilization", "sojourn_mean"):
            assert getattr(mmcc, field) == pytest.approx(getattr(loss, field), rel=1e-12)
    big = th.mmck(lam=3.0, mu=1.0, c=4, K=2000)
    assert big.wait_mean == pytest.approx(th.mmc(lam=3.0, mu=1.0, c=4).wait_mean, rel=1e-9)
    assert th.mmck(lam=3.0, mu=1.0, c=4, K=math.inf) == th.mmc(lam=3.0, mu=1.0, c=4)
    # a large, overloaded system stays finite: p_block → 1 − cμ/λ
    over = th.mmck(lam=2000.0, mu=1.0, c=1000, K=1500)
    assert over.p_block == pytest.approx(0.5, rel=1e-3)


# --- quantiles --------------------------------------------------------------------------


def test_sojourn_quantile_median():
    assert th.mm1_sojourn_quantile(lam=0.8, mu=1.0, q=0.5) == pytest.approx(math.log(2) / 0.2)
    assert th.mm1_sojourn_quantile(lam=0.8, mu=1.0, q=0.0) == 0.0
    assert th.mm1_sojourn_quantile(lam=0.8, mu=1.0, q=1.0) == math.inf


def test_wait_quantile_atom_at_zero():
    lam, mu = 0.8, 1.0  # P(Wq = 0) = 1 − ρ = 0.2
    assert th.mm1_wait_quantile(lam=lam, mu=mu, q=0.1) == 0.0
    assert th.mm1_wait_quantile(lam=lam, mu=mu, q=0.2) == 0.0
    for q in (0.2001, 0.5, 0.95, 0.99):
        t = th.mm1_wait_quantile(lam=lam, mu=mu, q=q)
        assert t > 0.0
        assert 1 - 0.8 * math.exp(-(mu - lam) * t) == pytest.approx(q)
    # M/M/c: atom 1 − C; c = 1 reduces to M/M/1
    C = erlang_c_direct(3, 2.0)
    assert th.mmc_wait_quantile(lam=2.0, mu=1.0, c=3, q=0.99 * (1 - C)) == 0.0
    t = th.mmc_wait_quantile(lam=2.0, mu=1.0, c=3, q=0.95)
    assert 1 - C * math.exp(-(3.0 - 2.0) * t) == pytest.approx(0.95)
    assert th.mmc_wait_quantile(lam=0.8, mu=1.0, c=1, q=0.9) == pytest.approx(
        th.mm1_wait_quantile(lam=0.8, mu=1.0, q=0.9)
    )


# --- unstable systems -------------------------------------------------------------------


def test_unstable_is_a_result_not_an_error():
    m = th.mmc(lam=5.0, mu=1.0, c=4)
    assert not m.stable
    assert m.wait_mean == m.length_mean == m.sojourn_mean == m.number_mean == math.inf
    assert m.throughput == 4.0 and m.utilization == 1.0 and m.growth_rate == pytest.approx(1.0)
    assert "unstable" in m.note
    critical = th.mm1(lam=1.0, mu=1.0)  # ρ = 1 is null-recurrent: unstable, no growth
    assert not critical.stable and critical.growth_rate == 0.0
    for m in (
        th.md1(lam=2.0, mu=1.0),
        th.mg1(lam=2.0, mean=1.0, scv=3.0),
        th.gg1_kingman(lam=2.0, ca2=1.0, mean=1.0, cs2=1.0),
        th.ggc_allen_cunneen(lam=5.0, ca2=1.0, mean=1.0, cs2=1.0, c=3),
    ):
        assert not m.stable and m.wait_mean == math.inf and m.growth_rate > 0.0
    assert th.mm1_sojourn_quantile(lam=2.0, mu=1.0, q=0.5) == math.inf
    assert th.mmc_wait_quantile(lam=5.0, mu=1.0, c=2, q=0.5) == math.inf


def test_as_dict():
    d = th.mm1(lam=0.5, mu=1.0).as_dict()
    assert d["model"] == "M/M/1" and d["wait_mean"] == pytest.approx(1.0)
    assert set(d) >= {
        "model",
        "exact",
        "arrival_rate",
        "throughput",
        "utilization",
        "wait_mean",
        "length_mean",
        "sojourn_mean",
        "number_mean",
        "p_wait",
        "p_block",
        "stable",
        "growth_rate",
        "note",
    }
    net = th.jackson([1.0], [[0.0]], [2.0]).as_dict()
    assert net["nodes"][0]["model"] == "M/M/1"


# --- priorities -------------------------------------------------------------------------


def test_cobham_two_classes_by_hand():
    # λ = (0.2, 0.3), E[S] = (1, 1.5), scv = (1, 0.5): E[S²] = (2, 3.375)
    # W0 = (0.2·2 + 0.3·3.375)/2 = 0.70625; σ1 = 0.2, σ2 = 0.65
    # Wq1 = 0.70625 / (1 · 0.8) = 0.8828125; Wq2 = 0.70625 / (0.8 · 0.35) = 2.5223214...
    m = th.priority_mg1(lams=[0.2, 0.3], means=[1.0, 1.5], scvs=[1.0, 0.5])
    assert m.wait_means[0] == pytest.approx(0.8828125)
    assert m.wait_means[1] == pytest.approx(0.70625 / 0.28)
    assert m.wait_mean == pytest.approx((0.2 * 0.8828125 + 0.3 * 0.70625 / 0.28) / 0.5)
    assert m.stable
    # Kleinrock's conservation law: Σ ρ_k Wq_k = ρ W0 / (1 − ρ) for any work-conserving order
    assert sum(r * w for r, w in zip(m.utilizations, m.wait_means, strict=True)) == pytest.approx(
        0.65 * 0.70625 / 0.35
    )


def test_cobham_one_class_is_pollaczek_khinchine():
    m = th.priority_mg1(lams=[0.6], means=[1.2], scvs=[0.4])
    pk = th.mg1(lam=0.6, mean=1.2, scv=0.4)
    assert m.wait_means[0] == pytest.approx(pk.wait_mean)
    assert m.sojourn_mean == pytest.approx(pk.sojourn_mean)
    assert m.length_mean == pytest.approx(pk.length_mean)


def test_cobham_overload_keeps_high_classes_finite():
    # class 0 uses 0.5, class 1 wants 0.8: class 1 gets 0.5/1 per second, class 2 nothing
    m = th.priority_mg1(lams=[0.5, 0.8, 0.1], means=[1.0, 1.0, 1.0], scvs=[1.0, 1.0, 1.0])
    assert not m.stable and m.wait_mean == math.inf
    assert m.wait_means[1] == m.wait_means[2] == math.inf
    assert m.throughputs == pytest.approx((0.5, 0.5, 0.0))
    assert m.growth_rates == pytest.approx((0.0, 0.3, 0.1))
    # the server is always busy; the residual work is of what it actually serves
    w0 = (0.5 * 2 + 0.5 * 2) / 2
    assert m.wait_means[0] == pytest.approx(w0 / 0.5)


# --- Jackson networks -------------------------------------------------------------------


def test_jackson_tandem_is_sum_of_mm1():
    net = th.jackson(
        arrivals=[1.0, 0.0], routing=[[0.0, 1.0], [0.0, 0.0]], mu=[2.0, 3.0], servers=[1, 1]
    )
    expected = th.mm1(lam=1.0, mu=2.0).sojourn_mean + th.mm1(lam=1.0, mu=3.0).sojourn_mean
    assert net.sojourn_mean == pytest.approx(expected)
    assert net.throughput == pytest.approx(1.0) and net.stable
    assert net.visit_ratios == pytest.approx((1.0, 1.0))


def test_jackson_feedback_node():
    # Bernoulli feedback with probability p: the node is an M/M/1 at λ/(1 − p), and a
    # message makes 1/(1 − p) visits
    lam, mu, p = 1.0, 4.0, 0.6
    net = th.jackson(arrivals=[lam], routing=[[p]], mu=[mu], servers=[1])
    node = th.mm1(lam=lam / (1 - p), mu=mu)
    assert net.arrival_rates[0] == pytest.approx(lam / (1 - p))
    assert net.nodes[0].number_mean == pytest.approx(node.number_mean)
    assert net.visit_ratios[0] == pytest.approx(1 / (1 - p))
    assert net.sojourn_mean == pytest.approx(node.sojourn_mean / (1 - p))


def test_jackson_multi_server_and_scalar_arguments():
    P = [[0.0, 0.5, 0.3], [0.0, 0.0, 1.0], [0.1, 0.0, 0.0]]
    net = th.jackson(arrivals=[2.0, 1.0, 0.0], routing=P, mu=1.5, servers=3)
    lam = np.linalg.solve(np.eye(3) - np.array(P).T, [2.0, 1.0, 0.0])
    assert net.arrival_rates == pytest.approx(tuple(lam))
    for i in range(3):
        alone = th.mmc(lam=float(lam[i]), mu=1.5, c=3)
        assert net.nodes[i].number_mean == pytest.approx(alone.number_mean, rel=1e-12)
        assert net.nodes[i].model == "M/M/c" and net.nodes[i].servers == 3
    assert net.throughput == pytest.approx(3.0)  # flow conservation
    assert net.sojourn_mean == pytest.approx(sum(n.number_mean for n in net.nodes) / 3.0)


def test_jackson_overload_throttles_downstream():
    # node 0 (cap 1) is overloaded at 1.5/s; node 1 (cap 2) then sees only 1/s, not 1.5/s
    net = th.jackson(arrivals=[1.5, 0.0], routing=[[0.0, 1.0], [0.0, 0.0]], mu=[1.0, 2.0])
    assert not net.stable and net.sojourn_mean == math.inf
    assert net.arrival_rates == pytest.approx((1.5, 1.0))
    assert net.nodes[1].stable and net.nodes[0].growth_rate == pytest.approx(0.5)
    assert net.throughput == pytest.approx(1.0) and net.growth_rate == pytest.approx(0.5)
    # with feedback: node 1 (cap 1) saturates and returns half of its 1/s to node 0, which
    # then sits exactly at its capacity 1.5 (the naive traffic equations say 2 and 2)
    loop = th.jackson(arrivals=[1.0, 0.0], routing=[[0.0, 1.0], [0.5, 0.0]], mu=[1.5, 1.0])
    assert loop.arrival_rates == pytest.approx((1.5, 1.5))
    assert loop.throughput == pytest.approx(0.5)
    assert loop.growth_rate == pytest.approx(sum(n.growth_rate for n in loop.nodes))


def test_jackson_bad_routing():
    with pytest.raises(ValueError, match=r"^routing\[0\]: must sum to <= 1"):
        th.jackson([1.0, 0.0], [[0.6, 0.6], [0.0, 0.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^routing: every node must be able to reach an exit"):
        th.jackson([1.0, 0.0], [[0.0, 1.0], [1.0, 0.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^routing\[1\]: must have length 2"):
        th.jackson([1.0, 0.0], [[0.0, 1.0], [1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^mu: must have length 2"):
        th.jackson([1.0, 0.0], [[0.0, 1.0], [0.0, 0.0]], [1.0])
    with pytest.raises(ValueError, match=r"^routing\[0\]\[1\]: must be in \[0, 1\]"):
        th.jackson([1.0, 0.0], [[0.0, -0.1], [0.0, 0.0]], [1.0, 1.0])


# --- closed networks (MVA) --------------------------------------------------------------

# Jain, "The Art of Computer Systems Performance Analysis" (1991), Example 34.2 / Table 34.1:
# timesharing system, think Z = 4 s, CPU 16 visits × 0.125 s, disk A 10 × 0.3 s,
# disk B 5 × 0.2 s, so demands (2, 3, 1) s.
JAIN = {"demands": [2.0, 3.0, 1.0], "think": 4.0}
JAIN_TABLE = {  # N: (system response time, throughput, Q_cpu, Q_A, Q_B)
    1: (6.000, 0.100, 0.200, 0.300, 0.100),
    2: (7.400, 0.175, 0.421, 0.684, 0.193),
    3: (9.088, 0.229, 0.651, 1.158, 0.273),
    4: (11.051, 0.266, 0.878, 1.721, 0.338),
    5: (13.256, 0.290, 1.088, 2.365, 0.388),
    20: (56.016, 0.333, 1.991, 16.177, 0.500),
}


def test_mva_jain_table():
    curve = th.mva_curve(20, **JAIN)
    assert [m.n for m in curve] == list(range(1, 21))
    for N, (R, X, *Q) in JAIN_TABLE.items():
        m = th.mva(N, **JAIN)
        assert m == curve[N - 1]
        assert m.response_time == pytest.approx(R, abs=5e-4)  # table rounds to 3 decimals
        assert m.throughput == pytest.approx(X, abs=5e-4)
        assert m.queue_lengths == pytest.approx(tuple(Q), abs=5e-4)
        assert m.exact


def test_mva_limits():
    D, Z = [0.05, 0.2, 0.1], 1.0
    one = th.mva(1, D, think=Z)
    assert one.throughput == pytest.approx(1 / (Z + sum(D)))
    assert one.response_time == pytest.approx(sum(D))
    many = th.mva(2000, D, think=Z)
    assert many.throughput == pytest.approx(1 / max(D), rel=1e-9)
    assert many.utilizations[1] == pytest.approx(1.0, rel=1e-9)
    # Little's law around the loop: Σ Q + X·Z = N
    for m in th.mva_curve(30, D, think=Z):
        assert sum(m.queue_lengths) + m.throughput * Z == pytest.approx(m.n)
    empty = th.mva(0, D, think=Z)
    assert empty.throughput == 0.0 and empty.response_time == pytest.approx(sum(D))
    assert th.mva_curve(0, D) == []


def test_mva_two_stations_against_ctmc():
    # two single-server stations in a loop (μ = 2 and 3): product form, demands 1/μ
    for N in range(1, 6):
        X, L = closed_ctmc(N, rates=[2.0, 3.0], servers=[1, 1], P=[[0, 1], [1, 0]])
        m = th.mva(N, [0.5, 1 / 3])
        assert m.throughput == pytest.approx(X[0], rel=1e-10)
        assert m.queue_lengths == pytest.approx(tuple(L), rel=1e-10)


def test_mva_think_delay_and_routing_against_ctmc():
    # think (delay, mean 2 s) -> CPU (μ 5) -> disk w.p. 0.6 or back to think w.p. 0.4;
    # disk (2 servers, μ 3) -> CPU. Visits per think cycle: CPU 2.5, disk 1.5.
    P = [[0, 1, 0], [0.4, 0, 0.6], [0, 1, 0]]
    for N in range(1, 6):
        X, L = closed_ctmc(N, rates=[0.5, 5.0, 3.0], servers=[math.inf, 1, 2], P=P)
        m = th.mva(N, [2.5 / 5.0, 1.5 / 3.0], think=2.0, servers=[1, 2])
        assert m.throughput == pytest.approx(X[0], rel=1e-10)
        assert m.queue_lengths == pytest.approx(tuple(L[1:]), rel=1e-10)
        assert m.utilizations[1] == pytest.approx(X[2] / 3.0 / 2, rel=1e-10)
        # the same think time modelled as an explicit delay station
        d = th.mva(N, [2.0, 0.5, 0.5], kinds=["delay", "queue", "queue"], servers=[1, 1, 2])
        assert d.throughput == pytest.approx(m.throughput, rel=1e-10)
        assert d.queue_lengths[0] == pytest.approx(L[0], rel=1e-10)


def test_multiserver_mva_against_load_dependent_mva_and_limits():
    D, Z, c = [0.2, 1.0, 0.3], 2.0, [1, 4, 2]  # bottleneck: the 4 servers at 1.0 s
    for N in (1, 3, 10, 25):
        X, Q = ld_mva(N, D, Z, c)
        m = th.mva(N, D, think=Z, servers=c)
        assert m.throughput == pytest.approx(X, rel=1e-8)
        assert m.queue_lengths == pytest.approx(tuple(Q), rel=1e-7)
    # far past saturation (where load-dependent MVA's 1 − Σp breaks down): X → c/D
    big = th.mva(400, D, think=Z, servers=c)
    assert big.throughput == pytest.approx(4 / 1.0, rel=1e-9)
    assert sum(big.queue_lengths) + big.throughput * Z == pytest.approx(400, rel=1e-9)
    assert all(q >= 0 for q in big.queue_lengths)
    # c >= N servers never queue: the station is a delay
    assert th.mva(3, [1.0], think=1.0, servers=[3]).throughput == pytest.approx(
        th.mva(3, [1.0], think=1.0, kinds=["delay"]).throughput
    )


def test_convolution_equals_mva_recursion():
    D, Z = np.array([0.3, 0.7, 0.2, 1.1]), 0.5
    delay = np.array([False, False, True, False])
    ones = np.ones(4, dtype=int)
    rec = _mva_recursion(40, D, Z, delay, curve=True)
    conv = _convolution(40, D, Z, delay, ones, curve=True)
    for a, b in zip(rec, conv, strict=True):
        assert b.throughput == pytest.approx(a.throughput, rel=1e-10)
        assert b.queue_lengths == pytest.approx(a.queue_lengths, rel=1e-9)
        assert b.response_time == pytest.approx(a.response_time, rel=1e-10)


# --- Little's law and the document's formulas -------------------------------------------


def test_little():
    assert th.little(lam=2.0, W=3.0) == 6.0
    assert th.little(L=6.0, W=3.0) == 2.0
    assert th.little(L=6.0, lam=2.0) == 3.0
    with pytest.raises(ValueError, match="exactly two"):
        th.little(L=1.0)
    with pytest.raises(ValueError, match=r"^lam: must be > 0 to compute W"):
        th.little(L=1.0, lam=0.0)


def test_document_formulas():
    assert set(th.FORMULAS) == {"throughput", "latency", "queue_length"}
    assert th.FORMULAS["throughput"]["text"] == "吞吐量 Throughput = 消息处理速率 / 消息生成速率"
    assert th.FORMULAS["latency"]["text"] == "延迟 Latency = 处理时间 + 传输时间"
    queue_text = "队列长度 Queue Length = 消息生成速率 - 消息处理速率"
    assert th.FORMULAS["queue_length"]["text"] == queue_text
    for entry in th.FORMULAS.values():
        assert set(entry) == {"text", "english", "reading"}
    # below saturation: the ratio is not a rate, the naive queue length is negative
    assert th.throughput_as_written(gen_rate=0.8, proc_rate=1.0) == pytest.approx(1.25)
    assert th.throughput_reading(gen_rate=0.8, proc_rate=1.0) == 0.8
    assert th.queue_length_as_written(gen_rate=0.8, proc_rate=1.0) == pytest.approx(-0.2)
    assert th.queue_growth_reading(gen_rate=0.8, proc_rate=1.0) == 0.0
    assert th.mm1(lam=0.8, mu=1.0).length_mean > 0  # yet the queue is not empty
    # in overload the growth reading is right and throughput is capped
    assert th.queue_growth_reading(gen_rate=1.5, proc_rate=1.0) == pytest.approx(0.5)
    assert th.throughput_reading(gen_rate=1.5, proc_rate=1.0) == 1.0
    # latency: the gap is the waiting time
    m = th.mm1(lam=0.8, mu=1.0)
    assert th.latency_as_written(processing=1.0, transmission=0.002) == pytest.approx(1.002)
    assert th.latency_reading(processing=1.0, transmission=0.002, waiting=m.wait_mean) == (
        pytest.approx(m.sojourn_mean + 0.002)
    )


# --- argument validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: th.mm1(lam=0.5, mu=-1), r"^mu: must be > 0 and finite, got -1$"),
        (lambda: th.mm1(lam=-0.5, mu=1), r"^lam: must be >= 0 and finite, got -0.5$"),
        (lambda: th.mm1(lam=math.nan, mu=1), r"^lam: must be a number"),
        (lambda: th.mmc(lam=1, mu=1, c=0), r"^c: must be an integer >= 1, got 0$"),
        (lambda: th.mmc(lam=1, mu=1, c=2.5), r"^c: must be an integer >= 1, got 2.5$"),
        (lambda: th.mmc(lam=1, mu=1, c=True), r"^c: must be an integer >= 1"),
        (lambda: th.mmck(lam=1, mu=1, c=3, K=2), r"^K: must be an integer >= 3, got 2$"),
        (lambda: th.erlang_b(3, -1.0), r"^a: must be >= 0"),
        (lambda: th.mg1(lam=1, mean=0, scv=1), r"^mean: must be > 0"),
        (lambda: th.mg1(lam=0.5, mean=1, scv=-1), r"^scv: must be >= 0"),
        (lambda: th.gg1_kingman(lam=0.5, ca2=-1, mean=1, cs2=1), r"^ca2: must be >= 0"),
        (lambda: th.mm1_sojourn_quantile(lam=0.5, mu=1, q=1.5), r"^q: must be in \[0, 1\]"),
        (lambda: th.priority_mg1([0.1, 0.2], [1.0], [1.0, 1.0]), r"^means: must have length 2"),
        (lambda: th.priority_mg1([0.1], [-1.0], [1.0]), r"^means\[0\]: must be > 0"),
        (lambda: th.mva(-1, [1.0]), r"^N: must be an integer >= 0, got -1$"),
        (lambda: th.mva(2, [1.0], kinds=["fifo"]), r"^kinds\[0\]: must be 'queue' or 'delay'"),
        (lambda: th.mva(2, [1.0, 2.0], servers=[1]), r"^servers: must have length 2"),
        (lambda: th.mva(2, [0.0]), r"^demands: at least one demand"),
        (lambda: th.mva(2, "ab"), r"^demands: must be a sequence"),
        (lambda: th.jackson([0.0], [[0.0]], [1.0]), r"^arrivals: must have a positive total"),
        (lambda: th.throughput_as_written(gen_rate=0, proc_rate=1), r"^gen_rate: must be > 0"),
    ],
)
def test_bad_arguments_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
