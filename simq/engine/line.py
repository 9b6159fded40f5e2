"""A FIFO waiting line that keeps a plain message as ten numbers instead of an object.

An overloaded queue holds most of a run's messages at once. As objects they cost about
300 bytes each (the object, its boxed floats and ints, the deque's pointer); here a plain
:class:`~simq.engine.core.Message` is ten doubles (80 bytes) in fixed-size blocks, and the
message is made again, field for field, when it leaves the line. Anything else (a
:class:`~simq.engine.core.Request`, which names its sender; a message on a later visit or
dispatched by a prefetch buffer) waits as itself.

The numbers are exact: floats are stored as they are, and the ints (ids, sequence
numbers, indices) stay far below 2**53. A message taken out equals the one put in, but is
a new object: so the line is only used where no one else holds a waiting message and
changes it (engine.simulation: not on a queue read with a visibility timeout, where a
message given back may still be in a worker's hands).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterator

from simq.engine.core import Message

__all__ = ["Line"]

WIDTH = 10  # numbers per message
NEAR = 1024  # messages at the front of the line kept as objects
BLOCK = NEAR * WIDTH  # numbers per block: 80 KB, allocated and freed whole
_OBJECT = (math.nan,) * WIDTH  # the row of a message kept as itself (id NaN)


def _made(row: array[float]) -> Message:
    """The message a row of numbers describes."""
    i, sent, size, arrived, origin, queue, deadline, stream, seq, key = row
    msg = Message(int(i), sent, size, int(origin))
    msg.arrived = arrived
    msg.queue = int(queue)
    msg.deadline = deadline
    msg.stream = int(stream)
    msg.seq = int(seq)
    msg.key = int(key)
    return msg


class Line:
    """The deque operations a queue uses (``append``, ``popleft``, ``[0]``, ``len``,
    iteration, truth). The first ``NEAR`` messages wait as themselves (a line that short
    costs nothing to keep, and a message then leaves it without being made again); those
    behind them wait as numbers, and move up as objects a block at a time."""

    __slots__ = ("_near", "_blocks", "_head", "_far", "_objects", "_pushed", "_popped")

    def __init__(self) -> None:
        self._near: deque[Message] = deque()
        self._blocks: deque[array[float]] = deque([array("d")])
        self._head = 0  # where the first message behind the near ones starts
        self._far = 0  # how many messages wait as numbers
        self._objects: dict[int, Message] = {}  # messages behind kept as themselves
        self._pushed = 0  # position (among those behind) of the next message appended
        self._popped = 0  # position of the first message behind

    def append(self, msg: Message) -> None:
        if not self._far and len(self._near) < NEAR:
            self._near.append(msg)
            return
        tail = self._blocks[-1]
        if len(tail) >= BLOCK:
            tail = array("d")
            self._blocks.append(tail)
        if msg.__class__ is Message and msg.visit == 0 and msg.left != msg.left:
            tail.extend((msg.id, msg.sent, msg.size, msg.arrived, msg.origin, msg.queue,
                         msg.deadline, msg.stream, msg.seq, msg.key))
        else:
            self._objects[self._pushed] = msg
            tail.extend(_OBJECT)
        self._pushed += 1
        self._far += 1

    def popleft(self) -> Message:
        near = self._near
        if not near:
            if not self._far:
                raise IndexError("pop from an empty line")
            self._move_up()
        return near.popleft()

    def _move_up(self) -> None:
        """Make up to a block of the messages behind into objects, at the front."""
        block, h = self._blocks[0], self._head
        end = min(len(block), h + NEAR * WIDTH)
        objects, position = self._objects, self._popped
        put = self._near.append
        for k in range(h, end, WIDTH):
            row = block[k: k + WIDTH]
            put(objects.pop(position) if row[0] != row[0] else _made(row))
            position += 1
        moved = position - self._popped
        self._popped = position
        self._far -= moved
        if end >= len(block):  # the block is used up: free it (or reuse it, if the last)
            end = 0
            if len(self._blocks) > 1:
                self._blocks.popleft()
            else:
                del block[:]
        self._head = end

    def __getitem__(self, i: int) -> Message:
        """Only ``[0]``: the first message."""
        if i != 0:
            raise IndexError(i)
        if not self._near and self._far:
            self._move_up()
        return self._near[0]

    def __len__(self) -> int:
        return len(self._near) + self._far

    def __bool__(self) -> bool:
        return bool(self._near) or self._far > 0

    def __iter__(self) -> Iterator[Message]:
        yield from self._near
        position, start = self._popped, self._head
        for block in list(self._blocks):
            for h in range(start, len(block), WIDTH):
                row = block[h: h + WIDTH]
                yield self._objects[position] if row[0] != row[0] else _made(row)
                position += 1
            start = 0
