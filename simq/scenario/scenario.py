"""The :class:`Scenario`: a validated, complete and immutable scenario, and
:func:`load`/:func:`loads`, the ways to build one.

A scenario keeps the user's raw mapping next to the validated model, so ``with_overrides``
edits the raw mapping and validates it again: every rule is checked in one place, whether a
value came from a file, from Python or from ``--set``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simq.dists import Distribution
from simq.errors import ScenarioError
from simq.scenario import bundled
from simq.scenario.checks import run_checks
from simq.scenario.cluster import BrokersSpec, Replication
from simq.scenario.components import (
    ConsumerSpec,
    LinkSpec,
    ProducerSpec,
    QueueSpec,
    RunSpec,
    TopicSpec,
)
from simq.scenario.io import expand_shorthands, read_file, read_text, set_path, validation_error
from simq.scenario.model import Model
from simq.scenario.workload import mean_interarrival

__all__ = ["Scenario", "load", "loads"]


def _settle_arrivals(m: Model) -> None:
    # A time-varying producer reads, on paper, as Poisson at its mean rate over the run.
    for n, p in m.producers.items():
        if p.mode != "sync" and p.arrivals is not None:
            m.producers[n] = p.model_copy(update={"interarrival": mean_interarrival(
                p.arrivals, m.run.until, f"producers.{n}.arrivals")})


class Scenario:
    """An immutable, validated scenario. Build with :func:`load` or :func:`loads`."""

    __slots__ = ("_raw", "_model", "_base_dir", "_source", "_queues")
    _raw: dict[str, Any]
    _model: Model
    _base_dir: Path | None
    _source: str
    _queues: dict[str, QueueSpec]

    def __init__(
        self, raw: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "<dict>",
        contain_paths: bool = False,
    ) -> None:
        if not isinstance(raw, Mapping):
            # Name the file when there is one: YAML that is a list or a word parses fine.
            where = "" if source == "<dict>" else source
            raise ScenarioError(where, "a scenario is a mapping of keys to values",
                                type(raw).__name__)
        raw = copy.deepcopy(dict(raw))
        try:
            # contain_paths: the data files a scenario file names stay inside its folder
            # (simq.datafiles); checked once, when the file is read: what an override
            # adds later is the caller's own.
            model = Model.model_validate(expand_shorthands(raw), context={
                "base_dir": base_dir, "contain": contain_paths})
        except ValidationError as err:
            raise validation_error(err) from None
        run_checks(model)
        _settle_arrivals(model)
        object.__setattr__(self, "_queues", model.all_queues())
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_base_dir", base_dir)
        object.__setattr__(self, "_source", source)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Scenario is immutable; use with_overrides()")

    # Reading -------------------------------------------------------------------------
    @property
    def model(self) -> Model:
        """The validated model behind the scenario (every section as its spec)."""
        return self._model

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def description(self) -> str:
        return self._model.description

    @property
    def run(self) -> RunSpec:
        return self._model.run

    @property
    def producers(self) -> Mapping[str, ProducerSpec]:
        return MappingProxyType(self._model.producers)

    @property
    def queues(self) -> Mapping[str, QueueSpec]:
        """Every queue, then each partitioned topic's partitions (``TOPIC[p]``, or
        ``TOPIC[p]@GROUP`` per group when several groups read the topic)."""
        return MappingProxyType(self._queues)

    @property
    def topics(self) -> Mapping[str, TopicSpec]:
        return MappingProxyType(self._model.topics)

    def resolve(self, dest: str, producer: str | None = None) -> list[tuple[str, float]]:
        """The queues a destination (queue or topic) stands for, with copies per message
        (a partition's share for ``producer``'s messages, whose keys choose it)."""
        return self._model.resolve(dest, producer)

    def intake(self, group: str) -> list[tuple[str, float]]:
        """The queues a consumer group takes from (its own view of a topic's log)."""
        return self._model.intake(group)

    def views(self, topic: str) -> dict[str | None, list[str]]:
        """Each group's partitions of a partitioned topic (docs/patterns.md)."""
        return self._model.views(topic)

    def partition_of(self, queue: str) -> tuple[str, int, str | None] | None:
        """A partition's topic, index and group view (None: a plain queue)."""
        return self._model.partition_of(queue)

    @property
    def brokers(self) -> BrokersSpec | None:
        """The broker cluster (docs/cluster.md), or None."""
        return self._model.brokers

    def may_go_down(self, queue: str) -> bool:
        """Whether a queue (or partition view) can be unavailable: its own outages, or a
        cluster whose brokers fail (docs/cluster.md)."""
        b = self._model.brokers
        return (self._queues[queue].outages is not None
                or (b is not None and bool(b.outages)))

    def logs(self) -> dict[str, list[str]]:
        """On a cluster, each replicated log (queue or ``TOPIC[p]``) and its queues."""
        return self._model.logs()

    def replication(self, log: str) -> Replication | None:
        """How a log is replicated on the cluster (None: no cluster)."""
        return self._model.replication(log)

    def drains(self) -> dict[str, list[str]]:
        """For every queue, partitions included, the consumer groups taking from it."""
        return self._model.drains()

    @property
    def consumers(self) -> Mapping[str, ConsumerSpec]:
        return MappingProxyType(self._model.consumers)

    def first_served(self, group: str, producer: str) -> bool:
        """Whether ``group`` is where ``producer``'s messages are first served: it reads a
        queue (or partition) the producer sends to."""
        mine = {q for q, _ in self.resolve(self._model.producers[producer].to)}
        return any(q in mine for q, _ in self.resolve(self._model.consumers[group].source))

    def class_service(self, group: str,
                      producer: str) -> tuple[Distribution, Distribution | None]:
        """The (service, decode) of ``producer``'s messages at ``group``: the group's
        ``service_by`` entry, else the producer's own where its messages are first served,
        else the group's (docs/patterns.md, message classes)."""
        c, p = self._model.consumers[group], self._model.producers[producer]
        first = self.first_served(group, producer)
        service = (c.service_by or {}).get(producer)
        if service is None:
            service = p.service if p.service is not None and first else c.service
        decode = p.decode if p.decode is not None and first else c.decode
        return service, decode

    def has_classes(self, group: str) -> bool:
        """Whether some producer's messages are served at ``group`` otherwise than the
        group's own service and decode say."""
        c = self._model.consumers[group]
        return any(self.class_service(group, p) != (c.service, c.decode)
                   for p in self._model.producers)

    @property
    def links(self) -> Mapping[str, LinkSpec]:
        return MappingProxyType(self._model.links)

    @property
    def source(self) -> str:
        return self._source

    @property
    def base_dir(self) -> Path | None:
        return self._base_dir

    def to_dict(self) -> dict[str, Any]:
        """The scenario as the user wrote it, with every override applied."""
        return copy.deepcopy(self._raw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def resolved(self) -> dict[str, Any]:
        """Every key with its default filled in and distributions in canonical form."""

        def canon(v: Any) -> Any:
            if isinstance(v, Distribution):
                return str(v)
            if isinstance(v, BaseModel):
                return {f.alias or k: canon(getattr(v, k))
                        for k, f in type(v).model_fields.items()}
            if isinstance(v, dict):
                return {k: canon(x) for k, x in v.items()}
            if isinstance(v, float) and math.isinf(v):
                return ".inf"
            return v

        out: dict[str, Any] = canon(self._model)
        return out

    def __repr__(self) -> str:
        return f"Scenario(name={self.name!r}, source={self._source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scenario) and self._raw == other._raw

    def __hash__(self) -> int:
        return hash(yaml.safe_dump(self._raw, sort_keys=True))

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt (and so re-validated) from what the user wrote: picklable for process
        # pools although the instance refuses attribute assignment.
        return (_rebuild, (self._raw, self._base_dir, self._source))

    # Changing ------------------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any]) -> Scenario:
        """A new scenario with each dotted path set, e.g. ``{"producers.app.rate": 0.9}``.

        The path must lead through existing components; the last key is checked by the
        schema like any key in a file. Shorthands replace their long forms (setting
        ``rate`` removes ``interarrival``/``service`` and the other way round).
        """
        raw = copy.deepcopy(self._raw)
        for path, value in overrides.items():
            set_path(raw, path, value)
        return Scenario(raw, base_dir=self._base_dir, source=self._source)


def _rebuild(raw: dict[str, Any], base_dir: Path | None, source: str) -> Scenario:
    return Scenario(raw, base_dir=base_dir, source=source)


def loads(text: str, *, base_dir: Path | None = None, source: str = "<string>") -> Scenario:
    """Build a scenario from YAML text."""
    return Scenario(read_text(text, source), base_dir=base_dir, source=source)


def load(source: str | Path | Mapping[str, Any] | Scenario, *,
         allow_paths: bool = False) -> Scenario:
    """Load a scenario from a YAML (or TOML) file, a mapping, or pass one through.

    The data files a scenario file names (``empirical('f.csv')``, a trace) must lie in its
    folder unless ``allow_paths`` (docs/scenario.md, data files). A name with no such file
    (``"mm1"``) is one of the scenarios that come with simq (``simq models``)."""
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return Scenario(source)
    if isinstance(source, str) and bundled.is_name(source):
        on_disk = bundled.path(source)
        if on_disk is not None:
            source = on_disk
        else:
            return loads(bundled.text(source), source=source)
    if isinstance(source, str) and (err := bundled.missing(source)) is not None:
        raise err
    path = Path(source)
    return Scenario(read_file(path), base_dir=path.parent, source=str(path),
                    contain_paths=not allow_paths)
