"""What a theory matcher returns and what it is told: :class:`Prediction`, :class:`Matcher`
and the scenario :func:`features` outside the base schema."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from simq.scenario import Model, Scenario
from simq.theory.metrics import QueueMetrics

__all__ = ["Kind", "LinkPrediction", "Matcher", "Prediction", "features", "unhandled"]

Kind = Literal["exact", "approximate", "none"]


@dataclass(frozen=True)
class LinkPrediction:
    """A link: its serialization station (when the bandwidth is finite) plus propagation."""

    arrival_rate: float
    delay_mean: float  # waiting for the wire + serialization + propagation
    utilization: float
    loss: float
    serialization: QueueMetrics | None = None


@dataclass(frozen=True)
class Prediction:
    """What theory says about a scenario, per queue and end to end.

    ``kind`` is "exact" when every number is an exact steady-state result, "approximate"
    when at least one is an approximation, "none" when no model applies (``reason`` says
    why, and the numbers are empty/NaN).
    """

    model: str
    kind: Kind
    reason: str
    queues: Mapping[str, QueueMetrics] = field(default_factory=dict)
    links: Mapping[str, LinkPrediction] = field(default_factory=dict)
    latency_mean: float = math.nan  # end to end, of delivered messages
    throughput: float = math.nan  # delivered per second
    offered: float = math.nan  # produced per second

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    @property
    def applies(self) -> bool:
        return self.kind != "none"

    def __str__(self) -> str:
        if self.kind == "none":
            return f"none: {self.reason}"
        return f"{self.model} ({self.kind}): {self.reason}"

    @classmethod
    def none(cls, reason: str) -> Prediction:
        return cls(model="none", kind="none", reason=reason)


@dataclass(frozen=True)
class Matcher:
    """A recogniser: ``fn(scenario)`` gives a Prediction, or None when it does not apply.

    ``handles`` lists the feature paths (as reported by :func:`features`, with ``*`` for a
    component name) the matcher understands beyond the base schema.
    """

    name: str
    fn: Callable[[Scenario], Prediction | None]
    handles: tuple[str, ...] = ()


# Keys of each section the base matchers understand; anything else set away from its
# default is an unknown feature.
_KNOWN: dict[str, set[str]] = {
    "run": {"until", "messages", "warmup", "seed", "replications", "timeseries_points",
            "records", "engine"},
    # Keys change nothing at a queue; at a topic (itself a feature) they choose the partition.
    "producers": {"to", "interarrival", "size", "start", "stop", "keys"},
    "queues": {"capacity", "overflow"},
    "consumers": {"source", "count", "service", "to"},
    "links": {"latency", "bandwidth", "loss"},
}
_SECTIONS = ("producers", "queues", "consumers", "links")


def _default_of(model_cls: Any, name: str) -> Any:
    info = model_cls.model_fields[name]
    if info.default_factory is not None:
        return info.default_factory()
    return info.default


def features(sc: Scenario) -> list[str]:
    """Paths of scenario features outside the base schema, e.g. ``consumers.*.mode``.

    A key counts only when it is set away from its default, and a whole new top-level
    section only when the scenario writes it non-empty.
    """
    found: list[str] = []
    written = sc.to_dict()
    for top in Model.model_fields:
        if top not in {"name", "description", *_KNOWN} and written.get(top):
            found.append(top)
    run_spec = sc.run
    for key in type(run_spec).model_fields:
        if key not in _KNOWN["run"] and getattr(run_spec, key) != _default_of(
            type(run_spec), key
        ):
            found.append(f"run.{key}")
    for section in _SECTIONS:
        specs: Mapping[str, Any] = getattr(sc, section)
        for spec in specs.values():
            cls = type(spec)
            for key in getattr(cls, "model_fields", {}):
                if key in _KNOWN[section]:
                    continue
                try:
                    default = _default_of(cls, key)
                except Exception:  # a required new key: always a feature
                    default = object()
                if getattr(spec, key) != default:
                    path = f"{section}.*.{key}"
                    if path not in found:
                        found.append(path)
    return found


def unhandled(found: Iterable[str], handles: Iterable[str]) -> list[str]:
    """The features in ``found`` a matcher handling ``handles`` does not know."""
    h = set(handles)
    return [f for f in found if f not in h]
