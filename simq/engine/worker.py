"""A consumer group: workers that take, serve and settle, each one long-lived process.

Every worker runs the same loop, assembled when the model is built from three parts:

- where it takes from, an *intake*: one queue all workers share (:class:`SharedQueue`),
  the partitions of a topic it owns (:class:`Partitioned`, reassigned when the group's
  membership changes), or its own prefetch buffer fed over a link (:class:`Prefetch`,
  in front of either);
- how it serves, a :class:`Server`: decode each message, then one service time for what
  it holds (up to ``batch`` messages), slower on a slow worker;
- how it settles, a *settler*: :class:`AutoAck` (the broker forgets a message once a worker
  has it) or :class:`Acks` (acks with visibility timeout, failures, back-off, max attempts,
  dead letters, dedup; docs/reliability.md).

A crash reaches a worker as an interrupt: the settler decides what becomes of what it
held. Scaling (schedule, autoscale) adds workers and retires them between messages.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import simpy
from simpy.events import Event
from simpy.exceptions import Interrupt

from simq.engine.core import Destination, Message, Request, key, next_visit
from simq.engine.queue import Queue, ReliableQueue, wake_parked
from simq.engine.recorder import (
    ATTEMPT,
    BUFFER,
    CRASH,
    CRASH_LOST,
    DECODE,
    DELIVERED,
    DISCARDED,
    DUPLICATE,
    FAILED,
    FETCH,
    LOST,
    NOWHERE,
    REPEAT,
    REPLY,
    RESTART,
    Recorder,
)
from simq.engine.retry import Backoff

__all__ = ["Acks", "AutoAck", "CrashPlan", "Group", "Partitioned", "Prefetch", "Replier",
           "Server", "SharedQueue"]

NAN = math.nan
INF = math.inf


class Line(Protocol):
    """What one worker takes from: a queue, the partitions it owns, its prefetch buffer."""

    idle: deque[Event]

    def take(self) -> Message | None: ...


class Daemons(Protocol):
    """The run's background clock (engine.simulation): sleeps that do not keep a run
    that stops after N messages alive."""

    def sleep(self, delay: float) -> Event: ...

    def over(self) -> bool: ...


# Intakes -------------------------------------------------------------------------------
class SharedQueue:
    """Every worker of the group takes from one queue."""

    acks = False  # nothing to tell the queue once a message is processed

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.queues = [queue]

    def line(self, slot: int) -> Line:
        return self.queue

    def members(self, slots: Sequence[int]) -> None:
        """The workers serving now (a queue needs no assignment)."""

    def wake(self) -> None:
        self.queue.wake_all()

    def stop(self, slot: int) -> None:
        """Worker ``slot`` takes nothing more (it leaves, or it crashed)."""

    def start(self, slot: int) -> None:
        """Worker ``slot`` takes again (restarted after a crash)."""

    def drained(self, slot: int) -> bool:
        return True

    def drop(self, slot: int) -> list[Message]:
        """What worker ``slot`` held at the consumer beyond its service (nothing here)."""
        return []

    def done(self, slot: int, n: int) -> None:
        """``n`` messages processed (acked or given back) by worker ``slot``."""

    def waiting(self) -> int:
        q = self.queue
        return len(q.items) + len(q.blocked)

    def oldest(self) -> float:
        items = self.queue.items
        return items[0].arrived if items else math.nan

    def close(self, visit: Callable[[tuple[int, int, float, float, float, int]], None],
              gi: int) -> int:
        return 0


class Owned:
    """The partitions one worker owns, read as one FIFO line (oldest head first)."""

    def __init__(self) -> None:
        self.parts: list[Queue] = []
        self.idle: deque[Event] = deque()

    def take(self) -> Message | None:
        parts = self.parts
        if len(parts) == 1:
            return parts[0].take()
        # Oldest head first; a partition may give nothing (its head expired, or it is
        # down), then the next one is asked. Capacity-0 partitions (no line) come last:
        # they hand over a blocked sender.
        for p in sorted(parts, key=lambda p: p.items[0].arrived if p.items else math.inf):
            msg = p.take()
            if msg is not None:
                return msg
        return None


class Partitioned:
    """A group reading a partitioned topic: each partition has one owner among the
    workers serving now (round-robin, as ``TopicSpec.owners``); workers beyond the
    partitions own none and stay idle. Ownership moves at once when a worker joins or
    leaves (scaling); a crashed worker keeps its partitions until it is back."""

    acks = False

    def __init__(self, partitions: Sequence[Queue], owners: Callable[[int], list[int]]) -> None:
        self.partitions = list(partitions)
        self.queues = self.partitions
        self.owners = owners
        self.lines: dict[int, Owned] = {}

    def line(self, slot: int) -> Owned:
        if slot not in self.lines:
            self.lines[slot] = Owned()
        return self.lines[slot]

    def members(self, slots: Sequence[int]) -> None:
        for line in self.lines.values():
            line.parts = []
        own = self.owners(len(slots)) if slots else []
        for p, k in zip(self.partitions, own, strict=False):
            line = self.line(slots[k])
            line.parts.append(p)
            p.idle = line.idle  # a message arriving there wakes its owner
        for p in self.partitions[len(own):]:
            p.idle = deque()  # nobody serves it now
        # A worker that gained partitions while parked takes what waits there.
        for line in self.lines.values():
            while line.idle:
                msg = line.take()
                if msg is None:
                    break
                line.idle.popleft().succeed(msg)

    def wake(self) -> None:
        for line in self.lines.values():
            wake_parked(line.idle)

    def stop(self, slot: int) -> None:
        pass

    def start(self, slot: int) -> None:
        pass

    def drained(self, slot: int) -> bool:
        return True

    def drop(self, slot: int) -> list[Message]:
        return []

    def done(self, slot: int, n: int) -> None:
        pass

    def waiting(self) -> int:
        return sum(len(p.items) + len(p.blocked) for p in self.partitions)

    def oldest(self) -> float:
        heads = [p.items[0].arrived for p in self.partitions if p.items]
        return min(heads) if heads else math.nan

    def close(self, visit: Callable[[tuple[int, int, float, float, float, int]], None],
              gi: int) -> int:
        return 0


class _Credit:
    """One unit of prefetch credit parked at the broker: the queue hands the next message
    to it (through the same `idle` line as a parked worker)."""

    __slots__ = ("buffer",)
    triggered = False

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer

    def succeed(self, msg: Message) -> None:
        self.buffer.credits -= 1
        self.buffer.dispatch(msg)


class Buffer:
    """One consumer's prefetch window (RabbitMQ's basic.qos): at most ``prefetch``
    messages dispatched and not yet acknowledged. The broker dispatches whenever the
    consumer has credit and its line has a message; the message crosses the link (when
    there is one) into the buffer; each ack (after its trip back) restores a credit."""

    def __init__(self, env: simpy.Environment, upstream: Line, prefetch: int,
                 link: Callable[[Destination], Destination] | None,
                 ack: Callable[[], float] | None, rec: Recorder) -> None:
        self.env = env
        self.upstream = upstream
        self.prefetch = prefetch
        self.ack = ack
        self.idle: deque[Event] = deque()  # the worker, parked
        self.buffer: deque[tuple[Message, float]] = deque()
        self.outstanding = 0  # dispatched and not yet acknowledged
        self.credits = 0  # parked at the upstream line
        self.open = True
        self.wire: Destination = self if link is None else link(self)
        self._credit = _Credit(self)
        self._stage = rec.stages.append
        for _ in range(prefetch):
            self._pull()

    def _pull(self, _ev: Event | None = None) -> None:
        if not self.open or self.outstanding + self.credits >= self.prefetch:
            return
        msg = self.upstream.take()
        if msg is None:
            self.credits += 1
            self.upstream.idle.append(self._credit)  # type: ignore[arg-type]
        else:
            self.dispatch(msg)

    def dispatch(self, msg: Message) -> None:
        msg.left = self.env.now
        self.outstanding += 1
        self.wire.put(msg)

    def put(self, msg: Message) -> Event | None:
        """A message reaches the consumer."""
        now = self.env.now
        self._stage((msg.id, FETCH, msg.left, now))
        if self.idle:
            self.idle.popleft().succeed(msg)
        else:
            self.buffer.append((msg, now))
        return None

    def take(self) -> Message | None:
        if not self.buffer:
            return None
        msg, got = self.buffer.popleft()
        now = self.env.now
        if now > got:
            self._stage((msg.id, BUFFER, got, now))
        return msg

    def acked(self, n: int) -> None:
        self.outstanding -= n
        for _ in range(n):
            if self.ack is None:
                self._pull()
            else:
                self.env.timeout(self.ack()).callbacks.append(self._pull)

    def stop(self) -> None:
        """Take back the credits parked at the broker: nothing more is dispatched."""
        self.open = False
        idle = self.upstream.idle
        for _ in range(self.credits):
            idle.remove(self._credit)  # type: ignore[arg-type]
        self.credits = 0

    def start(self) -> None:
        self.open = True
        for _ in range(self.prefetch):
            self._pull()



class Prefetch:
    """Each worker is a consumer with its own prefetch window over the line it would
    otherwise take from (a shared queue, or the partitions it owns), and its own copy
    of the broker->consumer link, whose latency also carries the acks back."""

    acks = True

    def __init__(self, env: simpy.Environment, inner: SharedQueue | Partitioned, prefetch: int,
                 link: Callable[[int, Destination], Destination] | None,
                 ack: Callable[[], float] | None, rec: Recorder) -> None:
        self.env = env
        self.inner = inner
        self.queues = inner.queues
        self.prefetch = prefetch
        self.link = link
        self.ack = ack
        self.rec = rec
        self.buffers: dict[int, Buffer] = {}

    def line(self, slot: int) -> Buffer:
        if slot not in self.buffers:
            # Each consumer its own copy of the link (the model keeps them for the count).
            wire = None if self.link is None else functools.partial(self.link, slot)
            self.buffers[slot] = Buffer(self.env, self.inner.line(slot), self.prefetch, wire,
                                        self.ack, self.rec)
        return self.buffers[slot]

    def members(self, slots: Sequence[int]) -> None:
        self.inner.members(slots)

    def wake(self) -> None:
        for b in self.buffers.values():
            wake_parked(b.idle)

    def stop(self, slot: int) -> None:
        self.buffers[slot].stop()

    def start(self, slot: int) -> None:
        self.buffers[slot].start()

    def drained(self, slot: int) -> bool:
        return self.buffers[slot].outstanding == 0

    def drop(self, slot: int) -> list[Message]:
        """A crashed consumer's buffer: given back or lost with what it was serving."""
        b = self.buffers[slot]
        msgs = [m for m, _ in b.buffer]
        now = self.env.now
        for m, got in b.buffer:
            if now > got:
                b._stage((m.id, BUFFER, got, now))
        b.buffer.clear()
        b.outstanding -= len(msgs)
        return msgs

    def done(self, slot: int, n: int) -> None:
        self.buffers[slot].acked(n)

    def waiting(self) -> int:
        return self.inner.waiting() + sum(len(b.buffer) for b in self.buffers.values())

    def oldest(self) -> float:
        return self.inner.oldest()

    def close(self, visit: Callable[[tuple[int, int, float, float, float, int]], None],
              gi: int) -> int:
        n = 0
        for b in self.buffers.values():
            for m, _ in b.buffer:
                visit((m.id, m.queue, m.arrived, m.left, NAN, gi))
            n += len(b.buffer)
        return n


