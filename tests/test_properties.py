"""Properties of every run, on random small scenarios (hypothesis).

The examples are derandomized (the same ones on every machine and every run), so a
failure in CI reproduces locally with the same command.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import simq
from simq.engine.recorder import DROPPED
from simq.run import run_replication

PROPS = settings(deadline=None, derandomize=True, database=None, max_examples=40,
                 suppress_health_check=[HealthCheck.too_slow])

SERVICE = st.sampled_from([
    "exponential(rate={r})", "constant({m})", "uniform(low={h}, high={m2})",
    "erlang(k=2, mean={m})", "lognormal(mean={m}, cv=1.5)",
])


@st.composite
def distributions(draw: st.DrawFn) -> str:
    rate = draw(st.floats(0.3, 4.0))
    m = 1.0 / rate
    return draw(SERVICE).format(r=f"{rate:.4g}", m=f"{m:.4g}", h=f"{m / 2:.4g}",
                                m2=f"{1.5 * m:.4g}")


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """1-3 producers, 1-3 queues, consumer groups forming pipelines without cycles,
    optional links on any flow, `until` or `messages` runs, with or without warm-up."""
    nq = draw(st.integers(1, 3))
    queues = {
        f"q{i}": {"capacity": draw(st.sampled_from([0, 1, 2, 5, math.inf])),
                  "overflow": draw(st.sampled_from(["drop-new", "drop-oldest", "block"]))}
        for i in range(nq)
    }
    consumers: dict[str, Any] = {}
    for i in range(nq):
        for g in range(draw(st.integers(0 if i else 1, 2))):
            spec: dict[str, Any] = {"from": f"q{i}", "count": draw(st.integers(1, 3)),
                                    "service": draw(distributions())}
            # Forward only to a later queue: pipelines, never cycles.
            if i + 1 < nq and draw(st.booleans()):
                spec["to"] = f"q{draw(st.integers(i + 1, nq - 1))}"
            consumers[f"g{i}{g}"] = spec
    producers = {
        f"p{k}": {"to": f"q{draw(st.integers(0, nq - 1))}",
                  "rate": draw(st.floats(0.2, 3.0)),
                  "size": draw(st.sampled_from(["constant(1000)",
                                                "uniform(low=500, high=1500)"]))}
        for k in range(draw(st.integers(1, 3)))
    }
    flows = [(p, s["to"]) for p, s in producers.items()]
    flows += [(g, s["to"]) for g, s in consumers.items() if "to" in s]
    links = {}
    for a, b in flows:
        if draw(st.booleans()):
            links[f"{a}->{b}"] = {
                "latency": draw(st.sampled_from(["constant(0)", "constant(0.3)",
                                                 "exponential(mean=0.2)"])),
                "bandwidth": draw(st.sampled_from([math.inf, 2000.0, 20000.0])),
                "loss": draw(st.sampled_from([0.0, 0.05, 0.3])),
            }
    if draw(st.booleans()):
        until = draw(st.floats(20.0, 150.0))
        run = {"until": until, "warmup": draw(st.sampled_from([0.0, 0.2, 0.5])) * until}
    else:
        run = {"messages": draw(st.integers(1, 250)),
               "warmup": draw(st.sampled_from([0.0, 5.0]))}
    run["seed"] = draw(st.integers(0, 2**31))
    return {"name": "random", "run": run, "producers": producers, "queues": queues,
            "consumers": consumers, "links": links}


def _run(sc: Any, **kw: Any) -> simq.RunResult:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", simq.UnstableWarning)  # overload is allowed here
        return simq.run(sc, **kw)


def _same(a: Any, b: Any) -> bool:
    """Exact equality of two summaries, NaN equal to NaN."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


OUTCOMES = ["delivered", "dropped", "lost", "expired", "dead_lettered", "deduplicated",
            "in_flight"]


@PROPS
@given(scenarios())
def test_every_message_is_accounted_for(raw: dict[str, Any]) -> None:
    res = _run(raw, replications=2)  # summarise() itself raises ConservationError
    msgs = res.messages
    for r in res.replications:
        m = r.summary["messages"]
        assert m["produced"] == sum(m[k] for k in OUTCOMES)
        mine = msgs[msgs["replication"] == r.index]
        assert len(mine) == m["produced"]
        counts = mine["outcome"].value_counts()
        for k in OUTCOMES:
            assert counts.get(k, 0) == m[k], k
        if raw["run"].get("messages") is not None:
            assert m["produced"] <= raw["run"]["messages"]
        # What the links say they lost is what the messages say (over the window).
        t0, t1 = r.window
        in_win = mine[(mine["done"] >= t0) & (mine["done"] <= t1)]
        lost_by_links = sum(v["lost"] for v in r.summary["links"].values())
        assert lost_by_links == int((in_win["outcome"] == "lost").sum())
        for name, q in r.summary["queues"].items():
            assert q["length_max"] >= 0, name
            # An empty window (warm-up past the last send) has no time averages.
            assert q["length_mean"] >= 0 if t1 > t0 else math.isnan(q["length_mean"]), name
            cap = raw["queues"][name]["capacity"]
            assert q["length_max"] <= cap, name
        for name, c in r.summary["consumers"].items():
            if t1 > t0:
                assert -1e-9 <= c["utilization"] <= 1 + 1e-9, name
            else:
                assert math.isnan(c["utilization"]), name
        delivered = mine[mine["outcome"] == "delivered"]
        assert (delivered["latency"] >= 0).all()


