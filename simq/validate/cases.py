"""The built-in validation cases: canonical models whose answer is known.

Each case is a scenario (a plain mapping) and the checks to make on its result. Theory
values come from :mod:`simq.theory`, never from a simulation. Run lengths are in messages
per replication (scaled by ``--thorough``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simq import theory

# The agreement rule's allowances for model bias: 1% (EXACT) for exact results, 20%
# (APPROX) for the Kingman and Allen-Cunneen approximations.
from simq.analysis.stats import APPROX, EXACT
from simq.run import Replication

__all__ = ["Case", "Check", "cases"]



@dataclass(frozen=True)
class Check:
    """One quantity of one case: per-replication measure, theory value, allowance."""

    quantity: str
    measure: Callable[[Replication], float]
    theory: float
    model: str
    allowance: float = EXACT


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    scenario: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    replications: int = 10


def at(path: str) -> Callable[[Replication], float]:
    """A summary value by dotted path (component names without dots)."""
    keys = path.split(".")

    def get(rep: Replication) -> float:
        x: Any = rep.summary
        for k in keys:
            x = x[k]
        return float(x)

    get.__name__ = path
    return get


def _little(q: str) -> Callable[[Replication], float]:
    def ratio(rep: Replication) -> float:
        s = rep.summary["queues"][q]
        span = rep.window[1] - rep.window[0]
        lam = (s["arrivals"] - s["dropped"]) / span  # messages that entered the line
        lw = lam * s["wait_mean"]
        return s["length_mean"] / lw if lw > 0 else math.nan

    return ratio


def _drop_fraction(q: str) -> Callable[[Replication], float]:
    return at(f"queues.{q}.drop_fraction")


def _lost_fraction(link: str) -> Callable[[Replication], float]:
    def frac(rep: Replication) -> float:
        span = rep.window[1] - rep.window[0]
        return float(rep.summary["links"][link]["lost"] / (rep.summary["offered_rate"] * span))

    return frac


def _scenario(name: str, until: float, producers: dict[str, Any], queues: dict[str, Any],
              consumers: dict[str, Any], links: dict[str, Any] | None = None,
              warmup: float | str | None = None, seed: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "run": {"until": until, "warmup": until * 0.1 if warmup is None else warmup,
                "seed": seed},
        "producers": producers,
        "queues": queues,
        "consumers": consumers,
        "links": links or {},
    }


def _jackson_case(name: str, sc: dict[str, Any], net: theory.NetworkMetrics,
                  latency: str) -> Case:
    """Stations a, b, c served by groups ga, gb, gc, each against its Jackson node, and the
    end-to-end mean against the sum of the sojourns."""
    checks = []
    for q, node in zip("abc", net.nodes, strict=True):
        checks += _station_checks(q, f"g{q}", node, EXACT)
    checks.append(Check(latency, at("latency.mean"), net.sojourn_mean, "Jackson"))
    return Case(name, "Jackson", sc, checks)


def _station_checks(q: str, g: str, m: Any, allowance: float, little: bool = True
                    ) -> list[Check]:
    out = [
        Check(f"{q} wait_mean (Wq)", at(f"queues.{q}.wait_mean"), m.wait_mean, m.model,
              allowance),
        Check(f"{q} length_mean (Lq)", at(f"queues.{q}.length_mean"), m.length_mean,
              m.model, allowance),
        Check(f"{g} utilization", at(f"consumers.{g}.utilization"), m.utilization, m.model,
              EXACT),
    ]
    if little:
        out.append(Check(f"{q} Little Lq/(λ·Wq)", _little(q), 1.0, "Little's law", EXACT))
    return out


def _until(messages: float, rate: float) -> float:
    return float(round(messages / rate))


def cases(scale: float = 1.0) -> list[Case]:
    """Every default case; ``scale`` multiplies the run lengths (``--thorough`` uses 4)."""
    n = 20_000 * scale  # messages per replication for an easy case
    out: list[Case] = []

    # M/M/1 at several loads (harder loads get longer runs: the relaxation time grows
    # like 1/(1 - sqrt(rho))^2).
    for rho, k in ((0.3, 1), (0.5, 1), (0.7, 2), (0.9, 8)):
        m = theory.mm1(rho, 1.0)
        sc = _scenario(f"mm1-{rho}", _until(k * n, rho), {"app": {"to": "q", "rate": rho}},
                       {"q": {}}, {"w": {"from": "q", "rate": 1.0}})
        checks = _station_checks("q", "w", m, EXACT)
        checks.append(Check("latency mean (W)", at("latency.mean"), m.sojourn_mean, m.model))
        out.append(Case(f"M/M/1 rho={rho}", "M/M/1", sc, checks))

    # Percentiles of M/M/1 (FIFO): the sojourn is exponential(mu - lambda).
    m = theory.mm1(0.8, 1.0)
    sc = _scenario("mm1-quantiles", _until(3 * n, 0.8), {"app": {"to": "q", "rate": 0.8}},
                   {"q": {}}, {"w": {"from": "q", "rate": 1.0}})
    out.append(Case("M/M/1 percentiles rho=0.8", "M/M/1", sc, [
        Check("latency p50", at("latency.p50"), theory.mm1_sojourn_quantile(0.8, 1, 0.5),
              "M/M/1 sojourn quantile"),
        Check("latency p95", at("latency.p95"), theory.mm1_sojourn_quantile(0.8, 1, 0.95),
              "M/M/1 sojourn quantile"),
        Check("q wait_p95", at("queues.q.wait_p95"), theory.mm1_wait_quantile(0.8, 1, 0.95),
              "M/M/1 wait quantile"),
    ]))

    # MSER-5 warm-up on an M/M/1 that starts empty.
    sc = _scenario("mm1-auto-warmup", _until(2 * n, 0.8), {"app": {"to": "q", "rate": 0.8}},
                   {"q": {}}, {"w": {"from": "q", "rate": 1.0}}, warmup="auto")
    out.append(Case("M/M/1 warmup: auto (MSER-5)", "statistics", sc,
                    _station_checks("q", "w", m, EXACT, little=False)))

    # M/M/c (Erlang C).
    for c, rho in ((2, 0.8), (5, 0.8), (10, 0.9)):
        lam = rho * c
        m = theory.mmc(lam, 1.0, c)
        sc = _scenario(f"mmc-{c}", _until(2 * n * (2 if rho > 0.85 else 1), lam),
                       {"app": {"to": "q", "rate": lam}}, {"q": {}},
                       {"w": {"from": "q", "count": c, "rate": 1.0}})
        out.append(Case(f"M/M/{c} rho={rho}", "M/M/c", sc, _station_checks("q", "w", m, EXACT)))

    # M/D/1 and M/G/1 (Pollaczek-Khinchine).
    m = theory.md1(0.8, 1.0)
    sc = _scenario("md1", _until(2 * n, 0.8), {"app": {"to": "q", "rate": 0.8}}, {"q": {}},
                   {"w": {"from": "q", "service": "constant(1.0)"}})
    out.append(Case("M/D/1 rho=0.8", "M/G/1", sc, _station_checks("q", "w", m, EXACT)))
    m = theory.mg1(0.7, 1.0, 4.0)
    sc = _scenario("mg1-h2", _until(8 * n, 0.7), {"app": {"to": "q", "rate": 0.7}}, {"q": {}},
                   {"w": {"from": "q", "service": "hyperexponential(mean=1.0, cv=2.0)"}})
    out.append(Case("M/H2/1 cv=2 rho=0.7", "M/G/1", sc, _station_checks("q", "w", m, EXACT)))
    m = theory.mg1(0.8, 1.0, 0.25)
    sc = _scenario("me4-1", _until(2 * n, 0.8), {"app": {"to": "q", "rate": 0.8}}, {"q": {}},
                   {"w": {"from": "q", "service": "erlang(k=4, mean=1.0)"}})
    out.append(Case("M/E4/1 rho=0.8", "M/G/1", sc, _station_checks("q", "w", m, EXACT)))

    # Finite buffers: M/M/1/K, M/M/c/K, drop-oldest, Erlang B.
    m = theory.mmck(0.9, 1.0, 1, 5)
    sc = _scenario("mm1k", _until(n, 0.9), {"app": {"to": "q", "rate": 0.9}},
                   {"q": {"capacity": 4}}, {"w": {"from": "q", "rate": 1.0}})
    out.append(Case("M/M/1/K K=5 rho=0.9", "blocking", sc, [
        *_station_checks("q", "w", m, EXACT),
        Check("q drop fraction", _drop_fraction("q"), m.p_block, m.model),
    ]))
    sc = _scenario("mm1k-oldest", _until(n, 0.9), {"app": {"to": "q", "rate": 0.9}},
                   {"q": {"capacity": 4, "overflow": "drop-oldest"}},
                   {"w": {"from": "q", "rate": 1.0}})
    out.append(Case("M/M/1/K drop-oldest", "blocking", sc, [
        Check("q length_mean (Lq)", at("queues.q.length_mean"), m.length_mean, m.model),
        Check("q drop fraction", _drop_fraction("q"), m.p_block, m.model),
    ]))
    m = theory.mmck(3.6, 1.0, 3, 8)
    sc = _scenario("mmck", _until(n, 3.6), {"app": {"to": "q", "rate": 3.6}},
                   {"q": {"capacity": 5}}, {"w": {"from": "q", "count": 3, "rate": 1.0}})
    out.append(Case("M/M/3/K K=8 overloaded (rho=1.2)", "blocking", sc, [
        *_station_checks("q", "w", m, EXACT),
        Check("q drop fraction", _drop_fraction("q"), m.p_block, m.model),
    ]))
    for c, a, service in ((5, 4.0, "exponential(mean=1.0)"),
                          (10, 8.0, "lognormal(mean=1.0, cv=2.0)")):
        m = theory.mmcc(a, 1.0, c)
        sc = _scenario(f"erlang-b-{c}", _until(n, a), {"app": {"to": "q", "rate": a}},
                       {"q": {"capacity": 0}},
                       {"w": {"from": "q", "count": c, "service": service}})
        label = "exponential" if service.startswith("exp") else "lognormal cv=2 (insensitivity)"
        out.append(Case(f"Erlang B c={c} a={a:g}, {label}", "loss", sc, [
            Check("q drop fraction", _drop_fraction("q"), m.p_block, "Erlang B"),
            Check("w utilization", at("consumers.w.utilization"), m.utilization, "Erlang B"),
        ]))

    # Jackson networks: a tandem, a merge, multi-server stages.
    net = theory.jackson([0.8, 0, 0], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [2.0, 1.0, 1.6])
    sc = _scenario("tandem", _until(3 * n, 0.8), {"app": {"to": "a", "rate": 0.8}},
                   {"a": {}, "b": {}, "c": {}},
                   {"ga": {"from": "a", "rate": 2.0, "to": "b"},
                    "gb": {"from": "b", "rate": 1.0, "to": "c"},
                    "gc": {"from": "c", "rate": 1.6}})
    out.append(_jackson_case("Jackson tandem, 3 x M/M/1", sc, net,
                             "latency mean (sum of sojourns)"))

    net = theory.jackson([0.5, 0.7, 0], [[0, 0, 1], [0, 0, 1], [0, 0, 0]], [1.0, 1.0, 1.5])
    sc = _scenario("merge", _until(2 * n, 1.2),
                   {"p1": {"to": "a", "rate": 0.5}, "p2": {"to": "b", "rate": 0.7}},
                   {"a": {}, "b": {}, "c": {}},
                   {"ga": {"from": "a", "rate": 1.0, "to": "c"},
                    "gb": {"from": "b", "rate": 1.0, "to": "c"},
                    "gc": {"from": "c", "rate": 1.5}})
    out.append(_jackson_case("Jackson merge: 2 stations into 1", sc, net, "latency mean"))

    # Feedback: a message leaving b returns to a with probability 0.4 (a retry loop);
    # still product form, each node an M/M/c at its rate from lambda = gamma + P^T lambda.
    net = theory.jackson([1.0, 0], [[0, 0.7], [0.4, 0]], [2.0, 1.5])
    sc = _scenario("feedback", _until(3 * n, 1.0), {"app": {"to": "a", "rate": 1.0}},
                   {"a": {}, "b": {}},
                   {"ga": {"from": "a", "rate": 2.0, "to": {"b": 0.7, "exit": 0.3}},
                    "gb": {"from": "b", "rate": 1.5, "to": {"a": 0.4, "exit": 0.6}}})
    checks = []
    for q, node in zip("ab", net.nodes, strict=True):
        checks += _station_checks(q, f"g{q}", node, EXACT)
    checks.append(Check("latency mean (all visits)", at("latency.mean"), net.sojourn_mean,
                        "Jackson"))
    out.append(Case("Jackson with feedback (retry loop)", "Jackson", sc, checks))

    net = theory.jackson([3.2, 0], [[0, 1], [0, 0]], [1.0, 1.25], [4, 3])
    sc = _scenario("tandem-mmc", _until(2 * n, 3.2), {"app": {"to": "a", "rate": 3.2}},
                   {"a": {}, "b": {}},
                   {"ga": {"from": "a", "count": 4, "rate": 1.0, "to": "b"},
                    "gb": {"from": "b", "count": 3, "rate": 1.25}})
    checks = []
    for q, node in zip("ab", net.nodes, strict=True):
        checks += _station_checks(q, f"g{q}", node, EXACT)
    checks.append(Check("latency mean", at("latency.mean"), net.sojourn_mean, "Jackson"))
    out.append(Case("Jackson tandem M/M/4 -> M/M/3", "Jackson", sc, checks))

    # Overload: the queue grows at lambda - c*mu; throughput is c*mu.
    for lam, c in ((1.2, 1), (4.0, 3)):
        m = theory.mmc(lam, 1.0, c)
        sc = _scenario(f"overload-{c}", _until(n / 2, lam), {"app": {"to": "q", "rate": lam}},
                       {"q": {}}, {"w": {"from": "q", "count": c, "rate": 1.0}}, warmup=0.0)
        out.append(Case(f"overload M/M/{c} lambda={lam:g}", "overload", sc, [
            Check("q growth_rate", at("queues.q.growth_rate"), m.growth_rate, "λ − cμ"),
            Check("throughput", at("throughput"), m.throughput, "cμ"),
        ]))
    net = theory.jackson([1.5, 0], [[0, 1], [0, 0]], [1.0, 2.0])
    sc = _scenario("overload-tandem", _until(n / 2, 1.5), {"app": {"to": "a", "rate": 1.5}},
                   {"a": {}, "b": {}},
                   {"ga": {"from": "a", "rate": 1.0, "to": "b"}, "gb": {"from": "b", "rate": 2.0}},
                   warmup=0.0)
    out.append(Case("overloaded tandem: the bottleneck caps downstream", "overload", sc, [
        Check("a growth_rate", at("queues.a.growth_rate"), net.nodes[0].growth_rate, "λ − cμ"),
        Check("throughput", at("throughput"), net.throughput, "min(λ, cμ)"),
        Check("b Wq (M/M/1 at λ = 1)", at("queues.b.wait_mean"), theory.mm1(1.0, 2.0).wait_mean,
              "M/M/1 at the capped rate"),
    ]))

    # Links: serialization is an M/D/1 on Poisson arrivals; loss thins; random latency
    # (infinite bandwidth) keeps a Poisson stream Poisson.
    lam, size, bw, prop = 8.0, 100_000, 1.0e6, 0.04
    ser = theory.md1(lam, bw / size)
    m = theory.mm1(lam, 40.0)
    sc = _scenario("link-md1", _until(2 * n, lam),
                   {"app": {"to": "q", "rate": lam, "size": f"constant({size})"}}, {"q": {}},
                   {"w": {"from": "q", "rate": 40.0}},
                   {"app->q": {"latency": f"constant({prop})", "bandwidth": bw}})
    out.append(Case("link: M/D/1 serialization + propagation", "links", sc, [
        Check("link delay_mean", at("links.app->q.delay_mean"), ser.sojourn_mean + prop,
              "M/D/1 + propagation"),
        Check("link utilization", at("links.app->q.utilization"), ser.utilization, "M/D/1"),
    ]))
    p = 0.2
    m = theory.mm1(0.8 * (1 - p) / 1.0, 1.0)
    sc = _scenario("link-loss", _until(2 * n, 0.8), {"app": {"to": "q", "rate": 0.8}}, {"q": {}},
                   {"w": {"from": "q", "rate": 1.0}}, {"app->q": {"loss": p}})
    out.append(Case("lossy link: thinned Poisson into M/M/1", "links", sc, [
        *_station_checks("q", "w", m, EXACT),
        Check("lost fraction", _lost_fraction("app->q"), p, "Bernoulli loss"),
    ]))
    m = theory.mm1(0.8, 1.0)
    sc = _scenario("link-random-latency", _until(2 * n, 0.8), {"app": {"to": "q", "rate": 0.8}},
                   {"q": {}}, {"w": {"from": "q", "rate": 1.0}},
                   {"app->q": {"latency": "exponential(mean=2.0)"}})
    out.append(Case("random latency: M/G/inf keeps Poisson", "links", sc, [
        *_station_checks("q", "w", m, EXACT),
        Check("latency mean", at("latency.mean"), m.sojourn_mean + 2.0, "M/M/1 + delay"),
    ]))

    # Approximations: Kingman (G/G/1) and Allen-Cunneen (G/G/c).
    m = theory.gg1_kingman(0.8, 0.5, 1.0, 0.5)
    sc = _scenario("e2-e2-1", _until(2 * n, 0.8),
                   {"app": {"to": "q", "interarrival": "erlang(k=2, mean=1.25)"}}, {"q": {}},
                   {"w": {"from": "q", "service": "erlang(k=2, mean=1.0)"}})
    out.append(Case("E2/E2/1 rho=0.8 (Kingman)", "approximate", sc,
                    _station_checks("q", "w", m, APPROX)))
    m = theory.ggc_allen_cunneen(2.4, 1.0, 1.0, 0.0, 3)
    sc = _scenario("md3", _until(2 * n, 2.4), {"app": {"to": "q", "rate": 2.4}}, {"q": {}},
                   {"w": {"from": "q", "count": 3, "service": "constant(1.0)"}})
    out.append(Case("M/D/3 rho=0.8 (Allen-Cunneen)", "approximate", sc,
                    _station_checks("q", "w", m, APPROX)))
    out.extend(_pattern_cases(n))
    return out


def _pattern_cases(n: float) -> list[Case]:
    """Messaging patterns whose theory is exact: synchronous clients are a closed network
    (MVA), priority classes on one worker follow Cobham, random-key partitions are
    independent M/M/1 queues."""
    out: list[Case] = []
    # N synchronous clients, think time 2 s, on 2 exponential workers (mean 0.5 s).
    for clients in (1, 5, 20):
        m = theory.mva(clients, [0.5], think=2.0, servers=[2])
        sc = _scenario(f"sync-{clients}", _until(n / 2, m.throughput),
                       {"app": {"to": "q", "mode": "sync", "clients": clients,
                                "think": "exponential(mean=2.0)"}},
                       {"q": {}}, {"w": {"from": "q", "count": 2, "rate": 2.0}})
        out.append(Case(f"sync clients N={clients} on M/M/2 (MVA)", "patterns", sc, [
            Check("throughput X(N)", at("throughput"), m.throughput, m.model),
            Check("response time R(N)", at("latency.mean"), m.response_time, m.model),
        ]))
    # Two Poisson classes on one exponential worker, non-preemptive priorities.
    pm = theory.priority_mg1([0.3, 0.5], [1.0, 1.0], [1.0, 1.0])
    sc = _scenario("cobham", _until(2 * n, 0.8),
                   {"high": {"to": "q", "rate": 0.3, "priority": 1},
                    "low": {"to": "q", "rate": 0.5, "priority": 0}},
                   {"q": {"discipline": "priority"}}, {"w": {"from": "q", "rate": 1.0}})
    out.append(Case("two priority classes on M/M/1 (Cobham)", "patterns", sc, [
        Check(f"{cls} class wait_mean", at(f"producers.{cls}.wait_mean"), w,
              "M/G/1 non-preemptive priority (Cobham)")
        for cls, w in (("high", pm.wait_means[0]), ("low", pm.wait_means[1]))
    ]))
    # Four partitions fed by uniformly random keys: each an M/M/1 at lambda / 4.
    mm = theory.mm1(0.6, 1.0)
    sc = _scenario("partitions", _until(n, 2.4), {"app": {"to": "log", "rate": 2.4}}, {},
                   {"w": {"from": "log", "count": 4, "rate": 1.0}})
    sc["topics"] = {"log": {"partitions": 4, "key": "uniform"}}
    out.append(Case("4 random-key partitions = 4 x M/M/1", "patterns", sc, [
        Check(f"log[{p}] wait_mean", at(f"queues.log[{p}].wait_mean"), mm.wait_mean, mm.model)
        for p in range(4)
    ]))
    return out
