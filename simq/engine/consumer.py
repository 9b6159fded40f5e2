"""A consumer group: `count` workers sharing one queue."""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message, Request
from simq.engine.queue import Queue
from simq.engine.topic import MergedPartitions
from simq.record import DECODE, DELIVERED, REPLY, Recorder

__all__ = ["ConsumerGroup", "Replier"]


class ConsumerGroup:
    """Each worker is one long-lived process: take, serve, forward, repeat."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, queue: Queue | MergedPartitions,
        count: int,
        service: Callable[[], float], forward: Destination | None, rec: Recorder,
        decode: Callable[[], float] | None = None, batch: int = 1,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        # MergedPartitions stands in for a queue (take, idle, index); groups that change
        # size (engine/scaling.py) always read a real one (the scenario makes sure).
        self.queue: Queue = queue  # type: ignore[assignment]
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
        self._stage = rec.stages.append
        self.decode = decode
        self.batch = batch
        self.batch_held: list[list[Message]] = [[] for _ in range(count)]
        self._batch_log = rec.batches.append
        work = self._choose_loop()
        self._loop = work
        self.procs = [env.process(work(slot)) for slot in range(count)]

    def _choose_loop(self):  # type: ignore[no-untyped-def]
        """The worker loop, chosen once: the plain loop carries no per-message test for
        optional steps (a variant overrides this method)."""
        if self.batch > 1:
            return self._work_batch
        if self.decode is None and self.queue.index >= 0:
            return self._work
        return self._work_general

    def add_worker(self) -> None:
        """Start one more worker (scaling up)."""
        self.in_service.append(None)
        self.started.append(math.nan)
        self.batch_held.append([])
        self.procs.append(self.env.process(self._loop(len(self.in_service) - 1)))

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

    def _work_general(self, slot: int):  # type: ignore[no-untyped-def]
        """The same loop with the optional steps: a decode before the service (one
        timeout for both), and messages from several partitions (each knows its own)."""
        env = self.env
        take, idle = self.queue.take, self.queue.idle
        service, decode = self.service, self.decode
        visit, stage, finished = self._visit, self._stage, self._finished
        qi, gi = self.queue.index, self.index
        merged = qi < 0
        put = self.forward.put if self.forward is not None else None
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
            if decode is not None:
                d = decode()
                stage((msg.id, DECODE, start, start + d))
                yield env.timeout(d + service())
            else:
                yield env.timeout(service())
            in_service[slot] = None
            end = env.now
            visit((msg.id, msg.queue if merged else qi, msg.arrived, start, end, gi))
            if put is None:
                finished((msg.id, end, DELIVERED, gi))
            else:
                blocked = put(msg)
                if blocked is not None:
                    yield blocked

    def _work_batch(self, slot: int):  # type: ignore[no-untyped-def]
        """Take whatever waits, up to `batch` messages, and serve them in one service
        time (decoding each first); then pass each on."""
        env = self.env
        take, idle = self.queue.take, self.queue.idle
        service, decode, size = self.service, self.decode, self.batch
        visit, stage, finished, log = self._visit, self._stage, self._finished, self._batch_log
        qi, gi = self.queue.index, self.index
        merged = qi < 0
        put = self.forward.put if self.forward is not None else None
        held, started = self.batch_held[slot], self.started
        while True:
            msg = take()
            if msg is None:
                ev = Event(env)
                idle.append(ev)
                msg = yield ev
            held.append(msg)
            while len(held) < size:
                more = take()
                if more is None:
                    break
                held.append(more)
            start = env.now
            started[slot] = start
            work = 0.0
            if decode is not None:
                for m in held:
                    d = decode()
                    stage((m.id, DECODE, start + work, start + work + d))
                    work += d
            yield env.timeout(work + service())
            end = env.now
            log((gi, start, end, len(held)))
            batch = held[:]
            held.clear()
            for m in batch:
                visit((m.id, m.queue if merged else qi, m.arrived, start, end, gi))
            for m in batch:
                if put is None:
                    finished((m.id, end, DELIVERED, gi))
                else:
                    blocked = put(m)
                    if blocked is not None:
                        yield blocked
    def busy(self) -> int:
        """Messages in service now."""
        return sum(m is not None for m in self.in_service)

    def holding(self) -> list[tuple[Message, float]]:
        """Messages in service now, with their start times."""
        out = [(m, s) for m, s in zip(self.in_service, self.started, strict=True)
               if m is not None]
        for held, s in zip(self.batch_held, self.started, strict=True):
            out += [(m, s) for m in held]
        return out


class Replier:
    """The end of the line for a group whose messages may come from waiting senders.

    A plain message is delivered on the spot; a request is delivered when its reply
    reaches the sender (after the sender's `reply` latency), which then learns of it.
    """

    def __init__(self, env: simpy.Environment, group: int, rec: Recorder) -> None:
        self.env = env
        self.group = group
        self.in_transit = 0
        self._finished = rec.finished.append
        self._stage = rec.stages.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        reply_to = getattr(msg, "reply_to", None)
        if reply_to is None:
            self._finished((msg.id, now, DELIVERED, self.group))
            return None
        back = now + reply_to.reply_latency()
        self._stage((msg.id, REPLY, now, back))
        self.in_transit += 1
        ev = self.env.timeout(back - now, msg)
        ev.callbacks.append(self._arrive)
        return None

    def _arrive(self, ev: Event) -> None:
        self.in_transit -= 1
        msg: Request = ev.value  # type: ignore[assignment]  # the timeout's value
        self._finished((msg.id, self.env.now, DELIVERED, self.group))
        msg.reply_to.acked(msg)
