"""What a run will cost, judged from the scenario before anything runs: events, seconds
and memory, refused above ``run.max_events`` and ``run.max_memory``.

The estimate reads only the scenario (rates, durations, visits, standing objects); it never
solves the traffic model, whose closed loops and partitions can themselves be costly, so
it is fast on any input. It is an upper-leaning guess, not a prediction: it says "about"
and rounds to one significant figure. The costs below were measured on the models in
``models/`` (docs/reference/scenario.md, "Limits"):

- an event costs 4-9 us (M/M/1: 4 us; reliability, sync clients and partitions: 8-9 us);
- a message makes about 1 event when it is sent, 1.5 per queue it visits (each attempt),
  1 per link it crosses;
- its full record (``run.records: full``, with ``res.messages`` built) takes about 400
  bytes plus 150 per visit; summary records keep no per-message state;
- a worker costs about 11 events to start and 1.3 KB, a sync client 22 events and 1.4 KB,
  a message of a backlog 4 events and 310 bytes, a unit of prefetch credit 16 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simq.errors import ScenarioError
from simq.scenario import ConsumerSpec, ProducerSpec, Scenario
from simq.scenario.components import SyncProducer, WindowProducer
from simq.scenario.types import format_size

__all__ = ["EVENTS_PER_SECOND", "MAX_STATIONS", "Estimate", "check", "check_sweep", "estimate"]

#: Events one core runs per second, from the measured 4-9 us per event.
EVENTS_PER_SECOND = 200_000
EVENTS_PER_SEND = 1.0
EVENTS_PER_VISIT = 1.5
EVENTS_PER_HOP = 1.0
RECORD_BYTES = 400.0
VISIT_BYTES = 150.0
WORKER = (11.0, 1300.0)  # (events, bytes) to start one
CLIENT = (22.0, 1450.0)
WAITING = (4.0, 310.0)  # a message of a backlog
CREDIT = (0.0, 16.0)  # a unit of prefetch credit
#: Queues on paper (each partition of each group's view is one): the traffic model's cost
#: grows with their square (2,000 take half a minute), so more are refused.
MAX_STATIONS = 1_000


def _sci(x: float) -> str:
    """``2×10¹¹``: one significant figure."""
    if not math.isfinite(x):
        return "∞"
    if x < 1000:
        return f"{x:.0f}"
    exp = int(math.floor(math.log10(x)))
    lead = round(x / 10**exp)
    if lead == 10:
        lead, exp = 1, exp + 1
    sup = str(exp).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{lead}×10{sup}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever"
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600),
                       ("minutes", 60)):
        if seconds >= 2 * size:
            amount = seconds / size
            return f"{_sci(amount) if amount >= 1000 else round(amount)} {unit}"
    return f"{max(1, round(seconds))} s"


@dataclass(frozen=True)
class Estimate:
    """The cost of a run (or of ``runs`` of them, a sweep) on paper."""

    messages: float  # per replication, backlogs included
    events: float  # per replication, starting the components included
    standing: float  # bytes of the components and backlogs of one replication
    records: float  # bytes of one replication's full records (0 with summary records)
    replications: int
    runs: int  # points of a sweep (1 for a run)
    causes: dict[str, float] = field(default_factory=dict)  # key to change -> its events
    holders: dict[str, float] = field(default_factory=dict)  # key to change -> its bytes

    @property
    def total_events(self) -> float:
        return self.events * self.replications * self.runs

    @property
    def total_memory(self) -> float:
        """Bytes at the peak: a run keeps the full records of all its replications; a
        sweep's worker frees each replication's before the next."""
        keeps = self.replications if self.runs == 1 else 1
        return self.standing + self.records * keeps

    @property
    def seconds(self) -> float:
        return self.total_events / EVENTS_PER_SECOND

    def describe(self) -> str:
        """``about 2×10¹¹ events, ~12 days at ~200,000 events/s, ~3 GB of memory``."""
        if not math.isfinite(self.total_events):
            return "an unbounded number of events: it would never end"
        memory = (f"~{format_size(self.total_memory)} of memory"
                  if math.isfinite(self.total_memory) else "unbounded memory")
        return (f"about {_sci(self.total_events)} events, ~{_duration(self.seconds)} at "
                f"~{EVENTS_PER_SECOND:,} events/s, {memory}")


def _workers(c: ConsumerSpec) -> int:
    most = max([c.count, *(n for _, n in c.schedule or [])])
    return max(most, c.autoscale.max if c.autoscale is not None else 0)


def _attempts(c: ConsumerSpec) -> float:
    """Services per message a group gives: failures retried (manual ack), poison messages
    tried ``max_attempts`` times."""
    k = c.max_attempts
    if c.ack != "manual":
        return 1.0
    f = c.failure
    tries = (1 - f**k) / (1 - f) if k is not None else 1 / (1 - f)
    return tries + c.poison * (k if k is not None else 1)


def _visits(sc: Scenario, pname: str) -> tuple[float, float]:
    """Queue visits (attempts included) and link crossings per message of ``pname``,
    solved over the queues and topics as written (a partitioned topic is one node: a
    message visits one partition in each group's view)."""
    m = sc.model
    nodes = [*m.queues, *m.topics]
    at = {n: i for i, n in enumerate(nodes)}
    k = len(nodes)
    move = np.zeros((k, k))  # copies at j per message arriving at i
    cost = np.zeros(k)  # visits per message arriving at i
    hops = np.zeros(k)
    for name, i in at.items():
        topic = m.topics.get(name)
        if topic is not None and topic.subscribers is not None:
            for q in topic.subscribers:
                move[i, at[q]] += 1.0
            continue
        groups = [g for g, c in m.consumers.items() if c.source == name]
        if not groups:
            cost[i] = 1.0  # it waits there until the end
            continue
        share = 1.0 if topic is not None else 1.0 / len(groups)  # each view, or a split
        for g in groups:
            c = m.consumers[g]
            cost[i] += share * _attempts(c)
            hops[i] += share * (2.0 if c.prefetch is not None else 0.0)
            for dest, chance in c.routes:
                if dest is not None:
                    move[i, at[dest]] += share * chance
                    hops[i] += share * chance * (f"{g}->{dest}" in m.links)
    p = m.producers[pname]
    entry = np.zeros(k)
    entry[at[p.to]] = 1.0
    try:
        arrivals = np.linalg.solve(np.eye(k) - move.T, entry)
    except np.linalg.LinAlgError:
        return math.inf, math.inf
    link = float(f"{pname}->{p.to}" in m.links)
    return float(arrivals @ cost), float(arrivals @ hops) + link


def _rate(sc: Scenario, name: str, p: ProducerSpec) -> float:
    """Messages/s a producer sends at most: its pace, or for a waiting sender its
    senders over the shortest round trip, capped by the first queue's capacity."""
    pace = 1.0 / p.pace.mean if p.pace is not None and p.pace.mean > 0 else math.inf
    if not p.waits_for_reply:
        return pace
    groups = [c for c in sc.model.consumers.values() if c.source == p.to]
    service = min((c.service.mean for c in groups), default=0.0)
    capacity = sum(_workers(c) * c.batch / c.service.mean if c.service.mean > 0 else math.inf
                   for c in groups)
    link = sc.links.get(f"{name}->{p.to}")
    trip = (p.reply.mean + service + (link.latency.mean if link is not None else 0.0)
            + (p.think.mean if isinstance(p, SyncProducer) else 0.0))
    senders = p.clients if isinstance(p, SyncProducer) else (
        p.window if isinstance(p, WindowProducer) else 1)
    loop = senders / trip if trip > 0 else math.inf
    return min(pace, loop, capacity if groups else math.inf)


def _fault_cycles(spec: object, horizon: float, copies: float) -> float:
    mtbf, mttr, at = (getattr(spec, k) for k in ("mtbf", "mttr", "at"))
    events = 2.0 * len(at or []) * copies
    if mtbf is not None and mttr is not None:
        cycle = mtbf.mean + mttr.mean
        events += 2.0 * copies * (horizon / cycle if cycle > 0 else math.inf)
    return events


def estimate(sc: Scenario, *, replications: int | None = None, runs: int = 1) -> Estimate:
    """The cost of running ``sc`` (``replications`` times, default ``run.replications``),
    ``runs`` times over (the points of a sweep)."""
    spec, m = sc.run, sc.model
    reps = spec.replications if replications is None else replications
    causes: dict[str, float] = {}

    holders: dict[str, float] = {}

    def add(key: str, events: float, size: float = 0.0) -> None:
        causes[key] = causes.get(key, 0.0) + events
        if size:
            holders[key] = holders.get(key, 0.0) + size

    rates = {n: _rate(sc, n, p) for n, p in m.producers.items()}
    total_rate = sum(rates.values())
    # The run's length: run.until, or as long as run.messages takes at the total rate.
    if spec.until is not None:
        horizon = spec.until
    elif spec.messages is not None and total_rate > 0:
        horizon = spec.messages / total_rate
    else:
        horizon = 0.0
    length_key = "run.until" if spec.until is not None else "run.messages"
    sent: dict[str, float] = {}
    for n, p in m.producers.items():
        end = min(p.stop if p.stop is not None else math.inf, horizon)
        active = max(0.0, end - p.start)
        trace = p.varying_load.trace if p.varying_load is not None else None
        count = float(len(trace)) if trace is not None else (
            rates[n] * active if active > 0 else 0.0)
        sent[n] = count
    first = sum(sent.values())
    if spec.messages is not None and first > spec.messages:  # the run stops there
        burst = [n for n, x in sent.items() if math.isinf(x)]  # sent at one instant
        sent = ({n: spec.messages / len(burst) if n in burst else 0.0 for n in sent} if burst
                else {n: x * spec.messages / first for n, x in sent.items()})
    messages = 0.0
    record_bytes = 0.0
    for n, count in sent.items():
        if count == 0:
            continue
        visits, hops = _visits(sc, n)
        per = EVENTS_PER_SEND + EVENTS_PER_VISIT * visits + EVENTS_PER_HOP * hops
        p = m.producers[n]
        if p.waits_for_reply:
            per += EVENTS_PER_HOP
        size = count * (RECORD_BYTES + VISIT_BYTES * visits)
        add(length_key if p.pace is None or not math.isinf(rates[n])
            else f"producers.{n}.interarrival", count * per,
            size if spec.records == "full" else 0.0)
        messages += count
        record_bytes += size
    standing = 0.0
    for n, q in m.queues.items():
        if q.backlog is not None and q.backlog.count:
            b = float(q.backlog.count)
            add(f"queues.{n}.backlog.count", b * (WAITING[0] + EVENTS_PER_VISIT),
                b * WAITING[1])
            standing += b * WAITING[1]
            messages += b
            record_bytes += b * (RECORD_BYTES + VISIT_BYTES)
        if q.outages is not None:
            add(f"queues.{n}.outages", _fault_cycles(q.outages, horizon, 1.0))
    for n, t in m.topics.items():
        views = max(1, len(m.topic_groups(n)))
        parts = float(t.partitions or 0) * views
        if t.backlog is not None and t.backlog.count and parts:
            b = float(t.backlog.count) * parts
            add(f"topics.{n}.backlog.count", b * (WAITING[0] + EVENTS_PER_VISIT),
                b * WAITING[1])
            standing += b * WAITING[1]
            messages += b
            record_bytes += b * (RECORD_BYTES + VISIT_BYTES)
        if t.outages is not None:
            add(f"topics.{n}.outages", _fault_cycles(t.outages, horizon, max(parts, 1.0)))
    for n, c in m.consumers.items():
        w = float(_workers(c))
        add(f"consumers.{n}.count", w * WORKER[0], w * WORKER[1])
        standing += w * WORKER[1]
        if c.prefetch is not None:
            standing += w * c.prefetch * CREDIT[1]
            add(f"consumers.{n}.prefetch", w * c.prefetch * CREDIT[0],
                w * c.prefetch * CREDIT[1])
        if c.autoscale is not None:
            add(f"consumers.{n}.autoscale.interval", horizon / c.autoscale.interval)
        if c.crashes is not None:
            add(f"consumers.{n}.crashes", _fault_cycles(c.crashes, horizon, w))
    for n, p in m.producers.items():
        if isinstance(p, SyncProducer):
            clients = float(p.clients)
            add(f"producers.{n}.clients", clients * CLIENT[0], clients * CLIENT[1])
            standing += clients * CLIENT[1]
        arrivals = p.varying_load
        if arrivals is not None and (arrivals.mmpp is not None or arrivals.onoff is not None):
            add(f"producers.{n}.arrivals", horizon * max(arrivals.mmpp_params()[1]))
    for n, link in m.links.items():
        if link.partitions is not None:
            add(f"links.{n}.partitions", _fault_cycles(link.partitions, horizon, 1.0))
    records = record_bytes if spec.records == "full" else 0.0
    events = sum(causes.values())
    return Estimate(messages, events, standing, records, reps, runs, causes, holders)


def _advice(est: Estimate, memory: bool = False) -> str:
    causes = est.holders if memory else est.causes
    cause = max(causes, key=lambda k: causes[k]) if causes else "run.until"
    verbs = {"run.until": "shorten run.until", "run.messages": "lower run.messages"}
    out = [verbs.get(cause, f"lower {cause}" if not cause.endswith(
        ("interval", "crashes", "outages", "partitions", "arrivals")) else f"change {cause}")]
    if est.replications > 1 and (not memory or est.records > est.standing):
        out.append("run fewer replications")
    if est.runs > 1:
        out.append("sweep fewer points")
    return " or ".join(out)


def check(sc: Scenario, *, replications: int | None = None, runs: int = 1,
          max_events: float | None = None) -> Estimate:
    """The estimate of a run, refused (a ScenarioError saying how big and what to change)
    above ``run.max_events`` (or ``max_events``, the command line's ``--max-events``),
    ``run.max_memory``, or :data:`MAX_STATIONS` queues on paper."""
    stations = len(sc.queues)
    if stations > MAX_STATIONS:
        widest = max(sc.topics, key=lambda t: sc.topics[t].partitions or 0, default=None)
        key = f"topics.{widest}.partitions" if widest is not None else "queues"
        raise ScenarioError(key, f"the scenario has {stations:,} queues on paper (each "
                            "partition of each consumer group's view counts); at most "
                            f"{MAX_STATIONS:,}: the traffic model's cost grows with their "
                            "square", stations)
    est = estimate(sc, replications=replications, runs=runs)
    limit = sc.run.max_events if max_events is None else max_events
    if not est.total_events <= limit:
        raise ScenarioError(
            "run.max_events", f"this {'sweep' if runs > 1 else 'run'} would take "
            f"{est.describe()}; the limit is {_sci(limit)} events: raise run.max_events "
            f"(--max-events) or {_advice(est)}")
    if not est.total_memory <= sc.run.max_memory:
        raise ScenarioError(
            "run.max_memory", f"this run would hold ~{format_size(est.total_memory)} "
            f"({est.describe()}); the limit is {format_size(sc.run.max_memory)}: "
            + ("keep only summary records (--stream, run.records: summary), or "
               if est.records > est.standing else "")
            + f"raise run.max_memory (--max-memory) or {_advice(est, memory=True)}")
    return est


def check_sweep(points: list[Scenario], replications: int,
                max_events: float | None = None) -> Estimate:
    """:func:`check` for a sweep: each point on its own (memory, queues on paper), and the
    events of every point x replication together against the base's ``run.max_events``."""
    if not points:
        raise ScenarioError("grid", "a sweep needs at least one point")
    ests = [check(sc, replications=1, max_events=math.inf) for sc in points]
    per = sum(e.events for e in ests) / len(ests)
    total = Estimate(sum(e.messages for e in ests) / len(ests), per,
                     max(e.standing for e in ests), max(e.records for e in ests),
                     replications, len(points),
                     {k: sum(x.causes.get(k, 0.0) for x in ests) for e in ests
                      for k in e.causes})
    limit = points[0].run.max_events if max_events is None else max_events
    if not total.total_events <= limit:
        raise ScenarioError(
            "run.max_events", f"this sweep of {len(points):,} points x {replications:,} "
            f"replications would take {total.describe()}; the limit is {_sci(limit)} "
            f"events: raise run.max_events (--max-events) or {_advice(total)}")
    return total
