"""The compact line packs full blocks column by column: every field comes back bit for bit."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from simq.engine.core import Message
from simq.engine.line import NEAR, Line

FIELDS = ("id", "sent", "size", "arrived", "origin", "queue", "deadline", "stream", "seq",
          "key")


def _bits(m: Message) -> tuple[Any, ...]:
    """Every field, floats by their bits (so -0.0 and 0.0 differ, NaN equals NaN)."""
    return tuple(struct.pack("d", v) if isinstance(v, float) else v
                 for v in (getattr(m, f) for f in FIELDS))


def _plain(i: int, sent: float) -> Message:
    m = Message(i, sent, 1000.0, 0)
    m.queue, m.stream, m.seq = 0, 0, i
    return m


def _odd(i: int) -> Message:
    """Messages whose columns break a rule somewhere inside a block."""
    m = _plain(3 * i if i % 700 else 3 * i + 1, i * 0.1)  # a counter that skips once
    if i % 333 == 5:
        m.arrived = m.sent + 0.5  # arrived differs from sent once in a while
    if i % 1000 == 999:
        m.size = -0.0  # equal to 0.0, other bits
    if i % 1500 == 7:
        m.deadline = math.nan
    m.key = -1 if i % 2 else 4
    return m


@pytest.mark.parametrize("make", [
    lambda i: _plain(i, i * 0.5),  # every rule holds: only `sent` is kept as numbers
    _odd,
    lambda i: _plain(i, 0.0) if i % 50 else _plain(i, -0.0),
], ids=["rules", "broken-rules", "constant-but-zero-sign"])
def test_packed_blocks_give_back_every_field_bit_for_bit(make: Any) -> None:
    n = 6 * NEAR + 17
    msgs = [make(i) for i in range(n)]
    line = Line()
    for m in msgs[: n // 2]:
        line.append(m)
    got = [line.popleft() for _ in range(NEAR + 5)]  # unpack part of a packed block
    for m in msgs[n // 2:]:
        line.append(m)
    assert [_bits(a) for a in line] == [_bits(m) for m in msgs[NEAR + 5:]]
    while line:
        got.append(line.popleft())
    assert [_bits(a) for a in got] == [_bits(m) for m in msgs]
