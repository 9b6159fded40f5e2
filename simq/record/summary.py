"""Turn one replication's records into the numbers of the output contract.

Counts in ``messages`` cover the whole run, so conservation holds exactly; every rate,
mean and percentile covers the measurement window [t0, t1]. Message-based statistics
(latency, wait) use the messages that *entered* during the window; time-based ones
(lengths, utilization, throughput) are time averages over the window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simq.analysis.stats import slope
from simq.engine import Outcome
from simq.engine.recorder import (
    BACK,
    CUT,
    DELIVERED,
    HEALED,
    IN_FLIGHT,
    OUTAGE,
    REPEAT,
    STAGES,
    TRIGGERS,
    Records,
    level_at,
    level_max,
)
from simq.record.accumulators import BREAKDOWN, Accumulators
from simq.record.checks import ConservationError, EngineBugError, InvariantError
from simq.record.cluster import broker_spells
from simq.record.measures import queue_peak, worker_seconds, workers_at
from simq.record.window import Window
from simq.scenario import Scenario

__all__ = ["BREAKDOWN", "ConservationError", "EngineBugError", "InvariantError",
           "breakdown_columns", "fault_rows", "rebalance_rows", "record_logs", "summarise",
           "timeseries_columns"]


def _stats(x: np.ndarray, *quantiles: float) -> list[float]:
    if len(x) == 0:
        return [math.nan] * (len(quantiles) + 2)
    qs = np.quantile(x, quantiles).tolist() if quantiles else []
    return [float(x.mean()), *qs, float(x.max())]


def breakdown_columns(rec: Records) -> dict[str, np.ndarray]:
    """Per message: the time spent in each step of :data:`BREAKDOWN`, summed over visits."""
    n = len(rec.sent)

    def per_message(ids: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.bincount(ids, weights=x, minlength=n) if len(ids) else np.zeros(n)

    v = rec.visits
    left, end = v["left"], v["end"]
    # Work on a copy whose fate was decided elsewhere (REPEAT) is not on its path.
    waited = ~np.isnan(left) & (v["group"] > REPEAT)
    served = waited & ~np.isnan(end)
    cols = {
        "wait": per_message(v["id"][waited], (left - v["arrived"])[waited]),
        "service": per_message(v["id"][served], (end - left)[served]),
        "link": per_message(rec.hops["id"], rec.hops["out"] - rec.hops["entered"]),
    }
    st = rec.stages
    for code, name in STAGES.items():
        at = st["stage"] == code
        cols[name] = per_message(st["id"][at], (st["end"] - st["start"])[at])
    # A visit runs from leaving the line to the end of service: take out the decode and,
    # with prefetch, the trip to the consumer (`fetch`, also in `link`) and its buffer.
    cols["service"] = cols["service"] - cols["decode"] - cols["fetch"] - cols["buffer"]
    cols["other"] = (rec.done - rec.sent) - sum(cols[k] for k in BREAKDOWN[:-1])
    return {k: cols[k] for k in BREAKDOWN}


def record_logs(rec: Records) -> dict[str, dict[str, np.ndarray]]:
    """The joined logs of a replication as the chunk :class:`Accumulators` folds."""
    ended = np.flatnonzero(rec.outcome != IN_FLIGHT)
    copies = np.flatnonzero(rec.parent >= 0)
    return {
        "created": {"producer": rec.producer, "sent": rec.sent, "size": rec.size},
        "copies": {"id": copies, "parent": rec.parent[copies]},
        "visits": rec.visits, "hops": rec.hops, "stages": rec.stages,
        "batches": rec.batches, "retransmits": rec.retransmits, "events": rec.events,
        "blocked": rec.blocked, "order": rec.order,
        "rebalances": rec.rebalances, "cluster": rec.cluster,
        "finished": {"id": ended, "t": rec.done[ended], "outcome": rec.outcome[ended],
                     "where": rec.where[ended]},
    }


def summarise(rec: Records, sc: Scenario, out: Outcome, t0: float) -> dict[str, Any]:
    """The summary of one replication (before averaging over replications).

    The accumulators of summary mode fold the whole log at once; then what needs every
    row replaces their estimates: exact percentiles, the longest line, peak and drain,
    and the growth rate fitted to 201 exact levels.
    """
    w = Window(t0, out.t_stop, rec.t_end)
    acc = Accumulators(sc, w, percentiles=False)  # exact ones below
    acc.fold(record_logs(rec), rec.workers, final=True)
    summary = acc.summary(
        out, lambda gi, count: worker_seconds(rec, gi, count, w.t0, w.t1), acc.queue_spells)
    t1, span = w.t1, w.span

    in_window = w.sent_in(rec.sent, rec.producer)
    counted = (rec.outcome == DELIVERED) & in_window
    latency_all = rec.done - rec.sent
    mean, p50, p95, p99, mx = _stats(latency_all[counted], 0.5, 0.95, 0.99)
    summary["latency"].update({"p50": p50, "p95": p95, "p99": p99, "max": mx})
    for pi, name in enumerate(sc.producers):
        summary["producers"][name]["latency_p95"] = _stats(
            latency_all[counted & (rec.producer == pi)], 0.95)[1]

    for gi in acc.topic_groups:  # a group of a partitioned topic: what it delivered
        summary["consumers"][list(sc.consumers)[gi]]["latency_p95"] = _stats(
            latency_all[counted & (rec.where == gi)], 0.95)[1]

    v = rec.visits
    grid = np.linspace(t0, t1, 201) if span == span else np.array([t0])
    for qi, name in enumerate(sc.queues):
        at = v["queue"] == qi
        arrived, left, group = v["arrived"][at], v["left"][at], v["group"][at]
        served = w.entered(arrived) & (group >= 0) & ~np.isnan(left)
        peak, peak_time, drain = queue_peak(arrived, left, t0, t1)
        summary["queues"][name].update({
            "wait_p95": _stats((left - arrived)[served], 0.95)[1],
            "length_max": level_max(arrived, left, t0, t1),
            "growth_rate": slope(grid, level_at(arrived, left, grid)),
            "peak_length": peak,
            "peak_time": peak_time,
            "drain_time": drain,
        })
    return summary


def _spells(rec: Records, down: int, up: int, where: int) -> list[tuple[float, float]]:
    """[start, end) of each period a component was down (end = t_end if never back)."""
    e = rec.events
    starts = e["t"][(e["kind"] == down) & (e["where"] == where)]
    ends = e["t"][(e["kind"] == up) & (e["where"] == where)]
    ends = np.r_[ends, [rec.t_end] * (len(starts) - len(ends))]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def fault_rows(rec: Records, sc: Scenario) -> list[tuple[str, str, float, float, float]]:
    """Every fault of a replication: (component, kind, start, end, recovery seconds).

    Kinds: `outage` (queues.NAME), `partition` (links.NAME), `crash` (consumers.NAME: a
    spell with fewer workers up than the group has), `rebalance` (consumers.NAME: from
    its start to its end; :func:`rebalance_rows` has the details). Recovery is measured
    for faults that stop a queue (outages, partitions, a group with no worker up, a
    rebalance), else NaN. On a broker cluster, `broker_outage` (brokers.NAME) for each
    broker down, and `outage` for each queue or partition while it had no leader.
    """
    rows: list[tuple[str, str, float, float, float]] = []
    for qi, name in enumerate(sc.queues):
        if sc.may_go_down(name):
            for a, b in _spells(rec, OUTAGE, BACK, qi):
                rows.append((f"queues.{name}", "outage", a, b,
                             _recovery(rec.sent, rec.done, a, b)))
    for li, (name, lk) in enumerate(sc.links.items()):
        if lk.partitions is not None:
            for a, b in _spells(rec, CUT, HEALED, li):
                rows.append((f"links.{name}", "partition", a, b,
                             _recovery(rec.sent, rec.done, a, b)))
    w = rec.workers
    for gi, (name, c) in enumerate(sc.consumers.items()):
        if c.crashes is None:
            continue
        at = w["group"] == gi
        t, n = w["t"][at], w["online"][at]
        short = n < c.count
        for k in np.flatnonzero(short & np.r_[True, ~short[:-1]]):
            later = np.flatnonzero((t > t[k]) & ~short)
            end = float(t[later[0]]) if len(later) else rec.t_end
            whole = bool((n[(t >= t[k]) & (t < end)] == 0).any())
            rows.append((f"consumers.{name}", "crash", float(t[k]), end,
                         _recovery(rec.sent, rec.done, float(t[k]), end) if whole
                         else math.nan))
    for row in rebalance_rows(rec, sc):
        rows.append((row[0], "rebalance", row[3], row[4],
                     _recovery(rec.sent, rec.done, row[3], row[4])))
    if sc.brokers is not None and rec.cluster:
        for bi, name in enumerate(sc.brokers.broker_names):
            for a, b in broker_spells(rec.cluster, bi, rec.t_end):
                rows.append((f"brokers.{name}", "broker_outage", a, b, math.nan))
    return sorted(rows, key=lambda r: r[2])


def rebalance_rows(rec: Records, sc: Scenario
                   ) -> list[tuple[str, str, float, float, float, int, int, float]]:
    """Every rebalance of a replication: (component, trigger, cause, start, end, partitions
    moved, partitions paused, pause in partition-seconds). The cause is when the member
    crashed, joined or left; a crash is noticed (the rebalance starts) a session timeout
    later. End is the run's end for one still going on."""
    rb = rec.rebalances
    names = list(sc.consumers)
    out = []
    for k in range(len(rb.get("group", ()))):
        end = float(rb["end"][k])
        end = rec.t_end if math.isnan(end) else end
        start, cause = float(rb["start"][k]), float(rb["cause"][k])
        pause = int(rb["paused"][k]) * (end - start) + int(rb["stranded"][k]) * (start - cause)
        out.append((f"consumers.{names[int(rb['group'][k])]}", TRIGGERS[int(rb["trigger"][k])],
                    cause, start, end, int(rb["moved"][k]), int(rb["paused"][k]), pause))
    return out


