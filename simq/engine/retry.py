"""Back-off policies: how long a failed message (or a timed-out send) waits before it is
offered (or sent) again."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """One policy of :data:`simq.scenario.reliability.BACKOFFS`, jitter drawn from ``uniform``.

    ``delay(n, previous)`` is the wait before retry ``n`` (1 for the first retry);
    ``previous`` is the wait before the last retry (decorrelated jitter grows from it).
    """

    def __init__(self, policy: str, base: float, multiplier: float, cap: float,
                 uniform: Callable[[], float]) -> None:
        self.policy = policy
        self.base = base
        self.multiplier = multiplier
        self.cap = cap
        self.uniform = uniform

    def delay(self, n: int, previous: float) -> float:
        base, cap = self.base, self.cap
        if self.policy == "fixed":
            return min(cap, base)
        if self.policy == "decorrelated":
            # AWS's "decorrelated jitter": uniform between base and 3x the last wait.
            last = max(previous, base)
            return min(cap, base + self.uniform() * (3 * last - base))
        # Powers can overflow a float long before the cap matters: clamp the exponent.
        grown = min(cap, base * self.multiplier ** min(n - 1, 1000)) if base > 0 else 0.0
        if math.isinf(grown):
            grown = cap
        if self.policy == "exponential":
            return grown
        if self.policy == "full-jitter":
            return self.uniform() * grown
        return grown / 2 + self.uniform() * grown / 2  # equal-jitter