Intake = SharedQueue | Partitioned | Prefetch


# Serving -------------------------------------------------------------------------------
class Server:
    """How long a worker takes for what it holds: each message decoded in turn, then one
    service time (a batch shares it), times the worker's pace (a slow worker's factor).

    The decode steps are kept per worker (``steps``) until the settler logs those of the
    processings that count for their message (a duplicate processing's do not)."""

    def __init__(self, service: Callable[[], float], decode: Callable[[], float] | None,
                 pace: Sequence[float]) -> None:
        self.service = service
        self.decode = decode
        self.pace = list(pace)
        self.plain = decode is None and not any(p != 1.0 for p in self.pace)
        self.steps: dict[int, list[tuple[int, int, float, float]]] = {}

    def time(self, held: list[Message], slot: int, start: float) -> float:
        work = 0.0
        decode = self.decode
        if decode is not None:
            steps = self.steps.setdefault(slot, [])
            for m in held:
                d = decode()
                steps.append((m.id, DECODE, start + work, start + work + d))
                work += d
        pace = self.pace[slot] if slot < len(self.pace) else 1.0
        return work + self.service() * pace

    def taken(self, slot: int) -> list[tuple[int, int, float, float]]:
        """The decode steps of worker ``slot``'s current processing (now forgotten)."""
        return self.steps.pop(slot, [])


