"""Nominal rates of a scenario: what each queue is offered and can serve, on paper.

The document's formulas and queueing theory both start from these numbers: the mean
generation rate, each queue's capacity (sum of count x service rate of the groups that
drain it), the processing and transmission time along each producer's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simq.peakspec import nominal_count
from simq.scenario import Scenario

__all__ = ["Flows", "QueueFlow", "flows"]


@dataclass(frozen=True)
class QueueFlow:
    """One queue on paper."""

    name: str
    arrival_rate: float  # offered if every upstream stage kept up
    capacity: float  # messages/s its consumers can serve (sum of c * mu)
    servers: int
    effective_arrival: float  # offered once upstream bottlenecks cap the flow

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


def flows(sc: Scenario) -> Flows:
    """Propagate mean rates through the pipelines of a scenario."""
    groups_of: dict[str, list[str]] = {q: [] for q in sc.queues}
    for g, c in sc.consumers.items():
        groups_of[c.source].append(g)
    def count(g: str) -> float:
        c = sc.consumers[g]
        return nominal_count(c.count, c.schedule, c.autoscale, sc.run.until)

    capacity = {
        q: sum(count(g) / sc.consumers[g].service.mean for g in gs)
        for q, gs in groups_of.items()
    }

    def share(q: str, g: str) -> float:
        c = sc.consumers[g]
        return (count(g) / c.service.mean) / capacity[q] if capacity[q] > 0 else 0.0

    nominal = {q: 0.0 for q in sc.queues}
    effective = {q: 0.0 for q in sc.queues}
    total = 0.0
    processing = transmission = 0.0
    paths: dict[str, list[str]] = {}
    for pname, p in sc.producers.items():
        rate = 1.0 / p.interarrival.mean if p.interarrival.mean > 0 else math.inf
        total += rate
        size = p.size.mean
        # Walk the tree of hops; weights split the flow over competing consumer groups.
        frontier = [(p.to, rate, rate, 1.0, _link_delay(sc, f"{pname}->{p.to}", size), 0.0,
                     [pname, p.to])]
        path_shown = False
        while frontier:
            q, nom, eff, weight, tx, proc, hops = frontier.pop()
            nominal[q] += nom
            effective[q] += eff
            out = min(eff, capacity[q]) if capacity[q] > 0 else 0.0
            if not groups_of[q]:
                continue
            for g in groups_of[q]:
                s = share(q, g)
                c = sc.consumers[g]
                proc_g = proc + c.service.mean
                if c.to is None:
                    processing += rate * weight * s * proc_g
                    transmission += rate * weight * s * tx
                    if not path_shown:
                        paths[pname] = [*hops, g]
                        path_shown = True
                else:
                    frontier.append((c.to, nom * s, out * s, weight * s,
                                     tx + _link_delay(sc, f"{g}->{c.to}", size), proc_g,
                                     [*hops, g, c.to]))
    qflows = {
        q: QueueFlow(q, nominal[q], capacity[q],
                     round(sum(count(g) for g in groups_of[q])), effective[q])
        for q in sc.queues
    }
    norm = total if total > 0 else 1.0
    return Flows(total, qflows, processing / norm, transmission / norm, paths)
