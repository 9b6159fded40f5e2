"""Where a served message goes next: a fixed route, a random choice, or out."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.recorder import DELIVERED, Recorder

__all__ = ["Router", "Sink"]


class Sink:
    """The way out: the message is delivered here (for a router's `exit` share)."""

    def __init__(self, env: simpy.Environment, group: int, rec: Recorder) -> None:
        self.env = env
        self.group = group
        self._finished = rec.finished.append

    def put(self, msg: Message) -> Event | None:
        self._finished((msg.id, self.env.now, DELIVERED, self.group))
        return None

    def inside(self) -> int:
        return 0


class Router:
    """Probabilistic routing: each message picks one destination by its probability.

    Feedback (a route back to an earlier queue) is just another destination; the
    scenario refuses loops that no route leaves.
    """

    def __init__(self, routes: Sequence[tuple[Destination, float]],
                 coin: Callable[[], float]) -> None:
        self.dests = [d for d, _ in routes]
        total = 0.0
        self.cumulative: list[float] = []
        for _, p in routes:
            total += p
            self.cumulative.append(total)
        self.cumulative[-1] = float("inf")  # rounding never sends a message nowhere
        self.coin = coin

    def put(self, msg: Message) -> Event | None:
        return self.dests[bisect.bisect_right(self.cumulative, self.coin())].put(msg)
