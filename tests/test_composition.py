"""The composition matrix: every feature with every other, in both record modes.

A small base system (producer `app` -> queue `broker` -> group `worker` of 2, Poisson
arrivals at 1.2/s, exponential service at 1/s per worker) is edited by a catalogue of
features, each a small function on the scenario mapping. The base alone, the base with
each feature, and the base with every pair of features are run with `run.records: full`
and `summary`. Each either runs, or is refused with a `simq.ScenarioError` whose message
matches an entry below:

- `REFUSED`: combinations with no defined meaning; they stay refused, and the reference
  (docs/reference) should list each with its reason.
- `TODAY_ONLY`: combinations the engine refuses for want of a code path. They are expected
  to disappear: an entry whose combination runs fails the test until it is removed.

Every run is checked for conservation, determinism (same scenario and seed, the same
summary twice), no negative wait, service or latency, and a latency breakdown that adds
up to the latency. Only the public API is used, so the matrix holds across rewrites of
the engine.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import simq
from simq.record.summary import BREAKDOWN

Raw = dict[str, Any]

# The base system: ρ = 0.6, about 360 messages in 300 s, a few milliseconds per run.
BASE: Raw = {
    "name": "compose",
    "run": {"until": 300.0, "seed": 7},
    "producers": {"app": {"to": "broker", "rate": 1.2}},
    "queues": {"broker": {}},
    "consumers": {"worker": {"from": "broker", "count": 2, "rate": 1.0}},
}
# Every feature addresses the destination by this name. Partitions turn the queue into a
# topic of the same name, so links (`app->broker`, `broker->worker`) keep naming the same
# hops and the consumer's `from` stays right.
DEST = "broker"


# Helpers the features share --------------------------------------------------------------
def _queue(sc: Raw) -> Raw:
    return sc["queues"][DEST]


def _worker(sc: Raw) -> Raw:
    return sc["consumers"]["worker"]


def _app(sc: Raw) -> Raw:
    return sc["producers"]["app"]


def _link(sc: Raw, name: str) -> Raw:
    # Merge, never replace: two features may put keys on the same link.
    return sc.setdefault("links", {}).setdefault(name, {})


def _scale_app_rate(sc: Raw, factor: float) -> None:
    # Features that add traffic take it from `app`, so the load stays near ρ = 0.6 and a
    # pair stays a short, stable run.
    app = _app(sc)
    app["rate"] = app["rate"] * factor


# The catalogue. Features are applied in this order, whatever the order of a pair: the ones
# that add producers come first, so that producer features see them; `partitions` comes
# last, because it rewrites the destination that the queue features have edited.
def sync(sc: Raw) -> None:
    """Synchronous clients beside `app` (a second producer, so `app` keeps the open-loop
    features: a closed loop sets its own pace and has one message outstanding)."""
    _scale_app_rate(sc, 0.5)
    sc["producers"]["rpc"] = {"to": DEST, "mode": "sync", "clients": 3,
                              "think": "exponential(mean=4)", "reply": "constant(0.02)"}


def priorities(sc: Raw) -> None:
    """A priority queue and a small high-priority class."""
    _scale_app_rate(sc, 5 / 6)
    _queue(sc)["discipline"] = "priority"
    sc["producers"]["vip"] = {"to": DEST, "rate": 0.2, "priority": 9,
                              "size": "constant(300)"}


def window(sc: Raw) -> None:
    """The open-loop producers become window senders (publisher confirms)."""
    for p in sc["producers"].values():
        if p.get("mode", "async") == "async":
            p.update({"mode": "window", "window": 4, "reply": "constant(0.05)"})


def arrivals(sc: Raw) -> None:
    """A spike above capacity on `app`: 3x its rate for 40 s."""
    app = _app(sc)
    rate = app.pop("rate")
    app["arrivals"] = {"spike": {"base": rate, "peak": 3 * rate, "start": 100,
                                 "duration": 40}}


def producer_batch(sc: Raw) -> None:
    """`app` gathers messages into batches of 3 (3000 bytes) or sends after 0.5 s."""
    _app(sc).update({"batch_size": 3000, "linger": 0.5})


def credits(sc: Raw) -> None:
    """Credit-based flow control on `app`."""
    _app(sc)["credits"] = 5


def links(sc: Raw) -> None:
    """A lossy, retransmitting link from every producer, and a pipeline stage behind the
    worker reached over a link of its own. The queue->consumer hop is `consumer_link`."""
    for name in sc["producers"]:
        _link(sc, f"{name}->{DEST}").update({
            "latency": "exponential(mean=0.02)", "bandwidth": 1.0e6, "loss": 0.02,
            "retransmit": 0.3})
    _worker(sc)["to"] = "sink"
    sc["queues"]["sink"] = {}
    sc["consumers"]["sinker"] = {"from": "sink", "count": 1, "rate": 10.0}
    _link(sc, "worker->sink")["latency"] = "constant(0.005)"


def link_partitions(sc: Raw) -> None:
    """`app`'s link is cut at a fixed time and at random (messages held meanwhile)."""
    _link(sc, f"app->{DEST}")["partitions"] = {
        "at": [[90, 15]], "mtbf": "exponential(mean=150)", "mttr": "constant(5)"}


