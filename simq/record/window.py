"""The measurement window and the rule for when a log row may be folded: what belongs to
the window (:class:`Window`), when nothing about a row can change any more (:data:`LAST`)
and the time the window's end cannot precede (:func:`horizon`). These rules live here and
nowhere else; both record modes apply them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from simq.engine.recorder import overlap

__all__ = ["LAST", "Window", "horizon"]


@dataclass
class Window:
    """The measurement window [t0, t1] and the rules of what belongs to it.

    Mid-run ``t1`` and ``t_end`` are unknown (infinite): only rows that every rule can
    already decide are folded (:data:`LAST`). Messages count by send time, visits by
    arrival, services by start; completions and events by their time in [t0, t1]; an
    interval by its overlap with the window (an open one ends at ``t_end``). Without a
    warm-up, a queue's starting backlog (sent at minus its age, producer -1) belongs to
    the window: the run is about it (docs/peak.md).
    """

    t0: float
    t1: float = math.inf
    t_end: float = math.inf

    @property
    def backlog_in(self) -> bool:
        return self.t0 <= 0

    @property
    def span(self) -> float:
        s = self.t1 - self.t0
        return s if s > 0 else math.nan

    def sent_in(self, sent: np.ndarray, producer: np.ndarray) -> np.ndarray:
        inside = (sent >= self.t0) & (sent < self.t1)
        return inside | (producer < 0) if self.backlog_in else inside

    def entered(self, arrived: np.ndarray) -> np.ndarray:
        inside = (arrived >= self.t0) & (arrived < self.t1)
        return inside | (arrived < self.t0) if self.backlog_in else inside

    def started_in(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.t0) & (t < self.t1)

    def at(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.t0) & (t <= self.t1)

    def covered(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Seconds of each interval inside the window (end NaN: open until t_end)."""
        return overlap(start, np.where(np.isnan(end), self.t_end, end), self.t0, self.t1)


def horizon(now: float, stops_after_messages: bool, last_sends: list[float]) -> float:
    """A time the end of the measurement window cannot precede: now, or the last send
    when the run stops after N messages (the window ends at the last send)."""
    if not stops_after_messages:
        return now
    sends = [t for t in last_sends if not math.isnan(t)]
    return max(sends) if sends else -math.inf


def _fin(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), np.inf, x)


def _visit_last(c: Mapping[str, np.ndarray]) -> np.ndarray:
    # Still waiting (left NaN) or still in service (end NaN with a worker) wait for t_end;
    # an eviction's end is NaN for good.
    end = np.where(np.isnan(c["end"]), np.where(c["group"] >= 0, np.inf, -np.inf), c["end"])
    return np.asarray(np.fmax(_fin(c["left"]), end))


# The time after which nothing about a row can change (inf: only at the end). A row is
# folded mid-run once this time is before the horizon. `copies` has no time: a copy row
# is folded with its own created row (see Accumulators.fold).
LAST: dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = {
    "created": lambda c: c["sent"],
    "finished": lambda c: c["t"],
    "visits": _visit_last,
    "hops": lambda c: np.fmax(c["tx_end"], c["out"]),
    "stages": lambda c: np.fmax(c["start"], _fin(c["end"])),
    "batches": lambda c: np.fmax(c["start"], _fin(c["end"])),
    "retransmits": lambda c: c["t"],
    "events": lambda c: c["t"],
    "blocked": lambda c: np.fmax(c["start"], _fin(c["end"])),
    "rebalances": lambda c: np.fmax(c["start"], _fin(c["end"])),
    "cluster": lambda c: c["t"],
}
