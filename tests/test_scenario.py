"""The scenario layer: loading, shorthands, overrides, and every rule a user can break."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

import simq
from simq.errors import ScenarioError
from simq.scenario import Scenario, parse_override

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.yaml"))


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_every_bundled_model_loads(path: Path) -> None:
    sc = simq.load(path)
    assert sc.name == path.stem
    assert sc.queues
    # Something must send: a producer, or a backlog present at time 0.
    assert sc.producers or any(q.backlog for q in sc.queues.values())
    # Every bundled model teaches something, and says what in its first line.
    assert path.read_text(encoding="utf-8").startswith("#")


def test_models_folder_is_not_empty() -> None:
    assert len(MODELS) >= 5


def test_rate_shorthands_equal_their_long_forms(raw: dict[str, Any]) -> None:
    long = copy.deepcopy(raw)
    del long["producers"]["app"]["rate"]
    long["producers"]["app"]["interarrival"] = "exponential(rate=1.0)"
    del long["consumers"]["worker"]["rate"]
    long["consumers"]["worker"]["service"] = "exponential(rate=2.0)"
    short_sc, long_sc = simq.Scenario(raw), simq.Scenario(long)
    assert short_sc.resolved() == long_sc.resolved()
    assert short_sc.producers["app"].interarrival.mean == pytest.approx(1.0)
    assert short_sc.consumers["worker"].service.mean == pytest.approx(0.5)
    # Same streams, same draws: the shorthand is not merely equal on paper.
    a = simq.run(short_sc).summary
    b = simq.run(long_sc).summary
    assert a["latency"] == b["latency"] and a["messages"] == b["messages"]


def test_shorthand_and_long_form_together_are_refused(raw: dict[str, Any]) -> None:
    raw["producers"]["app"]["interarrival"] = "exponential(rate=1.0)"
    with pytest.raises(simq.ScenarioError, match=r"producers\.app\.rate"):
        simq.Scenario(raw)


def test_with_overrides_returns_a_new_scenario_and_keeps_the_old(raw: dict[str, Any]) -> None:
    old = simq.Scenario(raw)
    before = old.to_dict()
    new = old.with_overrides({"producers.app.rate": 1.5, "consumers.worker.count": 3,
                              "run.until": 50})
    assert new is not old
    assert old.to_dict() == before
    assert old.producers["app"].interarrival.mean == pytest.approx(1.0)
    assert old.consumers["worker"].count == 1 and old.run.until == 100
    assert new.producers["app"].interarrival.mean == pytest.approx(1 / 1.5)
    assert new.consumers["worker"].count == 3 and new.run.until == 50
    assert new != old


def test_overriding_the_long_form_replaces_the_shorthand(raw: dict[str, Any]) -> None:
    sc = simq.Scenario(raw).with_overrides({"consumers.worker.service": "constant(0.25)"})
    assert "rate" not in sc.to_dict()["consumers"]["worker"]
    assert sc.consumers["worker"].service.mean == pytest.approx(0.25)
    assert sc.consumers["worker"].service.scv == pytest.approx(0.0)


def test_scenario_is_immutable(raw: dict[str, Any]) -> None:
    sc = simq.Scenario(raw)
    with pytest.raises(AttributeError):
        sc.name = "other"  # type: ignore[misc]
    raw["producers"]["app"]["rate"] = 9.0  # the caller's mapping is copied, not kept
    assert sc.producers["app"].interarrival.mean == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("run.until=.inf", "run.until", math.inf),
        ("links.app->broker.bandwidth=1e8", "links.app->broker.bandwidth", 1e8),
        ("links.app->broker.bandwidth=1.25e8", "links.app->broker.bandwidth", 1.25e8),
        ("consumers.worker.count=3", "consumers.worker.count", 3),
        ("producers.app.rate=0.9", "producers.app.rate", 0.9),
        ("queues.broker.capacity=.inf", "queues.broker.capacity", math.inf),
        ("consumers.worker.service=erlang(k=2, mean=0.5)", "consumers.worker.service",
         "erlang(k=2, mean=0.5)"),
        ("queues.broker.overflow=drop-oldest", "queues.broker.overflow", "drop-oldest"),
        ("name = renamed", "name", "renamed"),
    ],
)
def test_set_values_are_read_as_yaml(text: str, path: str, value: Any) -> None:
    got_path, got = parse_override(text)
    assert got_path == path
    assert got == value and type(got) is type(value)


def test_an_endless_run_is_refused(raw: dict[str, Any]) -> None:
    # `.inf` parses as a number, but a run without end would never return.
    with pytest.raises(simq.ScenarioError, match=r"run\.until.*inf"):
        simq.Scenario(raw).with_overrides(dict([parse_override("run.until=.inf")]))


def test_parsed_overrides_apply(raw: dict[str, Any]) -> None:
    raw["links"] = {"app->broker": {}}
    sc = simq.Scenario(raw).with_overrides(dict(parse_override(t) for t in [
        "queues.broker.capacity=.inf", "links.app->broker.bandwidth=1e8",
        "consumers.worker.service=constant(0.25)", "queues.broker.overflow=block",
    ]))
    assert math.isinf(sc.queues["broker"].capacity)
    assert sc.links["app->broker"].bandwidth == 1e8
    assert sc.consumers["worker"].service.mean == 0.25
    assert sc.queues["broker"].overflow == "block"


@pytest.mark.parametrize("text", ["producers.app.rate", "=3", ""])
def test_set_without_equals_is_refused(text: str) -> None:
    with pytest.raises(simq.ScenarioError, match="--set"):
        parse_override(text)


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("producers.nope.rate", 1.0, "nope"),
        ("run.until.x", 1.0, "run.until.x"),
        ("bogus.key", 1.0, "bogus.key"),
        ("producers.app", 1.0, "producers.app"),
        ("links.x->y.loss", 0.1, "x->y"),
        ("run.bogus", 1, "run.bogus"),
        ("consumers.worker.nope", 1, "consumers.worker.nope"),
        ("queues.broker.capacity", "lots", "lots"),
        ("consumers.worker.count", 0, "0"),
        ("producers.app.rate", -2, "-2"),
    ],
)
def test_impossible_overrides_are_refused_naming_the_path(
    raw: dict[str, Any], path: str, value: Any, needle: str
) -> None:
    sc = simq.Scenario(raw)
    with pytest.raises(simq.ScenarioError) as err:
        sc.with_overrides({path: value})
    assert needle in str(err.value)
    assert str(err.value).startswith(path.split(".")[0])


# Every rule, each as (what to change, the path the message must name, the value it must show).
def _set(keys: str, value: Any):  # type: ignore[no-untyped-def]
    def apply(d: dict[str, Any]) -> None:
        *parents, last = keys.split("/")
        for k in parents:
            d = d.setdefault(k, {})
        d[last] = value

    return apply


def _drop(keys: str):  # type: ignore[no-untyped-def]
    def apply(d: dict[str, Any]) -> None:
        *parents, last = keys.split("/")
        for k in parents:
            d = d[k]
        del d[last]

    return apply


def _both(*fs):  # type: ignore[no-untyped-def]
    def apply(d: dict[str, Any]) -> None:
        for f in fs:
            f(d)

    return apply


BAD: list[tuple[str, Any, str, str]] = [
    # unknown keys at every level
    ("unknown top", _set("bogus", 1), "bogus", "unknown key"),
    ("unknown run", _set("run/bogus", 1), "run.bogus", "unknown key"),
    ("unknown producer", _set("producers/app/bogus", 1), "producers.app.bogus", "unknown"),
    ("unknown queue", _set("queues/broker/bogus", 1), "queues.broker.bogus", "unknown"),
    ("unknown consumer", _set("consumers/worker/bogus", 1), "consumers.worker.bogus",
     "unknown"),
    ("unknown link", _set("links/app->broker", {"bogus": 1}), "links.app->broker.bogus",
     "unknown"),
    # wrong types
    ("until text", _set("run/until", "soon"), "run.until", "'soon'"),
    ("count text", _set("consumers/worker/count", "three"), "consumers.worker.count",
     "'three'"),
    ("capacity text", _set("queues/broker/capacity", "lots"), "queues.broker.capacity",
     "'lots'"),
    ("overflow", _set("queues/broker/overflow", "explode"), "queues.broker.overflow",
     "'explode'"),
    ("producers list", _set("producers", [1, 2]), "producers", "[1, 2]"),
    ("run null", _set("run", None), "run", "None"),
    ("rate text", _set("producers/app/rate", "fast"), "producers.app.rate", "'fast'"),
    ("rate bool", _set("producers/app/rate", True), "producers.app.rate", "True"),
    # rates and distributions
    ("negative rate", _set("producers/app/rate", -1), "producers.app.rate", "-1"),
    ("zero rate", _set("consumers/worker/rate", 0), "consumers.worker.rate", "0"),
    ("inf rate", _set("producers/app/rate", math.inf), "producers.app.rate", "inf"),
    ("zero rate long form",
     _both(_drop("producers/app/rate"), _set("producers/app/interarrival",
                                             "exponential(rate=0)")),
     "producers.app.interarrival", "0"),
    ("negative service",
     _both(_drop("consumers/worker/rate"), _set("consumers/worker/service",
                                                "exponential(rate=-2)")),
     "consumers.worker.service", "-2"),
    ("unknown distribution",
     _both(_drop("consumers/worker/rate"), _set("consumers/worker/service", "gaussian(1)")),
     "consumers.worker.service", "gaussian"),
    ("code as distribution",
     _both(_drop("producers/app/rate"), _set("producers/app/interarrival",
                                             "__import__('os').system('true')")),
     "producers.app.interarrival", "__import__"),
    # counts and capacities
    ("count 0", _set("consumers/worker/count", 0), "consumers.worker.count", "0"),
    ("count 1.5", _set("consumers/worker/count", 1.5), "consumers.worker.count", "1.5"),
    ("count -3", _set("consumers/worker/count", -3), "consumers.worker.count", "-3"),
    ("capacity -1", _set("queues/broker/capacity", -1), "queues.broker.capacity", "-1"),
    ("capacity 2.5", _set("queues/broker/capacity", 2.5), "queues.broker.capacity", "2.5"),
    ("capacity nan", _set("queues/broker/capacity", math.nan), "queues.broker.capacity",
     "nan"),
    # run
    ("until negative", _set("run/until", -5), "run.until", "-5"),
    ("until zero", _set("run/until", 0), "run.until", "0"),
    ("no length", _drop("run/until"), "run", "until"),
    ("warmup past until", _set("run/warmup", 200), "run", "200"),
    ("replications 0", _set("run/replications", 0), "run.replications", "0"),
    ("messages 0", _both(_drop("run/until"), _set("run/messages", 0)), "run.messages", "0"),
    ("seed negative", _set("run/seed", -1), "run.seed", "-1"),
    ("bad name", _set("name", "a b/c"), "name", "a b/c"),
    ("name escaping runs/", _set("name", ".."), "name", "'..'"),
    ("name of dots", _set("name", "."), "name", "'.'"),
    # links
    ("loss 1.0", _set("links/app->broker", {"loss": 1.0}), "links.app->broker.loss", "1.0"),
    ("loss negative", _set("links/app->broker", {"loss": -0.1}), "links.app->broker.loss",
     "-0.1"),
    ("bandwidth 0", _set("links/app->broker", {"bandwidth": 0}),
     "links.app->broker.bandwidth", "0"),
    ("link with no flow", _set("links/worker->broker", {}), "links.worker->broker",
     "worker"),
    ("link to a consumer", _set("links/app->worker", {}), "links.app->worker", "'worker'"),
    ("link without arrow", _set("links/appbroker", {}), "links.appbroker", "from->to"),
    ("link without source", _set("links/->broker", {}), "links.->broker", "from->to"),
    ("link without target", _set("links/app->", {}), "links.app->", "from->to"),
    # references
    ("producer to nowhere", _set("producers/app/to", "nope"), "producers.app.to", "'nope'"),
    ("consumer from nowhere", _set("consumers/worker/from", "nope"), "consumers.worker.from",
     "'nope'"),
    ("consumer to nowhere", _set("consumers/worker/to", "nope"), "consumers.worker.to",
     "'nope'"),
    ("self loop", _set("consumers/worker/to", "broker"), "consumers.worker.to", "'broker'"),
    ("two-queue cycle",
     _both(_set("queues/b2", {}), _set("consumers/worker/to", "b2"),
           _set("consumers/w2", {"from": "b2", "rate": 1.0, "to": "broker"})),
     "consumers.w2.to", "broker -> worker -> b2 -> w2 -> broker"),
    ("name reused", _set("queues/app", {}), "queues.app", "producers"),
    ("no producers", _set("producers", {}), "producers", "at least one producer"),
    ("no consumer source", _drop("consumers/worker/from"), "consumers.worker.from",
     "missing"),
    ("python name for from", _both(_drop("consumers/worker/from"),
                                   _set("consumers/worker/source", "broker")),
     "consumers.worker.from", "missing"),
    ("from and source", _set("consumers/worker/source", "broker"), "consumers.worker.source",
     "unknown key"),
]


@pytest.mark.parametrize(("mutate", "path", "shows"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_scenarios_are_refused_naming_path_and_value(
    raw: dict[str, Any], mutate: Any, path: str, shows: str
) -> None:
    mutate(raw)
    with pytest.raises(simq.ScenarioError) as err:
        simq.Scenario(raw)
    msg = str(err.value)
    assert msg.startswith(path + ":"), msg
    assert shows in msg, msg
    assert err.value.path == path


def test_bad_scenarios_fail_the_same_way_from_yaml(tmp_path: Path, raw: dict[str, Any]) -> None:
    # Through a file, a YAML-typed value reaches the same rule.
    raw["consumers"]["worker"]["count"] = 0
    import yaml

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(simq.ScenarioError, match=r"consumers\.worker\.count.*got 0"):
        simq.load(f)


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("run:\n  until: 10\n producers: [\n", encoding="utf-8")
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(f)
    assert str(f) in str(err.value) and "line 3" in str(err.value)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("run: {until: 5}\nrun: {until: 10}\n", "'run'", "line 2"),
        ("run: {until: 5, until: 6}\n", "'until'", "line 1"),
        ("producers:\n  app: {to: q, rate: 1}\n  app: {to: q, rate: 2}\n", "'app'", "line 3"),
    ],
)
def test_a_key_given_twice_is_refused(tmp_path: Path, text: str, key: str, line: str) -> None:
    # Plain YAML keeps the last value and silently forgets the first.
    f = tmp_path / "twice.yaml"
    f.write_text(text + "queues: {q: {}}\n", encoding="utf-8")
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(f)
    msg = str(err.value)
    assert str(f) in msg and key in msg and "twice" in msg and line in msg


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    f = tmp_path / "merge.yaml"
    f.write_text(
        "run: {until: 10}\n"
        "producers:\n"
        "  a: &p {to: q, rate: 1, size: constant(10)}\n"
        "  b: {<<: *p, rate: 2}\n"
        "queues: {q: {}}\n", encoding="utf-8")
    sc = simq.load(f)
    assert sc.producers["b"].interarrival.mean == pytest.approx(0.5)
    assert sc.producers["b"].size.mean == 10


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(simq.ScenarioError, match="empty") as err:
        simq.load(f)
    assert str(f) in str(err.value)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just text\n", "42\n"])
def test_a_file_that_is_not_a_mapping_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    f = tmp_path / "odd.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(simq.ScenarioError, match="mapping") as err:
        simq.load(f)
    assert str(f) in str(err.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "nope.yaml"
    with pytest.raises(simq.ScenarioError, match="no such") as err:
        simq.load(f)
    assert str(f) in str(err.value)


TOML = """\
name = "from-toml"
[run]
until = 100.0
[producers.app]
to = "broker"
rate = 1.0
[queues.broker]
capacity = 5
[consumers.worker]
from = "broker"
rate = 2.0
"""


def test_toml_loads_like_yaml(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(TOML, encoding="utf-8")
    sc = simq.load(f)
    assert sc.name == "from-toml"
    assert sc.queues["broker"].capacity == 5
    assert sc.consumers["worker"].source == "broker"
    assert sc.producers["app"].interarrival.mean == pytest.approx(1.0)


def test_bad_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[run\n", encoding="utf-8")
    with pytest.raises(simq.ScenarioError, match="TOML") as err:
        simq.load(f)
    assert str(f) in str(err.value)


def test_toml_rules_are_the_same(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(TOML.replace("capacity = 5", "capacity = -1"), encoding="utf-8")
    with pytest.raises(simq.ScenarioError, match=r"queues\.broker\.capacity.*-1"):
        simq.load(f)


def test_yaml_reads_exponents_as_numbers(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "run: {until: 1e3}\n"
        "producers: {app: {to: broker, rate: 1}}\n"
        "queues: {broker: {capacity: .inf}}\n"
        "consumers: {worker: {from: broker, rate: 2}}\n"
        "links: {app->broker: {bandwidth: 1.25e8}}\n",
        encoding="utf-8",
    )
    sc = simq.load(f)
    assert sc.run.until == 1000.0
    assert sc.links["app->broker"].bandwidth == 1.25e8
    assert math.isinf(sc.queues["broker"].capacity)


def test_capacity_accepts_whole_floats_and_infinity_words(raw: dict[str, Any]) -> None:
    for value, expected in [(3.0, 3.0), (0, 0.0), ("inf", math.inf), (".inf", math.inf)]:
        raw["queues"]["broker"]["capacity"] = value
        assert simq.Scenario(raw).queues["broker"].capacity == expected


def test_a_scenario_survives_pickling_for_process_pools() -> None:
    import pickle

    sc = simq.load(ROOT / "models" / "tandem.yaml").with_overrides({"producers.orders.rate": 0.5})
    back = pickle.loads(pickle.dumps(sc))
    assert back == sc and back.source == sc.source and back.base_dir == sc.base_dir
    assert back.producers["orders"].interarrival.mean == 2.0


@pytest.mark.parametrize(("where", "key", "meant"), [
    ((), "producer", "producers"),
    (("producers", "app"), "interarival", "interarrival"),
    (("producers", "app"), "rat", "rate"),  # a shorthand, not a schema field
    (("consumers", "worker"), "servce", "service"),
    (("queues", "broker"), "overflw", "overflow"),
    (("run",), "replication", "replications"),
])
def test_an_unknown_key_in_a_file_gets_a_suggestion(raw: dict[str, Any], where: tuple[str, ...],
                                                    key: str, meant: str) -> None:
    target = raw
    for step in where:
        target = target[step]
    target[key] = 1
    with pytest.raises(ScenarioError) as err:
        Scenario(raw)
    assert err.value.path == ".".join((*where, key))
    # The suggestion is the whole path to write, not only the key.
    assert f"unknown key (not allowed in {'.'.join(where) or 'top level'}); did you mean " \
           f"{'.'.join((*where, meant))!r}?" == err.value.rule


def test_a_key_far_from_every_allowed_one_gets_no_suggestion(raw: dict[str, Any]) -> None:
    raw["queues"]["broker"]["zzzz"] = 1
    with pytest.raises(ScenarioError) as err:
        Scenario(raw)
    assert "did you mean" not in err.value.rule
