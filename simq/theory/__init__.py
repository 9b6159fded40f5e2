"""Queueing theory as plain functions over numbers; knows nothing of SimPy or scenarios.

Rates are per second and times in seconds. Bad arguments raise ``ValueError`` naming the
argument, the rule and the value; an unstable system is a result (``stable=False``).
"""

from __future__ import annotations

from . import document
from .document import (
    FORMULAS,
    latency_as_written,
    latency_reading,
    queue_growth_reading,
    queue_length_as_written,
    throughput_as_written,
    throughput_reading,
)
from .metrics import ClosedMetrics, NetworkMetrics, PriorityMetrics, QueueMetrics
from .networks import jackson, mva, mva_curve
from .queues import (
    erlang_b,
    erlang_c,
    gg1_kingman,
    ggc_allen_cunneen,
    little,
    md1,
    mg1,
    mm1,
    mm1_sojourn_quantile,
    mm1_wait_quantile,
    mmc,
    mmc_wait_quantile,
    mmcc,
    mmck,
    priority_mg1,
)

__all__ = [
    "FORMULAS",
    "ClosedMetrics",
    "NetworkMetrics",
    "PriorityMetrics",
    "QueueMetrics",
    "document",
    "erlang_b",
    "erlang_c",
    "gg1_kingman",
    "ggc_allen_cunneen",
    "jackson",
    "latency_as_written",
    "latency_reading",
    "little",
    "md1",
    "mg1",
    "mm1",
    "mm1_sojourn_quantile",
    "mm1_wait_quantile",
    "mmc",
    "mmc_wait_quantile",
    "mmcc",
    "mmck",
    "mva",
    "mva_curve",
    "priority_mg1",
    "queue_growth_reading",
    "queue_length_as_written",
    "throughput_as_written",
    "throughput_reading",
]
