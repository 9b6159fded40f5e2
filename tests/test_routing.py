"""Probabilistic routing and feedback, against Jackson networks and the traffic equations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import assert_agrees

import simq
from simq import theory
from simq.model.network import flows

MODELS = Path(__file__).resolve().parent.parent / "models"


def _feedback(until: float = 6000) -> dict[str, Any]:
    return {
        "run": {"until": until, "warmup": 500, "seed": 11},
        "producers": {"app": {"to": "a", "rate": 0.5}},
        "queues": {"a": {}, "b": {}},
        "consumers": {
            "wa": {"from": "a", "rate": 1.5, "to": {"b": 0.6, "a": 0.2, "exit": 0.2}},
            "wb": {"from": "b", "rate": 1.2, "to": {"a": 0.5, "exit": 0.5}},
        },
    }


def test_feedback_network_matches_jackson() -> None:
    # Two M/M/1 nodes with feedback (a -> a, a -> b -> a): product form, so each node is an
    # M/M/1 at the rate of the traffic equations and the mean end-to-end latency is
    # L / gamma.
    res = simq.run(_feedback(), replications=8)
    net = theory.jackson([0.5, 0.0], [[0.2, 0.6], [0.5, 0.0]], [1.5, 1.2])
    s = res.summary
    assert_agrees(res, "latency.mean", net.sojourn_mean)
    for i, q in enumerate(("a", "b")):
        node = net.nodes[i]
        assert_agrees(res, f"queues.{q}.wait_mean", node.wait_mean)
        # Arrivals per second at each queue (visits x external rate).
        assert_agrees(res, f"queues.{q}.arrivals", net.arrival_rates[i],
                      scale=s["window"][1] - s["window"][0])
    # On paper, flows solves the same traffic equations.
    f = flows(simq.load(_feedback()))
    assert f.queues["a"].arrival_rate == pytest.approx(net.arrival_rates[0])
    assert f.queues["b"].arrival_rate == pytest.approx(net.arrival_rates[1])
    assert f.processing_time == pytest.approx(
        net.visit_ratios[0] / 1.5 + net.visit_ratios[1] / 1.2)


def test_split_sends_each_share_its_way() -> None:
    # 30% of the messages go to `slow`, the rest leave: counts are binomial, so the share
    # is 0.3 within 4 standard deviations (sd = sqrt(0.3 * 0.7 / n) < 0.004 here).
    sc = {
        "run": {"until": 5000},
        "producers": {"app": {"to": "in", "rate": 4.0}},
        "queues": {"in": {}, "slow": {}},
        "consumers": {
            "first": {"from": "in", "rate": 10.0, "to": {"slow": 0.3, "exit": 0.7}},
            "second": {"from": "slow", "rate": 5.0},
        },
    }
    res = simq.run(sc)
    q = res.summary["queues"]
    share = q["slow"]["arrivals"] / q["in"]["arrivals"]
    assert abs(share - 0.3) <= 4 * (0.3 * 0.7 / q["in"]["arrivals"]) ** 0.5
    m = res.summary["messages"]
    assert m["produced"] == m["delivered"] + m["in_flight"]


def test_sync_clients_through_feedback_match_mva() -> None:
    # Closed loop through the feedback network: demands are visits / mu per station.
    sc = _feedback(4000)
    sc["producers"] = {"app": {"to": "a", "mode": "sync", "clients": 4,
                               "think": "exponential(mean=2)"}}
    res = simq.run(sc, replications=6)
    net = theory.jackson([1.0, 0.0], [[0.2, 0.6], [0.5, 0.0]], [1.5, 1.2])
    exact = theory.mva(4, [net.visit_ratios[0] / 1.5, net.visit_ratios[1] / 1.2], think=2.0)
    assert_agrees(res, "throughput", exact.throughput)
    assert_agrees(res, "latency.mean", exact.response_time)


def test_a_loop_with_no_way_out_is_refused() -> None:
    sc = _feedback()
    sc["consumers"]["wa"]["to"] = {"b": 0.5, "a": 0.5}
    sc["consumers"]["wb"]["to"] = "a"
    with pytest.raises(simq.ScenarioError, match="loop forever"):
        simq.load(sc)


@pytest.mark.parametrize(
    ("to", "path"),
    [
        ({"b": 0.5, "exit": 0.4}, "consumers.wa.to"),
        ({"b": 1.2}, "consumers.wa.to"),
        ({"nowhere": 0.5, "exit": 0.5}, "consumers.wa.to.nowhere"),
        ({}, "consumers.wa.to"),
    ],
)
def test_bad_routing_tables_are_refused(to: dict[str, float], path: str) -> None:
    sc = _feedback()
    sc["consumers"]["wa"]["to"] = to
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path == path


def test_routing_model_runs() -> None:
    res = simq.run(MODELS / "routing.yaml", overrides={"run.until": 2000, "run.warmup": 100})
    assert res.summary["queues"]["retry-q"]["arrivals"] > 0
