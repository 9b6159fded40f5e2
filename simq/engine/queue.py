"""A broker queue: FIFO waiting line, optional bound, an overflow policy."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator

import simpy
from simpy.events import Event

from simq.engine.core import Message
from simq.record import DROPPED, Recorder

__all__ = ["Levels", "Queue"]

NAN = math.nan


class Queue:
    """Messages wait in a deque; idle workers park on a bare event.

    An arriving message is handed straight to a parked worker when there is one (two heap
    events per message per station, about twice as fast as ``simpy.Store``); otherwise it
    waits in line, or meets the overflow policy when the line is full.
    """

    def __init__(
        self, env: simpy.Environment, index: int, name: str, capacity: float, overflow: str,
        rec: Recorder,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.capacity = capacity
        self.overflow = overflow
        self.items: deque[Message] | Levels = deque()
        self.idle: deque[Event] = deque()  # parked workers
        self.blocked: deque[tuple[Message, Event]] = deque()  # senders waiting for room
        # Each time the line reaches a new length: [time, length, when it was next empty
        # (NaN until then)]. Increasing in time and length, so the longest line up to any
        # time t is the last entry at or before t; streaming statistics read this instead
        # of keeping every visit.
        self.peaks: list[list[float]] = [[0.0, 0, 0.0]]
        self.peak = 0
        self._draining = False  # some entry waits for the line to empty
        self._finished = rec.finished.append
        self._visit = rec.visits.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        msg.arrived = now
        if self.idle:
            self.idle.popleft().succeed(msg)
            return None
        items = self.items
        if len(items) < self.capacity:
            items.append(msg)
            if len(items) > self.peak:
                self.peak = len(items)
                self.peaks.append([now, self.peak, NAN])
                self._draining = True
            return None
        if self.overflow == "block":
            ev = Event(self.env)
            self.blocked.append((msg, ev))
            return ev
        if self.overflow == "drop-oldest" and self.items:
            old = self.items.popleft()
            self._visit((old.id, self.index, old.arrived, now, NAN, -1))
            self._finished((old.id, now, DROPPED, self.index))
            self.items.append(msg)
            return None
        self._finished((msg.id, now, DROPPED, self.index))
        return None

    def take(self) -> Message | None:
        """The next message for a free worker, or None when there is none."""
        items = self.items
        if items:
            msg = items.popleft()
            if self.blocked:
                self._admit()
            elif not items and self._draining:
                self._drained()
            return msg
        if self.blocked:  # capacity 0: the blocked sender hands over directly
            msg, ev = self.blocked.popleft()
            msg.arrived = self.env.now
            ev.succeed()
            return msg
        return None

    def _admit(self) -> None:
        msg, ev = self.blocked.popleft()
        msg.arrived = self.env.now
        self.items.append(msg)
        ev.succeed()

    def count_inside(self) -> int:
        """How many messages this queue holds (in line or at the door), for conservation."""
        return len(self.items) + len(self.blocked)

    def _drained(self) -> None:
        now = self.env.now
        for entry in reversed(self.peaks):
            if entry[2] == entry[2]:  # already drained (not NaN): so is everything before
                break
            entry[2] = now
        self._draining = False

    def reset_peak(self) -> None:
        """Start the record of new lengths again from the length now (the window opens)."""
        now = self.env.now
        self.peak = len(self.items)
        self.peaks = [[now, self.peak, NAN if self.peak else now]]
        self._draining = self.peak > 0

    def waiting(self) -> list[Message]:
        """Messages still in line or blocked at the door (for the end-of-run count)."""
        return list(self.items) + [m for m, _ in self.blocked]


class Levels:
    """A priority waiting line with the deque operations `Queue` uses: `append` files a
    message under its priority, `popleft` takes the oldest of the highest priority.

    Non-preemptive by construction: a message in service is no longer in the line.
    """

    def __init__(self, priority_of: Callable[[Message], int]) -> None:
        self.priority_of = priority_of
        self._lines: dict[int, deque[Message]] = {}
        self._order: list[int] = []  # priorities present, highest first
        self._n = 0

    def append(self, msg: Message) -> None:
        p = self.priority_of(msg)
        line = self._lines.get(p)
        if line is None:
            line = self._lines[p] = deque()
            self._order = sorted(self._lines, reverse=True)
        line.append(msg)
        self._n += 1

    def popleft(self) -> Message:
        for p in self._order:
            line = self._lines[p]
            if line:
                self._n -= 1
                return line.popleft()
        raise IndexError("pop from an empty line")

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> Message:
        """Only ``[0]``: the oldest message waiting, whatever its priority (its age is the
        queue's lag)."""
        heads = [line[0] for line in self._lines.values() if line]
        if i != 0 or not heads:
            raise IndexError(i)
        return min(heads, key=lambda m: m.arrived)

    def __bool__(self) -> bool:
        return self._n > 0

    def __iter__(self) -> Iterator[Message]:
        for p in self._order:
            yield from self._lines[p]