def consumer_link(sc: Raw) -> None:
    """A network hop between the broker (queue or topic) and its consumers."""
    _link(sc, f"{DEST}->worker")["latency"] = "exponential(mean=0.01)"


def prefetch(sc: Raw) -> None:
    _worker(sc)["prefetch"] = 2


def consumer_batch(sc: Raw) -> None:
    _worker(sc)["batch"] = 3


def schedule(sc: Raw) -> None:
    _worker(sc)["schedule"] = [[100, 3], [200, 1]]


def autoscale(sc: Raw) -> None:
    _worker(sc)["autoscale"] = {"min": 1, "max": 4, "target_backlog_per_worker": 2,
                                "interval": 10, "cooldown": 30}


def manual_ack(sc: Raw) -> None:
    """At-least-once: a message not acked within 4 s is handed out again (service is
    exponential with mean 1, so some are)."""
    _worker(sc).update({"ack": "manual", "visibility_timeout": 4})


def failures(sc: Raw) -> None:
    """Processings fail; retried with back-off, dead-lettered after 2 attempts."""
    _worker(sc).update({"ack": "manual", "failure": 0.2, "max_attempts": 2,
                        "backoff": {"policy": "exponential", "delay": 0.5, "cap": 5}})
    _queue(sc)["dead_letter"] = "dlq"
    sc["queues"]["dlq"] = {}


def dedup(sc: Raw) -> None:
    _worker(sc)["dedup"] = True


def idempotent(sc: Raw) -> None:
    """`app` resends after a 2 s timeout (shorter than some round trips) to an idempotent
    broker."""
    sc["producers"]["app"].update({"timeout": 2.0, "retry": {"max_attempts": 3},
                                   "idempotent": True})


def ttl(sc: Raw) -> None:
    _queue(sc)["ttl"] = 1.5


def crashes(sc: Raw) -> None:
    _worker(sc)["crashes"] = {"mtbf": "exponential(mean=120)",
                              "mttr": "exponential(mean=10)", "at": [[150, 10]]}


def outages(sc: Raw) -> None:
    _queue(sc)["outages"] = {"at": [[120, 15]], "mtbf": "exponential(mean=200)",
                             "mttr": "constant(5)"}


def durability(sc: Raw) -> None:
    _queue(sc)["durability"] = {
        "fsync": "constant(0.005)", "group_commit": {"size": 4, "wait": 0.01},
        "replicas": 2, "replication": "uniform(low=0.001, high=0.004)", "acks": "all"}


def backlog(sc: Raw) -> None:
    _queue(sc)["backlog"] = {"count": 30, "age": "uniform(low=0, high=10)"}


