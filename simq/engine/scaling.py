"""Consumer groups whose size changes: a schedule, or an autoscaling policy.

One :class:`Scaler` per scaled group, with one long-lived process that decides the size;
the group itself (engine.worker.Group) keeps its members, starts and retires workers and
logs the counts to ``Recorder.workers``.

- Scaling up starts new workers after ``scale_up_delay`` (0 for a schedule); retiring
  workers that have not left yet are kept first, so the group never exceeds ``max``.
- Scaling down asks workers to leave: an idle worker leaves at once, a busy one finishes
  the message it holds (and forwards it) first; a prefetching one first works off what
  was dispatched to it. Until it leaves it counts as online.
- Autoscale: every ``interval`` seconds the policy reads the group's line. ``backlog``:
  wanted = ceil(unacknowledged / target_backlog_per_worker), where unacknowledged =
  messages waiting (or blocked at the door, or in prefetch buffers) + messages this group
  is serving. ``lag``: wanted = ceil(n * lag / target_lag) with n the current size (at
  least 1) and lag the age of the oldest waiting message.
  Clamped to [min, max]. A scale-up happens at once; a scale-down only when ``cooldown``
  seconds have passed since the last scaling action (so a dip in a peak does not shed the
  workers the next wave needs).
"""

from __future__ import annotations

import math

import simpy
from simpy.events import ProcessGenerator

from simq.engine.core import Daemons
from simq.engine.worker import Group
from simq.scenario.workload import AutoscaleSpec

__all__ = ["Scaler"]


class Scaler:
    """Changes the size of one consumer group over time."""

    def __init__(
        self, env: simpy.Environment, group: Group,
        schedule: list[tuple[float, int]] | None, policy: AutoscaleSpec | None,
        daemons: Daemons,
    ) -> None:
        self.env = env
        self.group = group
        self.policy = policy
        self.daemons = daemons
        # (time, size before, size wanted): every decision taken, for inspection and tests
        self.decisions: list[tuple[float, int, int]] = []
        self.last_action = -math.inf
        if schedule is not None:
            env.process(self._follow(schedule))
        elif policy is not None:
            env.process(self._autoscale(policy))

    @property
    def size(self) -> int:
        return self.group.size

    def set_size(self, wanted: int, delay: float = 0.0) -> None:
        """Scale to ``wanted`` workers; new ones start serving after ``delay``."""
        size = self.group.size
        if wanted == size:
            return
        self.decisions.append((self.env.now, size, wanted))
        self.last_action = self.env.now
        self.group.resize(wanted, delay)

    def _follow(self, schedule: list[tuple[float, int]]) -> ProcessGenerator:
        env = self.env
        for t, n in schedule:
            if t > env.now:
                yield env.timeout(t - env.now)
            self.set_size(n)

    def _wanted(self, p: AutoscaleSpec) -> int:
        group = self.group
        if p.metric == "backlog":
            # Not yet acknowledged, as a broker's ready + unacked count or a consumer
            # group's lag in messages.
            assert p.target_backlog_per_worker is not None
            wanted = math.ceil(group.backlog() / p.target_backlog_per_worker)
        else:
            assert p.target_lag is not None
            wanted = math.ceil(max(group.size, 1) * group.lag() / p.target_lag)
        return max(p.min, min(p.max, wanted))

    def _autoscale(self, p: AutoscaleSpec) -> ProcessGenerator:
        env = self.env
        while True:
            yield self.daemons.sleep(p.interval)
            wanted = self._wanted(p)
            size = self.group.size
            if wanted == size and self.daemons.over():
                return  # nothing left to serve and nothing to decide: the run is over
            if wanted < size and env.now - self.last_action < p.cooldown:
                continue
            self.set_size(wanted, p.scale_up_delay)
