"""The engine against queueing theory, within confidence intervals from replications.

Every check is simq's agreement rule (:func:`simq.analysis.stats.agrees`, applied by
``conftest.assert_agrees``): ``simq.run`` gives, for every number, the mean over R
independent replications and (``summary["ci95"]``) the 95% Student-t half-width; the rule
widens it to the suite's Bonferroni level (99.9% per check) and adds the 1% allowance for
the bias of a finite window (each replication starts empty and is measured over a finite
window; messages still waiting when the run stops are left out of the waits). A check may
also require the interval to be narrow (``precision``) so that it cannot pass by being
vague. Seeds are fixed, so the suite is reproducible; no seed-specific number is pinned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import assert_agrees, at, one_queue, with_link
from conftest import tandem as series
from scipy import stats

import simq
from simq import theory


def agrees(
    res: simq.RunResult, path: str, expected: float, *, allowance: float | None = None,
    reason: str = "", precision: float = 0.2,
    per_rep: Callable[[dict[str, Any]], float] | None = None,
) -> None:
    """The agreement rule at ``path``, after checking that the run layer's mean and 95%
    half-width there are those of the replications."""
    n = len(res.replications)
    assert n >= 3, "a CI needs replications"
    if per_rep is None:
        values = np.array([float(at(r.summary, path)) for r in res.replications])
        assert float(at(res.summary, path)) == pytest.approx(values.mean(), rel=1e-12,
                                                             abs=1e-12)
        assert float(at(res.summary["ci95"], path)) == pytest.approx(
            stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n), rel=1e-9, abs=1e-12)
    assert_agrees(res, path, expected, allowance=allowance, reason=reason,
                  precision=precision, per_rep=per_rep)


def station(lam: float, service: str, *, count: int = 1, capacity: float = math.inf,
            overflow: str = "drop-new", until: float = 20000, warmup: float = 1000,
            seed: int = 7) -> dict[str, Any]:
    return one_queue(lam, service, count=count, until=until, warmup=warmup, seed=seed,
                     queue={"capacity": capacity, "overflow": overflow})


@pytest.mark.parametrize(("rho", "until"), [(0.5, 20000), (0.8, 40000)])
def test_mm1(rho: float, until: float) -> None:
    res = simq.run(station(rho, "exponential(rate=1)", until=until, warmup=2000),
                   replications=10)
    th = theory.mm1(rho, 1.0)
    agrees(res, "queues.q.wait_mean", th.wait_mean)
    agrees(res, "queues.q.length_mean", th.length_mean)
    agrees(res, "latency.mean", th.sojourn_mean)
    agrees(res, "consumers.w.utilization", th.utilization, precision=0.03)
    agrees(res, "throughput", th.throughput, precision=0.03)
    agrees(res, "consumers.w.service_mean", 1.0, precision=0.02)


def test_mmc_three_workers() -> None:
    lam, mu, c = 2.4, 1.0, 3
    res = simq.run(station(lam, "exponential(rate=1)", count=c), replications=10)
    th = theory.mmc(lam, mu, c)
    agrees(res, "queues.q.wait_mean", th.wait_mean)
    agrees(res, "queues.q.length_mean", th.length_mean)
    agrees(res, "latency.mean", th.sojourn_mean)
    agrees(res, "consumers.w.utilization", th.utilization, precision=0.02)
    agrees(res, "throughput", lam, precision=0.02)


def test_md1() -> None:
    res = simq.run(station(0.8, "constant(1.0)"), replications=10)
    th = theory.md1(0.8, 1.0)
    assert th.wait_mean == pytest.approx(2.0)  # half the M/M/1 wait at the same load
    agrees(res, "queues.q.wait_mean", th.wait_mean)
    agrees(res, "queues.q.length_mean", th.length_mean)
    agrees(res, "latency.mean", th.sojourn_mean)


@pytest.mark.parametrize("overflow", ["drop-new", "drop-oldest"])
def test_mm1k_blocking_probability(overflow: str) -> None:
    # capacity is the waiting room, so K = c + capacity. Drop-oldest loses exactly as
    # many messages as drop-new: the number in the system follows the same birth-death
    # chain whichever message is thrown away, so both lose the fraction p_K.
    lam, mu, cap = 0.9, 1.0, 4
    res = simq.run(station(lam, "exponential(rate=1)", capacity=cap, overflow=overflow),
                   replications=10)
    th = theory.mmck(lam, mu, 1, 1 + cap)
    agrees(res, "queues.q.drop_fraction", th.p_block, precision=0.15)
    agrees(res, "throughput", th.throughput, precision=0.02)
    agrees(res, "queues.q.length_mean", th.length_mean, precision=0.1)
    for r in res.replications:
        assert r.summary["queues"]["q"]["length_max"] <= cap
    if overflow == "drop-new":
        # Only admitted messages wait; their mean wait is Lq / carried rate.
        agrees(res, "queues.q.wait_mean", th.wait_mean, precision=0.1)


def test_drop_oldest_loses_exactly_what_drop_new_loses_on_the_same_streams() -> None:
    # Stronger than equal fractions on average: with the same seed both policies see the
    # same arrivals and service draws, and the number present evolves identically, so
    # every replication drops the same count at the same moments.
    runs = {p: simq.run(station(1.0, "exponential(rate=1)", capacity=2, overflow=p,
                                  until=5000), replications=3)
            for p in ("drop-new", "drop-oldest")}
    for new, old in zip(runs["drop-new"].replications, runs["drop-oldest"].replications,
                        strict=True):
        assert new.summary["messages"] == old.summary["messages"]
        assert new.summary["queues"]["q"]["length_mean"] == pytest.approx(
            old.summary["queues"]["q"]["length_mean"], rel=1e-9)
        assert new.summary["messages"]["dropped"] > 0
    # ... but not the same messages: drop-oldest throws away ones that had waited.
    a, b = runs["drop-new"].messages, runs["drop-oldest"].messages
    assert not (a["outcome"] == b["outcome"]).all()


def test_mmcc_is_erlang_b() -> None:
    lam, mu, c = 2.0, 1.0, 3
    res = simq.run(station(lam, "exponential(rate=1)", count=c, capacity=0),
                   replications=10)
    agrees(res, "queues.q.drop_fraction", theory.erlang_b(c, lam / mu), precision=0.1)
    agrees(res, "queues.q.drop_fraction", theory.mmcc(lam, mu, c).p_block, precision=0.1)
    for r in res.replications:
        q = r.summary["queues"]["q"]
        assert q["length_max"] == 0 and q["wait_mean"] == 0.0


@pytest.mark.parametrize("cap", [0, 3])
def test_block_never_drops_and_slows_the_producer(cap: int) -> None:
    # A blocked producer holds one message at the door and draws its next gap only once
    # that message is admitted, so the number of messages present (door included) is the
    # birth-death chain of an M/M/1/(K+1) whose arrivals stop at K+1, none lost: the
    # carried rate is mmck(lam, mu, 1, K + 1).throughput, just below mu in overload.
    lam, mu = 1.5, 1.0
    with pytest.warns(simq.UnstableWarning, match="holds back its senders"):
        res = simq.run(station(lam, "exponential(rate=1)", capacity=cap, overflow="block"),
                       replications=10)
    th = theory.mmck(lam, mu, 1, 1 + cap + 1)
    agrees(res, "throughput", th.throughput, precision=0.04)
    agrees(res, "offered_rate", th.throughput, precision=0.04)
    assert res.summary["offered_rate"] < 0.95 * lam
    for r in res.replications:
        s = r.summary
        assert s["messages"]["dropped"] == 0 and s["queues"]["q"]["dropped"] == 0
        assert s["queues"]["q"]["length_max"] <= cap
        assert s["offered_rate"] <= mu * 1.02


def tandem() -> dict[str, Any]:
    return series(0.8, [2.0, 1.25, 1.6], until=20000, warmup=2000, seed=3)


def test_tandem_is_a_jackson_network() -> None:
    res = simq.run(tandem(), replications=10)
    net = theory.jackson([0.8, 0, 0], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [2.0, 1.25, 1.6])
    for q, node in zip("abc", net.nodes, strict=True):
        agrees(res, f"queues.{q}.wait_mean", node.wait_mean, precision=0.15)
        agrees(res, f"queues.{q}.length_mean", node.length_mean, precision=0.15)
    agrees(res, "latency.mean", net.sojourn_mean)
    agrees(res, "throughput", 0.8, precision=0.02)


def test_overload_grows_at_lambda_minus_mu() -> None:
    sc = station(1.2, "exponential(rate=1)", until=20000, warmup=0)
    with pytest.warns(simq.UnstableWarning, match="grows"):
        res = simq.run(sc, replications=8)
    th = theory.mm1(1.2, 1.0)
    assert th.growth_rate == pytest.approx(0.2)
    # The queue is empty at first, so it grows a little slower until it leaves zero
    # behind for good (a few hundred seconds of 20000): allow 3%.
    agrees(res, "queues.q.growth_rate", th.growth_rate, allowance=0.03, precision=0.25,
           reason="the queue starts empty and grows slower until it leaves zero behind")
    agrees(res, "throughput", 1.0, precision=0.03)


def test_a_bounded_overloaded_queue_is_not_said_to_grow() -> None:
    for overflow in ("drop-new", "block"):
        sc = station(1.5, "exponential(rate=1)", capacity=3, overflow=overflow,
                       until=500, warmup=0)
        with pytest.warns(simq.UnstableWarning) as caught:
            res = simq.run(sc)
        text = " ".join(str(w.message) for w in caught)
        assert "grows" not in text and "fills up" in text
        assert abs(res.summary["queues"]["q"]["growth_rate"]) < 0.05


def test_link_serialization_is_an_md1_queue() -> None:
    # Constant sizes over a finite bandwidth: every message needs size/bandwidth of the
    # serializer, one at a time in arrival order, so the link's sending side is an M/D/1
    # queue with service time s; propagation latency is added afterwards.
    lam, size, bw, lat = 8.0, 100_000, 1.0e6, 0.04
    s = size / bw
    sc = one_queue(lam, "exponential(mean=0.005)", producer={"size": f"constant({size})"},
                   until=3000, warmup=200, seed=5, name="link",
                   links={"app->q": {"latency": f"constant({lat})", "bandwidth": bw}})
    res = simq.run(sc, replications=10)
    th = theory.md1(lam, 1 / s)
    agrees(res, "links.app->q.delay_mean", lat + s + th.wait_mean)
    agrees(res, "links.app->q.utilization", lam * s, precision=0.02)


def test_link_loss_fraction_is_the_loss_probability() -> None:
    p = 0.1
    sc = with_link(station(5.0, "exponential(rate=20)", until=2000, warmup=0), "app->q",
                   loss=p)
    res = simq.run(sc, replications=4)
    lost = sum(r.summary["messages"]["lost"] for r in res.replications)
    n = sum(r.summary["messages"]["produced"] for r in res.replications)
    # Each message is lost independently with probability p: lost ~ Binomial(n, p);
    # a 99.9% normal interval is p ± 3.29 sqrt(p(1-p)/n).
    assert abs(lost / n - p) <= 3.29 * math.sqrt(p * (1 - p) / n)
    for r in res.replications:
        m = r.summary["messages"]
        assert m["delivered"] + m["lost"] + m["in_flight"] == m["produced"]
        assert r.summary["links"]["app->q"]["lost"] == m["lost"]  # no warm-up: same count


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")  # mm1k is offered 1.1 > 1
@pytest.mark.parametrize("case", ["mm1", "mm1k", "mm3", "tandem", "link"])
def test_littles_law_at_every_queue_per_replication(case: str) -> None:
    sc = {
        "mm1": station(0.8, "exponential(rate=1)", until=20000),
        "mm1k": station(1.1, "exponential(rate=1)", capacity=5),
        "mm3": station(2.5, "erlang(k=2, mean=1)", count=3),
        "tandem": tandem(),
        "link": with_link(station(0.7, "uniform(low=0.5, high=1.5)"), "app->q",
                          latency="exponential(mean=0.3)", bandwidth=5000),
    }[case]
    res = simq.run(sc, replications=3)
    for r in res.replications:
        t0, t1 = r.window
        for name, q in r.summary["queues"].items():
            admitted = (q["arrivals"] - q["dropped"]) / (t1 - t0)
            # L and W are estimated from the same window but not from the same messages
            # (time average vs. messages entering it); they differ by the work straddling
            # the window's ends, a few messages' worth out of tens of thousands.
            assert q["length_mean"] == pytest.approx(admitted * q["wait_mean"], rel=0.01,
                                                     abs=1e-3), name


def test_messages_mode_produces_exactly_n_and_drains() -> None:
    sc = {
        "name": "batch",
        "run": {"messages": 3000, "seed": 2},
        "producers": {"a": {"to": "q", "rate": 0.5}, "b": {"to": "q", "rate": 0.3}},
        "queues": {"q": {}, "r": {"capacity": 2}},
        "consumers": {"w": {"from": "q", "count": 2, "rate": 0.6, "to": "r"},
                      "x": {"from": "r", "rate": 1.5}},
        "links": {"w->r": {"latency": "constant(0.5)", "loss": 0.05}},
    }
    res = simq.run(sc, replications=3)
    for r in res.replications:
        m = r.summary["messages"]
        assert m["produced"] == 3000
        assert m["in_flight"] == 0
        assert m["delivered"] + m["dropped"] + m["lost"] == 3000
        assert m["lost"] > 0 and m["delivered"] > 0
        assert r.t_end >= r.window[1]
    msgs = res.messages
    assert len(msgs) == 3 * 3000
    assert msgs.groupby("replication")["id"].nunique().tolist() == [3000] * 3
    assert (msgs["outcome"] != "in_flight").all()


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.9, 0.95])
def test_mm1_heavy_load(rho: float) -> None:
    res = simq.run(station(rho, "exponential(rate=1)", until=400000, warmup=20000),
                   replications=8)
    th = theory.mm1(rho, 1.0)
    # Near saturation the waits are strongly autocorrelated (relaxation time ~ 1/(1-√ρ)²
    # seconds): even 380000 s per replication leave a 99.9% interval of ~20% at ρ=0.95.
    near = "relaxation near saturation leaves more start-up bias than 1%"
    agrees(res, "queues.q.wait_mean", th.wait_mean, allowance=0.02, precision=0.25,
           reason=near)
    agrees(res, "latency.mean", th.sojourn_mean, allowance=0.02, precision=0.25, reason=near)


@pytest.mark.slow
def test_mg1_pollaczek_khinchine_lognormal() -> None:
    # Pollaczek-Khinchine holds for any service law; a heavy-tailed one (lognormal, cv
    # 1.5) makes the waits' mean slow to settle, hence the long run and looser precision.
    res = simq.run(station(0.7, "lognormal(mean=1, cv=1.5)", until=200000, warmup=10000),
                   replications=8)
    th = theory.mg1(0.7, 1.0, 2.25)
    agrees(res, "queues.q.wait_mean", th.wait_mean, allowance=0.02, precision=0.3,
           reason="heavy-tailed service: the mean wait settles slowly")
