"""The one traffic model of a scenario: its network of queues on paper.

:func:`network` builds it once per scenario (cached on the scenario's value): the stations
(a queue, the consumer groups serving it, their servers, capacity and service), the routing
matrix between them and the visit ratios it gives, the external arrivals, each producer's
rate (a closed loop's by mean value analysis), the offered loads, the utilisation and the
link delays. Everything that reasons about a scenario on paper reads this one model:
:func:`flows` (the document's formulas: generation rate, capacities, processing and
transmission time), the theory matchers of :mod:`simq.model.predict`, the single station
of :mod:`simq.model.station` and the warnings of :mod:`simq.model.stability`.

One cohesive thing over 400 lines: the traffic equations and the numbers they are built
from.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from simq.dists import Distribution
from simq.scenario import ConsumerSpec, Scenario
from simq.scenario.workload import nominal_count
from simq.theory import mva

#: Senders of a closed loop beyond which its rate is the asymptotic bound, not exact MVA.
MVA_POPULATION = 2_000

__all__ = ["MVA_POPULATION", "Flows", "Network", "QueueFlow", "Station", "class_mean", "flows",
           "network", "producer_rate", "service_mean"]


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


@dataclass(frozen=True)
class Station:
    """One queue as a station: the groups serving it and what they serve."""

    name: str
    groups: tuple[tuple[str, float], ...]  # (group, its share of the capacity)
    servers: int  # workers (a partition counts its one owner)
    capacity: float  # messages/s the groups serve (sum of c * mu)
    service_mean: float  # mean busy time per message (share-weighted)
    service: Distribution | None  # the groups' common service; None if they differ or none
    buffer: float  # room in the queue (its ``capacity`` key)
    overflow: str

    @property
    def group_names(self) -> list[str]:
        return [g for g, _ in self.groups]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class _Routing:
    """The stations and the routing matrix between them (what :class:`Network` builds on)."""

    names: Sequence[str]
    stations: Mapping[str, Station]
    P: np.ndarray  # P[i, j]: expected arrivals at j per message served at i (as sent)
    arrived: np.ndarray  # P thinned by the loss of the links between the stations
    exit: np.ndarray  # probability a message served at i leaves the system

    @property
    def capacity(self) -> np.ndarray:
        return np.array([self.stations[q].capacity for q in self.names])

    @property
    def servers(self) -> np.ndarray:
        return np.array([self.stations[q].servers for q in self.names], dtype=int)


@dataclass(frozen=True, eq=False)
class Network(_Routing):
    """A scenario as a network of stations, one message's view and the rates through it.

    Rates are what is sent: a link's loss is left out of ``P``, ``offered`` and
    ``effective`` (as the document's nominal rates leave it out); ``arrived`` and
    ``external`` thin them by each link's loss (without retransmission) for theory, which
    counts what reaches a station.
    """

    entry: Mapping[str, np.ndarray]  # producer -> copies per message sent at each queue
    reach: Mapping[str, float]  # producer -> share of its messages its link delivers
    visits: Mapping[str, np.ndarray]  # producer -> expected visits per message sent
    rates: Mapping[str, float]  # producer -> messages/s (closed loops by MVA, shared)
    offered: np.ndarray  # arrivals at each queue if every upstream stage kept up
    effective: np.ndarray  # arrivals once upstream bottlenecks cap the flow
    closed: frozenset[str]  # queues a sync or window sender waits on
    generation_rate: float
    processing_time: float  # per delivery, rate-weighted
    transmission_time: float  # per delivery, rate-weighted
    paths: Mapping[str, tuple[str, ...]]

    @property
    def external(self) -> np.ndarray:
        """Arrivals from outside at each queue per second, once the producers' links lost
        their share."""
        out = np.zeros(len(self.names))
        for p, e in self.entry.items():
            out += self.rates[p] * self.reach[p] * e
        return out

    @property
    def utilisation(self) -> dict[str, float]:
        """Offered load per unit of capacity at each queue (inf where nobody serves)."""
        return {q: (float(self.offered[i]) / s.capacity if s.capacity > 0 else math.inf)
                for i, (q, s) in enumerate(self.stations.items())}

    def index(self, queue: str) -> int:
        return self.names.index(queue)


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


def class_mean(sc: Scenario, g: str, pname: str) -> float:
    """A worker of group g's busy time per message of producer ``pname`` (its class's
    decode and service there, docs/patterns.md)."""
    service, decode = sc.class_service(g, pname)
    return service.mean + (decode.mean if decode is not None else 0.0)


def _busy(sc: Scenario, g: str, mix: Mapping[str, float] | None) -> tuple[float, float]:
    """Group g's busy time per full batch and per message, for the mix of classes it
    serves (producer -> messages/s reaching it); the group's own service without classes.

    A batch is one service, drawn from the slowest class among its members (the longest
    mean): with a share pi_k of messages in classes of mean m <= m_k, a full batch of b
    has m_k as its slowest with probability F_k^b - F_(k-1)^b (members independent)."""
    c = sc.consumers[g]
    decode = c.decode.mean if c.decode is not None else 0.0
    total = sum(mix.values()) if mix else 0.0
    if not mix or total <= 0 or not sc.has_classes(g):
        return c.service.mean + c.batch * decode, service_mean(c)
    by_mean: dict[float, float] = {}
    per_decode = 0.0
    for pname, w in mix.items():
        service, dec = sc.class_service(g, pname)
        by_mean[service.mean] = by_mean.get(service.mean, 0.0) + w / total
        per_decode += w / total * (dec.mean if dec is not None else 0.0)
    per_service, below = 0.0, 0.0
    for m in sorted(by_mean):
        upto = min(1.0, below + by_mean[m])
        per_service += m * (upto**c.batch - below**c.batch)
        below = upto
    mean = sum(m * share for m, share in by_mean.items())
    return per_service + c.batch * per_decode, mean + per_decode


def _group_capacity(sc: Scenario, g: str, q: str,
                    mix: Mapping[str, float] | None = None) -> tuple[float, int]:
    """Messages/s group g can serve at queue q, and the workers it puts there."""
    c = sc.consumers[g]
    # A batching worker serves up to `batch` messages per service: its capacity is that
    # of full batches (what it reaches under load).
    per_batch = _busy(sc, g, mix)[0]
    # A zero service time serves at once: no bound on the rate (inf, not a division by 0).
    rate = c.batch / per_batch if per_batch > 0 else math.inf
    if c.prefetch is not None:
        # n messages in flight per consumer over a cycle of service + the trip out and the
        # ack back: at most n per cycle (a prefetch of 1 idles during the round trip).
        size = max((p.size.mean for p in sc.producers.values()), default=0.0)
        trip = _link_delay(sc, f"{c.source}->{g}", size)
        spec = sc.links.get(f"{c.source}->{g}")
        back = spec.latency.mean if spec is not None else 0.0
        cycle = per_batch + trip + back
        rate = min(rate, c.prefetch / cycle if cycle > 0 else math.inf)
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
    part = sc.partition_of(q)  # this group's view of partition p
    assert part is not None
    p = part[1]
    total = sum(w for w, o in zip(share, own, strict=True) if o == own[p])
    return (rate * share[p] / total if total > 0 else rate), 1


def _pass(sc: Scenario, key: str) -> float:
    """Share of the messages a link delivers (a retransmitting link loses none)."""
    spec = sc.links.get(key)
    if spec is None or spec.retransmit is not None:
        return 1.0
    return 1.0 - spec.loss


def _common_service(sc: Scenario, groups: list[str],
                    mix: Mapping[str, float] | None) -> Distribution | None:
    """The one service every message at a station gets, None if they differ: the groups'
    own, or, where classes are served otherwise, those of the classes that reach it."""
    served: list[Distribution] = []
    for g in groups:
        if sc.has_classes(g) and mix:
            served += [sc.class_service(g, p)[0] for p, w in mix.items() if w > 0]
        else:
            served.append(sc.consumers[g].service)
    if not served:
        return None
    first = served[0]
    return first if all(str(d) == str(first) for d in served) else None


def _routing(sc: Scenario,
             mixes: Mapping[str, Mapping[str, float]] | None = None) -> _Routing:
    """The stations and the routing matrix between them; ``mixes`` gives the messages/s
    of each class reaching each queue, which the capacity of groups serving message
    classes depends on."""
    mixes = mixes or {}
    names = list(sc.queues)
    idx = {q: i for i, q in enumerate(names)}
    n = len(names)
    drains = sc.drains()
    cap = np.zeros(n)
    servers = np.zeros(n, dtype=int)
    per_group: dict[tuple[str, str], float] = {}
    for q, gs in drains.items():
        for g in gs:
            rate, workers = _group_capacity(sc, g, q, mixes.get(q))
            per_group[(q, g)] = rate
            cap[idx[q]] += rate
            servers[idx[q]] += workers
    P = np.zeros((n, n))
    arrived = np.zeros((n, n))
    leave = np.zeros(n)
    stations: dict[str, Station] = {}
    for q in names:
        i = idx[q]
        gs = drains.get(q, [])
        groups: list[tuple[str, float]] = []
        service = 0.0
        unbounded = [g for g in gs if math.isinf(per_group[(q, g)])]
        for g in gs:
            c = sc.consumers[g]
            # Each group's share of the queue's messages is its share of the capacity; groups
            # that serve at once (zero service time) share what they take equally.
            share = ((g in unbounded) / len(unbounded) if unbounded
                     else per_group[(q, g)] / cap[i] if cap[i] > 0 else 0.0)
            groups.append((g, share))
            service += share * _busy(sc, g, mixes.get(q))[1]
            ok = 1.0 - c.failure  # a failed processing (docs/reliability.md) goes back...
            if c.failure and c.ack == "manual":
                f, k = c.failure, c.max_attempts
                # (poison messages are left out of these nominal rates)
                # ...to the queue, but after k attempts to the dead-letter queue: per
                # processing p^k (1 - p) / (1 - p^k), so a message makes (1 - p^k)/(1 - p)
                # visits and p^k of them are dead-lettered.
                dead = 0.0 if k is None else f**k * (1 - f) / (1 - f**k)
                P[i, i] += share * (f - dead)
                arrived[i, i] += share * (f - dead)
                dlq = sc.queues[q].dead_letter
                if dlq is not None and drains.get(dlq):
                    P[i, idx[dlq]] += share * dead
                    arrived[i, idx[dlq]] += share * dead
                else:
                    leave[i] += share * dead
            else:
                leave[i] += share * c.failure  # auto ack: lost
            for dest, p in c.routes:
                if dest is None:
                    leave[i] += share * p * ok
                    continue
                kept = _pass(sc, f"{g}->{dest}")
                for q2, copies in sc.resolve(dest):
                    P[i, idx[q2]] += share * p * copies * ok
                    arrived[i, idx[q2]] += share * p * copies * ok * kept
        spec = sc.queues[q]
        stations[q] = Station(q, tuple(groups), int(servers[i]), float(cap[i]), service,
                              _common_service(sc, list(gs), mixes.get(q)), spec.capacity,
                              spec.overflow)
    return _Routing(names, stations, P, arrived, leave)


def _out_delay(sc: Scenario, net: _Routing, size: float) -> np.ndarray:
    """Mean link delay a message of this size meets after being served at each queue."""
    d = np.zeros(len(net.names))
    for i, q in enumerate(net.names):
        for g, share in net.stations[q].groups:
            for dest, p in sc.consumers[g].routes:
                if dest is not None:
                    d[i] += share * p * _link_delay(sc, f"{g}->{dest}", size)
    return d


def _entry(sc: Scenario, net: _Routing, dest: str, producer: str) -> np.ndarray:
    e = np.zeros(len(net.names))
    for q, copies in sc.resolve(dest, producer):
        e[net.names.index(q)] += copies
    return e


def _visits(net: _Routing, entry: np.ndarray) -> np.ndarray:
    """Expected visits to each queue per message sent (copies included): v = e + v P.

    A queue nobody drains absorbs what reaches it (its row of P is zero), and the scenario
    refuses loops without a way out, so I - P is invertible.
    """
    return np.linalg.solve(np.eye(len(entry)) - net.P.T, entry)


def _closed_rate(sc: Scenario, pname: str, net: _Routing) -> float:
    """Throughput of a sync or window sender: a closed loop, solved by exact MVA.

    Each queue on the route is a station (demand = visits x mean service per server,
    servers = its workers); links, think time and the reply trip are delays. A window of n
    is n clients without think time; its own pace (interarrival) caps it too.
    """
    p = sc.producers[pname]
    v = _visits(net, _entry(sc, net, p.to, pname))
    reached = v > 1e-12
    capacity, workers = net.capacity, net.servers
    if np.any(reached & (capacity <= 0)):
        return 0.0  # an undrained queue keeps every request: the loop stalls
    size = p.size.mean
    delay = (p.reply.mean + _link_delay(sc, f"{pname}->{p.to}", size)
             + float(v @ _out_delay(sc, net, size)))
    # Per message of this sender's class: where classes are served, its own mean
    # against the station's mix.
    ratio = np.array([_class_ratio(sc, net.stations[q], pname) for q in net.names])
    demands = list((v * workers / np.where(reached, capacity, 1.0) * ratio)[reached])
    servers = [int(x) for x in workers[reached]]
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
    if clients > MVA_POPULATION:
        # Exact MVA costs clients x stations steps (clients squared with several servers):
        # a window of 10**12 would never finish. So many senders run the loop at its
        # asymptotic bound, min(N / (D + Z), min c_k / D_k), within a few percent here.
        per_server = [d / c for d, c in zip(demands, servers, strict=True) if d > 0]
        rate: float = min(clients / (delay + sum(demands)),
                   1.0 / max(per_server) if per_server else math.inf)
    else:
        rate = float(mva(clients, demands, think=delay, servers=servers).throughput)
    if p.mode == "window" and p.interarrival is not None and p.interarrival.mean > 0:
        rate = min(rate, 1.0 / p.interarrival.mean)
    return rate


def _station_class_mean(sc: Scenario, st: Station, pname: str) -> float:
    """Busy time per message of producer ``pname`` at a station (share-weighted)."""
    return sum(share * class_mean(sc, g, pname) for g, share in st.groups)


def _class_ratio(sc: Scenario, st: Station, pname: str) -> float:
    if st.service_mean <= 0 or not any(sc.has_classes(g) for g, _ in st.groups):
        return 1.0
    return _station_class_mean(sc, st, pname) / st.service_mean


def _open_rate(sc: Scenario, pname: str) -> float:
    pace = sc.producers[pname].pace
    assert pace is not None, "an open producer has a pace"
    return 1.0 / pace.mean if pace.mean > 0 else math.inf


def producer_rate(sc: Scenario, pname: str) -> float:
    """Messages per second a producer generates on paper.

    Async: 1 / mean interarrival. Sync and window senders generate as fast as their closed
    loop turns, so their rate is the loop's throughput (exact MVA for exponential
    stations; an approximation otherwise).
    """
    if sc.producers[pname].mode == "async":
        return _open_rate(sc, pname)
    return _closed_rate(sc, pname, network(sc))


def _shared_rates(sc: Scenario, net: _Routing,
                  visits: dict[str, np.ndarray]) -> dict[str, float]:
    """Each producer's rate; closed loops sharing a queue slow each other down.

    Each closed loop is solved alone; where open traffic and closed loops together would
    exceed a queue's capacity, the closed loops are scaled down to fit what the open
    traffic leaves (a closed loop cannot overload a queue: it waits instead).
    """
    rates = {n: (_open_rate(sc, n) if p.mode == "async" else _closed_rate(sc, n, net))
             for n, p in sc.producers.items()}
    capacity = net.capacity
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
            if closed_load[i] > 0 and open_load[i] + closed_load[i] > capacity[i]:
                factor = min(factor,
                             max(0.0, capacity[i] - open_load[i]) / closed_load[i])
        rates[n] *= factor
    return rates


def _effective(net: _Routing, gamma: np.ndarray) -> np.ndarray:
    """Arrivals once bottlenecks cap the flow: lam = gamma + P^T min(lam, capacity).

    Iterating from lam = gamma increases monotonically to the least fixed point; an
    undrained queue passes nothing on.
    """
    capacity = net.capacity
    lam = gamma.copy()
    for _ in range(10_000):
        out = np.minimum(lam, capacity)
        nxt = gamma + net.P.T @ out
        if np.allclose(nxt, lam, rtol=1e-12, atol=1e-12):
            return np.asarray(nxt)
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


def _mixes(net: _Routing, visits: Mapping[str, np.ndarray],
           rates: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Messages/s of each producer's class reaching each queue (an infinite rate counts
    as the whole mix)."""
    out: dict[str, dict[str, float]] = {}
    for i, q in enumerate(net.names):
        mix = {p: float(rates[p] * v[i]) for p, v in visits.items() if v[i] > 1e-12}
        if any(math.isinf(w) for w in mix.values()):
            mix = {p: (1.0 if math.isinf(w) else 0.0) for p, w in mix.items()}
        out[q] = mix
    return out


