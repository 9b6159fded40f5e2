"""Nominal rates of a scenario: what each queue is offered and can serve, on paper.

The document's formulas and queueing theory both start from these numbers: the mean
generation rate, each queue's capacity (sum of count x service rate of the groups that
drain it), the processing and transmission time along each producer's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simq.scenario import ConsumerSpec, Scenario
from simq.theory import mva

__all__ = ["Flows", "QueueFlow", "flows", "producer_rate", "service_mean"]


@dataclass(frozen=True)
class QueueFlow:
    """One queue on paper."""

    name: str
    arrival_rate: float  # offered if every upstream stage kept up
    capacity: float  # messages/s its consumers can serve (sum of c * mu)
    servers: int
    effective_arrival: float  # offered once upstream bottlenecks cap the flow
    closed: bool = False  # fed by a sync or window sender, which waits instead of piling up

    @property
    def load(self) -> float:
        """Offered load per unit of capacity (rho); >= 1 means the queue grows."""
        return self.arrival_rate / self.capacity if self.capacity > 0 else math.inf

    @property
    def growth(self) -> float:
        """Generation minus processing at this queue, as the document writes it."""
        return self.effective_arrival - self.capacity


@dataclass(frozen=True)
class Flows:
    """The nominal picture of a whole scenario."""

    generation_rate: float
    queues: dict[str, QueueFlow]
    processing_time: float  # mean service time summed along the path (rate-weighted)
    transmission_time: float  # mean link delay summed along the path, at no contention
    paths: dict[str, list[str]] = field(default_factory=dict)  # producer -> hops

    @property
    def bottleneck(self) -> QueueFlow | None:
        """The queue with the highest load (the first to saturate as load rises)."""
        served = [q for q in self.queues.values() if q.capacity > 0]
        return max(served, key=lambda q: q.load, default=None)

    @property
    def processing_rate(self) -> float:
        """The highest total generation rate the system can carry."""
        b = self.bottleneck
        if b is None or b.load == 0:
            return math.inf
        return self.generation_rate / b.load


def _link_delay(sc: Scenario, key: str, size: float) -> float:
    spec = sc.links.get(key)
    if spec is None:
        return 0.0
    tx = 0.0 if math.isinf(spec.bandwidth) else size / spec.bandwidth
    return spec.latency.mean + tx


def service_mean(c: ConsumerSpec) -> float:
    """A worker's busy time per message: decoding (when given) plus the service."""
    return c.service.mean + (c.decode.mean if c.decode is not None else 0.0)


@dataclass(frozen=True)
class _Stop:
    """One queue a producer's messages reach, with the share of them that gets there."""

    queue: str
    weight: float  # fraction of the producer's messages that arrive here
    tx: float  # mean link delay accumulated on the way here
    proc: float  # mean service accumulated on the way here
    hops: list[str]


def _tree(sc: Scenario, pname: str, capacity: dict[str, float],
          groups_of: dict[str, list[str]]) -> list[tuple[_Stop, str | None, float]]:
    """Every (stop, group, share) on a producer's routes; group None: nobody drains it."""
    p = sc.producers[pname]
    size = p.size.mean
    out: list[tuple[_Stop, str | None, float]] = []
    frontier = [_Stop(p.to, 1.0, _link_delay(sc, f"{pname}->{p.to}", size), 0.0,
                      [pname, p.to])]
    while frontier:
        stop = frontier.pop()
        q = stop.queue
        if not groups_of[q]:
            out.append((stop, None, 0.0))
            continue
        for g in groups_of[q]:
            c = sc.consumers[g]
            s = (c.count / service_mean(c)) / capacity[q] if capacity[q] > 0 else 0.0
            out.append((stop, g, s))
            if c.to is not None:
                frontier.append(_Stop(c.to, stop.weight * s,
                                      stop.tx + _link_delay(sc, f"{g}->{c.to}", size),
                                      stop.proc + service_mean(c), [*stop.hops, g, c.to]))
    return out


def _closed_rate(sc: Scenario, pname: str, capacity: dict[str, float],
                 groups_of: dict[str, list[str]]) -> float:
    """Throughput of a sync or window sender: a closed loop, solved by exact MVA.

    Each queue on the route is a station (demand = visit share x mean service, servers =
    its workers); links, think time and the reply trip are delays. A window of n is n
    clients without think time; its own pace (interarrival) caps it too.
    """
    p = sc.producers[pname]
    demands: list[float] = []
    servers: list[int] = []
    delay = p.reply.mean
    seen: set[str] = set()
    for stop, g, share in _tree(sc, pname, capacity, groups_of):
        if g is None:
            return 0.0  # an undrained queue keeps every request: the loop stalls
        if stop.queue not in seen:
            seen.add(stop.queue)
            n = sum(sc.consumers[x].count for x in groups_of[stop.queue])
            demands.append(stop.weight * n / capacity[stop.queue])
            servers.append(n)
            delay += stop.weight * (stop.tx if len(stop.hops) == 2 else 0.0)
        c = sc.consumers[g]
        if c.to is not None:
            delay += stop.weight * share * _link_delay(sc, f"{g}->{c.to}", p.size.mean)
    if p.mode == "sync":
        clients = p.clients
        delay += p.think.mean + (p.encode.mean if p.encode is not None else 0.0)
    else:
        clients = p.window or 1
        if p.encode is not None:  # one FIFO encoder: a station, not a delay
            demands.append(p.encode.mean)
            servers.append(1)
    if delay + sum(demands) <= 0:
        return math.inf
    rate = mva(clients, demands, think=delay, servers=servers).throughput
    if p.mode == "window" and p.interarrival is not None and p.interarrival.mean > 0:
        rate = min(rate, 1.0 / p.interarrival.mean)
    return rate


