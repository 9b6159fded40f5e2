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

from simq.engine import Outcome
from simq.peak import queue_peak, worker_seconds, workers_at
from simq.record import (
    DEAD_LETTERED,
    DELIVERED,
    DROPPED,
    EXPIRED,
    LOST,
    Records,
    level_at,
    level_max,
    overlap,
)
from simq.scenario import Scenario
from simq.stats import slope

__all__ = ["ConservationError", "summarise", "timeseries_columns"]


class ConservationError(RuntimeError):
    """Messages were created or lost by the engine itself: a bug, never a user error."""


def _stats(x: np.ndarray, *quantiles: float) -> list[float]:
    if len(x) == 0:
        return [math.nan] * (len(quantiles) + 2)
    qs = np.quantile(x, quantiles).tolist() if quantiles else []
    return [float(x.mean()), *qs, float(x.max())]


def summarise(rec: Records, sc: Scenario, out: Outcome, t0: float) -> dict[str, Any]:
    """The summary of one replication (before averaging over replications)."""
    t1 = out.t_stop
    span = t1 - t0
    if span <= 0:
        span = math.nan
    o = rec.outcome
    counts = {
        "produced": int(len(rec.sent)),
        "delivered": int((o == DELIVERED).sum()),
        "dropped": int((o == DROPPED).sum()),
        "lost": int((o == LOST).sum()),
        "expired": int((o == EXPIRED).sum()),
        "dead_lettered": int((o == DEAD_LETTERED).sum()),
        "duplicates": 0,
        "in_flight": int(out.in_flight),
    }
    accounted = sum(v for k, v in counts.items() if k not in {"produced", "duplicates"})
    if accounted != counts["produced"]:
        raise ConservationError(
            f"produced {counts['produced']} != accounted {accounted}: {counts}"
        )
    unfinished = int((o < 0).sum())
    if unfinished != counts["in_flight"]:
        raise ConservationError(
            f"{unfinished} messages unfinished in the log, {counts['in_flight']} found inside"
        )

    in_window = (rec.sent >= t0) & (rec.sent < t1)
    # Without a warm-up, a queue's starting backlog (sent at minus its age, producer -1)
    # belongs to the window: the run is about it (docs/peak.md).
    backlog_in = t0 <= 0 and bool((rec.producer < 0).any())
    if backlog_in:
        in_window |= rec.producer < 0
    done_in_window = (rec.done >= t0) & (rec.done <= t1)
    delivered = o == DELIVERED
    latency = (rec.done - rec.sent)[delivered & in_window]
    mean, p50, p95, p99, mx = _stats(latency, 0.5, 0.95, 0.99)

    summary: dict[str, Any] = {
        "messages": counts,
        "throughput": float((delivered & done_in_window).sum() / span),
        "offered_rate": float(in_window.sum() / span),
        "latency": {"mean": mean, "p50": p50, "p95": p95, "p99": p99, "max": mx},
        "queues": {},
        "consumers": {},
        "links": {},
    }

    v = rec.visits
    left = np.where(np.isnan(v["left"]), rec.t_end, v["left"])
    grid = np.linspace(t0, t1, 201) if span == span else np.array([t0])
    for qi, name in enumerate(sc.queues):
        at = v["queue"] == qi
        arrived, lft, group = v["arrived"][at], left[at], v["group"][at]
        entered = (arrived >= t0) & (arrived < t1)
        if backlog_in:
            entered |= arrived < t0
        served = entered & (group >= 0) & ~np.isnan(v["left"][at])
        wait = (lft - arrived)[served]
        dropped_here = (o == DROPPED) & (rec.where == qi)
        dropped_win = int((dropped_here & done_in_window).sum())
        evicted_win = int(((group < 0) & ~np.isnan(v["left"][at]) & (lft >= t0)
                           & (lft <= t1)).sum())
        # Offered = entered the line + turned away at the door (drop-new); an evicted
        # message (drop-oldest) had entered, so it is not counted twice.
        offered = int(entered.sum()) + (dropped_win - evicted_win)
        level = level_at(arrived, v["left"][at], grid)
        wq = _stats(wait, 0.95)
        peak, peak_time, drain = queue_peak(arrived, v["left"][at], t0, t1)
        summary["queues"][name] = {
            "wait_mean": wq[0],
            "wait_p95": wq[1],
            "length_mean": float(overlap(arrived, lft, t0, t1).sum() / span),
            "length_max": level_max(arrived, v["left"][at], t0, t1),
            "arrivals": offered,
            "dropped": dropped_win,
            "drop_fraction": dropped_win / offered if offered else 0.0,
            "growth_rate": slope(grid, level),
            "peak_length": peak,
            "peak_time": peak_time,
            "drain_time": drain,
        }

    for gi, (name, spec) in enumerate(sc.consumers.items()):
        at = v["group"] == gi
        start, end = v["left"][at], v["end"][at]
        end_f = np.where(np.isnan(end), rec.t_end, end)
        busy = overlap(start, end_f, t0, t1).sum()
        started_in = (start >= t0) & (start < t1) & ~np.isnan(end)
        # The worker count may change (schedule, autoscale): divide by worker-seconds.
        ws = worker_seconds(rec, gi, spec.count, t0, t1)
        summary["consumers"][name] = {
            "utilization": float(busy / ws) if ws > 0 else math.nan,
            "throughput": float(((end >= t0) & (end <= t1)).sum() / span),
            "service_mean": _stats(end[started_in] - start[started_in])[0],
            "worker_seconds": ws,
        }

    h = rec.hops
    for li, name in enumerate(sc.links):
        at = h["link"] == li
        entered = h["entered"][at]
        inw = (entered >= t0) & (entered < t1)
        summary["links"][name] = {
            "delay_mean": _stats((h["out"][at] - entered)[inw])[0],
            "utilization": float(overlap(h["tx_start"][at], h["tx_end"][at], t0, t1).sum()
                                 / span),
            "lost": int(((o == LOST) & (rec.where == li) & done_in_window).sum()),
        }
    return summary


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
    for gi, name in enumerate(sc.consumers):
        at = (v["group"] == gi) & ~np.isnan(v["left"])
        cols[f"consumer.{name}.busy"] = level_at(v["left"][at], v["end"][at], times)
        cols[f"consumer.{name}.workers"] = workers_at(rec, gi, sc.consumers[name].count, times)
    h = rec.hops
    for li, name in enumerate(sc.links):
        at = h["link"] == li
        cols[f"link.{name}.in_transit"] = level_at(h["entered"][at], h["out"][at], times)
    return cols
