"""A FIFO waiting line that keeps a plain message as numbers instead of an object.

An overloaded queue holds most of a run's messages at once. As objects they cost about
300 bytes each (the object, its boxed floats and ints, the deque's pointer); here a plain
:class:`~simq.engine.core.Message` is a row of ten doubles (80 bytes) while its block of
``NEAR`` rows fills, and the message is made again, field for field, when it leaves the
line. A full block is packed column by column (:class:`_Packed`): a column whose values
follow one rule exactly (a constant such as the size, the queue or the deadline; a
counter such as the id or the sequence number; ``arrived`` equal to ``sent``) is kept as
that rule, the others as arrays. A message of one producer on one queue then costs the
8 bytes of its send time. Anything else (a :class:`~simq.engine.core.Request`, which
names its sender; a message on a later visit or dispatched by a prefetch buffer) waits
as itself.

The numbers are exact: floats are stored as they are, a rule is kept only when it gives
back every value bit for bit, and the ints (ids, sequence numbers, indices) stay far
below 2**53. A message taken out equals the one put in, but is a new object: so the line
is only used where no one else holds a waiting message and changes it
(engine.simulation: not on a queue read with a visibility timeout, where a message given
back may still be in a worker's hands).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from simq.engine.core import Message

__all__ = ["Line"]

WIDTH = 10  # numbers per message
NEAR = 1024  # messages at the front of the line kept as objects
BLOCK = NEAR * WIDTH  # numbers per block of rows: 80 KB until it is packed
_OBJECT = (math.nan,) * WIDTH  # the row of a message kept as itself (id NaN)
SENT, ARRIVED = 1, 3  # the columns of the send time and of the arrival in this line


def _made(row: Sequence[float]) -> Message:
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


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (so NaN matches NaN and -0.0 does not match 0.0)."""
    return bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


class _Packed:
    """A full block of rows, column by column: each column is either an array of its
    values, a rule ``first + k * step`` (k: the row's place in the block; step 0 is a
    constant) or, for ``arrived``, "the same as ``sent``". A rule is kept only if it
    gives back every value of the column bit for bit."""

    __slots__ = ("n", "cols")

    def __init__(self, rows: array[float]) -> None:
        table = np.frombuffer(rows, dtype=np.float64).reshape(-1, WIDTH)
        self.n = len(table)
        k = np.arange(self.n, dtype=np.float64)
        cols: list[np.ndarray | tuple[float, float] | None] = []
        for j in range(WIDTH):
            x = table[:, j]
            first = float(x[0])
            # A constant of inf (no deadline) has no step: inf - inf is NaN.
            step = float(x[1] - x[0]) if self.n > 1 and math.isfinite(first) else 0.0
            if j == ARRIVED and _same_bits(x, table[:, SENT]):
                cols.append(None)  # arrived = sent
            elif _same_bits(x, first + k * step):
                cols.append((first, step))
            else:
                cols.append(x.copy())  # its own buffer: the block of rows is freed
        self.cols = cols

    def rows(self, start: int) -> list[list[float]]:
        """Rows ``start`` to the end, as lists of floats."""
        k = np.arange(start, self.n, dtype=np.float64)
        out = np.empty((len(k), WIDTH))
        for j, col in enumerate(self.cols):
            if isinstance(col, tuple):
                out[:, j] = col[0] + k * col[1]
            elif col is not None:
                out[:, j] = col[start:]
        if self.cols[ARRIVED] is None:
            out[:, ARRIVED] = out[:, SENT]
        rows: list[list[float]] = out.tolist()
        return rows


def _rows(block: array[float] | _Packed, start: int, end: int) -> list[Sequence[float]]:
    """Rows ``start`` to ``end`` of a block, packed or not."""
    if isinstance(block, _Packed):
        return list(block.rows(start)[: end - start])
    return [block[k * WIDTH: (k + 1) * WIDTH] for k in range(start, end)]


def _length(block: array[float] | _Packed) -> int:
    return block.n if isinstance(block, _Packed) else len(block) // WIDTH


class Line:
    """The deque operations a queue uses (``append``, ``popleft``, ``[0]``, ``len``,
    iteration, truth). The first ``NEAR`` messages wait as themselves (a line that short
    costs nothing to keep, and a message then leaves it without being made again); those
    behind them wait as numbers, and move up as objects a block at a time."""

    __slots__ = ("_near", "_packed", "_tail", "_head", "_far", "_objects", "_pushed",
                 "_popped")

    def __init__(self) -> None:
        self._near: deque[Message] = deque()
        self._packed: deque[_Packed] = deque()  # full blocks, oldest first
        self._tail: array[float] = array("d")  # the last block's rows, still filling
        self._head = 0  # the row of the first block where the messages behind start
        self._far = 0  # how many messages wait as numbers
        self._objects: dict[int, Message] = {}  # messages behind kept as themselves
        self._pushed = 0  # position (among those behind) of the next message appended
        self._popped = 0  # position of the first message behind

    def append(self, msg: Message) -> None:
        if not self._far and len(self._near) < NEAR:
            self._near.append(msg)
            return
        tail = self._tail
        if len(tail) >= BLOCK:
            self._packed.append(_Packed(tail))
            tail = self._tail = array("d")
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

    def _blocks(self) -> list[array[float] | _Packed]:
        return [*self._packed, self._tail]

    def _move_up(self) -> None:
        """Make up to a block of the messages behind into objects, at the front."""
        block: array[float] | _Packed = self._packed[0] if self._packed else self._tail
        h = self._head
        n = _length(block)
        end = min(n, h + NEAR)
        objects, position = self._objects, self._popped
        put = self._near.append
        for row in _rows(block, h, end):
            put(objects.pop(position) if row[0] != row[0] else _made(row))
            position += 1
        moved = position - self._popped
        self._popped = position
        self._far -= moved
        if end >= n:  # the block is used up: free it (or reuse it, if the last)
            end = 0
            if self._packed:
                self._packed.popleft()
            else:
                del self._tail[:]
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
        for block in self._blocks():
            for row in _rows(block, start, _length(block)):
                yield self._objects[position] if row[0] != row[0] else _made(row)
                position += 1
            start = 0
