"""Scenario keys for what goes wrong and what the system does about it.

A consumer group's ``ack``, ``visibility_timeout``, ``failure``, ``max_attempts``,
``backoff``, ``dedup`` and ``crashes``; a queue's ``ttl``, ``expiry`` and ``dead_letter``;
a producer's ``ttl``. Every key is documented in ``docs/reliability.md``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from simq.dists import Distribution, parse

__all__ = ["BACKOFFS", "BackoffSpec", "CrashSpec", "DurabilitySpec", "FaultSpec",
           "SendRetrySpec", "SlowSpec"]

_Strict = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]

BACKOFFS = ("fixed", "exponential", "full-jitter", "equal-jitter", "decorrelated")


class BackoffSpec(BaseModel):
    """How long a failed message waits before it is offered again.

    ``delay`` is the base; the n-th retry of exponential policies waits up to
    ``min(cap, delay * multiplier ** (n - 1))``, jittered as the policy says.
    """

    model_config = _Strict

    policy: Literal["fixed", "exponential", "full-jitter", "equal-jitter", "decorrelated"] = (
        "fixed")
    delay: NonNeg = 0.0
    multiplier: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    cap: float = math.inf

    @field_validator("cap", mode="before")
    @classmethod
    def _cap(cls, v: Any) -> float:
        if isinstance(v, str) and v.strip().lower() in {"inf", ".inf", "infinity"}:
            return math.inf
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v) or v <= 0:
            raise ValueError(f"must be a number of seconds > 0 (or .inf), got {v!r}")
        return float(v)


def _dist(value: Any, info: ValidationInfo) -> Distribution:
    base = (info.context or {}).get("base_dir")
    return parse(value, path="", base_dir=base)


class CrashSpec(BaseModel):
    """Faults: a component fails after ``mtbf`` up-time and is back after ``mttr``
    (random), and/or fails at the times in ``at``: ``[[time, seconds down], ...]``.
    For a consumer group, random crashes hit each worker, scheduled ones all of them."""

    model_config = _Strict

    mtbf: Distribution | None = None
    mttr: Distribution | None = None
    at: list[tuple[NonNeg, Positive]] | None = None

    _parse = field_validator("mtbf", "mttr", mode="before")(_dist)

    @model_validator(mode="after")
    def _given(self) -> CrashSpec:
        if (self.mtbf is None) != (self.mttr is None):
            raise ValueError("give both `mtbf` (up-time before a crash) and `mttr` (time to "
                             "restart)")
        if self.mtbf is None and not self.at:
            raise ValueError("give `mtbf` and `mttr`, or `at: [[time, seconds down], ...]`")
        if self.at:
            times = [t for t, _ in self.at]
            if times != sorted(times):
                raise ValueError(f"`at` times must be in increasing order, got {times}")
        return self


FaultSpec = CrashSpec  # a queue's outages and a link's partitions take the same keys


class SendRetrySpec(BaseModel):
    """A producer's retries after a send ``timeout``: at most ``max_attempts`` sends per
    message, waiting as ``backoff`` says, and (``budget``) at most that many retries per
    first send, over the run (plus ``budget_floor`` retries, so a quiet start may retry)."""

    model_config = _Strict

    max_attempts: Annotated[int, Field(ge=1)] = 3
    backoff: BackoffSpec = Field(default_factory=BackoffSpec)
    budget: NonNeg | None = None
    budget_floor: Annotated[int, Field(ge=0)] = 10


class GroupCommitSpec(BaseModel):
    """One disk write for up to ``size`` messages, or for what came within ``wait``
    seconds of the first one (whichever comes first)."""

    model_config = _Strict

    size: Annotated[int, Field(ge=1)]
    wait: NonNeg = 0.0


class DurabilitySpec(BaseModel):
    """What it costs to keep a message safe before the broker takes it in: a disk write
    (``fsync``, per message or per ``group_commit``) and copies on ``replicas`` followers,
    each acknowledging after ``replication``; with ``acks: all`` the message waits for
    every follower, with ``acks: 1`` only for the leader's own write."""

    model_config = _Strict

    fsync: Distribution = Field(default_factory=lambda: parse("constant(0)"))
    group_commit: GroupCommitSpec | None = None
    replicas: Annotated[int, Field(ge=0)] = 0
    replication: Distribution = Field(default_factory=lambda: parse("constant(0)"))
    acks: Literal["1", "all"] = "1"

    _parse = field_validator("fsync", "replication", mode="before")(_dist)

    @field_validator("acks", mode="before")
    @classmethod
    def _acks(cls, v: Any) -> Any:
        if v == 1 or v == "1":
            return "1"
        if v == "all":
            return v
        raise ValueError(f"must be 1 (the leader's write) or all (every replica), got {v!r}")


class SlowSpec(BaseModel):
    """``workers`` of the group take ``factor`` times as long over every message (a slow
    consumer: a noisy neighbour, a degraded disk)."""

    model_config = _Strict

    workers: Annotated[int, Field(ge=1)] = 1
    factor: Annotated[float, Field(gt=0, allow_inf_nan=False)]
