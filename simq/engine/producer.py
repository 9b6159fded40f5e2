"""Producers: open loop (sends at its own pace, whatever happens downstream), closed-loop
sync clients, and windowed senders; plus the sender-side encoder."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message, Request
from simq.record import BATCH, ENCODE, Recorder

__all__ = ["Batcher", "Encoder", "Producer", "SyncProducer", "WindowProducer"]


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
        self.blocked_since = math.nan
        self._created = rec.created.append
        self._blocked = rec.blocked.append
        env.process(self._send())

    def _send(self):  # type: ignore[no-untyped-def]
        env = self.env
        gap, size, put = self.interarrival, self.size, self.dest.put
        created, ids, index = self._created, self.ids, self.index
        log = self._blocked
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
            msg = Message(mid, now, size(), index)
            created((index, now, msg.size))
            self.last_sent = now
            blocked = put(msg)
            if blocked is not None:  # backpressure: wait until the queue has room
                self.blocked_since = now
                yield blocked
                self.blocked_since = math.nan
                log((index, now, env.now))


class Encoder:
    """The sender's encoding step (serialization to bytes): one FIFO encoder in front of
    the destination, so an open-loop source keeps its own arrival process."""

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


class SyncProducer:
    """`clients` closed-loop clients: think, encode, send, wait for the reply, repeat."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, dest: Destination, clients: int,
        think: Callable[[], float], encode: Callable[[], float] | None,
        reply: Callable[[], float], size: Callable[[], float], ids: itertools.count,
        limit: float, start: float, stop: float | None, rec: Recorder,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.dest = dest
        self.think = think
        self.encode = encode
        self.reply_latency = reply
        self.size = size
        self.ids = ids
        self.limit = limit
        self.start = start
        self.stop = math.inf if stop is None else stop
        self.last_sent = math.nan
        self.encoding = 0  # messages being encoded by a client right now
        self._created = rec.created.append
        self._blocked = rec.blocked.append
        self._stage = rec.stages.append
        for _ in range(clients):
            env.process(self._client())

    def _client(self):  # type: ignore[no-untyped-def]
        env = self.env
        think, encode, size, put = self.think, self.encode, self.size, self.dest.put
        created, ids, index, stage = self._created, self.ids, self.index, self._stage
        limit, stop = self.limit, self.stop
        if self.start > 0:
            yield env.timeout(self.start)
        while True:
            yield env.timeout(think())
            now = env.now
            if now >= stop:
                return
            mid = next(ids)
            if mid >= limit:
                return
            waiter = Event(env)
            msg = Request(mid, now, size(), self, waiter, index)
            created((index, now, msg.size))
            self.last_sent = now
            if encode is not None:  # the client's own CPU: no queue in front of it
                d = encode()
                stage((mid, ENCODE, now, now + d))
                self.encoding += 1
                yield env.timeout(d)
                self.encoding -= 1
            blocked = put(msg)
            if blocked is not None:
                t = env.now
                yield blocked
                self._blocked((index, t, env.now))
            yield waiter

    def acked(self, msg: Request) -> None:
        assert msg.waiter is not None
        msg.waiter.succeed()


class WindowProducer:
    """An open-loop source with at most `window` unacknowledged messages in flight
    (publisher confirms, max in-flight requests): a send waits for an ack when full."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, dest: Destination,
        interarrival: Callable[[], float], window: int, reply: Callable[[], float],
        size: Callable[[], float], ids: itertools.count, limit: float, start: float,
        stop: float | None, rec: Recorder,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.dest = dest
        self.interarrival = interarrival
        self.window = window
        self.reply_latency = reply
        self.size = size
        self.ids = ids
        self.limit = limit
        self.start = start
        self.stop = math.inf if stop is None else stop
        self.last_sent = math.nan
        self.outstanding = 0
        self._space: Event | None = None
        self._created = rec.created.append
        self._blocked = rec.blocked.append
        env.process(self._send())

    def _send(self):  # type: ignore[no-untyped-def]
        env = self.env
        gap, size, put = self.interarrival, self.size, self.dest.put
        created, ids, index = self._created, self.ids, self.index
        limit, stop, window = self.limit, self.stop, self.window
        if self.start > 0:
            yield env.timeout(self.start)
        while True:
            yield env.timeout(gap())
            if self.outstanding >= window:
                self._space = Event(env)
                yield self._space
            now = env.now
            if now >= stop:
                return
            mid = next(ids)
            if mid >= limit:
                return
            msg = Request(mid, now, size(), self, None, index)
            created((index, now, msg.size))
            self.last_sent = now
            self.outstanding += 1
            blocked = put(msg)
            if blocked is not None:
                t = env.now
                yield blocked
                self._blocked((index, t, env.now))

    def acked(self, msg: Request) -> None:
        self.outstanding -= 1
        if self._space is not None:
            ev, self._space = self._space, None
            ev.succeed()


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
