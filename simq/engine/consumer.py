"""A consumer group: `count` workers sharing one queue."""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.queue import Queue
from simq.record import DELIVERED, Recorder

__all__ = ["ConsumerGroup"]


class ConsumerGroup:
    """Each worker is one long-lived process: take, serve, forward, repeat."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, queue: Queue, count: int,
        service: Callable[[], float], forward: Destination | None, rec: Recorder,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.queue = queue
        self.count = count
        self.service = service
        self.forward = forward
        self.in_service: list[Message | None] = [None] * count
        self.started = [math.nan] * count
        self._visit = rec.visits.append
        self._finished = rec.finished.append
        # Scaling down (engine/scaling.py): workers asked to leave; each leaves when it
        # next finishes a message, never in the middle of one, and calls on_leave.
        self.retire = [0]
        self.on_leave: Callable[[int], None] | None = None
        for slot in range(count):
            env.process(self._work(slot))

    def add_worker(self) -> None:
        """Start one more worker (scaling up)."""
        self.in_service.append(None)
        self.started.append(math.nan)
        self.env.process(self._work(len(self.in_service) - 1))

    def _work(self, slot: int):  # type: ignore[no-untyped-def]
        env = self.env
        take = self.queue.take
        idle = self.queue.idle
        service = self.service
        visit = self._visit
        qi, gi = self.queue.index, self.index
        put = self.forward.put if self.forward is not None else None
        finished = self._finished
        in_service, started = self.in_service, self.started
        retire = self.retire
        while True:
            if retire[0]:
                retire[0] -= 1
                if self.on_leave is not None:
                    self.on_leave(slot)
                return
            msg = take()
            if msg is None:
                ev = Event(env)
                idle.append(ev)
                msg = yield ev
                if msg is None:  # woken so that it can leave (scaling down)
                    continue
            start = env.now
            in_service[slot] = msg
            started[slot] = start
            yield env.timeout(service())
            in_service[slot] = None
            end = env.now
            visit((msg.id, qi, msg.arrived, start, end, gi))
            if put is None:
                finished((msg.id, end, DELIVERED, gi))
            else:
                blocked = put(msg)
                if blocked is not None:  # downstream full: the worker holds the message
                    yield blocked

    def busy(self) -> int:
        """Messages in service now."""
        return sum(m is not None for m in self.in_service)

    def holding(self) -> list[tuple[Message, float]]:
        """Messages in service now, with their start times."""
        return [(m, s) for m, s in zip(self.in_service, self.started, strict=True)
                if m is not None]
