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
    ACKED,
    ATTEMPT,
    BACK,
    CRASH,
    CRASH_LOST,
    CUT,
    DEAD_LETTER,
    DEAD_LETTERED,
    DELIVERED,
    DISCARDED,
    DROPPED,
    DUPLICATE,
    EXPIRED,
    FAILED,
    GAVE_UP,
    HEALED,
    LOST,
    OUTAGE,
    REPEAT,
    REQUEUED,
    RETRIED,
    STAGES,
    TIMED_OUT,
    Records,
    level_at,
    level_max,
    overlap,
)
from simq.scenario import Scenario
from simq.stats import slope

__all__ = ["BREAKDOWN", "ConservationError", "breakdown_columns", "fault_rows", "summarise",
           "timeseries_columns"]

# The steps of a message's latency, in the order it meets them; `other` is what is left
# (a sender or worker held up by backpressure).
BREAKDOWN = ("encode", "batch", "link", "retransmit", "persist", "replicate", "wait", "buffer",
             "service", "decode", "reply", "other")


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
        "duplicates": rec.count(DUPLICATE) + _resent_twice(rec, sc),
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
    # Not outcomes (a message may have several): requeues, and dedup's discarded copies.
    counts["redelivered"] = rec.count(REQUEUED)
    counts["discarded"] = rec.count(DISCARDED)
    if any(p.timeout is not None for p in sc.producers.values()):
        counts["retries"] = rec.count(RETRIED)
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
        b = rec.blocked
        mine_b = b["producer"] == pi
        ends = np.where(np.isnan(b["end"][mine_b]), rec.t_end, b["end"][mine_b])
        held = float(overlap(b["start"][mine_b], ends, t0, t1).sum())
        # Backpressure: seconds this producer (summed over its sync clients) was held up.
        summary["producers"][name]["blocked_time"] = held
        summary["producers"][name]["blocked_fraction"] = held / span
        if prod.timeout is not None:
            # Goodput: messages whose ack reached the sender in time, per second.
            summary["producers"][name].update({
                "goodput": rec.count(ACKED, pi, t0, t1) / span,
                "timed_out": rec.count(TIMED_OUT, pi, t0, t1),
                "retries": rec.count(RETRIED, pi, t0, t1),
                "gave_up": rec.count(GAVE_UP, pi, t0, t1),
            })

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
        evicted_win = int(((group == -1) & ~np.isnan(v["left"][at]) & (lft >= t0)
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
            # Whole-window counts (docs/reliability.md): taken out by ttl, moved to the
            # dead-letter queue (or dead-lettered without one), given back to the line.
            "expired": int(((o == EXPIRED) & (rec.where == qi) & done_in_window).sum()),
            "dead_lettered": rec.count(DEAD_LETTER, qi, t0, t1),
            "redelivered": rec.count(REQUEUED, qi, t0, t1),
        }
        spells = _fault_spells(rec, sc, name)
        if spells is not None:
            inside = [(a, b) for a, b in spells if t0 <= a <= t1]
            rec_times = [_recovery(rec.sent, rec.done, a, b) for a, b in inside]
            summary["queues"][name].update({
                "faults": len(inside),
                "down_time": float(sum(min(b, t1) - a for a, b in inside)),
                "recovery_mean": float(np.mean(rec_times)) if rec_times else math.nan,
                "recovery_max": float(np.max(rec_times)) if rec_times else math.nan,
            })

    for gi, (name, spec) in enumerate(sc.consumers.items()):
        at = v["group"] == gi
        start, end = v["left"][at], v["end"][at]
        # Batching, prefetching and visibility-timeout groups log each service (a visit of
        # theirs also spans the batch or the trip to the consumer, or ends when the broker
        # took the message back); the others' visits are their services.
        logged = spec.logs_services
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
        if spec.reliable:
            summary["consumers"][name].update({
                "attempts": rec.count(ATTEMPT, gi, t0, t1),
                "failures": rec.count(FAILED, gi, t0, t1),
                "duplicates": rec.count(DUPLICATE, gi, t0, t1),
                "discarded": rec.count(DISCARDED, gi, t0, t1),
                "crashes": rec.count(CRASH, gi, t0, t1),
                "lost": rec.count(CRASH_LOST, gi, t0, t1),
            })

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
    spell with fewer workers up than the group has). Recovery is measured for faults that
    stop a queue (outages, partitions, a group with no worker up), else NaN.
    """
    rows: list[tuple[str, str, float, float, float]] = []
    for qi, (name, q) in enumerate(sc.queues.items()):
        if q.outages is not None:
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
    return sorted(rows, key=lambda r: r[2])


def _fault_spells(rec: Records, sc: Scenario, queue: str) -> list[tuple[float, float]] | None:
    """Periods in which `queue` could not take in or give out messages: its outages, its
    inbound links cut, every worker of a group reading it down. None: no faults modelled."""
    names = list(sc.queues)
    spec = sc.queues[queue]
    links = [i for i, k in enumerate(sc.links)
             if k.partition("->")[2] == queue and sc.links[k].partitions is not None]
    groups = [i for i, (g, c) in enumerate(sc.consumers.items())
              if c.source == queue and c.crashes is not None]
    if spec.outages is None and not links and not groups:
        return None
    out = _spells(rec, OUTAGE, BACK, names.index(queue)) if spec.outages is not None else []
    for li in links:
        out += _spells(rec, CUT, HEALED, li)
    w = rec.workers
    for gi in groups:
        at = w["group"] == gi
        t, n = w["t"][at], w["online"][at]
        for k in np.flatnonzero((n == 0) & np.r_[True, n[:-1] > 0]):
            later = np.flatnonzero((t > t[k]) & (n > 0))
            out.append((float(t[k]), float(t[later[0]]) if len(later) else rec.t_end))
    return sorted(out)


def _recovery(arrived: np.ndarray, left: np.ndarray, start: float, end: float) -> float:
    """Seconds from the end of a fault until the backlog (the intervals [arrived, left)
    open: messages in the system) is back to its level when the fault began (NaN: not by
    the end of the run). Messages held at a door or by a cut link count."""
    before = level_at(arrived, left, np.array([start]))[0]
    # The level only falls at departures: check the end of the fault, then each of them.
    ends = np.where(np.isnan(left), np.inf, left)
    times = np.r_[end, np.sort(ends[(ends > end) & np.isfinite(ends)])]
    levels = level_at(arrived, left, times)
    ok = np.flatnonzero(levels <= before)
    return float(times[ok[0]] - end) if len(ok) else math.nan


def _resent_twice(rec: Records, sc: Scenario) -> int:
    """Messages of producers with a send timeout that more than one send delivered."""
    timed = [i for i, p in enumerate(sc.producers.values()) if p.timeout is not None]
    if not timed:
        return 0
    root = np.where(rec.parent >= 0, rec.parent, np.arange(len(rec.parent)))
    hit = (rec.outcome == DELIVERED) & np.isin(rec.producer, timed)
    per_root = np.bincount(root[hit], minlength=len(root)) if hit.any() else np.zeros(1)
    return int((per_root > 1).sum())


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
    for qi, (name, qspec) in enumerate(sc.queues.items()):
        if qspec.outages is not None:
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
