"""Reliability semantics: expiry and dead letters at a queue; acks, failures, retries,
deduplication and crashes at a consumer group (docs/reliability.md).

Built only for the queues and groups whose scenario asks for them, so the plain path
keeps its speed. The bookkeeping rests on one rule: at any time a message that has not
reached its final outcome has exactly one *live* place (a queue's line, a worker that
holds it, a back-off timer). A worker whose visibility timeout ran out still works on
its copy, but the broker has taken the message back: that copy is *stale* and is not
counted inside. A copy left behind once the message's outcome is decided (it was
delivered by a stale worker, say) is a *phantom*: consumers still process it, as a real
broker would, and those processings are the duplicates.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import simpy
from simpy.events import Event
from simpy.exceptions import Interrupt

from simq.engine.consumer import ConsumerGroup
from simq.engine.core import Destination, Message
from simq.engine.queue import Queue
from simq.engine.retry import Backoff
from simq.record import (
    ATTEMPT,
    BACK,
    CRASH,
    CRASH_LOST,
    DEAD_LETTER,
    DEAD_LETTERED,
    DELIVERED,
    DISCARDED,
    DROPPED,
    DUPLICATE,
    EXPIRED,
    FAILED,
    LOST,
    NOWHERE,
    OUTAGE,
    OUTAGE_LOST,
    REAPED,
    REQUEUED,
    RESTART,
    Recorder,
)

__all__ = ["CreditGate", "ReliableGroup", "ReliableQueue", "Stamp"]

NAN = math.nan
INF = math.inf


class Stamp:
    """A producer's per-message time-to-live: stamps the deadline, passes the message on."""

    def __init__(self, env: simpy.Environment, dest: Destination, ttl: float) -> None:
        self.env = env
        self.dest = dest
        self.ttl = ttl

    def put(self, msg: Message) -> Event | None:
        msg.deadline = self.env.now + self.ttl
        return self.dest.put(msg)


class CreditGate:
    """Credit-based flow control: a producer holds ``credits``; each send spends one and
    each message a consumer takes gives one back. Out of credits, the sender waits."""

    def __init__(self, env: simpy.Environment, dest: Destination, credits: int) -> None:
        self.env = env
        self.dest = dest
        self.free = credits
        self._waiting: Event | None = None

    def put(self, msg: Message) -> Event | None:
        msg.gate = self
        self.free -= 1
        out = self.dest.put(msg)
        if self.free > 0:
            return out
        self._waiting = Event(self.env)
        if out is None:
            return self._waiting
        return simpy.AllOf(self.env, [out, self._waiting])

    def release(self) -> None:
        self.free += 1
        if self._waiting is not None:
            ev, self._waiting = self._waiting, None
            ev.succeed()


