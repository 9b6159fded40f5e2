"""Send order: every producer's message gets its ordering stream and its place in it.

A stream is what order is measured against (record.accumulators): all messages of one
key, whichever producer sent them, or, for a message without a key, its producer's
messages. A retry is a new message with the place of its first send (the application
sent it once); a fan-out copy keeps its original's place in a stream of its own per
subscriber, since each subscriber sees its own sequence.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence

from simq.engine.core import Message
from simq.engine.recorder import Recorder
from simq.scenario.keys import KeySpec, partition_of

__all__ = ["NO_KEY", "Sequencer", "key_source"]

NO_KEY = -1


class Sequencer:
    """Stamps messages with stream, place and key, and logs them (one row a message)."""

    def __init__(self, rec: Recorder) -> None:
        self._log = rec.order.append
        self.names = rec.key_names  # key index -> text, shared with the recorder
        self._index: dict[str, int] = {}
        self._streams: dict[tuple[int, int, int], int] = {}
        self._next: list[int] = []  # the next place in each stream
        self._parts: dict[tuple[int, int], int] = {}

    def key_index(self, text: str) -> int:
        """The index of a key's text (``""``: no key)."""
        if not text:
            return NO_KEY
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.names)
            self.names.append(text)
        return i

    def _stream(self, producer: int, key: int, branch: int) -> int:
        sid = self._streams.get((producer, key, branch))
        if sid is None:
            sid = self._streams[(producer, key, branch)] = len(self._next)
            self._next.append(0)
        return sid

    def first(self, msg: Message, producer: int, key: int) -> None:
        """A first send: the next place in its key's stream (its producer's without one)."""
        sid = self._stream(-1 if key >= 0 else producer, key, 0)
        seq = self._next[sid]
        self._next[sid] = seq + 1
        msg.stream, msg.seq, msg.key = sid, seq, key
        self._log((msg.id, sid, seq, key))

    def stamper(self, producer: int, keys: Callable[[], int] | None
                ) -> Callable[[Message], None]:
        """What stamps a producer's first sends: :meth:`first` with the next key, or
        for a producer without keys (one stream) the same, inlined, on its hot path."""
        if keys is not None:
            first = self.first
            return lambda msg: first(msg, producer, keys())
        sid = self._stream(producer, NO_KEY, 0)
        nxt, log = self._next, self._log

        def stamp(msg: Message) -> None:
            seq = nxt[sid]
            nxt[sid] = seq + 1
            msg.stream, msg.seq, msg.key = sid, seq, NO_KEY
            log((msg.id, sid, seq, NO_KEY))

        return stamp

    def again(self, msg: Message, of: Message) -> None:
        """A retry of ``of``: the same stream and place."""
        msg.stream, msg.seq, msg.key = of.stream, of.seq, of.key
        self._log((msg.id, of.stream, of.seq, of.key))

    def copy(self, msg: Message, of: Message, branch: int) -> None:
        """Fan-out subscriber ``branch``'s copy of ``of``: its place in that branch's stream."""
        sid = self._stream(of.stream, -2, branch)
        msg.stream, msg.seq, msg.key = sid, of.seq, of.key
        self._log((msg.id, sid, of.seq, of.key))

    def partition(self, key: int, partitions: int) -> int:
        """The partition of a key (engine.topic): murmur2 of its text, as Kafka does."""
        p = self._parts.get((key, partitions))
        if p is None:
            p = self._parts[(key, partitions)] = partition_of(self.names[key], partitions)
        return p


def key_source(spec: KeySpec | None, trace_keys: Sequence[str] | None,
               position: Callable[[], int] | None, uniform: Callable[[], float],
               seq: Sequencer) -> Callable[[], int] | None:
    """A zero-argument chooser of the next first send's key index (None: no keys).

    A trace's keys go with its rows: ``position()`` is the row of the send being made
    (rows before the producer's ``start`` are skipped with their keys).
    """
    if trace_keys is not None:
        assert position is not None
        indices = [seq.key_index(k) for k in trace_keys]
        n = len(indices)

        def from_trace() -> int:
            i = position()
            return indices[i] if 0 <= i < n else NO_KEY

        return from_trace
    if spec is None:
        return None
    names = [seq.key_index(name) for name in spec.names()]
    if spec.kind == "uniform":
        k = spec.n
        return lambda: names[min(int(uniform() * k), k - 1)]
    cumulative = list(itertools.accumulate(spec.probabilities()))
    cumulative[-1] = float("inf")
    return lambda: names[bisect.bisect_right(cumulative, uniform())]
