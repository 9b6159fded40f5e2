"""Every messaging pattern in one scenario: counts add up, and runs are reproducible."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simq


def _everything(until: float, seed: int) -> dict[str, Any]:
    return {
        "run": {"until": until, "seed": seed},
        "producers": {
            "caller": {"to": "rpc", "mode": "sync", "clients": 3, "encode": "constant(0.01)",
                       "reply": "exponential(mean=0.05)", "think": "exponential(mean=0.3)"},
            "confirmer": {"to": "events", "mode": "window", "window": 4,
                          "reply": "constant(0.02)", "batch_size": 3000, "linger": 0.05},
            "poster": {"to": "orders", "rate": 2.0, "encode": "constant(0.005)",
                       "priority": 5},
            "bulk": {"to": "work", "rate": 1.0, "size": "constant(20000)"},
        },
        "topics": {
            "orders": {"subscribers": ["work", "audit"]},
            "events": {"partitions": 3, "key": "zipf(s=1)"},
        },
        "queues": {
            "rpc": {},
            "work": {"discipline": "priority", "capacity": 20},
            "audit": {"capacity": 5, "overflow": "drop-oldest"},
            "retry": {},
        },
        "consumers": {
            "server": {"from": "rpc", "count": 2, "rate": 8.0, "decode": "constant(0.01)",
                       "to": {"retry": 0.2, "exit": 0.8}},
            "retrier": {"from": "retry", "service": "constant(0.1)", "to": "rpc"},
            "worker": {"from": "work", "prefetch": 2, "rate": 4.0},
            "auditor": {"from": "audit", "batch": 4, "service": "exponential(mean=0.5)"},
            "readers": {"from": "events", "count": 2, "rate": 3.0},
        },
        "links": {
            "caller->rpc": {"latency": "exponential(mean=0.02)", "bandwidth": 1e6,
                            "loss": 0.1, "retransmit": 0.2},
            "bulk->work": {"latency": "constant(0.01)", "shares": "confirmer->events"},
            "confirmer->events": {"latency": "constant(0.01)", "bandwidth": 5e5,
                                  "loss": 0.05, "retransmit": 0.1},
            "work->worker": {"latency": "exponential(mean=0.03)"},
            "poster->orders": {"latency": "constant(0.01)", "loss": 0.05},
        },
    }


@settings(max_examples=12, deadline=None)
@given(until=st.floats(min_value=5.0, max_value=120.0), seed=st.integers(0, 10_000))
def test_conservation_with_every_pattern_on(until: float, seed: int) -> None:
    # Cut at any time, every message is delivered, dropped, lost or found inside the
    # system (the summary raises ConservationError otherwise), and copies are counted.
    res = simq.run(_everything(until, seed))
    m = res.summary["messages"]
    assert m["produced"] == (m["delivered"] + m["dropped"] + m["lost"] + m["in_flight"])
    assert m["copies"] == (res.messages["parent"] >= 0).sum()
    parts = res.messages[["encode", "batch", "link", "retransmit", "wait", "buffer",
                          "service", "decode", "reply"]].sum(axis=1)
    done = res.messages["outcome"] == "delivered"
    assert (parts[done] <= res.messages["latency"][done] + 1e-9).all()


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
def test_every_pattern_is_deterministic() -> None:
    a = simq.run(_everything(60.0, 3)).summary
    b = simq.run(_everything(60.0, 3)).summary
    assert a["messages"] == b["messages"] and a["latency"] == b["latency"]
    assert a["breakdown"] == b["breakdown"]
