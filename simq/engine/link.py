"""A network hop: FIFO serialization at a bandwidth, propagation latency, random loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.record import LOST, Recorder

__all__ = ["Link"]


class Link:
    """Delivers with one timeout and a callback per message; no process per message."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, dest: Destination,
        latency: Callable[[], float], bandwidth: float, loss: float,
        coin: Callable[[], float], rec: Recorder,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.dest = dest
        self.latency = latency
        self.bandwidth = bandwidth
        self.loss = loss
        self.coin = coin
        self.free_at = 0.0  # when the serializer finishes what it already has
        self.in_transit = 0
        self._hop = rec.hops.append
        self._finished = rec.finished.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        if self.loss and self.coin() < self.loss:
            self._finished((msg.id, now, LOST, self.index))
            return None
        if math.isinf(self.bandwidth):
            tx_start = tx_end = now
        else:
            tx_start = max(now, self.free_at)
            tx_end = self.free_at = tx_start + msg.size / self.bandwidth
        out = tx_end + self.latency()
        self._hop((msg.id, self.index, now, tx_start, tx_end, out))
        self.in_transit += 1
        ev = self.env.timeout(out - now, msg)
        ev.callbacks.append(self._deliver)
        return None

    def _deliver(self, ev: Event) -> None:
        self.in_transit -= 1
        # A link cannot be blocked: when the queue is full and blocks, the message waits
        # at the queue's door and nobody waits for the event.
        self.dest.put(ev.value)  # type: ignore[arg-type]  # the timeout's value
