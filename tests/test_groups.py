"""Several consumer groups on one partitioned topic: each reads every message at its own
offset, with its own lag; retention removes what a slow group has not read yet."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import assert_agrees

import simq
from simq import theory
from simq.engine.recorder import OUTCOMES
from simq.model.network import network
from simq.model.stability import stability_warnings


def _two_groups(slow: float, until: float = 4000, **topic: Any) -> dict[str, Any]:
    # Poisson at 1.2 split at random over 2 partitions: 0.6 per partition, in each group.
    return {
        "run": {"until": until, "warmup": 400, "seed": 7},
        "producers": {"app": {"to": "orders", "rate": 1.2}},
        "topics": {"orders": {"partitions": 2, **topic}},
        "consumers": {"fast": {"from": "orders", "count": 2, "rate": 1.0},
                      "slow": {"from": "orders", "count": 2, "rate": slow}},
    }


def test_each_group_sees_every_message_as_mm1_per_partition() -> None:
    res = simq.run(_two_groups(0.8), replications=6)
    fast, slow = theory.mm1(0.6, 1.0), theory.mm1(0.6, 0.8)
    for p in range(2):
        assert_agrees(res, f"queues.orders[{p}]@fast.wait_mean", fast.wait_mean)
        assert_agrees(res, f"queues.orders[{p}]@slow.wait_mean", slow.wait_mean)
        assert_agrees(res, f"queues.orders[{p}]@fast.length_mean", fast.length_mean)
    assert_agrees(res, "consumers.fast.lag_mean", 2 * fast.length_mean)
    assert_agrees(res, "consumers.slow.lag_mean", 2 * slow.length_mean)
    assert_agrees(res, "consumers.fast.latency_mean", fast.sojourn_mean)
    # Each group delivers every message: the throughput of each is the topic's rate.
    assert_agrees(res, "consumers.fast.throughput", 1.2)
    assert_agrees(res, "consumers.slow.throughput", 1.2)


def test_a_slower_slow_group_leaves_the_fast_one_unchanged() -> None:
    fast = theory.mm1(0.6, 1.0)
    waits = []
    for slow in (0.8, 0.65):
        res = simq.run(_two_groups(slow), replications=6)
        assert_agrees(res, "consumers.fast.wait_mean", fast.wait_mean)
        assert_agrees(res, "consumers.slow.wait_mean", theory.mm1(0.6, slow).wait_mean)
        waits.append(res.summary["consumers"]["fast"]["wait_mean"])
    # Same seed, same arrivals and the fast group's own service draws: the fast group
    # cannot tell how slow the other one is.
    assert waits[0] == waits[1]


def _per_group(res: simq.RunResult, sc: simq.Scenario) -> dict[str, dict[str, int]]:
    """Outcomes of each group's copies, from the per-message table: a copy belongs to the
    group whose view of a partition it entered."""
    m = res.messages
    out: dict[str, dict[str, int]] = {}
    for g in sc.consumers:
        mine = np.zeros(len(m), dtype=bool)
        for q, _ in sc.intake(g):
            mine |= m[f"{q}.arrived"].notna().to_numpy()
        out[g] = {str(k): int(v) for k, v in m["outcome"][mine].value_counts().items()}
        out[g]["appended"] = int(mine.sum())
    return out


@pytest.mark.parametrize("retention", [{"seconds": 20}, {"messages": 30}])
def test_retention_expires_for_the_slow_group_only(retention: dict[str, float]) -> None:
    # The slow group is overloaded (0.6 > 0.5 per partition): retention takes what it has
    # not read in time (or what fell behind the newest messages); the fast group, light,
    # reads everything well within either bound.
    sc = simq.load(_two_groups(0.5, until=3000, retention=retention))
    res = simq.run(sc, seed=3)
    s = res.summary
    assert s["consumers"]["slow"]["expired"] > 100
    assert s["consumers"]["fast"]["expired"] == 0
    # Conservation per group: every message appended reaches each group once (the second
    # group's copy is a message of its own, counted in `produced` and `copies`, as with
    # fan-out), and each group's copy ends exactly once.
    per = _per_group(res, sc)
    appended = s["messages"]["produced"] - s["messages"]["copies"]
    assert s["messages"]["copies"] == appended
    for g, counts in per.items():
        assert counts["appended"] == appended, g
        ended = sum(counts.get(k, 0) for k in OUTCOMES.values())
        assert ended == appended, (g, counts)
    assert per["fast"].get("expired", 0) == 0
    assert per["slow"]["expired"] == s["messages"]["expired"]
    assert s["messages"]["delivered"] == per["fast"]["delivered"] + per["slow"]["delivered"]


def test_record_modes_agree() -> None:
    sc = _two_groups(0.5, until=2000, retention={"seconds": 20, "messages": 30})
    full = simq.run(sc, seed=2).summary
    streamed = simq.run(sc, seed=2, overrides={"run.records": "summary"}).summary
    assert full["messages"] == streamed["messages"]
    for g in ("fast", "slow"):
        a, b = full["consumers"][g], streamed["consumers"][g]
        for k in ("lag_mean", "wait_mean", "latency_mean", "throughput", "expired"):
            assert a[k] == pytest.approx(b[k], rel=1e-9), (g, k)
        assert a["latency_p95"] == pytest.approx(b["latency_p95"], rel=0.02)
        assert a["lag"] == pytest.approx(b["lag"], rel=1e-9)


def test_the_traffic_model_loads_each_group_on_its_own() -> None:
    sc = simq.load(_two_groups(0.5))
    net = network(sc)
    util = net.utilisation
    assert util["orders[0]@fast"] == pytest.approx(0.6)
    assert util["orders[1]@slow"] == pytest.approx(1.2)
    warnings = stability_warnings(sc)
    assert any("@slow" in w for w in warnings)
    assert not any("@fast" in w for w in warnings)


def test_one_group_keeps_the_plain_partition_names() -> None:
    sc = simq.load({**_two_groups(1.0), "consumers": {"only": {"from": "orders",
                                                               "rate": 1.0}}})
    assert [q for q in sc.queues] == ["orders[0]", "orders[1]"]


def test_retention_seconds_is_a_ttl_that_never_dead_letters() -> None:
    # One group: retention by age is a ttl with expiry anywhere, but what it removes is
    # expired, even with a dead-letter queue (which takes the consumers' failures).
    base = _two_groups(0.5, until=2000)
    base["consumers"] = {"only": {"from": "orders", "rate": 0.5}}
    base["queues"] = {"dlq": {}}
    kept = simq.run({**base, "topics": {"orders": {"partitions": 2, "dead_letter": "dlq",
                                                   "retention": {"seconds": 20}}}}, seed=1)
    ttl = simq.run({**base, "topics": {"orders": {"partitions": 2, "ttl": 20,
                                                  "expiry": "anywhere"}}}, seed=1)
    k, t = kept.summary["messages"], ttl.summary["messages"]
    assert k["expired"] == t["expired"] > 0
    assert k["dead_lettered"] == 0
    assert kept.summary["consumers"]["only"]["wait_mean"] == \
        ttl.summary["consumers"]["only"]["wait_mean"]


@pytest.mark.parametrize(("topic", "path"), [
    ({"retention": {}}, "topics.orders.retention"),
    ({"retention": {"seconds": 5}, "ttl": 3}, "topics.orders"),
    ({"retention": {"messages": 0}}, "topics.orders.retention.messages"),
])
def test_bad_retention_is_refused(topic: dict[str, Any], path: str) -> None:
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(_two_groups(1.0, **topic))
    assert err.value.path == path


def test_a_waiting_sender_needs_one_group() -> None:
    sc = _two_groups(1.0)
    sc["producers"] = {"app": {"to": "orders", "mode": "sync", "timeout": 5}}
    with pytest.raises(simq.ScenarioError, match="several consumer groups") as err:
        simq.load(sc)
    assert err.value.path == "producers.app.to"
