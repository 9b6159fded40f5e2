"""The six defects of the composition issue, one test each (two for the two-part ones).

Each test states the correct behaviour. Numbers are compared within the confidence
intervals of independent replications, never against a seed-specific value.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from typing import Any

import pytest

import simq

Raw = dict[str, Any]


def _ci(res: simq.RunResult, *path: str) -> tuple[float, float]:
    """A summary value and its 95% half-width."""
    mean: Any = res.summary
    half: Any = res.summary["ci95"]
    for p in path:
        mean, half = mean[p], half[p]
    return float(mean), float(half)


def _conserved(summary: dict[str, Any]) -> None:
    m = summary["messages"]
    outcomes = ("delivered", "dropped", "lost", "expired", "dead_lettered", "deduplicated",
               "in_flight")
    assert m["produced"] == sum(m[k] for k in outcomes), m


# 1. decode is lost when the group also has dedup or manual acks -------------------------
DECODE = 0.35
SERVICE = 0.6
DECODING: Raw = {
    "run": {"until": 2000.0, "seed": 1, "replications": 5},
    "producers": {"app": {"to": "q", "rate": 0.8}},
    "queues": {"q": {}},
    "consumers": {"w": {"from": "q", "service": f"exponential(mean={SERVICE})",
                        "decode": f"constant({DECODE})"}},
}


@pytest.mark.parametrize("extra", [{"dedup": True}, {"ack": "manual"}],
                         ids=["dedup", "manual-ack"])
def test_decode_counts_with_reliability_keys(extra: Raw) -> None:
    # Neither key changes the work of a message that is processed once: the worker still
    # decodes (0.35 s) before its service (mean 0.6 s), so busy time per message is 0.95
    # s, utilization λ·0.95 = 0.76 and the latency that of the same group without the key
    # (an M/G/1 queue either way). Today the decode is skipped: 0.51 against 0.76, about
    # ten times the tolerance.
    plain = simq.run(DECODING)
    raw = copy.deepcopy(DECODING)
    raw["consumers"]["w"].update(extra)
    res = simq.run(raw)
    for path in (("consumers", "w", "utilization"), ("latency", "mean")):
        a, ha = _ci(plain, *path)
        b, hb = _ci(res, *path)
        assert abs(a - b) <= ha + hb, f"{'.'.join(path)}: {b:.4g} ± {hb:.2g}, " \
            f"without {extra}: {a:.4g} ± {ha:.2g}"
    s, hs = _ci(res, "consumers", "w", "service_mean")
    assert abs(s - (DECODE + SERVICE)) <= hs, (s, hs)
    # A constant decode is exactly 0.35 s in every delivered message's breakdown.
    assert res.summary["breakdown"]["decode"] == pytest.approx(DECODE, rel=1e-9)


# 2. redelivery after a visibility timeout gives negative waits ---------------------------
@pytest.mark.parametrize("dedup", [False, True], ids=["manual-ack", "manual-ack+dedup"])
def test_redelivered_messages_have_no_negative_wait(dedup: bool) -> None:
    # Service (mean 1.5 s) often outlasts the visibility timeout (2 s): about a quarter of
    # the messages are handed out again while the first worker still works on them. The
    # copy given back enters the queue when the timeout runs out, and waits from then
    # until a worker takes it: no wait is negative, the queue's mean wait is >= 0, and no
    # message spends longer in service than from its sending to its end.
    raw: Raw = {
        "run": {"until": 2000.0, "seed": 1, "replications": 3},
        "producers": {"app": {"to": "q", "rate": 0.5}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "count": 2, "service": "exponential(mean=1.5)",
                            "ack": "manual", "visibility_timeout": 2, "dedup": dedup}},
    }
    res = simq.run(raw)
    assert res.summary["messages"]["redelivered"] > 0  # the case under test happens
    v = res.visits
    bad = v[v["wait"] < 0]
    assert bad.empty, f"{len(bad)} visits wait < 0, e.g.\n{bad.head(3).to_string()}"
    assert (v["service"].dropna() >= 0).all()
    for r in res.replications:
        assert r.summary["queues"]["q"]["wait_mean"] >= 0
    m = res.messages
    done = m["outcome"] == "delivered"
    assert (m.loc[done, "service"] <= m.loc[done, "latency"] * (1 + 1e-9)).all()
    assert (m.loc[done, "wait"] >= 0).all()


# 3. summary mode drops the time series of a partitioned topic's consumers ----------------
def test_partition_consumers_keep_their_time_series_in_summary_mode() -> None:
    # Both modes give the same columns: consumer.readers.busy and .workers among them.
    raw: Raw = {
        "run": {"until": 1000.0, "seed": 1},
        "producers": {"app": {"to": "events", "rate": 1.5}},
        "topics": {"events": {"partitions": 3}},
        "consumers": {"readers": {"from": "events", "count": 2, "rate": 1.0}},
    }
    full = simq.run(raw)
    streamed = simq.run(simq.load(raw).with_overrides({"run.records": "summary"}))
    assert set(streamed.timeseries.columns) == set(full.timeseries.columns)
    ts = streamed.timeseries
    assert (ts["consumer.readers.busy"] <= ts["consumer.readers.workers"]).all()
    # Sampled levels: their mean is the time-average number busy, up to the sampling of a
    # step function on a grid of at least 1,000 points (well under 0.03 here).
    busy = ts["consumer.readers.busy"].mean() / 2
    assert busy == pytest.approx(streamed.summary["consumers"]["readers"]["utilization"],
                                 abs=0.03)


# 4. a group that routes back into its own queue loses count of messages ------------------
FEEDBACK: Raw = {
    "run": {"until": 300.0, "seed": 1, "replications": 3},
    "producers": {"app": {"to": "q", "rate": 0.4}},
    "queues": {"q": {}},
    "consumers": {"w": {"from": "q", "count": 1, "rate": 2.0,
                        "to": {"q": 0.5, "exit": 0.5}}},
}


@pytest.mark.parametrize("extra", [
    {"failure": 0.1}, {"ack": "manual"}, {"crashes": {"at": [[100, 5]]}}, {"dedup": True},
], ids=["failure", "manual-ack", "crashes", "dedup"])
def test_feedback_with_reliability_keys_conserves_messages(extra: Raw) -> None:
    # A visit routed back is a new visit of the same message, not a copy: the run ends
    # and every message has exactly one outcome (the summary raises otherwise).
    raw = copy.deepcopy(FEEDBACK)
    raw["consumers"]["w"].update(extra)
    res = simq.run(raw)
    for r in res.replications:
        _conserved(r.summary)
    m = res.messages
    # Each message makes on average 2 visits (geometric, p = 0.5): the feedback happened.
    assert len(res.visits) > 1.5 * len(m)


@pytest.mark.parametrize("seed", range(1, 7))
def test_dedup_visibility_slow_worker_and_resends_conserve_messages(seed: int) -> None:
    # Copies from every side at once: the visibility timeout hands a slow worker's
    # message to another worker, dedup discards copies it recognises, and the producer
    # resends what is not acked in time (as new messages). Each still has one outcome.
    # The issue saw 3 of 6 seeds fail (one message counted twice); this exact setting,
    # and 600 random ones around it, pass on today's engine: a guard, not a reproduction.
    raw: Raw = {
        "run": {"until": 1000.0, "seed": seed},
        "producers": {"app": {"to": "q", "rate": 1.0, "timeout": 3, "reply": "constant(0.1)",
                              "retry": {"max_attempts": 3}}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "count": 2, "service": "exponential(mean=0.7)",
                            "ack": "manual", "visibility_timeout": 2, "dedup": True,
                            "slow": {"workers": 1, "factor": 5}}},
    }
    res = simq.run(raw)
    _conserved(res.summary)
    assert res.summary["messages"]["retries"] > 0 and res.summary["messages"]["redelivered"] > 0


# 5. valid scenarios that crash the engine ------------------------------------------------
@pytest.mark.parametrize("scaling", ["schedule", "autoscale"])
def test_changing_group_beside_a_batch_group_runs(scaling: str) -> None:
    # Two groups share a queue; one changes its worker count (down to none for a while),
    # the other takes batches. Light load, so workers are often idle when they leave.
    elastic: Raw = {"from": "q", "count": 2, "rate": 1.0}
    if scaling == "schedule":
        elastic["schedule"] = [[50, 0], [100, 3], [150, 1]]
    else:
        elastic["autoscale"] = {"min": 1, "max": 4, "target_backlog_per_worker": 2,
                                "interval": 10, "cooldown": 30}
    raw: Raw = {
        "run": {"until": 300.0, "seed": 1, "replications": 5},
        "producers": {"app": {"to": "q", "rate": 1.0}},
        "queues": {"q": {}},
        "consumers": {"elastic": elastic,
                      "bulk": {"from": "q", "batch": 4, "service": "exponential(mean=1)"}},
    }
    res = simq.run(raw)
    for r in res.replications:
        _conserved(r.summary)
    served = res.visits["consumer"].value_counts()
    assert served["elastic"] > 0 and served["bulk"] > 0


def test_message_count_stop_with_send_timeouts_runs() -> None:
    # Stop after 5 messages; the producer resends those not acked within 2 s (the worker
    # is slower than that on average). Resends are messages too: the run ends when all
    # are settled, and the counts add up.
    raw: Raw = {
        "run": {"messages": 5, "seed": 1, "replications": 6},
        "producers": {"app": {"to": "q", "rate": 1.0, "timeout": 2, "retry": {}}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "rate": 0.8}},
    }
    res = simq.run(raw)
    for r in res.replications:
        _conserved(r.summary)
        m = r.summary["messages"]
        assert m["produced"] == 5 + m["retries"]
        assert m["in_flight"] == 0


# 6. run.messages without until never ends with periodic processes -------------------------
_ENDS = """
import json, sys, warnings
warnings.simplefilter("ignore")
import simq
res = simq.run(json.loads(sys.argv[1]))
print(json.dumps({"messages": res.summary["messages"], "t_end": res.replications[0].t_end}))
"""


@pytest.mark.parametrize("periodic", ["autoscale", "crashes"])
def test_message_count_stop_ends_with_periodic_processes(periodic: str) -> None:
    # The autoscaler's look every `interval` and each worker's next random crash are
    # always in the future; they must not keep the run alive once the 50 messages are
    # settled. A subprocess with a timeout keeps the suite from hanging today.
    worker: Raw = {"from": "q", "count": 2, "rate": 1.0}
    if periodic == "autoscale":
        worker["autoscale"] = {"min": 1, "max": 4, "target_backlog_per_worker": 2,
                               "interval": 10}
    else:
        worker["crashes"] = {"mtbf": "exponential(mean=100)", "mttr": "constant(5)"}
    raw: Raw = {
        "run": {"messages": 50, "seed": 1},
        "producers": {"app": {"to": "q", "rate": 1.0}},
        "queues": {"q": {}},
        "consumers": {"worker": worker},
    }
    try:
        done = subprocess.run([sys.executable, "-c", _ENDS, json.dumps(raw)],
                              capture_output=True, text=True, timeout=20, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run.messages: 50 with {periodic} did not end within 20 s")
    out = json.loads(done.stdout)
    m = out["messages"]
    assert m["produced"] == 50 and m["in_flight"] == 0, m
    # About 50 s of arrivals plus the time to drain them; nowhere near an endless run.
    assert math.isfinite(out["t_end"]) and out["t_end"] < 1000

