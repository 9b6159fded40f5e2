"""What a message passes between its producer and the broker: the ttl stamp, a credit
gate, the encoder, the producer's batch. Each is a destination in front of the next one
(a link, a broker disk, a queue or a topic), chosen when the model is built."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.recorder import BATCH, ENCODE, Recorder

__all__ = ["Batcher", "CreditGate", "Credits", "Encoder", "Stamp"]


class Stamp:
    """A producer's per-message time-to-live: stamps the deadline, passes the message on."""

    def __init__(self, env: simpy.Environment, dest: Destination, ttl: float) -> None:
        self.env = env
        self.dest = dest
        self.ttl = ttl

    def put(self, msg: Message) -> Event | None:
        msg.deadline = self.env.now + self.ttl
        return self.dest.put(msg)


class Credits:
    """Who holds each outstanding credit: a credit comes back when a consumer takes the
    message, or when the message ends without being taken (dropped, lost, expired,
    dead-lettered), whichever comes first."""

    def __init__(self) -> None:
        self.owner: dict[int, CreditGate] = {}

    def back(self, msg: Message) -> None:
        gate = self.owner.pop(msg.id, None)
        if gate is not None:
            gate.release()

    def ended(self, mid: int) -> None:
        gate = self.owner.pop(mid, None)
        if gate is not None:
            gate.release()


class CreditGate:
    """Credit-based flow control: a producer holds ``credits``; each send spends one and
    each comes back as :class:`Credits` says. Out of credits, the sender waits before
    its next send. A producer's sync clients each have a gate in front of their own
    chain, sharing one pool (``share``: the gate whose credits these are)."""

    def __init__(self, env: simpy.Environment, dest: Destination, credits: int,
                 ledger: Credits, share: CreditGate | None = None) -> None:
        self.env = env
        self.dest = dest
        self.ledger = ledger
        self.pool: list[int] = [credits] if share is None else share.pool
        self.waiting: deque[Event] = deque() if share is None else share.waiting

    def put(self, msg: Message) -> Event | None:
        pool = self.pool
        pool[0] -= 1
        self.ledger.owner[msg.id] = self
        out = self.dest.put(msg)
        if pool[0] > 0:
            return out
        ev = Event(self.env)
        self.waiting.append(ev)
        if out is None:
            return ev
        return simpy.AllOf(self.env, [out, ev])

    def release(self) -> None:
        self.pool[0] += 1
        waiting = self.waiting
        while waiting and self.pool[0] > 0:
            ev = waiting.popleft()
            # A retry sent from a timer cannot wait, so nobody waits on its event: skip it.
            if ev.callbacks:
                ev.succeed()
                return


class Encoder:
    """The sender's encoding step (serialization to bytes): one FIFO encoder in front of
    the destination, so an open-loop source keeps its own arrival process (a sync client
    has its own)."""

    def __init__(self, env: simpy.Environment, dest: Destination,
                 encode: Callable[[], float], rec: Recorder) -> None:
        self.env = env
        self.dest = dest
        self.encode = encode
        self.free_at = 0.0
        self.in_transit = 0
        self._stage = rec.stages.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        ready = self.free_at = max(now, self.free_at) + self.encode()
        self._stage((msg.id, ENCODE, now, ready))
        self.in_transit += 1
        ev = self.env.timeout(ready - now, msg)
        ev.callbacks.append(self._forward)
        return None

    def _forward(self, ev: Event) -> None:
        self.in_transit -= 1
        # Like a link, an encoder cannot be blocked: a message refused by a full queue
        # with overflow: block waits at its door.
        self.dest.put(ev.value)  # type: ignore[arg-type]  # the timeout's value

    def inside(self) -> int:
        return self.in_transit


class Batcher:
    """A producer's batch (Kafka's batch.size / linger.ms): messages gather until their
    sizes reach `batch_size` bytes or `linger` seconds have passed since the first one,
    then go out together (over a link, as one unit)."""

    def __init__(self, env: simpy.Environment, dest: Destination, batch_size: float,
                 linger: float, rec: Recorder) -> None:
        self.env = env
        self.dest = dest
        self.batch_size = batch_size
        self.linger = linger
        self.pending: list[Message] = []
        self._bytes = 0.0
        self._joined: list[float] = []
        self._round = 0  # which batch a linger timer belongs to
        self._stage = rec.stages.append
        self._put_batch = getattr(dest, "put_batch", None)

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        self.pending.append(msg)
        self._joined.append(now)
        self._bytes += msg.size
        if self._bytes >= self.batch_size or self.linger <= 0:
            self._flush()
        elif len(self.pending) == 1:
            ev = self.env.timeout(self.linger, self._round)
            ev.callbacks.append(self._linger_over)
        return None

    def _linger_over(self, ev: Event) -> None:
        if ev.value == self._round and self.pending:
            self._flush()

    def _flush(self) -> None:
        now = self.env.now
        batch, joined = self.pending, self._joined
        self.pending, self._joined, self._bytes = [], [], 0.0
        self._round += 1
        for m, t in zip(batch, joined, strict=True):
            self._stage((m.id, BATCH, t, now))
        if self._put_batch is not None:
            self._put_batch(batch)
            return
        # Straight into a queue: one after the other, at the same instant. Like a link,
        # a batcher is not held up by a full queue (the messages wait at its door).
        for m in batch:
            self.dest.put(m)

    def inside(self) -> int:
        return len(self.pending)
