"""Acks, failures and retries, dead letters, TTL, duplicates and crashes: theory and
accounting (docs/reliability.md)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_agrees, one_queue, override
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simq
from simq import theory
from simq.engine import Simulation
from simq.engine.recorder import ATTEMPT, CRASH, DELIVERED, DUPLICATE, EVENTS, OUTAGE_LOST
from simq.engine.retry import Backoff
from simq.model.network import flows
from simq.record.summary import summarise
from simq.run import seed_for

MODELS = Path(__file__).resolve().parent.parent / "models"


def _retrying(p: float, until: float = 20000, **consumer: Any) -> dict[str, Any]:
    return one_queue(0.5, None, consumer={"rate": 1.0, "ack": "manual", "failure": p,
                                          **consumer}, until=until, warmup=1000, seed=5)


def test_failures_with_unlimited_retries_are_jackson_feedback() -> None:
    # A failed message goes back to the tail at once: Bernoulli feedback, so the consumer
    # sees lambda / (1 - p) and each visit waits as in M/M/1 at that rate (product form);
    # a message makes 1 / (1 - p) visits.
    p, lam = 0.3, 0.5
    res = simq.run(_retrying(p), replications=6)
    s = res.summary
    span = s["window"][1] - s["window"][0]
    eff = lam / (1 - p)
    assert_agrees(res, "consumers.w.attempts", eff, scale=span)
    node = theory.mmc(lam=eff, mu=1.0, c=1)
    assert_agrees(res, "queues.q.wait_mean", node.wait_mean)
    net = theory.jackson([lam], [[p]], [1.0])
    assert_agrees(res, "latency.mean", net.sojourn_mean)
    m = s["messages"]
    assert m["dead_lettered"] == 0 and m["lost"] == 0 and m["duplicates"] == 0
    # On paper, the nominal rates solve the same traffic equation.
    assert flows(simq.load(_retrying(p))).queues["q"].arrival_rate == pytest.approx(eff)
    # With max attempts k a message makes (1 - p^k) / (1 - p) visits.
    f = flows(simq.load(_retrying(p, max_attempts=3))).queues["q"].arrival_rate
    assert f == pytest.approx(lam * (1 - p**3) / (1 - p))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dead_letter_fraction_is_p_to_the_k(k: int) -> None:
    # Each attempt fails independently with p: a message is dead-lettered after k failures,
    # with probability p^k. Counts are binomial; the tolerance is 4 standard errors of the
    # pooled fraction (n ~ 4 x 9500 messages), well beyond the ci95.
    p = 0.4
    sc = _retrying(p, max_attempts=k)
    sc["queues"] = {"q": {"dead_letter": "dlq"}, "dlq": {}}
    res = simq.run(sc, replications=4)
    m = res.summary["messages"]
    frac = m["dead_lettered"] / m["produced"]
    se = math.sqrt(p**k * (1 - p**k) / (4 * m["produced"]))
    assert abs(frac - p**k) <= 4 * se
    assert res.summary["queues"]["q"]["dead_lettered"] > 0


def _mm1_d(lam: float, mu: float, tau: float) -> float:
    """M/M/1+D: the fraction of messages whose wait reaches a constant patience tau
    (Baccelli, Boyer & Hébuterne 1984)."""
    rho, e = lam / mu, math.exp(-(mu - lam) * tau)
    return (1 - rho) * rho * e / (1 - rho**2 * e)


@pytest.mark.parametrize("expiry", ["head", "anywhere"])
def test_ttl_expired_fraction_matches_mm1_plus_d(expiry: str) -> None:
    # The closed form of M/M/1+D (reference: exact, not simulated). With one FIFO server an
    # expired message does no work whether it leaves at its deadline or at the head, so
    # both expiry modes lose the same fraction.
    lam, mu, tau = 0.9, 1.0, 2.0
    sc = {"run": {"until": 40000, "warmup": 2000},
          "producers": {"app": {"to": "q", "rate": lam}},
          "queues": {"q": {"ttl": tau, "expiry": expiry}},
          "consumers": {"w": {"from": "q", "rate": mu}}}
    res = simq.run(sc, seed=2, replications=4)
    want = _mm1_d(lam, mu, tau)
    assert_agrees(res, "messages.expired", want, scale=res.summary["messages"]["produced"])
    wait = res.messages
    served = wait[wait["outcome"] == "delivered"]
    assert (served["q.start"] - served["q.arrived"] <= tau + 1e-9).all()


def test_expiry_anywhere_keeps_the_line_shorter_than_at_the_head() -> None:
    sc = {"run": {"until": 20000, "warmup": 1000},
          "producers": {"app": {"to": "q", "rate": 0.95}},
          "queues": {"q": {"ttl": 2.0}},
          "consumers": {"w": {"from": "q", "rate": 1.0}}}
    head = simq.run(sc, seed=3).summary
    sc["queues"]["q"]["expiry"] = "anywhere"
    anywhere = simq.run(sc, seed=3).summary
    assert anywhere["queues"]["q"]["length_mean"] < head["queues"]["q"]["length_mean"]
    # Same streams, same work: the same messages expire.
    assert anywhere["messages"]["expired"] == head["messages"]["expired"]


def test_per_message_ttl_expires_and_dead_letters_to_a_consumed_dlq() -> None:
    sc = {"run": {"until": 3000, "warmup": 0},
          "producers": {"app": {"to": "q", "rate": 1.2, "ttl": 3.0}},
          "queues": {"q": {"dead_letter": "dlq"}, "dlq": {}},
          "consumers": {"w": {"from": "q", "rate": 1.0},
                        "archiver": {"from": "dlq", "rate": 50.0}}}
    s = simq.run(sc, seed=1).summary
    m = s["messages"]
    # Overloaded: many expire; the DLQ has consumers, so they are delivered there.
    assert s["queues"]["q"]["dead_lettered"] > 100
    assert m["expired"] == 0 and m["dead_lettered"] == 0
    assert s["consumers"]["archiver"]["throughput"] > 0


def _crashy(ack: str, dedup: bool = False, vis: float | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"from": "q", "count": 2, "rate": 1.0, "ack": ack,
                         "crashes": {"mtbf": "exponential(mean=30)",
                                     "mttr": "exponential(mean=3)"}}
    if dedup:
        c["dedup"] = True
    if vis is not None:
        c["visibility_timeout"] = vis
    return {"run": {"until": 4000, "warmup": 0},
            "producers": {"app": {"to": "q", "rate": 1.2}},
            "queues": {"q": {}}, "consumers": {"w": c}}


def _replicate(sc: dict[str, Any], seed: int = 1) -> tuple[Simulation, Any, dict[str, Any]]:
    scen = simq.load(sc)
    sim = Simulation(scen, seed_for(seed, 0))
    out = sim.run()
    rec = sim.rec.arrays(out.t_end)
    return sim, rec, summarise(rec, scen, out, 0.0)


def test_at_most_once_loses_in_hand_messages_and_never_duplicates() -> None:
    sim, rec, s = _replicate(_crashy("auto"))
    m = s["messages"]
    assert m["duplicates"] == 0 and m["redelivered"] == 0
    crashes_in_hand = int(((rec.events["kind"] == CRASH) & (rec.events["id"] >= 0)).sum())
    assert crashes_in_hand > 10
    assert m["lost"] == crashes_in_hand  # each message in hand at a crash is gone


def test_at_least_once_never_loses_and_duplicates_are_the_crashed_messages() -> None:
    sim, rec, s = _replicate(_crashy("manual"))
    m = s["messages"]
    assert m["lost"] == 0 and m["dropped"] == 0
    e = rec.events
    crashed = set(e["id"][(e["kind"] == CRASH) & (e["id"] >= 0)].tolist())
    assert len(crashed) > 10
    delivered = set(np.flatnonzero(rec.outcome == DELIVERED).tolist())
    # A message in hand at a crash was processed (maybe partly, with its effects); when it
    # is redelivered and processed again, that is a duplicate, counted once per message.
    assert m["duplicates"] == len(crashed & delivered)
    assert set(e["id"][e["kind"] == DUPLICATE].tolist()) == crashed & delivered
    assert s["consumers"]["w"]["crashes"] > 10


def test_dedup_consumer_discards_the_visibility_timeout_copies() -> None:
    # Service is exponential with mean 1 and the visibility timeout 1.5: about 22% of the
    # processings outlive it, so the broker hands a second copy to the other worker.
    plain = _replicate(_crashy("manual", vis=1.5))[2]
    dedup = _replicate(_crashy("manual", dedup=True, vis=1.5))[2]
    assert plain["messages"]["duplicates"] > 50
    assert dedup["messages"]["duplicates"] == 0
    assert dedup["consumers"]["w"]["discarded"] > 50
    for s in (plain, dedup):
        assert s["messages"]["lost"] == 0


def test_attempts_column_counts_every_start() -> None:
    sim, rec, s = _replicate(_retrying(0.5, until=2000))
    res = simq.run(_retrying(0.5, until=2000), seed=1)
    msgs = res.messages
    assert int(msgs["attempts"].sum()) == int((rec.events["kind"] == ATTEMPT).sum())
    done = msgs[msgs["outcome"] == "delivered"]
    assert (done["attempts"] == done["redeliveries"] + 1).all()
    assert done["attempts"].max() > 3


@pytest.mark.parametrize("policy", ["fixed", "exponential", "full-jitter", "equal-jitter",
                                    "decorrelated"])
def test_backoff_policies_stay_within_their_bounds(policy: str) -> None:
    rng = np.random.default_rng(0)
    b = Backoff(policy, 0.1, 2.0, 5.0, lambda: float(rng.random()))
    prev = 0.0
    for n in range(1, 30):
        d = b.delay(n, prev)
        grown = min(5.0, 0.1 * 2.0 ** (n - 1))
        assert 0.0 <= d <= 5.0
        if policy == "fixed":
            assert d == 0.1
        elif policy == "exponential":
            assert d == pytest.approx(grown)
        elif policy == "full-jitter":
            assert d <= grown
        elif policy == "equal-jitter":
            assert grown / 2 <= d <= grown
        else:
            assert 0.1 <= d <= min(5.0, 3 * max(prev, 0.1))
        prev = d


def test_backoff_delays_the_retry() -> None:
    # With a 5 s fixed back-off each failure adds 5 s to the message's latency.
    fast = simq.run(_retrying(0.3, until=5000), seed=1).summary["latency"]["mean"]
    sc = _retrying(0.3, until=5000, backoff={"policy": "fixed", "delay": 5.0})
    slow = simq.run(sc, seed=1).summary["latency"]["mean"]
    # 0.3 / 0.7 failures per message on average: about +2.1 s.
    assert slow - fast == pytest.approx(5.0 * 0.3 / 0.7, rel=0.25)


def test_scheduled_crash_shows_in_the_worker_time_series() -> None:
    sc = _retrying(0.0, until=200)
    sc["run"]["warmup"] = 0
    sc["consumers"]["w"]["crashes"] = {"at": [[50, 20], [120, 10]]}
    sc["consumers"]["w"]["count"] = 2
    res = simq.run(sc, seed=1)
    ts = res.timeseries
    workers = ts["consumer.w.workers"].to_numpy()
    t = ts["time"].to_numpy()
    assert (workers[(t > 51) & (t < 69)] == 0).all()
    assert (workers[(t > 71) & (t < 119)] == 2).all()
    assert (workers[(t > 121) & (t < 129)] == 0).all()
    assert res.summary["consumers"]["w"]["crashes"] == 4


def test_a_crash_of_chosen_members_leaves_the_others_serving() -> None:
    # Overloaded (the line never empties), 3 workers at mu = 1: while one of them is down
    # the other two serve on, 2 msg/s (the capacity of the members still up).
    mu, count, down = 1.0, 3, 1
    sc = one_queue(5.0, f"exponential(rate={mu:g})", count=count, until=400, warmup=100,
                   seed=3, consumer={"crashes": {"at": [[100, 1000]], "workers": down}},
                   overrides={"run.replications": 8})
    res = simq.run(sc)
    g = res.summary["consumers"]["w"]
    assert g["crashes"] == down  # one crash in each replication
    assert g["worker_seconds"] == pytest.approx((count - down) * 300)
    assert_agrees(res, "consumers.w.throughput", (count - down) * mu)
    workers = res.timeseries["consumer.w.workers"].to_numpy()
    t = res.timeseries["time"].to_numpy()
    assert (workers[t < 99] == count).all() and (workers[t > 101] == count - down).all()


def test_scheduled_crashes_hit_the_oldest_members_of_a_scaled_group() -> None:
    # Two members, a third from 50 s, one partition each (without a rebalance protocol
    # partition p goes to member p mod n at once, and a crashed member keeps its own).
    # At 100 s `workers: 2` crashes the two oldest: partitions 0 and 1 wait, 2 is served.
    sc = {"run": {"until": 200, "seed": 1},
          "producers": {"app": {"to": "t", "rate": 3.0}},
          "topics": {"t": {"partitions": 3, "key": "uniform"}},
          "consumers": {"w": {"from": "t", "count": 2, "service": "exponential(rate=2)",
                              "schedule": [[0, 2], [50, 3]],
                              "crashes": {"at": [[100, 30]], "workers": 2}}}}
    res = simq.run(sc)
    v = res.visits
    taken = {p: v[v["queue"] == f"t[{p}]"]["start"].dropna().to_numpy() for p in range(3)}
    during = {p: int(((x > 100) & (x < 130)).sum()) for p, x in taken.items()}
    assert during[0] == during[1] == 0 and during[2] > 10
    assert res.summary["consumers"]["w"]["crashes"] == 2
    # `workers: 3` crashes all three (the group is that big then).
    again = simq.run(override(sc, {"consumers.w.crashes.workers": 3}))
    assert again.summary["consumers"]["w"]["crashes"] == 3


def test_every_message_ends_once() -> None:
    sc = _crashy("manual", vis=1.5)
    sc["consumers"]["w"].update({"failure": 0.2, "max_attempts": 3})
    sc["queues"]["q"] = {"ttl": 6.0, "dead_letter": "dlq"}
    sc["queues"]["dlq"] = {}
    sim, rec, s = _replicate(sc)
    ids = [f[0] for f in sim.rec.finished]
    assert len(ids) == len(set(ids))
    kinds = Counter(EVENTS[int(k)] for k in rec.events["kind"])
    assert kinds["dead_letter"] > 0 and kinds["duplicate"] > 0 and kinds["crash"] > 0


def test_blocking_backpressure_never_drops_and_bounds_the_queue() -> None:
    sc = {"run": {"until": 3000},
          "producers": {"app": {"to": "q", "rate": 1.5}},
          "queues": {"q": {"capacity": 5, "overflow": "block"}},
          "consumers": {"w": {"from": "q", "rate": 1.0}}}
    res = simq.run(sc, seed=1)
    s = res.summary
    assert s["messages"]["dropped"] == 0
    assert s["queues"]["q"]["length_max"] <= 5
    assert res.timeseries["queue.q.length"].max() <= 5


@pytest.mark.parametrize("bad, path", [
    ({"queues": {"broker": {"dead_letter": "nowhere"}}}, "queues.broker.dead_letter"),
    ({"queues": {"broker": {"dead_letter": "broker"}}}, "queues.broker.dead_letter"),
    ({"queues": {"broker": {"expiry": "anywhere"}}}, "queues.broker"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0,
                               "visibility_timeout": 3}}}, "consumers.worker"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0, "max_attempts": 3}}},
     "consumers.worker"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0, "ack": "manual",
                               "backoff": {"policy": "linear"}}}},
     "consumers.worker.backoff.policy"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0,
                               "crashes": {"mtbf": "constant(5)"}}}},
     "consumers.worker.crashes"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0, "failure": 1.0}}},
     "consumers.worker.failure"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0, "count": 3, "crashes": {
        "mtbf": "constant(5)", "mttr": "constant(1)", "workers": 1}}}},
     "consumers.worker.crashes"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0, "count": 3,
                               "crashes": {"at": [[5, 1]], "workers": 4}}}},
     "consumers.worker.crashes.workers"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0, "count": 3,
                               "crashes": {"at": [[5, 1]], "workers": 0}}}},
     "consumers.worker.crashes.workers"),
    ({"consumers": {"worker": {"from": "broker", "rate": 2.0, "count": 2, "autoscale": {
        "max": 3, "target_backlog_per_worker": 5}, "crashes": {"at": [[5, 1]], "workers": 4}}}},
     "consumers.worker.crashes.workers"),
    ({"queues": {"broker": {"outages": {"at": [[5, 1]], "workers": 1}}}},
     "queues.broker.outages.workers"),
])
def test_bad_reliability_keys_name_their_path(raw: dict[str, Any], bad: dict[str, Any],
                                              path: str) -> None:
    for section, comps in bad.items():
        raw[section].update(comps)
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(raw)
    assert err.value.path == path


def test_a_sync_sender_cannot_meet_failing_consumers(raw: dict[str, Any]) -> None:
    raw["producers"]["app"] = {"to": "broker", "mode": "sync"}
    raw["consumers"]["worker"]["failure"] = 0.1
    with pytest.raises(simq.ScenarioError, match="waits for every reply"):
        simq.load(raw)


@st.composite
def _faulty(draw: st.DrawFn) -> dict[str, Any]:
    """A small scenario with random failures, retry policy, ttl, DLQ and crashes."""
    ack = draw(st.sampled_from(["auto", "manual"]))
    c: dict[str, Any] = {"from": "q", "count": draw(st.integers(1, 3)),
                         "rate": draw(st.floats(0.5, 3.0)), "ack": ack,
                         "failure": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))}
    if draw(st.booleans()):
        c["slow"] = {"workers": 1, "factor": draw(st.floats(0.5, 10.0))}
    if ack == "manual":
        if draw(st.booleans()):
            c["max_attempts"] = draw(st.integers(1, 4))
            c["poison"] = draw(st.sampled_from([0.0, 0.2]))
        if draw(st.booleans()):
            c["backoff"] = {"policy": draw(st.sampled_from(
                ["fixed", "exponential", "full-jitter", "equal-jitter", "decorrelated"])),
                "delay": draw(st.floats(0.0, 5.0)), "cap": draw(st.floats(0.5, 20.0))}
        if draw(st.booleans()):
            c["visibility_timeout"] = draw(st.floats(0.2, 5.0))
        c["dedup"] = draw(st.booleans())
    if draw(st.booleans()):
        c["crashes"] = {"mtbf": f"exponential(mean={draw(st.floats(2.0, 50.0))})",
                        "mttr": f"exponential(mean={draw(st.floats(0.1, 10.0))})"}
    else:
        times = sorted(draw(st.lists(st.floats(0.0, 290.0), max_size=4)))
        if times:
            c["crashes"] = {"at": [[t, draw(st.floats(0.1, 30.0))] for t in times]}
    q: dict[str, Any] = {}
    if draw(st.booleans()):
        q["ttl"] = draw(st.floats(0.5, 20.0))
        q["expiry"] = draw(st.sampled_from(["head", "anywhere"]))
    consumers = {"w": c}
    queues = {"q": q}
    if draw(st.booleans()):
        q["dead_letter"] = "dlq"
        queues["dlq"] = {}
        if draw(st.booleans()):
            consumers["d"] = {"from": "dlq", "rate": 2.0}
    if draw(st.booleans()):
        queues["next"] = {}
        c["to"] = "next"
        consumers["n"] = {"from": "next", "rate": 5.0}
    if draw(st.booleans()):
        q["capacity"] = draw(st.integers(0, 10))
    if draw(st.booleans()):
        q["outages"] = _fault_schedule(draw)
        q["persistent"] = draw(st.booleans())
        q["when_down"] = draw(st.sampled_from(["block", "drop"]))
    if draw(st.booleans()):
        q["durability"] = {"fsync": f"exponential(mean={draw(st.floats(0.001, 0.5))})",
                           "replicas": draw(st.integers(0, 2)),
                           "replication": "constant(0.05)",
                           "acks": draw(st.sampled_from([1, "all"]))}
        if draw(st.booleans()):
            q["durability"]["group_commit"] = {"size": draw(st.integers(1, 20)),
                                               "wait": draw(st.floats(0.0, 1.0))}
    links: dict[str, Any] = {}
    if draw(st.booleans()):
        links["app->q"] = {"latency": "constant(0.05)", "partitions": _fault_schedule(draw),
                           "when_cut": draw(st.sampled_from(["hold", "lose"]))}
    app: dict[str, Any] = {"to": "q", "rate": draw(st.floats(0.2, 4.0))}
    if draw(st.booleans()):
        app["timeout"] = draw(st.floats(0.5, 20.0))
        app["reply"] = "exponential(mean=0.2)"
        app["retry"] = {"max_attempts": draw(st.integers(1, 5)),
                        "backoff": {"policy": draw(st.sampled_from(
                            ["fixed", "exponential", "full-jitter", "equal-jitter",
                             "decorrelated"])), "delay": draw(st.floats(0.0, 3.0))},
                        "budget": draw(st.sampled_from([None, 0.0, 0.1, 1.0]))}
    return {"run": {"until": 300, "seed": draw(st.integers(0, 1000))},
            "producers": {"app": app}, "queues": queues, "consumers": consumers,
            "links": links}


def _fault_schedule(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"mtbf": f"exponential(mean={draw(st.floats(5.0, 100.0))})",
                "mttr": f"exponential(mean={draw(st.floats(0.5, 30.0))})"}
    times = sorted(draw(st.lists(st.floats(0.0, 290.0), min_size=1, max_size=3)))
    return {"at": [[t, draw(st.floats(0.1, 50.0))] for t in times]}


@settings(deadline=None, derandomize=True, database=None, max_examples=40,
          suppress_health_check=[HealthCheck.too_slow])
@given(_faulty())
def test_every_produced_message_has_exactly_one_final_outcome(sc: dict[str, Any]) -> None:
    # summarise raises ConservationError unless produced = delivered + dropped + lost +
    # expired + dead_lettered + in_flight, with in_flight counted from what is found inside.
    sim, rec, s = _replicate(sc)
    ids = [f[0] for f in sim.rec.finished]
    assert len(ids) == len(set(ids))  # decided once
    m = s["messages"]
    assert m["produced"] == sum(m[k] for k in ("delivered", "dropped", "lost", "expired",
                                               "dead_lettered", "deduplicated",
                                               "in_flight"))
    resends = "timeout" in sc["producers"]["app"]
    if sc["consumers"]["w"]["ack"] == "auto":
        assert m["redelivered"] == 0
        assert m["duplicates"] == 0 or resends
    elif not sc["links"] and sc["queues"]["q"].get("persistent", True):
        assert m["lost"] == 0  # at-least-once loses nothing unless the broker or a link does
    if sc["consumers"]["w"].get("dedup") and not resends:
        assert m["duplicates"] == 0


def test_retry_storm_collapses_and_jitter_with_a_budget_survives() -> None:
    # Goodput (acks back in time per second) from 3 replications each: the storm's upper
    # ci95 bound must lie below the tamed system's lower bound, and the tamed one must
    # keep more than half the offered 0.7 msg/s while the storm keeps almost none.
    def run(name: str) -> tuple[float, float, dict[str, Any]]:
        sc = simq.load(MODELS / f"{name}.yaml").with_overrides({"run.until": 3000})
        res = simq.run(sc, replications=3)
        g = res.summary["producers"]["app"]
        return g["goodput"], res.summary["ci95"]["producers"]["app"]["goodput"], res.summary

    storm, storm_ci, s1 = run("retry_storm")
    tamed, tamed_ci, s2 = run("retry_storm_jitter")
    assert storm + storm_ci < tamed - tamed_ci
    assert storm < 0.1 < 0.35 < tamed
    assert s1["queues"]["api"]["length_mean"] > 100 > 10 > s2["queues"]["api"]["length_mean"]
    # The storm's extra load is retries: more sends than first sends, by far.
    assert s1["messages"]["retries"] > s1["messages"]["produced"] / 2
    assert s2["messages"]["retries"] <= 0.1 * s2["messages"]["produced"] + 10


def test_send_retries_are_copies_with_one_outcome_each() -> None:
    sc = {"run": {"until": 2000},
          "producers": {"app": {"to": "q", "rate": 0.8, "timeout": 3.0,
                                "retry": {"max_attempts": 3, "backoff": {
                                    "policy": "decorrelated", "delay": 0.5, "cap": 10}}}},
          "queues": {"q": {"capacity": 4}},
          "consumers": {"w": {"from": "q", "rate": 1.0}}}
    sim, rec, s = _replicate(sc)
    m = s["messages"]
    copies = rec.parent >= 0
    assert m["retries"] == int(copies.sum()) > 0
    # Every copy points at a first send of the same producer.
    assert (rec.parent[copies] < np.flatnonzero(copies)).all()
    assert (rec.parent[rec.parent[copies]] == -1).all()
    assert m["dropped"] > 0  # a bounded queue drops sends; the sender retries them
    p = s["producers"]["app"]
    assert p["gave_up"] > 0 and p["timed_out"] >= p["retries"]


def _outage(persistent: bool, when_down: str = "block") -> dict[str, Any]:
    return {"run": {"until": 3000, "warmup": 0},
            "producers": {"app": {"to": "q", "rate": 2.0}},
            "queues": {"q": {"outages": {"at": [[1000, 200]]}, "persistent": persistent,
                             "when_down": when_down}},
            "consumers": {"w": {"from": "q", "rate": 1.0, "count": 2, "ack": "manual",
                                "crashes": {"at": [[500, 100]]}}}}


def test_an_in_memory_queue_loses_what_waits_at_an_outage_a_persistent_one_keeps_it() -> None:
    # All workers are down over [500, 600) and the load (2/s) equals their capacity, so a
    # backlog of about 200 is still there at 1000, when the outage loses it.
    kept = _replicate(_outage(True))[2]["messages"]
    sim, rec, s = _replicate(_outage(False))
    lost = s["messages"]["lost"]
    e = rec.events
    assert kept["lost"] == 0
    assert lost == int((e["kind"] == OUTAGE_LOST).sum()) > 0
    # The line's length just before the outage, from the visits log.
    v = rec.visits
    left = np.where(np.isnan(v["left"]), np.inf, v["left"])
    before = int(((v["arrived"] < 1000) & (left >= 1000)).sum())
    assert lost == before


def test_senders_are_held_or_turned_away_while_the_broker_is_down() -> None:
    held = _replicate(_outage(True, "block"))[2]
    assert held["messages"]["dropped"] == 0
    dropped = _replicate(_outage(True, "drop"))[2]["messages"]["dropped"]
    # Poisson arrivals at 2/s for 200 s: 400 expected, sd 20; 4 sd either way.
    assert abs(dropped - 400) <= 80


def test_a_partitioned_link_holds_or_loses_what_is_sent_while_cut() -> None:
    sc = {"run": {"until": 3000, "warmup": 0},
          "producers": {"app": {"to": "q", "rate": 1.0}},
          "queues": {"q": {}},
          "consumers": {"w": {"from": "q", "rate": 2.0}},
          "links": {"app->q": {"latency": "constant(0.01)",
                               "partitions": {"at": [[100, 300], [1000, 200]]}}}}
    res = simq.run(sc, seed=1)
    assert res.summary["messages"]["lost"] == 0
    ts = res.timeseries
    t, up = ts["time"].to_numpy(), ts["link.app->q.up"].to_numpy()
    assert (up[(t > 101) & (t < 399)] == 0).all() and (up[(t > 401) & (t < 999)] == 1).all()
    # Held messages arrive when it heals: the queue jumps then.
    assert ts["queue.q.length"][(t > 400) & (t < 420)].max() > 50
    sc["links"]["app->q"]["when_cut"] = "lose"
    lost = simq.run(sc, seed=1).summary["messages"]["lost"]
    # Poisson at 1/s over 500 s cut: 500 expected, sd 22; 4 sd either way.
    assert abs(lost - 500) <= 90


def test_recovery_after_a_consumer_outage_follows_the_fluid_estimate() -> None:
    # All 2 workers (mu = 1 each) down for D = 300 s at lambda = 1.2: the backlog grows to
    # about lambda D = 360 and drains at 2 - 1.2 = 0.8/s, so recovery takes about
    # lambda D / (c mu - lambda) = 450 s. The fluid estimate ignores the few messages
    # waiting before the fault and the randomness of the drain (sd of the time to drain
    # ~ sqrt(360 * 2) / 0.8 ~ 34 s); 20% covers both.
    sc = {"run": {"until": 3000, "warmup": 0},
          "producers": {"app": {"to": "q", "rate": 1.2}},
          "queues": {"q": {}},
          "consumers": {"w": {"from": "q", "rate": 1.0, "count": 2, "ack": "manual",
                              "crashes": {"at": [[1000, 300]]}}}}
    res = simq.run(sc, seed=1, replications=3)
    q = res.summary["queues"]["q"]
    assert q["faults"] == 1 and q["down_time"] == pytest.approx(300)
    assert_agrees(res, "queues.q.recovery_mean", 1.2 * 300 / 0.8, kind="approximate",
                  reason="the fluid estimate ignores the earlier backlog and the drain's noise")


def _durable(d: dict[str, Any], lam: float = 0.6, until: float = 20000) -> dict[str, Any]:
    return one_queue(lam, None, count=2, queue={"durability": d}, consumer={"rate": 5.0},
                     until=until, warmup=1000, seed=None)


def test_an_fsync_per_message_is_an_md1_queue_in_front_of_the_broker() -> None:
    # One disk, constant write time d, Poisson arrivals: M/D/1, so the time from arrival to
    # stored is d + lambda d^2 / (2 (1 - lambda d)) = 1.75 s for lambda = 0.6, d = 1.
    res = simq.run(_durable({"fsync": "constant(1.0)"}), seed=1, replications=3)
    want = 1.0 + 0.6 / (2 * 0.4)
    assert_agrees(res, "breakdown.persist", want)


def test_group_commit_survives_a_load_that_per_message_fsync_cannot() -> None:
    # 2 msg/s against a 1 s fsync: one write per message can store 1 msg/s, so the disk's
    # line grows at 1/s; a group commit of up to 50 stores them all with one write a second.
    per = simq.run(_durable({"fsync": "constant(1.0)"}, lam=2.0, until=3000), seed=1)
    grouped = simq.run(_durable({"fsync": "constant(1.0)", "group_commit": {"size": 50}},
                                lam=2.0, until=3000), seed=1)
    assert per.summary["messages"]["in_flight"] > 1000
    assert grouped.summary["messages"]["in_flight"] < 20
    assert grouped.summary["breakdown"]["persist"] < 2.5


def test_replication_with_acks_all_waits_for_the_slowest_follower() -> None:
    d = {"fsync": "constant(0.01)", "replicas": 3,
         "replication": "uniform(low=0.02, high=0.08)", "acks": "all"}
    s = simq.run(_durable(d, until=5000), seed=1).summary["breakdown"]
    # The max of 3 uniforms on [a, b] has mean a + (b - a) 3/4 = 0.065; the mean over
    # ~3000 messages has sd ~ 0.0002.
    assert s["replicate"] == pytest.approx(0.065, abs=0.002)
    d["acks"] = 1
    assert simq.run(_durable(d, until=5000), seed=1).summary["breakdown"]["replicate"] == 0


@pytest.mark.parametrize("mode", ["block", "credits"])
def test_blocked_time_of_a_backpressured_producer_matches_mm1k(mode: str) -> None:
    # A Poisson producer held up when the line is full is M/M/1/K with blocking: K = 5
    # waiting + 1 at the door + 1 in service = 7 (capacity 5, overflow block), or K = 6
    # not yet taken + 1 in service = 7 (6 credits). It is blocked in state K: P_K, by
    # PASTA the time fraction.
    q: dict[str, Any] = {"capacity": 5, "overflow": "block"} if mode == "block" else {}
    sc = one_queue(1.5, None, producer={"credits": 6} if mode == "credits" else {},
                   queue=q, consumer={"rate": 1.0}, until=5000, warmup=200, seed=None)
    res = simq.run(sc, seed=1, replications=4)
    want = theory.mmck(1.5, 1.0, 1, 7).p_block
    assert_agrees(res, "producers.app.blocked_fraction", want)
    assert res.summary["messages"]["dropped"] == 0
    assert res.summary["queues"]["q"]["length_max"] <= (5 if mode == "block" else 6)


def test_a_dropped_message_gives_its_credit_back(raw: dict[str, Any]) -> None:
    # Three credits in front of a one-place queue that drops: a credit comes back when a
    # message is taken *or* dropped, so the sender keeps its pace (it would stall after
    # three drops otherwise) and only the queue's bound limits what gets through.
    raw["producers"]["app"].update({"credits": 3, "rate": 2.0})
    raw["queues"]["broker"] = {"capacity": 1}
    raw["consumers"]["worker"] = {"from": "broker", "rate": 1.0}
    raw["run"] = {"until": 2000, "seed": 3}
    s = simq.run(raw).summary
    m = s["messages"]
    assert m["dropped"] > 100
    assert s["offered_rate"] > 1.5  # the pace of the sender, not of the consumer
    assert m["produced"] == m["delivered"] + m["dropped"] + m["in_flight"]


def _lost_none(s: dict[str, Any]) -> bool:
    return bool(s["messages"]["lost"] == 0)


@pytest.mark.parametrize("name, check", [
    ("at_least_once", lambda s: _lost_none(s) and s["messages"]["duplicates"] > 0),
    ("retries_dlq",
     lambda s: 0 < s["messages"]["dead_lettered"] < 0.01 * s["messages"]["produced"]),
    ("consumer_crash", lambda s: _lost_none(s) and s["queues"]["jobs"]["faults"] >= 1),
    ("broker_outage", lambda s: _lost_none(s) and s["queues"]["orders"]["faults"] == 2),
    ("durability",
     lambda s: s["breakdown"]["persist"] > 0.004 and s["breakdown"]["replicate"] > 0),
    ("backpressure", lambda s: s["messages"]["dropped"] == 0
     and s["queues"]["jobs"]["length_max"] <= 5
     and s["producers"]["app"]["blocked_fraction"] > 0.2),
])
def test_reliability_models_run_and_show_what_they_teach(name: str, check: Any) -> None:
    sc = simq.load(MODELS / f"{name}.yaml")
    text = (MODELS / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.startswith("#")
    until = min(sc.run.until or 0, 8000)
    s = simq.run(sc.with_overrides({"run.until": until})).summary
    assert check(s)


def test_faulty_runs_are_deterministic() -> None:
    # Same scenario and seed: identical numbers, whatever happened on the way.
    sc = _crashy("manual", vis=1.5)
    sc["consumers"]["w"].update({"failure": 0.2, "max_attempts": 3,
                                 "backoff": {"policy": "decorrelated", "delay": 0.5}})
    sc["queues"]["q"] = {"ttl": 6.0, "outages": {"mtbf": "exponential(mean=300)",
                                                 "mttr": "constant(20)"}}
    sc["run"]["until"] = 1500
    a = simq.run(sc, seed=4, replications=2)
    b = simq.run(sc, seed=4, replications=2)
    assert a.summary == b.summary
    assert a.messages.equals(b.messages)


def test_poison_messages_are_dead_lettered_after_max_attempts() -> None:
    # A share q of messages always fails; the others fail each attempt with p: with k
    # attempts, q + (1 - q) p^k are dead-lettered. Binomial over ~4 x 9500 messages:
    # 4 standard errors.
    q, p, k = 0.05, 0.3, 2
    sc = _retrying(p, max_attempts=k, poison=q)
    res = simq.run(sc, replications=4)
    m = res.summary["messages"]
    want = q + (1 - q) * p**k
    se = math.sqrt(want * (1 - want) / (4 * m["produced"]))
    assert abs(m["dead_lettered"] / m["produced"] - want) <= 4 * se


def test_a_slow_worker_serves_at_its_own_pace() -> None:
    # Saturated (the line never empties), constant service 1 s: a normal worker serves
    # 1 msg/s and one 3 times slower 1/3 msg/s.
    sc = {"run": {"until": 3000, "warmup": 100},
          "producers": {"app": {"to": "q", "rate": 5.0}},
          "queues": {"q": {"capacity": 50}},
          "consumers": {"w": {"from": "q", "count": 2, "service": "constant(1)",
                              "slow": {"workers": 1, "factor": 3}}}}
    s = simq.run(sc, seed=1).summary
    assert s["consumers"]["w"]["throughput"] == pytest.approx(1 + 1 / 3, rel=0.01)


def test_poison_with_manual_acks_needs_max_attempts(raw: dict[str, Any]) -> None:
    raw["consumers"]["worker"].update({"ack": "manual", "poison": 0.01})
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(raw)
    assert err.value.path == "consumers.worker"


def test_the_fault_table_and_the_time_series_around_each_fault() -> None:
    sc = simq.load(MODELS / "broker_outage.yaml").with_overrides({"run.until": 8000})
    res = simq.run(sc)
    f = res.faults
    assert list(f["kind"]) == ["outage", "partition"]
    assert list(f["start"]) == [3000.0, 6000.0] and list(f["end"]) == [3120.0, 6300.0]
    # 4 msg/s held for 300 s drain at 5 - 4 = 1/s: about 1200 s (fluid estimate).
    assert f["recovery"].iloc[1] == pytest.approx(1200, rel=0.25)
    near = res.around_faults(before=100)
    first = near[near["fault"] == 0]
    assert first["since_start"].min() >= -100 and first["since_start"].max() > 120
    assert (first.loc[(first["since_start"] > 1) & (first["since_start"] < 119),
                      "queue.orders.up"] == 0).all()
