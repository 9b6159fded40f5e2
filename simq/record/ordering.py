"""Delivery order against send order: out-of-order deliveries, folded chunk by chunk.

Order is measured per stream (engine.order: one key, or one producer's messages without
a key; a fan-out subscriber's copies form a stream of their own) at a place: each queue
or partition (where a consumer finished processing the message) and the whole run (its
delivery, the outcome ``delivered``). A delivery is *out of order* when a message of
its stream sent later was delivered there before it; its *displacement* is how many
places later in the stream's send order the latest message delivered before it was
sent (the highest place delivered so far minus its own). Both need only the highest
place delivered per stream, so a place keeps one integer a stream, whatever the length
of the run. Every delivery moves the highest place; the counts take those in the
measurement window.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OrderTally"]

_LOW = (1 << 32) - 1


class OrderTally:
    """Deliveries, out-of-order deliveries and the largest displacement at one place."""

    __slots__ = ("deliveries", "displacement", "late", "top")

    def __init__(self) -> None:
        self.top = np.full(0, -1, dtype=np.int64)  # highest place delivered, per stream
        self.deliveries = 0
        self.late = 0
        self.displacement = 0

    def add(self, stream: np.ndarray, seq: np.ndarray, counted: np.ndarray) -> None:
        """Deliveries in the order they happened: their streams, places, and whether each
        is in the window."""
        if not len(stream):
            return
        need = int(stream.max()) + 1
        if need > len(self.top):
            self.top = np.concatenate([self.top, np.full(need - len(self.top), -1,
                                                         dtype=np.int64)])
        by = np.argsort(stream, kind="stable")  # each stream's deliveries, in order
        s, q, c = stream[by], seq[by], counted[by]
        # A running maximum that restarts at each stream: the stream in the high bits.
        run = np.maximum.accumulate((s << 32) | (q + 1))
        same = np.zeros(len(s), dtype=bool)
        same[1:] = s[1:] == s[:-1]
        before = np.full(len(s), -1, dtype=np.int64)
        before[1:] = (run[:-1] & _LOW) - 1
        before = np.maximum(np.where(same, before, -1), self.top[s])
        late = (q < before) & c
        self.deliveries += int(c.sum())
        self.late += int(late.sum())
        if late.any():
            self.displacement = max(self.displacement, int((before - q)[late].max()))
        last = np.ones(len(s), dtype=bool)
        last[:-1] = ~same[1:]
        ends = s[last]
        self.top[ends] = np.maximum(self.top[ends], (run[last] & _LOW) - 1)

    def summary(self) -> dict[str, float]:
        n = self.deliveries
        return {"deliveries": n, "out_of_order": self.late,
                "fraction": self.late / n if n else math.nan,
                "max_displacement": self.displacement}