@settings(PROPS, max_examples=25)
@given(scenarios())
def test_levels_are_exact_counts(raw: dict[str, Any]) -> None:
    res = _run(raw)
    ts, v, m = res.timeseries, res.visits, res.messages
    times = ts["time"].to_numpy()[:: max(1, len(ts) // 25)]
    pick = ts.set_index("time").loc[times]
    sent, done = m["sent"].to_numpy(), m["done"].to_numpy()
    assert pick["in_flight"].tolist() == [int(((sent <= t) & ~(done <= t)).sum())
                                          for t in times]
    for q, spec in raw["queues"].items():
        at = v[v["queue"] == q]
        arrived, start = at["arrived"].to_numpy(), at["start"].to_numpy()
        waiting = [int(((arrived <= t) & ~(start <= t)).sum()) for t in times]
        assert pick[f"queue.{q}.length"].tolist() == waiting, q
        assert max(waiting, default=0) <= spec["capacity"], q
    for g, spec in raw["consumers"].items():
        assert pick[f"consumer.{g}.busy"].max() <= spec["count"], g


@PROPS
@given(scenarios())
def test_policies_keep_their_promises(raw: dict[str, Any]) -> None:
    res = _run(raw)
    m, s = res.messages, res.summary
    rec = res.replications[0].records
    for qi, (q, spec) in enumerate(raw["queues"].items()):
        ended_here = (rec.outcome == DROPPED) & (rec.where == qi)
        dropped_here = int((ended_here & m[f"{q}.arrived"].isna().to_numpy()).sum())
        if spec["overflow"] == "block":
            assert s["queues"][q]["dropped"] == 0, q
        if spec["overflow"] == "drop-oldest" and spec["capacity"] > 0:
            assert dropped_here == 0, q  # it evicts messages that had arrived
    if not any(v["loss"] for v in raw["links"].values()):
        assert s["messages"]["lost"] == 0
    if all(spec["overflow"] == "block" or math.isinf(spec["capacity"])
           for spec in raw["queues"].values()):
        assert s["messages"]["dropped"] == 0
    # With a message budget and a consumer group at every queue, everything finishes.
    served = {c["from"] for c in raw["consumers"].values()}
    if "until" not in raw["run"] and served == set(raw["queues"]):
        assert s["messages"]["in_flight"] == 0
        assert s["messages"]["produced"] == raw["run"]["messages"]


@settings(PROPS, max_examples=15)
@given(scenarios())
def test_same_seed_same_numbers(raw: dict[str, Any]) -> None:
    a, b = _run(raw, replications=2), _run(raw, replications=2)
    assert _same(a.summary, b.summary)
    pd.testing.assert_frame_equal(a.messages, b.messages)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)


@settings(PROPS, max_examples=15)
@given(scenarios())
def test_different_seeds_different_numbers(raw: dict[str, Any]) -> None:
    seed = raw["run"]["seed"]
    a, b = _run(raw, seed=seed), _run(raw, seed=seed + 1)
    sa, sb = a.messages["sent"].to_numpy(), b.messages["sent"].to_numpy()
    assume(len(sa) > 1 and len(sb) > 1)
    # Send times are continuous: equal ones would mean the same stream was reused.
    n = min(len(sa), len(sb))
    assert not np.array_equal(sa[:n], sb[:n])


@settings(PROPS, max_examples=15)
@given(scenarios(), st.integers(1, 3))
def test_replication_r_is_the_same_alone(raw: dict[str, Any], r: int) -> None:
    sc = simq.load(raw)
    full = _run(sc, replications=r + 1)
    alone = run_replication(sc, sc.run.seed, r)
    assert _same(full.replications[r].summary, alone.summary)
    assert full.replications[r].window == alone.window
    for key in ("sent", "done", "outcome", "size"):
        assert np.array_equal(getattr(full.replications[r].records, key),
                              getattr(alone.records, key), equal_nan=key != "outcome")
    # ... and replications differ from one another.
    if len(alone.records.sent) > 1 and len(full.replications[0].records.sent) > 1:
        assert not np.array_equal(full.replications[0].records.sent[:2],
                                  alone.records.sent[:2])


def test_the_strategy_covers_what_it_claims() -> None:
    # A strategy that never produced a link or a block policy would prove nothing.
    seen: dict[str, bool] = {"link": False, "block": False, "messages": False,
                             "pipeline": False, "capacity0": False, "lossy": False}

    @settings(PROPS, max_examples=40)
    @given(scenarios())
    def look(raw: dict[str, Any]) -> None:
        seen["link"] |= bool(raw["links"])
        seen["lossy"] |= any(v["loss"] > 0 for v in raw["links"].values())
        seen["block"] |= any(q["overflow"] == "block" for q in raw["queues"].values())
        seen["capacity0"] |= any(q["capacity"] == 0 for q in raw["queues"].values())
        seen["messages"] |= "messages" in raw["run"]
        seen["pipeline"] |= any("to" in c for c in raw["consumers"].values())
        simq.load(raw)  # every drawn scenario is valid

    look()
    assert all(seen.values()), seen


def test_same_numbers_in_another_process() -> None:
    # Parallel runs happen in other processes, with other string-hash seeds: nothing that
    # feeds the streams may depend on them.
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import json, warnings, simq; warnings.simplefilter('ignore');"
        "r = simq.run('models/tandem.yaml', replications=2,"
        " overrides={'run.until': 1000, 'run.warmup': 50});"
        "print(json.dumps(r.summary, sort_keys=True, default=str))"
    )
    outs = []
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=root, timeout=120, check=True)
        outs.append(proc.stdout.strip())  # text: NaN compares equal to itself
    assert outs[0] == outs[1]
    here = _run(str(root / "models" / "tandem.yaml"), replications=2,
                overrides={"run.until": 1000, "run.warmup": 50})
    assert outs[0] == json.dumps(here.summary, sort_keys=True, default=str)
