"""A broker cluster (docs/cluster.md): brokers that do the writes, replicated logs with a
leader and followers, and the controller that moves leadership when a broker fails.

A :class:`Log` stands in front of one queue (or of the views of one partition, one per
consumer group): a write is an append on the leader's broker, then a copy on every
follower ``replication`` later; consumers see it once the in-sync replicas have it (the
high watermark, ``acks: 1`` or ``all``) or once a majority has it (``quorum``). Like a
disk (engine.durability), it uses timeouts and callbacks, no process per message.

What a failure does is decided by the :class:`Controller`: a failed broker's logs are
unavailable at once (senders held or turned away, as ``when_down`` says; consumers find
nothing to take); ``detection`` later the controller notices, drops the broker from every
in-sync set and, ``election_time`` later, makes an in-sync replica that is up the leader.
A log with no such replica stays unavailable until one comes back. Writes the old leader
had not yet copied are lost with ``acks: 1`` (the producer was answered already) and
written again on the new leader with ``all`` or ``quorum`` (the producer was not, so it
sends again): nothing acknowledged is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import simpy
from simpy.events import Event, ProcessGenerator

from simq.engine.core import Daemons, Destination, Message
from simq.engine.queue import ReliableQueue
from simq.engine.recorder import (
    C_DOWN,
    C_LEADER,
    C_LOAD,
    C_LOST,
    C_NOTICED,
    C_UP,
    DROPPED,
    LOST,
    NOWHERE,
    OUTAGE_LOST,
    PERSIST,
    REPLICATE,
    Recorder,
)

__all__ = ["Broker", "Controller", "Log"]

INF = float("inf")


class Broker:
    """One broker: a single server doing its writes one at a time, in the order they
    reach it (an append as a leader, a copy as a follower), and its counters. Writes are
    handed to it at the time they reach it, so the order is the order of arrival.
    ``instant``: its service is always zero, so a write is done the moment it arrives."""

    def __init__(self, index: int, name: str, service: Callable[[], float],
                 instant: bool) -> None:
        self.index = index
        self.name = name
        self.service = service
        self.instant = instant
        self.up = True
        self.noticed = False  # the controller knows it is down
        self.noticed_at = INF  # when it will know (INF: not down)
        self.free_at = 0.0
        self.appends = 0
        self.copies = 0
        self.busy = 0.0

    def write(self, at: float, copy: bool) -> float:
        """Take a write that reaches the broker at ``at`` (now, or for an instant broker
        any time from now on); when it is done."""
        if copy:
            self.copies += 1
        else:
            self.appends += 1
        if self.instant:
            return at
        s = self.service()
        start = at if at > self.free_at else self.free_at
        self.free_at = start + s
        self.busy += s
        return self.free_at


class _Write:
    """A write not yet visible: the message, when it first reached the log, the leader
    it was written on and when, the followers it waits for with the time each has it
    (``noticed``: the follower was down, and the write waits until it is out of the
    in-sync set), how many copies are still on their way, and when it becomes visible
    (``version`` tells a rescheduled write's old timeout from its new one)."""

    __slots__ = ("msg", "first", "leader", "done", "acks", "pending", "visible", "version")

    def __init__(self, msg: Message, first: float, leader: Broker, done: float) -> None:
        self.msg = msg
        self.first = first
        self.leader = leader
        self.done = done
        self.acks: list[tuple[Broker, float, bool]] = []
        self.pending = 0
        self.visible = INF  # INF: not scheduled yet
        self.version = 0


class Log:
    """One replicated log in front of ``dest`` (its queue, or the fan-out to the views
    of a partition read by several groups): a destination and a holder.

    Writes become visible in the order they were appended (the high watermark only
    moves forward), so a partition keeps its order whatever each copy takes."""

    def __init__(self, env: simpy.Environment, index: int, dest: Destination,
                 views: Sequence[ReliableQueue], replicas: Sequence[Broker], acks: str,
                 min_insync: int, replication: Callable[[], float], when_down: str,
                 rec: Recorder) -> None:
        self.env = env
        self.index = index
        self.dest = dest
        self.views = list(views)
        self.replicas = list(replicas)
        self.acks = acks
        self.min_insync = min_insync if acks == "all" else 1
        self.majority = len(replicas) // 2 + 1
        self.replication = replication
        self.when_down = when_down
        self.leader: Broker | None = self.replicas[0]
        self.isr = list(self.replicas)  # in-sync replicas, the leader first
        self.held: list[tuple[Message, Event, float]] = []  # senders held, since
        self.writes: dict[int, _Write] = {}  # by message id, in append order
        self.waiting: deque[_Write] = deque()  # not yet scheduled, in append order
        self.hw = 0.0  # when the last write scheduled becomes visible
        self._stage = rec.stages.append
        self._finished = rec.finished.append
        self._event = rec.events.append
        self._log = rec.cluster.append
        self.where = self.views[0].index  # the queue a refused or lost message ends at

    # Writes ----------------------------------------------------------------------------
    def writable(self) -> bool:
        """Whether a write can be taken now: a leader that is up and, with acks: all,
        at least ``min_insync_replicas`` in-sync replicas (quorum: a majority up)."""
        leader = self.leader
        if leader is None or not leader.up:
            return False
        if self.acks == "quorum":
            return sum(r.up for r in self.replicas) >= self.majority
        return self.acks == "1" or len(self.isr) >= self.min_insync

    def put(self, msg: Message) -> Event | None:
        return self._put(msg, self.env.now)

    def _put(self, msg: Message, first: float) -> Event | None:
        if not self.writable():
            if self.when_down == "drop":
                self._finished((msg.id, self.env.now, DROPPED, self.where))
                return None
            ev = Event(self.env)
            self.held.append((msg, ev, first))
            return ev
        leader = self.leader
        assert leader is not None
        w = _Write(msg, first, leader, leader.write(self.env.now, copy=False))
        self.writes[msg.id] = w
        self.waiting.append(w)
        quorum = self.acks == "quorum"
        for f in self.replicas if quorum else self.isr:
            if f is leader:
                continue
            if f.up:
                self._copy(w, f)
            elif not quorum:
                w.acks.append((f, f.noticed_at, True))  # until it is out of the set
        self._advance()
        return None

    def _copy(self, w: _Write, f: Broker) -> None:
        """Send ``w`` to follower ``f``: it reaches ``f`` ``replication`` after the
        leader's write (and then waits its turn there)."""
        at = max(w.done, self.env.now) + self.replication()
        if f.instant:
            w.acks.append((f, f.write(at, copy=True), False))
            return
        w.pending += 1
        ev = self.env.timeout(at - self.env.now, (w, f))
        ev.callbacks.append(self._arrived)

    def _arrived(self, ev: Event) -> None:
        w: _Write
        f: Broker
        w, f = ev.value  # type: ignore[misc]
        if self.writes.get(w.msg.id) is not w:
            return  # settled by a failover
        w.pending -= 1
        if f.up:
            w.acks.append((f, f.write(self.env.now, copy=True), False))
        elif self.acks != "quorum":
            w.acks.append((f, f.noticed_at, True))  # it failed before the copy came
        self._advance()

    def _advance(self) -> None:
        """Schedule, in append order, the writes whose copies are all accounted for."""
        waiting = self.waiting
        while waiting and waiting[0].pending == 0:
            self._schedule(waiting.popleft())

    def _schedule(self, w: _Write) -> None:
        """Make ``w`` visible when the replicas it waits for have it, not before the
        write before it."""
        times = [w.done, *(t for _, t, _ in w.acks)]
        if self.acks == "quorum":  # a majority, the leader included
            times.sort()
            due = times[self.majority - 1] if len(times) >= self.majority else INF
        else:
            due = max(times)
        w.visible = self.hw = max(due, self.hw, self.env.now)
        w.version += 1
        if w.visible < INF:
            ev = self.env.timeout(w.visible - self.env.now, (w, w.version))
            ev.callbacks.append(self._copied)

    def _copied(self, ev: Event) -> None:
        w: _Write
        w, version = ev.value  # type: ignore[misc]
        if (w.version != version or self.writes.get(w.msg.id) is not w
                or not (w.leader is self.leader and w.leader.up)):
            return  # rescheduled, or its leader failed meanwhile (see online)
        self._visible(w)

    def follower_back(self, b: Broker) -> None:
        """Follower ``b`` is back before it was noticed: it copies what it missed now,
        and the writes that waited for it wait no longer."""
        if self.acks == "quorum":
            return  # a quorum write never waited for a follower that was down
        pending = list(self.writes.values())
        first = next((k for k, w in enumerate(pending)
                      if any(f is b and noticed for f, _, noticed in w.acks)), None)
        if first is None:
            return
        # The writes not yet scheduled are the last ones; from the first of them, or from
        # the first that waited for b if sooner, every write is scheduled again, in order.
        start = min(first, len(pending) - len(self.waiting))
        self.hw = max([self.env.now, *(w.visible for w in pending[:start])])
        for w in pending[start:]:
            if w.visible < INF:
                w.version += 1  # its timeout is void
                w.visible = INF
        for w in pending[first:]:
            if any(f is b and noticed for f, _, noticed in w.acks):
                w.acks = [(f, t, noticed) for f, t, noticed in w.acks
                          if not (f is b and noticed)]
                self._copy(w, b)
        self.waiting = deque(pending[start:])
        self._advance()

    def _visible(self, w: _Write) -> None:
        now = self.env.now
        del self.writes[w.msg.id]
        self._stage((w.msg.id, PERSIST, w.first, max(w.first, w.done)))
        if now > w.done:
            self._stage((w.msg.id, REPLICATE, max(w.first, w.done), now))
        self.dest.put(w.msg)

    # Leadership ------------------------------------------------------------------------
    def offline(self) -> None:
        """The leader's broker is down: nothing can be read or written."""
        for v in self.views:
            v.fail()

    def online(self, leader: Broker) -> None:
        """``leader`` leads now: writes it had not made visible are settled (lost with
        acks: 1 on a new leader, written again otherwise); held senders get in."""
        self.leader = leader
        now = self.env.now
        pending, self.writes = list(self.writes.values()), {}
        self.waiting = deque(w for w in self.waiting if w.leader is leader)
        if any(w.leader is not leader for w in pending):
            self.hw = now  # a new leader's log: what it writes is visible from now on
        lost = 0
        for w in pending:
            if w.leader is leader:  # the same broker leads again: its log is intact
                self.writes[w.msg.id] = w
                if w.visible <= now:  # its callback came while the leader was down
                    self._visible(w)
            elif self.acks == "1":
                self._finished((w.msg.id, now, LOST, NOWHERE))
                self._event((w.msg.id, OUTAGE_LOST, self.where, now))
                lost += 1
            else:
                self._put(w.msg, w.first)
        if lost:
            self._log((C_LOST, leader.index, self.index, now, lost, 0, 0.0))
        for v in self.views:
            if v.down:
                v.heal()
        self.release()

    def release(self) -> None:
        """Senders held while the log could not take writes try again."""
        if not self.writable():
            return
        held, self.held = self.held, []
        for msg, ev, first in held:
            if not ev.triggered:
                ev.succeed()
            self._put(msg, first)

    def inside(self) -> int:
        """Messages held at the door or written and not yet visible."""
        return len(self.held) + len(self.writes)


class Controller:
    """The cluster's controller: it notices a failed broker ``detection`` after the
    failure (a broker back sooner is never noticed: its logs simply come back) and
    elects new leaders ``election_time`` later."""

    def __init__(self, env: simpy.Environment, brokers: Sequence[Broker],
                 detection: Callable[[], float], election: Callable[[], float],
                 warmup: float, daemons: Daemons, rec: Recorder) -> None:
        self.env = env
        self.brokers = list(brokers)
        self.detection = detection
        self.election = election
        self.logs: list[Log] = []
        self._log = rec.cluster.append
        self._epoch = [0] * len(brokers)
        for b in self.brokers:
            self.snapshot(b)
        if warmup > 0:  # the counters at the start of the window, exactly
            daemons.sleep(warmup).callbacks.append(lambda _ev: self.snapshot_all())

    def add(self, log: Log) -> None:
        self.logs.append(log)
        self._log((C_LEADER, log.replicas[0].index, log.index, 0.0, 0, 0, 0.0))

    def snapshot(self, b: Broker) -> None:
        """Log broker ``b``'s counters now (the summary takes differences)."""
        self._log((C_LOAD, b.index, -1, self.env.now, b.appends, b.copies, b.busy))

    def snapshot_all(self) -> None:
        for b in self.brokers:
            self.snapshot(b)

    def leads(self, b: Broker) -> list[Log]:
        return [lg for lg in self.logs if lg.leader is b]

    # Faults (engine.faults calls these through the broker's handle) --------------------
    def fail(self, b: Broker) -> None:
        now = self.env.now
        b.up = False
        self._epoch[b.index] += 1
        b.noticed_at = now + self.detection()
        self._log((C_DOWN, b.index, -1, now, 0, 0, 0.0))
        self.snapshot(b)
        for lg in self.leads(b):
            lg.offline()
        self.env.process(self._notice(b, self._epoch[b.index]))

    def _notice(self, b: Broker, epoch: int) -> ProcessGenerator:
        yield self.env.timeout(max(0.0, b.noticed_at - self.env.now))
        if self._epoch[b.index] != epoch or b.up:
            return
        b.noticed = True
        self._log((C_NOTICED, b.index, -1, self.env.now, 0, 0, 0.0))
        for lg in self.logs:
            if b in lg.isr and lg.leader is not b:
                lg.isr.remove(b)  # a follower out of the set: writes stop waiting for it
                lg.release()
        orphans = self.leads(b)
        for lg in orphans:
            lg.isr = [r for r in lg.isr if r is not b] or [b]
            lg.leader = None
            self._log((C_LEADER, -1, lg.index, self.env.now, 0, 0, 0.0))
        self._elect(orphans)

    def _elect(self, logs: list[Log]) -> None:
        """Elect leaders for ``logs`` after one election time, from what is up then."""
        if logs:
            self.env.process(self._election(logs, self.election()))

    def _election(self, logs: list[Log], took: float) -> ProcessGenerator:
        yield self.env.timeout(took)
        for lg in logs:
            if lg.leader is not None and lg.leader.up:
                continue  # its old leader came back meanwhile and kept it
            leader = self._candidate(lg)
            if leader is None:
                continue  # no eligible replica up: waits for one to come back
            lg.isr = [leader, *[r for r in lg.isr if r is not leader and r.up]]
            self._log((C_LEADER, leader.index, lg.index, self.env.now, 0, 0, 0.0))
            lg.online(leader)

    def _candidate(self, lg: Log) -> Broker | None:
        """An in-sync replica that is up (quorum: any replica, when a majority is up)."""
        if lg.acks == "quorum":
            if sum(r.up for r in lg.replicas) < lg.majority:
                return None
            pool = [r for r in lg.replicas if r in lg.isr] + lg.replicas
        else:
            pool = lg.isr
        return next((r for r in pool if r.up), None)

    def heal(self, b: Broker) -> None:
        now = self.env.now
        b.up = True
        b.free_at = max(b.free_at, now)
        self._log((C_UP, b.index, -1, now, 0, 0, 0.0))
        self.snapshot(b)
        noticed, b.noticed, b.noticed_at = b.noticed, False, INF
        self._epoch[b.index] += 1
        waiting = []
        for lg in self.logs:
            if b not in lg.replicas:
                continue
            if lg.leader is b:  # back before it was noticed: its logs simply resume
                lg.online(b)
            elif lg.leader is None:
                waiting.append(lg)
            elif b not in lg.isr:
                lg.isr.append(b)  # caught up (the copy of what it missed is not modelled)
                lg.release()
            elif not noticed:
                lg.follower_back(b)
        self._elect(waiting)

    def close(self) -> None:
        self.snapshot_all()


class BrokerFaults:
    """A broker as engine.faults sees it: something that fails and heals."""

    def __init__(self, controller: Controller, broker: Broker) -> None:
        self.controller = controller
        self.broker = broker

    def fail(self) -> None:
        self.controller.fail(self.broker)

    def heal(self) -> None:
        self.controller.heal(self.broker)
