"""Fault spells (outages, link cuts, a whole group down) and the recovery after each, as
the accumulators fold them; :func:`up_at` reads a component's spells as up/down."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Spells", "up_at"]


class Spells:
    """Fault spells of the components that can stop a queue, and the recovery after each.

    A spell's start and end come from the event log (outages, link cuts) or the worker
    log (every worker of a group down). Recovery is the time from a spell's end until the
    number of messages in the system (sent, not finished) is back to its level at the
    start: rows are folded in time order up to the horizon, so that level is known at
    every time before the horizon.
    """

    def __init__(self) -> None:
        self.created = 0  # messages sent before the last fold's horizon
        self.finished = 0
        # key -> list of [start, end, level at start, end checked?, recovery]
        self.spells: dict[tuple[str, int], list[list[float]]] = {}
        self.workers_seen = 0
        self.group_up: dict[int, bool] = {}

    def _start(self, key: tuple[str, int], t: float, level: float) -> None:
        self.spells.setdefault(key, []).append([t, math.nan, level, 0.0, math.nan])

    def _end(self, key: tuple[str, int], t: float) -> None:
        for s in self.spells.get(key, []):
            if math.isnan(s[1]):
                s[1] = t
                return

    def fold(self, sent: np.ndarray, done: np.ndarray, marks: list[tuple[float, int, str, int]],
             final_t: float | None) -> None:
        """``sent``/``done``: the newly folded send and finish times; ``marks``: (time,
        +1 start / -1 end, kind, component) of the newly folded spell edges; ``final_t``:
        at the last fold, the end of the run (spells still open end there)."""
        sent, done = np.sort(sent, kind="stable"), np.sort(done, kind="stable")
        c0, f0 = self.created, self.finished

        def level(t: np.ndarray) -> np.ndarray:
            return (c0 + np.searchsorted(sent, t, side="right")
                    - f0 - np.searchsorted(done, t, side="right"))

        for t, step, kind, where in sorted(marks, key=lambda m: (m[0], -m[1])):
            if step > 0:
                self._start((kind, where), t, float(level(np.array([t]))[0]))
            else:
                self._end((kind, where), t)
        if final_t is not None:
            for spells in self.spells.values():
                for s in spells:
                    if math.isnan(s[1]):
                        s[1] = final_t
        for spells in self.spells.values():
            for s in spells:
                a, b, before, checked, rec = s
                if not math.isnan(rec) or math.isnan(b):
                    continue
                if not checked:  # the level at the end of the fault itself
                    s[3] = 1.0
                    if level(np.array([b]))[0] <= before:
                        s[4] = 0.0
                        continue
                # The level only falls at departures: check each one after the end.
                later = done[done > b]
                if len(later):
                    ok = np.flatnonzero(level(later) <= before)
                    if len(ok):
                        s[4] = float(later[ok[0]] - b)
        self.created += len(sent)
        self.finished += len(done)

    def of(self, key: tuple[str, int]) -> list[tuple[float, float, float]]:
        """(start, end, recovery) of each spell (recovery NaN: not by the end)."""
        return [(s[0], s[1], s[4]) for s in self.spells.get(key, [])]


def up_at(spells: list[tuple[float, float, float]], times: np.ndarray) -> np.ndarray:
    """1 (up) or 0 (down) at each time, from a component's spells (start, end, ...)."""
    up = np.ones(len(times), dtype=np.int64)
    for a, b, *_ in spells:
        up[(times >= a) & (times < b)] = 0
    return up
