"""How a worker settles what it processed, a *settler*: :class:`AutoAck` (the broker
forgets a message once a worker has it) or :class:`Acks` (acks with visibility timeout,
failures, back-off, max attempts, dead letters, dedup; docs/reliability.md). A crash
reaches the settler through ``crashed``: it decides what becomes of what the worker held.
The worker loop is engine.worker. One cohesive thing: the two settlers share the
questions every worker asks after a service (is it done, given back, dead, a duplicate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message, Request, key, next_visit
from simq.engine.queue import Queue, ReliableQueue
from simq.engine.recorder import (
    ATTEMPT,
    CRASH_LOST,
    DEDUPLICATED,
    DELIVERED,
    DISCARDED,
    DUPLICATE,
    FAILED,
    LOST,
    NOWHERE,
    REPEAT,
    Recorder,
)
from simq.engine.retry import Backoff
from simq.engine.serve import Server

__all__ = ["Acks", "AutoAck", "Settler"]

INF = math.inf


def _hand_on(put: Callable[[Message], Event | None] | None, msgs: list[Message],
             finished: Callable[[tuple[int, float, int, int]], None], end: float,
             gi: int) -> Event | None:
    """Deliver processed messages here, or pass them on; the event to wait for when the
    next queue is full and blocks."""
    if put is None:
        for m in msgs:
            finished((m.id, end, DELIVERED, gi))
        return None
    blocked: Event | None = None
    for m in msgs:
        ev = put(m)
        if ev is not None:
            blocked = ev if blocked is None else blocked & ev
    return blocked


class AutoAck:
    """Auto ack: the broker forgets a message once a worker has it. Processed, it goes on
    (or is delivered here); nothing fails, so nothing comes back.

    A message left its line when the worker took it, or (``prefetched``) when the broker
    dispatched it to the consumer's buffer (stamped on the message)."""

    begin = None  # nothing to do when a worker takes a message
    deliver: Callable[[Message, float, float], None] | None

    def __init__(self, env: simpy.Environment, gi: int, forward: Destination | None,
                 rec: Recorder, server: Server, prefetched: bool = False) -> None:
        self.env = env
        self.gi = gi
        self.server = server
        self.prefetched = prefetched
        self._stage = rec.stages.append
        self._put = None if forward is None else forward.put
        self._visit = rec.visits.append
        self._finished = rec.finished.append
        # The plain path's settle for one message (it costs a list and a loop less).
        self.deliver = (self._deliver if forward is None and not prefetched and server.plain
                        else None)

    def _deliver(self, m: Message, start: float, end: float) -> None:
        mid, gi = m.id, self.gi
        self._visit((mid, m.queue, m.arrived, start, end, gi))
        self._finished((mid, end, DELIVERED, gi))

    def done(self, slot: int, held: list[Message], start: float, end: float) -> Event | None:
        visit, gi, put, prefetched = self._visit, self.gi, self._put, self.prefetched
        if not self.server.plain:
            for row in self.server.taken(slot):
                self._stage(row)
        if put is None:  # the plain path: delivered here
            finished = self._finished
            for m in held:
                mid = m.id
                visit((mid, m.queue, m.arrived, m.left if prefetched else start, end, gi))
                finished((mid, end, DELIVERED, gi))
            return None
        for m in held:
            visit((m.id, m.queue, m.arrived, m.left if prefetched else start, end, gi))
        return _hand_on(put, held, self._finished, end, gi)

    def crashed(self, slot: int, held: list[Message], now: float, start: float) -> None:
        """Never called: a group that can crash settles with :class:`Acks`."""
        raise AssertionError("a plain group cannot crash")

    def holding(self, slot: int, held: list[Message],
                start: float) -> list[tuple[int, int, float, float]]:
        prefetched = self.prefetched
        return [(m.id, m.queue, m.arrived, m.left if prefetched else start) for m in held]

    def inside(self) -> int:
        return 0


