"""A broker cluster (docs/cluster.md): leaders and in-sync replicas, failover after
detection and election, what `acks` and `min_insync_replicas` decide, quorum logs, and
per-broker load; checked against their formulas with the agreement rule, in both record
modes."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import assert_agrees, override

import simq

LAM = 3.0  # messages per second to the topic, spread over its partitions

# Three brokers, every partition on all three (leader of t[p] is broker p); broker b0 is
# down from t = 50 for 100 s. Consumers: one per partition, exponential at μ = 2.
BASE: dict[str, Any] = {
    "name": "cluster",
    "run": {"until": 200.0, "seed": 5, "replications": 20},
    "brokers": {"count": 3, "replication_factor": 3, "detection": "exponential(mean=2)",
                "election_time": "exponential(mean=0.5)",
                "outages": {"b0": {"at": [[50, 100]]}}},
    "producers": {"app": {"to": "t", "rate": LAM}},
    "topics": {"t": {"partitions": 3, "key": "uniform"}},
    "consumers": {"g": {"from": "t", "count": 3, "service": "exponential(mean=0.5)"}},
}


def test_failover_takes_detection_plus_election() -> None:
    # Only the partition b0 led is unavailable, for detection + election time (2.5 s on
    # average); the others never stop.
    res = simq.run(BASE)
    assert_agrees(res, "queues.t[0].down_time", 2.5,
                  per_rep=lambda s: s["queues"]["t[0]"]["down_time"])
    for r in res.replications:
        s = r.summary
        assert s["queues"]["t[1]"]["down_time"] == s["queues"]["t[2]"]["down_time"] == 0
        assert s["cluster"]["failovers"] == 1
        assert s["cluster"]["unavailable_time"] == s["queues"]["t[0]"]["down_time"]
        assert s["messages"]["lost"] == s["messages"]["dropped"] == 0
        assert s["brokers"]["b0"]["leads"] == 0  # leadership does not move back
        assert s["brokers"]["b0"]["down_time"] == pytest.approx(100.0)
    f = res.faults
    assert set(f["kind"]) == {"outage", "broker_outage"}
    assert (f.loc[f["kind"] == "broker_outage", "component"] == "brokers.b0").all()


def test_a_blip_shorter_than_detection_is_no_failover() -> None:
    sc = override(BASE, {"brokers.detection": "constant(3)",
                         "brokers.outages.b0.at": [[50, 1.0]], "run.replications": 2})
    for r in simq.run(sc).replications:
        s = r.summary
        assert s["cluster"]["failovers"] == 0
        assert s["queues"]["t[0]"]["down_time"] == pytest.approx(1.0)
        assert s["brokers"]["b0"]["leads"] == 1


@pytest.mark.parametrize("mode", ["full", "summary"])
def test_too_few_in_sync_replicas_refuse_writes_for_the_outage(mode: str) -> None:
    # acks: all with min_insync_replicas = 3 of 3: from when b1 is noticed down (1 s) to
    # its return (20 s later) no partition takes a write; before it is noticed, only t[1]
    # (which b1 led) is down. With when_down: drop each send of those spells is dropped:
    # λ·19 + (λ/3)·1 on average (a Poisson count).
    sc = override(BASE, {
        "run.records": mode, "brokers.detection": "constant(1)",
        "brokers.election_time": "constant(0.5)", "brokers.outages": {"b1": {"at": [[50, 20]]}},
        "topics.t.acks": "all", "topics.t.min_insync_replicas": 3, "topics.t.when_down": "drop"})
    res = simq.run(sc)
    assert_agrees(res, "messages.dropped", LAM * 19.0 + LAM / 3 * 1.0)
    for r in res.replications:
        m = r.summary["messages"]
        assert m["lost"] == 0
    # Held instead (block): nothing dropped; the producer waits from its first send to t[1]
    # after b1 fails to b1's return.
    res = simq.run(override(sc, {"topics.t.when_down": "block", "run.replications": 3}))
    for r in res.replications:
        s = r.summary
        assert s["messages"]["dropped"] == s["messages"]["lost"] == 0
        assert 15.0 < s["producers"]["app"]["blocked_time"] <= 20.0 + 1e-9


def test_acks_1_loses_what_the_old_leader_had_not_copied_and_all_loses_nothing() -> None:
    # One partition on b0 (leader) and b1, copies taking 1 s: when b0 fails, the writes
    # of its last second are not yet on b1. With acks: 1 the producer was answered, so
    # they are lost at the failover (λ·1 on average); with acks: all the producer was
    # not, so it writes them again on the new leader and nothing is lost.
    sc = override(BASE, {
        "brokers.replication_factor": 2, "brokers.replication": "constant(1)",
        "brokers.detection": "constant(0.5)", "brokers.election_time": "constant(0.1)",
        "topics.t.partitions": 1, "consumers.g.count": 1, "consumers.g.service":
        "exponential(mean=0.2)", "topics.t.acks": "1"})
    res = simq.run(sc)
    assert_agrees(res, "cluster.lost_at_failover", LAM * 1.0)
    for r in res.replications:
        assert r.summary["messages"]["lost"] == r.summary["cluster"]["lost_at_failover"]
    safe = simq.run(override(sc, {"topics.t.acks": "all"}))
    for r in safe.replications:
        m = r.summary["messages"]
        assert m["lost"] == m["dropped"] == 0
        assert r.summary["cluster"]["lost_at_failover"] == 0


def test_latency_adds_the_copy_to_every_write() -> None:
    # Consumers read what every in-sync replica has (the high watermark), with acks: 1
    # too: an M/M/1 partition behind a constant 0.2 s copy has latency 0.2 + 1/(μ - λ).
    lam_p, mu = LAM / 3, 2.0
    sc = override(BASE, {"brokers.outages": None, "brokers.replication": "constant(0.2)",
                         "brokers.replication_factor": 2, "topics.t.acks": "1",
                         "run.until": 2000.0, "run.warmup": 100.0, "run.replications": 10})
    res = simq.run(sc)
    assert_agrees(res, "latency.mean", 0.2 + 1 / (mu - lam_p))
    assert_agrees(res, "breakdown.replicate", 0.2)


def test_quorum_needs_a_majority_up() -> None:
    # b1 and b2 down together for 30 s: t[1] (led by b1) has no majority to elect a new
    # leader until they are back, then one election (0.5 s); t[0] keeps its leader but
    # takes no write without a majority (dropped, λ/3 per second for 30 s).
    sc = override(BASE, {
        "brokers.detection": "constant(1)", "brokers.election_time": "constant(0.5)",
        "brokers.outages": {"b1": {"at": [[50, 30]]}, "b2": {"at": [[50, 30]]}},
        "topics.t.acks": "quorum", "topics.t.when_down": "drop"})
    res = simq.run(sc)
    for r in res.replications:
        q = r.summary["queues"]
        assert q["t[1]"]["down_time"] == pytest.approx(30.5)
        assert q["t[0]"]["down_time"] == 0  # readable: its leader is up
        assert r.summary["messages"]["lost"] == 0
    assert_agrees(res, "messages.dropped", LAM * 30.0)


def test_each_broker_carries_its_leaders_appends_and_its_followers_copies() -> None:
    # Three partitions at λ/3 each, two replicas: each broker leads one partition and
    # follows another, so it takes 2λ/3 writes a second, and with a service of 20 ms is
    # busy 2λ/3 · 0.02 of the time.
    sc = override(BASE, {"brokers.outages": None, "brokers.replication_factor": 2,
                         "brokers.service": "exponential(mean=0.02)",
                         "run.until": 1000.0, "run.replications": 10})
    res = simq.run(sc)
    for b in ("b0", "b1", "b2"):
        assert_agrees(res, f"brokers.{b}.write_rate", 2 * LAM / 3)
        assert_agrees(res, f"brokers.{b}.utilization", 2 * LAM / 3 * 0.02)
        assert res.summary["brokers"][b]["leads"] == 1


def test_both_record_modes_give_the_same_cluster_numbers() -> None:
    sc = override(BASE, {"run.replications": 1, "brokers.service": "exponential(mean=0.02)",
                         "run.warmup": 20.0})
    full = simq.run(override(sc, {"run.records": "full"})).summary
    streamed = simq.run(override(sc, {"run.records": "summary"})).summary
    assert full["brokers"] == streamed["brokers"]
    assert full["cluster"] == streamed["cluster"]
    assert full["messages"] == streamed["messages"]


@pytest.mark.parametrize(("changes", "match"), [
    ({"brokers": None, "topics.t.replication_factor": 2}, r"topics\.t\.replication_factor: "
     r"replication needs a broker cluster"),
    ({"topics.t.outages": {"at": [[1, 1]]}}, r"topics\.t\.outages: in a broker cluster"),
    ({"topics.t.durability": {"fsync": "constant(0.001)"}},
     r"topics\.t\.durability: in a broker cluster a write costs"),
    ({"topics.t.replication_factor": 4}, r"needs 4 brokers; the cluster has 3"),
    ({"topics.t.min_insync_replicas": 3, "topics.t.replication_factor": 2},
     r"more than the 2 replicas"),
    ({"topics.t.acks": "quorum", "topics.t.min_insync_replicas": 2},
     r"a quorum write waits for a majority"),
    ({"topics.t.acks": 1, "topics.t.min_insync_replicas": 2}, r"only applies to acks: all"),
    ({"brokers.outages": {"b9": {"at": [[1, 1]]}}}, r"no broker 'b9'"),
    ({"brokers.names": ["x", "y", "z"]}, r"give `count`.*or `names`, not both"),
    ({"brokers.replication_factor": 5}, r"`replication_factor` 5 needs as many brokers"),
    ({"topics.t.acks": "most"}, r"must be 1 .*, all .* or quorum"),
])
def test_what_a_cluster_refuses(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(simq.ScenarioError, match=match):
        simq.load(override(BASE, changes))


def test_when_down_needs_outages_or_a_cluster() -> None:
    no_cluster = override(BASE, {"brokers": None, "topics.t.when_down": "drop"})
    with pytest.raises(simq.ScenarioError, match=r"`when_down` needs `outages`"):
        simq.load(no_cluster)
    simq.load(override(BASE, {"topics.t.when_down": "drop"}))


def test_a_quorum_queue_is_a_queue_on_the_cluster() -> None:
    # RabbitMQ's quorum queue: a queue (not a topic) with three replicas and majority
    # writes; its leader's broker failing moves it like a partition.
    sc = override(BASE, {"topics": None, "queues": {"orders": {"acks": "quorum"}},
                         "producers.app.to": "orders", "consumers.g.from": "orders",
                         "consumers.g.count": 2, "brokers.detection": "constant(1)",
                         "brokers.election_time": "constant(0.5)", "run.replications": 2})
    for r in simq.run(sc).replications:
        s = r.summary
        assert s["queues"]["orders"]["down_time"] == pytest.approx(1.5)
        assert s["cluster"]["failovers"] == 1 and s["messages"]["lost"] == 0


def test_a_follower_back_before_it_is_noticed_stops_holding_writes_back() -> None:
    # b1 follows t[0] and t[2]; down for 3 s with a 10 s detection, writes to them wait
    # for its copy only until it is back (it copies what it missed then), not 10 s.
    sc = override(BASE, {"brokers.detection": "constant(10)",
                         "brokers.outages": {"b1": {"at": [[50, 3.0]]}},
                         "topics.t.when_down": "drop",  # the producer goes on meanwhile
                         "consumers.g.service": "constant(0.05)", "run.replications": 2})
    for r in simq.run(sc).replications:
        s = r.summary
        assert s["cluster"]["failovers"] == 0
        assert s["queues"]["t[1]"]["down_time"] == pytest.approx(3.0)  # the one b1 led
        assert s["latency"]["max"] < 4.0, s["latency"]


def test_a_partition_keeps_its_order_whatever_each_copy_takes() -> None:
    # Copies take a random time, so a later write's copies may be done first; a reader
    # still sees the partition in append order (the high watermark only moves forward).
    sc = override(BASE, {"brokers.outages": None,
                         "brokers.replication": "exponential(mean=2)",
                         "producers.app.keys": "uniform(n=3)", "run.replications": 2})
    for r in simq.run(sc).replications:
        assert r.summary["ordering"]["out_of_order"] == 0
        assert r.summary["ordering"]["deliveries"] > 400


def test_overrides_reach_the_cluster_keys() -> None:
    sc = simq.load(BASE).with_overrides({"brokers.detection": "constant(7)",
                                         "brokers.outages.b0.at": [[10, 5]]})
    assert sc.brokers is not None
    assert sc.brokers.detection.mean == 7
    assert sc.brokers.outages is not None and sc.brokers.outages["b0"].at == [(10.0, 5.0)]
    with pytest.raises(simq.ScenarioError, match=r"brokers: name a key of the cluster"):
        sc.with_overrides({"brokers": 3})
