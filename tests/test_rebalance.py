"""Consumer-group rebalancing on a partitioned topic (docs/rebalancing.md): assignors,
eager and cooperative protocols, the session timeout, the log in res.faults and the
summary in both record modes."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import CHECKS, override

import simq
from simq.analysis.stats import agreement
from simq.engine.rebalance import range_assign, round_robin_assign, sticky_assign

LAMBDA_P, MU, PAUSE, JOIN_AT = 0.5, 1.0, 20.0, 300.0

# Four partitions, one worker each (uniform keys: each partition a Poisson stream of λ/4),
# constant service at μ = 1, ρ = 0.5; a fifth member joins at 300 s and sits idle (more
# members than partitions), but the eager rebalance it starts pauses every partition.
BASE: dict[str, Any] = {
    "name": "rebalance",
    "run": {"until": 420.0, "seed": 11, "replications": 20},
    "producers": {"app": {"to": "orders", "rate": 4 * LAMBDA_P}},
    "topics": {"orders": {"partitions": 4, "key": "uniform"}},
    "consumers": {"g": {
        "from": "orders", "count": 4, "service": f"constant({1 / MU})",
        "schedule": [[0, 4], [JOIN_AT, 5]],
        "rebalance": {"protocol": "eager", "time": f"constant({PAUSE})"},
    }},
}


def level(v: pd.DataFrame, t: float) -> int:
    """Messages waiting in the line (arrived, not yet taken) at time t."""
    return int(((v["arrived"] <= t) & ~(v["start"] <= t)).sum())


def first_empty(v: pd.DataFrame, t: float) -> float:
    """The first time from t on at which the line is empty."""
    for s in np.sort(v["start"].dropna().to_numpy()):
        if s >= t and level(v, s) == 0:
            return float(s)
    return float("nan")


def test_assignors_balance_and_sticky_moves_least() -> None:
    three, four = [0, 1, 2], [0, 1, 2, 3]
    for assign in (range_assign, round_robin_assign, sticky_assign):
        out = assign(12, four, assign(12, three, [None] * 12))
        assert sorted(np.bincount([m for m in out if m is not None]).tolist()) == [3, 3, 3, 3]
    assert range_assign(5, [7, 9], []) == [7, 7, 7, 9, 9]
    assert round_robin_assign(5, [7, 9], []) == [7, 9, 7, 9, 7]
    before = range_assign(12, three, [None] * 12)
    moved = {a.__name__: sum(x != y for x, y in zip(before, a(12, four, before), strict=True))
             for a in (range_assign, sticky_assign)}
    assert moved == {"range_assign": 6, "sticky_assign": 3}
    # A member leaving: sticky moves only what it held.
    after = sticky_assign(12, [0, 2], before)
    assert sum(x != y for x, y in zip(before, after, strict=True)) == 4
    assert all(after[p] == before[p] for p in range(12) if before[p] != 1)


def test_sticky_moves_fewer_partitions_than_range_on_a_join() -> None:
    moved = {}
    for assignor in ("range", "sticky"):
        sc = override(BASE, {"topics.orders.partitions": 12, "run.replications": 1,
                             "consumers.g.count": 3, "consumers.g.schedule": [[0, 3], [100, 4]],
                             "consumers.g.rebalance.assignor": assignor, "run.until": 200.0})
        res = simq.run(sc)
        moved[assignor] = res.summary["consumers"]["g"]["partitions_moved"]
        f = res.faults
        assert f["trigger"].tolist() == ["join"] and f["start"].tolist() == [100.0]
    assert moved == {"range": 6, "sticky": 3}


def test_eager_pause_builds_lambda_p_on_every_partition_and_drains_at_mu_minus_lambda() -> None:
    res = simq.run(BASE)
    f = res.faults
    reps = BASE["run"]["replications"]
    assert (f["kind"] == "rebalance").all() and len(f) == reps
    assert f["start"].eq(JOIN_AT).all() and f["end"].eq(JOIN_AT + PAUSE).all()
    assert f["paused"].eq(4).all() and f["moved"].eq(0).all()
    v = res.visits
    grown, drained = [], []
    for r in range(reps):
        mine = v[v["replication"] == r]
        ups, drains = [], []
        for p in range(4):
            part = mine[mine["queue"] == f"orders[{p}]"]
            # Nobody takes from any partition while the eager rebalance goes on.
            assert not ((part["start"] > JOIN_AT) & (part["start"] < JOIN_AT + PAUSE)).any()
            # (just before the end: at the end its new owner takes one at once)
            ups.append(level(part, JOIN_AT + PAUSE - 1e-9) - level(part, JOIN_AT))
            drains.append(first_empty(part, JOIN_AT + PAUSE) - (JOIN_AT + PAUSE))
        grown.append(np.mean(ups))
        drained.append(np.mean(drains))
    # Arrivals in the pause, none leaving: λ·P on every partition, exactly in expectation.
    got = agreement(grown, LAMBDA_P * PAUSE, checks=CHECKS)
    assert got, got
    # The backlog L (λ·P plus the M/D/1 line's mean ρ²/(2(1−ρ)) at the start) drains at
    # μ − λ: the owner takes one message at the end and one per service after it, and the
    # line only falls one at a time, so (Wald) it first empties after (L − 1)/(μ − λ).
    rho = LAMBDA_P / MU
    backlog = LAMBDA_P * PAUSE + rho**2 / (2 * (1 - rho))
    got = agreement(drained, (backlog - 1) / (MU - LAMBDA_P), checks=CHECKS)
    assert got, got


def test_cooperative_pauses_only_the_moved_partitions() -> None:
    # Two members own two partitions each; a third joins: sticky moves one partition.
    sc = override(BASE, {"consumers.g.count": 2, "consumers.g.schedule": [[0, 2], [JOIN_AT, 3]],
                         "consumers.g.rebalance.assignor": "sticky", "run.replications": 2})
    waits = {}
    for protocol, pause in (("cooperative", PAUSE), ("cooperative", 0.0), ("eager", PAUSE)):
        run = override(sc, {"consumers.g.rebalance.protocol": protocol,
                            "consumers.g.rebalance.time": f"constant({pause})"})
        res = simq.run(run)
        f = res.faults
        assert f["moved"].eq(1).all()
        assert f["paused"].eq(1 if protocol == "cooperative" else 4).all()
        v = res.visits.sort_values(["replication", "id"])
        waits[protocol, pause] = {p: v[v["queue"] == f"orders[{p}]"]["wait"].to_numpy()
                                  for p in range(4)}
    coop, instant, eager = waits["cooperative", PAUSE], waits["cooperative", 0.0], \
        waits["eager", PAUSE]
    # The partition that moved (member 1's second one) pauses; the others are served
    # exactly as if the rebalance took no time, while eager pauses every one.
    assert not np.array_equal(coop[3], instant[3])
    assert coop[3].max() >= PAUSE - 1 / MU
    for p in range(3):
        np.testing.assert_array_equal(coop[p], instant[p])
        assert not np.array_equal(eager[p], instant[p])


def test_session_timeout_delays_noticing_a_crash() -> None:
    timeout, mean_time = 15.0, 5.0
    sc = override(BASE, {
        "run.replications": 16, "run.until": 250.0,
        "consumers.g.count": 2, "consumers.g.schedule": None,
        "consumers.g.service": "constant(0.1)",
        "consumers.g.crashes": {"mtbf": "exponential(mean=150)", "mttr": "constant(1000)"},
        "consumers.g.rebalance": {"time": f"exponential(mean={mean_time})",
                                  "session_timeout": timeout},
    })
    res = simq.run(sc)
    f, v = res.faults, res.visits
    gaps = []
    for r in range(16):
        rb = f[(f["replication"] == r) & (f["kind"] == "rebalance")]
        if rb.empty:
            continue
        first = rb.iloc[0]
        assert first["trigger"] == "crash" and first["start"] == first["cause"] + timeout
        if len(rb) > 1 and rb.iloc[1]["cause"] < first["end"]:
            continue  # the other member crashed too before this one was handed over
        mine = v[v["replication"] == r]
        # The crashed member's partitions (two of the four, by range): nobody takes from
        # them until it is noticed and the rebalance has handed them over (they have a
        # backlog by then; the new owner takes one of them once it has finished the
        # message in hand, at most one short service later).
        firsts = []
        for p in range(4):
            starts = mine[mine["queue"] == f"orders[{p}]"]["start"].dropna().to_numpy()
            later = starts[starts > first["cause"]]
            firsts.append(later.min() if len(later) else np.inf)
        stranded = [t for t in firsts if t >= first["start"]]
        assert len(stranded) == 2
        gaps.append(min(stranded) - first["cause"])
        assert first["end"] - first["cause"] <= gaps[-1] <= first["end"] - first["cause"] + 0.1
    assert len(gaps) >= 8
    got = agreement(gaps, timeout + mean_time, checks=CHECKS)
    assert got, got


@pytest.mark.parametrize("protocol", ["eager", "cooperative"])
def test_one_member_crashing_is_one_rebalance_a_session_timeout_later(protocol: str) -> None:
    # Member 0 of 4 (partition 0) crashes at 100 s and stays down; the others serve on.
    timeout, crash = 10.0, 100.0
    sc = override(BASE, {
        "run.replications": 3, "run.until": 250.0, "consumers.g.schedule": None,
        "consumers.g.crashes": {"at": [[crash, 1000.0]], "workers": 1},
        "consumers.g.rebalance": {"protocol": protocol, "assignor": "sticky",
                                  "time": f"constant({PAUSE})", "session_timeout": timeout},
    })
    res = simq.run(sc)
    f, v = res.faults, res.visits
    for r in range(3):
        rb = f[(f["replication"] == r) & (f["kind"] == "rebalance")]
        assert len(rb) == 1
        one = rb.iloc[0]
        assert one["trigger"] == "crash" and one["cause"] == crash
        assert one["start"] == crash + timeout and one["end"] == crash + timeout + PAUSE
        assert one["moved"] == 1 and one["paused"] == (4 if protocol == "eager" else 1)
        mine = v[v["replication"] == r]
        for p in range(4):
            starts = mine[mine["queue"] == f"orders[{p}]"]["start"].dropna().to_numpy()
            before = starts[(starts > crash) & (starts < crash + timeout)]
            # The crashed member's partition waits until the handover ends; the others
            # are served from the crash to the rebalance (at 0.5 msg/s for 10 s: one take
            # at least, but for about one chance in 150 per partition and seed).
            assert (len(before) == 0) == (p == 0), (r, p)
            if p == 0:
                assert starts[starts > crash].min() >= one["end"]
    assert res.summary["consumers"]["g"]["crashes"] == 1


def test_both_record_modes_and_determinism() -> None:
    sc = override(BASE, {"run.replications": 2,
                         "consumers.g.crashes": {"at": [[100.0, 40.0]]},
                         "consumers.g.rebalance.session_timeout": 10.0})
    full = simq.run(sc).summary["consumers"]["g"]
    again = simq.run(sc).summary["consumers"]["g"]
    summ = simq.run(override(sc, {"run.records": "summary"})).summary["consumers"]["g"]
    keys = ("rebalances", "partitions_moved", "rebalance_time", "rebalance_pause")
    assert full == again
    for k in keys:
        assert full[k] == pytest.approx(summ[k]), k
    # Crash at 100 noticed at 110 (to no members), members back at 140, the scheduled
    # join at 300, 20 s each: 4 partitions paused in each, and 4 stranded for the 10 s
    # before the crash was noticed.
    assert full["rebalances"] == 3
    assert full["rebalance_time"] == pytest.approx(3 * 20)
    assert full["rebalance_pause"] == pytest.approx(4 * 60 + 4 * 10)


def test_a_rebalance_needs_a_partitioned_topic() -> None:
    sc = copy.deepcopy(BASE)
    sc["queues"] = {"q": {}}
    sc["producers"]["app"]["to"] = "q"
    sc["consumers"]["g"]["from"] = "q"
    del sc["topics"]
    with pytest.raises(simq.ScenarioError, match=r"consumers\.g\.rebalance: .*queue"):
        simq.load(sc)
    with pytest.raises(simq.ScenarioError, match=r"rebalance\.protocol"):
        simq.load(override(BASE, {"consumers.g.rebalance.protocol": "stop-the-world"}))