class ReliableQueue(Queue):
    """A queue whose messages may expire (``ttl``: at the head, as RabbitMQ does, or
    anywhere: exactly when their time is up) and be dead-lettered."""

    def __init__(self, env: simpy.Environment, index: int, name: str, capacity: float,
                 overflow: str, rec: Recorder, ttl: float | None = None,
                 expiry: str = "head") -> None:
        super().__init__(env, index, name, capacity, overflow, rec)
        self.ttl = INF if ttl is None else ttl
        self.settled: set[int] = set()  # ids whose outcome here is decided (see module doc)
        self.dead_letter: Destination | None = None  # the DLQ when it has consumers
        self.dlq_named = False
        self._event = rec.events.append
        self._wake: Event | None = None
        if ttl is not None and expiry == "anywhere":
            env.process(self._reap())
        # Outages (engine.faults): while down, senders are held (or turned away) and
        # consumers find nothing to take.
        self.down = False
        self.persistent = True
        self.when_down = "block"
        self.held: list[tuple[Message, Event]] = []

    def fail(self) -> None:
        """The broker goes down: an in-memory queue loses what waits in it."""
        now = self.env.now
        self.down = True
        self._event((-1, OUTAGE, self.index, now))
        if self.persistent:
            return
        lost = list(self.items)
        if isinstance(self.items, deque):
            self.items.clear()
        else:  # a priority line
            while self.items:
                self.items.popleft()
        for m in lost:
            self._visit((m.id, self.index, m.arrived, now, NAN, REAPED))
            if m.id not in self.settled:
                self.settled.add(m.id)
                self._finished((m.id, now, LOST, NOWHERE))
                self._event((m.id, OUTAGE_LOST, self.index, now))

    def heal(self) -> None:
        """The broker is back: held senders get in, idle workers get what waits."""
        self.down = False
        self._event((-1, BACK, self.index, self.env.now))
        held, self.held = self.held, []
        for msg, ev in held:
            ev.succeed()
            self.put(msg)
        while self.idle and self.items:
            nxt = self.take()
            if nxt is None:
                break
            self.idle.popleft().succeed(nxt)

    def put(self, msg: Message) -> Event | None:
        if self.down:
            if self.when_down == "drop":
                self._finished((msg.id, self.env.now, DROPPED, self.index))
                return None
            ev = Event(self.env)
            self.held.append((msg, ev))
            return ev
        if self.idle:  # straight to a worker: taken at once
            gate = getattr(msg, "gate", None)
            if gate is not None:
                del msg.gate
                gate.release()
        out = super().put(msg)
        if self._wake is not None and self.items:
            self._wake.succeed()
            self._wake = None
        return out

    def requeue(self, msg: Message) -> None:
        """A message given back (nack, crash, visibility timeout): to the tail of the
        line, whatever the capacity (a broker never refuses its own message back)."""
        now = self.env.now
        self._event((msg.id, REQUEUED, self.index, now))
        msg.arrived = now
        if self.down:  # offered again when the broker is back
            self.held.append((msg, Event(self.env)))
            return
        if self.idle:
            self.idle.popleft().succeed(msg)
            return
        self.items.append(msg)
        if self._wake is not None:
            self._wake.succeed()
            self._wake = None

    def _deadline(self, msg: Message) -> float:
        own = getattr(msg, "deadline", INF)
        return min(msg.arrived + self.ttl, own)

    def take(self) -> Message | None:
        if self.down:
            return None
        while True:
            msg = super().take()
            if msg is None:
                return None
            gate = getattr(msg, "gate", None)
            if gate is not None:  # its sender's credit comes back
                del msg.gate
                gate.release()
            if self.env.now < self._deadline(msg):
                return msg
            self._expire(msg)

    def _reap(self):  # type: ignore[no-untyped-def]
        """Expiry anywhere: with one ttl and a FIFO line the head is always the first to
        expire, so one process sleeping until the head's deadline does it."""
        env, ttl = self.env, self.ttl
        while True:
            items = self.items
            if not items:
                self._wake = Event(env)
                yield self._wake
                continue
            due = items[0].arrived + ttl
            if due > env.now:
                yield env.timeout(due - env.now)
                continue
            msg = items.popleft()
            if self.blocked:
                self._admit()
            self._expire(msg)

    def _expire(self, msg: Message) -> None:
        now = self.env.now
        self._visit((msg.id, self.index, msg.arrived, now, NAN, REAPED))
        if msg.id in self.settled:  # a phantom copy: its outcome is decided already
            return
        if self.dlq_named:
            self.to_dead_letter(msg)
        else:
            self.settled.add(msg.id)
            self._finished((msg.id, now, EXPIRED, self.index))

    def to_dead_letter(self, msg: Message) -> None:
        """Move a message to the dead-letter queue: it lives on there when the DLQ has
        consumers; otherwise dead-lettering is its final outcome."""
        now = self.env.now
        self.settled.add(msg.id)
        self._event((msg.id, DEAD_LETTER, self.index, now))
        if self.dead_letter is None:
            self._finished((msg.id, now, DEAD_LETTERED, self.index))
            return
        msg.arrived = now
        if hasattr(msg, "deadline"):  # a fresh start: the DLQ's own ttl applies
            del msg.deadline
        self.dead_letter.put(msg)

    def settle(self, msg: Message, code: int, where: int) -> bool:
        """Decide a message's outcome (False when it was decided already)."""
        if msg.id in self.settled:
            return False
        self.settled.add(msg.id)
        self._finished((msg.id, self.env.now, code, where))
        return True

    def count_inside(self) -> int:
        settled = self.settled
        return (sum(m.id not in settled for m in self.items) + len(self.blocked)
                + sum(m.id not in settled for m, _ in self.held))