# Settling ------------------------------------------------------------------------------
def _hand_on(put: Callable[[Message], Event | None] | None, msgs: list[Message],
             finished: Callable[[tuple[int, float, int, int]], None], end: float,
             gi: int) -> Event | None:
    """Deliver processed messages here, or pass them on; the event to wait for when the
    next queue is full and blocks."""
    if put is None:
        for m in msgs:
            finished((m.id, end, DELIVERED, gi))
        return None
    blocked: Event | None = None
    for m in msgs:
        ev = put(m)
        if ev is not None:
            blocked = ev if blocked is None else blocked & ev  # type: ignore[operator]
    return blocked


class AutoAck:
    """Auto ack: the broker forgets a message once a worker has it. Processed, it goes on
    (or is delivered here); nothing fails, so nothing comes back.

    A message left its line when the worker took it, or (``prefetched``) when the broker
    dispatched it to the consumer's buffer (stamped on the message)."""

    begin = None  # nothing to do when a worker takes a message
    deliver: Callable[[Message, float, float], None] | None

    def __init__(self, env: simpy.Environment, gi: int, forward: Destination | None,
                 rec: Recorder, server: Server, prefetched: bool = False) -> None:
        self.env = env
        self.gi = gi
        self.server = server
        self.prefetched = prefetched
        self._stage = rec.stages.append
        self._put = None if forward is None else forward.put
        self._visit = rec.visits.append
        self._finished = rec.finished.append
        # The plain path's settle for one message (it costs a list and a loop less).
        self.deliver = (self._deliver if forward is None and not prefetched and server.plain
                        else None)

    def _deliver(self, m: Message, start: float, end: float) -> None:
        mid, gi = m.id, self.gi
        self._visit((mid, m.queue, m.arrived, start, end, gi))
        self._finished((mid, end, DELIVERED, gi))

    def done(self, slot: int, held: list[Message], start: float, end: float) -> Event | None:
        visit, gi, put, prefetched = self._visit, self.gi, self._put, self.prefetched
        if not self.server.plain:
            for row in self.server.taken(slot):
                self._stage(row)
        if put is None:  # the plain path: delivered here
            finished = self._finished
            for m in held:
                mid = m.id
                visit((mid, m.queue, m.arrived, m.left if prefetched else start, end, gi))
                finished((mid, end, DELIVERED, gi))
            return None
        for m in held:
            visit((m.id, m.queue, m.arrived, m.left if prefetched else start, end, gi))
        return _hand_on(put, held, self._finished, end, gi)

    def crashed(self, slot: int, held: list[Message], now: float, start: float) -> None:
        """Never called: a group that can crash settles with :class:`Acks`."""
        raise AssertionError("a plain group cannot crash")

    def holding(self, slot: int, held: list[Message],
                start: float) -> list[tuple[int, int, float, float]]:
        prefetched = self.prefetched
        return [(m.id, m.queue, m.arrived, m.left if prefetched else start) for m in held]

    def inside(self) -> int:
        return 0


