"""What every component shares: the message, random streams, the destination protocol."""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
from simpy.events import Event

from simq.dists import BLOCK, Distribution, stream

NAN = math.nan
INF = math.inf

__all__ = ["Daemons", "Destination", "Message", "Request", "Requester", "Streams", "key",
           "next_visit"]


class Message:
    """One message in flight. Small on purpose: the log holds its history.

    Every field is set when the message is made, the rarely used ones to a value that
    means "unset", so that reading one never raises and a waiting line can keep a plain
    message as numbers (engine.line)."""

    # `queue` is stamped by every queue a message passes (where it waits now), `left` by a
    # prefetch buffer (when the broker dispatched it to the consumer; NaN before);
    # `deadline` is only set by a producer with a per-message ttl (inf: none).
    # `visit` counts the queues a message entered after being processed (feedback, a
    # pipeline, a dead-letter queue), read only where copies of it may be processed
    # twice (engine.queue.ReliableQueue).
    # `stream`, `seq` and `key` are set by engine.order for every producer's message
    # (-1 on a queue's starting backlog, which has no send order): a partitioned topic
    # routes by `key` when it is >= 0.
    __slots__ = ("id", "sent", "size", "arrived", "origin", "queue", "left", "deadline",
                 "visit", "stream", "seq", "key")

    def __init__(self, id: int, sent: float, size: float, origin: int = -1) -> None:
        self.id = id
        self.sent = sent
        self.size = size
        self.arrived = sent  # when it entered the waiting line it is in now
        # The producer's index (-1: a queue's starting backlog). Carried by the message
        # because the log it also went to is compacted or folded as the run goes.
        self.origin = origin
        self.queue = -1
        self.left = NAN
        self.deadline = INF
        self.visit = 0
        self.stream = -1
        self.seq = -1
        self.key = -1


def key(msg: Message) -> tuple[int, int]:
    """A message on one visit: what a broker settles, and what dedup recognises."""
    return (msg.id, msg.visit)


def next_visit(msg: Message) -> Message:
    """The same message as a fresh object for its next visit: a copy of it still in a
    line (left there by a worker whose visibility timeout ran out) stays on this one."""
    out = copy.copy(msg)
    out.visit = msg.visit + 1
    return out


class Requester(Protocol):
    """A sender that learns when its message was processed (sync clients, windows, send
    timeouts): how long the reply takes to travel back, and what to do when it arrives."""

    reply_latency: Callable[[], float]
    resends: bool  # may send a message more than once (a timeout and retries)

    def acked(self, msg: Request) -> None: ...

    def gone(self, msg: Request) -> None: ...


class Request(Message):
    """A message whose sender learns of its processing: which sender, which message it is
    a send of (``root``: the first send's id; a retry is a new message with the same root:
    with the producer, the message's identity, its sequence number) and which send."""

    # `at_door`: it reached an idempotent producer's broker (engine.idempotence).
    __slots__ = ("reply_to", "root", "n", "at_door")

    def __init__(self, id: int, sent: float, size: float, reply_to: Requester,
                 origin: int = -1, root: int | None = None, n: int = 1) -> None:
        super().__init__(id, sent, size, origin)
        self.reply_to = reply_to
        self.root = id if root is None else root
        self.n = n
        self.at_door = False


class Destination(Protocol):
    """Anything a message can be handed to: a queue, a link, a sink.

    ``put`` returns ``None`` when the message was taken (or dropped), or an event the
    sender must wait for when it is blocked by backpressure.
    """

    def put(self, msg: Message) -> Event | None: ...


class Holder(Protocol):
    """A component that can hold messages: at the end of a run it says how many it holds
    (for conservation) and logs the intervals still open (waits, services)."""

    def inside(self) -> int: ...


class Streams:
    """Independent random streams per component, from one ``SeedSequence``.

    A stream's key is the dotted path of what it draws (``producers.app.interarrival``),
    hashed into the spawn key: adding a component never shifts another's numbers, which
    is what common random numbers between configurations need.
    """

    def __init__(self, seed: np.random.SeedSequence) -> None:
        self._seed = seed

    def generator(self, key: str) -> np.random.Generator:
        child = np.random.SeedSequence(
            entropy=self._seed.entropy,
            spawn_key=(*self._seed.spawn_key, zlib.crc32(key.encode())),
            pool_size=self._seed.pool_size,
        )
        return np.random.Generator(np.random.PCG64(child))

    def draw(self, key: str, dist: Distribution) -> Callable[[], float]:
        """A zero-argument sampler of ``dist`` on the stream named ``key``."""
        return stream(dist, self.generator(key))

    def uniform(self, key: str) -> Callable[[], float]:
        """Uniform(0, 1) variates in blocks, for coin flips such as loss."""
        rng = self.generator(key)

        def blocks() -> Iterator[float]:
            while True:
                yield from rng.random(BLOCK).tolist()

        return blocks().__next__


class Daemons(Protocol):
    """The run's background clock (engine.simulation): sleeps that do not keep a run
    that stops after N messages alive."""

    def sleep(self, delay: float) -> Event: ...

    def over(self) -> bool: ...
