"""Consumer batches and producer batches (batch.size / linger)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import simq
from simq.model.network import flows

MODELS = Path(__file__).resolve().parent.parent / "models"


def _consumer(rate: float, batch: int, service: str, until: float = 2000) -> dict[str, Any]:
    return {
        "run": {"until": until, "warmup": 200},
        "producers": {"app": {"to": "q", "rate": rate}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "batch": batch, "service": service}},
    }


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
def test_overloaded_batching_consumer_carries_full_batches() -> None:
    # 5 msg/s offered to a worker serving batches of up to 4 in 1 s: under overload every
    # batch is full, so it carries 4 msg/s and the queue grows by 1 msg/s. Deterministic
    # service: the only noise is the count of Poisson arrivals (sd ~1% over 1800 s).
    res = simq.run(_consumer(5.0, 4, "constant(1.0)"))
    assert res.summary["throughput"] == pytest.approx(4.0, rel=0.005)
    assert res.summary["consumers"]["w"]["utilization"] == pytest.approx(1.0, abs=1e-3)
    assert res.summary["queues"]["q"]["growth_rate"] == pytest.approx(1.0, rel=0.1)
    assert flows(simq.load(_consumer(5.0, 4, "constant(1.0)"))).queues["q"].capacity == 4.0


def test_batches_absorb_load_that_one_at_a_time_could_not() -> None:
    # Constant arrivals every 0.1 s, a batch service of 0.5 s: one message at a time the
    # worker could carry only 2 msg/s; taking what waited during the last service (5
    # messages), it keeps up with 10 msg/s and is busy all the time.
    sc = _consumer(1.0, 10, "constant(0.5)")
    sc["producers"]["app"] = {"to": "q", "interarrival": "constant(0.1)"}
    res = simq.run(sc)
    s = res.summary
    assert s["throughput"] == pytest.approx(10.0, rel=1e-3)
    assert s["consumers"]["w"]["utilization"] == pytest.approx(1.0, abs=1e-3)
    b = res.replications[0].records.batches
    assert b["n"][len(b["n"]) // 2:].mean() == pytest.approx(5.0, abs=0.01)
    # Waiting + service: a message waits on average half a batch service, then 0.5 s.
    assert s["latency"]["mean"] == pytest.approx(0.5 + 0.25, abs=0.03)


def _producer(batch_size: float, linger: float, rate: float = 10.0) -> dict[str, Any]:
    return {
        "run": {"until": 1000, "warmup": 100},
        "producers": {"app": {"to": "q", "rate": rate, "size": "constant(1000)",
                              "batch_size": batch_size, "linger": linger}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "service": "constant(0.001)"}},
        "links": {"app->q": {"latency": "constant(0.05)", "bandwidth": 1e6}},
    }


def test_a_producer_batch_closes_when_full() -> None:
    # 10 msg/s of 1000 bytes with batch_size 5000 and a long linger: every batch closes
    # at its fifth message, so message k of a batch waits (5 - k) interarrival gaps:
    # mean batching delay = 2 gaps = 0.2 s. A batch of 5000 bytes takes 5 ms to serialize
    # at 1e6 B/s, plus 50 ms of propagation. Tolerance: the batching delay is a sum of
    # exponential gaps, sd of its mean over ~9000 messages under 1%: 5% is wide.
    res = simq.run(_producer(5000, 10.0))
    b = res.summary["breakdown"]
    assert b["batch"] == pytest.approx(0.2, rel=0.05)
    assert b["link"] == pytest.approx(0.055, rel=1e-6)
    assert b["other"] == pytest.approx(0.0, abs=1e-9)
    # The link is busy 10 msg/s x 1000 B / 1e6 B/s = 1% of the time, batches or not.
    assert res.summary["links"]["app->q"]["utilization"] == pytest.approx(0.01, rel=0.05)


def test_linger_closes_a_batch_that_does_not_fill() -> None:
    # 2 msg/s with batch_size 1e9 (never full) and linger 0.3 s: a batch closes 0.3 s
    # after its first message. The first waits 0.3 s, later ones less; with Poisson
    # arrivals the mean wait per message is 0.3 - E[time after the first]
    # = 0.3 - (rate * 0.3^2 / 2) / (1 + rate * 0.3) = 0.244 s (renewal-reward). Tolerance
    # 5%: the sd of the mean over ~1800 messages is about 2%.
    res = simq.run(_producer(1e9, 0.3, rate=2.0))
    lam, L = 2.0, 0.3
    expected = L - (lam * L**2 / 2) / (1 + lam * L)
    assert res.summary["breakdown"]["batch"] == pytest.approx(expected, rel=0.05)
    assert max(res.messages["batch"]) <= L + 1e-9


@pytest.mark.parametrize("until", [17.77, 120.31])
def test_conservation_with_batches_cut_mid_flight(until: float) -> None:
    sc = _producer(3500, 0.2, rate=20.0)
    sc["run"] = {"until": until}
    sc["producers"]["app"]["encode"] = "exponential(mean=0.01)"
    sc["consumers"]["w"] = {"from": "q", "batch": 8, "service": "exponential(mean=0.2)",
                            "decode": "constant(0.001)"}
    res = simq.run(sc)
    m = res.summary["messages"]
    assert m["in_flight"] > 0
    assert m["produced"] == m["delivered"] + m["in_flight"]


@pytest.mark.parametrize("clients, wait", [(2, 10.0), (3, 0.0)])
def test_sync_clients_share_one_batch(clients: int, wait: float) -> None:
    # A batch closes at 3 messages of 1000 bytes or after 10 s. Clients that think for no
    # time, served side by side in constant time, send together: three fill a batch at
    # once, two never do and every message waits out the linger.
    sc = _producer(3000, 10.0)
    sc["producers"]["app"] = {"to": "q", "mode": "sync", "clients": clients,
                              "size": "constant(1000)", "batch_size": 3000, "linger": 10.0}
    sc["consumers"]["w"]["count"] = clients
    sc["links"] = {}
    res = simq.run(sc)
    assert res.summary["messages"]["delivered"] > 50
    assert res.summary["breakdown"]["batch"] == pytest.approx(wait, abs=1e-9)


def test_batching_model_runs() -> None:
    res = simq.run(MODELS / "batching.yaml", overrides={"run.until": 300, "run.warmup": 30})
    assert res.summary["breakdown"]["batch"] > 0
