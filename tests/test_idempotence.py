"""Idempotent producers and exactly-once: a resend keeps its message's identity, the
broker of an idempotent producer refuses the resends of what it took in, a dedup
consumer recognises them, and every copy is accounted for."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_agrees

import simq
from simq.engine.recorder import DEDUPLICATED, DELIVERED, Records
from simq.engine.simulation import Simulation

# Timeouts shorter than the round trip of the slow messages: many resends; a lossy link
# so that some first sends never reach the broker (their resend is the one taken in).
BASE = """
name: idem
run: {until: 1500, warmup: 100, seed: 3}
producers:
  app:
    to: orders
    rate: 0.5
    timeout: 3.0
    retry: {max_attempts: 3, backoff: {policy: fixed, delay: 0.1}}
    idempotent: true
links:
  app->orders: {latency: constant(0.05), loss: 0.05}
queues:
  orders: {}
consumers:
  worker: {from: orders, rate: 1.0}
"""


def _run(overrides: dict[str, object] | None = None, seed: int = 3) -> simq.RunResult:
    sc = simq.loads(BASE)
    if overrides:
        sc = sc.with_overrides(overrides)
    return simq.run(sc, seed=seed)


def _records(res: simq.RunResult) -> Records:
    rec = res.replications[0].records
    assert rec is not None
    return rec


def _roots(rec: Records) -> np.ndarray:
    return np.where(rec.parent >= 0, rec.parent, np.arange(len(rec.sent)))


def _reached_broker(rec: Records) -> np.ndarray:
    """Ids of the sends that crossed the producer's link (arrived by the end)."""
    h = rec.hops
    return h["id"][h["out"] <= rec.t_end]


def test_idempotent_producer_delivers_no_duplicate_and_refuses_late_resends() -> None:
    res = _run()
    m, d = res.summary["messages"], res.summary["duplicates"]
    assert m["retries"] > 50  # the timeouts do make resends
    assert d["delivered"] == 0
    assert m["duplicates"] == 0
    # Counted again from the records: every send that reached the broker after another
    # send of its message had been taken in (nothing is turned away at this door).
    rec = _records(res)
    arrived = _reached_broker(rec)
    roots = _roots(rec)[arrived]
    expected = len(arrived) - len(np.unique(roots))
    assert expected > 0
    assert d["broker"] == d["discarded"] == expected == m["deduplicated"]
    assert (rec.outcome == DEDUPLICATED).sum() == expected
    assert res.summary["producers"]["app"]["refused"] <= expected
    # Each message (identity) is delivered at most once.
    delivered = _roots(rec)[rec.outcome == DELIVERED]
    assert len(delivered) == len(np.unique(delivered))
    # Conservation, with the refused resends as a term of it.
    assert m["produced"] == sum(m[k] for k in ("delivered", "dropped", "lost", "expired",
                                               "dead_lettered", "deduplicated", "in_flight"))


def test_without_idempotence_resends_are_delivered_and_counted() -> None:
    res = _run({"producers.app.idempotent": False})
    m, d = res.summary["messages"], res.summary["duplicates"]
    assert m["deduplicated"] == 0 and d["discarded"] == 0
    rec = _records(res)
    delivered = _roots(rec)[rec.outcome == DELIVERED]
    extra = len(delivered) - len(np.unique(delivered))
    assert extra > 0
    assert d["delivered"] == extra
    # messages.duplicates counts each message once, however many sends it delivered.
    assert m["duplicates"] == int((np.bincount(delivered) > 1).sum())


def test_consumer_dedup_recognises_producer_resends() -> None:
    res = _run({"producers.app.idempotent": False, "consumers.worker.ack": "manual",
                "consumers.worker.dedup": True})
    m, d = res.summary["messages"], res.summary["duplicates"]
    assert d["delivered"] == 0
    assert d["broker"] == 0 and d["consumer"] > 0
    assert m["deduplicated"] == d["consumer"] == m["discarded"]
    rec = _records(res)
    delivered = _roots(rec)[rec.outcome == DELIVERED]
    assert len(delivered) == len(np.unique(delivered))
    assert res.summary["consumers"]["worker"]["discarded"] <= d["consumer"]


