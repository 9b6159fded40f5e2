"""Topics: fan-out to subscriber queues, and partitioned logs spread by key (the groups
that read partitions are in engine.intake)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.order import Sequencer
from simq.engine.recorder import Recorder

__all__ = ["FanOut", "Partitioner", "key_picker"]


class FanOut:
    """Copies each message into every subscriber queue (pub/sub).

    The first subscriber gets the message itself; every other one a copy with its own id,
    logged with its parent. Copies are messages like any other, so each ends in exactly
    one outcome and conservation stays exact (``produced`` counts them, ``copies`` says
    how many there were).
    """

    def __init__(self, env: simpy.Environment, subscribers: Sequence[Destination],
                 ids: itertools.count[int], rec: Recorder, order: Sequencer | None = None
                 ) -> None:
        self.env = env
        self.order = order
        self.subscribers = list(subscribers)
        self.ids = ids
        self._created = rec.created
        self._copy = rec.copies.append

    def put(self, msg: Message) -> Event | None:
        origin = msg.origin
        blocked = []
        first, *rest = self.subscribers
        deadline = msg.deadline
        ordered = self.order is not None and msg.stream >= 0
        for branch, dest in enumerate(rest, start=1):
            copy = Message(next(self.ids), msg.sent, msg.size, origin)
            copy.deadline = deadline
            self._created.append((origin, msg.sent, msg.size))
            self._copy((copy.id, msg.id))
            if ordered:
                assert self.order is not None
                self.order.copy(copy, msg, branch)
            ev = dest.put(copy)
            if ev is not None:
                blocked.append(ev)
        ev = first.put(msg)
        if ev is not None:
            blocked.append(ev)
        if not blocked:
            return None
        return blocked[0] if len(blocked) == 1 else self.env.all_of(blocked)


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
    """Sends each message to one partition: a message with a key to the key's (its
    murmur2 hash mod the partitions, engine.order), one without by the topic's key
    distribution."""

    def __init__(self, partitions: Sequence[Destination], pick: Callable[[], int],
                 order: Sequencer | None = None) -> None:
        self.partitions = list(partitions)
        self.pick = pick
        self.order = order

    def put(self, msg: Message) -> Event | None:
        key = msg.key
        if key >= 0 and self.order is not None:
            return self.partitions[self.order.partition(key, len(self.partitions))].put(msg)
        return self.partitions[self.pick()].put(msg)