class Acks:
    """Acknowledgements, failures, retries, dedup and crashes (docs/reliability.md).

    With ``manual`` acks a message is the broker's until the worker acks it: a failure
    gives it back (after the back-off) until ``max_attempts``, then it is dead-lettered; a
    crash gives back what the worker held; a visibility timeout gives it back while the
    worker still works on its copy (now *stale*: its ack is refused, as SQS only takes the
    latest receipt handle, so the message is settled by the worker it was handed to last;
    the stale processing's effects still count, which is how duplicates arise). With auto
    acks a failure or a crash loses the message. ``dedup`` acks a message whose effects
    were applied before (on this visit) without applying them again.

    What is logged follows the message's own path: a worker's visit ends when it is done
    with the message or when the broker takes the message back; work the path does not
    need (a stale copy's, or any processing of a message already settled) is logged as a
    repeat (``group = REPEAT - gi``: in the queue's length, not in waits or the message's
    breakdown). A worker notes where and
    since when each message waited when it takes it: the message object may be given back
    and taken by another worker while it still holds its copy.
    """

    deliver = None  # every processing settles through done()

    def __init__(
        self, env: simpy.Environment, gi: int, queues: Sequence[Queue],
        forward: Destination | None, rec: Recorder, server: Server, *, manual: bool,
        visibility: float | None, failure: float, coin: Callable[[], float],
        max_attempts: int | None, backoff: Backoff | None, dedup: bool, poison: float,
        prefetched: bool = False,
    ) -> None:
        self.env = env
        self.gi = gi
        self.server = server
        self.prefetched = prefetched
        self.queues: dict[int, ReliableQueue] = {}
        for q in queues:
            assert isinstance(q, ReliableQueue)  # the model builds them so
            self.queues[q.index] = q
        self._put = None if forward is None else forward.put
        self.manual = manual
        self.visibility = visibility
        self.failure = failure
        self.coin = coin
        self.max_attempts = INF if max_attempts is None else max_attempts
        self.backoff = backoff
        self.dedup = dedup
        self.poison = poison
        self.poisoned: dict[int, bool] = {}  # decided at a message's first processing here
        # Per message and visit (engine.core.key):
        self.tries: dict[tuple[int, int], int] = {}
        self.waited: dict[tuple[int, int], float] = {}  # last back-off (decorrelated)
        self.applied: set[tuple[int, int]] = set()  # processed to the end: effects applied
        self.cut: set[tuple[int, int]] = set()  # cut short by a crash (effects may remain)
        self.duplicated: set[tuple[int, int]] = set()  # counted once each in `duplicates`
        self.backing_off: dict[int, tuple[Message, int]] = {}
        # Per worker, by message id: what it took (message, arrived, left, queue), its
        # visibility timers, and when the broker took a message back from it (stale).
        self.took: dict[int, dict[int, tuple[Message, float, float, int]]] = {}
        self.tokens: dict[int, dict[int, Event]] = {}
        self.stale: dict[int, dict[int, float]] = {}
        self._visit = rec.visits.append
        self._finished = rec.finished.append
        self._event = rec.events.append
        self._stage = rec.stages.append
        self.repeat = REPEAT - gi

    def begin(self, slot: int, held: list[Message], start: float) -> None:
        """Note each message taken; acknowledge at once the ones dedup has seen."""
        took = self.took.setdefault(slot, {})
        tokens = self.tokens.setdefault(slot, {})
        stale = self.stale.setdefault(slot, {})
        event, gi, vis = self._event, self.gi, self.visibility
        keep = []
        for m in held:
            mid, k = m.id, key(m)
            self.tries[k] = self.tries.get(k, 0) + 1
            event((mid, ATTEMPT, gi, start))
            if self.poison > 0 and mid not in self.poisoned:
                self.poisoned[mid] = self.coin() < self.poison
            left = m.left if self.prefetched else start
            if self.dedup and k in self.applied:
                # Seen before: acknowledged without processing, which settles it.
                event((mid, DISCARDED, gi, start))
                q = self.queues[m.queue]
                if self._settle(m, q):
                    self._visit((mid, m.queue, m.arrived, left, start, gi))
                    _hand_on(self._put, [m if self._put is None else next_visit(m)],
                             self._finished, start, gi)
                else:
                    self._visit((mid, m.queue, m.arrived, left, start, self.repeat))
                continue
            took[mid] = (m, m.arrived, left, m.queue)
            stale.pop(mid, None)
            if vis is not None:
                token = tokens[mid] = self.env.timeout(vis, (slot, m))
                token.callbacks.append(self._visibility_over)
            keep.append(m)
        held[:] = keep

    def done(self, slot: int, held: list[Message], start: float, end: float) -> Event | None:
        took, tokens, stale = self.took[slot], self.tokens[slot], self.stale[slot]
        event, gi, p, coin = self._event, self.gi, self.failure, self.coin
        steps = {row[0]: row for row in self.server.taken(slot)}
        out = []
        for m in held:
            mid = m.id
            _, arrived, left, qi = took.pop(mid)
            tokens.pop(mid, None)
            back = stale.pop(mid, None)  # when the broker took it back, if it did
            q = self.queues[qi]
            bad = self.poison > 0 and self.poisoned.get(mid, False)
            if bad or (p > 0 and coin() < p):
                event((mid, FAILED, gi, end))
                if back is not None:
                    self._repeat(mid, qi, back, back, end, steps)
                    continue  # the broker has taken it back already
                self._log(mid, qi, arrived, left, end, steps)
                if self.manual:
                    self._give_back(m, q, failed=True)
                elif q.settle(m, LOST, NOWHERE):  # auto ack: the broker deleted it
                    event((mid, CRASH_LOST, gi, end))
                continue
            if self.visibility is not None or (self.cut and key(m) in self.cut):
                self._applied(m)  # (only a copy given back can be processed twice)
            if back is not None:  # stale: its ack is refused
                self._repeat(mid, qi, back, back, end, steps)
            elif self._settle(m, q):
                self._log(mid, qi, arrived, left, end, steps)
                out.append(m if self._put is None else next_visit(m))
            else:
                self._repeat(mid, qi, arrived, left, end, steps)
        return _hand_on(self._put, out, self._finished, end, gi)

    def _log(self, mid: int, qi: int, arrived: float, left: float, end: float,
             steps: dict[int, tuple[int, int, float, float]]) -> None:
        """A visit on the message's path, with its decode step."""
        self._visit((mid, qi, arrived, left, end, self.gi))
        row = steps.get(mid)
        if row is not None:
            self._stage(row)

    def _repeat(self, mid: int, qi: int, arrived: float, left: float, end: float,
                steps: dict[int, tuple[int, int, float, float]]) -> None:
        """Work on a copy whose fate is decided elsewhere: logged apart, decode and all."""
        self._visit((mid, qi, arrived, left, end, self.repeat))

    def crashed(self, slot: int, held: list[Message], now: float, start: float) -> None:
        """Worker ``slot`` crashed holding ``held``: given back (manual) or lost."""
        took, tokens, stale = (self.took.setdefault(slot, {}), self.tokens.setdefault(slot, {}),
                               self.stale.setdefault(slot, {}))
        gi = self.gi
        # Decode steps cut short end at the crash.
        steps = {row[0]: (row[0], row[1], row[2], min(row[3], now))
                 for row in self.server.taken(slot) if row[2] < now}
        for m in held:
            mid, k = m.id, key(m)
            entry = took.pop(mid, None)
            tokens.pop(mid, None)
            back = stale.pop(mid, None)
            if entry is None:  # never started: handed over at the crash, or prefetched
                arrived, qi = m.arrived, m.queue
                left = m.left if self.prefetched else now
            else:
                _, arrived, left, qi = entry
            if back is not None:
                self._repeat(mid, qi, back, back, now, steps)
                continue  # taken back already: its visit ended then
            q = self.queues[qi]
            if k in q.settled:
                self._repeat(mid, qi, arrived, left, now, steps)
                continue
            self._log(mid, qi, arrived, left, now, steps)
            if self.manual:
                if entry is not None and not self.dedup:
                    self.cut.add(k)
                self._give_back(m, q, failed=False)
            elif q.settle(m, LOST, NOWHERE):
                self._event((mid, CRASH_LOST, gi, now))

    def _visibility_over(self, ev: Event) -> None:
        slot, msg = ev.value  # type: ignore[misc]  # the timeout's value
        tokens = self.tokens[slot]
        if tokens.get(msg.id) is not ev:
            return  # finished, or crashed, in time
        del tokens[msg.id]
        now = self.env.now
        self.stale[slot][msg.id] = now
        # For the broker the message left this worker now: its visit ends here (the
        # worker's service goes on, and is logged as a service).
        _, arrived, left, qi = self.took[slot][msg.id]
        q = self.queues[qi]
        if key(msg) in q.settled:  # a duplicate processing ran out of time: no fate to change
            self._visit((msg.id, qi, arrived, left, now, self.repeat))
            return
        self._visit((msg.id, qi, arrived, left, now, self.gi))
        self._give_back(msg, q, failed=False)

    def _give_back(self, msg: Message, q: ReliableQueue, failed: bool) -> None:
        """Requeue (after the back-off, for a failure), or dead-letter after max_attempts."""
        k = key(msg)
        if k in q.settled:
            return
        tries = self.tries.get(k, 0)
        if tries >= self.max_attempts:
            self.tries.pop(k, None)
            self.waited.pop(k, None)
            q.to_dead_letter(msg)
            return
        wait = 0.0
        if failed and self.backoff is not None:
            wait = self.backoff.delay(tries, self.waited.get(k, 0.0))
            self.waited[k] = wait
        if wait <= 0:
            q.requeue(msg)
            return
        self.backing_off[msg.id] = (msg, q.index)
        ev = self.env.timeout(wait, msg)
        ev.callbacks.append(self._retry)

    def _retry(self, ev: Event) -> None:
        msg: Message = ev.value  # type: ignore[assignment]
        _, qi = self.backing_off.pop(msg.id)
        q = self.queues[qi]
        if key(msg) not in q.settled:
            q.requeue(msg)

    def _applied(self, msg: Message) -> None:
        """A processing ran to its end: its effects are applied (a second time: a
        duplicate, or discarded by dedup)."""
        mid, k, gi, now = msg.id, key(msg), self.gi, self.env.now
        if k in self.applied:
            if self.dedup:
                self._event((mid, DISCARDED, gi, now))
            elif k not in self.duplicated:
                self.duplicated.add(k)
                self._event((mid, DUPLICATE, gi, now))
            return
        if k in self.cut:  # the crashed attempt's effects were applied once already
            self.duplicated.add(k)
            self._event((mid, DUPLICATE, gi, now))
        self.applied.add(k)

    def _settle(self, msg: Message, q: ReliableQueue) -> bool:
        """The ack: True when it decides the message's outcome (delivered, or passed on)."""
        k = key(msg)
        if k in q.settled:
            return False
        q.settled.add(k)
        self.tries.pop(k, None)
        self.waited.pop(k, None)
        if self.visibility is None:  # no copy can come back: what was kept for it can go
            self.poisoned.pop(msg.id, None)
            self.cut.discard(k)
            self.applied.discard(k)
        return True

    def holding(self, slot: int, held: list[Message],
                start: float) -> list[tuple[int, int, float, float]]:
        """What worker ``slot`` holds that is still the broker's to account for."""
        took, stale = self.took.get(slot, {}), self.stale.get(slot, {})
        out = []
        for m in held:
            entry = took.get(m.id)
            if entry is None or m.id in stale:
                continue
            _, arrived, left, qi = entry
            if key(m) not in self.queues[qi].settled:
                out.append((m.id, qi, arrived, left))
        return out

    def inside(self) -> int:
        """Messages waiting out a back-off."""
        return sum(key(m) not in self.queues[qi].settled
                   for m, qi in self.backing_off.values())


