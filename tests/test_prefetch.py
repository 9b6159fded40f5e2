"""Prefetch: a consumer holds at most n unacknowledged messages behind a network trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import assert_agrees

import simq
from simq import theory
from simq.model.network import flows

MODELS = Path(__file__).resolve().parent.parent / "models"


def _prefetch(n: int, rate: float = 20.0, count: int = 1, until: float = 1000,
              service: str = "constant(0.1)", latency: str | None = "constant(0.05)"
              ) -> dict[str, Any]:
    sc: dict[str, Any] = {
        "run": {"until": until, "warmup": until / 10},
        "producers": {"app": {"to": "broker", "rate": rate}},
        "queues": {"broker": {}},
        "consumers": {"worker": {"from": "broker", "count": count, "prefetch": n,
                                 "service": service}},
    }
    if latency is not None:
        sc["links"] = {"broker->worker": {"latency": latency}}
    return sc


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
@pytest.mark.parametrize(("n", "utilization"), [(1, 0.5), (2, 1.0), (10, 1.0)])
def test_prefetch_one_idles_for_the_round_trip(n: int, utilization: float) -> None:
    # Work 0.1 s per message, 0.05 s to the consumer and 0.05 s for the ack back, and the
    # broker never empty (20 msg/s offered): with prefetch 1 the consumer is busy
    # work / (work + round trip) = 0.1 / 0.2 = 50% of the time and carries 5 msg/s; a
    # prefetch of 2 covers the round trip and keeps it busy. All deterministic.
    res = simq.run(_prefetch(n))
    c = res.summary["consumers"]["worker"]
    assert c["utilization"] == pytest.approx(utilization, abs=2e-3)
    assert res.summary["throughput"] == pytest.approx(10 * utilization, rel=2e-3)
    assert flows(simq.load(_prefetch(n))).queues["broker"].capacity == pytest.approx(
        10 * utilization)


def test_prefetch_without_a_network_is_the_plain_queue() -> None:
    # No link: the ack is back at once, so prefetch 1 is an ordinary worker: M/M/1 at
    # 0.8.
    sc = _prefetch(1, rate=0.8, until=8000, service="exponential(mean=1)", latency=None)
    res = simq.run(sc, replications=6)
    mm1 = theory.mm1(0.8, 1.0)
    assert_agrees(res, "queues.broker.wait_mean", mm1.wait_mean)


def test_a_large_prefetch_moves_the_waiting_to_the_client() -> None:
    # Two consumers with prefetch 50 at 75% load: the broker's line is almost always
    # empty (messages are pushed out at once), and the waiting happens in each client's
    # buffer instead; the latency steps still add up exactly.
    sc = _prefetch(50, rate=15.0, count=2, until=2000, service="exponential(mean=0.1)")
    res = simq.run(sc)
    b = res.summary["breakdown"]
    assert res.summary["queues"]["broker"]["wait_mean"] < 0.01
    assert b["buffer"] > 10 * res.summary["queues"]["broker"]["wait_mean"]
    assert b["link"] == pytest.approx(0.05, abs=1e-9)
    assert b["other"] == pytest.approx(0.0, abs=1e-9)
    assert b["service"] == pytest.approx(0.1, rel=0.05)
    small = simq.run(_prefetch(1, rate=15.0, count=2, until=2000, latency="constant(0.005)",
                               service="exponential(mean=0.1)"))
    assert small.summary["breakdown"]["buffer"] < b["buffer"] / 10


@pytest.mark.parametrize("until", [13.3, 77.7])
def test_conservation_with_prefetch_cut_mid_flight(until: float) -> None:
    sc = _prefetch(5, rate=30.0, count=3, until=until, service="exponential(mean=0.1)",
                   latency="exponential(mean=0.05)")
    sc["run"] = {"until": until}
    sc["consumers"]["worker"]["decode"] = "constant(0.01)"
    with pytest.warns(simq.UnstableWarning):
        res = simq.run(sc)
    m = res.summary["messages"]
    assert m["in_flight"] > 0
    assert m["produced"] == m["delivered"] + m["in_flight"]


def test_a_link_to_a_consumer_needs_prefetch() -> None:
    sc = _prefetch(1)
    del sc["consumers"]["worker"]["prefetch"]
    with pytest.raises(simq.ScenarioError, match="prefetch"):
        simq.load(sc)


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
def test_prefetch_model_runs() -> None:
    res = simq.run(MODELS / "prefetch.yaml", overrides={"run.until": 300, "run.warmup": 30})
    assert res.summary["throughput"] > 0
