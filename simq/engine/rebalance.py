"""How a consumer group on a partitioned topic hands its partitions round when its
membership changes, as Kafka does (docs/rebalancing.md).

An *assignor* maps partitions to members (``range``, ``round-robin``, ``sticky``); a
:class:`Rebalance` is the protocol: it starts when the membership changes, revokes the
partitions that pause (``eager``: all of them; ``cooperative``: only those that move),
lasts one draw of the rebalance time, then hands every partition to its new owner. The
intake (:class:`simq.engine.intake.Partitioned`) owns the partitions and applies what the
protocol decides; the group (:mod:`simq.engine.worker`) says who the members are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import simpy
from simpy.events import Event

from simq.engine.recorder import Recorder

__all__ = ["ASSIGNORS", "Assignment", "Rebalance", "range_assign", "round_robin_assign",
           "sticky_assign"]

# partition index -> member slot, or None: nobody owns it
Assignment = list[int | None]


def range_assign(partitions: int, members: Sequence[int],
                 previous: Assignment) -> Assignment:
    """Kafka's RangeAssignor: members in order, each a contiguous run of partitions, the
    first ``partitions % n`` members one more."""
    n = len(members)
    if n == 0:
        return [None] * partitions
    q, r = divmod(partitions, n)
    out: Assignment = []
    for k, m in enumerate(members):
        out += [m] * (q + (1 if k < r else 0))
    return out


def round_robin_assign(partitions: int, members: Sequence[int],
                       previous: Assignment) -> Assignment:
    """Kafka's RoundRobinAssignor: partition p to member p mod n."""
    n = len(members)
    return [members[p % n] if n else None for p in range(partitions)]


def sticky_assign(partitions: int, members: Sequence[int],
                  previous: Assignment) -> Assignment:
    """Kafka's StickyAssignor: as balanced as range (every member ``partitions // n`` or
    one more), moving as few partitions as that allows. The members that hold the most
    now keep the larger shares; each keeps its lowest partitions up to its share, and the
    rest go, lowest first, to the members below their share, in member order."""
    n = len(members)
    if n == 0:
        return [None] * partitions
    q, r = divmod(partitions, n)
    held: dict[int, list[int]] = {m: [] for m in members}
    for p, m in enumerate(previous):
        if m is not None and m in held:
            held[m].append(p)
    # Larger shares to the members holding most (ties: member order).
    order = sorted(members, key=lambda m: (-len(held[m]), members.index(m)))
    share = {m: q + (1 if k < r else 0) for k, m in enumerate(order)}
    out: Assignment = [None] * partitions
    for m in members:
        for p in held[m][: share[m]]:
            out[p] = m
    free = iter(p for p in range(partitions) if out[p] is None)
    for m in members:
        for _ in range(share[m] - min(len(held[m]), share[m])):
            out[next(free)] = m
    return out


ASSIGNORS: dict[str, Callable[[int, Sequence[int], Assignment], Assignment]] = {
    "range": range_assign,
    "round-robin": round_robin_assign,
    "sticky": sticky_assign,
}


class Rebalance:
    """The rebalance protocol of one group: decides, at each membership change, which
    partitions pause and for how long, and logs each rebalance.

    Membership changes at one instant are one rebalance (several members noticed dead at
    once, several joining): the start waits for the instant's other events. A change while
    a rebalance goes on starts a new one at once (Kafka's new generation): the old row ends
    there, and what it had paused stays paused until the new one ends.
    """

    def __init__(self, env: simpy.Environment, group: int, partitions: int,
                 assignor: Callable[[int, Sequence[int], Assignment], Assignment],
                 cooperative: bool, time: Callable[[], float], rec: Recorder,
                 apply: Callable[[Assignment], None]) -> None:
        self.env = env
        self.group = group
        self.n = partitions
        self.assignor = assignor
        self.cooperative = cooperative
        self.time = time
        self.apply = apply  # the intake serves partitions as this assignment says
        self._log = rec.rebalances.append
        self.members: list[int] = []
        self.target: Assignment = [None] * partitions  # the last decided assignment
        self.paused: set[int] = set()
        self.generation = 0
        self._row: tuple[int, float, float, int, int, int] | None = None  # the one going on
        self._want: list[int] | None = None
        self._trigger = 0
        self._cause = 0.0

    def initial(self, members: Sequence[int]) -> None:
        """The group's first members own their partitions from the start (no rebalance)."""
        self.members = list(members)
        self.target = self.assignor(self.n, self.members, self.target)
        self.apply(self.target)

    def change(self, members: Sequence[int], trigger: int, cause: float) -> None:
        """The members are now ``members`` (``trigger`` at time ``cause``)."""
        if self._want is None:
            self._trigger, self._cause = trigger, cause
            self.env.timeout(0).callbacks.append(self._begin)
        else:
            self._cause = min(self._cause, cause)
        self._want = list(members)

    def _begin(self, _ev: Event) -> None:
        members, self._want = self._want, None
        assert members is not None
        if members == self.members:  # e.g. a member that was no longer one left
            return
        now = self.env.now
        trigger, cause = self._trigger, self._cause
        if self._row is not None:
            if self._row[2] == now:  # begun this very instant: one rebalance, not two
                trigger, cause = self._row[0], min(cause, self._row[1])
                self._row = None
            else:
                self._close(now)
        previous = self.target
        new = self.assignor(self.n, members, previous)
        moved = sum(1 for a, b in zip(previous, new, strict=True) if a != b)
        stranded = sum(1 for m in previous if m is not None and m not in members)
        self.members, self.target = members, new
        if self.cooperative:
            self.paused |= {p for p in range(self.n) if previous[p] != new[p]}
        else:
            self.paused = set(range(self.n))
        self.generation += 1
        self._row = (trigger, cause, now, moved, len(self.paused), stranded)
        # Revoke what pauses: nobody serves it until the rebalance ends. A message in a
        # worker's hands is finished and committed (Kafka commits before revoking).
        self.apply([None if p in self.paused else self._serving(p) for p in range(self.n)])
        wait = self.time()
        if wait <= 0:
            self._end(self.generation)
        else:
            gen = self.generation
            self.env.timeout(wait).callbacks.append(lambda _e: self._end(gen))

    def _serving(self, p: int) -> int | None:
        # A partition that does not pause stays where it is (cooperative: it did not move).
        return self.target[p]

    def _end(self, generation: int) -> None:
        if generation != self.generation:  # superseded by a later rebalance
            return
        self._close(self.env.now)
        self.paused = set()
        self.apply(self.target)

    def _close(self, end: float) -> None:
        assert self._row is not None
        trigger, cause, start, moved, paused, stranded = self._row
        self._log((self.group, trigger, cause, start, end, moved, paused, stranded))
        self._row = None

    def close(self) -> None:
        """At the end of the run: log the rebalance still going on (end NaN)."""
        if self._row is not None:
            self._close(float("nan"))
