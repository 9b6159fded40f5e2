"""Message classes with priorities: non-preemptive priority queues against Cobham."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import assert_agrees

import simq
from simq import theory

MODELS = Path(__file__).resolve().parent.parent / "models"


def _two_classes(discipline: str = "priority") -> dict[str, Any]:
    return {
        "run": {"until": 6000, "warmup": 600, "seed": 4},
        "producers": {
            "alerts": {"to": "q", "rate": 0.3, "priority": 9, "size": "constant(200)"},
            "reports": {"to": "q", "rate": 0.4, "size": "constant(50000)"},
        },
        "queues": {"q": {"discipline": discipline}},
        "consumers": {"w": {"from": "q", "service": "erlang(k=2, mean=1.0)"}},
    }


def test_two_classes_match_cobham() -> None:
    # M/G/1 with two non-preemptive priority classes (Erlang-2 service, scv 1/2):
    # Wq_k = W0 / ((1 - sigma_{k-1})(1 - sigma_k)).
    res = simq.run(_two_classes(), replications=8)
    cobham = theory.priority_mg1([0.3, 0.4], [1.0, 1.0], [0.5, 0.5])
    for name, expected in (("alerts", cobham.wait_means[0]), ("reports", cobham.wait_means[1])):
        assert_agrees(res, f"producers.{name}.wait_mean", expected)
    # The overall mean wait is the FIFO one (work conservation): M/G/1 by P-K.
    pk = theory.mg1(0.7, 1.0, 0.5)
    assert_agrees(res, "queues.q.wait_mean", pk.wait_mean)


def test_fifo_treats_classes_alike() -> None:
    # Same scenario, FIFO: both classes wait the P-K mean.
    res = simq.run(_two_classes("fifo"), replications=6)
    pk = theory.mg1(0.7, 1.0, 0.5)
    for name in ("alerts", "reports"):
        assert_agrees(res, f"producers.{name}.wait_mean", pk.wait_mean)


def test_priority_line_serves_highest_first_and_fifo_within_a_class() -> None:
    from simq.engine.core import Message
    from simq.engine.queue import Levels

    prio = {0: 1, 1: 5, 2: 1, 3: 5, 4: 0}
    line = Levels(lambda m: prio[m.id])
    for i in range(5):
        line.append(Message(i, 0.0, 1.0))
    assert len(line) == 5 and sorted(m.id for m in line) == [0, 1, 2, 3, 4]
    assert line[0].id == 0  # the oldest waiting, whatever its priority
    assert [line.popleft().id for _ in range(5)] == [1, 3, 0, 2, 4]
    assert not line
    with pytest.raises(IndexError):
        line.popleft()


def test_conservation_with_a_bounded_priority_queue() -> None:
    sc = _two_classes()
    sc["run"] = {"until": 777.7}
    sc["queues"]["q"] = {"discipline": "priority", "capacity": 3}
    sc["producers"]["alerts"]["rate"] = 0.8
    with pytest.warns(simq.UnstableWarning):
        res = simq.run(sc)
    m = res.summary["messages"]
    assert m["dropped"] > 0
    assert m["produced"] == m["delivered"] + m["dropped"] + m["in_flight"]


def test_drop_oldest_is_refused_for_a_priority_queue() -> None:
    sc = _two_classes()
    sc["queues"]["q"] = {"discipline": "priority", "capacity": 3, "overflow": "drop-oldest"}
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path == "queues.q"


def test_priorities_model_runs() -> None:
    res = simq.run(MODELS / "priorities.yaml", overrides={"run.until": 2000,
                                                           "run.warmup": 200})
    p = res.summary["producers"]
    assert p["payments"]["wait_mean"] < p["batch-export"]["wait_mean"]