def _recovery(arrived: np.ndarray, left: np.ndarray, start: float, end: float) -> float:
    """Seconds from the end of a fault until the backlog (the intervals [arrived, left)
    open: messages in the system) is back to its level when the fault began (NaN: not by
    the end of the run). Messages held at a door or by a cut link count."""
    before = level_at(arrived, left, np.array([start]))[0]
    # The level only falls at departures: check the end of the fault, then each of them.
    ends = np.where(np.isnan(left), np.inf, left)
    times = np.r_[end, np.sort(ends[(ends > end) & np.isfinite(ends)], kind="stable")]
    levels = level_at(arrived, left, times)
    ok = np.flatnonzero(levels <= before)
    return float(times[ok[0]] - end) if len(ok) else math.nan


def timeseries_columns(
    rec: Records, sc: Scenario, times: np.ndarray
) -> dict[str, np.ndarray]:
    """Exact levels at the given times: in flight, waiting per queue, busy, in transit."""
    cols: dict[str, np.ndarray] = {"time": times}
    cols["in_flight"] = level_at(rec.sent, rec.done, times)
    v = rec.visits
    for qi, name in enumerate(sc.queues):
        at = v["queue"] == qi
        cols[f"queue.{name}.length"] = level_at(v["arrived"][at], v["left"][at], times)
    for gi, (name, spec) in enumerate(sc.consumers.items()):
        at = (v["group"] == gi) & ~np.isnan(v["left"])
        if spec.logs_services:  # one per service, as logged
            b = rec.batches
            mine = b["group"] == gi
            cols[f"consumer.{name}.busy"] = level_at(b["start"][mine], b["end"][mine], times)
        else:
            cols[f"consumer.{name}.busy"] = level_at(v["left"][at], v["end"][at], times)
        cols[f"consumer.{name}.workers"] = workers_at(rec, gi, sc.consumers[name].count, times)
    h = rec.hops
    for li, name in enumerate(sc.links):
        at = h["link"] == li
        cols[f"link.{name}.in_transit"] = level_at(h["entered"][at], h["out"][at], times)
    # Faults, as 1 (up) or 0 (down), for the components that can fail.
    for qi, name in enumerate(sc.queues):
        if sc.may_go_down(name):
            cols[f"queue.{name}.up"] = _up_at(_spells(rec, OUTAGE, BACK, qi), times)
    for li, (name, lspec) in enumerate(sc.links.items()):
        if lspec.partitions is not None:
            cols[f"link.{name}.up"] = _up_at(_spells(rec, CUT, HEALED, li), times)
    return cols


def _up_at(spells: list[tuple[float, float]], times: np.ndarray) -> np.ndarray:
    up = np.ones(len(times), dtype=np.int64)
    for a, b in spells:
        up[(times >= a) & (times < b)] = 0
    return up
