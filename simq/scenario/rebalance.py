"""A consumer group's rebalance keys (``consumers.NAME.rebalance``), as Kafka names them:
the protocol (eager or cooperative, KIP-429), the assignor (range, round-robin, sticky),
how long one rebalance takes, and the session timeout after which a crashed member is
noticed. Documented in docs/rebalancing.md."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from simq.scenario.types import STRICT, Dist, Positive, default_dist

__all__ = ["ASSIGNORS", "PROTOCOLS", "RebalanceSpec"]

PROTOCOLS = ("eager", "cooperative")
ASSIGNORS = ("range", "round-robin", "sticky")


class RebalanceSpec(BaseModel):
    """How a group on a partitioned topic hands its partitions round when its membership
    changes: ``eager`` revokes every partition for the rebalance ``time`` (every member
    pauses), ``cooperative`` only the partitions that move; a crashed member is noticed
    ``session_timeout`` seconds after it crashed (Kafka's ``session.timeout.ms``)."""

    model_config = STRICT

    protocol: Literal["eager", "cooperative"] = "eager"
    assignor: Literal["range", "round-robin", "sticky"] = "range"
    time: Dist = default_dist("constant(0)")
    session_timeout: Positive = 45.0