class ReliableGroup(ConsumerGroup):
    """A consumer group with acknowledgements, failures, retries, dedup and crashes."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, queue: ReliableQueue, count: int,
        service: Callable[[], float], forward: Destination | None, rec: Recorder, *,
        manual: bool, visibility: float | None, failure: float, coin: Callable[[], float],
        max_attempts: int | None, backoff: Backoff | None, dedup: bool,
        crash_log: bool, poison: float = 0.0, slow: tuple[int, float] | None = None,
    ) -> None:
        self.rq = queue
        self.manual = manual
        self.visibility = visibility
        self.failure = failure
        self.coin = coin
        self.max_attempts = max_attempts if max_attempts is not None else INF
        self.backoff = backoff
        self.dedup = dedup
        self.poison = poison
        self.poisoned: dict[int, bool] = {}  # decided at a message's first processing here
        # Service time factor per worker: the first `slow` workers are slow.
        self.pace = [slow[1] if slow is not None and k < slow[0] else 1.0
                     for k in range(count)]
        self.tries: dict[int, int] = {}
        self.waited: dict[int, float] = {}  # last back-off per message (decorrelated)
        self.completed: set[int] = set()  # processed to the end here
        self.cut: set[int] = set()  # processing cut short by a crash (effects may remain)
        self.duplicated: set[int] = set()  # counted once each in `duplicates`
        self.backing_off: dict[int, Message] = {}
        self.up = [True] * count
        self.stale = [False] * count
        self.tokens: list[Event | None] = [None] * count
        self.parked: list[Event | None] = [None] * count
        self._event = rec.events.append
        self._workers = rec.workers.append
        if crash_log:
            self._workers((0.0, index, count, 0))
        super().__init__(env, index, name, queue, count, service, forward, rec)

    def _choose_loop(self):  # type: ignore[no-untyped-def]
        return self._work_reliable

    def crash(self, slot: int, down: float) -> None:
        """Worker ``slot`` fails now and is back after ``down`` seconds."""
        self.up[slot] = False
        self.procs[slot].interrupt(down)

    def _work_reliable(self, slot: int):  # type: ignore[no-untyped-def]
        env, q = self.env, self.rq
        take, idle = q.take, q.idle
        service, visit, event = self.service, self._visit, self._event
        qi, gi = q.index, self.index
        in_service, started, stale, tokens = self.in_service, self.started, self.stale, self.tokens
        put = self.forward.put if self.forward is not None else None
        p, coin, vis = self.failure, self.coin, self.visibility
        poison, pace = self.poison, self.pace
        while True:
            try:
                msg = take()
                if msg is None:
                    ev = Event(env)
                    idle.append(ev)
                    self.parked[slot] = ev
                    msg = yield ev
                    self.parked[slot] = None
                start = env.now
                mid = msg.id
                self.tries[mid] = self.tries.get(mid, 0) + 1
                event((mid, ATTEMPT, gi, start))
                if poison > 0 and mid not in self.poisoned:
                    self.poisoned[mid] = coin() < poison
                if self.dedup and mid in self.completed:
                    # Seen before: acknowledged without processing.
                    event((mid, DISCARDED, gi, start))
                    visit((mid, qi, msg.arrived, start, start, gi))
                    continue
                in_service[slot] = msg
                started[slot] = start
                stale[slot] = False
                if vis is not None:
                    token = tokens[slot] = env.timeout(vis, (slot, msg))
                    token.callbacks.append(self._visibility_over)
                yield env.timeout(service() * pace[slot])
                in_service[slot] = None
                tokens[slot] = None
                end = env.now
                visit((mid, qi, msg.arrived, start, end, gi))
                bad = poison > 0 and self.poisoned.get(mid, False)
                if bad or (p > 0 and coin() < p):
                    event((mid, FAILED, gi, end))
                    if stale[slot]:
                        continue  # the broker has taken it back already
                    if self.manual:
                        self._give_back(msg, failed=True)
                    elif mid not in q.settled:  # auto ack: the broker deleted it
                        q.settle(msg, LOST, NOWHERE)
                        event((mid, CRASH_LOST, gi, end))
                    continue
                if not self._complete(msg):
                    continue
                if put is None:
                    self._finished((mid, end, DELIVERED, gi))
                else:
                    blocked = put(msg)
                    if blocked is not None:
                        yield blocked
            except Interrupt as crash:
                down = float(crash.cause)  # type: ignore[arg-type]
                yield from self._down(slot, down)

    def _down(self, slot: int, down: float):  # type: ignore[no-untyped-def]
        env, q, gi = self.env, self.rq, self.index
        now = env.now
        held = None
        ev = self.parked[slot]
        if ev is not None:  # crashed while idle
            self.parked[slot] = None
            if ev.triggered:  # a message was handed over at this very instant
                held = ev.value
            else:
                q.idle.remove(ev)
        if held is not None and held.id not in q.settled:
            if self.manual:
                q.requeue(held)
            else:
                q.settle(held, LOST, NOWHERE)
                self._event((held.id, CRASH_LOST, gi, now))
        msg = self.in_service[slot]
        self._event((-1 if msg is None else msg.id, CRASH, gi, now))
        if msg is not None:
            self.in_service[slot] = None
            self.tokens[slot] = None
            self._visit((msg.id, q.index, msg.arrived, self.started[slot], now, gi))
            if not self.stale[slot] and msg.id not in q.settled:
                if self.manual:
                    if not self.dedup:
                        self.cut.add(msg.id)
                    self._give_back(msg, failed=False)
                else:
                    q.settle(msg, LOST, NOWHERE)
                    self._event((msg.id, CRASH_LOST, gi, now))
        self._workers((now, gi, sum(self.up), 0))
        yield env.timeout(down)
        self.up[slot] = True
        self._workers((env.now, gi, sum(self.up), 0))
        self._event((-1, RESTART, gi, env.now))

    def _visibility_over(self, ev: Event) -> None:
        slot, msg = ev.value  # type: ignore[misc]  # the timeout's value
        if self.tokens[slot] is not ev:
            return  # finished, or crashed, in time
        self.tokens[slot] = None
        self.stale[slot] = True
        if msg.id not in self.rq.settled:
            self._give_back(msg, failed=False)

    def _give_back(self, msg: Message, failed: bool) -> None:
        """Requeue (after the back-off, for a failure), or dead-letter after max_attempts."""
        q, mid = self.rq, msg.id
        if mid in q.settled:
            return
        tries = self.tries.get(mid, 0)
        if tries >= self.max_attempts:
            self.tries.pop(mid, None)
            self.waited.pop(mid, None)
            q.to_dead_letter(msg)
            return
        wait = 0.0
        if failed and self.backoff is not None:
            wait = self.backoff.delay(tries, self.waited.get(mid, 0.0))
            self.waited[mid] = wait
        if wait <= 0:
            q.requeue(msg)
            return
        self.backing_off[mid] = msg
        ev = self.env.timeout(wait, msg)
        ev.callbacks.append(self._retry)

    def _retry(self, ev: Event) -> None:
        msg: Message = ev.value  # type: ignore[assignment]
        self.backing_off.pop(msg.id, None)
        if msg.id not in self.rq.settled:
            self.rq.requeue(msg)

    def _complete(self, msg: Message) -> bool:
        """A processing ran to its end: True when it is the message's first, which decides
        its outcome (delivered, or passed on)."""
        mid, q, gi, now = msg.id, self.rq, self.index, self.env.now
        if mid in self.completed:
            if self.dedup:
                self._event((mid, DISCARDED, gi, now))
            elif mid not in self.duplicated:
                self.duplicated.add(mid)
                self._event((mid, DUPLICATE, gi, now))
            return False
        if mid in self.cut:  # the crashed attempt's effects were applied once already
            self.duplicated.add(mid)
            self._event((mid, DUPLICATE, gi, now))
        self.completed.add(mid)
        if mid in q.settled:
            return False
        q.settled.add(mid)
        self.tries.pop(mid, None)
        self.waited.pop(mid, None)
        return True

    def holding(self) -> list[tuple[Message, float]]:
        settled = self.rq.settled
        return [(m, s) for m, s, st in zip(self.in_service, self.started, self.stale,
                                           strict=True)
                if m is not None and not st and m.id not in settled]

    def count_backing_off(self) -> int:
        settled = self.rq.settled
        return sum(mid not in settled for mid in self.backing_off)
