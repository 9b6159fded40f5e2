"""Links: serialization as an M/D/1 queue, shared bandwidth, loss and retransmission."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import assert_agrees

import simq
from simq import theory


def _link(flows: int = 1, **link: Any) -> dict[str, Any]:
    rate = 0.8 / flows
    sc: dict[str, Any] = {
        "run": {"until": 6000, "warmup": 600, "seed": 9},
        "producers": {f"p{i}": {"to": "q", "rate": rate, "size": "constant(1000)"}
                      for i in range(flows)},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "service": "constant(0.001)"}},
        "links": {"p0->q": {"latency": "constant(0.1)", "bandwidth": 1000, **link}},
    }
    for i in range(1, flows):
        sc["links"][f"p{i}->q"] = {"latency": "constant(0.1)", "shares": "p0->q"}
    return sc


@pytest.mark.parametrize("flows", [1, 2])
def test_serialization_is_md1_even_when_flows_share_the_link(flows: int) -> None:
    # 1000-byte messages at 1000 B/s take 1 s to serialize, FIFO: Poisson arrivals at 0.8
    # make the serializer an M/D/1 queue, Wq = rho / (2 mu (1 - rho)) = 2 s; two flows of
    # 0.4 sharing the bandwidth are the same queue. Delay = Wq + 1 s + 0.1 s latency.
    res = simq.run(_link(flows), replications=6)
    expected = theory.md1(0.8, 1.0).wait_mean + 1.0 + 0.1
    links = res.summary["links"]
    for i in range(flows):
        assert_agrees(res, f"links.p{i}->q.delay_mean", expected)
    # The wire is busy rho = 80% of the time, split between the links that share it.
    total = sum(links[f"p{i}->q"]["utilization"] for i in range(flows))
    assert total == pytest.approx(0.8, rel=0.03)


def test_plain_loss_loses_its_share() -> None:
    sc = _link(loss=0.1)
    sc["links"]["p0->q"]["bandwidth"] = ".inf"
    m = simq.run(sc).summary["messages"]
    # Binomial: within 4 standard deviations of 10%.
    n = m["produced"]
    assert abs(m["lost"] / n - 0.1) <= 4 * (0.1 * 0.9 / n) ** 0.5
    assert m["produced"] == m["delivered"] + m["lost"] + m["in_flight"]


def test_retransmission_delivers_everything_after_geometric_timeouts() -> None:
    # Loss 0.2 with a resend after 0.5 s: a message is lost k times with probability
    # 0.2^k 0.8, so it spends 0.5 x 0.2 / 0.8 = 0.125 s in timeouts on average and
    # 0.25 resends are made per message. Tolerance: the timeouts are 0.5 s x a geometric
    # count (sd ~0.28 s per message): over ~4300 messages the mean's sd is ~0.004 s, so
    # 10% (0.0125 s) is three standard deviations.
    sc = _link(loss=0.2, retransmit=0.5)
    sc["links"]["p0->q"]["bandwidth"] = ".inf"
    res = simq.run(sc)
    s = res.summary
    assert s["messages"]["lost"] == 0
    assert s["breakdown"]["retransmit"] == pytest.approx(0.125, rel=0.1)
    assert s["breakdown"]["link"] == pytest.approx(0.1, abs=1e-9)
    sent = s["links"]["p0->q"]["retransmitted"] / (s["offered_rate"] * 5400)
    assert sent == pytest.approx(0.25, rel=0.1)
    f = res.flows
    assert f.transmission_time == pytest.approx(0.1 + 0.125)


def test_a_sync_sender_may_cross_a_lossy_link_that_retransmits() -> None:
    sc = {"run": {"until": 100},
          "producers": {"app": {"to": "q", "mode": "sync", "clients": 2}},
          "queues": {"q": {}}, "consumers": {"w": {"from": "q", "rate": 2.0}},
          "links": {"app->q": {"loss": 0.3}}}
    with pytest.raises(simq.ScenarioError, match="retransmit"):
        simq.load(sc)
    sc["links"]["app->q"]["retransmit"] = 0.2
    m = simq.run(sc).summary["messages"]
    assert m["lost"] == 0 and m["produced"] == m["delivered"] + m["in_flight"]


@pytest.mark.parametrize(
    ("link", "path"),
    [({"shares": "nowhere"}, "links.p1->q.shares"),
     ({"shares": "p0->q", "bandwidth": 10}, "links.p1->q"),
     ({"retransmit": 0}, "links.p1->q.retransmit")],
)
def test_bad_links_are_refused(link: dict[str, Any], path: str) -> None:
    sc = _link(2)
    sc["links"]["p1->q"] = link
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path == path
