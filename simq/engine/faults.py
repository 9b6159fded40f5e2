"""Fault injection for components that go down and come back: a queue's broker (an
outage), a link (a partition). Consumer crashes are the group's own (engine.worker)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import simpy
from simpy.events import ProcessGenerator

from simq.engine.core import Daemons

__all__ = ["Faults"]


class Breakable(Protocol):
    """A component that can be down for a while: a queue (outage), a link (partition)."""

    def fail(self) -> None: ...

    def heal(self) -> None: ...


class Faults:
    """Takes a component down and up again: at random (up-time ``mtbf``, down-time
    ``mttr``) and at scheduled times; overlapping faults merge (down until the last heals)."""

    def __init__(self, env: simpy.Environment, target: Breakable,
                 mtbf: Callable[[], float] | None, mttr: Callable[[], float] | None,
                 at: Sequence[tuple[float, float]] | None, daemons: Daemons) -> None:
        self.env = env
        self.target = target
        self.daemons = daemons
        self.downs = 0
        if mtbf is not None and mttr is not None:
            env.process(self._random(mtbf, mttr))
        if at:
            env.process(self._scheduled(list(at)))

    def _down(self, length: float) -> ProcessGenerator:
        if self.downs == 0:
            self.target.fail()
        self.downs += 1
        yield self.env.timeout(length)
        self.downs -= 1
        if self.downs == 0:
            self.target.heal()

    def _random(self, mtbf: Callable[[], float],
                mttr: Callable[[], float]) -> ProcessGenerator:
        while True:
            # The up-time is background: it never keeps a finished run going.
            yield self.daemons.sleep(mtbf())
            if self.daemons.over():
                return
            yield from self._down(mttr())

    def _scheduled(self, at: list[tuple[float, float]]) -> ProcessGenerator:
        env = self.env
        for t, length in at:
            if t > env.now:
                yield env.timeout(t - env.now)
            env.process(self._down(length))
