"""Nominal rates of a scenario: what each queue is offered and can serve, on paper.

The document's formulas and queueing theory both start from these numbers: the mean
generation rate, each queue's capacity (sum of count x service rate of the groups that
drain it), the processing and transmission time along each producer's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simq.scenario import ConsumerSpec, Scenario
from simq.scenario.workload import nominal_count
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
    owner = sc.links[spec.shares] if spec.shares is not None else spec
    tx = 0.0 if math.isinf(owner.bandwidth) else size / owner.bandwidth
    # With retransmission a message is lost a geometric number of times, each costing
    # the timeout: loss / (1 - loss) timeouts on average.
    resend = (spec.loss / (1 - spec.loss) * spec.retransmit
              if spec.retransmit is not None else 0.0)
    return spec.latency.mean + tx + resend


def service_mean(c: ConsumerSpec) -> float:
    """A worker's busy time per message: decoding (when given) plus the service."""
    return c.service.mean + (c.decode.mean if c.decode is not None else 0.0)


@dataclass(frozen=True)
class _Network:
    """The scenario as a routing matrix between queues, one message's view."""

    names: list[str]
    capacity: np.ndarray  # messages/s each queue's consumers serve
    servers: np.ndarray
    P: np.ndarray  # P[i, j]: expected arrivals at j per message served at i
    service: np.ndarray  # mean busy time per message served at i (share-weighted)
    exit: np.ndarray  # probability a message served at i leaves the system
    groups: dict[str, list[tuple[str, float]]]  # queue -> (group, share)


def _group_capacity(sc: Scenario, g: str, q: str) -> tuple[float, int]:
    """Messages/s group g can serve at queue q, and the workers it puts there."""
    c = sc.consumers[g]
    # A batching worker serves up to `batch` messages per service: its capacity is that
    # of full batches (what it reaches under load).
    per_batch = c.service.mean + c.batch * (c.decode.mean if c.decode is not None else 0.0)
    rate = c.batch / per_batch
    if c.prefetch is not None:
        # n messages in flight per consumer over a cycle of service + the trip out and the
        # ack back: at most n per cycle (a prefetch of 1 idles during the round trip).
        size = max((p.size.mean for p in sc.producers.values()), default=0.0)
        trip = _link_delay(sc, f"{c.source}->{g}", size)
        spec = sc.links.get(f"{c.source}->{g}")
        back = spec.latency.mean if spec is not None else 0.0
        rate = min(rate, c.prefetch / (per_batch + trip + back))
    topic = sc.topics.get(c.source)
    # A schedule reads as its time-average count, autoscaling as its maximum.
    count = nominal_count(c.count, c.schedule, c.autoscale, sc.run.until)
    if topic is None:
        if c.slow is not None:  # slow workers (docs/reliability.md) count for less
            return (count - c.slow.workers + c.slow.workers / c.slow.factor) * rate, round(count)
        return count * rate, round(count)
    # A consumer owning several partitions serves them as one line: on paper each gets
    # the consumer's time in proportion to its key share, so every partition it owns is
    # at the consumer's load.
    own = topic.owners(max(1, round(count)))  # partitions are reassigned as it scales
    share = topic.key_probabilities
    p = int(q[len(c.source) + 1:-1])
    total = sum(w for w, o in zip(share, own, strict=True) if o == own[p])
    return (rate * share[p] / total if total > 0 else rate), 1


