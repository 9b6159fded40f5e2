"""Matchers for messaging patterns on one station: synchronous clients (a closed loop,
MVA), priority classes (Cobham) and encode/decode steps around an open station.

Each reads only a scenario's specs; :data:`simq.model.predict.MATCHERS` lists them with
the features each handles.
"""

from __future__ import annotations

import math

from simq.dists import Distribution, Exponential
from simq.model.network import MVA_POPULATION
from simq.model.predict.base import Kind, Prediction
from simq.scenario import Scenario
from simq.theory import networks, queues
from simq.theory.metrics import QueueMetrics

__all__ = ["closed_loop", "open_station", "priority"]


def _mean(d: Distribution | None) -> float:
    return 0.0 if d is None else d.mean


def _classes(sc: Scenario, gname: str) -> dict[str, tuple[float, float, float]]:
    """Per producer: its rate (async), and the mean and second moment of a worker's busy
    time for one of its messages at ``gname`` (its class's decode + service)."""
    out: dict[str, tuple[float, float, float]] = {}
    for pname, p in sc.producers.items():
        service, decode = sc.class_service(gname, pname)
        mean = service.mean + _mean(decode)
        var = service.variance + (decode.variance if decode is not None else 0.0)
        rate = 1.0 / p.pace.mean if p.pace is not None and p.pace.mean > 0 else math.nan
        out[pname] = (rate, mean, var + mean * mean)
    return out


def _mixture(parts: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(rate, mean, second moment) of the merged stream of Poisson classes: each message's
    busy time is drawn from the classes in proportion to their rates."""
    lam = sum(r for r, _, _ in parts)
    return (lam, sum(r * m for r, m, _ in parts) / lam,
            sum(r * m2 for r, _, m2 in parts) / lam)


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
    if p.mode != "sync" or p.clients > MVA_POPULATION:  # exact MVA would take too long
        return None
    fifo = _fifo_station(sc)
    if fifo is None:
        return None
    qname, gname, delay_links = fifo
    g = sc.consumers[gname]
    served, decode = sc.class_service(gname, pname)
    service = served.mean
    demand = service + _mean(decode)
    delay = _mean(p.encode) + delay_links + _mean(p.reply)
    kinds, demands, servers = ["queue"], [demand], [g.count]
    if delay > 0:
        kinds.append("delay")
        demands.append(delay)
        servers.append(1)
    m = networks.mva(p.clients, demands, think=_mean(p.think), kinds=kinds, servers=servers)
    exact = isinstance(served, Exponential) and decode is None
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
    M/G/1 priority formula (exact). Classes are the producers' priorities, highest first;
    each level's service is the mixture of its producers' class services (the group's
    unless a producer or ``service_by`` says otherwise), weighted by their rates."""
    station = _single_station(sc)
    if station is None:
        return None
    qname, gname = station
    g = sc.consumers[gname]
    if (sc.queues[qname].discipline != "priority" or g.count != 1
            or any(sc.class_service(gname, p)[1] is not None for p in sc.producers)):
        return None
    if _pure_delay_links(sc) is None:
        return None
    classes = _classes(sc, gname)
    by_priority: dict[float, list[tuple[float, float, float]]] = {}
    for pname, p in sc.producers.items():
        if p.mode != "async" or p.encode is not None or not isinstance(p.interarrival,
                                                                       Exponential):
            return None
        by_priority.setdefault(p.priority, []).append(classes[pname])
    levels = sorted(by_priority, reverse=True)
    mixed = [_mixture(by_priority[k]) for k in levels]
    lams = [r for r, _, _ in mixed]
    m = queues.priority_mg1(lams, [mean for _, mean, _ in mixed],
                            [m2 / (mean * mean) - 1.0 for _, mean, m2 in mixed])
    lam, mean, _ = _mixture(mixed)
    served = sum(m.throughputs)  # in overload, what the classes served carry
    delay = sum(spec.latency.mean / max(1, len(sc.producers)) for spec in sc.links.values())
    q = QueueMetrics(
        model="M/G/1 non-preemptive priority (Cobham)", exact=True, arrival_rate=lam,
        throughput=served, utilization=m.utilization, wait_mean=m.wait_mean,
        length_mean=m.length_mean, sojourn_mean=m.sojourn_mean,
        number_mean=m.length_mean + min(1.0, m.utilization), p_wait=min(1.0, m.utilization),
        p_block=0.0, stable=m.stable, growth_rate=max(0.0, lam - served),
        service_mean=mean,
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
    """Poisson async senders with an encoding step, a consumer that decodes, and/or
    message classes served differently, on one FIFO station. Each encoder is a FIFO M/G/1
    of its own (exact); the station serves decode + service, for a message of a class
    drawn in proportion to the class rates (a mixture): M/G/1 by Pollaczek-Khinchine with
    the mixture's mean and second moment (exact) when no encoder reshapes the stream,
    otherwise G/G/c with the encoders' departure variability (Kingman / Allen-Cunneen,
    approximate)."""
    fifo = _fifo_station(sc)
    if fifo is None:
        return None
    qname, gname, delay_links = fifo
    g = sc.consumers[gname]
    if (g.decode is None and all(p.encode is None for p in sc.producers.values())
            and not sc.has_classes(gname)):
        return None  # a plain station: the base matchers name it exactly
    if g.batch != 1:
        return None  # a batch is one service for several messages: not this model
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
    _, mean, m2 = _mixture(list(_classes(sc, gname).values()))
    cs2 = m2 / (mean * mean) - 1.0
    mixed = len({tuple(map(str, sc.class_service(gname, p))) for p in sc.producers}) > 1
    c = g.count
    if not reshaped and c == 1:
        m = queues.mg1(lam, mean, cs2)
    elif not reshaped and not mixed and cs2 == 1.0:
        m = queues.mmc(lam, 1.0 / mean, c)
    elif c == 1:
        m = queues.gg1_kingman(lam, scv_in, mean, cs2)
    else:
        m = queues.ggc_allen_cunneen(lam, scv_in, mean, cs2, c)
    kind: Kind = "exact" if m.exact else "approximate"
    what = "message classes" if mixed else "encode/decode"
    return Prediction(
        model=f"{what}: {m.model}", kind=kind,
        reason=(("the station serves each class's decode + service, a mixture in "
                 "proportion to the class rates; " if mixed else
                 "the station serves decode + service; ") + (
            "each encoder is an M/G/1 ahead of it, whose output is not Poisson" if reshaped
            else "Poisson arrivals reach it unchanged")),
        queues={qname: m}, latency_mean=ahead + m.sojourn_mean, throughput=m.throughput,
        offered=lam,
    )
