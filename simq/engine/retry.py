"""Backoff policies: how long a failed message waits before it is offered again."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Request, Requester
from simq.record import ACKED, GAVE_UP, RETRIED, TIMED_OUT, Recorder

__all__ = ["Attempt", "Backoff", "RetryingProducer"]


class Attempt(Request):
    """One send of a message by a producer with a timeout: which message, which send."""

    __slots__ = ("root", "n")

    def __init__(self, id: int, sent: float, size: float, reply_to: Requester, root: int,
                 n: int, origin: int = -1) -> None:
        super().__init__(id, sent, size, reply_to, None, origin)
        self.root = root
        self.n = n


class Backoff:
    """One policy of :data:`simq.relspec.BACKOFFS`, drawing its jitter from ``uniform``.

    ``delay(n, previous)`` is the wait before retry ``n`` (1 for the first retry);
    ``previous`` is the wait before the last retry (decorrelated jitter grows from it).
    """

    def __init__(self, policy: str, base: float, multiplier: float, cap: float,
                 uniform: Callable[[], float]) -> None:
        self.policy = policy
        self.base = base
        self.multiplier = multiplier
        self.cap = cap
        self.uniform = uniform

    def delay(self, n: int, previous: float) -> float:
        base, cap = self.base, self.cap
        if self.policy == "fixed":
            return min(cap, base)
        if self.policy == "decorrelated":
            # AWS's "decorrelated jitter": uniform between base and 3x the last wait.
            last = max(previous, base)
            return min(cap, base + self.uniform() * (3 * last - base))
        # Powers can overflow a float long before the cap matters: clamp the exponent.
        grown = min(cap, base * self.multiplier ** min(n - 1, 1000)) if base > 0 else 0.0
        if math.isinf(grown):
            grown = cap
        if self.policy == "exponential":
            return grown
        if self.policy == "full-jitter":
            return self.uniform() * grown
        return grown / 2 + self.uniform() * grown / 2  # equal-jitter


class RetryingProducer:
    """An open-loop source whose sends wait for an ack up to ``timeout``; a send that
    times out is sent again (a new copy: its own message, `parent` = the first send)
    after the back-off, up to ``max_attempts`` sends, within the retry ``budget``.

    The original send is not withdrawn: the broker still holds it and a consumer still
    does its work, which is how retries amplify load. One timer event per send.
    """

    def __init__(
        self, env: simpy.Environment, index: int, name: str, dest: Destination,
        interarrival: Callable[[], float], size: Callable[[], float], ids: itertools.count,
        limit: float, start: float, stop: float | None, rec: Recorder, *,
        timeout: float, reply: Callable[[], float], max_attempts: int,
        backoff: Backoff | None, budget: float | None, budget_floor: int,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.dest = dest
        self.interarrival = interarrival
        self.size = size
        self.ids = ids
        self.limit = limit
        self.start = start
        self.stop = math.inf if stop is None else stop
        self.last_sent = math.nan
        self.timeout = timeout
        self.reply_latency = reply
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.budget = math.inf if budget is None else budget
        self.budget_floor = budget_floor
        self.firsts = 0
        self.retries = 0
        self.pending: dict[int, list[float]] = {}  # first id -> [sends, last wait]
        self.delayed = 0  # retries waiting out their back-off
        self._created = rec.created.append
        self._copies = rec.copies.append
        self._event = rec.events.append
        env.process(self._send())

    def _send(self):  # type: ignore[no-untyped-def]
        env = self.env
        gap, size = self.interarrival, self.size
        ids, limit, stop = self.ids, self.limit, self.stop
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
            self.firsts += 1
            self.pending[mid] = [1.0, 0.0]
            self._out(mid, mid, 1, now, size())

    def _out(self, mid: int, first: int, n: int, now: float, size: float) -> None:
        msg = Attempt(mid, now, size, self, first, n, self.index)
        self._created((self.index, now, size))
        self.last_sent = now
        timer = self.env.timeout(self.timeout, msg)
        timer.callbacks.append(self._timed_out)
        # Like a link, the sender is not held up by a full queue (the send waits at its
        # door); the timeout runs all the same.
        self.dest.put(msg)

    def acked(self, msg: Request) -> None:
        first = msg.root  # type: ignore[attr-defined]  # always an Attempt here
        if self.pending.pop(first, None) is not None:
            self._event((first, ACKED, self.index, self.env.now))

    def _timed_out(self, ev: Event) -> None:
        msg: Attempt = ev.value  # type: ignore[assignment]  # the timer's value
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
            self._event((first, GAVE_UP, self.index, now))
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
        n = int(self.pending[first][0])
        cid = next(self.ids)
        now = self.env.now
        self._copies((cid, first))
        self._event((first, RETRIED, self.index, now))
        self._out(cid, first, n, now, self.size())