class Acks:
    """Acknowledgements, failures, retries, dedup and crashes (docs/reliability.md).

    With ``manual`` acks a message is the broker's until the worker acks it: a failure
    gives it back (after the back-off) until ``max_attempts``, then it is dead-lettered; a
    crash gives back what the worker held; a visibility timeout gives it back while the
    worker still works on its copy (now *stale*: its ack is refused, as SQS only takes the
    latest receipt handle, so the message is settled by the worker it was handed to last;
    the stale processing's effects still count, which is how duplicates arise). With auto
    acks a failure or a crash loses the message. ``dedup`` acks a message whose effects
    were applied before (on this visit) without applying them again, and recognises a
    producer's resend by its identity (producer and sequence, ``Request.root``): a resend
    of a message whose effects were applied ends here, ``DEDUPLICATED``.

    What is logged follows the message's own path: a worker's visit ends when it is done
    with the message or when the broker takes the message back; work the path does not
    need (a stale copy's, or any processing of a message already settled) is logged as a
    repeat (``group = REPEAT - gi``: in the queue's length, not in waits or the message's
    breakdown). A worker notes where and
    since when each message waited when it takes it: the message object may be given back
    and taken by another worker while it still holds its copy.
    """

    deliver = None  # every processing settles through done()

    def __init__(
        self, env: simpy.Environment, gi: int, queues: Sequence[Queue],
        forward: Destination | None, rec: Recorder, server: Server, *, manual: bool,
        visibility: float | None, failure: float, coin: Callable[[], float],
        max_attempts: int | None, backoff: Backoff | None, dedup: bool, poison: float,
        prefetched: bool = False,
    ) -> None:
        self.env = env
        self.gi = gi
        self.server = server
        self.prefetched = prefetched
        self.queues: dict[int, ReliableQueue] = {}
        for q in queues:
            assert isinstance(q, ReliableQueue)  # the model builds them so
            self.queues[q.index] = q
        self._put = None if forward is None else forward.put
        self.manual = manual
        self.visibility = visibility
        self.failure = failure
        self.coin = coin
        self.max_attempts = INF if max_attempts is None else max_attempts
        self.backoff = backoff
        self.dedup = dedup
        self.poison = poison
        self.poisoned: dict[int, bool] = {}  # decided at a message's first processing here
        # Per message and visit (engine.core.key):
        self.tries: dict[tuple[int, int], int] = {}
        self.waited: dict[tuple[int, int], float] = {}  # last back-off (decorrelated)
        self.applied: set[tuple[int, int]] = set()  # processed to the end: effects applied
        self.cut: set[tuple[int, int]] = set()  # cut short by a crash (effects may remain)
        self.duplicated: set[tuple[int, int]] = set()  # counted once each in `duplicates`
        # With dedup, per identity of a message its producer may resend (its first send's
        # id) and visit: the id of the send whose effects were applied. Forgotten when the
        # producer is acked after a single send (Tracker.forget).
        self.identities: dict[int, dict[int, int]] = {}
        self.backing_off: dict[int, tuple[Message, int]] = {}
        # Per worker, by message id: what it took (message, arrived, left, queue), its
        # visibility timers, and when the broker took a message back from it (stale).
        self.took: dict[int, dict[int, tuple[Message, float, float, int]]] = {}
        self.tokens: dict[int, dict[int, Event]] = {}
        self.stale: dict[int, dict[int, float]] = {}
        self._visit = rec.visits.append
        self._finished = rec.finished.append
        self._event = rec.events.append
        self._stage = rec.stages.append
        self.repeat = REPEAT - gi

    def begin(self, slot: int, held: list[Message], start: float) -> None:
        """Note each message taken; acknowledge at once the ones dedup has seen."""
        took = self.took.setdefault(slot, {})
        tokens = self.tokens.setdefault(slot, {})
        stale = self.stale.setdefault(slot, {})
        event, gi, vis = self._event, self.gi, self.visibility
        keep = []
        for m in held:
            mid, k = m.id, key(m)
            self.tries[k] = self.tries.get(k, 0) + 1
            event((mid, ATTEMPT, gi, start))
            if self.poison > 0 and mid not in self.poisoned:
                self.poisoned[mid] = self.coin() < self.poison
            left = m.left if self.prefetched else start
            if self.dedup and self._resent(m):
                # A resend of a message whose effects were applied: acked unprocessed.
                event((mid, DISCARDED, gi, start))
                self._drop_resend(m, self.queues[m.queue], m.arrived, left, start)
                continue
            if self.dedup and k in self.applied:
                # Seen before: acknowledged without processing, which settles it.
                event((mid, DISCARDED, gi, start))
                q = self.queues[m.queue]
                if self._settle(m, q):
                    self._visit((mid, m.queue, m.arrived, left, start, gi))
                    _hand_on(self._put, [m if self._put is None else next_visit(m)],
                             self._finished, start, gi)
                else:
                    self._visit((mid, m.queue, m.arrived, left, start, self.repeat))
                continue
            took[mid] = (m, m.arrived, left, m.queue)
            stale.pop(mid, None)
            if vis is not None:
                token = tokens[mid] = self.env.timeout(vis, (slot, m))
                token.callbacks.append(self._visibility_over)
            keep.append(m)
        held[:] = keep

    def done(self, slot: int, held: list[Message], start: float, end: float) -> Event | None:
        took, tokens, stale = self.took[slot], self.tokens[slot], self.stale[slot]
        event, gi, p, coin = self._event, self.gi, self.failure, self.coin
        steps = {row[0]: row for row in self.server.taken(slot)}
        out = []
        for m in held:
            mid = m.id
            _, arrived, left, qi = took.pop(mid)
            tokens.pop(mid, None)
            back = stale.pop(mid, None)  # when the broker took it back, if it did
            q = self.queues[qi]
            bad = self.poison > 0 and self.poisoned.get(mid, False)
            if bad or (p > 0 and coin() < p):
                event((mid, FAILED, gi, end))
                if back is not None:
                    self._repeat(mid, qi, back, back, end, steps)
                    continue  # the broker has taken it back already
                self._log(mid, qi, arrived, left, end, steps)
                if self.manual:
                    self._give_back(m, q, failed=True)
                elif q.settle(m, LOST, NOWHERE):  # auto ack: the broker deleted it
                    event((mid, CRASH_LOST, gi, end))
                continue
            if self.dedup and isinstance(m, Request) and m.reply_to.resends:
                if self._resent(m):  # another send's processing finished first
                    event((mid, DISCARDED, gi, end))
                    if back is not None:
                        self._repeat(mid, qi, back, back, end, steps)
                    else:
                        self._drop_resend(m, q, arrived, left, end, steps)
                    continue
                self.identities.setdefault(m.root, {})[m.visit] = mid
            if self.visibility is not None or (self.cut and key(m) in self.cut):
                self._applied(m)  # (only a copy given back can be processed twice)
            if back is not None:  # stale: its ack is refused
                self._repeat(mid, qi, back, back, end, steps)
            elif self._settle(m, q):
                self._log(mid, qi, arrived, left, end, steps)
                out.append(m if self._put is None else next_visit(m))
            else:
                self._repeat(mid, qi, arrived, left, end, steps)
        return _hand_on(self._put, out, self._finished, end, gi)

    def _resent(self, m: Message) -> bool:
        """True for a send of a message another send of which had its effects applied."""
        if not isinstance(m, Request):
            return False
        seen = self.identities.get(m.root)
        if seen is None:
            return False
        applied = seen.get(m.visit)
        return applied is not None and applied != m.id

    def _drop_resend(self, m: Message, q: ReliableQueue, arrived: float, left: float,
                     end: float, steps: dict[int, tuple[int, int, float, float]] | None = None
                     ) -> None:
        """Settle a recognised resend: its own message ends here, not delivered."""
        if self._settle(m, q):
            self._log(m.id, q.index, arrived, left, end, steps or {})
            self._finished((m.id, end, DEDUPLICATED, self.gi))
        else:
            self._visit((m.id, q.index, arrived, left, end, self.repeat))

    def forget(self, root: int) -> None:
        """The producer of ``root`` was acked after its only send: no copy will come."""
        self.identities.pop(root, None)

    def _log(self, mid: int, qi: int, arrived: float, left: float, end: float,
             steps: dict[int, tuple[int, int, float, float]]) -> None:
        """A visit on the message's path, with its decode step."""
        self._visit((mid, qi, arrived, left, end, self.gi))
        row = steps.get(mid)
        if row is not None:
            self._stage(row)

    def _repeat(self, mid: int, qi: int, arrived: float, left: float, end: float,
                steps: dict[int, tuple[int, int, float, float]]) -> None:
        """Work on a copy whose fate is decided elsewhere: logged apart, decode and all."""
        self._visit((mid, qi, arrived, left, end, self.repeat))

    def crashed(self, slot: int, held: list[Message], now: float, start: float) -> None:
        """Worker ``slot`` crashed holding ``held``: given back (manual) or lost."""
        took, tokens, stale = (self.took.setdefault(slot, {}), self.tokens.setdefault(slot, {}),
                               self.stale.setdefault(slot, {}))
        gi = self.gi
        # Decode steps cut short end at the crash.
        steps = {row[0]: (row[0], row[1], row[2], min(row[3], now))
                 for row in self.server.taken(slot) if row[2] < now}
        for m in held:
            mid, k = m.id, key(m)
            entry = took.pop(mid, None)
            tokens.pop(mid, None)
            back = stale.pop(mid, None)
            if entry is None:  # never started: handed over at the crash, or prefetched
                arrived, qi = m.arrived, m.queue
                left = m.left if self.prefetched else now
            else:
                _, arrived, left, qi = entry
            if back is not None:
                self._repeat(mid, qi, back, back, now, steps)
                continue  # taken back already: its visit ended then
            q = self.queues[qi]
            if k in q.settled:
                self._repeat(mid, qi, arrived, left, now, steps)
                continue
            self._log(mid, qi, arrived, left, now, steps)
            if self.manual:
                if entry is not None and not self.dedup:
                    self.cut.add(k)
                self._give_back(m, q, failed=False)
            elif q.settle(m, LOST, NOWHERE):
                self._event((mid, CRASH_LOST, gi, now))

    def _visibility_over(self, ev: Event) -> None:
        slot, msg = ev.value  # type: ignore[misc]  # the timeout's value
        tokens = self.tokens[slot]
        if tokens.get(msg.id) is not ev:
            return  # finished, or crashed, in time
        del tokens[msg.id]
        now = self.env.now
        self.stale[slot][msg.id] = now
        # For the broker the message left this worker now: its visit ends here (the
        # worker's service goes on, and is logged as a service).
        _, arrived, left, qi = self.took[slot][msg.id]
        q = self.queues[qi]
        if key(msg) in q.settled:  # a duplicate processing ran out of time: no fate to change
            self._visit((msg.id, qi, arrived, left, now, self.repeat))
            return
        self._visit((msg.id, qi, arrived, left, now, self.gi))
        self._give_back(msg, q, failed=False)

    def _give_back(self, msg: Message, q: ReliableQueue, failed: bool) -> None:
        """Requeue (after the back-off, for a failure), or dead-letter after max_attempts."""
        k = key(msg)
        if k in q.settled:
            return
        tries = self.tries.get(k, 0)
        if tries >= self.max_attempts:
            self.tries.pop(k, None)
            self.waited.pop(k, None)
            q.to_dead_letter(msg)
            return
        wait = 0.0
        if failed and self.backoff is not None:
            wait = self.backoff.delay(tries, self.waited.get(k, 0.0))
            self.waited[k] = wait
        if wait <= 0:
            q.requeue(msg)
            return
        self.backing_off[msg.id] = (msg, q.index)
        ev = self.env.timeout(wait, msg)
        ev.callbacks.append(self._retry)

    def _retry(self, ev: Event) -> None:
        msg: Message = ev.value  # type: ignore[assignment]
        _, qi = self.backing_off.pop(msg.id)
        q = self.queues[qi]
        if key(msg) not in q.settled:
            q.requeue(msg)

    def _applied(self, msg: Message) -> None:
        """A processing ran to its end: its effects are applied (a second time: a
        duplicate, or discarded by dedup)."""
        mid, k, gi, now = msg.id, key(msg), self.gi, self.env.now
        if k in self.applied:
            if self.dedup:
                self._event((mid, DISCARDED, gi, now))
            elif k not in self.duplicated:
                self.duplicated.add(k)
                self._event((mid, DUPLICATE, gi, now))
            return
        if k in self.cut:  # the crashed attempt's effects were applied once already
            self.duplicated.add(k)
            self._event((mid, DUPLICATE, gi, now))
        self.applied.add(k)

    def _settle(self, msg: Message, q: ReliableQueue) -> bool:
        """The ack: True when it decides the message's outcome (delivered, or passed on)."""
        k = key(msg)
        if k in q.settled:
            return False
        q.settled.add(k)
        self.tries.pop(k, None)
        self.waited.pop(k, None)
        if self.visibility is None:  # no copy can come back: what was kept for it can go
            self.poisoned.pop(msg.id, None)
            self.cut.discard(k)
            self.applied.discard(k)
        return True

    def holding(self, slot: int, held: list[Message],
                start: float) -> list[tuple[int, int, float, float]]:
        """What worker ``slot`` holds that is still the broker's to account for."""
        took, stale = self.took.get(slot, {}), self.stale.get(slot, {})
        out = []
        for m in held:
            entry = took.get(m.id)
            if entry is None or m.id in stale:
                continue
            _, arrived, left, qi = entry
            if key(m) not in self.queues[qi].settled:
                out.append((m.id, qi, arrived, left))
        return out

    def inside(self) -> int:
        """Messages waiting out a back-off."""
        return sum(key(m) not in self.queues[qi].settled
                   for m, qi in self.backing_off.values())


Settler = AutoAck | Acks
