"""Sync clients, windows, encode/decode and the reply path, against theory and arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import assert_agrees, one_queue

import simq
from simq import theory
from simq.model.network import flows

MODELS = Path(__file__).resolve().parent.parent / "models"


def _sync(clients: int, **extra: Any) -> dict[str, Any]:
    return {
        "run": {"until": 4000, "warmup": 400, "seed": 7},
        "producers": {"app": {"to": "q", "mode": "sync", "clients": clients,
                              "think": "exponential(mean=4)", **extra}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "rate": 1.0}},
    }


@pytest.mark.parametrize("clients", [1, 5, 20])
def test_sync_clients_match_exact_mva(clients: int) -> None:
    # N clients, exponential service (mu = 1) and think time (Z = 4): a closed network of
    # one FCFS station and one delay, solved exactly by MVA.
    res = simq.run(_sync(clients), replications=6)
    exact = theory.mva(clients, [1.0], think=4.0)
    assert_agrees(res, "throughput", exact.throughput)
    assert_agrees(res, "latency.mean", exact.response_time)
    # On paper the sync producer generates what its closed loop carries.
    assert flows(simq.load(_sync(clients))).generation_rate == pytest.approx(exact.throughput)


def _window(n: int, service: str = "constant(0.1)") -> dict[str, Any]:
    return {
        "run": {"until": 2000, "warmup": 100},
        "producers": {"app": {"to": "q", "mode": "window", "window": n,
                              "reply": "constant(0.5)"}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "service": service}},
        "links": {"app->q": {"latency": "constant(0.5)"}},
    }


@pytest.mark.parametrize(("n", "expected"), [(1, 1 / 1.1), (4, 4 / 1.1), (20, 10.0)])
def test_window_caps_throughput_at_n_over_round_trip(n: int, expected: float) -> None:
    # Round trip R = 0.5 (link) + 0.1 (service) + 0.5 (ack) = 1.1 s with no queueing: a
    # window of n carries n / R until the consumer (10 msg/s) is the limit. Everything is
    # deterministic, so only the edges of the window (one round trip in 1900 s) blur it.
    res = simq.run(_window(n))
    assert res.summary["throughput"] == pytest.approx(expected, rel=0.002)
    # On paper (MVA, which treats the constant service as exponential: a little queueing
    # that deterministic service does not have) the rate is within 3% of it.
    assert flows(simq.load(_window(n))).generation_rate == pytest.approx(expected, rel=0.03)


def test_window_with_random_service_matches_closed_network() -> None:
    # A saturating window of n is n clients with no think time: MVA with the two links
    # and the ack as delays (Z = 1.0) and an exponential consumer (mean 0.25).
    res = simq.run(_window(3, "exponential(mean=0.25)"), replications=6)
    exact = theory.mva(3, [0.25], think=1.0)
    assert_agrees(res, "throughput", exact.throughput)


def test_breakdown_adds_up_for_a_deterministic_request() -> None:
    # One client, every step constant: encode 0.1, link 0.2, wait 0, service 0.3,
    # decode 0.05, reply 0.25, so latency = 0.9 s and throughput = 1 / 0.9.
    sc = {
        "run": {"until": 900, "warmup": 9},
        "producers": {"app": {"to": "q", "mode": "sync", "encode": "constant(0.1)",
                              "reply": "constant(0.25)"}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "service": "constant(0.3)",
                            "decode": "constant(0.05)"}},
        "links": {"app->q": {"latency": "constant(0.2)"}},
    }
    res = simq.run(sc)
    b = res.summary["breakdown"]
    expected = {"encode": 0.1, "link": 0.2, "wait": 0.0, "service": 0.3, "decode": 0.05,
                "reply": 0.25, "other": 0.0}
    for k, v in expected.items():
        assert b[k] == pytest.approx(v, abs=1e-9), k
    assert res.summary["latency"]["mean"] == pytest.approx(0.9)
    assert res.summary["throughput"] == pytest.approx(1 / 0.9, rel=2e-3)
    assert res.summary["consumers"]["w"]["service_mean"] == pytest.approx(0.35)
    row = res.messages.iloc[20]
    assert row["encode"] == pytest.approx(0.1) and row["reply"] == pytest.approx(0.25)
    # The document's latency formula: processing (encode + decode + service) plus
    # transmission (link + reply) holds exactly when nothing waits.
    assert res.summary["formulas"]["latency"]["holds"]


def test_async_encoder_is_a_fifo_stage_and_keeps_the_rate() -> None:
    # A constant encode of 0.5 s in front of Poisson arrivals at 1/s is an M/D/1 queue at
    # the sender: mean encode step = 0.5 + Wq(M/D/1, rho 0.5) = 0.5 + 0.5 = 1.0 s.
    sc = one_queue(1.0, "constant(0.01)", producer={"encode": "constant(0.5)"},
                   until=4000, warmup=200, seed=None)
    res = simq.run(sc, replications=6)
    md1 = theory.md1(1.0, 2.0)
    expected = 0.5 + md1.wait_mean
    assert_agrees(res, "breakdown.encode", expected)
    assert res.summary["throughput"] == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("until", [37.3, 101.05, 250.0])
def test_conservation_with_requests_cut_mid_flight(until: float) -> None:
    # Summaries raise ConservationError when the counts do not add up; cutting the run at
    # odd times catches messages mid-encode, on the link, in service and on the reply.
    sc = {
        "run": {"until": until},
        "producers": {
            "s": {"to": "q", "mode": "sync", "clients": 4, "encode": "exponential(mean=0.3)",
                  "reply": "exponential(mean=0.4)", "think": "exponential(mean=0.2)"},
            "w": {"to": "q", "mode": "window", "window": 3, "encode": "constant(0.2)",
                  "reply": "constant(0.3)"},
            "a": {"to": "q", "rate": 0.5, "encode": "constant(0.1)"},
        },
        "queues": {"q": {"capacity": 3, "overflow": "block"}},
        "consumers": {"c": {"from": "q", "rate": 3.0, "decode": "constant(0.05)"}},
        "links": {"s->q": {"latency": "exponential(mean=0.2)", "bandwidth": 5000}},
    }
    res = simq.run(sc)
    m = res.summary["messages"]
    assert m["in_flight"] > 0
    assert m["produced"] == m["delivered"] + m["in_flight"]


def test_same_seed_same_numbers() -> None:
    a = simq.run(_sync(5, encode="constant(0.1)"), seed=3).summary
    b = simq.run(_sync(5, encode="constant(0.1)"), seed=3).summary
    assert a["latency"] == b["latency"] and a["breakdown"] == b["breakdown"]


@pytest.mark.parametrize(
    ("producer", "path"),
    [
        ({"to": "q", "mode": "sync", "rate": 1.0}, "producers.app"),
        ({"to": "q", "mode": "window"}, "producers.app"),
        ({"to": "q", "rate": 1.0, "clients": 3}, "producers.app"),
        ({"to": "q", "rate": 1.0, "reply": "constant(1)"}, "producers.app"),
        ({"to": "q", "mode": "sync", "clients": 0}, "producers.app.clients"),
        ({"to": "q", "mode": "window", "window": 2.5}, "producers.app.window"),
    ],
)
def test_bad_modes_are_refused_with_their_path(producer: dict[str, Any], path: str) -> None:
    sc = {"run": {"until": 10}, "producers": {"app": producer}, "queues": {"q": {}},
          "consumers": {"w": {"from": "q", "rate": 1.0}}}
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path == path


def test_sync_sender_may_not_reach_a_dropping_queue() -> None:
    sc = _sync(2)
    sc["queues"]["q"] = {"capacity": 5}
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path == "queues.q.overflow"


def test_sync_vs_async_model_shows_the_trade() -> None:
    # Same load on identical consumers: the sync caller never queues (its latency is its
    # round trip, 0.32 s on average), the async poster queues at a 66%-busy consumer.
    res = simq.run(MODELS / "sync_vs_async.yaml", overrides={"run.until": 3000,
                                                            "run.warmup": 200})
    p = res.summary["producers"]
    assert res.summary["queues"]["sync-q"]["wait_mean"] == 0.0
    assert p["caller"]["latency_mean"] == pytest.approx(0.32, rel=0.1)
    assert p["poster"]["latency_mean"] > 1.5 * p["caller"]["latency_mean"]
    assert p["caller"]["throughput"] == pytest.approx(p["poster"]["throughput"], rel=0.1)
