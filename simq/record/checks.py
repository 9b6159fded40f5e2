"""The rules every run's records obey, checked as they are folded: a break is a bug in
the engine (:class:`EngineBugError`), never a user error."""

from __future__ import annotations

import numpy as np

__all__ = ["TOL", "ConservationError", "EngineBugError", "InvariantError", "known",
           "no_negative"]


class EngineBugError(RuntimeError):
    """The records break a rule every run obeys: a bug in the engine, never a user error."""


class ConservationError(EngineBugError):
    """Messages were created or lost by the engine itself: a bug, never a user error."""


class InvariantError(EngineBugError):
    """A negative wait, service, latency or breakdown part: a bug in the engine."""


# Times are compared after subtraction; this much below zero is rounding, not a bug.
TOL = 1e-9


def known(ids: np.ndarray, produced: int) -> None:
    if len(ids) and int(ids.max()) >= produced:
        raise EngineBugError(f"a log row names message {int(ids.max())}, but only "
                             f"{produced} messages were created")


def no_negative(what: str, x: np.ndarray, ids: np.ndarray) -> None:
    bad = x < -TOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvariantError(f"negative {what} {float(x[i])!r} of message {int(ids[i])}")
