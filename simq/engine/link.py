"""A network hop: FIFO serialization at a bandwidth, propagation latency, random loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.recorder import CUT, HEALED, LOST, RETRANSMIT, Recorder

__all__ = ["CutLink", "Link"]


def _gone(msg: Message) -> None:
    """Tell a tracking sender that a send of its message will never reach the broker."""
    reply_to = getattr(msg, "reply_to", None)
    if reply_to is not None and not msg.at_door:  # type: ignore[attr-defined]
        reply_to.gone(msg)


class Link:
    """Delivers with one timeout and a callback per message; no process per message."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, dest: Destination,
        latency: Callable[[], float], bandwidth: float, loss: float,
        coin: Callable[[], float], rec: Recorder, *, retransmit: float | None = None,
        wire: Link | None = None,
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
        # The serializer: this link's own, or another link's when they share bandwidth.
        self.wire: Link = self if wire is None else wire
        self.retransmit = retransmit  # resend a lost message after this long
        self.in_transit = 0
        self._hop = rec.hops.append
        self._finished = rec.finished.append
        self._stage = rec.stages.append
        self._resent = rec.retransmits.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        if self.loss and self.coin() < self.loss:
            if self.retransmit is None:
                self._finished((msg.id, now, LOST, self.index))
                _gone(msg)
            else:
                self._resend(msg, now)
            return None
        wire = self.wire
        if math.isinf(wire.bandwidth):
            tx_start = tx_end = now
        else:
            tx_start = max(now, wire.free_at)
            tx_end = wire.free_at = tx_start + msg.size / wire.bandwidth
        out = tx_end + self.latency()
        self._hop((msg.id, self.index, now, tx_start, tx_end, out))
        self.in_transit += 1
        ev = self.env.timeout(out - now, msg)
        ev.callbacks.append(self._deliver)
        return None

    def put_batch(self, msgs: list[Message]) -> None:
        """A producer batch crosses as one unit: one serialization of the summed sizes,
        one propagation delay, one loss draw; its messages arrive together."""
        now = self.env.now
        if self.loss and self.coin() < self.loss:
            for m in msgs:
                if self.retransmit is None:
                    self._finished((m.id, now, LOST, self.index))
                    _gone(m)
                else:
                    self._resend(m, now)
            return
        wire = self.wire
        if math.isinf(wire.bandwidth):
            tx_start = tx_end = now
        else:
            tx_start = max(now, wire.free_at)
            tx_end = wire.free_at = tx_start + sum(m.size for m in msgs) / wire.bandwidth
        out = tx_end + self.latency()
        for m in msgs:
            self._hop((m.id, self.index, now, tx_start, tx_end, out))
        self.in_transit += len(msgs)
        ev = self.env.timeout(out - now, msgs)
        ev.callbacks.append(self._deliver_batch)

    def _resend(self, msg: Message, now: float) -> None:
        """The sender notices the loss after the timeout and sends the message again."""
        assert self.retransmit is not None
        self._stage((msg.id, RETRANSMIT, now, now + self.retransmit))
        self._resent((msg.id, self.index, now))
        self.in_transit += 1
        ev = self.env.timeout(self.retransmit, msg)
        ev.callbacks.append(self._again)

    def _again(self, ev: Event) -> None:
        self.in_transit -= 1
        self.put(ev.value)  # type: ignore[arg-type]  # the timeout's value

    def _deliver_batch(self, ev: Event) -> None:
        msgs: list[Message] = ev.value  # type: ignore[assignment]
        self.in_transit -= len(msgs)
        for m in msgs:
            self.dest.put(m)

    def _deliver(self, ev: Event) -> None:
        self.in_transit -= 1
        # A link cannot be blocked: when the queue is full and blocks, the message waits
        # at the queue's door and nobody waits for the event.
        self.dest.put(ev.value)  # type: ignore[arg-type]  # the timeout's value

    def inside(self) -> int:
        """Messages on the wire, or waiting out a retransmission (or a partition)."""
        return self.in_transit


class CutLink(Link):
    """A link that can be partitioned (engine.faults): while it is down, what is sent is
    held by the sender and goes out when it heals (``hold``), or is lost (``lose``).
    Messages already on the wire arrive."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, dest: Destination,
        latency: Callable[[], float], bandwidth: float, loss: float,
        coin: Callable[[], float], rec: Recorder, *, retransmit: float | None = None,
        wire: Link | None = None, when_cut: str = "hold",
    ) -> None:
        super().__init__(env, index, name, dest, latency, bandwidth, loss, coin, rec,
                         retransmit=retransmit, wire=wire)
        self.down = False
        self.lose = when_cut == "lose"
        self.held: list[Message] = []
        self._event = rec.events.append

    def fail(self) -> None:
        self.down = True
        self._event((-1, CUT, self.index, self.env.now))

    def heal(self) -> None:
        self.down = False
        self._event((-1, HEALED, self.index, self.env.now))
        held, self.held = self.held, []
        self.in_transit -= len(held)
        for m in held:
            self.put(m)

    def put(self, msg: Message) -> Event | None:
        if not self.down:
            return super().put(msg)
        if self.lose:
            self._finished((msg.id, self.env.now, LOST, self.index))
            _gone(msg)
        else:
            self.held.append(msg)
            self.in_transit += 1
        return None

    def put_batch(self, msgs: list[Message]) -> None:
        if not self.down:
            super().put_batch(msgs)
            return
        for m in msgs:
            self.put(m)
