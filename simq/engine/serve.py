"""How a worker serves what it holds (the service part of the worker loop, engine.worker)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from simq.engine.core import Message
from simq.engine.recorder import DECODE

__all__ = ["Server"]


class Server:
    """How long a worker takes for what it holds: each message decoded in turn, then one
    service time (a batch shares it), times the worker's pace (a slow worker's factor).

    The decode steps are kept per worker (``steps``) until the settler logs those of the
    processings that count for their message (a duplicate processing's do not)."""

    def __init__(self, service: Callable[[], float], decode: Callable[[], float] | None,
                 pace: Sequence[float]) -> None:
        self.service = service
        self.decode = decode
        self.pace = list(pace)
        self.plain = decode is None and not any(p != 1.0 for p in self.pace)
        self.steps: dict[int, list[tuple[int, int, float, float]]] = {}

    def time(self, held: list[Message], slot: int, start: float) -> float:
        work = 0.0
        decode = self.decode
        if decode is not None:
            steps = self.steps.setdefault(slot, [])
            for m in held:
                d = decode()
                steps.append((m.id, DECODE, start + work, start + work + d))
                work += d
        pace = self.pace[slot] if slot < len(self.pace) else 1.0
        return work + self.service() * pace

    def taken(self, slot: int) -> list[tuple[int, int, float, float]]:
        """The decode steps of worker ``slot``'s current processing (now forgotten)."""
        return self.steps.pop(slot, [])