Settler = AutoAck | Acks


class CrashPlan:
    """How a group's workers crash: each at random (up-time ``mtbf``, then down for
    ``mttr``), and/or all of them at the scheduled ``at`` times."""

    def __init__(self, mtbf: Callable[[], float] | None, mttr: Callable[[], float] | None,
                 at: Sequence[tuple[float, float]] | None) -> None:
        self.mtbf = mtbf
        self.mttr = mttr
        self.at = list(at or [])


class Replier:
    """The end of the line for a group whose messages may come from senders that wait.

    A plain message is delivered on the spot; a request is delivered when its reply
    reaches the sender (after the sender's `reply` latency), which then learns of it.
    """

    def __init__(self, env: simpy.Environment, group: int, rec: Recorder) -> None:
        self.env = env
        self.group = group
        self.in_transit = 0
        self._finished = rec.finished.append
        self._stage = rec.stages.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        reply_to = getattr(msg, "reply_to", None)
        if reply_to is None:
            self._finished((msg.id, now, DELIVERED, self.group))
            return None
        back = now + reply_to.reply_latency()
        self._stage((msg.id, REPLY, now, back))
        self.in_transit += 1
        ev = self.env.timeout(back - now, msg)
        ev.callbacks.append(self._arrive)
        return None

    def _arrive(self, ev: Event) -> None:
        self.in_transit -= 1
        msg: Request = ev.value  # type: ignore[assignment]  # the timeout's value
        self._finished((msg.id, self.env.now, DELIVERED, self.group))
        msg.reply_to.acked(msg)

    def inside(self) -> int:
        return self.in_transit


