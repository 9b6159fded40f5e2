"""The validated content of a scenario file: every section, and the views across them
(all queues with the partitions of topics, what a destination resolves to, who drains
each queue)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from simq.errors import shown
from simq.scenario.cluster import BrokersSpec, Replication
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


# Names end up in file names, column headers, dotted paths and HTML reports: letters,
# digits and _ - . only, starting with a letter, digit or _, at most 64 characters.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise ValueError("names are 1 to 64 letters, digits, '_', '-' or '.', starting with a "
                         f"letter, digit or '_' (never a path), got {shown(name)}")


class Model(BaseModel):
    """The validated content of a scenario file."""

    model_config = STRICT

    name: str = "scenario"
    description: str = ""
    run: RunSpec
    producers: dict[str, ProducerSpec] = Field(default_factory=dict)
    queues: dict[str, QueueSpec] = Field(default_factory=dict)
    consumers: dict[str, ConsumerSpec] = Field(default_factory=dict)
    links: dict[str, LinkSpec] = Field(default_factory=dict)
    topics: dict[str, TopicSpec] = Field(default_factory=dict)
    brokers: BrokersSpec | None = None  # a broker cluster (docs/cluster.md)

    @model_validator(mode="after")
    def _somewhere(self) -> Model:
        if not self.queues and not self.topics:
            raise ValueError("a scenario needs at least one queue or topic")
        return self

    def topic_groups(self, topic: str) -> list[str]:
        """The consumer groups reading a partitioned topic, in scenario order."""
        return [g for g, c in self.consumers.items() if c.source == topic]

    def views(self, topic: str) -> dict[str | None, list[str]]:
        """Each group's partitions of a partitioned topic, as queues: one set named
        ``TOPIC[p]`` when at most one group reads it (key None, or the group), else one
        set per group, ``TOPIC[p]@GROUP``: the log appended once, each group's unread part
        of it (its lag) a line of its own."""
        spec = self.topics[topic]
        groups = self.topic_groups(topic)
        if len(groups) <= 1:
            return {(groups[0] if groups else None): spec.partition_names(topic)}
        return {g: spec.partition_names(topic, g) for g in groups}

    def all_queues(self) -> dict[str, QueueSpec]:
        """The queues, then each partitioned topic's partitions (named TOPIC[p], or
        TOPIC[p]@GROUP for each group when several read it)."""
        out = dict(self.queues)
        for t, spec in self.topics.items():
            if spec.partitions is None:
                continue
            part = spec.partition_spec()
            for names in self.views(t).values():
                for name in names:
                    out[name] = part
        return out

    def partition_of(self, queue: str) -> tuple[str, int, str | None] | None:
        """For a partition (of one group's view), its topic, index and group (None: the
        only view); None for a plain queue."""
        if queue in self.queues:
            return None
        topic, _, rest = queue.partition("[")
        index, _, group = rest.partition("]")
        return topic, int(index), (group[1:] or None)

    def resolve(self, dest: str, producer: str | None = None) -> list[tuple[str, float]]:
        """The queues a destination stands for, each with the expected number of copies
        it receives per message sent there (fan-out: 1 each; partitions: the key share,
        of ``producer``'s messages when it gives them keys, in every group's view of the
        log)."""
        topic = self.topics.get(dest)
        if topic is None:
            return [(dest, 1.0)]
        if topic.subscribers is not None:
            return [(q, 1.0) for q in topic.subscribers]
        shares = topic.key_probabilities
        if producer is not None:
            shares = self.producers[producer].partition_shares(len(shares), shares)
        return [(q, share) for names in self.views(dest).values()
                for q, share in zip(names, shares, strict=True)]

    def intake(self, group: str) -> list[tuple[str, float]]:
        """The queues a consumer group takes from (its own view of a topic's partitions),
        each with the share of the source's messages it gets."""
        source = self.consumers[group].source
        topic = self.topics.get(source)
        if topic is None:
            return [(source, 1.0)]
        views = self.views(source)
        names = views[group] if group in views else next(iter(views.values()))
        return list(zip(names, topic.key_probabilities, strict=True))

    def logs(self) -> dict[str, list[str]]:
        """On a broker cluster, every replicated log in placement order: each queue, then
        each partition of each partitioned topic (``TOPIC[p]``), with the queues that read
        it (a partition read by several groups has a view per group)."""
        out: dict[str, list[str]] = {q: [q] for q in self.queues}
        for t, spec in self.topics.items():
            if spec.partitions is None:
                continue
            views = list(self.views(t).values())
            for p in range(spec.partitions):
                out[f"{t}[{p}]"] = [v[p] for v in views]
        return out

    def replication(self, log: str) -> Replication | None:
        """How a log (a queue, or a partition ``TOPIC[p]``) is replicated; None without a
        cluster."""
        if self.brokers is None:
            return None
        spec: QueueSpec | TopicSpec = (self.queues[log] if log in self.queues
                                       else self.topics[log.partition("[")[0]])
        return Replication(
            replication_factor=(self.brokers.replication_factor
                                if spec.replication_factor is None
                                else spec.replication_factor),
            acks=spec.acks or "all", min_insync_replicas=spec.min_insync_replicas or 1)

    def drains(self) -> dict[str, list[str]]:
        """For every queue (partitions included), the consumer groups taking from it."""
        out: dict[str, list[str]] = {q: [] for q in self.all_queues()}
        for g in self.consumers:
            for q, _ in self.intake(g):
                out[q].append(g)
        return out

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # The name is the default output folder (runs/NAME): it can never be "." or "..",
        # which would write into runs/ itself or outside it.
        _check_name(v)
        return v

    @field_validator("producers", "queues", "consumers", "topics", mode="before")
    @classmethod
    def _component_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for name in v:
                _check_name(name)
        return v

    @field_validator("links", mode="before")
    @classmethod
    def _link_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            # The form SOURCE->DESTINATION is checked with the references (checks.py); here
            # only that each end is a name.
            for name in v:
                for end in str(name).split("->"):
                    if end:
                        _check_name(end)
        return v