def keys(sc: Raw) -> None:
    """Every message of `app` carries one of 8 keys (zipf): a partitioned topic routes by
    them, and ordering is measured per key."""
    _app(sc)["keys"] = "zipf(n=8, s=1.1)"


def classes(sc: Raw) -> None:
    """`app`'s messages are a class of their own with a slower service."""
    _app(sc)["service"] = "exponential(mean=1.2)"


def partitions(sc: Raw) -> None:
    """The queue becomes a partitioned topic of the same name. Every key the queue
    features put on it moves along: the schema decides which a topic takes."""
    spec = sc["queues"].pop(DEST)
    sc.setdefault("topics", {})[DEST] = {"partitions": 4, "key": "uniform", **spec}


def _as_topic(sc: Raw) -> None:
    if DEST in sc["queues"]:
        partitions(sc)


def groups(sc: Raw) -> None:
    """A second consumer group reads the (partitioned) topic at its own offset."""
    _as_topic(sc)
    sc["consumers"]["audit"] = {"from": DEST, "count": 2, "rate": 2.0}


def rebalance(sc: Raw) -> None:
    """The worker's group hands its partitions round cooperatively (sticky), each
    rebalance taking 2 s, a crashed member noticed after 10 s."""
    _as_topic(sc)
    _worker(sc)["rebalance"] = {"protocol": "cooperative", "assignor": "sticky",
                                "time": "constant(2)", "session_timeout": 10}


def cluster(sc: Raw) -> None:
    """The queue (or each partition) lives on a 3-broker cluster, 3 replicas, acks all
    with 2 in sync; broker b0 is down from t = 100 for 40 s, noticed after 3 s, a new
    leader elected in 0.5 s."""
    sc["brokers"] = {"count": 3, "replication_factor": 3,
                     "service": "exponential(mean=0.01)",
                     "replication": "uniform(low=0.001, high=0.004)",
                     "detection": "constant(3)", "election_time": "constant(0.5)",
                     "outages": {"b0": {"at": [[100, 40]]}}}
    spec = sc["queues"][DEST] if DEST in sc["queues"] else sc["topics"][DEST]
    spec.update({"acks": "all", "min_insync_replicas": 2})


Feature = Callable[[Raw], None]
FEATURES: dict[str, Feature] = {f.__name__: f for f in (
    sync, priorities, window, arrivals, producer_batch, credits, links, link_partitions,
    consumer_link, prefetch, consumer_batch, schedule, autoscale, manual_ack, failures,
    dedup, idempotent, keys, classes, ttl, crashes, outages, durability, backlog, partitions,
    groups, rebalance, cluster)}
MODES = ("full", "summary")


def build(names: tuple[str, ...], mode: str) -> Raw:
    """The base with these features applied (in catalogue order), in one record mode."""
    sc = copy.deepcopy(BASE)
    sc["run"]["records"] = mode
    for name in FEATURES:
        if name in names:
            FEATURES[name](sc)
    return sc


# Refusals ---------------------------------------------------------------------------------
# Keys: "a+b" (the pair, in catalogue order) or "a" (the feature, alone and in every pair
# it is part of), optionally with "[full]" or "[summary]" for one record mode only.
# Values: a regex the ScenarioError's message must match.

