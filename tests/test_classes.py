"""Message classes with their own service: Cobham with class-dependent moments, P-K with
a mixture, the first-served rule in a pipeline, batches, streams and the traffic model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_agrees

import simq
from simq import theory
from simq.engine.core import Message
from simq.engine.serve import Classes
from simq.model.network import network

MODELS = Path(__file__).resolve().parent.parent / "models"


def _cobham(discipline: str = "priority", records: str = "full") -> dict[str, Any]:
    # The textbook case: lambda1 = 0.3, mu1 = 2 (served first); lambda2 = 0.4, mu2 = 1.
    return {
        "run": {"until": 6000, "warmup": 600, "seed": 5, "records": records},
        "producers": {
            "hi": {"to": "q", "rate": 0.3, "priority": 1, "service": "exponential(rate=2)"},
            "lo": {"to": "q", "rate": 0.4},
        },
        "queues": {"q": {"discipline": discipline}},
        "consumers": {"w": {"from": "q", "service": "exponential(rate=1)"}},
    }


@pytest.mark.parametrize("records", ["full", "summary"])
def test_cobham_with_class_dependent_service(records: str) -> None:
    res = simq.run(_cobham(records=records), replications=8)
    cobham = theory.priority_mg1([0.3, 0.4], [0.5, 1.0], [1.0, 1.0])
    assert_agrees(res, "producers.hi.wait_mean", cobham.wait_means[0])
    assert_agrees(res, "producers.lo.wait_mean", cobham.wait_means[1])
    assert_agrees(res, "consumers.w.utilization", 0.3 * 0.5 + 0.4 * 1.0)
    m = res.summary["messages"]
    assert m["produced"] == m["delivered"] + m["dropped"] + m["in_flight"]


def test_predict_names_cobham_with_class_moments() -> None:
    pred = simq.predict(simq.load(_cobham()))
    assert pred.kind == "exact" and "Cobham" in pred.model
    cobham = theory.priority_mg1([0.3, 0.4], [0.5, 1.0], [1.0, 1.0])
    q = pred.queues["q"]
    assert q.wait_mean == pytest.approx(cobham.wait_mean)
    assert q.service_mean == pytest.approx((0.3 * 0.5 + 0.4) / 0.7)
    assert "0.5588" in pred.reason and "1.242" in pred.reason


def test_fifo_mixture_matches_pollaczek_khinchine() -> None:
    sc = _cobham("fifo")
    sc["producers"]["hi"]["service"] = "constant(0.5)"
    res = simq.run(sc, replications=8)
    # Each message's service is the mixture: E[S] and E[S^2] weighted by the class rates.
    mean = (0.3 * 0.5 + 0.4 * 1.0) / 0.7
    m2 = (0.3 * 0.25 + 0.4 * 2.0) / 0.7
    pk = theory.mg1(0.7, mean, m2 / mean**2 - 1.0)
    pred = simq.predict(simq.load(sc))
    assert pred.kind == "exact" and "Pollaczek" in pred.model
    assert pred.queues["q"].wait_mean == pytest.approx(pk.wait_mean)
    for name in ("hi", "lo"):
        assert_agrees(res, f"producers.{name}.wait_mean", pk.wait_mean)
    assert_agrees(res, "queues.q.wait_mean", pk.wait_mean)


def _pipeline() -> dict[str, Any]:
    return {
        "run": {"until": 400, "seed": 2},
        "producers": {
            "a": {"to": "q", "rate": 0.3, "service": "constant(0.2)", "decode": "constant(0.05)"},
            "b": {"to": "q", "rate": 0.4},
        },
        "queues": {"q": {}, "r": {}},
        "consumers": {
            "first": {"from": "q", "service": "constant(0.5)", "to": "r"},
            "second": {"from": "r", "service": "constant(0.1)",
                       "service_by": {"b": "constant(0.3)"}},
        },
    }


def test_a_class_without_service_gets_the_groups_and_the_rule_of_a_pipeline() -> None:
    res = simq.run(_pipeline())
    f = res.messages
    a, b = f[f["producer"] == "a"], f[f["producer"] == "b"]
    assert len(a) > 50 and len(b) > 50
    # Service summed over both stages: a gets its own at the first (0.2) and the second
    # group's (0.1) after; b the first group's (0.5) and its service_by entry (0.3).
    assert np.allclose(a["service"].dropna(), 0.2 + 0.1)
    assert np.allclose(b["service"].dropna(), 0.5 + 0.3)
    assert np.allclose(a["decode"].dropna(), 0.05) and np.allclose(b["decode"], 0.0)


def test_traffic_model_weighs_the_class_means_by_their_rates() -> None:
    sc = simq.load(_pipeline())
    net = network(sc)
    first, second = net.stations["q"], net.stations["r"]
    assert first.service_mean == pytest.approx((0.3 * 0.25 + 0.4 * 0.5) / 0.7)
    assert second.service_mean == pytest.approx((0.3 * 0.1 + 0.4 * 0.3) / 0.7)
    assert net.utilisation["q"] == pytest.approx(0.3 * 0.25 + 0.4 * 0.5)
    assert first.service is None  # the classes' services differ
    # One producer with its own service: the station serves that one distribution.
    alone = _pipeline()
    del alone["producers"]["b"], alone["consumers"]["second"]["service_by"]
    one = simq.load(alone)
    assert network(one).stations["q"].service == simq.load(alone).producers["a"].service


def test_an_overloading_class_warns() -> None:
    sc = _cobham()
    sc["run"] = {"until": 300}
    sc["producers"]["hi"]["service"] = "exponential(mean=3)"  # 0.9 + 0.4 > 1
    assert network(simq.load(sc)).utilisation["q"] == pytest.approx(1.3)
    with pytest.warns(simq.UnstableWarning):
        simq.run(sc)


def test_a_batch_takes_its_slowest_class() -> None:
    def sampler(x: float) -> Any:
        return lambda: x

    classes = Classes([sampler(0.1), sampler(1.0), sampler(7.0)], [None, None, None],
                      [0.1, 1.0, 7.0])
    a, b, backlog = Message(0, 0.0, 1.0, 0), Message(1, 0.0, 1.0, 1), Message(2, 0.0, 1.0)
    assert classes.service([a]) == 0.1
    assert classes.service([a, b, a]) == 1.0
    assert classes.service([backlog]) == 7.0  # no producer: the group's own
    # On paper: half the messages of each class, full batches of 2 have the slow class
    # with probability 3/4.
    sc = simq.load({
        "run": {"until": 100},
        "producers": {"a": {"to": "q", "rate": 1.0, "service": "constant(0.1)"},
                      "b": {"to": "q", "rate": 1.0}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "service": "constant(1.0)", "batch": 2}},
    })
    assert network(sc).stations["q"].capacity == pytest.approx(2 / (0.25 * 0.1 + 0.75 * 1.0))


def test_batches_with_classes_conserve_in_both_record_modes() -> None:
    sc = _cobham("fifo")
    sc["run"] = {"until": 500, "seed": 3}
    sc["consumers"]["w"]["batch"] = 3
    sc["consumers"]["w"]["decode"] = "constant(0.01)"
    for records in ("full", "summary"):
        sc["run"]["records"] = records
        m = simq.run(sc).summary["messages"]
        assert m["delivered"] > 300
        assert m["produced"] == m["delivered"] + m["dropped"] + m["in_flight"]


def test_same_seed_same_numbers_and_a_class_keeps_its_stream() -> None:
    sc = _cobham("fifo")
    sc["run"] = {"until": 300, "seed": 9}
    one, two = simq.run(sc), simq.run(sc)
    assert one.summary == two.summary
    # Changing the other class's service leaves hi's draws alone (its own stream).
    sc["producers"]["lo"]["service"] = "exponential(rate=0.9)"
    three = simq.run(sc)
    hi = [r.messages[r.messages["producer"] == "hi"].sort_values("id")["service"].to_numpy()
          for r in (one, three)]
    assert len(hi[0]) > 50 and np.array_equal(hi[0], hi[1])
    lo = [r.messages[r.messages["producer"] == "lo"]["service"].mean() for r in (one, three)]
    assert lo[0] != lo[1]


def test_sync_class_demand_in_mean_value_analysis() -> None:
    sc = simq.load({
        "run": {"until": 100},
        "producers": {"app": {"to": "q", "mode": "sync", "clients": 3, "think": "constant(1)",
                              "service": "exponential(rate=2)"}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "service": "exponential(rate=1)"}},
    })
    pred = simq.predict(sc)
    assert pred.kind == "exact"
    assert pred.throughput == pytest.approx(theory.mva(3, [0.5], think=1.0).throughput)
    assert network(sc).rates["app"] == pytest.approx(pred.throughput)


def test_bad_class_tables_are_refused_naming_the_field() -> None:
    sc = _cobham()
    sc["consumers"]["w"]["service_by"] = {"nobody": "constant(1)"}
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path == "consumers.w.service_by.nobody" and "producer" in str(err.value)
    sc["consumers"]["w"]["service_by"] = {}
    with pytest.raises(simq.ScenarioError, match="at least one producer"):
        simq.load(sc)
    sc["consumers"]["w"].pop("service_by")
    sc["producers"]["hi"]["service"] = "exponential(rat=2)"
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(sc)
    assert err.value.path.startswith("producers.hi.service")


def test_priority_classes_model_runs_and_predicts() -> None:
    sc = simq.load(MODELS / "priority_classes.yaml")
    assert simq.predict(sc).kind == "exact"
    res = simq.run(sc, overrides={"run.until": 2000, "run.warmup": 200})
    p = res.summary["producers"]
    assert p["urgent"]["wait_mean"] < p["bulk"]["wait_mean"]
