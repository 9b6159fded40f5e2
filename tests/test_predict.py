"""predict(): the right model for each bundled scenario, and "none" with a reason."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simq
from simq import theory
from simq.model.predict import Matcher, Prediction, features, predict, register

# `simq.model.predict` is also the function's name; reach the module itself.
predict_module = sys.modules["simq.model.predict"]
predict_base = sys.modules["simq.model.predict.base"]

MODELS = Path(__file__).resolve().parent.parent / "models"

BUNDLED = {
    "mm1.yaml": ("M/M/1", "exact"),
    "mmc.yaml": ("M/M/c", "exact"),
    "md1.yaml": ("M/D/1", "exact"),
    "bounded.yaml": ("M/M/1/K", "exact"),
    "overload.yaml": ("M/M/1", "exact"),
    "tandem.yaml": ("open Jackson network (M/M/c nodes)", "exact"),
    # The link is an exact M/D/1 on Poisson arrivals; its output is not Poisson, so the
    # queue behind it is approximate.
    "network.yaml": ("link M/D/1, G/G/1 (Kingman, approximate)", "approximate"),
    "warmup.yaml": ("M/M/1", "exact"),
    # Lognormal service, streaming statistics (how it is recorded changes no model).
    "long-run.yaml": ("M/G/1 (Pollaczek-Khinchine)", "exact"),
    # Time-varying load, a backlog at time 0, autoscaling: no steady-state model.
    "spike.yaml": ("none", "none"),
    "diurnal.yaml": ("none", "none"),
    "bursty.yaml": ("none", "none"),
    "backlog_drain.yaml": ("none", "none"),
    "autoscale.yaml": ("none", "none"),
    # Feedback with a constant-time retry stage: traffic equations, M/G/c per station.
    "routing.yaml": ("network with routing (M/G/c per station)", "approximate"),
    # Two independent parts: a synchronous caller (a closed loop, MVA; its decode makes
    # the station non-exponential) and an async poster behind an encoder (G/G/1).
    "sync_vs_async.yaml": ("closed network (MVA) + encode/decode: G/G/1 (Kingman, "
                           "approximate)", "approximate"),
    # Poisson classes, one exponential worker, non-preemptive priorities: Cobham.
    "priorities.yaml": ("M/G/1 non-preemptive priority (Cobham)", "exact"),
    # The same with a class's own service: Cobham with class-dependent moments.
    "priority_classes.yaml": ("M/G/1 non-preemptive priority (Cobham)", "exact"),
    # Semantics whose theory is not matched here (yet): none, naming the keys.
    "pubsub.yaml": ("none", "none"),
    "partitions.yaml": ("none", "none"),
    "kafka_groups.yaml": ("none", "none"),
    "cluster_failover.yaml": ("none", "none"),
    "ordering.yaml": ("none", "none"),
    "batching.yaml": ("none", "none"),
    "prefetch.yaml": ("none", "none"),
    "shared_link.yaml": ("none", "none"),
    # Reliability semantics (acks, retries, expiry, faults, durability, held senders).
    "at_least_once.yaml": ("none", "none"),
    "retries_dlq.yaml": ("none", "none"),
    "consumer_crash.yaml": ("none", "none"),
    "rebalance.yaml": ("none", "none"),
    "retry_storm.yaml": ("none", "none"),
    "retry_storm_jitter.yaml": ("none", "none"),
    "exactly_once.yaml": ("none", "none"),
    "broker_outage.yaml": ("none", "none"),
    "durability.yaml": ("none", "none"),
    "backpressure.yaml": ("none", "none"),
    # Whole systems composed of the features above (no closed form for the combination).
    "kafka_like.yaml": ("none", "none"),
    "rabbitmq_like.yaml": ("none", "none"),
    "rpc.yaml": ("none", "none"),
}


def test_every_bundled_model_is_listed() -> None:
    assert {p.name for p in MODELS.glob("*.yaml")} <= set(BUNDLED)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_matches(name: str) -> None:
    p = predict(simq.load(MODELS / name))
    model, kind = BUNDLED[name]
    assert (p.model, p.kind) == (model, kind), str(p)
    if kind == "none":
        assert p.reason and "Error" not in p.reason  # a reason, not a caught crash


def test_mm1_numbers_are_the_theory_functions() -> None:
    p = predict(simq.load(MODELS / "mm1.yaml"))
    assert p.queues["broker"] == theory.mm1(0.8, 1.0)
    assert p.latency_mean == pytest.approx(5.0)
    assert p.throughput == pytest.approx(0.8)


def test_overload_predicts_growth_not_a_wait() -> None:
    p = predict(simq.load(MODELS / "overload.yaml"))
    q = p.queues["broker"]
    assert not q.stable and q.growth_rate == pytest.approx(0.2)
    assert math.isinf(p.latency_mean) and p.throughput == pytest.approx(1.0)
    assert "grows" in p.reason


def test_tandem_latency_is_the_sum_of_sojourns() -> None:
    p = predict(simq.load(MODELS / "tandem.yaml"))
    expected = sum(1 / (mu - 0.8) for mu in (2.0, 1.0, 1.6))
    assert p.latency_mean == pytest.approx(expected)


def test_network_link_is_md1_on_serialization() -> None:
    p = predict(simq.load(MODELS / "network.yaml"))
    link = p.links["app->broker"]
    ser = theory.md1(8.0, 10.0)
    assert link.delay_mean == pytest.approx(ser.sojourn_mean + 0.04)
    assert link.serialization is not None and link.serialization.exact


def _base(**changes: object) -> simq.Scenario:
    sc = simq.load(MODELS / "mm1.yaml")
    return sc.with_overrides(changes) if changes else sc


@pytest.mark.parametrize(
    ("changes", "model", "kind"),
    [
        ({"consumers.worker.count": 3}, "M/M/c", "exact"),
        ({"queues.broker.capacity": 0}, "M/M/1/1", "exact"),
        ({"consumers.worker.service": "lognormal(mean=1, cv=2)"}, "M/G/1 (Pollaczek-Khinchine)",
         "exact"),
        ({"consumers.worker.service": "constant(1)", "consumers.worker.count": 2},
         "G/G/c (Allen-Cunneen, approximate)", "approximate"),
        ({"producers.app.interarrival": "erlang(k=2, mean=1.25)"},
         "G/G/1 (Kingman, approximate)", "approximate"),
    ],
)
def test_single_queue_variants(changes: dict[str, object], model: str, kind: str) -> None:
    p = predict(_base(**changes))
    assert (p.model, p.kind) == (model, kind), str(p)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"queues.broker.capacity": 3, "consumers.worker.service": "constant(1)"},
         "finite buffer with general service"),
        ({"queues.broker.capacity": 3, "queues.broker.overflow": "block"}, "blocks its senders"),
        ({"producers.app.stop": 100}, "not stationary"),
    ],
)
def test_none_with_a_reason(changes: dict[str, object], reason: str) -> None:
    p = predict(_base(**changes))
    assert p.kind == "none" and reason in p.reason, str(p)
    assert str(p).startswith("none: ")


def test_finite_buffer_inside_a_network_is_none() -> None:
    sc = simq.load(MODELS / "tandem.yaml").with_overrides({"queues.store-q.capacity": 2})
    p = predict(sc)
    assert p.kind == "none" and "finite buffer inside a network" in p.reason


def test_lossy_link_thins_a_poisson_stream() -> None:
    sc = simq.loads("""