# The group -----------------------------------------------------------------------------
class Group:
    """``count`` workers running the one loop; the group answers for its membership
    (scaling), its crashes and what its workers hold at the end."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, rec: Recorder, *,
        intake: Intake, server: Server, settler: Settler, count: int, batch: int = 1,
        crashes: CrashPlan | None = None, log_workers: bool = False,
        log_services: bool = False, daemons: Daemons | None = None,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.intake = intake
        self.server = server
        self.settler = settler
        self.batch = batch
        self.crashes = crashes
        self.daemons = daemons
        self.held: list[list[Message]] = []
        self.started: list[float] = []
        self.parked: list[Event | None] = []
        self.up: list[bool] = []
        self.leaving: list[bool] = []
        self.gone: list[bool] = []
        self.procs: list[simpy.Process] = []
        # Scaling: workers asked to leave (each leaves between two messages, never in the
        # middle of one), workers decided but not yet started, workers serving or idle.
        self.retire = [0]
        self.starting = 0
        self.members = 0
        self.down = 0
        self._log_workers = log_workers
        self._workers = rec.workers.append
        self._services = rec.batches.append if log_services or batch > 1 else None
        self._event = rec.events.append
        self._visit = rec.visits.append
        for _ in range(count):
            self._start_worker()
        intake.members(self.serving())
        if log_workers:
            self._log()
        if crashes is not None and crashes.at:
            env.process(self._scheduled_crashes(crashes.at))

    # Membership ------------------------------------------------------------------------
    def serving(self) -> list[int]:
        """The workers that have joined and not left."""
        return [s for s in range(len(self.gone)) if not self.gone[s]]

    @property
    def size(self) -> int:
        """Workers the group will have once pending starts and departures are done."""
        return self.members + self.starting - self.retire[0]

    def _log(self) -> None:
        if self._log_workers:
            self._workers((self.env.now, self.index, self.members - self.down, self.starting))

    def _start_worker(self) -> None:
        slot = len(self.held)
        self.held.append([])
        self.started.append(NAN)
        self.parked.append(None)
        self.up.append(True)
        self.leaving.append(False)
        self.gone.append(False)
        self.members += 1
        self.intake.line(slot)
        self.procs.append(self.env.process(self._work(slot)))
        c = self.crashes
        if c is not None and c.mtbf is not None and c.mttr is not None:
            self.env.process(self._random_crashes(slot, c.mtbf, c.mttr))

    def resize(self, wanted: int, delay: float = 0.0) -> None:
        """Scale to ``wanted`` workers; new ones start serving after ``delay``."""
        size = self.size
        if wanted == size:
            return
        retire = self.retire
        if wanted > size:
            more = wanted - size
            kept = min(more, retire[0])  # not gone yet: ask them to stay
            retire[0] -= kept
            more -= kept
            if more == 0:
                return
            if delay > 0:
                self.starting += more
                self._log()
                ev = self.env.timeout(delay, more)
                ev.callbacks.append(self._started)
            else:
                self._add(more)
            return
        # Fewer: workers still starting up cannot be cancelled here; retire online ones.
        fewer = min(size - wanted, self.members - retire[0])
        if fewer <= 0:
            return
        retire[0] += fewer
        # Wake the idle workers so that idle ones leave now (workers of other groups on
        # the same queue wake too, find nothing to do and park again).
        self.intake.wake()

    def _started(self, ev: Event) -> None:
        n: int = ev.value  # type: ignore[assignment]
        self.starting -= n
        self._add(n)

    def _add(self, n: int) -> None:
        for _ in range(n):
            self._start_worker()
        self.intake.members(self.serving())
        self._log()

    def _leave(self, slot: int) -> None:
        self.gone[slot] = True
        self.members -= 1
        self.intake.members(self.serving())
        self._log()

    # The worker ------------------------------------------------------------------------
    def _work(self, slot: int):  # type: ignore[no-untyped-def]
        env = self.env
        line = self.intake.line(slot)
        take, idle = line.take, line.idle
        held, started, parked = self.held[slot], self.started, self.parked
        size = self.batch
        begin, done = self.settler.begin, self.settler.done
        serve, service = self.server.time, self.server.service
        intake = self.intake
        acks = intake.acks
        # The plain path (auto ack, no decode, no prefetch) skips the optional steps.
        general = begin is not None or acks or not self.server.plain
        services, gi = self._services, self.index
        deliver = self.settler.deliver if size == 1 and services is None else None
        retire, leaving = self.retire, self.leaving
        while True:
            try:
                if retire[0] or leaving[slot]:  # scaling down: leave between messages
                    if not leaving[slot]:
                        retire[0] -= 1
                        leaving[slot] = True
                        intake.stop(slot)
                    if intake.drained(slot):
                        self._leave(slot)
                        return
                msg = take()
                if msg is None:
                    ev = Event(env)
                    idle.append(ev)
                    parked[slot] = ev
                    msg = yield ev
                    parked[slot] = None
                    if msg is None:  # woken so that it can leave (scaling down)
                        continue
                held.append(msg)
                if size > 1:
                    while len(held) < size:
                        more = take()
                        if more is None:
                            break
                        held.append(more)
                start = env.now
                started[slot] = start
                if general:
                    taken = len(held)
                    if begin is not None:
                        begin(slot, held, start)  # dedup may ack some at once
                        if not held:
                            if acks:
                                intake.done(slot, taken)
                            continue
                    yield env.timeout(serve(held, slot, start))
                    end = env.now
                    if services is not None:
                        services((gi, start, end, len(held)))
                    if acks:
                        intake.done(slot, taken)
                else:
                    yield env.timeout(service())
                    end = env.now
                    if deliver is not None:  # one message, delivered here
                        deliver(msg, start, end)
                        held.clear()
                        continue
                    if services is not None:
                        services((gi, start, end, len(held)))
                blocked = done(slot, held, start, end)
                held.clear()
                if blocked is not None:  # downstream full: the worker waits for room
                    yield blocked
            except Interrupt as crash:
                yield from self._down(slot, float(crash.cause))  # type: ignore[arg-type]

    def crash(self, slot: int, down: float) -> None:
        """Worker ``slot`` fails now and is back after ``down`` seconds."""
        self.up[slot] = False
        self.procs[slot].interrupt(down)

    def _down(self, slot: int, down: float):  # type: ignore[no-untyped-def]
        env, now = self.env, self.env.now
        held = self.held[slot]
        ev = self.parked[slot]
        start = self.started[slot]
        if ev is not None:  # crashed while idle
            self.parked[slot] = None
            if ev.triggered:  # a message was handed over at this very instant
                if ev.value is not None:
                    held.append(ev.value)  # type: ignore[arg-type]
                start = now
            else:
                self.intake.line(slot).idle.remove(ev)
        first = held[0].id if held else -1
        if held:
            self.settler.crashed(slot, held, now, start)
            if self._services is not None and start < now:
                self._services((self.index, start, now, len(held)))
        n_held = len(held)
        held.clear()
        self.intake.stop(slot)
        dropped = self.intake.drop(slot)
        if self.intake.acks and n_held:
            self.intake.done(slot, n_held)
        if dropped:
            self.settler.crashed(slot, dropped, now, math.nan)
        self._event((first, CRASH, self.index, now))
        self.down += 1
        self._log()
        yield env.timeout(down)
        self.up[slot] = True
        self.down -= 1
        self._log()
        self._event((-1, RESTART, self.index, env.now))
        if not self.leaving[slot]:
            self.intake.start(slot)

    def _random_crashes(self, slot: int, mtbf: Callable[[], float],
                        mttr: Callable[[], float]):  # type: ignore[no-untyped-def]
        daemons = self.daemons
        while not self.gone[slot]:
            wait = mtbf()
            yield daemons.sleep(wait) if daemons is not None else self.env.timeout(wait)
            if self.gone[slot] or (daemons is not None and daemons.over()):
                return
            down = mttr()
            if self.up[slot]:
                self.crash(slot, down)
                # Up-time counts from the restart: wait the repair out first.
                yield self.env.timeout(down)

    def _scheduled_crashes(self, at: list[tuple[float, float]]):  # type: ignore[no-untyped-def]
        env = self.env
        for t, down in at:
            if t > env.now:
                yield env.timeout(t - env.now)
            for slot, up in enumerate(self.up):
                if up and not self.gone[slot]:
                    self.crash(slot, down)

    # What it holds ---------------------------------------------------------------------
    def busy(self) -> int:
        """Workers serving now."""
        return sum(1 for h in self.held if h)

    def backlog(self) -> int:
        """Messages not yet acknowledged: waiting (or at the door, or in a prefetch
        buffer) plus in service, as a broker's ready + unacked count."""
        return self.intake.waiting() + sum(len(h) for h in self.held)

    def lag(self) -> float:
        """Age of the oldest message waiting (0 when none)."""
        oldest = self.intake.oldest()
        return 0.0 if math.isnan(oldest) else self.env.now - oldest

    def close(self) -> int:
        """Log the services still running at the end; how many messages the group holds
        (in service, in prefetch buffers, waiting out a back-off)."""
        n = 0
        gi = self.index
        for slot, held in enumerate(self.held):
            if not held:
                continue
            start = self.started[slot]
            rows = self.settler.holding(slot, held, start)
            for mid, qi, arrived, left in rows:
                self._visit((mid, qi, arrived, left, NAN, gi))
            n += len(rows)
            if self._services is not None:
                self._services((gi, start, NAN, len(held)))
        n += self.intake.close(self._visit, gi)
        return n + self.settler.inside()
