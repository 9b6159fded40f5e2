"""Topics: fan-out to subscriber queues, and partitioned logs read by consumer groups."""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Callable, Sequence

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.queue import Queue
from simq.record import Recorder

__all__ = ["FanOut", "MergedPartitions", "Partition", "Partitioner", "key_picker"]


class FanOut:
    """Copies each message into every subscriber queue (pub/sub).

    The first subscriber gets the message itself; every other one a copy with its own id,
    logged with its parent. Copies are messages like any other, so each ends in exactly
    one outcome and conservation stays exact (``produced`` counts them, ``copies`` says
    how many there were).
    """

    def __init__(self, env: simpy.Environment, subscribers: Sequence[Destination],
                 ids: itertools.count, rec: Recorder) -> None:
        self.env = env
        self.subscribers = list(subscribers)
        self.ids = ids
        self._created = rec.created
        self._copy = rec.copies.append

    def put(self, msg: Message) -> Event | None:
        origin = msg.origin
        blocked = []
        first, *rest = self.subscribers
        for dest in rest:
            copy = Message(next(self.ids), msg.sent, msg.size, origin)
            self._created.append((origin, msg.sent, msg.size))
            self._copy((copy.id, msg.id))
            ev = dest.put(copy)
            if ev is not None:
                blocked.append(ev)
        ev = first.put(msg)
        if ev is not None:
            blocked.append(ev)
        if not blocked:
            return None
        return blocked[0] if len(blocked) == 1 else self.env.all_of(blocked)


class Partition(Queue):
    """One partition of a topic: a queue that stamps its index on what it takes in, so a
    consumer reading several partitions knows where each message waited."""

    items: deque[Message]  # never a priority line: topics have no discipline

    def put(self, msg: Message) -> Event | None:
        msg.queue = self.index
        return super().put(msg)


def key_picker(key: str, partitions: int, probabilities: Sequence[float],
               uniform: Callable[[], float]) -> Callable[[], int]:
    """A zero-argument chooser of the partition for the next message."""
    if key == "round-robin":
        return itertools.cycle(range(partitions)).__next__
    if key == "uniform":
        return lambda: min(int(uniform() * partitions), partitions - 1)
    cumulative = list(itertools.accumulate(probabilities))
    cumulative[-1] = float("inf")
    return lambda: bisect.bisect_right(cumulative, uniform())


class Partitioner:
    """Sends each message to one partition, chosen by its key distribution."""

    def __init__(self, partitions: Sequence[Partition], pick: Callable[[], int]) -> None:
        self.partitions = list(partitions)
        self.pick = pick

    def put(self, msg: Message) -> Event | None:
        return self.partitions[self.pick()].put(msg)


class MergedPartitions:
    """The partitions one consumer owns, read as one FIFO line (oldest head first).

    The partitions share one list of parked workers, so a message arriving at any of them
    wakes the consumer.
    """

    def __init__(self, partitions: Sequence[Partition]) -> None:
        self.partitions = list(partitions)
        self.idle: deque[Event] = deque()
        for p in self.partitions:
            p.idle = self.idle
        self.index = -1  # each message carries its partition's index

    def take(self) -> Message | None:
        best = None
        for p in self.partitions:
            if p.items and (best is None or p.items[0].arrived < best.items[0].arrived):
                best = p
        if best is None:
            for p in self.partitions:  # capacity-0 partitions hand over blocked senders
                if p.blocked:
                    return p.take()
            return None
        return best.take()
