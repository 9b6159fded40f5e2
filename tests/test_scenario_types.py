"""The validated value types of simq.scenario.types, seen through scenario files: each
refuses its bad values (booleans, negatives, nan, infinity where no bound is meant) and
the message names the key; and producers take only the keys of their mode."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest

import simq
from simq.errors import ScenarioError


def base() -> dict[str, Any]:
    return {
        "run": {"until": 100},
        "producers": {"app": {"to": "broker", "rate": 1.0}},
        "queues": {"broker": {}},
        "consumers": {"worker": {"from": "broker", "rate": 2.0}},
    }


def refused(raw: dict[str, Any]) -> simq.ScenarioError:
    with pytest.raises(simq.ScenarioError) as err:
        simq.Scenario(raw)
    return err.value


COUNTS = [
    ("consumers", "worker", "batch"),
    ("consumers", "worker", "count"),
    ("consumers", "worker", "prefetch"),
    ("producers", "app", "credits"),
    ("run", None, "replications"),
    ("run", None, "seed"),
]


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize(("section", "name", "key"), COUNTS)
def test_booleans_are_refused_as_counts(section: str, name: str | None, key: str,
                                        value: bool) -> None:
    raw = base()
    where = raw[section] if name is None else raw[section][name]
    where[key] = value
    err = refused(raw)
    path = f"{section}.{key}" if name is None else f"{section}.{name}.{key}"
    assert err.path == path
    assert f"got {value!r}" in str(err)


def test_batch_true_is_refused_naming_the_field() -> None:
    raw = base()
    raw["consumers"]["worker"]["batch"] = True
    assert str(refused(raw)) == "consumers.worker.batch: must be an integer >= 1, got True"


def test_nested_counts_refuse_booleans_too() -> None:
    raw = base()
    raw["producers"]["app"].update(timeout=1, retry={"max_attempts": True})
    assert refused(raw).path == "producers.app.retry.max_attempts"
    raw = base()
    raw["queues"]["broker"]["backlog"] = {"count": True}
    assert refused(raw).path == "queues.broker.backlog.count"
    raw = base()
    raw["producers"]["app"] = {"to": "broker", "mode": "window", "window": True}
    assert refused(raw).path == "producers.app.window"


def test_whole_floats_are_counts_and_fractions_are_not() -> None:
    raw = base()
    raw["consumers"]["worker"]["batch"] = 2.0
    assert simq.Scenario(raw).consumers["worker"].batch == 2
    raw["consumers"]["worker"]["batch"] = 2.5
    assert "got 2.5" in str(refused(raw))


# (where, key, value, what the message shows): each type's bad values.
BAD_VALUES = [
    (("producers", "app"), "start", -1, "got -1"),
    (("producers", "app"), "start", math.nan, "got nan"),
    (("producers", "app"), "start", "inf", "got 'inf'"),
    (("producers", "app"), "start", True, "got True"),
    (("producers", "app"), "ttl", 0, "got 0"),
    (("producers", "app"), "ttl", math.inf, "got inf"),
    (("producers", "app"), "batch_size", -5, "got -5"),
    (("links", "app->broker"), "loss", 1, "[0, 1)"),
    (("links", "app->broker"), "loss", True, "got True"),
    (("links", "app->broker"), "bandwidth", -1, "got -1"),
    (("links", "app->broker"), "bandwidth", math.nan, "got nan"),
    (("links", "app->broker"), "bandwidth", False, "got False"),
    (("consumers", "worker"), "poison", 1.5, "[0, 1]"),
    (("consumers", "worker"), "failure", math.nan, "got nan"),
    (("queues", "broker"), "capacity", True, "got True"),
    (("queues", "broker"), "capacity", "-inf", "got '-inf'"),
]


@pytest.mark.parametrize(("where", "key", "value", "shows"), BAD_VALUES,
                         ids=[f"{w[0]}.{k}={v!r}" for w, k, v, _ in BAD_VALUES])
def test_each_type_refuses_its_bad_values_naming_the_field(
    where: tuple[str, str], key: str, value: Any, shows: str
) -> None:
    raw = base()
    raw.setdefault(where[0], {}).setdefault(where[1], {})[key] = value
    err = refused(raw)
    assert err.path == f"{where[0]}.{where[1]}.{key}", str(err)
    assert shows in str(err), str(err)


@pytest.mark.parametrize("word", ["inf", ".inf", "Infinity", "unbounded", math.inf])
def test_infinity_is_read_the_same_way_wherever_it_is_allowed(word: Any) -> None:
    raw = base()
    raw["queues"]["broker"]["capacity"] = word
    raw["links"] = {"app->broker": {"bandwidth": word}}
    raw["consumers"]["worker"].update(ack="manual", max_attempts=3,
                                      backoff={"policy": "exponential", "cap": word})
    sc = simq.Scenario(raw)
    assert sc.queues["broker"].capacity == math.inf
    assert sc.links["app->broker"].bandwidth == math.inf
    backoff = sc.consumers["worker"].backoff
    assert backoff is not None and backoff.cap == math.inf


@pytest.mark.parametrize(("mode", "key", "value", "needs"), [
    ("async", "clients", 4, "sync"),
    ("async", "think", "constant(1)", "sync"),
    ("async", "window", 3, "window"),
    ("window", "clients", 2, "sync"),
    ("sync", "window", 3, "window"),
    ("sync", "interarrival", "constant(1)", "async or window"),
    ("sync", "arrivals", {"spike": {"base": 1, "peak": 2, "start": 1, "duration": 1}},
     "async or window"),
])
def test_a_key_of_another_mode_is_refused_naming_key_and_modes(
    mode: str, key: str, value: Any, needs: str
) -> None:
    raw = base()
    p: dict[str, Any] = {"to": "broker", "mode": mode}
    if mode == "async":
        p["rate"] = 1.0
    if mode == "window":
        p["window"] = 2
    p[key] = value
    raw["producers"]["app"] = p
    err = refused(raw)
    assert err.path == "producers.app"
    assert f"`{key}`" in str(err) and f"needs mode: {needs}" in str(err), str(err)
    assert f"this producer's mode is {mode}" in str(err), str(err)


def test_the_default_mode_is_async_and_each_mode_keeps_only_its_keys() -> None:
    raw = base()
    raw["producers"]["app"] = {"to": "broker", "rate": 1.0}
    p = simq.Scenario(raw).producers["app"]
    assert p.mode == "async" and not hasattr(p, "clients") and not hasattr(p, "window")
    assert p.pace is not None and p.pace.mean == pytest.approx(1.0)
    raw["producers"]["app"] = {"to": "broker", "mode": "sync", "clients": 3}
    p = simq.Scenario(raw).producers["app"]
    assert p.mode == "sync" and p.clients == 3 and p.pace is None
    assert not hasattr(p, "interarrival")
    raw["producers"]["app"] = {"to": "broker", "mode": "window", "window": 4}
    p = simq.Scenario(raw).producers["app"]
    assert p.mode == "window" and p.window == 4 and p.pace is None


@pytest.mark.parametrize(("producer", "words"), [
    ({"to": "broker"}, "an async producer needs `interarrival`"),
    ({"to": "broker", "mode": "window"}, "a window producer needs `window`"),
])
def test_a_missing_key_of_the_mode_is_named(producer: dict[str, Any], words: str) -> None:
    raw = base()
    raw["producers"]["app"] = producer
    err = refused(raw)
    assert err.path == "producers.app" and words in str(err)


@pytest.mark.parametrize("mode", ["bogus", None, 3])
def test_an_unknown_mode_is_refused_at_the_mode(mode: Any) -> None:
    raw = base()
    raw["producers"]["app"]["mode"] = mode
    err = refused(raw)
    assert err.path == "producers.app.mode"
    assert "async, sync, window" in str(err) and repr(mode) in str(err)


def test_an_unknown_producer_key_is_still_suggested_across_modes() -> None:
    raw = base()
    raw["producers"]["app"]["clinets"] = 2
    err = refused(raw)
    assert err.path == "producers.app.clinets"
    assert "did you mean 'producers.app.clients'" in str(err)


def test_scenario_exposes_its_validated_model() -> None:
    sc = simq.Scenario(base())
    assert isinstance(sc.model, simq.scenario.Model)
    assert sc.model.producers["app"] is sc.producers["app"]


def test_every_mistake_of_a_scenario_is_named_at_once() -> None:
    raw = {"name": "x", "run": {"until": True, "seed": -1},
           "producers": {"app": {"to": "q", "rate": 1, "rat": 2}},
           "queues": {"q": {"capacity": -1}},
           "consumers": {"w": {"from": "q", "rate": 1}}}
    with pytest.raises(ScenarioError) as err:
        simq.Scenario(raw)
    e = err.value
    assert e.path == "run.until"
    paths = [a.split(":")[0] for a in e.also]
    assert paths == ["run.seed", "producers.app.rat", "queues.q.capacity"]
    assert "did you mean 'producers.app.rate'?" in e.also[1]
    assert str(e).startswith("run.until: must be a number > 0, got True (and 3 more: run.seed")
    again = pickle.loads(pickle.dumps(e))  # rebuilt across processes with its other errors
    assert str(again) == str(e)


@pytest.mark.parametrize(("change", "rule"), [
    ({"links": {"app->q": "constant(0)"}},
     "links.app->q: must be a mapping of keys to values, got 'constant(0)'"),
    ({"name": 3}, "name: must be text, got 3"),
    ({"consumers": {"w": {"from": "q", "rate": 1, "ack": "often"}}},
     "consumers.w.ack: must be 'auto' or 'manual', got 'often'"),
])
def test_errors_are_worded_like_the_rest_of_simq(change: dict[str, Any], rule: str) -> None:
    raw = {"name": "x", "run": {"until": 100}, "producers": {"app": {"to": "q", "rate": 1}},
           "queues": {"q": {}}, "consumers": {"w": {"from": "q", "rate": 1}}, **change}
    with pytest.raises(ScenarioError) as err:
        simq.Scenario(raw)
    assert str(err.value) == rule
    assert "input should" not in str(err.value).lower()
