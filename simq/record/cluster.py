"""A broker cluster's numbers in the summary (docs/cluster.md): each broker's writes,
utilisation, leadership and down time, and the cluster's failovers, unavailable
partition-seconds and writes lost at a failover. Both record modes keep the cluster log
whole (a few rows per broker event) and call :func:`cluster_summary`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simq.engine.recorder import C_DOWN, C_LEADER, C_LOAD, C_LOST, C_UP
from simq.record.window import Window
from simq.scenario import Scenario

__all__ = ["broker_spells", "cluster_summary", "join"]


def join(chunks: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The cluster log's chunks as one set of columns."""
    names = ("kind", "broker", "log", "t", "appends", "copies", "busy")
    if not chunks:
        return {n: np.empty(0) for n in names}
    return {n: np.concatenate([c[n] for c in chunks]) for n in names}


def broker_spells(rows: Mapping[str, np.ndarray], broker: int,
                  t_end: float) -> list[tuple[float, float]]:
    """[down, back) of each outage of a broker (back = t_end if never)."""
    at = rows["broker"] == broker
    kind, t = rows["kind"][at], rows["t"][at]
    downs = t[kind == C_DOWN].tolist()
    ups = t[kind == C_UP].tolist()
    ups += [t_end] * (len(downs) - len(ups))
    return list(zip(downs, ups, strict=True))


def _counters_at(rows: Mapping[str, np.ndarray], broker: int, t: float
                 ) -> tuple[float, np.ndarray]:
    """The broker's last counters (time, [appends, copies, busy]) at or before ``t``."""
    at = np.flatnonzero((rows["kind"] == C_LOAD) & (rows["broker"] == broker)
                        & (rows["t"] <= t))
    k = at[-1]
    return float(rows["t"][k]), np.array([rows["appends"][k], rows["copies"][k],
                                          rows["busy"][k]], dtype=float)


def cluster_summary(chunks: Sequence[Mapping[str, np.ndarray]], sc: Scenario, w: Window,
                    queues: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``brokers`` (per broker) and ``cluster`` (totals) sections of the summary.

    Writes and busy time are counted from the start of the window to the end of the run
    (the engine logs each broker's counters when the window opens and at the end);
    failovers and lost writes by their time in the window; unavailability is the
    partition-seconds the logs' queues were down in the window (their ``down_time``)."""
    spec = sc.brokers
    assert spec is not None
    rows = join(chunks)
    t_end = w.t_end
    logs = sc.logs()
    leader_rows = np.flatnonzero(rows["kind"] == C_LEADER)
    order = leader_rows[np.argsort(rows["t"][leader_rows], kind="stable")]
    last: dict[int, int] = {}
    failovers = 0
    for k in order:
        lg, b = int(rows["log"][k]), int(rows["broker"][k])
        if b >= 0:
            if lg in last and last[lg] != b and w.at(rows["t"][k:k + 1])[0]:
                failovers += 1
            last[lg] = b
    leads_now = dict.fromkeys(range(len(spec.broker_names)), 0)
    for k in range(len(logs)):
        # The leader at the end: the last LEADER row (broker -1: none).
        mine = order[rows["log"][order] == k]
        b = int(rows["broker"][mine[-1]]) if len(mine) else -1
        if b >= 0:
            leads_now[b] += 1
    brokers: dict[str, Any] = {}
    for bi, name in enumerate(spec.broker_names):
        t_a, start = _counters_at(rows, bi, w.t0)
        t_b, end = _counters_at(rows, bi, math.inf)
        span = t_b - max(t_a, w.t0) if t_b > w.t0 else math.nan
        d = end - start
        spells = [(a, b) for a, b in broker_spells(rows, bi, t_end)
                  if b > w.t0 and a <= w.t1]
        down = sum(min(b, w.t1) - max(a, w.t0) for a, b in spells)
        brokers[name] = {
            "appends": int(d[0]),
            "copies": int(d[1]),
            "write_rate": float((d[0] + d[1]) / span) if span > 0 else math.nan,
            "utilization": float(d[2] / span) if span > 0 else math.nan,
            "leads": leads_now[bi],
            "outages": sum(1 for a, _ in spells if a >= w.t0),
            "down_time": float(down),
        }
    lost_at = (rows["kind"] == C_LOST) & w.at(rows["t"])
    unavailable = sum(float(queues[views[0]].get("down_time", 0.0)) for views in logs.values())
    return {"brokers": brokers,
            "cluster": {"failovers": failovers, "unavailable_time": unavailable,
                        "lost_at_failover": int(rows["appends"][lost_at].sum())}}
