"""A broker queue: a waiting line (FIFO or by priority), an optional bound and its overflow
policy; and the broker's reliability semantics on top (expiry, dead letters, outages,
messages given back by consumers).

One cohesive thing over ~400 lines: the line, its bound and the reliability semantics are
one queue's state, changed together by every put and take."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator

import simpy
from simpy.events import Event, ProcessGenerator

from simq.engine.core import Destination, Message, key, next_visit
from simq.engine.line import Line
from simq.engine.recorder import (
    BACK,
    DEAD_LETTER,
    DEAD_LETTERED,
    DROPPED,
    EXPIRED,
    LOST,
    NOWHERE,
    OUTAGE,
    OUTAGE_LOST,
    REAPED,
    REQUEUED,
    Recorder,
)

__all__ = ["DeadLetter", "Levels", "Queue", "ReliableQueue", "wake_parked"]

NAN = math.nan
INF = math.inf

# A FIFO waiting line: a deque of messages, or the same kept as numbers (engine.line).
Fifo = deque[Message] | Line


class Queue:
    """Messages wait in a line; idle workers park on a bare event.

    An arriving message is handed straight to a parked worker when there is one (two heap
    events per message per station, about twice as fast as ``simpy.Store``); otherwise it
    waits in line, or meets the overflow policy when the line is full.

    ``line`` is the waiting line (a deque, or :class:`Levels` for priorities); ``on_take``
    is told of every message a worker takes (a sender's flow-control credit comes back).
    """

    def __init__(
        self, env: simpy.Environment, index: int, name: str, rec: Recorder, *,
        capacity: float = INF, overflow: str = "drop-new",
        line: Fifo | Levels | None = None,
        on_take: Callable[[Message], None] | None = None,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.capacity = capacity
        self.overflow = overflow
        self.items: Fifo | Levels = deque() if line is None else line
        self.idle: deque[Event] = deque()  # parked workers (or prefetch credits)
        self.blocked: deque[tuple[Message, Event]] = deque()  # senders waiting for room
        self.on_take = on_take
        # Each time the line reaches a new length: [time, length, when it was next empty
        # (NaN until then)]. Increasing in time and length, so the longest line up to any
        # time t is the last entry at or before t; streaming statistics read this instead
        # of keeping every visit.
        self.peaks: list[list[float]] = [[0.0, 0, 0.0]]
        self.peak = 0
        self._draining = False  # some entry waits for the line to empty
        self._finished = rec.finished.append
        self._visit = rec.visits.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        msg.arrived = now
        msg.queue = self.index
        if self.idle:
            if self.on_take is not None:
                self.on_take(msg)
            self.idle.popleft().succeed(msg)
            return None
        items = self.items
        if len(items) < self.capacity:
            items.append(msg)
            if len(items) > self.peak:
                self.peak = len(items)
                self.peaks.append([now, self.peak, NAN])
                self._draining = True
            return None
        if self.overflow == "block":
            ev = Event(self.env)
            self.blocked.append((msg, ev))
            return ev
        if self.overflow == "drop-oldest" and self.items:
            old = self.items.popleft()
            self._visit((old.id, self.index, old.arrived, now, NAN, -1))
            self._drop(old, now)
            self.items.append(msg)
            return None
        self._drop(msg, now)
        return None

    def _drop(self, msg: Message, now: float) -> None:
        self._finished((msg.id, now, DROPPED, self.index))

    def take(self) -> Message | None:
        """The next message for a free worker, or None when there is none."""
        items = self.items
        if items:
            msg = items.popleft()
            if self.blocked:
                self._admit()
            elif not items and self._draining:
                self._drained()
        elif self.blocked:  # capacity 0: the blocked sender hands over directly
            msg, ev = self.blocked.popleft()
            msg.arrived = self.env.now
            msg.queue = self.index
            ev.succeed()
        else:
            return None
        if self.on_take is not None:
            self.on_take(msg)
        return msg

    def _admit(self) -> None:
        msg, ev = self.blocked.popleft()
        msg.arrived = self.env.now
        msg.queue = self.index
        self.items.append(msg)
        ev.succeed()

    def wake_all(self) -> None:
        """Wake every parked worker with nothing (so that one asked to leave can)."""
        wake_parked(self.idle)

    def inside(self) -> int:
        """How many messages this queue holds (in line or at the door), for conservation."""
        return len(self.items) + len(self.blocked)

    def close(self) -> int:
        """Log the waits still open at the end of the run; how many messages are here."""
        for m in self.items:
            self._visit((m.id, self.index, m.arrived, NAN, NAN, -1))
        return self.inside()

    def _drained(self) -> None:
        now = self.env.now
        for entry in reversed(self.peaks):
            if entry[2] == entry[2]:  # already drained (not NaN): so is everything before
                break
            entry[2] = now
        self._draining = False

    def reset_peak(self) -> None:
        """Start the record of new lengths again from the length now (the window opens)."""
        now = self.env.now
        self.peak = len(self.items)
        self.peaks = [[now, self.peak, NAN if self.peak else now]]
        self._draining = self.peak > 0



def wake_parked(idle: deque[Event]) -> None:
    """Wake every worker parked on ``idle`` with nothing: it looks again (a worker asked
    to leave leaves; the others park again)."""
    parked = list(idle)
    idle.clear()
    for ev in parked:
        ev.succeed(None)


class DeadLetter:
    """Where a queue's dead letters go: ``named`` when the scenario gives a dead-letter
    queue; ``dest`` is that queue when it has consumers (messages live on there),
    ``None`` when dead-lettering is the message's final outcome."""

    __slots__ = ("named", "dest")

    def __init__(self, named: bool = False, dest: Destination | None = None) -> None:
        self.named = named
        self.dest = dest


class _Forgets(set):  # type: ignore[type-arg]
    """The settled record of a queue whose messages never have two copies (no consumer
    reading it has a visibility timeout): nothing can ask about a message once it is
    settled, so nothing is kept, and memory stays flat however long the run."""

    def add(self, k: object) -> None:
        pass


class ReliableQueue(Queue):
    """A queue with the broker's reliability semantics (docs/reliability.md).

    Messages may expire (``ttl``: at the head, as RabbitMQ does, or ``anywhere``: exactly
    when their time is up, their own per-message deadline included) and be dead-lettered;
    consumers give messages back (``requeue``) and decide outcomes (``settle``); during an
    outage senders are held (or turned away) and workers find nothing to take, and an
    in-memory (not ``persistent``) queue loses what waits in it.

    The bookkeeping rests on one rule: at any time a message that has not reached its
    final outcome has exactly one *live* place. ``settled`` holds the messages (id and
    visit, engine.core.key) whose outcome here is decided; a copy of a settled message
    still in a line (a *phantom*, left by a worker whose visibility timeout ran out) is
    processed like any other, which is how duplicates arise, but it is not counted inside.
    """

    def __init__(
        self, env: simpy.Environment, index: int, name: str, rec: Recorder, *,
        capacity: float = INF, overflow: str = "drop-new",
        line: Fifo | Levels | None = None,
        on_take: Callable[[Message], None] | None = None,
        ttl: float | None = None, expiry: str = "head",
        dead_letter: DeadLetter | None = None,
        persistent: bool = True, when_down: str = "block", deadlines: bool = False,
        copies: bool = True, retains: bool = False, keep: float = INF,
    ) -> None:
        super().__init__(env, index, name, rec, capacity=capacity, overflow=overflow,
                         line=line, on_take=on_take)
        self.ttl = INF if ttl is None else ttl
        # A topic's retention (docs/patterns.md): ``retains``, the ttl is the log's age
        # limit; ``keep``, the log holds the newest ``keep`` messages of the partition, so
        # a group's unread messages beyond them are gone. Either way they are expired for
        # this group, never dead-lettered: the log deletes, it does not reject.
        self.retains = retains
        self.keep = keep
        self.dead_letter = DeadLetter() if dead_letter is None else dead_letter
        # ``copies``: a message may be in two places at once (a visibility timeout gave it
        # back while a worker still holds it); only then is the record needed.
        self.settled: set[tuple[int, int]] = set() if copies else _Forgets()
        self.persistent = persistent
        self.when_down = when_down
        self.down = False
        self.held: list[tuple[Message, Event]] = []  # senders held during an outage
        self._event = rec.events.append
        self._wake: Event | None = None
        # Per-message deadlines come from a producer's ttl (``deadlines``: some producer
        # has one); without either, a take never checks.
        self._expires = ttl is not None or deadlines
        if ttl is not None and expiry == "anywhere":
            env.process(self._reap())

    # Faults ----------------------------------------------------------------------------
    def fail(self) -> None:
        """The broker goes down: an in-memory queue loses what waits in it."""
        now = self.env.now
        self.down = True
        self._event((-1, OUTAGE, self.index, now))
        if self.persistent:
            return
        lost = list(self.items)
        while self.items:
            self.items.popleft()
        for m in lost:
            self._visit((m.id, self.index, m.arrived, now, NAN, REAPED))
            if self.settle(m, LOST, NOWHERE):
                self._event((m.id, OUTAGE_LOST, self.index, now))

    def heal(self) -> None:
        """The broker is back: held senders get in, idle workers get what waits."""
        self.down = False
        self._event((-1, BACK, self.index, self.env.now))
        held, self.held = self.held, []
        for msg, ev in held:
            if not ev.triggered:
                ev.succeed()
            self.put(msg)
        while self.idle and self.items:
            nxt = self.take()
            if nxt is None:
                break
            self.idle.popleft().succeed(nxt)

    # The line --------------------------------------------------------------------------
    def put(self, msg: Message) -> Event | None:
        if self.down:
            if self.when_down == "drop":
                self._drop(msg, self.env.now)
                return None
            ev = Event(self.env)
            self.held.append((msg, ev))
            return ev
        out = super().put(msg)
        if len(self.items) > self.keep:
            old = self.items.popleft()
            self._expire(old, retained=True)
        if self._wake is not None and self.items:
            self._wake.succeed()
            self._wake = None
        return out

    def _drop(self, msg: Message, now: float) -> None:
        k = key(msg)
        if k not in self.settled:
            self.settled.add(k)
            self._finished((msg.id, now, DROPPED, self.index))

    def requeue(self, msg: Message) -> None:
        """A message given back (nack, crash, visibility timeout): to the tail of the
        line, whatever the capacity (a broker never refuses its own message back)."""
        now = self.env.now
        self._event((msg.id, REQUEUED, self.index, now))
        msg.arrived = now
        msg.queue = self.index
        if self.down:  # offered again when the broker is back
            self.held.append((msg, Event(self.env)))
            return
        if self.idle:
            if self.on_take is not None:
                self.on_take(msg)
            self.idle.popleft().succeed(msg)
            return
        self.items.append(msg)
        if self._wake is not None:
            self._wake.succeed()
            self._wake = None

    def _deadline(self, msg: Message) -> float:
        return min(msg.arrived + self.ttl, msg.deadline)

    def take(self) -> Message | None:
        if self.down:
            return None
        while True:
            msg = super().take()
            if msg is None:
                return None
            if not self._expires or self.env.now < self._deadline(msg):
                return msg
            self._expire(msg)

    def _reap(self) -> ProcessGenerator:
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

    def _expire(self, msg: Message, retained: bool = False) -> None:
        now = self.env.now
        self._visit((msg.id, self.index, msg.arrived, now, NAN, REAPED))
        if key(msg) in self.settled:  # a phantom copy: its outcome is decided already
            return
        if self.dead_letter.named and not (retained or self.retains):
            self.to_dead_letter(msg)
        else:
            self.settle(msg, EXPIRED, self.index)

    def to_dead_letter(self, msg: Message) -> None:
        """Move a message to the dead-letter queue: it lives on there when the DLQ has
        consumers; otherwise dead-lettering is its final outcome."""
        now = self.env.now
        self.settled.add(key(msg))
        self._event((msg.id, DEAD_LETTER, self.index, now))
        dest = self.dead_letter.dest
        if dest is None:
            self._finished((msg.id, now, DEAD_LETTERED, self.index))
            return
        msg = next_visit(msg)
        msg.arrived = now
        msg.deadline = INF  # a fresh start: the DLQ's own ttl applies
        dest.put(msg)

    def settle(self, msg: Message, code: int, where: int) -> bool:
        """Decide a message's outcome (False when it was decided already)."""
        k = key(msg)
        if k in self.settled:
            return False
        self.settled.add(k)
        self._finished((msg.id, self.env.now, code, where))
        return True

    def inside(self) -> int:
        settled = self.settled
        return (sum(key(m) not in settled for m in self.items) + len(self.blocked)
                + sum(key(m) not in settled for m, _ in self.held))


class Levels:
    """A priority waiting line with the deque operations `Queue` uses: `append` files a
    message under its priority, `popleft` takes the oldest of the highest priority.

    Non-preemptive by construction: a message in service is no longer in the line.
    """

    def __init__(self, priority_of: Callable[[Message], int],
                 fifo: Callable[[], Fifo] = deque) -> None:
        self.priority_of = priority_of
        self._fifo = fifo  # what each priority's line is (engine.line.Line or a deque)
        self._lines: dict[int, Fifo] = {}
        self._order: list[int] = []  # priorities present, highest first
        self._n = 0

    def append(self, msg: Message) -> None:
        p = self.priority_of(msg)
        line = self._lines.get(p)
        if line is None:
            line = self._lines[p] = self._fifo()
            self._order = sorted(self._lines, reverse=True)
        line.append(msg)
        self._n += 1

    def popleft(self) -> Message:
        for p in self._order:
            line = self._lines[p]
            if line:
                self._n -= 1
                return line.popleft()
        raise IndexError("pop from an empty line")

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> Message:
        """Only ``[0]``: the oldest message waiting, whatever its priority (its age is the
        queue's lag)."""
        heads = [line[0] for line in self._lines.values() if line]
        if i != 0 or not heads:
            raise IndexError(i)
        return min(heads, key=lambda m: m.arrived)

    def __bool__(self) -> bool:
        return self._n > 0

    def __iter__(self) -> Iterator[Message]:
        for p in self._order:
            yield from self._lines[p]
