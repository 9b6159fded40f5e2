"""The plain open station of the document's formulas: one producer, one queue, one consumer
group, solved by the single-station formula that fits it."""

from __future__ import annotations

import math

from simq.dists import Exponential
from simq.model.network import network
from simq.scenario import Scenario
from simq.theory import queues
from simq.theory.metrics import QueueMetrics

__all__ = ["station_metrics"]


def station_metrics(sc: Scenario) -> QueueMetrics | None:
    """M/M/c (/K), M/G/1, else the G/G/c approximation for the one station of ``sc``, at the
    traffic model's arrival rate; None unless the scenario is that plain open station.

    Anything that reshapes arrivals or service (closed loops, batching, schedules,
    backlogs, priorities, lossy links, blocking buffers...) is left out.
    """
    if len(sc.producers) != 1 or len(sc.queues) != 1 or len(sc.consumers) != 1 or sc.topics:
        return None
    (pname, p), = sc.producers.items()
    (qname, q), = sc.queues.items()
    (c,) = sc.consumers.values()
    plain = (
        p.mode == "async" and p.stop is None and p.start == 0 and p.arrivals is None
        and p.encode is None and p.batch_size is None
        and q.overflow != "block" and q.discipline == "fifo" and q.backlog is None
        and c.to is None and c.schedule is None and c.autoscale is None
        and c.decode is None and c.batch == 1
        and all(lk.loss == 0 for lk in sc.links.values())
    )
    arrival = p.pace
    if not plain or arrival is None or arrival.mean <= 0:
        return None
    station = network(sc).stations[qname]
    service = station.service
    if service is None or service.mean <= 0:
        return None
    lam, mean, k = network(sc).rates[pname], service.mean, station.servers
    poisson = isinstance(arrival, Exponential)
    if poisson and isinstance(service, Exponential):
        return queues.mmck(lam, 1.0 / mean, k, k + q.capacity if math.isfinite(q.capacity)
                           else math.inf)
    if not math.isfinite(q.capacity):
        if poisson and k == 1:
            return queues.mg1(lam, mean, service.scv)
        return queues.ggc_allen_cunneen(lam, arrival.scv, mean, service.scv, k)
    return None
