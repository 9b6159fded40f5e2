"""Build the SimPy model of a scenario and run one replication.

Each component is built complete, with the parts its scenario keys ask for, in an order
where whatever it hands messages to already exists: queues (dead-letter queues first),
their disks and faults; the starting backlogs; topics and links as they are first needed;
consumer groups and their scalers; producers with their outbound chains. At the end each
component says what it still holds (``close``/``inside``), which is how conservation is
checked.

One cohesive thing: the builder of one model, one method per kind of component.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import Event

from simq.dists import Constant, parse
from simq.engine import arrivals
from simq.engine.cluster import Broker, BrokerFaults, Controller, Log
from simq.engine.core import Destination, Holder, Message, Streams
from simq.engine.durability import Persister
from simq.engine.faults import Breakable, Faults
from simq.engine.idempotence import Door
from simq.engine.intake import Partitioned, Prefetch, SharedQueue
from simq.engine.line import Line
from simq.engine.link import CutLink, Link
from simq.engine.order import Sequencer, key_source
from simq.engine.outbound import Batcher, CreditGate, Credits, Encoder, Stamp
from simq.engine.queue import DeadLetter, Fifo, Levels, Queue, ReliableQueue
from simq.engine.rebalance import ASSIGNORS, Assignment, Rebalance
from simq.engine.recorder import Recorder
from simq.engine.retry import Backoff
from simq.engine.router import Router, Sink
from simq.engine.scaling import Scaler
from simq.engine.serve import Classes, Server
from simq.engine.settle import Acks, AutoAck
from simq.engine.source import Pacer, Source, Tracker
from simq.engine.topic import FanOut, Partitioner, key_picker
from simq.engine.worker import CrashPlan, Group, Replier
from simq.scenario import ConsumerSpec, ProducerSpec, Scenario
from simq.scenario.cluster import placement
from simq.scenario.reliability import BackoffSpec, FaultSpec
from simq.scenario.workload import BacklogSpec

__all__ = ["Daemons", "Outcome", "Simulation"]

_NO_GAP = parse("constant(0)")


@dataclass(frozen=True)
class Outcome:
    """How a replication ended, for the run layer."""

    t_end: float  # simulated time when it stopped
    t_stop: float  # end of the measurement window (until, or the last send)
    in_flight: int  # messages found inside the system at the end (counted, not derived)


class Daemons:
    """The run's background clock: the sleeps of processes that only watch or disturb
    the model (an autoscaler's ticks, the up-time before a random crash or outage).

    Without ``until`` a run ends when nothing is scheduled any more; these sleeps would
    keep it going for ever, so they are counted apart and a background process stops
    once nothing else is scheduled (:meth:`over`).
    """

    def __init__(self, env: simpy.Environment, endless: bool) -> None:
        self.env = env
        self.endless = endless
        self.pending = 0

    def sleep(self, delay: float) -> Event:
        self.pending += 1
        ev = self.env.timeout(delay)
        # Runs before the sleeper resumes (callbacks run in order): it no longer counts.
        ev.callbacks.append(self._woke)
        return ev

    def _woke(self, _ev: Event) -> None:
        self.pending -= 1

    def only_left(self) -> bool:
        """True when nothing but background sleeps is scheduled. SimPy has no public view
        of its schedule: its length is all that is read."""
        return len(self.env._queue) <= self.pending

    def over(self) -> bool:
        """True when the run has no ``until`` and nothing but background is scheduled."""
        return self.endless and self.only_left()


class _Endings(list):  # type: ignore[type-arg]
    """The log of finished messages when producers hold credits: a message that ends
    before a consumer took it gives its credit back."""

    def __init__(self, credits: Credits) -> None:
        super().__init__()
        self._credits = credits

    def append(self, row: tuple[int, float, int, int]) -> None:
        super().append(row)
        self._credits.ended(row[0])


class _Together:
    """The views of one partition, one per consumer group: they go down and come back
    together (the partition's broker)."""

    def __init__(self, views: list[Queue]) -> None:
        self.views = [v for v in views if isinstance(v, ReliableQueue)]

    def fail(self) -> None:
        for v in self.views:
            v.fail()

    def heal(self) -> None:
        for v in self.views:
            v.heal()


def _backoff(spec: BackoffSpec | None, uniform: Callable[[], float]) -> Backoff | None:
    if spec is None:
        return None
    return Backoff(spec.policy, spec.delay, spec.multiplier, spec.cap, uniform)


class Simulation:
    """One replication: components wired as the scenario says, on their own streams."""

    def __init__(self, scenario: Scenario, seed: np.random.SeedSequence) -> None:
        self.scenario = sc = scenario
        self.env = env = simpy.Environment()
        self.streams = Streams(seed)
        credited = any(p.credits is not None for p in sc.producers.values())
        self.credits = Credits() if credited else None
        self.rec = (Recorder() if self.credits is None
                    else Recorder(finished=_Endings(self.credits)))
        self.daemons = Daemons(env, endless=sc.run.until is None)
        self.ids = itertools.count()
        self.order = Sequencer(self.rec)
        self.limit = sc.run.messages if sc.run.messages is not None else math.inf
        self.sent = [0]  # first sends so far, against the limit
        self._drains = sc.drains()
        self._link_names = list(sc.links)

        self.queues: dict[str, Queue] = {}
        # What stands in front of a queue (or a partition read by several groups) and
        # takes its writes: a disk, or a replicated log on a broker cluster.
        self.persisters: dict[str, Persister | Log] = {}
        self.faults: list[Faults] = []
        self.controller = self._controller()
        for name in sc.queues:
            self._queue(name)
        self.queues = {n: self.queues[n] for n in sc.queues}  # scenario order
        for name, q in sc.queues.items():
            if q.backlog is not None and q.backlog.count:
                self._backlog(self.queues[name], q.backlog)

        self.topics: dict[str, Destination] = {}
        self.links: dict[str, Link] = {}
        # Replies are only possible when some sender waits for them: otherwise the end of
        # the line stays the plain "delivered" record, with nothing added per message.
        self.replies = any(p.wants_ack for p in sc.producers.values())
        self.ends: list[Sink | Replier] = []
        self.fetch_links: list[Link] = []
        self.groups: dict[str, Group] = {}
        for i, (name, c) in enumerate(sc.consumers.items()):
            self.groups[name] = self._group(i, name, c)
        self.scalers = {
            name: Scaler(env, self.groups[name], c.schedule, c.autoscale, self.daemons)
            for name, c in sc.consumers.items()
            if c.schedule is not None or c.autoscale is not None
        }
        self.outbound: list[Encoder | Batcher] = []
        self.producers: dict[str, Source] = {}
        for i, (name, p) in enumerate(sc.producers.items()):
            self.producers[name] = self._source(i, name, p)
        self.links = {k: self.links[k] for k in self._link_names if k in self.links}

    # Queues ----------------------------------------------------------------------------
    def _queue(self, name: str) -> Queue:
        """The queue ``name`` (its dead-letter queue built first), its disk and faults."""
        if name in self.queues:
            return self.queues[name]
        sc, env, rec = self.scenario, self.env, self.rec
        q = sc.queues[name]
        index = list(sc.queues).index(name)
        # A message given back by a visibility timeout may still be in a worker's hands:
        # only then must the line hold the message itself (engine.line).
        copies = any(sc.consumers[g].visibility_timeout is not None for g in self._drains[name])
        fifo: Callable[[], Fifo] = deque if copies else Line
        line: Fifo | Levels = (Levels(self._priority_of(), fifo) if q.discipline == "priority"
                               else fifo())
        on_take = self.credits.back if self.credits is not None else None
        part = sc.partition_of(name)
        retention = None if part is None else sc.topics[part[0]].retention
        # One group's view of a partition read by several: the partition's disk and
        # outages are the log's, built once for all views (_partition).
        view = part is not None and part[2] is not None
        if self._reliable(name):
            dead = DeadLetter()
            if q.dead_letter is not None:
                self._queue(q.dead_letter)
                has_readers = bool(self._drains[q.dead_letter])
                # A DLQ with consumers: messages live on there.
                dead = DeadLetter(True, self._target(q.dead_letter) if has_readers else None)
            queue: Queue = ReliableQueue(
                env, index, name, rec, capacity=q.capacity, overflow=q.overflow, line=line,
                on_take=on_take, dead_letter=dead,
                ttl=q.ttl if retention is None or retention.seconds is None
                else retention.seconds,
                expiry=q.expiry if retention is None or retention.seconds is None
                else "anywhere",
                retains=retention is not None and retention.seconds is not None,
                keep=math.inf if retention is None or retention.messages is None
                else retention.messages,
                persistent=q.persistent, when_down=q.when_down,
                deadlines=any(p.ttl is not None for p in sc.producers.values()),
                copies=copies)
        else:
            queue = Queue(env, index, name, rec, capacity=q.capacity, overflow=q.overflow,
                          line=line, on_take=on_take)
        self.queues[name] = queue
        if q.outages is not None and not view:
            assert isinstance(queue, ReliableQueue)
            self._faults(queue, f"queues.{name}.outages", q.outages)
        if q.durability is not None and not view:
            self.persisters[name] = self._persister(name, queue)
        if self.controller is not None and not view:
            assert isinstance(queue, ReliableQueue)
            self.persisters[name] = self._log(name, queue, [queue])
        return queue

    def _controller(self) -> Controller | None:
        """The broker cluster's brokers, their faults and its controller (docs/cluster.md)."""
        spec = self.scenario.brokers
        if spec is None:
            return None
        draw = self.streams.draw
        instant = isinstance(spec.service, Constant) and spec.service.value == 0
        brokers = [Broker(k, b, draw(f"brokers.service.{b}", spec.service), instant)
                   for k, b in enumerate(spec.broker_names)]
        controller = Controller(
            self.env, brokers, draw("brokers.detection", spec.detection),
            draw("brokers.election_time", spec.election_time),
            warmup if isinstance(warmup := self.scenario.run.warmup, float) else 0.0,
            self.daemons, self.rec)
        for b in brokers:
            fault = (spec.outages or {}).get(b.name)
            if fault is not None:
                self._faults(BrokerFaults(controller, b), f"brokers.outages.{b.name}", fault)
        return controller

    def _log(self, name: str, dest: Destination, views: list[Queue]) -> Log:
        """The replicated log ``name`` (a queue, or a partition TOPIC[p]) in front of
        ``dest``, on the brokers its placement gives."""
        sc, controller = self.scenario, self.controller
        assert controller is not None and sc.brokers is not None
        rep = sc.replication(name)
        assert rep is not None
        index = list(sc.logs()).index(name)
        brokers = controller.brokers
        replicas = [brokers[k] for k in placement(index, rep.replication_factor,
                                                    len(brokers))]
        reliable = [v for v in views if isinstance(v, ReliableQueue)]
        log = Log(self.env, index, dest, reliable, replicas, rep.acks,
                  rep.min_insync_replicas,
                  self.streams.draw(f"brokers.replication.{name}", sc.brokers.replication),
                  sc.queues[views[0].name].when_down, self.rec)
        controller.add(log)
        return log

    def _persister(self, name: str, dest: Destination) -> Persister:
        """The disk of queue (or partition) ``name``, in front of ``dest``."""
        d = self.scenario.queues[name].durability if name in self.scenario.queues else None
        if d is None:  # a partition read by several groups: the topic's disk
            part = self.scenario.partition_of(name)
            assert part is not None
            d = self.scenario.topics[part[0]].durability
        assert d is not None
        key = f"queues.{name}.durability"
        gc = d.group_commit
        streams = self.streams
        return Persister(
            self.env, dest, streams.draw(f"{key}.fsync", d.fsync),
            1 if gc is None else gc.size, 0.0 if gc is None else gc.wait, d.replicas,
            streams.draw(f"{key}.replication", d.replication) if d.replicas else None,
            d.acks == "all", self.rec)

    def _reliable(self, name: str) -> bool:
        """Whether a queue needs the broker's reliability semantics: its own keys, a
        producer's ttl, or a consumer that acks, fails, dedups or crashes reading it."""
        sc = self.scenario
        q = sc.queues[name]
        part = sc.partition_of(name)
        if part is not None and sc.topics[part[0]].retention is not None:
            return True
        if sc.brokers is not None:  # a log's leader may fail: its views go down
            return True
        return (q.reliable or any(p.ttl is not None for p in sc.producers.values())
                or any(sc.consumers[g].reliable for g in self._drains[name]))

    def _priority_of(self) -> Callable[[Message], int]:
        """A message's class is its producer's priority (copies keep theirs)."""
        classes = [p.priority for p in self.scenario.producers.values()]

        def priority_of(msg: Message) -> int:
            origin = msg.origin
            return classes[origin] if origin >= 0 else 0  # -1: a queue's starting backlog

        return priority_of

    def _faults(self, target: Breakable, key: str, spec: FaultSpec) -> None:
        streams = self.streams
        self.faults.append(Faults(
            self.env, target,
            None if spec.mtbf is None else streams.draw(f"{key}.mtbf", spec.mtbf),
            None if spec.mttr is None else streams.draw(f"{key}.mttr", spec.mttr),
            spec.at, self.daemons))

    def _backlog(self, queue: Queue, spec: BacklogSpec) -> None:
        """Messages waiting at time 0: produced at minus their age (producer index -1),
        oldest first in line, so conservation and latency count them like any other."""
        key = f"queues.{queue.name}.backlog"
        streams = self.streams
        age, size = streams.draw(f"{key}.age", spec.age), streams.draw(f"{key}.size", spec.size)
        ages = sorted((age() for _ in range(spec.count)), reverse=True)
        created = self.rec.created.append
        for a in ages:
            msg = Message(next(self.ids), -a, size())
            msg.queue = queue.index
            created((-1, msg.sent, msg.size))
            queue.items.append(msg)

    # Topics and links ------------------------------------------------------------------
    def _target(self, name: str) -> Destination:
        """A queue (behind its disk when it has one), or the topic that spreads messages
        over its queues."""
        if name in self.persisters:
            return self.persisters[name]
        if name in self.queues:
            return self.queues[name]
        if name not in self.topics:
            sc = self.scenario
            spec = sc.topics[name]
            if spec.subscribers is not None:
                parts = [self._target(q) for q, _ in sc.resolve(name)]
                self.topics[name] = FanOut(self.env, parts, self.ids, self.rec, self.order)
            else:
                views = list(sc.views(name).values())
                if len(views) == 1:
                    parts = [self._target(q) for q in views[0]]
                else:
                    parts = [self._partition(name, p, [self.queues[v[p]] for v in views])
                             for p in range(len(views[0]))]
                pick = key_picker(spec.key, len(parts), spec.key_probabilities,
                                  self.streams.uniform(f"topics.{name}.key"))
                self.topics[name] = Partitioner(parts, pick, self.order)
        return self.topics[name]

    def _partition(self, topic: str, p: int, views: list[Queue]) -> Destination:
        """Partition ``p`` of a topic read by several groups: the message is appended
        once (the partition's disk, its outages) and each group gets its own copy in its
        view, as a fan-out does, so each group's delivery is one message's outcome."""
        name = f"{topic}[{p}]"
        dest: Destination = FanOut(self.env, views, self.ids, self.rec, self.order)
        spec = self.scenario.topics[topic]
        if spec.outages is not None:
            self._faults(_Together(views), f"queues.{name}.outages", spec.outages)
        if spec.durability is not None:
            dest = self.persisters[name] = self._persister(name, dest)
        if self.controller is not None:
            dest = self.persisters[name] = self._log(name, dest, views)
        return dest

    def _via(self, src: str, dst: str, door: Door | None = None) -> Destination:
        """The queue or topic `dst` (behind an idempotent producer's `door`), over the link
        src->dst when there is one."""
        key = f"{src}->{dst}"
        if key not in self.scenario.links:
            return self._target(dst) if door is None else door
        if key not in self.links:
            spec = self.scenario.links[key]
            wire = None
            if spec.shares is not None:  # the owner of the bandwidth first
                a, _, b = spec.shares.partition("->")
                self._via(a, b)
                wire = self.links[spec.shares]
            args = (self.env, self._link_names.index(key), key,
                    self._target(dst) if door is None else door,
                    self.streams.draw(f"links.{key}.latency", spec.latency), spec.bandwidth,
                    spec.loss, self.streams.uniform(f"links.{key}.loss"), self.rec)
            if spec.partitions is None:
                self.links[key] = Link(*args, retransmit=spec.retransmit, wire=wire)
            else:
                link = CutLink(*args, retransmit=spec.retransmit, wire=wire,
                               when_cut=spec.when_cut)
                self._faults(link, f"links.{key}.partitions", spec.partitions)
                self.links[key] = link
        return self.links[key]

    # Consumer groups -------------------------------------------------------------------
    def _way_out(self, i: int) -> Destination:
        end: Sink | Replier = (Replier(self.env, i, self.rec) if self.replies
                               else Sink(self.env, i, self.rec))
        self.ends.append(end)
        return end

    def _forward(self, i: int, name: str, c: ConsumerSpec) -> Destination | None:
        """Where a processed message goes: on (a route, or a random choice of routes),
        back to a waiting sender, or nowhere (the worker records the delivery itself:
        the plain path)."""
        routes = c.routes
        if len(routes) > 1:
            return Router(
                [(self._way_out(i) if d is None else self._via(name, d), p)
                 for d, p in routes],
                self.streams.uniform(f"consumers.{name}.route"))
        if routes[0][0] is not None:
            return self._via(name, routes[0][0])
        return self._way_out(i) if self.replies else None

    def _group(self, i: int, name: str, c: ConsumerSpec) -> Group:
        sc, env, rec, streams = self.scenario, self.env, self.rec, self.streams
        key = f"consumers.{name}"
        forward = self._forward(i, name, c)
        topic = sc.topics.get(c.source)
        queues = [self.queues[q] for q, _ in sc.intake(name)]
        # On a topic each partition has one owner; consumers beyond the partitions stay
        # idle (they count in utilization).
        line: SharedQueue | Partitioned = (
            SharedQueue(queues[0]) if topic is None
            else Partitioned(queues, topic.owners, self._rebalance(i, name, c, len(queues))))
        intake: SharedQueue | Partitioned | Prefetch = line
        if c.prefetch is not None:
            intake = Prefetch(env, line, c.prefetch, self._fetch_link(c.source, name),
                              self._ack_latency(c.source, name), rec)
        pace = [1.0] * c.count
        if c.slow is not None:
            pace = [c.slow.factor if k < c.slow.workers else 1.0 for k in range(c.count)]
        server = Server(
            streams.draw(f"{key}.service", c.service),
            None if c.decode is None else streams.draw(f"{key}.decode", c.decode), pace,
            self._classes(name, c))
        settler: AutoAck | Acks
        if c.reliable:
            settler = Acks(
                env, i, queues, forward, rec, server, manual=c.ack == "manual",
                visibility=c.visibility_timeout, failure=c.failure,
                coin=streams.uniform(f"{key}.failure"), max_attempts=c.max_attempts,
                backoff=_backoff(c.backoff, streams.uniform(f"{key}.backoff")),
                dedup=c.dedup, poison=c.poison, prefetched=c.prefetch is not None)
        else:
            settler = AutoAck(env, i, forward, rec, server, prefetched=c.prefetch is not None)
        crashes = None
        if c.crashes is not None:
            cr = c.crashes
            crashes = CrashPlan(
                None if cr.mtbf is None else streams.draw(f"{key}.crashes.mtbf", cr.mtbf),
                None if cr.mttr is None else streams.draw(f"{key}.crashes.mttr", cr.mttr),
                cr.at, cr.workers)
        scaled = c.schedule is not None or c.autoscale is not None
        return Group(env, i, name, rec, intake=intake, server=server, settler=settler,
                     count=c.count, batch=c.batch, crashes=crashes,
                     log_workers=scaled or crashes is not None,
                     log_services=c.logs_services, daemons=self.daemons,
                     session_timeout=None if c.rebalance is None
                     else c.rebalance.session_timeout)

    def _rebalance(self, i: int, name: str, c: ConsumerSpec, partitions: int
                   ) -> Callable[[Callable[[Assignment], None]], Rebalance] | None:
        """The rebalance protocol of group ``name`` on a partitioned topic, built around
        the intake's way of serving an assignment (None: ownership moves at once)."""
        spec = c.rebalance
        if spec is None:
            return None
        time = self.streams.draw(f"consumers.{name}.rebalance.time", spec.time)
        env, rec = self.env, self.rec
        return lambda serve: Rebalance(env, i, partitions, ASSIGNORS[spec.assignor],
                                       spec.protocol == "cooperative", time, rec, serve)

    def _classes(self, name: str, c: ConsumerSpec) -> Classes | None:
        """The group's samplers per message class, when some class is served otherwise
        than the group says. Each class draws on its own stream (``.service.PRODUCER``),
        so adding or changing a class leaves the others' numbers alone; the group's own
        streams serve a backlog's messages (the last entry)."""
        sc, streams, key = self.scenario, self.streams, f"consumers.{name}"
        if not sc.has_classes(name):
            return None
        services, decodes, means = [], [], []
        for pname in sc.producers:
            service, decode = sc.class_service(name, pname)
            services.append(streams.draw(f"{key}.service.{pname}", service))
            decodes.append(None if decode is None
                           else streams.draw(f"{key}.decode.{pname}", decode))
            means.append(service.mean)
        services.append(streams.draw(f"{key}.service", c.service))
        decodes.append(None if c.decode is None else streams.draw(f"{key}.decode", c.decode))
        means.append(c.service.mean)
        return Classes(services, decodes, means)

    def _fetch_link(self, source: str,
                    name: str) -> Callable[[int, Destination], Destination] | None:
        """Each prefetching consumer's own copy of the source->consumer link."""
        key = f"{source}->{name}"
        spec = self.scenario.links.get(key)
        if spec is None:
            return None
        index = self._link_names.index(key)

        def make(slot: int, buffer: Destination) -> Destination:
            link = Link(self.env, index, key, buffer,
                        self.streams.draw(f"links.{key}.latency.{slot}", spec.latency),
                        spec.bandwidth, 0.0, self.streams.uniform(f"links.{key}.loss.{slot}"),
                        self.rec, retransmit=spec.retransmit)
            self.fetch_links.append(link)
            return link

        return make

    def _ack_latency(self, source: str, name: str) -> Callable[[], float] | None:
        """An ack's trip back over the consumer's link (its latency)."""
        key = f"{source}->{name}"
        spec = self.scenario.links.get(key)
        return None if spec is None else self.streams.draw(f"links.{key}.ack", spec.latency)

    # Producers -------------------------------------------------------------------------
    def _source(self, i: int, name: str, p: ProducerSpec) -> Source:
        env, rec, streams = self.env, self.rec, self.streams
        key = f"producers.{name}"
        size = streams.draw(f"{key}.size", p.size)
        # The broker's door of an idempotent producer: only a tracked sender can resend.
        door = (Door(env, i, self._target(p.to), rec) if p.idempotent and p.wants_ack
                else None)
        dest = self._via(name, p.to, door)
        if p.batch_size is not None:
            batcher = Batcher(env, dest, p.batch_size, p.linger, rec)
            self.outbound.append(batcher)
            dest = batcher
        clients = p.clients if p.mode == "sync" else 1
        encode = None if p.encode is None else streams.draw(f"{key}.encode", p.encode)
        heads: list[Destination] = []
        gate: CreditGate | None = None
        for _ in range(clients):
            # A sync client encodes on its own CPU; an open-loop producer has one encoder.
            head: Destination = dest
            if encode is not None:
                encoder = Encoder(env, dest, encode, rec)
                self.outbound.append(encoder)
                head = encoder
            if p.credits is not None:
                assert self.credits is not None
                gate = CreditGate(env, head, p.credits, self.credits, share=gate)
                head = gate
            if p.ttl is not None:
                head = Stamp(env, head, p.ttl)
            heads.append(head)
        stop = p.stop
        if p.mode == "sync":
            gap = streams.draw(f"{key}.think", p.think)
        elif p.arrivals is not None:
            gap, end = arrivals.build(p.arrivals, env, streams, key)
            if end is not None:
                stop = end if stop is None else min(stop, end)
        else:
            # A window without an interarrival sends as fast as the window lets it.
            gap = streams.draw(f"{key}.interarrival",
                               p.interarrival if p.interarrival is not None else _NO_GAP)
        tracker = None
        if p.wants_ack:
            r = p.retry
            tracker = Tracker(
                env, i, rec, heads=heads, reply=streams.draw(f"{key}.reply", p.reply),
                ids=self.ids, size=size, timeout=p.timeout,
                max_attempts=1 if r is None else r.max_attempts,
                backoff=None if r is None else _backoff(
                    r.backoff, streams.uniform(f"{key}.retry.backoff")),
                budget=None if r is None else r.budget,
                budget_floor=0 if r is None else r.budget_floor,
                window=p.window if p.mode == "window" else None, order=self.order,
                door=door,
                forget=[g.settler.forget for g in self.groups.values()
                        if isinstance(g.settler, Acks) and g.settler.dedup])
        pacer = Pacer(gap, clients,
                      tracker.space if tracker is not None and p.mode == "window" else None,
                      waits=p.mode == "sync")
        keys = None
        if p.keyed:
            keys = key_source(p.keys, p.trace_keys,
                              gap.position if isinstance(gap, arrivals.TraceGap) else None,
                              streams.uniform(f"{key}.keys"), self.order)
        return Source(env, i, name, rec, pacer=pacer, heads=heads, size=size, ids=self.ids,
                      limit=self.limit, sent=self.sent, start=p.start, stop=stop,
                      tracker=tracker, order=self.order, keys=keys)

    # Running ---------------------------------------------------------------------------
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
        return Outcome(t_end, t_stop, self._close())

    def holders(self) -> list[Holder]:
        """Every component that can hold messages at the end of a run."""
        return [*self.persisters.values(), *self.links.values(), *self.fetch_links,
                *self.outbound, *self.ends]

    def _close(self) -> int:
        """Every component logs what is still open and says how many messages it holds."""
        inside = sum(q.close() for q in self.queues.values())
        inside += sum(g.close() for g in self.groups.values())
        inside += sum(h.inside() for h in self.holders())
        if self.controller is not None:
            self.controller.close()
        for p in self.producers.values():  # a sender still held up by backpressure
            p.close()
        return inside