# No defined meaning: these stay refused. Each says why.
REFUSED: dict[str, str] = {
    # Two policies would set the same worker count.
    "schedule+autoscale": r"give `schedule` or `autoscale`, not both",
    # A sender that waits for every reply, with no send timeout, behind a consumer that
    # loses what it holds at a crash (auto ack), dead-letters after max_attempts, or a
    # queue that expires messages: its client would wait forever, and the run would have
    # no defined latency for it. A send `timeout` on the sender would give it one.
    "sync+failures": r"waits for every reply",
    "sync+ttl": r"waits for every reply",
    "sync+crashes": r"waits for every reply",
    "window+failures": r"waits for every reply",
    "window+ttl": r"waits for every reply",
    "window+crashes": r"waits for every reply",
    # A partition is a log read in offset order; a priority discipline inside it would be a
    # different thing (give each class its own topic). The topic has no `discipline` key.
    "priorities+partitions": r"topics\.broker\.discipline: unknown key",
    # A network hop from the broker to its consumers carries what the broker pushes; how
    # much it may push unacknowledged differs between brokers (RabbitMQ: no limit; a
    # Kafka consumer fetches a batch at a time), so the scenario must give `prefetch`.
    "consumer_link": r"needs consumers\.worker\.prefetch",
    # A waiting sender gets one reply; with several groups each processes the message
    # (a sender with a send timeout waits too: its ack is the processing's).
    "sync+groups": r"read by several consumer groups",
    "window+groups": r"read by several consumer groups",
    "idempotent+groups": r"read by several consumer groups",
    # A priority discipline has no meaning inside a log (as with partitions above).
    "priorities+groups": r"topics\.broker\.discipline: unknown key",
    "priorities+rebalance": r"topics\.broker\.discipline: unknown key",
    # In a broker cluster a queue is down when its brokers are, and a write's cost is the
    # brokers' (docs/cluster.md): a queue's own outages or disk would say it twice.
    "outages+cluster": r"in a broker cluster a queue is down",
    "durability+cluster": r"in a broker cluster a write costs",
}

# Implementation refusals, expected to disappear: each has a defined meaning and the
# engine lacks the path. Remove an entry as soon as its combination runs. (None left.)
TODAY_ONLY: dict[str, str] = {}


def _entries(key: str, mode: str) -> dict[str, str]:
    out = {}
    for table in (REFUSED, TODAY_ONLY):
        for k in (f"{key}[{mode}]", key):
            if k in table:
                out[k] = table[k]
    return out


def refusals(names: tuple[str, ...], mode: str) -> tuple[dict[str, str], dict[str, str]]:
    """The entries for exactly this combination, and those of its single features.

    A feature's entry covers every pair it is part of (refused for the same reason),
    unless the other feature supplies what was missing (`prefetch+consumer_link` runs
    today): a pair may then run. Only exact entries require a refusal.
    """
    exact = _entries("+".join(names), mode) if names else {}
    covering = {}
    if len(names) == 2:
        for n in names:
            covering.update(_entries(n, mode))
    return exact, covering


