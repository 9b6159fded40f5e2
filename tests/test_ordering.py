"""Message keys and delivery order: routing by key, and the ordering metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_agrees
from test_parity import assert_parity

import simq
from simq.engine import Simulation
from simq.model.network import flows as network_flows
from simq.record.ordering import OrderTally
from simq.record.streaming import run_full, run_streaming
from simq.record.summary import summarise
from simq.run import seed_for
from simq.scenario.keys import murmur2, partition_of

MODELS = Path(__file__).resolve().parent.parent / "models"


def _signed(h: int) -> int:
    return h - (1 << 32) if h >= 1 << 31 else h


def test_murmur2_is_kafkas() -> None:
    # Kafka's own test vectors (UtilsTest.testMurmur2), as Java's signed ints.
    cases = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
             "a-little-bit-longer-string": -1486304829, "abc": 479470107,
             "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971}
    for text, want in cases.items():
        assert _signed(murmur2(text.encode())) == want
    assert all(0 <= partition_of(str(k), 7) < 7 for k in range(100))


def _tally(chunks: list[list[int]], stream: int = 0) -> OrderTally:
    t = OrderTally()
    for seqs in chunks:
        q = np.asarray(seqs, dtype=np.int64)
        t.add(np.full(len(q), stream, dtype=np.int64), q, np.ones(len(q), dtype=bool))
    return t


def test_tally_by_hand() -> None:
    # Delivered places 0 2 1 3 5 4 6: 1 comes after 2, 4 after 5; each one place back.
    t = _tally([[0, 2, 1, 3, 5, 4, 6]])
    assert (t.deliveries, t.late, t.displacement) == (7, 2, 1)
    # 3 first: 0, 1 and 2 all come after it, the first of them 3 places back.
    t = _tally([[3, 0, 1, 2]])
    assert (t.late, t.displacement) == (3, 3)
    # Chunk boundaries change nothing: the highest place is carried over.
    assert (_tally([[3], [0, 1], [2]]).late, _tally([[3], [0, 1], [2]]).displacement) == (3, 3)
    # Streams are independent, even interleaved in one chunk.
    t = OrderTally()
    t.add(np.array([0, 1, 0, 1]), np.array([1, 0, 0, 1]), np.ones(4, dtype=bool))
    assert (t.late, t.displacement) == (1, 1)
    # A delivery outside the window moves the highest place but is not counted.
    t = OrderTally()
    t.add(np.array([0, 0]), np.array([5, 1]), np.array([False, True]))
    assert (t.deliveries, t.late, t.displacement) == (1, 1, 4)


def _trace(path: Path, rows: list[tuple[float, str]]) -> str:
    path.write_text("time,key\n" + "".join(f"{t!r},{k}\n" for t, k in rows))
    return path.name


def test_priorities_overtake_within_a_key_exactly(tmp_path: Path) -> None:
    # Two producers send the same key; one consumer, constant 1 s service, priority line.
    # Sends (place in the key's order): lo 0.0 (0), hi .05 (1), lo .1 (2), hi .15 (3),
    # lo .2 (4), hi .25 (5), lo .3 (6). lo's first message is in service until 1.0; then
    # hi's three go first: places 0 1 3 5 2 4 6. Out of order: 2 (3 places back: 5 was
    # delivered) and 4 (1 back); the largest displacement is 3.
    lo = _trace(tmp_path / "lo.csv", [(0.0, "k"), (0.1, "k"), (0.2, "k"), (0.3, "k")])
    hi = _trace(tmp_path / "hi.csv", [(0.05, "k"), (0.15, "k"), (0.25, "k")])
    sc = simq.Scenario({
        "run": {"until": 20},
        "producers": {"lo": {"to": "q", "arrivals": {"trace": lo}},
                      "hi": {"to": "q", "priority": 1, "arrivals": {"trace": hi}}},
        "queues": {"q": {"discipline": "priority"}},
        "consumers": {"w": {"from": "q", "service": "constant(1)"}},
    }, base_dir=tmp_path)
    for records in ("full", "summary"):
        s = simq.run(sc.with_overrides({"run.records": records})).summary
        want = {"deliveries": 7, "out_of_order": 2, "fraction": 2 / 7, "max_displacement": 3}
        assert s["ordering"] == want
        assert s["queues"]["q"]["ordering"] == want


def _keyed(partitions: int, count: int, **producer: Any) -> dict[str, Any]:
    return {
        "run": {"until": 1500, "warmup": 100, "seed": 3},
        "producers": {"app": {"to": "events", "rate": 3.0, "keys": "uniform(n=40)",
                              **producer}},
        "topics": {"events": {"partitions": partitions}},
        "consumers": {"group": {"from": "events", "count": count, "rate": 1.2}},
    }


def test_one_consumer_per_partition_keeps_every_key_in_order() -> None:
    s = simq.run(_keyed(4, 4)).summary
    assert s["ordering"]["deliveries"] > 3000
    assert s["ordering"]["out_of_order"] == 0
    assert s["ordering"]["max_displacement"] == 0
    for p in range(4):
        assert s["queues"][f"events[{p}]"]["ordering"]["out_of_order"] == 0
        assert s["queues"][f"events[{p}]"]["ordering"]["deliveries"] > 300


def test_without_keys_order_holds_per_partition_but_not_per_producer() -> None:
    # No keys: the topic spreads one producer's messages at random; each partition keeps
    # its own share in order, the producer's whole sequence is scrambled across them.
    sc = _keyed(4, 4)
    del sc["producers"]["app"]["keys"]
    s = simq.run(sc).summary
    assert all(s["queues"][f"events[{p}]"]["ordering"]["out_of_order"] == 0 for p in range(4))
    assert s["ordering"]["fraction"] > 0.2


def test_competing_consumers_on_one_queue_reorder() -> None:
    sc = {
        "run": {"until": 1500, "warmup": 100, "seed": 3},
        "producers": {"app": {"to": "q", "rate": 3.0, "keys": "zipf(n=20, s=1)"}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "count": 4, "rate": 1.0}},
    }
    s = simq.run(sc).summary
    assert s["queues"]["q"]["ordering"]["out_of_order"] > 100
    assert s["ordering"] == s["queues"]["q"]["ordering"]
    sc["consumers"]["w"]["count"] = 1
    sc["consumers"]["w"]["rate"] = 4.0
    assert simq.run(sc).summary["ordering"]["out_of_order"] == 0


@pytest.mark.parametrize(("window", "reordered"), [(1, False), (6, True)])
def test_resends_overtaken_only_with_several_in_flight(window: int, reordered: bool) -> None:
    # Kafka's max.in.flight.requests.per.connection is the window: with more than one
    # message in flight, a lost one is resent behind later ones; with one, it cannot be.
    sc = {
        "run": {"until": 1500, "seed": 4},
        "producers": {"app": {"to": "q", "mode": "window", "window": window,
                              "interarrival": "exponential(rate=3)", "keys": "uniform(n=5)",
                              "timeout": 1.0, "retry": {"max_attempts": 10}}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "rate": 20.0}},
        "links": {"app->q": {"latency": "constant(0.01)", "loss": 0.03}},
    }
    s = simq.run(sc).summary
    assert s["messages"]["retries"] > 30
    assert (s["ordering"]["out_of_order"] > 0) is reordered
    assert (s["queues"]["q"]["ordering"]["out_of_order"] > 0) is reordered


def test_trace_keys_route_to_their_hash_partition(tmp_path: Path) -> None:
    rows = [(0.1 * i, f"user-{i % 13}" if i % 5 else "") for i in range(200)]
    name = _trace(tmp_path / "keys.csv", rows)
    sc = simq.Scenario({
        "run": {"until": 100, "seed": 2},
        "producers": {"app": {"to": "events", "arrivals": {"trace": name}}},
        "topics": {"events": {"partitions": 3}},
        "consumers": {"group": {"from": "events", "count": 3, "rate": 50}},
    }, base_dir=tmp_path)
    m = simq.run(sc).messages
    assert len(m) == 200
    keyed = m[m["key"].notna()]
    assert keyed["key"].astype(str).tolist() == [k for _, k in rows if k]
    for p in range(3):
        at = keyed[f"events[{p}].arrived"].notna()
        assert (keyed["key"][at].astype(str).map(lambda k: partition_of(k, 3)) == p).all()
        assert at.any()
    # A message without a key goes by the topic's own key distribution.
    assert m["key"].isna().sum() == 40


def test_trace_keys_skip_with_rows_before_start(tmp_path: Path) -> None:
    name = _trace(tmp_path / "k.csv", [(1.0, "a"), (2.0, "b"), (3.0, "c"), (4.0, "d")])
    sc = simq.Scenario({"run": {"until": 10}, "producers": {"app": {
        "to": "q", "start": 2.5, "arrivals": {"trace": name}}}, "queues": {"q": {}}},
        base_dir=tmp_path)
    assert simq.run(sc).messages["key"].astype(str).tolist() == ["c", "d"]


def test_fan_out_subscribers_each_keep_their_own_order() -> None:
    sc = {
        "run": {"until": 800, "seed": 1},
        "producers": {"app": {"to": "news", "rate": 2.0, "keys": "uniform(n=3)"}},
        "topics": {"news": {"subscribers": ["a", "b"]}},
        "queues": {"a": {}, "b": {}},
        "consumers": {"ra": {"from": "a", "rate": 3.0}, "rb": {"from": "b", "rate": 2.5}},
    }
    s = simq.run(sc).summary
    # The two subscribers see the same sends at different times; neither reorders.
    assert s["ordering"]["deliveries"] > 2500
    assert s["ordering"]["out_of_order"] == 0
    assert s["queues"]["a"]["ordering"]["out_of_order"] == 0


@pytest.mark.parametrize("overrides", [
    {},
    {"producers.payments.window": 1, "consumers.workers.count": 2},
    {"topics.events.partitions": 3, "consumers.readers.count": 2, "run.warmup": 300},
])
def test_ordering_agrees_exactly_between_record_modes(overrides: dict[str, Any]) -> None:
    sc = simq.load(MODELS / "ordering.yaml").with_overrides({"run.until": 600, **overrides})
    full = Simulation(sc, seed_for(7, 0))
    out = run_full(full, chunk=97)
    t0 = min(sc.run.warmup, out.t_stop)
    a = summarise(full.rec.arrays(out.t_end), sc, out, t0)
    b = run_streaming(Simulation(sc, seed_for(7, 0)), chunk=97).summary
    assert a["ordering"] == b["ordering"]
    assert a["ordering"]["out_of_order"] > 0
    for q in a["queues"]:
        assert a["queues"][q]["ordering"] == b["queues"][q]["ordering"]
    assert_parity(a, b)
    # The public API, both modes, same seed.
    ra = simq.run(sc).summary
    rb = simq.run(sc.with_overrides({"run.records": "summary"})).summary
    assert ra["ordering"] == rb["ordering"]


@pytest.mark.parametrize(("keys", "match"), [
    ("uniform", "uniform\\(n=…\\)"),
    ("uniform(n=0)", "n \\(the number of keys\\)"),
    ("zipf(n=10)", "zipf keys take n and s"),
    ("zipf(n=10, s=-1)", "s > 0"),
    ("uniform(n=3, n=4)", "uniform\\(n=…\\)"),
])
def test_bad_keys_are_refused_naming_the_field(keys: str, match: str) -> None:
    with pytest.raises(simq.ScenarioError, match="producers.app.keys") as err:
        simq.Scenario({"run": {"until": 10},
                       "producers": {"app": {"to": "q", "rate": 1, "keys": keys}},
                       "queues": {"q": {}}})
    assert err.match(match)


def test_keys_and_a_keyed_trace_are_refused_together(tmp_path: Path) -> None:
    name = _trace(tmp_path / "k.csv", [(1.0, "a")])
    with pytest.raises(simq.ScenarioError, match="keep one"):
        simq.Scenario({"run": {"until": 10},
                       "producers": {"app": {"to": "q", "keys": "uniform(n=2)",
                                             "arrivals": {"trace": name}}},
                       "queues": {"q": {}}}, base_dir=tmp_path)


def test_the_traffic_model_splits_keyed_traffic_by_hash() -> None:
    # zipf keys hashed to 4 partitions: the traffic model's arrival rate at each
    # partition (key probabilities summed by murmur2 partition) against the measured one.
    sc = simq.Scenario(_keyed(4, 4, keys="zipf(n=200, s=1.2)"))
    flows = network_flows(sc)
    shares = sc.resolve("events", "app")
    assert abs(sum(w for _, w in shares) - 1) < 1e-12
    assert max(w for _, w in shares) > 0.3  # the hot key's partition, not 1/4
    res = simq.run(sc, replications=4)
    span = 1500 - 100
    for q, w in shares:
        rate = flows.queues[q].arrival_rate
        assert rate == pytest.approx(3.0 * w)
        assert_agrees(res, f"queues.{q}.arrivals", rate, scale=span)


def test_the_metric_is_what_messages_parquet_shows() -> None:
    # Recomputed by hand from the per-message table, as one would from messages.parquet:
    # M/M/4, one producer without keys, deliveries sorted by their time.
    sc = simq.load(MODELS / "mmc.yaml").with_overrides({"run.until": 800, "run.warmup": 100})
    res = simq.run(sc)
    m = res.messages
    place = {i: k for k, i in enumerate(m["id"])}  # one producer: id order is send order
    done = m[m["outcome"] == "delivered"].sort_values(["done", "id"])
    top, late, worst, counted = -1, 0, 0, 0
    t0, t1 = res.summary["window"]
    for i, t in zip(done["id"], done["done"], strict=True):
        k = place[i]
        if t0 <= t <= t1:
            counted += 1
            if k < top:
                late += 1
                worst = max(worst, top - k)
        top = max(top, k)
    o = res.summary["ordering"]
    assert (o["deliveries"], o["out_of_order"], o["max_displacement"]) == (counted, late, worst)
    assert late > 0.2 * counted