def _network(sc: Scenario) -> _Network:
    names = list(sc.queues)
    idx = {q: i for i, q in enumerate(names)}
    n = len(names)
    drains = sc.drains()
    groups: dict[str, list[tuple[str, float]]] = {q: [] for q in names}
    cap = np.zeros(n)
    servers = np.zeros(n, dtype=int)
    per_group: dict[tuple[str, str], float] = {}
    for q, gs in drains.items():
        for g in gs:
            rate, workers = _group_capacity(sc, g, q)
            per_group[(q, g)] = rate
            cap[idx[q]] += rate
            servers[idx[q]] += workers
    P = np.zeros((n, n))
    service = np.zeros(n)
    leave = np.zeros(n)
    for q, gs in drains.items():
        i = idx[q]
        for g in gs:
            c = sc.consumers[g]
            share = per_group[(q, g)] / cap[i]
            groups[q].append((g, share))
            service[i] += share * service_mean(c)
            ok = 1.0 - c.failure  # a failed processing (docs/reliability.md) goes back...
            if c.failure and c.ack == "manual":
                f, k = c.failure, c.max_attempts
                # (poison messages are left out of these nominal rates)
                # ...to the queue, but after k attempts to the dead-letter queue: per
                # processing p^k (1 - p) / (1 - p^k), so a message makes (1 - p^k)/(1 - p)
                # visits and p^k of them are dead-lettered.
                dead = 0.0 if k is None else f**k * (1 - f) / (1 - f**k)
                P[i, i] += share * (f - dead)
                dlq = sc.queues[q].dead_letter
                if dlq is not None and drains.get(dlq):
                    P[i, idx[dlq]] += share * dead
                else:
                    leave[i] += share * dead
            else:
                leave[i] += share * c.failure  # auto ack: lost
            for dest, p in c.routes:
                if dest is None:
                    leave[i] += share * p * ok
                else:
                    for q2, copies in sc.resolve(dest):
                        P[i, idx[q2]] += share * p * copies * ok
    return _Network(names, cap, servers, P, service, leave, groups)


def _out_delay(sc: Scenario, net: _Network, size: float) -> np.ndarray:
    """Mean link delay a message of this size meets after being served at each queue."""
    d = np.zeros(len(net.names))
    for i, q in enumerate(net.names):
        for g, share in net.groups[q]:
            for dest, p in sc.consumers[g].routes:
                if dest is not None:
                    d[i] += share * p * _link_delay(sc, f"{g}->{dest}", size)
    return d


def _entry(sc: Scenario, net: _Network, dest: str) -> np.ndarray:
    e = np.zeros(len(net.names))
    for q, copies in sc.resolve(dest):
        e[net.names.index(q)] += copies
    return e


def _visits(net: _Network, entry: np.ndarray) -> np.ndarray:
    """Expected visits to each queue per message sent (copies included): v = e + v P.

    A queue nobody drains absorbs what reaches it (its row of P is zero), and the scenario
    refuses loops without a way out, so I - P is invertible.
    """
    return np.linalg.solve(np.eye(len(entry)) - net.P.T, entry)


def _closed_rate(sc: Scenario, pname: str, net: _Network) -> float:
    """Throughput of a sync or window sender: a closed loop, solved by exact MVA.

    Each queue on the route is a station (demand = visits x mean service per server,
    servers = its workers); links, think time and the reply trip are delays. A window of n
    is n clients without think time; its own pace (interarrival) caps it too.
    """
    p = sc.producers[pname]
    v = _visits(net, _entry(sc, net, p.to))
    reached = v > 1e-12
    if np.any(reached & (net.capacity <= 0)):
        return 0.0  # an undrained queue keeps every request: the loop stalls
    size = p.size.mean
    delay = (p.reply.mean + _link_delay(sc, f"{pname}->{p.to}", size)
             + float(v @ _out_delay(sc, net, size)))
    demands = list(v[reached] * net.servers[reached] / net.capacity[reached])
    servers = [int(x) for x in net.servers[reached]]
    if p.mode == "sync":
        clients = p.clients
        delay += p.think.mean + (p.encode.mean if p.encode is not None else 0.0)
    else:
        clients = p.window if p.mode == "window" else 1
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
    p = sc.producers[pname]
    if p.mode == "async":
        assert p.interarrival is not None
        return 1.0 / p.interarrival.mean if p.interarrival.mean > 0 else math.inf
    return _closed_rate(sc, pname, _network(sc))