def _same_mixes(a: Mapping[str, Mapping[str, float]] | None,
                b: Mapping[str, Mapping[str, float]]) -> bool:
    if a is None or a.keys() != b.keys():
        return False
    return all(a[q].keys() == b[q].keys()
               and all(math.isclose(a[q][p], b[q][p], rel_tol=1e-10, abs_tol=1e-12)
                       for p in b[q]) for q in b)


def _build(sc: Scenario) -> Network:
    # Groups serving message classes have a capacity that depends on the mix reaching
    # them, which depends on the rates, which (for closed loops and routing among groups)
    # depend on the capacities: iterate to the fixed point (one pass without classes).
    mixes: dict[str, dict[str, float]] | None = None
    classes = any(sc.has_classes(g) for g in sc.consumers)
    for _ in range(100):
        net = _routing(sc, mixes)
        entry = {name: _entry(sc, net, p.to, name) for name, p in sc.producers.items()}
        visits = {name: _visits(net, entry[name]) for name in sc.producers}
        rates = _shared_rates(sc, net, visits)
        if not classes:
            break
        new = _mixes(net, visits, rates)
        if _same_mixes(mixes, new):
            break
        mixes = new
    n = len(net.names)
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
        gamma += rate * entry[pname]
        size = p.size.mean
        encode = p.encode.mean if p.encode is not None else 0.0
        reply = p.reply.mean if p.waits_for_reply else 0.0
        service = np.array([_station_class_mean(sc, net.stations[q], pname)
                            for q in net.names])
        # Per message: every visit's service, every hop's delay.
        processing += rate * (float(v @ service) + encode)
        transmission += rate * (_link_delay(sc, f"{pname}->{p.to}", size)
                                + float(v @ _out_delay(sc, net, size)) + reply)
    effective = _effective(net, gamma)
    closed = frozenset(net.names[i] for name, p in sc.producers.items() if p.waits_for_reply
                       for i in np.flatnonzero(visits[name] > 1e-12).tolist())
    norm = deliveries if deliveries > 0 else (total if total > 0 else 1.0)
    return Network(
        names=tuple(net.names),
        stations=MappingProxyType(net.stations),
        P=_frozen(net.P), arrived=_frozen(net.arrived), exit=_frozen(net.exit),
        entry=MappingProxyType({k: _frozen(v) for k, v in entry.items()}),
        reach=MappingProxyType({name: _pass(sc, f"{name}->{p.to}")
                                for name, p in sc.producers.items()}),
        visits=MappingProxyType({k: _frozen(v) for k, v in visits.items()}),
        rates=MappingProxyType(rates),
        offered=_frozen(nominal), effective=_frozen(effective), closed=closed,
        generation_rate=total, processing_time=processing / norm,
        transmission_time=transmission / norm,
        paths=MappingProxyType({pname: tuple(_path(sc, pname)) for pname in sc.producers}),
    )


@functools.lru_cache(maxsize=256)
def _cached(sc: Scenario, base_dir: object) -> Network:
    # Keyed on the scenario's value (what the user wrote) and the folder its file
    # references resolve from: equal keys validate to the same scenario.
    return _build(sc)


def network(sc: Scenario) -> Network:
    """The traffic model of a scenario, solved once per scenario value."""
    return _cached(sc, sc.base_dir)


def flows(sc: Scenario) -> Flows:
    """Propagate mean rates through the routes of a scenario (traffic equations)."""
    net = network(sc)
    qflows = {
        q: QueueFlow(q, float(net.offered[i]), s.capacity, s.servers,
                     float(net.effective[i]), q in net.closed)
        for i, (q, s) in enumerate(net.stations.items())
    }
    return Flows(net.generation_rate, qflows, net.processing_time, net.transmission_time,
                 {p: list(hops) for p, hops in net.paths.items()})
