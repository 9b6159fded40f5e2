"""Fault injection: consumer crashes, at random (MTBF/MTTR) or at scheduled times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import simpy

__all__ = ["Crasher"]


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