run: {until: 100}
producers: {app: {to: q, rate: 1.0}}
queues: {q: {}}
consumers: {w: {from: q, rate: 2.0}}
links: {app->q: {loss: 0.25, latency: exponential(mean=1)}}
""")
    p = predict(sc)
    assert p.exact and p.queues["q"] == theory.mm1(0.75, 2.0)
    assert p.latency_mean == pytest.approx(1.0 + theory.mm1(0.75, 2.0).sojourn_mean)


class _Spec:
    """A consumer spec from a future schema: one extra key set away from its default."""

    model_fields = {"mode": None}

    def __init__(self) -> None:
        self.mode = "sync"


def test_unknown_feature_gives_none_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = _base()

    class Future:
        def __getattr__(self, name: str) -> object:
            return getattr(sc, name)

        @property
        def consumers(self) -> dict[str, object]:
            return {"worker": _Spec()}

    original = predict_base._default_of
    monkeypatch.setattr(predict_base, "_default_of",
                        lambda cls, key: "async" if key == "mode" else original(cls, key))
    fut = Future()
    assert features(fut) == ["consumers.*.mode"]
    p = predict(fut)
    assert p.kind == "none" and "consumers.*.mode" in p.reason


def test_a_registered_matcher_plugs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predict_module, "MATCHERS", list(predict_module.MATCHERS))
    register(Matcher("test", lambda sc: Prediction("test model", "approximate", "why")
                     if len(sc.queues) > 1 else None), before="jackson")
    names = [m.name for m in predict_module.MATCHERS]
    assert names.index("test") == names.index("jackson") - 1
    assert predict(simq.load(MODELS / "tandem.yaml")).model == "test model"
    assert predict(_base()).model == "M/M/1"  # declined: the next matchers answer


def test_a_matcher_that_handles_a_feature_is_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predict_module, "MATCHERS", list(predict_module.MATCHERS))
    monkeypatch.setattr(predict_module, "features", lambda sc: ["consumers.*.mode"])
    assert predict(_base()).kind == "none"
    register(Matcher("sync", lambda sc: Prediction("closed network (MVA)", "exact", "sync"),
                     handles=("consumers.*.mode",)), before="no-consumers")
    assert predict(_base()).model == "closed network (MVA)"


# --- properties ---------------------------------------------------------------------------

SERVICES = ["exponential(mean=1.0)", "constant(0.5)", "lognormal(mean=0.8, cv=2)",
            "erlang(k=3, mean=1.2)"]
ARRIVALS = ["exponential(rate=0.7)", "erlang(k=2, mean=1.5)", "uniform(low=0.5, high=2)"]


@st.composite
def scenarios(draw: st.DrawFn) -> simq.Scenario:
    n = draw(st.integers(1, 3))
    queues = {f"q{i}": {"capacity": draw(st.sampled_from([".inf", 0, 3])),
                        "overflow": draw(st.sampled_from(["drop-new", "drop-oldest", "block"]))}
              for i in range(n)}
    consumers = {}
    for i in range(n):
        spec = {"from": f"q{i}", "count": draw(st.integers(1, 3)),
                "service": draw(st.sampled_from(SERVICES))}
        if i + 1 < n:
            spec["to"] = f"q{i + 1}"
        consumers[f"g{i}"] = spec
    links = {}
    if draw(st.booleans()):
        links["app->q0"] = {"bandwidth": draw(st.sampled_from([".inf", 2000.0])),
                            "loss": draw(st.sampled_from([0.0, 0.1])),
                            "latency": draw(st.sampled_from(["constant(0.1)",
                                                             "exponential(mean=0.1)"]))}
    return simq.Scenario({
        "run": {"until": 100},
        "producers": {"app": {"to": "q0", "interarrival": draw(st.sampled_from(ARRIVALS))}},
        "queues": queues, "consumers": consumers, "links": links,
    })


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_predict_never_crashes_and_is_consistent(sc: simq.Scenario) -> None:
    p = predict(sc)
    assert p.kind in {"exact", "approximate", "none"}
    if p.kind == "none":
        assert p.reason and not p.queues
        return
    assert set(p.queues) <= set(sc.queues)
    for m in p.queues.values():
        # A station never carries more than it is offered, nor more than its capacity.
        assert m.throughput <= m.arrival_rate * (1 + 1e-9)
        assert 0.0 <= m.utilization <= 1.0 + 1e-9
    assert p.throughput <= p.offered * (1 + 1e-9)
    if p.exact:
        # Exact answers only come from Poisson input to every station.
        assert sc.producers["app"].interarrival.scv == pytest.approx(1.0)


def test_feedback_routing_is_an_exact_jackson_network() -> None:
    sc = simq.load(MODELS / "routing.yaml").with_overrides(
        {"consumers.retry.service": "exponential(mean=1.0)"})
    p = predict(sc)
    assert (p.model, p.kind) == ("open Jackson network with routing", "exact")
    # validate-q: lambda = 1 + 0.2 lambda_v... solved by theory.jackson with feedback.
    net = theory.jackson([1.0, 0, 0], [[0, 0.7, 0.2], [0.1, 0, 0], [1.0, 0, 0]],
                         [2.5, 0.6, 1.0], [1, 2, 10])
    assert p.queues["validate-q"] == net.nodes[0]
    assert p.latency_mean == pytest.approx(net.sojourn_mean)
    assert p.throughput == pytest.approx(1.0)


def test_a_crashing_matcher_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(sc: object) -> Prediction:
        raise KeyError("x")

    monkeypatch.setattr(predict_module, "MATCHERS", [Matcher("boom", boom)])
    p = predict(_base())
    assert p.kind == "none" and "boom" in p.reason


def _sync(clients: int, count: int = 2, service: str = "exponential(mean=0.5)",
          **extra: object) -> simq.Scenario:
    return simq.load({
        "run": {"until": 100},
        "producers": {"app": {"to": "q", "mode": "sync", "clients": clients,
                              "think": "exponential(mean=2)", **extra}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "count": count, "service": service}},
    })


@pytest.mark.parametrize("clients", [1, 5, 20])
def test_sync_clients_are_the_closed_network_of_mva(clients: int) -> None:
    p = predict(_sync(clients))
    m = theory.mva(clients, [0.5], think=2.0, servers=[2])
    assert (p.model, p.kind) == ("closed network (MVA)", "exact")
    assert p.throughput == pytest.approx(m.throughput)
    assert p.latency_mean == pytest.approx(m.response_time)
    q = p.queues["q"]
    # What the queue's wait means in simq: residence at the group minus the service.
    assert q.wait_mean == pytest.approx(m.residence_times[0] - 0.5)
    assert q.length_mean == pytest.approx(m.throughput * q.wait_mean)


def test_sync_delays_outside_the_queue_count_in_the_response_not_the_think() -> None:
    p = predict(_sync(5, encode="constant(0.1)", reply="constant(0.2)"))
    m = theory.mva(5, [0.5, 0.3], think=2.0, kinds=["queue", "delay"], servers=[2, 1])
    assert p.latency_mean == pytest.approx(m.response_time)
    # Non-exponential service: MVA's mean-value recursion is then an approximation.
    assert predict(_sync(5, service="constant(0.5)")).kind == "approximate"


def test_priority_classes_follow_cobham_per_class() -> None:
    sc = simq.load(MODELS / "priorities.yaml")
    p = predict(sc)
    m = theory.priority_mg1([0.2, 0.4, 0.3], [1.0] * 3, [1.0] * 3)
    assert p.queues["broker"].wait_mean == pytest.approx(m.wait_mean)
    for w in m.wait_means:
        assert f"{w:.4g}" in p.reason
    # The same classes FIFO: the overall mean wait is the M/M/1 one (conservation law).
    fifo = predict(sc.with_overrides({"queues.broker.discipline": "fifo",
                                      "producers.payments.priority": 0,
                                      "producers.notifications.priority": 0}))
    assert fifo.queues["broker"].wait_mean == pytest.approx(m.wait_mean)


def test_independent_parts_are_matched_one_by_one() -> None:
    raw = {
        "run": {"until": 100},
        "producers": {"a": {"to": "qa", "rate": 0.5}, "b": {"to": "qb", "rate": 1.5}},
        "queues": {"qa": {}, "qb": {}},
        "consumers": {"wa": {"from": "qa", "rate": 1.0},
                      "wb": {"from": "qb", "count": 2, "rate": 1.0}},
    }
    p = predict(simq.load(raw))
    a, b = theory.mm1(0.5, 1.0), theory.mmc(1.5, 1.0, 2)
    assert p.kind == "exact" and p.queues["qa"] == a and p.queues["qb"] == b
    assert p.throughput == pytest.approx(2.0)
    # Latency of a delivered message: the parts weighted by what each delivers.
    assert p.latency_mean == pytest.approx((0.5 * a.sojourn_mean + 1.5 * b.sojourn_mean) / 2)
    # One part without a model makes the whole "none", naming the part.
    raw["consumers"]["wb"]["batch"] = 2
    assert predict(simq.load(raw)).reason.startswith("part b:")


# --- one traffic model, one list of matchers ------------------------------------------------


def test_predict_sweep_and_warnings_read_the_same_traffic_model() -> None:
    from simq.model.network import network
    from simq.model.stability import stability_warnings
    from simq.sweep import nominal_columns

    sc = simq.load(MODELS / "routing.yaml").with_overrides(
        {"consumers.retry.service": "exponential(mean=1.0)"})
    net = network(sc)
    p = predict(sc)
    load = net.utilisation
    # Feedback raises validation's load above gamma / (c mu) = 1 / 2.5.
    assert load["validate-q"] > 0.4 + 1e-6
    for q, m in p.queues.items():
        assert m.utilization == pytest.approx(load[q], rel=1e-12)
    assert nominal_columns(sc)["nominal.load"] == pytest.approx(max(load.values()), rel=1e-12)
    assert stability_warnings(sc) == []
    # Push the charge step over its capacity: all three name the same queue and rate.
    hot = sc.with_overrides({"producers.orders.rate": 1.6})
    over = [q for q, rho in network(hot).utilisation.items() if rho >= 1]
    assert over == ["charge-q"]
    assert not predict(hot).queues["charge-q"].stable
    assert nominal_columns(hot)["nominal.load"] == pytest.approx(
        network(hot).utilisation["charge-q"], rel=1e-12)
    (note,) = stability_warnings(hot)
    offered = network(hot).effective[network(hot).index("charge-q")]
    assert "'charge-q'" in note and f"{offered:.4g} msg/s" in note


def test_the_traffic_model_is_solved_once_per_scenario_value() -> None:
    from simq.model.network import network

    sc = simq.load(MODELS / "tandem.yaml")
    assert network(sc) is network(simq.load(MODELS / "tandem.yaml"))
    other = network(sc.with_overrides({"producers.orders.rate": 0.5}))
    assert other is not network(sc) and other.generation_rate == pytest.approx(0.5)
    with pytest.raises(ValueError):
        network(sc).offered[0] = 1.0  # shared, so read-only


def test_the_matchers_are_one_ordered_list() -> None:
    from simq.model.predict import patterns, stations

    names = [m.name for m in predict_module.MATCHERS]
    assert names == ["closed-loop", "open-station", "priority", "routing", "no-consumers",
                     "finite-buffer-in-network", "jackson", "feed-forward"]
    fns = [m.fn for m in predict_module.MATCHERS]
    every = [getattr(mod, n) for mod in (patterns, stations) for n in mod.__all__]
    assert sorted(map(id, fns)) == sorted(map(id, every))  # each exactly once


@pytest.mark.parametrize("module", ["base", "patterns", "stations", "parts"])
def test_predict_modules_import_alone_and_one_way(module: str) -> None:
    import ast
    import subprocess

    name = f"simq.model.predict.{module}"
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Nothing below the list imports the package that lists it (no cycle to break).
    tree = ast.parse(Path(sys.modules[name].__file__ or "").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "simq.model.predict" not in imported
    allowed = {"simq.model.predict.base"} if module != "base" else set()
    assert {m for m in imported if m and m.startswith("simq.model.predict.")} <= allowed
