"""Build the SimPy model of a scenario and run one replication."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import simpy

from simq.engine import arrivals
from simq.engine.consumer import ConsumerGroup
from simq.engine.core import Destination, Message, Streams
from simq.engine.link import Link
from simq.engine.producer import Producer
from simq.engine.queue import Queue
from simq.engine.scaling import Scaler
from simq.peakspec import BacklogSpec
from simq.record import Recorder
from simq.scenario import Scenario

__all__ = ["Simulation", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """How a replication ended, for the run layer."""

    t_end: float  # simulated time when it stopped
    t_stop: float  # end of the measurement window (until, or the last send)
    in_flight: int  # messages found inside the system at the end (counted, not derived)


class Simulation:
    """One replication: components wired as the scenario says, on their own streams."""

    def __init__(self, scenario: Scenario, seed: np.random.SeedSequence) -> None:
        self.scenario = scenario
        self.env = env = simpy.Environment()
        self.rec = rec = Recorder()
        streams = Streams(seed)
        self.queues = {
            name: Queue(env, i, name, q.capacity, q.overflow, rec)
            for i, (name, q) in enumerate(scenario.queues.items())
        }
        link_names = list(scenario.links)
        self.links: dict[str, Link] = {}

        def via(src: str, dst: str) -> Destination:
            """The queue `dst`, reached over the link src->dst when there is one."""
            key = f"{src}->{dst}"
            if key not in scenario.links:
                return self.queues[dst]
            if key not in self.links:
                spec = scenario.links[key]
                self.links[key] = Link(
                    env, link_names.index(key), key, self.queues[dst],
                    streams.draw(f"links.{key}.latency", spec.latency), spec.bandwidth,
                    spec.loss, streams.uniform(f"links.{key}.loss"), rec,
                )
            return self.links[key]

        self.groups = {
            name: ConsumerGroup(
                env, i, name, self.queues[c.source], c.count,
                streams.draw(f"consumers.{name}.service", c.service),
                None if c.to is None else via(name, c.to), rec,
            )
            for i, (name, c) in enumerate(scenario.consumers.items())
        }
        self.scalers = {
            name: Scaler(env, self.groups[name], rec, c.schedule, c.autoscale)
            for name, c in scenario.consumers.items()
            if c.schedule is not None or c.autoscale is not None
        }
        limit = scenario.run.messages if scenario.run.messages is not None else math.inf
        ids = itertools.count()
        for name, q in scenario.queues.items():
            if q.backlog is not None and q.backlog.count:
                self._backlog(self.queues[name], q.backlog, ids, streams)
        self.producers = {}
        for i, (name, p) in enumerate(scenario.producers.items()):
            stop = p.stop
            if p.arrivals is None:
                gap = streams.draw(f"producers.{name}.interarrival", p.interarrival)
            else:
                gap, end = arrivals.build(p.arrivals, env, streams, f"producers.{name}")
                if end is not None:
                    stop = end if stop is None else min(stop, end)
            self.producers[name] = Producer(
                env, i, name, via(name, p.to), gap,
                streams.draw(f"producers.{name}.size", p.size),
                ids, limit, p.start, stop, rec,
            )
        # Links in scenario order, whatever order the wiring created them in.
        self.links = {k: self.links[k] for k in link_names if k in self.links}

    def _backlog(self, queue: Queue, spec: BacklogSpec, ids: itertools.count,
                 streams: Streams) -> None:
        """Messages waiting at time 0: produced at minus their age (producer index -1),
        oldest first in line, so conservation and latency count them like any other."""
        key = f"queues.{queue.name}.backlog"
        age, size = streams.draw(f"{key}.age", spec.age), streams.draw(f"{key}.size", spec.size)
        ages = sorted((age() for _ in range(spec.count)), reverse=True)
        created = self.rec.created.append
        for a in ages:
            msg = Message(next(ids), -a, size())
            created((-1, msg.sent, msg.size))
            queue.items.append(msg)

    def run(self) -> Outcome:
        spec = self.scenario.run
        if spec.until is not None:
            self.env.run(until=spec.until)
        else:
            self.env.run()  # stops when every message has finished: no event remains
        t_end = float(self.env.now)
        if spec.messages is not None:
            sends = [p.last_sent for p in self.producers.values() if not math.isnan(p.last_sent)]
            t_stop = max(sends) if sends else t_end
            if spec.until is not None:
                t_stop = min(t_stop, spec.until)
        else:
            t_stop = t_end
        return Outcome(t_end, t_stop, self._flush(t_end))

    def _flush(self, t_end: float) -> int:
        """Log what is still inside, so every interval is closed; return how many."""
        visit = self.rec.visits.append
        inside = 0
        for q in self.queues.values():
            for m in q.items:
                visit((m.id, q.index, m.arrived, math.nan, math.nan, -1))
            inside += len(q.items) + len(q.blocked)
        for g in self.groups.values():
            for m, start in g.holding():
                visit((m.id, g.queue.index, m.arrived, start, math.nan, g.index))
                inside += 1
        inside += sum(link.in_transit for link in self.links.values())
        return inside
