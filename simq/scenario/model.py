"""The validated content of a scenario file: every section, and the views across them
(all queues with the partitions of topics, what a destination resolves to, who drains
each queue)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from simq.scenario.components import (
    ConsumerSpec,
    LinkSpec,
    ProducerSpec,
    QueueSpec,
    RunSpec,
    TopicSpec,
)
from simq.scenario.types import STRICT

__all__ = ["Model"]


class Model(BaseModel):
    """The validated content of a scenario file."""

    model_config = STRICT

    name: str = Field(default="scenario", pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    run: RunSpec
    producers: dict[str, ProducerSpec] = Field(default_factory=dict)
    queues: dict[str, QueueSpec] = Field(default_factory=dict)
    consumers: dict[str, ConsumerSpec] = Field(default_factory=dict)
    links: dict[str, LinkSpec] = Field(default_factory=dict)
    topics: dict[str, TopicSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _somewhere(self) -> Model:
        if not self.queues and not self.topics:
            raise ValueError("a scenario needs at least one queue or topic")
        return self

    def all_queues(self) -> dict[str, QueueSpec]:
        """The queues, then each partitioned topic's partitions (named TOPIC[p])."""
        out = dict(self.queues)
        for t, spec in self.topics.items():
            part = spec.partition_spec()
            for name in spec.partition_names(t):
                out[name] = part
        return out

    def resolve(self, dest: str, producer: str | None = None) -> list[tuple[str, float]]:
        """The queues a destination stands for, each with the expected number of copies
        it receives per message sent there (fan-out: 1 each; partitions: the key share,
        of ``producer``'s messages when it gives them keys)."""
        topic = self.topics.get(dest)
        if topic is None:
            return [(dest, 1.0)]
        if topic.subscribers is not None:
            return [(q, 1.0) for q in topic.subscribers]
        shares = topic.key_probabilities
        if producer is not None:
            shares = self.producers[producer].partition_shares(len(shares), shares)
        return list(zip(topic.partition_names(dest), shares, strict=True))

    def drains(self) -> dict[str, list[str]]:
        """For every queue (partitions included), the consumer groups taking from it."""
        out: dict[str, list[str]] = {q: [] for q in self.all_queues()}
        for g, c in self.consumers.items():
            for q, _ in self.resolve(c.source):
                out[q].append(g)
        return out

    @field_validator("name")
    @classmethod
    def _not_dots(cls, v: str) -> str:
        # The name is the default output folder (runs/NAME): "." or ".." would write
        # into runs/ itself or outside it.
        if set(v) == {"."}:
            raise ValueError(f"must contain a letter, digit, '-' or '_', got {v!r}")
        return v
