"""Build the SimPy model of a scenario and run one replication."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from simq.dists import parse
from simq.engine import arrivals
from simq.engine.consumer import ConsumerGroup, Replier
from simq.engine.core import Destination, Message, Streams
from simq.engine.durability import Persister
from simq.engine.faults import Crasher, Faults
from simq.engine.link import CutLink, Link
from simq.engine.prefetch import PrefetchConsumer
from simq.engine.producer import Batcher, Encoder, Producer, SyncProducer, WindowProducer
from simq.engine.queue import Levels, Queue
from simq.engine.reliable import CreditGate, ReliableGroup, ReliableQueue, Stamp
from simq.engine.retry import Backoff, RetryingProducer
from simq.engine.router import Router, Sink
from simq.engine.scaling import Scaler
from simq.engine.topic import FanOut, MergedPartitions, Partition, Partitioner, key_picker
from simq.peakspec import BacklogSpec
from simq.record import Recorder
from simq.relspec import CrashSpec
from simq.scenario import ConsumerSpec, Scenario

__all__ = ["Simulation", "Outcome"]

_NO_GAP = parse("constant(0)")


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
        partitions = {q for t, spec in scenario.topics.items()
                      for q in spec.partition_names(t)}
        # Reliability is chosen per queue when the model is built: the others stay plain.
        any_ttl = any(p.ttl is not None for p in scenario.producers.values())
        reliable = {c.source for c in scenario.consumers.values() if c.reliable}
        reliable |= {n for n, q in scenario.queues.items()
                     if (q.reliable or any_ttl) and n not in partitions}
        reliable |= {p.to for p in scenario.producers.values() if p.credits is not None}
        self.queues: dict[str, Queue] = {}
        for i, (name, q) in enumerate(scenario.queues.items()):
            if name in reliable:
                self.queues[name] = ReliableQueue(env, i, name, q.capacity, q.overflow, rec,
                                                  q.ttl, q.expiry)
            else:
                self.queues[name] = (Partition if name in partitions else Queue)(
                    env, i, name, q.capacity, q.overflow, rec)
        drains = scenario.drains()
        for name, q in scenario.queues.items():
            if q.dead_letter is not None:
                rq = self.queues[name]
                assert isinstance(rq, ReliableQueue)
                rq.dlq_named = True
                if drains[q.dead_letter]:  # a DLQ with consumers: messages live on there
                    rq.dead_letter = self.queues[q.dead_letter]
        self.faults: list[Faults] = []
        for name, q in scenario.queues.items():
            if q.outages is not None:
                rq = self.queues[name]
                assert isinstance(rq, ReliableQueue)
                rq.persistent, rq.when_down = q.persistent, q.when_down
                self._faults(rq, f"queues.{name}.outages", q.outages, streams)
        # Priority queues look a message's class up by its producer (copies keep theirs).
        classes = [p.priority for p in scenario.producers.values()]

        def priority_of(msg: Message) -> int:
            origin = msg.origin
            return classes[origin] if origin >= 0 else 0  # -1: a queue's starting backlog

        for name, q in scenario.queues.items():
            if q.discipline == "priority":
                self.queues[name].items = Levels(priority_of)
        link_names = list(scenario.links)
        self.links: dict[str, Link] = {}
        ids = itertools.count()
        self.topics: dict[str, Destination] = {}

        self.persisters: dict[str, Persister] = {}
        for name, q in scenario.queues.items():
            d = q.durability
            if d is None:
                continue
            key = f"queues.{name}.durability"
            gc = d.group_commit
            self.persisters[name] = Persister(
                env, self.queues[name], streams.draw(f"{key}.fsync", d.fsync),
                1 if gc is None else gc.size, 0.0 if gc is None else gc.wait, d.replicas,
                streams.draw(f"{key}.replication", d.replication) if d.replicas else None,
                d.acks == "all", rec)

        def target(name: str) -> Destination:
            """A queue (behind its disk when it has one), or the topic that spreads
            messages over its queues."""
            if name in self.persisters:
                return self.persisters[name]
            if name in self.queues:
                return self.queues[name]
            if name not in self.topics:
                spec = scenario.topics[name]
                parts = [self.queues[q] for q, _ in scenario.resolve(name)]
                if spec.subscribers is not None:
                    self.topics[name] = FanOut(env, parts, ids, rec)
                else:
                    pick = key_picker(spec.key, len(parts), spec.key_probabilities,
                                      streams.uniform(f"topics.{name}.key"))
                    self.topics[name] = Partitioner(parts, pick)  # type: ignore[arg-type]
            return self.topics[name]

        def via(src: str, dst: str) -> Destination:
            """The queue or topic `dst`, over the link src->dst when there is one."""
            key = f"{src}->{dst}"
            if key not in scenario.links:
                return target(dst)
            if key not in self.links:
                spec = scenario.links[key]
                args = (env, link_names.index(key), key, target(dst),
                        streams.draw(f"links.{key}.latency", spec.latency), spec.bandwidth,
                        spec.loss, streams.uniform(f"links.{key}.loss"), rec)
                if spec.partitions is None:
                    self.links[key] = Link(*args)
                else:
                    link = CutLink(*args, when_cut=spec.when_cut)
                    self._faults(link, f"links.{key}.partitions", spec.partitions, streams)
                    self.links[key] = link
            return self.links[key]

        # Replies are only possible when some sender waits for them: otherwise the end of
        # the line stays the plain "delivered" record, with nothing added per message.
        replies = any(p.wants_ack for p in scenario.producers.values())
        self.repliers: dict[str, Replier] = {}
        self.groups: dict[str, ConsumerGroup] = {}
        self.partition_workers: list[ConsumerGroup] = []
        self.prefetchers: list[PrefetchConsumer] = []
        self.prefetch_links: list[Link] = []
        self.crashers: list[Crasher] = []
        for i, (name, c) in enumerate(scenario.consumers.items()):

            def way_out(name: str = name, i: int = i) -> Destination:
                if replies:
                    self.repliers[name] = Replier(env, i, rec)
                    return self.repliers[name]
                return Sink(env, i, rec)

            forward: Destination | None
            routes = c.routes
            if len(routes) > 1:
                forward = Router(
                    [(way_out() if d is None else via(name, d), p) for d, p in routes],
                    streams.uniform(f"consumers.{name}.route"),
                )
            elif routes[0][0] is not None:
                forward = via(name, routes[0][0])
            elif replies:
                forward = way_out()
            else:
                forward = None  # the worker records the delivery itself: the plain path
            service = streams.draw(f"consumers.{name}.service", c.service)
            decode = None if c.decode is None else streams.draw(f"consumers.{name}.decode",
                                                                c.decode)
            topic = scenario.topics.get(c.source)
            if c.prefetch is not None:
                self._prefetching(i, name, c, service, decode, forward, streams)
                continue
            if topic is None and c.reliable:
                self.groups[name] = self._reliable(i, name, c, service, forward, streams)
                continue
            if topic is None:
                self.groups[name] = ConsumerGroup(
                    env, i, name, self.queues[c.source], c.count, service, forward, rec, decode,
                    c.batch,
                )
                continue
            # A consumer group on a partitioned topic: each partition has one owner; the
            # consumers beyond the partitions stay idle (they count in utilization).
            parts = [self.queues[q] for q, _ in scenario.resolve(c.source)]
            own = topic.owners(c.count)
            for k in sorted(set(own)):
                mine = [p for p, o in zip(parts, own, strict=True) if o == k]
                line = mine[0] if len(mine) == 1 else MergedPartitions(mine)  # type: ignore[arg-type]
                self.partition_workers.append(ConsumerGroup(
                    env, i, name, line, 1, service, forward, rec, decode, c.batch))
        self.scalers = {
            name: Scaler(env, self.groups[name], rec, c.schedule, c.autoscale)
            for name, c in scenario.consumers.items()
            if c.schedule is not None or c.autoscale is not None
        }
        limit = scenario.run.messages if scenario.run.messages is not None else math.inf
        for name, q in scenario.queues.items():
            if q.backlog is not None and q.backlog.count:
                self._backlog(self.queues[name], q.backlog, ids, streams)
        self.encoders: list[Encoder] = []
        self.batchers: list[Batcher] = []
        self.producers: dict[str, Producer | SyncProducer | WindowProducer
                             | RetryingProducer] = {}
        for i, (name, p) in enumerate(scenario.producers.items()):
            key = f"producers.{name}"
            dest = via(name, p.to)
            if p.ttl is not None:
                dest = Stamp(env, dest, p.ttl)
            if p.credits is not None:
                dest = CreditGate(env, dest, p.credits)
            size = streams.draw(f"{key}.size", p.size)
            encode = None if p.encode is None else streams.draw(f"{key}.encode", p.encode)
            if p.mode == "sync":
                self.producers[name] = SyncProducer(
                    env, i, name, dest, p.clients, streams.draw(f"{key}.think", p.think),
                    encode, streams.draw(f"{key}.reply", p.reply), size, ids, limit,
                    p.start, p.stop, rec,
                )
                continue
            if p.batch_size is not None:
                batcher = Batcher(env, dest, p.batch_size, p.linger, rec)
                self.batchers.append(batcher)
                dest = batcher
            if encode is not None:
                dest = Encoder(env, dest, encode, rec)
                self.encoders.append(dest)
            stop = p.stop
            if p.arrivals is not None:
                gap, end = arrivals.build(p.arrivals, env, streams, key)
                if end is not None:
                    stop = end if stop is None else min(stop, end)
            else:
                # A window without an interarrival sends as fast as the window lets it.
                gap = streams.draw(f"{key}.interarrival",
                                   p.interarrival if p.interarrival is not None else _NO_GAP)
            if p.mode == "window":
                assert p.window is not None
                self.producers[name] = WindowProducer(
                    env, i, name, dest, gap, p.window, streams.draw(f"{key}.reply", p.reply),
                    size, ids, limit, p.start, p.stop, rec,
                )
            elif p.timeout is not None:
                r = p.retry
                b = None if r is None else r.backoff
                self.producers[name] = RetryingProducer(
                    env, i, name, dest, gap, size, ids, limit, p.start, stop, rec,
                    timeout=p.timeout, reply=streams.draw(f"{key}.reply", p.reply),
                    max_attempts=1 if r is None else r.max_attempts,
                    backoff=None if b is None else Backoff(
                        b.policy, b.delay, b.multiplier, b.cap,
                        streams.uniform(f"{key}.retry.backoff")),
                    budget=None if r is None else r.budget,
                    budget_floor=0 if r is None else r.budget_floor)
            else:
                self.producers[name] = Producer(
                    env, i, name, dest, gap, size, ids, limit, p.start, stop, rec
                )
        # Links in scenario order, whatever order the wiring created them in.
        self.links = {k: self.links[k] for k in link_names if k in self.links}
        for key, link in self.links.items():
            spec = scenario.links[key]
            link.retransmit = spec.retransmit
            if spec.shares is not None and spec.shares in self.links:
                link.wire = self.links[spec.shares]

    def _faults(self, target: CutLink | ReliableQueue, key: str, spec: CrashSpec,
                streams: Streams) -> None:
        self.faults.append(Faults(
            self.env, target,
            None if spec.mtbf is None else streams.draw(f"{key}.mtbf", spec.mtbf),
            None if spec.mttr is None else streams.draw(f"{key}.mttr", spec.mttr),
            spec.at))

    def _reliable(self, i: int, name: str, c: ConsumerSpec, service: Callable[[], float],
                  forward: Destination | None, streams: Streams) -> ReliableGroup:
        """A group with acks, failures, retries, dedup and crashes (docs/reliability.md)."""
        key = f"consumers.{name}"
        b = c.backoff
        backoff = None if b is None else Backoff(b.policy, b.delay, b.multiplier, b.cap,
                                                 streams.uniform(f"{key}.backoff"))
        queue = self.queues[c.source]
        assert isinstance(queue, ReliableQueue)
        group = ReliableGroup(
            self.env, i, name, queue, c.count, service, forward, self.rec,
            manual=c.ack == "manual", visibility=c.visibility_timeout, failure=c.failure,
            coin=streams.uniform(f"{key}.failure"), max_attempts=c.max_attempts,
            backoff=backoff, dedup=c.dedup, crash_log=c.crashes is not None,
            poison=c.poison,
            slow=None if c.slow is None else (c.slow.workers, c.slow.factor))
        if c.crashes is not None:
            cr = c.crashes
            self.crashers.append(Crasher(
                self.env, group, c.count,
                None if cr.mtbf is None else streams.draw(f"{key}.crashes.mtbf", cr.mtbf),
                None if cr.mttr is None else streams.draw(f"{key}.crashes.mttr", cr.mttr),
                cr.at))
        return group

    def _prefetching(self, i: int, name: str, c: ConsumerSpec, service: Callable[[], float],
                     decode: Callable[[], float] | None, forward: Destination | None,
                     streams: Streams) -> None:
        """`count` consumers, each with its own prefetch window (and its own copy of the
        broker->consumer link, whose latency also carries the acks back)."""
        assert c.prefetch is not None
        key = f"{c.source}->{name}"
        spec = self.scenario.links.get(key)
        ack = None if spec is None else streams.draw(f"links.{key}.ack", spec.latency)
        for k in range(c.count):
            consumer = PrefetchConsumer(self.env, i, self.queues[c.source], c.prefetch,
                                        service, decode, forward, ack, self.rec)
            if spec is not None:
                link = Link(self.env, list(self.scenario.links).index(key), key, consumer,
                            streams.draw(f"links.{key}.latency.{k}", spec.latency),
                            spec.bandwidth, 0.0, streams.uniform(f"links.{key}.loss.{k}"),
                            self.rec)
                link.retransmit = spec.retransmit
                consumer.link = link
                self.prefetch_links.append(link)
            self.prefetchers.append(consumer)

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
            inside += q.count_inside()
        for g in [*self.groups.values(), *self.partition_workers]:
            merged = g.queue.index < 0
            for m, start in g.holding():
                qi = m.queue if merged else g.queue.index
                visit((m.id, qi, m.arrived, start, math.nan, g.index))
                inside += 1
        inside += sum(g.count_backing_off() for g in self.groups.values()
                      if isinstance(g, ReliableGroup))
        inside += sum(link.in_transit for link in self.links.values())
        inside += sum(e.in_transit for e in self.encoders)
        inside += sum(p.in_transit for p in self.persisters.values())
        for p in self.producers.values():  # a sender still held up by backpressure
            since = getattr(p, "blocked_since", math.nan)
            if since == since:
                self.rec.blocked.append((p.index, since, math.nan))
        inside += sum(link.in_transit for link in self.prefetch_links)
        log = self.rec.batches.append  # services still running, for busy time
        for g in [*self.groups.values(), *self.partition_workers]:
            for held, start in zip(g.batch_held, g.started, strict=True):
                if held:
                    log((g.index, start, math.nan, len(held)))
        for pc in self.prefetchers:
            if pc.current is not None:
                log((pc.group, pc.current[1], math.nan, 1))
            for m, dispatched in pc.holding():
                visit((m.id, pc.queue.index, m.arrived, dispatched, math.nan, pc.group))
                inside += 1
        inside += sum(len(b.pending) for b in self.batchers)
        inside += sum(r.in_transit for r in self.repliers.values())
        inside += sum(p.encoding for p in self.producers.values() if isinstance(p, SyncProducer))
        return inside