def _shared_rates(sc: Scenario, net: _Network,
                  visits: dict[str, np.ndarray]) -> dict[str, float]:
    """Each producer's rate; closed loops sharing a queue slow each other down.

    Each closed loop is solved alone; where open traffic and closed loops together would
    exceed a queue's capacity, the closed loops are scaled down to fit what the open
    traffic leaves (a closed loop cannot overload a queue: it waits instead).
    """
    rates = {n: (producer_rate(sc, n) if p.mode == "async" else _closed_rate(sc, n, net))
             for n, p in sc.producers.items()}
    open_load = np.zeros(len(net.names))
    closed_load = np.zeros(len(net.names))
    for n, p in sc.producers.items():
        if p.waits_for_reply:
            closed_load += rates[n] * visits[n]
        else:
            open_load += rates[n] * visits[n]
    for n, p in sc.producers.items():
        if not p.waits_for_reply:
            continue
        factor = 1.0
        for i in np.flatnonzero(visits[n] > 1e-12):
            if closed_load[i] > 0 and open_load[i] + closed_load[i] > net.capacity[i]:
                factor = min(factor,
                             max(0.0, net.capacity[i] - open_load[i]) / closed_load[i])
        rates[n] *= factor
    return rates


def _effective(net: _Network, gamma: np.ndarray) -> np.ndarray:
    """Arrivals once bottlenecks cap the flow: lam = gamma + P^T min(lam, capacity).

    Iterating from lam = gamma increases monotonically to the least fixed point; an
    undrained queue passes nothing on.
    """
    lam = gamma.copy()
    for _ in range(10_000):
        out = np.minimum(lam, net.capacity)
        nxt = gamma + net.P.T @ out
        if np.allclose(nxt, lam, rtol=1e-12, atol=1e-12):
            return nxt
        lam = nxt
    return lam


def _path(sc: Scenario, pname: str) -> list[str]:
    """A representative route for display: the likeliest way at each step, no repeats."""
    p = sc.producers[pname]
    hops = [pname, p.to]
    seen = {p.to}
    q: str | None = p.to
    while q is not None:
        gs = [(g, c) for g, c in sc.consumers.items() if c.source == q]
        if not gs:
            break
        g, c = gs[0]
        hops.append(g)
        dest = max(c.routes, key=lambda r: r[1])[0]
        if dest is None or dest in seen:
            break
        seen.add(dest)
        hops.append(dest)
        q = dest
    return hops


def flows(sc: Scenario) -> Flows:
    """Propagate mean rates through the routes of a scenario (traffic equations)."""
    net = _network(sc)
    n = len(net.names)
    visits = {name: _visits(net, _entry(sc, net, p.to)) for name, p in sc.producers.items()}
    rates = _shared_rates(sc, net, visits)
    nominal = np.zeros(n)
    gamma = np.zeros(n)
    total = processing = transmission = deliveries = 0.0
    for pname, p in sc.producers.items():
        rate = rates[pname]
        total += rate
        v = visits[pname]
        nominal += rate * v
        # A fan-out delivers several copies of one message: the document's times are
        # per delivery, so the sums below are divided by deliveries, not by messages.
        deliveries += rate * float(v @ net.exit)
        gamma += rate * _entry(sc, net, p.to)
        size = p.size.mean
        encode = p.encode.mean if p.encode is not None else 0.0
        reply = p.reply.mean if p.waits_for_reply else 0.0
        # Per message: every visit's service, every hop's delay.
        processing += rate * (float(v @ net.service) + encode)
        transmission += rate * (_link_delay(sc, f"{pname}->{p.to}", size)
                                + float(v @ _out_delay(sc, net, size)) + reply)
    effective = _effective(net, gamma)
    closed_at = {net.names[i] for name, p in sc.producers.items() if p.waits_for_reply
                 for i in np.flatnonzero(visits[name] > 1e-12)}
    qflows = {
        q: QueueFlow(q, float(nominal[i]), float(net.capacity[i]), int(net.servers[i]),
                     float(effective[i]), q in closed_at)
        for i, q in enumerate(net.names)
    }
    norm = deliveries if deliveries > 0 else (total if total > 0 else 1.0)
    paths = {pname: _path(sc, pname) for pname in sc.producers}
    return Flows(total, qflows, processing / norm, transmission / norm, paths)
