"""Scenario keys for what goes wrong and what the system does about it.

A consumer group's ``ack``, ``visibility_timeout``, ``failure``, ``max_attempts``,
``backoff``, ``dedup`` and ``crashes``; a queue's ``ttl``, ``expiry`` and ``dead_letter``;
a producer's ``ttl``. Every key is documented in ``docs/reliability.md``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from simq.errors import shown
from simq.scenario.types import (
    STRICT,
    Count,
    Dist,
    NonNegative,
    Positive,
    PositiveOrInf,
    Whole,
    default_dist,
)

__all__ = ["BACKOFFS", "BackoffSpec", "CrashSpec", "DurabilitySpec", "FaultSpec",
           "SendRetrySpec", "SlowSpec"]


BACKOFFS = ("fixed", "exponential", "full-jitter", "equal-jitter", "decorrelated")


class BackoffSpec(BaseModel):
    """How long a failed message waits before it is offered again.

    ``delay`` is the base; the n-th retry of exponential policies waits up to
    ``min(cap, delay * multiplier ** (n - 1))``, jittered as the policy says.
    """

    model_config = STRICT

    policy: Literal["fixed", "exponential", "full-jitter", "equal-jitter", "decorrelated"] = (
        "fixed")
    delay: NonNegative = 0.0
    multiplier: Annotated[NonNegative, Field(ge=1)] = 2.0
    cap: PositiveOrInf = math.inf


class FaultSpec(BaseModel):
    """Faults: a component fails after ``mtbf`` up-time and is back after ``mttr``
    (random), and/or fails at the times in ``at``: ``[[time, seconds down], ...]``."""

    model_config = STRICT

    mtbf: Dist | None = None
    mttr: Dist | None = None
    at: list[tuple[NonNegative, Positive]] | None = None

    @model_validator(mode="after")
    def _given(self) -> FaultSpec:
        if (self.mtbf is None) != (self.mttr is None):
            raise ValueError("give both `mtbf` (up-time before a crash) and `mttr` (time to "
                             "restart)")
        if self.mtbf is None and not self.at:
            raise ValueError("give `mtbf` and `mttr`, or `at: [[time, seconds down], ...]`")
        if (self.mtbf is not None and self.mttr is not None and self.mtbf.always_zero
                and self.mttr.always_zero):
            raise ValueError("`mtbf` and `mttr` are both always 0: it would fail and recover "
                             "forever at one instant and time would never advance; give one "
                             "of them a positive mean")
        if self.at:
            times = [t for t, _ in self.at]
            if times != sorted(times):
                raise ValueError(f"`at` times must be in increasing order, got {times}")
        return self


class CrashSpec(FaultSpec):
    """A consumer group's crashes: random ones hit each worker; scheduled ones (``at``)
    hit the first ``workers`` members at that time, oldest first (default: all)."""

    workers: Count | None = None

    @model_validator(mode="after")
    def _chosen(self) -> CrashSpec:
        if self.workers is not None and not self.at:
            raise ValueError("`workers` chooses who the scheduled crashes `at` hit; random "
                             "crashes (`mtbf`) hit every worker")
        return self


class SendRetrySpec(BaseModel):
    """A producer's retries after a send ``timeout``: at most ``max_attempts`` sends per
    message, waiting as ``backoff`` says, and (``budget``) at most that many retries per
    first send, over the run (plus ``budget_floor`` retries, so a quiet start may retry)."""

    model_config = STRICT

    max_attempts: Count = 3
    backoff: BackoffSpec = Field(default_factory=BackoffSpec)
    budget: NonNegative | None = None
    budget_floor: Whole = 10


class GroupCommitSpec(BaseModel):
    """One disk write for up to ``size`` messages, or for what came within ``wait``
    seconds of the first one (whichever comes first)."""

    model_config = STRICT

    size: Count
    wait: NonNegative = 0.0


class DurabilitySpec(BaseModel):
    """What it costs to keep a message safe before the broker takes it in: a disk write
    (``fsync``, per message or per ``group_commit``) and copies on ``replicas`` followers,
    each acknowledging after ``replication``; with ``acks: all`` the message waits for
    every follower, with ``acks: 1`` only for the leader's own write."""

    model_config = STRICT

    fsync: Dist = default_dist("constant(0)")
    group_commit: GroupCommitSpec | None = None
    replicas: Whole = 0
    replication: Dist = default_dist("constant(0)")
    acks: Literal["1", "all"] = "1"

    @field_validator("acks", mode="before")
    @classmethod
    def _acks(cls, v: Any) -> Any:
        if v == 1 or v == "1":
            return "1"
        if v == "all":
            return v
        raise ValueError(f"must be 1 (the leader's write) or all (every replica), got {shown(v)}")


class SlowSpec(BaseModel):
    """``workers`` of the group take ``factor`` times as long over every message (a slow
    consumer: a noisy neighbour, a degraded disk)."""

    model_config = STRICT

    workers: Count = 1
    factor: Positive
