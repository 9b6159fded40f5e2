"""The shared scenario builders of conftest.py give valid scenarios of the stated shape."""

from __future__ import annotations

import pytest
from conftest import mm1, one_queue, override, tandem, with_link

import simq


def test_builders_give_valid_scenarios() -> None:
    sc = simq.load(mm1(0.8, 2.0, count=3))
    assert sc.producers["app"].interarrival.mean == pytest.approx(1 / (0.8 * 2.0 * 3))
    assert sc.consumers["w"].count == 3
    t = simq.load(tandem(0.5, [1.0, 2.0, 3.0]))
    assert list(t.queues) == ["a", "b", "c"] and t.consumers["gc"].to is None
    linked = simq.load(with_link(one_queue(0.5), "app->q", loss=0.1))
    assert linked.links["app->q"].loss == 0.1


def test_override_sets_and_deletes_by_dotted_path_on_a_copy() -> None:
    base = one_queue(0.5, until=100)
    sc = override(base, {"run.until": 50, "queues.q.capacity": 3, "run.warmup": None})
    assert sc["run"]["until"] == 50 and "warmup" not in sc["run"]
    assert sc["queues"]["q"] == {"capacity": 3}
    assert base["run"]["until"] == 100 and base["queues"]["q"] == {}
