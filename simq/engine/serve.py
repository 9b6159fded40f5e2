"""How a worker serves what it holds (the service part of the worker loop, engine.worker)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from simq.engine.core import Message
from simq.engine.recorder import DECODE

__all__ = ["Classes", "Server"]


class Classes:
    """A group's samplers per message class, indexed by the message's producer (its
    ``origin``); the last entry, index -1, is the group's own, for a backlog's messages.

    ``means`` orders the classes for a batch: a batch is one service, drawn from the
    class with the longest mean service among its members (docs/patterns.md)."""

    def __init__(self, services: Sequence[Callable[[], float]],
                 decodes: Sequence[Callable[[], float] | None], means: Sequence[float]) -> None:
        if not len(services) == len(decodes) == len(means):
            raise ValueError(f"one sampler and mean per class: {len(services)} services, "
                             f"{len(decodes)} decodes, {len(means)} means")
        self.services = list(services)
        self.decodes = None if all(d is None for d in decodes) else list(decodes)
        self.means = list(means)

    def service(self, held: list[Message]) -> float:
        services = self.services
        if len(held) == 1:
            return services[held[0].origin]()
        means = self.means
        return services[max(held, key=lambda m: means[m.origin]).origin]()


class Server:
    """How long a worker takes for what it holds: each message decoded in turn, then one
    service time (a batch shares it), times the worker's pace (a slow worker's factor).

    With message ``classes`` each message is decoded and served as its producer's class
    says at this group; without, by the group's ``service`` and ``decode``.

    The decode steps are kept per worker (``steps``) until the settler logs those of the
    processings that count for their message (a duplicate processing's do not)."""

    def __init__(self, service: Callable[[], float], decode: Callable[[], float] | None,
                 pace: Sequence[float], classes: Classes | None = None) -> None:
        self.service = service
        self.decode = decode
        self.pace = list(pace)
        self.classes = classes
        # The class sampler of a held list (None: the group's one service for all).
        self.of: Callable[[list[Message]], float] | None = (
            None if classes is None else classes.service)
        decodes = decode is not None if classes is None else classes.decodes is not None
        self.plain = not decodes and not any(p != 1.0 for p in self.pace)
        self.steps: dict[int, list[tuple[int, int, float, float]]] = {}

    def time(self, held: list[Message], slot: int, start: float) -> float:
        work = 0.0
        classes = self.classes
        if classes is None:
            decode = self.decode
            if decode is not None:
                steps = self.steps.setdefault(slot, [])
                for m in held:
                    d = decode()
                    steps.append((m.id, DECODE, start + work, start + work + d))
                    work += d
            service = self.service()
        else:
            decodes = classes.decodes
            if decodes is not None:
                steps = self.steps.setdefault(slot, [])
                for m in held:
                    sampler = decodes[m.origin]
                    if sampler is None:
                        continue
                    d = sampler()
                    steps.append((m.id, DECODE, start + work, start + work + d))
                    work += d
            service = classes.service(held)
        pace = self.pace[slot] if slot < len(self.pace) else 1.0
        return work + service * pace

    def taken(self, slot: int) -> list[tuple[int, int, float, float]]:
        """The decode steps of worker ``slot``'s current processing (now forgotten)."""
        return self.steps.pop(slot, [])
