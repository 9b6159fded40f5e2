"""The price of keeping messages safe: a disk write (per message or per group commit)
and replication to followers, paid before the broker takes a message in."""

from __future__ import annotations

from collections.abc import Callable

import simpy
from simpy.events import Event

from simq.engine.core import Destination, Message
from simq.engine.recorder import PERSIST, REPLICATE, Recorder

__all__ = ["Persister"]


class Persister:
    """One disk in front of a queue: writes one at a time, FIFO (a message, or a group of
    up to ``group`` messages gathered for ``wait`` seconds or while the disk is busy); then, with
    ``wait_replicas``, the slowest of ``replicas`` follower acks. Timeouts and callbacks,
    no process per message; like a link, it is never blocked by a full queue."""

    def __init__(self, env: simpy.Environment, dest: Destination, fsync: Callable[[], float],
                 group: int, wait: float, replicas: int,
                 replication: Callable[[], float] | None, wait_replicas: bool,
                 rec: Recorder) -> None:
        self.env = env
        self.dest = dest
        self.fsync = fsync
        self.group = group
        self.wait = wait
        self.replicas = replicas
        self.replication = replication
        self.wait_replicas = wait_replicas and replicas > 0
        self.free_at = 0.0
        self.pending: list[tuple[Message, float]] = []
        self._round = 0
        self.in_transit = 0
        self._stage = rec.stages.append

    def put(self, msg: Message) -> Event | None:
        now = self.env.now
        self.in_transit += 1
        self.pending.append((msg, now))
        if len(self.pending) >= self.group:
            self._write()
        elif len(self.pending) == 1:
            # A group closes `wait` after its first message, or when the disk is free if
            # that is later: what comes while the disk is busy joins the next write.
            delay = max(self.wait, self.free_at - now) if self.group > 1 else 0.0
            if delay <= 0:
                self._write()
            else:
                ev = self.env.timeout(delay, self._round)
                ev.callbacks.append(self._waited)
        return None

    def _waited(self, ev: Event) -> None:
        if ev.value == self._round and self.pending:
            self._write()

    def _write(self) -> None:
        now = self.env.now
        batch, self.pending = self.pending, []
        self._round += 1
        done = self.free_at = max(now, self.free_at) + self.fsync()
        for m, t in batch:
            self._stage((m.id, PERSIST, t, done))
        if self.wait_replicas:
            assert self.replication is not None
            acked = done + max(self.replication() for _ in range(self.replicas))
            for m, _ in batch:
                self._stage((m.id, REPLICATE, done, acked))
            done = acked
        elif self.replicas and self.replication is not None:
            for _ in range(self.replicas):  # followers copy it; nobody waits
                self.replication()
        ev = self.env.timeout(done - now, batch)
        ev.callbacks.append(self._stored)

    def _stored(self, ev: Event) -> None:
        batch: list[tuple[Message, float]] = ev.value  # type: ignore[assignment]
        self.in_transit -= len(batch)
        for m, _ in batch:
            self.dest.put(m)

    def inside(self) -> int:
        """Messages being written (or replicated) before the queue takes them in."""
        return self.in_transit
