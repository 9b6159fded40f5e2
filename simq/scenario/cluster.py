"""A broker cluster (``brokers:``): the nodes every queue and partition lives on, how
each one is replicated (``replication_factor``, ``acks``, ``min_insync_replicas`` on a
queue or topic) and what a broker's failure does (the controller notices it after
``detection`` and elects a new leader in ``election_time``). Documented in
docs/cluster.md; the engine's side is simq.engine.cluster.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator

from simq.errors import shown
from simq.scenario.reliability import FaultSpec
from simq.scenario.types import STRICT, Count, Dist, default_dist

__all__ = ["ACKS", "BrokersSpec", "placement"]

#: What a write waits for before consumers may read it and the producer holds it safe:
#: the leader alone (``1``), every in-sync replica (``all``), or a majority of the
#: replicas, leader included (``quorum``, a RabbitMQ quorum queue or a Raft log).
ACKS = ("1", "all", "quorum")


def acks_value(v: Any) -> Any:
    """``acks`` as written (``1`` is a number in YAML) to its text form."""
    if v == 1 or v == "1":
        return "1"
    if v in ("all", "quorum", -1):
        return "all" if v == -1 else v
    raise ValueError(f"must be 1 (the leader's write), all (every in-sync replica) or "
                     f"quorum (a majority of the replicas), got {shown(v)}")


#: What a queue's or a topic's write waits for on a cluster (unset: the cluster's rule).
AcksKey = Annotated[Literal["1", "all", "quorum"] | None,
                    BeforeValidator(lambda v: v if v is None else acks_value(v))]
#: A number of replicas on a cluster (unset: the cluster's).
ReplicasKey = Annotated[Count, Field(le=1_000)] | None


class BrokersSpec(BaseModel):
    """The brokers of a cluster: ``count`` of them named ``b0``, ``b1``, ... or the
    ``names`` given. Every queue and every partition of a topic has a leader and
    ``replication_factor - 1`` followers on distinct brokers, placed round-robin as
    Kafka places them. A broker spends ``service`` on every write it takes (an append
    as a leader, a copy as a follower); a copy reaches a follower ``replication`` after
    the leader's write. A failed broker is noticed ``detection`` seconds later (its
    session times out); a new leader for each partition it led is elected in
    ``election_time``."""

    model_config = STRICT

    count: Annotated[Count, Field(le=1_000)] | None = None
    names: list[str] | None = None
    replication_factor: Annotated[Count, Field(le=1_000)] = 1
    service: Dist = default_dist("constant(0)")
    replication: Dist = default_dist("constant(0)")
    detection: Dist = default_dist("constant(0)")
    election_time: Dist = default_dist("constant(0)")
    # Each broker's faults, by name: random (mtbf, mttr) and/or scheduled (at).
    outages: dict[str, FaultSpec] | None = None

    @model_validator(mode="after")
    def _which(self) -> BrokersSpec:
        if (self.count is None) == (self.names is None):
            raise ValueError("give `count` (brokers b0, b1, ...) or `names`, not both")
        if self.names is not None:
            if not self.names:
                raise ValueError("`names` lists at least one broker")
            if len(set(self.names)) != len(self.names):
                raise ValueError(f"broker names are distinct, got {self.names!r}")
            if len(self.names) > 1_000:
                raise ValueError(f"at most 1,000 brokers, got {len(self.names)}")
        if self.replication_factor > len(self.broker_names):
            raise ValueError(f"`replication_factor` {self.replication_factor} needs as many "
                             f"brokers, there are {len(self.broker_names)}")
        for name in self.outages or {}:
            if name not in self.broker_names:
                raise ValueError(f"`outages` names a broker; no broker {name!r} (brokers: "
                                 f"{', '.join(self.broker_names)})")
        return self

    @property
    def broker_names(self) -> list[str]:
        if self.names is not None:
            return list(self.names)
        assert self.count is not None
        return [f"b{i}" for i in range(self.count)]


class Replication(BaseModel):
    """How one queue (or each partition of a topic) is replicated on the cluster."""

    model_config = STRICT

    replication_factor: Count
    acks: Literal["1", "all", "quorum"] = "all"
    min_insync_replicas: Count = 1

    @field_validator("acks", mode="before")
    @classmethod
    def _acks(cls, v: Any) -> Any:
        return acks_value(v)

    @property
    def majority(self) -> int:
        """Replicas (leader included) a quorum write and a quorum election need."""
        return self.replication_factor // 2 + 1


def placement(index: int, replicas: int, brokers: int) -> list[int]:
    """The brokers holding replica set ``index`` (the index-th queue or partition in the
    scenario's order): ``replicas`` consecutive brokers from ``index mod brokers``, the
    first the preferred leader. Kafka places a topic's partitions the same way (from a
    random start); a fixed start keeps runs reproducible."""
    return [(index + i) % brokers for i in range(replicas)]
