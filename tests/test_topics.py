"""Pub/sub fan-out and partitioned topics with consumer groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import assert_agrees

import simq
from simq import theory

MODELS = Path(__file__).resolve().parent.parent / "models"


def _partitioned(count: int, key: str = "uniform", rate: float = 2.4,
                 until: float = 4000) -> dict[str, Any]:
    return {
        "run": {"until": until, "warmup": 400, "seed": 5},
        "producers": {"app": {"to": "events", "rate": rate}},
        "topics": {"events": {"partitions": 4, "key": key}},
        "consumers": {"group": {"from": "events", "count": count, "rate": 1.0}},
    }


def test_random_keys_make_independent_mm1_partitions() -> None:
    # Poisson traffic split at random is Poisson on every partition: each partition with
    # its own consumer is an M/M/1 at lambda / P = 0.6.
    res = simq.run(_partitioned(4), replications=6)
    mm1 = theory.mm1(0.6, 1.0)
    for p in range(4):
        assert_agrees(res, f"queues.events[{p}].wait_mean", mm1.wait_mean)
        assert_agrees(res, f"queues.events[{p}].length_mean", mm1.length_mean)
    # Per-partition lag is in the time series.
    cols = res.timeseries.columns
    assert all(f"queue.events[{p}].length" in cols for p in range(4))


def test_extra_consumers_stay_idle() -> None:
    # Six consumers, four partitions: two own nothing. The group still carries lambda,
    # and its utilization is lambda / (count x mu) = 2.4 / 6 = 0.4 (within 5%: the busy
    # time of ~9000 exponential services has a relative sd near 1%).
    res = simq.run(_partitioned(6))
    g = res.summary["consumers"]["group"]
    assert g["throughput"] == pytest.approx(2.4, rel=0.05)
    assert g["utilization"] == pytest.approx(0.4, rel=0.05)
    busy = res.timeseries["consumer.group.busy"]
    assert busy.max() <= 4


def test_fewer_consumers_than_partitions_serve_their_partitions_as_one_line() -> None:
    # Two consumers own two partitions each; a consumer serves its partitions in arrival
    # order, so it is an M/M/1 fed by both: lambda = 1.2 / 2 = 0.6 per consumer, and every
    # partition sees that consumer's wait.
    res = simq.run(_partitioned(2, rate=1.2, until=5000), replications=6)
    mm1 = theory.mm1(0.6, 1.0)
    s = res.summary
    for p in range(4):
        assert_agrees(res, f"queues.events[{p}].wait_mean", mm1.wait_mean)
    assert s["consumers"]["group"]["utilization"] == pytest.approx(0.6, rel=0.05)


def test_round_robin_keys_share_exactly_and_zipf_keys_follow_their_law() -> None:
    rr = simq.run(_partitioned(4, "round-robin", until=1000)).summary["queues"]
    counts = [rr[f"events[{p}]"]["arrivals"] for p in range(4)]
    assert max(counts) - min(counts) <= 1
    sc = simq.load(_partitioned(4, "zipf(s=1.2)", rate=1.6, until=2000))
    probs = sc.topics["events"].key_probabilities
    zq = simq.run(sc).summary["queues"]
    arrivals = [zq[f"events[{p}]"]["arrivals"] for p in range(4)]
    n = sum(arrivals)
    for a, prob in zip(arrivals, probs, strict=True):
        # Binomial counts: within 4 standard deviations.
        assert abs(a / n - prob) <= 4 * (prob * (1 - prob) / n) ** 0.5


def _fanout(until: float = 3000) -> dict[str, Any]:
    return {
        "run": {"until": until, "warmup": min(300, until / 2), "seed": 2},
        "producers": {"app": {"to": "orders", "rate": 0.7}},
        "topics": {"orders": {"subscribers": ["billing", "audit", "search"]}},
        "queues": {"billing": {}, "audit": {}, "search": {}},
        "consumers": {
            "b": {"from": "billing", "rate": 1.0},
            "a": {"from": "audit", "rate": 2.0},
            "s": {"from": "search", "service": "constant(0.5)"},
        },
    }


def test_fanout_subscribers_each_see_the_full_stream() -> None:
    res = simq.run(_fanout())
    s = res.summary
    m = s["messages"]
    originals = m["produced"] - m["copies"]
    assert m["copies"] == 2 * originals
    assert m["produced"] == m["delivered"] + m["in_flight"]
    arrivals = {q: s["queues"][q]["arrivals"] for q in ("billing", "audit", "search")}
    assert len(set(arrivals.values())) == 1  # every copy made at once, in every queue
    frame = res.messages
    assert (frame["parent"] >= 0).sum() == m["copies"]
    # Each subscriber on its own is the queue it would be alone: M/M/1 and M/D/1 at 0.7.
    assert s["queues"]["billing"]["wait_mean"] == pytest.approx(
        theory.mm1(0.7, 1.0).wait_mean, rel=0.25)
    assert s["queues"]["search"]["wait_mean"] == pytest.approx(
        theory.md1(0.7, 2.0).wait_mean, rel=0.25)


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
@pytest.mark.parametrize("until", [31.7, 200.3])
def test_conservation_with_topics_cut_mid_flight(until: float) -> None:
    sc = _fanout(until)
    sc["producers"]["k"] = {"to": "events", "rate": 3.0}
    sc["topics"]["events"] = {"partitions": 3, "key": "zipf(s=1)", "capacity": 2,
                              "overflow": "drop-new"}
    sc["consumers"]["g"] = {"from": "events", "count": 2, "rate": 1.0, "to": "orders"}
    res = simq.run(sc)
    m = res.summary["messages"]
    assert m["dropped"] > 0 and m["in_flight"] > 0
    assert m["produced"] == m["delivered"] + m["dropped"] + m["in_flight"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"topics": {"orders": {"subscribers": ["billing"], "partitions": 2}}}, "topics.orders"),
        ({"topics": {"orders": {"partitions": 2, "key": "zipf(s=-1)"}}}, "topics.orders.key"),
        ({"topics": {"orders": {"subscribers": ["nowhere"]}}}, "topics.orders.subscribers.0"),
        ({"consumers": {"b": {"from": "orders", "rate": 1.0}}}, "consumers.b.from"),
        ({"producers": {"app": {"to": "orders", "mode": "sync"}}}, "producers.app.to"),
    ],
)
def test_bad_topics_are_refused(change: dict[str, Any], path: str) -> None:
    sc = _fanout()
    for section, comps in change.items():
        sc[section] = {**sc[section], **comps}
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path == path


@pytest.mark.parametrize("model", ["pubsub.yaml", "partitions.yaml"])
def test_topic_models_run(model: str) -> None:
    res = simq.run(MODELS / model, overrides={"run.until": 1500, "run.warmup": 100})
    assert res.summary["throughput"] > 0
