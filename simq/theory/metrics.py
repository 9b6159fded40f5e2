"""Result records of the theory functions: frozen, keyword-only, with ``as_dict()``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ClosedMetrics", "NetworkMetrics", "PriorityMetrics", "QueueMetrics"]


class _AsDict:
    def as_dict(self) -> dict[str, Any]:
        """A plain dict (nested records become dicts, tuples stay tuples)."""
        out: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return out


@dataclass(frozen=True, kw_only=True)
class QueueMetrics(_AsDict):
    """Steady-state means of one queueing station; rates per second, times in seconds.

    ``wait_mean``/``length_mean`` are Wq/Lq (waiting only), ``sojourn_mean``/``number_mean``
    are W/L (waiting + service). For an unstable infinite buffer (λ >= cμ) the waits and
    lengths are ``math.inf``, ``throughput`` is cμ and ``growth_rate`` = λ − cμ.
    """

    model: str
    exact: bool
    arrival_rate: float
    throughput: float
    utilization: float
    wait_mean: float
    length_mean: float
    sojourn_mean: float
    number_mean: float
    p_wait: float
    p_block: float
    stable: bool
    growth_rate: float = 0.0
    servers: int = 1
    service_mean: float = math.nan
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class NetworkMetrics(_AsDict):
    """An open network: per-node metrics plus end-to-end means (Little's law)."""

    nodes: tuple[QueueMetrics, ...]
    arrival_rates: tuple[float, ...]
    visit_ratios: tuple[float, ...]
    sojourn_mean: float
    number_mean: float
    throughput: float
    stable: bool
    external_rate: float
    growth_rate: float = 0.0
    model: str = "open Jackson network"
    exact: bool = True
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ClosedMetrics(_AsDict):
    """A closed network of ``n`` customers; ``response_time`` excludes the think time."""

    n: int
    throughput: float
    response_time: float
    queue_lengths: tuple[float, ...]
    utilizations: tuple[float, ...]
    residence_times: tuple[float, ...]
    think: float
    exact: bool = True
    model: str = "closed network (MVA)"
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class PriorityMetrics(_AsDict):
    """Non-preemptive priority M/G/1: per-class tuples (class 0 highest) plus overall means."""

    arrival_rates: tuple[float, ...]
    utilizations: tuple[float, ...]
    wait_means: tuple[float, ...]
    sojourn_means: tuple[float, ...]
    length_means: tuple[float, ...]
    throughputs: tuple[float, ...]
    growth_rates: tuple[float, ...]
    wait_mean: float
    sojourn_mean: float
    length_mean: float
    utilization: float
    stable: bool
    model: str = "M/G/1 non-preemptive priority (Cobham)"
    exact: bool = True
    note: str = ""