def test_idempotent_produce_and_dedup_on_consume_with_crashes() -> None:
    """Exactly-once to the application: broker refusals and consumer dedup together,
    with workers that crash and redeliver."""
    res = _run({"consumers.worker.ack": "manual", "consumers.worker.dedup": True,
                "consumers.worker.crashes": {"mtbf": "exponential(mean=200)",
                                             "mttr": "constant(5)"}})
    d = res.summary["duplicates"]
    assert d["delivered"] == 0 and d["broker"] > 0
    assert res.summary["consumers"]["worker"]["crashes"] > 0


@pytest.mark.parametrize("overrides", [
    {},
    {"producers.app.idempotent": False},
    {"producers.app.idempotent": False, "consumers.worker.ack": "manual",
     "consumers.worker.dedup": True},
    {"queues.orders.capacity": 3},  # sends turned away at the door are resent and taken
])
def test_record_modes_agree(overrides: dict[str, object]) -> None:
    full = _run(overrides)
    streamed = _run({**overrides, "run.records": "summary"})
    for section in ("messages", "duplicates"):
        assert full.summary[section] == streamed.summary[section]
    assert full.summary["latency"]["mean"] == pytest.approx(streamed.summary["latency"]["mean"])


def test_a_send_turned_away_at_a_full_queue_is_not_taken_in() -> None:
    res = _run({"queues.orders.capacity": 3})
    m, d = res.summary["messages"], res.summary["duplicates"]
    assert m["dropped"] > 0 and d["delivered"] == 0
    rec = _records(res)
    # A refused resend's message was taken in by another send: it was not dropped.
    roots = _roots(rec)
    refused = np.unique(roots[rec.outcome == DEDUPLICATED])
    taken = roots[(rec.outcome != DEDUPLICATED) & (rec.outcome != 1)]  # 1: dropped
    assert np.isin(refused, taken).all()


def test_the_brokers_memory_is_the_producers_sends_in_flight() -> None:
    """The door forgets an identity once its producer stopped waiting and no send of it
    is on its way: what is left at the end is at most the messages still outstanding."""
    sc = simq.loads(BASE).with_overrides({"run.until": 3000})
    sim = Simulation(sc, np.random.SeedSequence(5))
    sim.run()
    tracker = sim.producers["app"].tracker
    assert tracker is not None and tracker.door is not None
    assert len(tracker.door.state) <= tracker.outstanding + sim.links["app->orders"].inside()
    assert tracker.door.refused > 0


def test_an_idempotent_broker_keeps_mm1_and_its_latency() -> None:
    """Refused resends cost the broker nothing: with idempotence the queue stays M/M/1
    (latency 1/(mu - lambda)); without it, every resend is a processing more."""
    model = """
name: idem_mm1
run: {until: 4000, warmup: 400, seed: 11, replications: 8}
producers:
  app: {to: q, rate: 0.5, timeout: 4.0, retry: {max_attempts: 2}, idempotent: true}
queues: {q: {}}
consumers: {w: {from: q, rate: 1.0}}
"""
    sc = simq.loads(model)
    idem = simq.run(sc)
    assert_agrees(idem, "latency.mean", 1 / (1.0 - 0.5))
    # A first send is resent when its sojourn exceeds the timeout: P = e^-(mu-lambda)T.
    assert_agrees(idem, "messages.retries", math.exp(-0.5 * 4.0),
                  per_rep=lambda s: s["messages"]["retries"] / (
                      s["messages"]["produced"] - s["messages"]["retries"]))
    plain = simq.run(sc.with_overrides({"producers.app.idempotent": False}))
    assert plain.summary["latency"]["mean"] > idem.summary["latency"]["mean"]
    assert plain.summary["duplicates"]["delivered"] > 0


def test_idempotent_must_be_a_bool() -> None:
    with pytest.raises(simq.ScenarioError, match="producers.app.idempotent"):
        simq.loads(BASE.replace("idempotent: true", "idempotent: 3"))
