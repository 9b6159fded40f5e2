"""A consumer group: workers that take, serve and settle, each one long-lived process.

Every worker runs the same loop (:class:`Group`), assembled when the model is built from
three parts:

- where it takes from, an *intake* (engine.intake): one queue all workers share, the
  partitions of a topic it owns, or its own prefetch buffer fed over a link;
- how it serves, a :class:`~simq.engine.serve.Server`: decode each message, then one
  service time for what it holds (up to ``batch`` messages), slower on a slow worker;
- how it settles, a *settler* (engine.settle): auto ack, or acks with visibility timeout,
  failures, back-off, max attempts, dead letters, dedup (docs/reliability.md).

A crash reaches a worker as an interrupt (:class:`CrashPlan` says when): the settler
decides what becomes of what it held. Scaling (schedule, autoscale) adds workers and
retires them between messages. One cohesive thing: the loop and what interrupts it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import simpy
from simpy.events import Event, ProcessGenerator
from simpy.exceptions import Interrupt

from simq.engine.core import Daemons, Message, Request
from simq.engine.intake import Intake
from simq.engine.recorder import (
    CRASH,
    CRASH_SEEN,
    DELIVERED,
    JOIN,
    LEAVE,
    REPLY,
    RESTART,
    Recorder,
)
from simq.engine.serve import Server
from simq.engine.settle import Settler

__all__ = ["CrashPlan", "Group", "Replier"]

NAN = math.nan


class CrashPlan:
    """How a group's workers crash: each at random (up-time ``mtbf``, then down for
    ``mttr``), and/or at the scheduled ``at`` times the first ``workers`` members of the
    group then, in the order they joined (None: all of them)."""

    def __init__(self, mtbf: Callable[[], float] | None, mttr: Callable[[], float] | None,
                 at: Sequence[tuple[float, float]] | None, workers: int | None = None
                 ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.mtbf = mtbf
        self.mttr = mttr
        self.at = list(at or [])
        self.workers = workers

    def chosen(self, members: list[int]) -> list[int]:
        """The members (slots in the order they joined) a scheduled crash hits."""
        return members if self.workers is None else members[:self.workers]


class Replier:
    """The end of the line for a group whose messages may come from senders that wait.

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

    def inside(self) -> int:
        return self.in_transit


