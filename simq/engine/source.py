"""Producers: one loop with a pacer in front and the outbound chain behind it.

The :class:`Pacer` says when a sender sends: open loop (after each interarrival, or by a
time-varying arrival process), windowed (at most ``window`` messages unacknowledged), or
as closed-loop sync clients (think, send, wait for the reply). A :class:`Tracker` follows
the messages of any sender that learns of their processing: the reply's trip back, the
send ``timeout`` and its retries (with back-off, max attempts and a retry budget), and who
waits for what. Behind the loop the message meets its outbound chain (engine.outbound),
then the network and the broker.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import simpy
from simpy.events import Event, ProcessGenerator

from simq.engine.core import Destination, Message, Request
from simq.engine.idempotence import Door
from simq.engine.order import Sequencer
from simq.engine.recorder import ACKED, GAVE_UP, RETRIED, TIMED_OUT, Recorder
from simq.engine.retry import Backoff

__all__ = ["Pacer", "Source", "Tracker"]

NAN = math.nan


@dataclass(frozen=True)
class Pacer:
    """When a sender sends: ``gap()`` after its last send (an interarrival, or a sync
    client's think time), once ``space()`` lets it (a window; ``None``: always);
    ``clients`` senders in parallel, each waiting for its reply when ``waits``."""

    gap: Callable[[], float]
    clients: int = 1
    space: Callable[[], Event | None] | None = None
    waits: bool = False


class Tracker:
    """What a sender knows of the messages it sent and has not heard back about.

    A reply (the end of the line's ack, engine.worker.Replier) resolves its message. With
    a ``timeout``, a send not acknowledged in time is sent again after the back-off (a
    new message: its own id, `parent` = the first send), up to ``max_attempts`` sends and
    within the retry ``budget`` (retries <= floor + budget x first sends); then the
    sender gives up and the message is resolved. The original send is not withdrawn: the
    broker still holds it and a consumer still does its work, which is how retries
    amplify load. One timer event per send.

    Every send of a message keeps its identity (``root``, with the producer: its sequence
    number). An idempotent producer's ``door`` at the broker is told of each send and of
    each message resolved; ``forget`` are the dedup consumers' hooks, called with a message
    acked after a single send (no copy of it can come any more).
    """

    def __init__(
        self, env: simpy.Environment, index: int, rec: Recorder, *,
        heads: Sequence[Destination], reply: Callable[[], float], ids: itertools.count[int],
        size: Callable[[], float],
        timeout: float | None = None, max_attempts: int = 1, backoff: Backoff | None = None,
        budget: float | None = None, budget_floor: int = 0, window: int | None = None,
        order: Sequencer | None = None,
        door: Door | None = None, forget: Sequence[Callable[[int], None]] = (),
    ) -> None:
        self.env = env
        self.order = order
        self.index = index
        self.reply_latency = reply
        self.ids = ids
        self.size = size
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.budget = math.inf if budget is None else budget
        self.budget_floor = budget_floor
        self.window = window
        # Only a sender with a timeout and more than one send can make copies.
        self.resends = timeout is not None and max_attempts > 1
        self.door = door
        self.forget = list(forget) if self.resends else []
        self.heads = list(heads)  # each client's outbound chain, where its retries go
        self.firsts = 0
        self.retries = 0
        self.delayed = 0  # retries waiting out their back-off
        self.outstanding = 0  # unresolved messages (a window counts them)
        # first send's id -> [sends so far, last back-off, client]
        self.pending: dict[int, list[float]] = {}
        # first send's id -> the first send, whose send order its retries keep
        self.firsts_sent: dict[int, Message] = {}
        self.waiters: dict[int, Event] = {}  # a sync client waits for its message
        self._space: Event | None = None
        self._created = rec.created.append
        self._copies = rec.copies.append
        self._event = rec.events.append
        self.last_sent = NAN

    def sent(self, msg: Request, client: int, wait: bool) -> Event | None:
        """A first send: followed from now on; the event its client waits for, if any."""
        root = msg.id
        self.firsts += 1
        self.outstanding += 1
        self.pending[root] = [1.0, 0.0, float(client)]
        if self.door is not None:
            self.door.sent(root)
        if self.timeout is not None:
            self.firsts_sent[root] = msg
            timer = self.env.timeout(self.timeout, msg)
            timer.callbacks.append(self._timed_out)
        if wait:
            ev = self.waiters[root] = Event(self.env)
            return ev
        return None

    def space(self) -> Event | None:
        """For a window: an event that fires when a message is resolved, or None."""
        if self.window is None or self.outstanding < self.window:
            return None
        self._space = Event(self.env)
        return self._space

    def acked(self, msg: Request) -> None:
        root = msg.root
        state = self.pending.pop(root, None)
        if state is None:
            return  # a late or second ack: the message was resolved already
        self.firsts_sent.pop(root, None)
        if self.timeout is not None:
            self._event((root, ACKED, self.index, self.env.now))
        if state[0] == 1:
            for forget in self.forget:
                forget(root)
        self._resolved(root)

    def gone(self, msg: Request) -> None:
        """A send of ``msg`` ended on its way to the broker (lost on a link)."""
        if self.door is not None:
            self.door.gone(msg.root)

    def _resolved(self, root: int) -> None:
        if self.door is not None:
            self.door.resolved(root)
        self.outstanding -= 1
        ev = self.waiters.pop(root, None)
        if ev is not None:
            ev.succeed()
        if self._space is not None:
            space, self._space = self._space, None
            space.succeed()

    def _timed_out(self, ev: Event) -> None:
        msg: Request = ev.value  # type: ignore[assignment]  # the timer's value
        first = msg.root
        state = self.pending.get(first)
        if state is None:
            return  # acked in time (or given up)
        now = self.env.now
        self._event((first, TIMED_OUT, self.index, now))
        sends = int(state[0])
        if msg.n < sends:
            return  # a later send of this message is under way
        allowed = self.budget_floor + self.budget * self.firsts
        if sends >= self.max_attempts or self.retries + 1 > allowed:
            del self.pending[first]
            self.firsts_sent.pop(first, None)
            if sends == 1:
                for forget in self.forget:
                    forget(first)
            self._event((first, GAVE_UP, self.index, now))
            self._resolved(first)
            return
        self.retries += 1
        state[0] = sends + 1
        wait = 0.0 if self.backoff is None else self.backoff.delay(sends, state[1])
        state[1] = wait
        if wait <= 0:
            self._retry_now(first)
            return
        self.delayed += 1
        t = self.env.timeout(wait, first)
        t.callbacks.append(self._after_backoff)

    def _after_backoff(self, ev: Event) -> None:
        self.delayed -= 1
        first: int = ev.value  # type: ignore[assignment]
        if first in self.pending:  # a late ack may have come in the meantime
            self._retry_now(first)
        else:
            self.retries -= 1  # the retry was not needed after all

    def _retry_now(self, first: int) -> None:
        state = self.pending[first]
        n, client = int(state[0]), int(state[2])
        cid = next(self.ids)
        now = self.env.now
        self._copies((cid, first))
        self._event((first, RETRIED, self.index, now))
        msg = Request(cid, now, self.size(), self, self.index, root=first, n=n)
        self._created((self.index, now, msg.size))
        if self.order is not None:
            self.order.again(msg, self.firsts_sent[first])
        if self.door is not None:
            self.door.sent(first)
        self.last_sent = now
        assert self.timeout is not None  # only a timeout retries
        timer = self.env.timeout(self.timeout, msg)
        timer.callbacks.append(self._timed_out)
        # Sent from a timer, a retry cannot wait for room: like a link, it waits at the
        # full queue's door.
        self.heads[client].put(msg)


class Source:
    """A producer: ``pacer.clients`` long-lived processes running one loop (pace, make
    the message, hand it to the client's outbound chain, wait when blocked or for the
    reply)."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, rec: Recorder, *,
        pacer: Pacer, heads: Sequence[Destination], size: Callable[[], float],
        ids: itertools.count[int], limit: float, sent: list[int], start: float,
        stop: float | None, tracker: Tracker | None = None,
        order: Sequencer | None = None, keys: Callable[[], int] | None = None,
    ) -> None:
        assert len(heads) == pacer.clients
        self.order = order
        self.keys = keys
        self.env = env
        self.index = index
        self.name = name
        self.pacer = pacer
        self.heads = list(heads)
        self.size = size
        self.ids = ids
        # First sends all producers may make (run.messages), and how many they made:
        # retries, fan-out copies and a starting backlog are not counted.
        self.limit = limit
        self.sent = sent
        self.start = start
        self.stop = math.inf if stop is None else stop
        self.tracker = tracker
        self._last_sent = NAN
        self.blocked_since = [NAN] * pacer.clients
        self._created = rec.created.append
        self._blocked = rec.blocked.append
        for k in range(pacer.clients):
            env.process(self._send(k))

    @property
    def last_sent(self) -> float:
        """When this producer last created a message (a retry included)."""
        t = self.tracker.last_sent if self.tracker is not None else NAN
        if math.isnan(self._last_sent):
            return t
        return self._last_sent if math.isnan(t) else max(t, self._last_sent)

    def _send(self, client: int) -> ProcessGenerator:
        env = self.env
        pacer = self.pacer
        gap, space, waits = pacer.gap, pacer.space, pacer.waits
        size, put = self.size, self.heads[client].put
        created, ids, index = self._created, self.ids, self.index
        log, blocked_since = self._blocked, self.blocked_since
        limit, stop, sent = self.limit, self.stop, self.sent
        tracker = self.tracker
        stamp = self.order.stamper(index, self.keys) if self.order is not None else None
        if self.start > 0:
            yield env.timeout(self.start)
        while True:
            yield env.timeout(gap())
            if space is not None:
                room = space()
                if room is not None:
                    yield room
            now = env.now
            if now >= stop:
                return
            if sent[0] >= limit:
                return
            sent[0] += 1
            mid = next(ids)
            self._last_sent = now
            if tracker is None:
                msg = Message(mid, now, size(), index)
                created((index, now, msg.size))
                if stamp is not None:
                    stamp(msg)
                blocked = put(msg)
                waiter = None
            else:
                msg = Request(mid, now, size(), tracker, index)
                created((index, now, msg.size))
                if stamp is not None:
                    stamp(msg)
                waiter = tracker.sent(msg, client, waits)
                blocked = put(msg)
            if blocked is not None:  # backpressure: wait until the queue has room
                blocked_since[client] = now
                yield blocked
                blocked_since[client] = NAN
                log((index, now, env.now))
            if waiter is not None:
                yield waiter

    def close(self) -> None:
        """Log the senders still held up by backpressure at the end."""
        for since in self.blocked_since:
            if since == since:
                self._blocked((self.index, since, NAN))
