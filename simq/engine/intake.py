"""Where a consumer group's workers take from, an *intake*: one queue all workers share
(:class:`SharedQueue`), the partitions of a topic each worker owns (:class:`Partitioned`,
reassigned when the group's membership changes), or each worker's own prefetch buffer fed
over a link (:class:`Prefetch`, in front of either). The worker loop is engine.worker."""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.queue import Queue, wake_parked
from simq.engine.rebalance import Rebalance
from simq.engine.recorder import BUFFER, FETCH, JOIN, Recorder

__all__ = ["Buffer", "Intake", "Line", "Owned", "Partitioned", "Prefetch", "SharedQueue"]

NAN = math.nan


class Line(Protocol):
    """What one worker takes from: a queue, the partitions it owns, its prefetch buffer."""

    idle: deque[Event]

    def take(self) -> Message | None: ...


class SharedQueue:
    """Every worker of the group takes from one queue."""

    acks = False  # nothing to tell the queue once a message is processed

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.queues = [queue]

    def line(self, slot: int) -> Line:
        return self.queue

    def members(self, slots: Sequence[int], trigger: int = JOIN,
                cause: float = math.nan) -> None:
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
    members (workers beyond the partitions own none and stay idle).

    Without a rebalance protocol, ownership moves at once when a worker joins or leaves
    (scaling), round-robin as ``TopicSpec.owners``, and a crashed worker keeps its
    partitions until it is back. With one (:class:`~simq.engine.rebalance.Rebalance`),
    the protocol decides which partitions pause while ownership moves, and for how long;
    the group tells it of crashed members once their session times out."""

    acks = False

    def __init__(self, partitions: Sequence[Queue], owners: Callable[[int], list[int]],
                 rebalance: Callable[[Callable[[list[int | None]], None]], Rebalance]
                 | None = None) -> None:
        self.partitions = list(partitions)
        self.queues = self.partitions
        self.owners = owners
        self.lines: dict[int, Owned] = {}
        self.rebalance = None if rebalance is None else rebalance(self.serve)
        self._started = False

    def line(self, slot: int) -> Owned:
        if slot not in self.lines:
            self.lines[slot] = Owned()
        return self.lines[slot]

    def members(self, slots: Sequence[int], trigger: int = JOIN,
                cause: float = math.nan) -> None:
        """The group's members are now ``slots``; ``trigger`` (a recorder ``Trigger``) and
        the time of its cause matter only to a rebalance protocol."""
        rb = self.rebalance
        if rb is None:
            own = self.owners(len(slots)) if slots else []
            self.serve([slots[k] for k in own] + [None] * (len(self.partitions) - len(own)))
        elif not self._started:
            rb.initial(slots)
        else:
            rb.change(slots, trigger, cause)
        self._started = True

    def serve(self, owner: Sequence[int | None]) -> None:
        """Partition ``p`` is served by worker ``owner[p]`` from now on (None: by nobody)."""
        for line in self.lines.values():
            line.parts = []
        for p, k in zip(self.partitions, owner, strict=True):
            if k is None:
                p.idle = deque()  # nobody serves it now
            else:
                line = self.line(k)
                line.parts.append(p)
                p.idle = line.idle  # a message arriving there wakes its owner
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
        if self.rebalance is not None:
            self.rebalance.close()
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

    def members(self, slots: Sequence[int], trigger: int = JOIN,
                cause: float = math.nan) -> None:
        self.inner.members(slots, trigger, cause)

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
        n = self.inner.close(visit, gi)
        for b in self.buffers.values():
            for m, _ in b.buffer:
                visit((m.id, m.queue, m.arrived, m.left, NAN, gi))
            n += len(b.buffer)
        return n


Intake = SharedQueue | Partitioned | Prefetch