class Group:
    """``count`` workers running the one loop; the group answers for its membership
    (scaling), its crashes and what its workers hold at the end."""

    def __init__(
        self, env: simpy.Environment, index: int, name: str, rec: Recorder, *,
        intake: Intake, server: Server, settler: Settler, count: int, batch: int = 1,
        crashes: CrashPlan | None = None, log_workers: bool = False,
        log_services: bool = False, daemons: Daemons | None = None,
        session_timeout: float | None = None,
    ) -> None:
        self.env = env
        self.index = index
        self.name = name
        self.intake = intake
        self.server = server
        self.settler = settler
        self.batch = batch
        self.crashes = crashes
        self.daemons = daemons
        self.held: list[list[Message]] = []
        self.started: list[float] = []
        self.parked: list[Event | None] = []
        self.up: list[bool] = []
        self.leaving: list[bool] = []
        self.gone: list[bool] = []
        # With a session timeout (a rebalance protocol), a worker down that long is no
        # longer a member until it is back; `downs` numbers each worker's crashes.
        self.session_timeout = session_timeout
        self.expelled: list[bool] = []
        self.downs: list[int] = []
        self.procs: list[simpy.Process] = []
        # Scaling: workers asked to leave (each leaves between two messages, never in the
        # middle of one), workers decided but not yet started, workers serving or idle.
        self.retire = [0]
        self.starting = 0
        self.members = 0
        self.down = 0
        self._log_workers = log_workers
        self._workers = rec.workers.append
        self._services = rec.batches.append if log_services or batch > 1 else None
        self._event = rec.events.append
        self._visit = rec.visits.append
        for _ in range(count):
            self._start_worker()
        intake.members(self.member_slots())
        if log_workers:
            self._log()
        if crashes is not None and crashes.at:
            env.process(self._scheduled_crashes(crashes))

    # Membership ------------------------------------------------------------------------
    def serving(self) -> list[int]:
        """The workers that have joined and not left."""
        return [s for s in range(len(self.gone)) if not self.gone[s]]

    def member_slots(self) -> list[int]:
        """The workers the partitions are assigned over: serving, and not noticed dead."""
        return [s for s in range(len(self.gone)) if not self.gone[s] and not self.expelled[s]]

    @property
    def size(self) -> int:
        """Workers the group will have once pending starts and departures are done."""
        return self.members + self.starting - self.retire[0]

    def _log(self) -> None:
        if self._log_workers:
            self._workers((self.env.now, self.index, self.members - self.down, self.starting))

    def _start_worker(self) -> None:
        slot = len(self.held)
        self.held.append([])
        self.started.append(NAN)
        self.parked.append(None)
        self.up.append(True)
        self.leaving.append(False)
        self.gone.append(False)
        self.expelled.append(False)
        self.downs.append(0)
        self.members += 1
        self.intake.line(slot)
        self.procs.append(self.env.process(self._work(slot)))
        c = self.crashes
        if c is not None and c.mtbf is not None and c.mttr is not None:
            self.env.process(self._random_crashes(slot, c.mtbf, c.mttr))

    def resize(self, wanted: int, delay: float = 0.0) -> None:
        """Scale to ``wanted`` workers; new ones start serving after ``delay``."""
        size = self.size
        if wanted == size:
            return
        retire = self.retire
        if wanted > size:
            more = wanted - size
            kept = min(more, retire[0])  # not gone yet: ask them to stay
            retire[0] -= kept
            more -= kept
            if more == 0:
                return
            if delay > 0:
                self.starting += more
                self._log()
                ev = self.env.timeout(delay, more)
                ev.callbacks.append(self._started)
            else:
                self._add(more)
            return
        # Fewer: workers still starting up cannot be cancelled here; retire online ones.
        fewer = min(size - wanted, self.members - retire[0])
        if fewer <= 0:
            return
        retire[0] += fewer
        # Wake the idle workers so that idle ones leave now (workers of other groups on
        # the same queue wake too, find nothing to do and park again).
        self.intake.wake()

    def _started(self, ev: Event) -> None:
        n: int = ev.value  # type: ignore[assignment]
        self.starting -= n
        self._add(n)

    def _add(self, n: int) -> None:
        for _ in range(n):
            self._start_worker()
        self.intake.members(self.member_slots(), JOIN, self.env.now)
        self._log()

    def _leave(self, slot: int) -> None:
        self.gone[slot] = True
        self.members -= 1
        self.intake.members(self.member_slots(), LEAVE, self.env.now)
        self._log()

    # The worker ------------------------------------------------------------------------
    def _work(self, slot: int) -> ProcessGenerator:
        env = self.env
        line = self.intake.line(slot)
        take, idle = line.take, line.idle
        held, started, parked = self.held[slot], self.started, self.parked
        size = self.batch
        begin, done = self.settler.begin, self.settler.done
        serve, service, of = self.server.time, self.server.service, self.server.of
        intake = self.intake
        acks = intake.acks
        # The plain path (auto ack, no decode, no prefetch) skips the optional steps.
        general = begin is not None or acks or not self.server.plain
        services, gi = self._services, self.index
        deliver = self.settler.deliver if size == 1 and services is None else None
        retire, leaving = self.retire, self.leaving
        while True:
            try:
                if retire[0] or leaving[slot]:  # scaling down: leave between messages
                    if not leaving[slot]:
                        retire[0] -= 1
                        leaving[slot] = True
                        intake.stop(slot)
                    if intake.drained(slot):
                        self._leave(slot)
                        return
                msg = take()
                if msg is None:
                    ev = Event(env)
                    idle.append(ev)
                    parked[slot] = ev
                    msg = yield ev
                    parked[slot] = None
                    if msg is None:  # woken so that it can leave (scaling down)
                        continue
                held.append(msg)
                if size > 1:
                    while len(held) < size:
                        more = take()
                        if more is None:
                            break
                        held.append(more)
                start = env.now
                started[slot] = start
                if general:
                    taken = len(held)
                    if begin is not None:
                        begin(slot, held, start)  # dedup may ack some at once
                        if not held:
                            if acks:
                                intake.done(slot, taken)
                            continue
                    yield env.timeout(serve(held, slot, start))
                    end = env.now
                    if services is not None:
                        services((gi, start, end, len(held)))
                    if acks:
                        intake.done(slot, taken)
                else:
                    yield env.timeout(service() if of is None else of(held))
                    end = env.now
                    if deliver is not None:  # one message, delivered here
                        deliver(msg, start, end)
                        held.clear()
                        continue
                    if services is not None:
                        services((gi, start, end, len(held)))
                blocked = done(slot, held, start, end)
                held.clear()
                if blocked is not None:  # downstream full: the worker waits for room
                    yield blocked
            except Interrupt as crash:
                yield from self._down(slot, float(crash.cause))  # type: ignore[arg-type]

    def crash(self, slot: int, down: float) -> None:
        """Worker ``slot`` fails now and is back after ``down`` seconds."""
        self.up[slot] = False
        self.procs[slot].interrupt(down)

    def _down(self, slot: int, down: float) -> ProcessGenerator:
        env, now = self.env, self.env.now
        held = self.held[slot]
        ev = self.parked[slot]
        start = self.started[slot]
        if ev is not None:  # crashed while idle
            self.parked[slot] = None
            if ev.triggered:  # a message was handed over at this very instant
                if ev.value is not None:
                    held.append(ev.value)
                start = now
            else:
                self.intake.line(slot).idle.remove(ev)
        first = held[0].id if held else -1
        if held:
            self.settler.crashed(slot, held, now, start)
            if self._services is not None and start < now:
                self._services((self.index, start, now, len(held)))
        n_held = len(held)
        held.clear()
        self.intake.stop(slot)
        dropped = self.intake.drop(slot)
        if self.intake.acks and n_held:
            self.intake.done(slot, n_held)
        if dropped:
            self.settler.crashed(slot, dropped, now, math.nan)
        self._event((first, CRASH, self.index, now))
        self.down += 1
        self._log()
        self.downs[slot] += 1
        if self.session_timeout is not None:
            ev = env.timeout(self.session_timeout, (self.downs[slot], now))
            ev.callbacks.append(functools.partial(self._session_over, slot))
        yield env.timeout(down)
        self.up[slot] = True
        self.down -= 1
        self._log()
        self._event((-1, RESTART, self.index, env.now))
        if self.expelled[slot] and not self.gone[slot]:  # back: it joins the group again
            self.expelled[slot] = False
            self.intake.members(self.member_slots(), JOIN, env.now)
        if not self.leaving[slot]:
            self.intake.start(slot)

    def _session_over(self, slot: int, ev: Event) -> None:
        """The session of a crashed worker times out: if it is still down from the same
        crash, the group notices and hands its partitions to the others."""
        crash, at = ev.value  # type: ignore[misc]  # the timeout's value
        if self.up[slot] or self.downs[slot] != crash or self.gone[slot]:
            return
        self.expelled[slot] = True
        self.intake.members(self.member_slots(), CRASH_SEEN, at)

    def _random_crashes(self, slot: int, mtbf: Callable[[], float],
                        mttr: Callable[[], float]) -> ProcessGenerator:
        daemons = self.daemons
        while not self.gone[slot]:
            wait = mtbf()
            yield daemons.sleep(wait) if daemons is not None else self.env.timeout(wait)
            if self.gone[slot] or (daemons is not None and daemons.over()):
                return
            down = mttr()
            if self.up[slot]:
                self.crash(slot, down)
                # Up-time counts from the restart: wait the repair out first.
                yield self.env.timeout(down)

    def _scheduled_crashes(self, plan: CrashPlan) -> ProcessGenerator:
        env = self.env
        for t, down in plan.at:
            if t > env.now:
                yield env.timeout(t - env.now)
            # Slots are numbered as workers start, so the first members are the oldest;
            # a chosen member already down stays down (the crash passes no one else).
            for slot in plan.chosen(self.serving()):
                if self.up[slot]:
                    self.crash(slot, down)

    # What it holds ---------------------------------------------------------------------
    def busy(self) -> int:
        """Workers serving now."""
        return sum(1 for h in self.held if h)

    def backlog(self) -> int:
        """Messages not yet acknowledged: waiting (or at the door, or in a prefetch
        buffer) plus in service, as a broker's ready + unacked count."""
        return self.intake.waiting() + sum(len(h) for h in self.held)

    def lag(self) -> float:
        """Age of the oldest message waiting (0 when none)."""
        oldest = self.intake.oldest()
        return 0.0 if math.isnan(oldest) else self.env.now - oldest

    def close(self) -> int:
        """Log the services still running at the end; how many messages the group holds
        (in service, in prefetch buffers, waiting out a back-off)."""
        n = 0
        gi = self.index
        for slot, held in enumerate(self.held):
            if not held:
                continue
            start = self.started[slot]
            rows = self.settler.holding(slot, held, start)
            for mid, qi, arrived, left in rows:
                self._visit((mid, qi, arrived, left, NAN, gi))
            n += len(rows)
            if self._services is not None:
                self._services((gi, start, NAN, len(held)))
        n += self.intake.close(self._visit, gi)
        return n + self.settler.inside()
