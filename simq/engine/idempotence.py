"""The broker's side of an idempotent producer (Kafka's ``enable.idempotence``).

Every send of a message carries its identity: the producer and the message's sequence
number (``Request.root``, the id of its first send). The :class:`Door` stands where the
producer's messages reach the broker (in front of the queue, its disk or the topic) and
takes in each identity once: a resend whose identity it took in already is refused and
ends there, ``DEDUPLICATED``. What the door remembers is bounded by the producer's sends
in flight: an identity is forgotten once its producer has stopped waiting for it (acked or
given up) and no send of it is still on its way (Kafka keeps the last five sequences per
producer, its limit of requests in flight; here the producer's own in-flight sends are
the window, so a resend is always recognised).
"""

from __future__ import annotations

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message, Request
from simq.engine.recorder import DEDUPLICATED, DROPPED, REFUSED, Recorder

__all__ = ["Door"]


class Door:
    """Takes in each (producer, sequence) once; refuses the resends of what it took in."""

    def __init__(self, env: simpy.Environment, producer: int, target: Destination,
                 rec: Recorder) -> None:
        self.env = env
        self.producer = producer
        self.target = target
        # Per identity: [sends on their way here, taken in (0/1), producer done (0/1)].
        self.state: dict[int, list[int]] = {}
        self.refused = 0
        self._rows = rec.finished  # read right after a put: was it turned away at the door?
        self._finished = rec.finished.append
        self._event = rec.events.append

    def sent(self, root: int) -> None:
        """The producer sent (or resent) the message ``root``."""
        st = self.state.get(root)
        if st is None:
            self.state[root] = [1, 0, 0]
        else:
            st[0] += 1

    def gone(self, root: int) -> None:
        """A send of ``root`` ended on its way (lost on a link): it will never arrive."""
        st = self.state[root]
        st[0] -= 1
        self._forget(root, st)

    def resolved(self, root: int) -> None:
        """The producer stopped waiting for ``root``: it sends it no more."""
        st = self.state[root]
        st[2] = 1
        self._forget(root, st)

    def _forget(self, root: int, st: list[int]) -> None:
        if st[2] and st[0] <= 0:
            del self.state[root]

    def put(self, msg: Message) -> Event | None:
        assert isinstance(msg, Request)  # only a producer that tracks its sends has a door
        root = msg.root
        st = self.state[root]
        st[0] -= 1
        msg.at_door = True
        if st[1]:
            now = self.env.now
            self.refused += 1
            self._event((msg.id, REFUSED, self.producer, now))
            self._finished((msg.id, now, DEDUPLICATED, -1))
            self._forget(root, st)
            return None
        rows = self._rows
        n = len(rows)
        blocked = self.target.put(msg)
        # A send turned away at the door (a full queue, a broker down with when_down:
        # drop) was not taken in: a resend of it is welcome. Rows are logged at once.
        turned_away = any(r[0] == msg.id and r[2] == DROPPED for r in rows[n:])
        if not turned_away:
            st[1] = 1
        self._forget(root, st)
        return blocked

    def inside(self) -> int:
        return 0
