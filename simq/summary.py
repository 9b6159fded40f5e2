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
    STAGES,
    Records,
    level_at,
    level_max,
    overlap,
)
from simq.scenario import Scenario
from simq.stats import slope

__all__ = ["BREAKDOWN", "ConservationError", "breakdown_columns", "summarise",
           "timeseries_columns"]

# The steps of a message's latency, in the order it meets them; `other` is what is left
# (a sender or worker held up by backpressure).
BREAKDOWN = ("encode", "batch", "link", "retransmit", "wait", "buffer", "service", "decode",
             "reply", "other")


class ConservationError(RuntimeError):
    """Messages were created or lost by the engine itself: a bug, never a user error."""


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
    waited = ~np.isnan(left)
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
    latency_all = rec.done - rec.sent
    latency = latency_all[delivered & in_window]
    mean, p50, p95, p99, mx = _stats(latency, 0.5, 0.95, 0.99)

    # Fan-out copies are messages of their own (in `produced`); say how many there were
    # (only where a fan-out topic exists, so plain summaries keep their shape).
    if any(t.subscribers is not None for t in sc.topics.values()):
        counts["copies"] = int((rec.parent >= 0).sum())
    summary: dict[str, Any] = {
        "messages": counts,
        "throughput": float((delivered & done_in_window).sum() / span),
        "offered_rate": float(in_window.sum() / span),
        "latency": {"mean": mean, "p50": p50, "p95": p95, "p99": p99, "max": mx},
        "queues": {},
        "consumers": {},
        "links": {},
    }
    parts = breakdown_columns(rec)
    counted = delivered & in_window
    summary["breakdown"] = {
        k: float(x[counted].mean()) if counted.any() else math.nan for k, x in parts.items()
    }
    summary["producers"] = {}
    for pi, (name, prod) in enumerate(sc.producers.items()):
        mine = rec.producer == pi
        lat = _stats(latency_all[mine & counted], 0.95)
        summary["producers"][name] = {
            "mode": prod.mode,
            "priority": prod.priority,
            "wait_mean": float(parts["wait"][mine & counted].mean()) if (mine & counted).any()
            else math.nan,
            "offered_rate": float((mine & in_window).sum() / span),
            "throughput": float((mine & delivered & done_in_window).sum() / span),
            "latency_mean": lat[0],
            "latency_p95": lat[1],
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
        # Batching and prefetching groups log each service (a visit of theirs also spans
        # the batch or the trip to the consumer); the others' visits are their services.
        logged = spec.batch > 1 or spec.prefetch is not None
        busy = _busy(rec, gi, logged, start, end, t0, t1)
        if logged:  # per service (a batch's service is shared by its messages)
            b = rec.batches
            mine = b["group"] == gi
            start, end = b["start"][mine], b["end"][mine]
            served = v["end"][at]
        else:
            served = end
        started_in = (start >= t0) & (start < t1) & ~np.isnan(end)
        # The worker count may change (schedule, autoscale): divide by worker-seconds.
        ws = worker_seconds(rec, gi, spec.count, t0, t1)
        summary["consumers"][name] = {
            "utilization": float(busy / ws) if ws > 0 else math.nan,
            "throughput": float(((served >= t0) & (served <= t1)).sum() / span),
            "service_mean": _stats(end[started_in] - start[started_in])[0],
            "worker_seconds": ws,
        }

    h = rec.hops
    for li, name in enumerate(sc.links):
        at = h["link"] == li
        entered = h["entered"][at]
        inw = (entered >= t0) & (entered < t1)
        tx_start, tx_end = h["tx_start"][at], h["tx_end"][at]
        if any(p.batch_size is not None for p in sc.producers.values()):
            # A producer batch is one transmission logged once per message: a serializing
            # link sends one thing at a time, so equal intervals are the same batch.
            pairs = np.unique(np.stack([tx_start, tx_end]), axis=1)
            tx_start, tx_end = pairs[0], pairs[1]
        summary["links"][name] = {
            "delay_mean": _stats((h["out"][at] - entered)[inw])[0],
            "utilization": float(overlap(tx_start, tx_end, t0, t1).sum() / span),
            "lost": int(((o == LOST) & (rec.where == li) & done_in_window).sum()),
            "retransmitted": int(((rec.retransmits["link"] == li) & (rec.retransmits["t"] >= t0)
                                  & (rec.retransmits["t"] <= t1)).sum()),
        }
    return summary


def _busy(rec: Records, gi: int, batch: bool, start: np.ndarray, end: np.ndarray,
          t0: float, t1: float) -> float:
    """Worker-seconds busy in [t0, t1]. A batch is one service for all its messages, so
    batching groups count their batches, not their messages' visits."""
    if batch:
        b = rec.batches
        at = b["group"] == gi
        # A service still running at the end is logged with end = NaN.
        ends = np.where(np.isnan(b["end"][at]), rec.t_end, b["end"][at])
        return float(overlap(b["start"][at], ends, t0, t1).sum())
    end_f = np.where(np.isnan(end), rec.t_end, end)
    return float(overlap(start, end_f, t0, t1).sum())


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
        if spec.batch > 1 or spec.prefetch is not None:  # one per service, as logged
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
    return cols
