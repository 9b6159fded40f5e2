"""Fault injection: consumer crashes, at random (MTBF/MTTR) or at scheduled times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import simpy

__all__ = ["Crasher", "Faults"]


class Crashable(Protocol):
    """What a crasher needs from a group: which workers are up, and a way to crash one."""

    up: list[bool]

    def crash(self, slot: int, down: float) -> None: ...


class Crasher:
    """One long-lived process per worker for random crashes (up-time ``mtbf``, then down
    for ``mttr``), one for the scheduled crashes of the whole group."""

    def __init__(self, env: simpy.Environment, group: Crashable, slots: int,
                 mtbf: Callable[[], float] | None, mttr: Callable[[], float] | None,
                 at: Sequence[tuple[float, float]] | None) -> None:
        self.env = env
        self.group = group
        if mtbf is not None and mttr is not None:
            for slot in range(slots):
                env.process(self._random(slot, mtbf, mttr))
        if at:
            env.process(self._scheduled(list(at)))

    def _random(self, slot: int, mtbf: Callable[[], float],
                mttr: Callable[[], float]):  # type: ignore[no-untyped-def]
        env, group = self.env, self.group
        while True:
            yield env.timeout(mtbf())
            down = mttr()
            if group.up[slot]:
                group.crash(slot, down)
                # Up-time counts from the restart: wait the repair out first.
                yield env.timeout(down)

    def _scheduled(self, at: list[tuple[float, float]]):  # type: ignore[no-untyped-def]
        env, group = self.env, self.group
        for t, down in at:
            if t > env.now:
                yield env.timeout(t - env.now)
            for slot, up in enumerate(group.up):
                if up:
                    group.crash(slot, down)


class Breakable(Protocol):
    """A component that can be down for a while: a queue (outage), a link (partition)."""

    def fail(self) -> None: ...

    def heal(self) -> None: ...


class Faults:
    """Takes a component down and up again: at random (up-time ``mtbf``, down-time
    ``mttr``) and at scheduled times; overlapping faults merge (down until the last heals)."""

    def __init__(self, env: simpy.Environment, target: Breakable,
                 mtbf: Callable[[], float] | None, mttr: Callable[[], float] | None,
                 at: Sequence[tuple[float, float]] | None) -> None:
        self.env = env
        self.target = target
        self.down_until = -1.0
        self.downs = 0
        if mtbf is not None and mttr is not None:
            env.process(self._random(mtbf, mttr))
        if at:
            env.process(self._scheduled(list(at)))

    def _down(self, length: float):  # type: ignore[no-untyped-def]
        if self.downs == 0:
            self.target.fail()
        self.downs += 1
        yield self.env.timeout(length)
        self.downs -= 1
        if self.downs == 0:
            self.target.heal()

    def _random(self, mtbf: Callable[[], float],
                mttr: Callable[[], float]):  # type: ignore[no-untyped-def]
        while True:
            yield self.env.timeout(mtbf())
            yield from self._down(mttr())

    def _scheduled(self, at: list[tuple[float, float]]):  # type: ignore[no-untyped-def]
        env = self.env
        for t, length in at:
            if t > env.now:
                yield env.timeout(t - env.now)
            env.process(self._down(length))
