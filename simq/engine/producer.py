"""An open-loop producer: sends at its own pace, whatever happens downstream."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import simpy

from simq.engine.core import Destination, Message
from simq.record import Recorder

__all__ = ["Producer"]


class Producer:
    """One long-lived process drawing interarrival times in blocks."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, dest: Destination,
        interarrival: Callable[[], float], size: Callable[[], float], ids: itertools.count,
        limit: float, start: float, stop: float | None, rec: Recorder,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.dest = dest
        self.interarrival = interarrival
        self.size = size
        self.ids = ids
        self.limit = limit  # total messages all producers may create (run.messages)
        self.start = start
        self.stop = math.inf if stop is None else stop
        self.last_sent = math.nan
        self._created = rec.created.append
        env.process(self._send())

    def _send(self):  # type: ignore[no-untyped-def]
        env = self.env
        gap, size, put = self.interarrival, self.size, self.dest.put
        created, ids, index = self._created, self.ids, self.index
        limit, stop = self.limit, self.stop
        if self.start > 0:
            yield env.timeout(self.start)
        while True:
            yield env.timeout(gap())
            now = env.now
            if now >= stop:
                return
            mid = next(ids)
            if mid >= limit:
                return
            msg = Message(mid, now, size())
            created((index, now, msg.size))
            self.last_sent = now
            blocked = put(msg)
            if blocked is not None:  # backpressure: wait until the queue has room
                yield blocked