def producer_rate(sc: Scenario, pname: str) -> float:
    """Messages per second a producer generates on paper.

    Async: 1 / mean interarrival. Sync and window senders generate as fast as their closed
    loop turns, so their rate is the loop's throughput (exact MVA for exponential
    stations; an approximation otherwise).
    """
    groups_of, capacity = _capacities(sc)
    p = sc.producers[pname]
    if p.mode == "async":
        assert p.interarrival is not None
        return 1.0 / p.interarrival.mean if p.interarrival.mean > 0 else math.inf
    return _closed_rate(sc, pname, capacity, groups_of)


def _capacities(sc: Scenario) -> tuple[dict[str, list[str]], dict[str, float]]:
    groups_of: dict[str, list[str]] = {q: [] for q in sc.queues}
    for g, c in sc.consumers.items():
        groups_of[c.source].append(g)
    capacity = {
        q: sum(sc.consumers[g].count / service_mean(sc.consumers[g]) for g in gs)
        for q, gs in groups_of.items()
    }
    return groups_of, capacity


def flows(sc: Scenario) -> Flows:
    """Propagate mean rates through the pipelines of a scenario."""
    groups_of, capacity = _capacities(sc)
    nominal = {q: 0.0 for q in sc.queues}
    effective = {q: 0.0 for q in sc.queues}
    total = 0.0
    processing = transmission = 0.0
    paths: dict[str, list[str]] = {}
    rates = _shared_rates(sc, capacity, groups_of)
    for pname, p in sc.producers.items():
        rate = rates[pname]
        total += rate
        encode = p.encode.mean if p.encode is not None else 0.0
        reply = p.reply.mean if p.waits_for_reply else 0.0
        # Effective flow: what each stage passes on once upstream bottlenecks cap it.
        eff_in: dict[tuple[str, ...], float] = {}
        for stop, g, s in _tree(sc, pname, capacity, groups_of):
            q = stop.queue
            key = tuple(stop.hops)
            if key not in eff_in:
                up = stop.hops[:-2]
                if len(up) <= 1:
                    eff = rate
                else:
                    prev_q, prev_g = up[-1], stop.hops[-2]
                    prev_eff = eff_in[tuple(up)]
                    out = min(prev_eff, capacity[prev_q]) if capacity[prev_q] > 0 else 0.0
                    eff = out * _share(sc, prev_q, prev_g, capacity)
                eff_in[key] = eff
                nominal[q] += rate * stop.weight
                effective[q] += eff
            if g is None:
                continue
            c = sc.consumers[g]
            if c.to is None:
                w = rate * stop.weight * s
                processing += w * (stop.proc + service_mean(c) + encode)
                transmission += w * (stop.tx + reply)
                if pname not in paths:
                    paths[pname] = [*stop.hops, g]
    closed_at = {stop.queue for n, p in sc.producers.items() if p.waits_for_reply
                 for stop, _, _ in _tree(sc, n, capacity, groups_of)}
    qflows = {
        q: QueueFlow(q, nominal[q], capacity[q],
                     sum(sc.consumers[g].count for g in groups_of[q]), effective[q],
                     q in closed_at)
        for q in sc.queues
    }
    norm = total if total > 0 else 1.0
    return Flows(total, qflows, processing / norm, transmission / norm, paths)


def _shared_rates(sc: Scenario, capacity: dict[str, float],
                  groups_of: dict[str, list[str]]) -> dict[str, float]:
    """Each producer's rate; closed loops sharing a queue slow each other down.

    Each closed loop is solved alone; where open traffic and closed loops together would
    exceed a queue's capacity, the closed loops are scaled down to fit what the open
    traffic leaves (a closed loop cannot overload a queue: it waits instead).
    """
    rates = {n: producer_rate(sc, n) for n in sc.producers}
    visits = {n: {} for n in sc.producers}  # producer -> queue -> visit ratio
    for n in sc.producers:
        for stop, _, _ in _tree(sc, n, capacity, groups_of):
            visits[n].setdefault(stop.queue, stop.weight)
    open_load = {q: 0.0 for q in sc.queues}
    closed_load = {q: 0.0 for q in sc.queues}
    for n, p in sc.producers.items():
        target = closed_load if p.waits_for_reply else open_load
        for q, w in visits[n].items():
            target[q] += rates[n] * w
    for n, p in sc.producers.items():
        if not p.waits_for_reply:
            continue
        factor = 1.0
        for q in visits[n]:
            if closed_load[q] > 0 and open_load[q] + closed_load[q] > capacity[q]:
                factor = min(factor, max(0.0, capacity[q] - open_load[q]) / closed_load[q])
        rates[n] *= factor
    return rates


def _share(sc: Scenario, q: str, g: str, capacity: dict[str, float]) -> float:
    c = sc.consumers[g]
    return (c.count / service_mean(c)) / capacity[q] if capacity[q] > 0 else 0.0
