"""Matchers for messaging patterns on one station: synchronous clients (a closed loop,
MVA), priority classes (Cobham) and encode/decode steps around an open station.

Each reads only a scenario's specs; :data:`simq.model.predict.MATCHERS` lists them with
the features each handles.
"""

from __future__ import annotations

import math

from simq.dists import Distribution, Exponential
from simq.model.predict.base import Kind, Prediction
from simq.scenario import Scenario
from simq.theory import networks, queues
from simq.theory.metrics import QueueMetrics

__all__ = ["closed_loop", "open_station", "priority"]


def _mean(d: Distribution | None) -> float:
    return 0.0 if d is None else d.mean


def _single_station(sc: Scenario) -> tuple[str, str] | None:
    """(queue, group) when the scenario is one FIFO-or-priority queue drained by one group
    that forwards nowhere, with an infinite buffer; None otherwise."""
    if len(sc.queues) != 1 or len(sc.consumers) != 1:
        return None
    (qname, qspec), (gname, g) = next(iter(sc.queues.items())), next(iter(sc.consumers.items()))
    if g.source != qname or g.to is not None or math.isfinite(qspec.capacity):
        return None
    return qname, gname


def _pure_delay_links(sc: Scenario) -> float | None:
    """Mean propagation of the producers' links when they are pure delays (no bandwidth
    limit, no loss, no sharing); None when a link is more than a delay."""
    total = 0.0
    for key, spec in sc.links.items():
        if math.isfinite(spec.bandwidth) or spec.loss > 0:
            return None
        if getattr(spec, "shares", None) or getattr(spec, "retransmit", None):
            return None
        if key.partition("->")[0] not in sc.producers:
            return None
        total += spec.latency.mean
    return total


def _fifo_station(sc: Scenario) -> tuple[str, str, float] | None:
    """(queue, its consumer group's name, mean link delay) for one FIFO station reached
    over pure-delay links; None otherwise."""
    station = _single_station(sc)
    delay_links = _pure_delay_links(sc)
    if station is None or delay_links is None:
        return None
    qname, gname = station
    if sc.queues[qname].discipline != "fifo":
        return None
    return qname, gname, delay_links


def closed_loop(sc: Scenario) -> Prediction | None:
    """Synchronous clients on one consumer group: a closed network solved by exact MVA.

    Stations: the group (c servers, demand = decode + service) and one delay station for
    everything else a request spends outside the queue (encode, link latency, reply);
    the think time is the clients' think. Exact when the service is exponential and there
    is no decode (product form needs exponential FCFS service); approximate otherwise.
    """
    if len(sc.producers) != 1:
        return None
    pname, p = next(iter(sc.producers.items()))
    if p.mode != "sync":
        return None
    fifo = _fifo_station(sc)
    if fifo is None:
        return None
    qname, gname, delay_links = fifo
    g = sc.consumers[gname]
    service = g.service.mean
    demand = service + _mean(g.decode)
    delay = _mean(p.encode) + delay_links + _mean(p.reply)
    kinds, demands, servers = ["queue"], [demand], [g.count]
    if delay > 0:
        kinds.append("delay")
        demands.append(delay)
        servers.append(1)
    m = networks.mva(p.clients, demands, think=_mean(p.think), kinds=kinds, servers=servers)
    exact = isinstance(g.service, Exponential) and g.decode is None
    x = m.throughput
    residence = m.residence_times[0]
    wait = max(0.0, residence - demand)
    q = QueueMetrics(
        model=f"closed network, {p.clients} client(s) (MVA)", exact=exact, arrival_rate=x,
        throughput=x, utilization=m.utilizations[0] / g.count if g.count > 1 else
        m.utilizations[0], wait_mean=wait, length_mean=x * wait,
        sojourn_mean=residence, number_mean=m.queue_lengths[0], p_wait=math.nan,
        p_block=0.0, stable=True, servers=g.count, service_mean=service,
        note="a closed loop cannot overload its queue: the clients wait instead",
    )
    reason = (f"{p.clients} synchronous client(s) form a closed loop with the group "
              f"{gname!r}: exact mean value analysis" if exact else
              f"{p.clients} synchronous client(s) on {gname!r}: mean value analysis with "
              "non-exponential service (approximate)")
    return Prediction(
        model="closed network (MVA)", kind="exact" if exact else "approximate",
        reason=reason, queues={qname: q}, latency_mean=m.response_time, throughput=x,
        offered=x,
    )