# Checks -----------------------------------------------------------------------------------
def same(a: Any, b: Any) -> bool:
    """Equality of nested summaries, NaN equal to NaN."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (isinstance(b, list | tuple) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _tol(scale: Any) -> Any:
    # Absolute slack for sums of a dozen floats of size `scale` (seconds).
    return 1e-9 * np.maximum(1.0, np.abs(scale))


def check_summary(s: dict[str, Any]) -> None:
    m = s["messages"]
    outcomes = ("delivered", "dropped", "lost", "expired", "dead_lettered", "deduplicated",
               "in_flight")
    assert m["produced"] == sum(m[k] for k in outcomes), m
    lat = s["latency"]
    for k, v in lat.items():
        assert not v < 0, f"latency.{k} = {v}"
    for q, qs in s["queues"].items():
        assert not qs["wait_mean"] < 0, f"queues.{q}.wait_mean = {qs['wait_mean']}"
    for g, gs in s["consumers"].items():
        assert not gs["service_mean"] < 0, f"consumers.{g}.service_mean = {gs['service_mean']}"
    # Both modes give the breakdown: one set of accumulators feeds both.
    assert "breakdown" in s, "the summary has no latency breakdown"
    parts = s["breakdown"]
    for k, v in parts.items():
        assert not v < -_tol(lat["mean"]), f"breakdown.{k} = {v}"
    total = sum(parts[k] for k in BREAKDOWN)
    if math.isnan(lat["mean"]):
        assert math.isnan(total)
    else:
        assert abs(total - lat["mean"]) <= 1e-9 * abs(lat["mean"]) + 1e-12, (total, lat)


def check_records(res: simq.RunResult) -> None:
    msgs = res.messages
    latency = msgs["latency"].to_numpy()
    done = ~np.isnan(latency)
    assert (latency[done] >= 0).all(), "negative latency"
    for col in BREAKDOWN:
        x = msgs[col].to_numpy()[done]
        low = x < -_tol(latency[done])
        assert not low.any(), f"negative {col}: {x[low][:5]}"
    total = msgs[list(BREAKDOWN)].to_numpy()[done].sum(axis=1)
    off = np.abs(total - latency[done]) > 1e-9 * np.abs(latency[done]) + 1e-12
    assert not off.any(), "breakdown does not add up to the latency"
    for r in res.replications:
        assert r.records is not None
        v = r.records.visits
        wait = v["left"] - v["arrived"]
        service = v["end"] - v["left"]
        w, sv = wait[~np.isnan(wait)], service[~np.isnan(service)]
        assert (w >= -_tol(w)).all(), f"negative wait in visits: {np.sort(w)[:5]}"
        assert (sv >= -_tol(sv)).all(), f"negative service in visits: {np.sort(sv)[:5]}"


# The matrix -------------------------------------------------------------------------------
COMBOS: list[tuple[str, ...]] = [(), *((n,) for n in FEATURES),
                                 *itertools.combinations(FEATURES, 2)]
CASES = [(names, mode) for names in COMBOS for mode in MODES]


def _id(case: tuple[tuple[str, ...], str]) -> str:
    names, mode = case
    return f"{'+'.join(names) or 'base'}[{mode}]"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_features_compose(case: tuple[tuple[str, ...], str]) -> None:
    names, mode = case
    raw = build(names, mode)
    exact, covering = refusals(names, mode)
    try:
        first = simq.run(raw)
    except simq.ScenarioError as err:
        text = str(err)
        reasons = {**exact, **covering}
        assert reasons, f"refused, and no REFUSED or TODAY_ONLY entry says why: {text}"
        assert any(re.search(rx, text) for rx in reasons.values()), (
            f"refused for a reason none of {sorted(reasons)} gives: {text}")
        return
    stale = sorted(k for k in exact if k in TODAY_ONLY)
    assert not exact, (
        f"runs now, but {sorted(exact)} expect a refusal"
        + (f"; remove {stale} from TODAY_ONLY" if stale else ""))
    check_summary(first.summary)
    if mode == "full":
        check_records(first)
    again = simq.run(raw)
    assert same(first.summary, again.summary), "same scenario and seed, different summary"


def test_every_table_entry_names_known_features() -> None:
    # A typo in a key would make an entry apply to nothing.
    for key in [*REFUSED, *TODAY_ONLY]:
        names, _, mode = key.partition("[")
        assert mode in ("", "full]", "summary]"), key
        parts = names.split("+")
        assert all(p in FEATURES for p in parts), key
        assert parts == [n for n in FEATURES if n in parts], f"{key}: catalogue order"
    assert not set(REFUSED) & set(TODAY_ONLY)


# Beyond pairs: whole systems with many features on at once (the issue's three systems
# are the bundled kafka_like, rabbitmq_like and rpc models, run in tests/test_models.py).
MANY = [
    ("consumer_link", "prefetch", "partitions"),  # a link from a topic to its consumers
    ("consumer_link", "prefetch", "autoscale", "manual_ack", "crashes", "partitions"),
    ("sync", "links", "consumer_link", "prefetch", "consumer_batch", "failures", "crashes"),
    ("window", "arrivals", "producer_batch", "credits", "ttl", "outages", "durability"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("names", MANY, ids="+".join)
def test_many_features_compose(names: tuple[str, ...], mode: str) -> None:
    raw = build(names, mode)
    for p in raw["producers"].values():
        if p.get("mode") in ("sync", "window"):
            # A sender that waits needs a timeout on a path that can lose its message.
            p.update({"timeout": 5.0, "retry": {"max_attempts": 3}})
    res = simq.run(raw)
    check_summary(res.summary)
    assert same(res.summary, simq.run(raw).summary)
    if mode == "full":
        check_records(res)
