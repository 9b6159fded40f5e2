"""Consumer groups whose size changes: a schedule, or an autoscaling policy.

One :class:`Scaler` per scaled group, with one long-lived process. It keeps the number
of workers *online* (serving or idle) and *starting* (decided, not yet serving), and logs
both to ``Recorder.workers`` at time 0 and at every change; worker-seconds are the
integral of the online count.

- Scaling up starts new workers after ``scale_up_delay`` (0 for a schedule); retiring
  workers that have not left yet are kept first, so the group never exceeds ``max``.
- Scaling down asks workers to leave: an idle worker leaves at once, a busy one finishes
  the message it holds (and forwards it) first. Until it leaves it counts as online.
- Autoscale: every ``interval`` seconds the policy reads the queue. ``backlog``: wanted =
  ceil(unacknowledged / target_backlog_per_worker), where unacknowledged = messages
  waiting (or blocked at the door) + messages this group is serving. ``lag``: wanted =
  ceil(n * lag / target_lag) with n the current size (at least 1) and lag the age of the
  oldest waiting message.
  Clamped to [min, max]. A scale-up happens at once; a scale-down only when ``cooldown``
  seconds have passed since the last scaling action (so a dip in a peak does not shed the
  workers the next wave needs).
"""

from __future__ import annotations

import math
from typing import cast

import simpy

from simq.engine.consumer import ConsumerGroup
from simq.peakspec import AutoscaleSpec
from simq.record import Recorder

__all__ = ["Scaler"]


class Scaler:
    """Changes the size of one consumer group over time."""

    def __init__(
        self, env: simpy.Environment, group: ConsumerGroup, rec: Recorder,
        schedule: list[tuple[float, int]] | None, policy: AutoscaleSpec | None,
    ) -> None:
        self.env = env
        self.group = group
        self.online = group.count
        self.starting = 0
        self.policy = policy
        # (time, size before, size wanted): every decision taken, for inspection and tests
        self.decisions: list[tuple[float, int, int]] = []
        self.last_action = -math.inf
        self._log = rec.workers.append
        group.on_leave = self._left
        self._log((0.0, group.index, self.online, 0))
        if schedule is not None:
            env.process(self._follow(schedule))
        elif policy is not None:
            env.process(self._autoscale(policy))

    @property
    def size(self) -> int:
        """Workers the group will have once pending starts and departures are done."""
        return self.online + self.starting - self.group.retire[0]

    def set_size(self, wanted: int, delay: float = 0.0) -> None:
        """Scale to ``wanted`` workers; new ones start serving after ``delay``."""
        now = self.env.now
        size = self.size
        if wanted == size:
            return
        self.decisions.append((now, size, wanted))
        self.last_action = now
        retire = self.group.retire
        if wanted > size:
            more = wanted - size
            kept = min(more, retire[0])  # not gone yet: ask them to stay
            retire[0] -= kept
            more -= kept
            if more == 0:
                return
            if delay > 0:
                self.starting += more
                self._log((now, self.group.index, self.online, self.starting))
                ev = self.env.timeout(delay, more)
                ev.callbacks.append(self._started)
            else:
                self._add(more)
            return
        # Fewer: workers still starting up cannot be cancelled here; retire online ones.
        fewer = min(size - wanted, self.online - retire[0])
        if fewer <= 0:
            return
        retire[0] += fewer
        # Wake the idle workers parked at the queue so that idle ones leave now. Workers
        # of other groups on the same queue wake too, find nothing to do and park again.
        idle = self.group.queue.idle
        parked = list(idle)
        idle.clear()
        for waiting in parked:
            waiting.succeed(None)

    def _started(self, ev: simpy.Event) -> None:
        n = cast(int, ev.value)
        self.starting -= n
        self._add(n)

    def _add(self, n: int) -> None:
        for _ in range(n):
            self.group.add_worker()
        self.online += n
        self._log((self.env.now, self.group.index, self.online, self.starting))

    def _left(self, slot: int) -> None:
        self.online -= 1
        self._log((self.env.now, self.group.index, self.online, self.starting))

    def _follow(self, schedule: list[tuple[float, int]]):  # type: ignore[no-untyped-def]
        env = self.env
        for t, n in schedule:
            if t > env.now:
                yield env.timeout(t - env.now)
            self.set_size(n)

    def _autoscale(self, p: AutoscaleSpec):  # type: ignore[no-untyped-def]
        env = self.env
        group = self.group
        queue = group.queue
        while True:
            yield env.timeout(p.interval)
            if p.metric == "backlog":
                # Not yet acknowledged: waiting (or blocked at the door) plus in service,
                # as a broker's ready + unacked count or a consumer group's lag.
                unacked = len(queue.items) + len(queue.blocked) + group.busy()
                assert p.target_backlog_per_worker is not None
                wanted = math.ceil(unacked / p.target_backlog_per_worker)
            else:
                assert p.target_lag is not None
                lag = env.now - queue.items[0].arrived if queue.items else 0.0
                wanted = math.ceil(max(self.size, 1) * lag / p.target_lag)
            wanted = max(p.min, min(p.max, wanted))
            size = self.size
            if wanted < size and env.now - self.last_action < p.cooldown:
                continue
            self.set_size(wanted, p.scale_up_delay)