def priority(sc: Scenario) -> Prediction | None:
    """Poisson classes on a non-preemptive priority queue with one worker: Cobham's
    M/G/1 priority formula (exact). Classes are the producers' priorities, highest first."""
    station = _single_station(sc)
    if station is None:
        return None
    qname, gname = station
    g = sc.consumers[gname]
    if sc.queues[qname].discipline != "priority" or g.count != 1 or g.decode is not None:
        return None
    if _pure_delay_links(sc) is None:
        return None
    by_priority: dict[float, float] = {}
    for p in sc.producers.values():
        if p.mode != "async" or p.encode is not None or not isinstance(p.interarrival,
                                                                       Exponential):
            return None
        by_priority[p.priority] = by_priority.get(p.priority, 0.0) + 1.0 / p.interarrival.mean
    levels = sorted(by_priority, reverse=True)
    lams = [by_priority[k] for k in levels]
    s = g.service
    m = queues.priority_mg1(lams, [s.mean] * len(lams), [s.scv] * len(lams))
    lam = sum(lams)
    delay = sum(spec.latency.mean / max(1, len(sc.producers)) for spec in sc.links.values())
    q = QueueMetrics(
        model="M/G/1 non-preemptive priority (Cobham)", exact=True, arrival_rate=lam,
        throughput=min(lam, 1.0 / s.mean), utilization=m.utilization, wait_mean=m.wait_mean,
        length_mean=m.length_mean, sojourn_mean=m.sojourn_mean,
        number_mean=m.length_mean + min(1.0, m.utilization), p_wait=min(1.0, m.utilization),
        p_block=0.0, stable=m.stable, growth_rate=max(0.0, lam - 1.0 / s.mean),
        service_mean=s.mean,
        note="waits per class (highest first): " + ", ".join(f"{w:.4g}" for w in m.wait_means),
    )
    per_class = ", ".join(f"priority {k:g}: Wq {w:.4g} s" for k, w in zip(levels, m.wait_means,
                                                                          strict=True))
    return Prediction(
        model="M/G/1 non-preemptive priority (Cobham)", kind="exact",
        reason=f"Poisson classes, one worker, non-preemptive priorities ({per_class})",
        queues={qname: q}, latency_mean=m.sojourn_mean + delay,
        throughput=q.throughput, offered=lam,
    )


def open_station(sc: Scenario) -> Prediction | None:
    """Poisson async senders with an encoding step and/or a consumer that decodes, on one
    station. Each encoder is a FIFO M/G/1 of its own (exact); the station serves decode +
    service: M/G/1 (exact) when no encoder reshapes the stream, otherwise G/G/c with the
    encoders' departure variability (Kingman / Allen-Cunneen, approximate)."""
    fifo = _fifo_station(sc)
    if fifo is None:
        return None
    qname, gname, delay_links = fifo
    g = sc.consumers[gname]
    if g.decode is None and all(p.encode is None for p in sc.producers.values()):
        return None  # a plain station: the base matchers name it exactly
    lam = 0.0
    ahead = 0.0  # rate-weighted time before reaching the queue (encode + link)
    scv_in = 0.0  # rate-weighted SCV of the merged arrival stream (superposition approx.)
    reshaped = False
    for pname, p in sc.producers.items():
        if p.mode != "async" or not isinstance(p.interarrival, Exponential):
            return None
        rate = 1.0 / p.interarrival.mean
        ca2 = 1.0
        before = 0.0
        if p.encode is not None:
            enc = queues.mg1(rate, p.encode.mean, p.encode.scv)
            if not enc.stable:
                return None
            before += enc.sojourn_mean
            # Marshall: the departures of an M/G/1 have SCV rho^2 cs2 + (1 - rho^2).
            rho = enc.utilization
            ca2 = rho * rho * p.encode.scv + (1.0 - rho * rho)
            reshaped = reshaped or p.encode.scv != 1.0
        link = sc.links.get(f"{pname}->{p.to}")
        before += link.latency.mean if link is not None else 0.0
        lam += rate
        ahead += rate * before
        scv_in += rate * ca2
    ahead /= lam
    scv_in /= lam
    mean = g.service.mean + _mean(g.decode)
    var = g.service.variance + (g.decode.variance if g.decode is not None else 0.0)
    cs2 = var / (mean * mean)
    c = g.count
    if not reshaped and c == 1:
        m = queues.mg1(lam, mean, cs2)
    elif not reshaped and cs2 == 1.0:
        m = queues.mmc(lam, 1.0 / mean, c)
    elif c == 1:
        m = queues.gg1_kingman(lam, scv_in, mean, cs2)
    else:
        m = queues.ggc_allen_cunneen(lam, scv_in, mean, cs2, c)
    kind: Kind = "exact" if m.exact else "approximate"
    return Prediction(
        model=f"encode/decode: {m.model}", kind=kind,
        reason=("the station serves decode + service; " + (
            "each encoder is an M/G/1 ahead of it, whose output is not Poisson" if reshaped
            else "Poisson arrivals reach it unchanged")),
        queues={qname: m}, latency_mean=ahead + m.sojourn_mean, throughput=m.throughput,
        offered=lam,
    )
