"""Prefetch (RabbitMQ's basic.qos): a consumer holds at most `prefetch` unacknowledged
messages; the broker pushes one more each time an ack comes back."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.queue import Queue
from simq.record import BUFFER, DECODE, DELIVERED, FETCH, Recorder

__all__ = ["PrefetchConsumer"]


class _Credit:
    """One unit of credit parked at the broker: the queue hands the next message to it
    (through the same `idle` line as a parked worker)."""

    __slots__ = ("consumer",)

    def __init__(self, consumer: PrefetchConsumer) -> None:
        self.consumer = consumer

    def succeed(self, msg: Message) -> None:
        self.consumer.dispatch(msg)


class PrefetchConsumer:
    """One consumer with its own prefetch window, a local buffer and one worker process.

    The broker dispatches a message whenever the consumer has credit and the queue has a
    message; it crosses the link (when there is one) into the buffer; the worker serves the
    buffer in order and acks each message, and the ack's trip back restores the credit.
    """

    def __init__(
        self, env: simpy.Environment, group: int, queue: Queue, prefetch: int,
        service: Callable[[], float], decode: Callable[[], float] | None,
        forward: Destination | None, ack: Callable[[], float] | None, rec: Recorder,
    ) -> None:
        self.env = env
        self.group = group
        self.queue = queue
        self.service = service
        self.decode = decode
        self.forward = forward
        self.ack = ack
        self.link: Destination = self  # replaced by the broker->consumer link when given
        self.buffer: deque[tuple[Message, float]] = deque()
        self.dispatched: dict[int, float] = {}
        self.current: tuple[Message, float] | None = None
        self._wake: Event | None = None
        self._visit = rec.visits.append
        self._finished = rec.finished.append
        self._stage = rec.stages.append
        self._batch = rec.batches.append
        self._credit = _Credit(self)
        for _ in range(prefetch):
            self._pull()
        env.process(self._work())

    # Broker side ---------------------------------------------------------------------
    def _pull(self, _ev: Event | None = None) -> None:
        msg = self.queue.take()
        if msg is None:
            self.queue.idle.append(self._credit)  # type: ignore[arg-type]
        else:
            self.dispatch(msg)

    def dispatch(self, msg: Message) -> None:
        self.dispatched[msg.id] = self.env.now
        self.link.put(msg)

    # Consumer side -------------------------------------------------------------------
    def put(self, msg: Message) -> Event | None:
        """A message reaches the consumer's buffer."""
        now = self.env.now
        self._stage((msg.id, FETCH, self.dispatched[msg.id], now))
        if self._wake is not None:
            ev, self._wake = self._wake, None
            ev.succeed((msg, now))
        else:
            self.buffer.append((msg, now))
        return None

    def _work(self):  # type: ignore[no-untyped-def]
        env = self.env
        qi, gi = self.queue.index, self.group
        put = self.forward.put if self.forward is not None else None
        while True:
            if self.buffer:
                item = self.buffer.popleft()
            else:
                self._wake = Event(env)
                item = yield self._wake
            msg, got = item
            start = env.now
            self.current = (msg, start)
            self._stage((msg.id, BUFFER, got, start))
            d = 0.0
            if self.decode is not None:
                d = self.decode()
                self._stage((msg.id, DECODE, start, start + d))
            yield env.timeout(d + self.service())
            end = env.now
            self.current = None
            self._batch((gi, start, end, 1))
            self._visit((msg.id, qi, msg.arrived, self.dispatched.pop(msg.id), end, gi))
            if self.ack is None:
                self._pull()
            else:
                env.timeout(self.ack()).callbacks.append(self._pull)
            if put is None:
                self._finished((msg.id, end, DELIVERED, gi))
            else:
                blocked = put(msg)
                if blocked is not None:
                    yield blocked

    def holding(self) -> list[tuple[Message, float]]:
        """Messages at the consumer (in its buffer or in service), with dispatch times."""
        out = [(m, self.dispatched[m.id]) for m, _ in self.buffer]
        if self.current is not None:
            out.append((self.current[0], self.dispatched[self.current[0].id]))
        return out
