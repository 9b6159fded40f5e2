"""The declarative model: schema, loading, validation and dotted-path overrides.

A :class:`Scenario` is immutable. It keeps the user's raw mapping next to the validated
model, so ``with_overrides`` edits the raw mapping and validates it again: every rule is
checked in one place, whether a value came from a file, from Python or from ``--set``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simq.dists import Distribution, exponential_rate, parse
from simq.errors import ScenarioError
from simq.peakspec import (
    ArrivalsSpec,
    AutoscaleSpec,
    BacklogSpec,
    check_consumer,
    mean_interarrival,
)
from simq.peakspec import prepare as _prepare_peak

__all__ = ["Scenario", "load", "loads", "parse_override"]

_Strict = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _dist(value: Any, info: ValidationInfo) -> Distribution:
    # The path is added from pydantic's location when the error is reported.
    base = (info.context or {}).get("base_dir")
    return parse(value, path="", base_dir=base)


class RunSpec(BaseModel):
    """How long to run, what to ignore, which streams to use."""

    model_config = _Strict

    until: PositiveFloat | None = None
    messages: Annotated[int, Field(ge=1)] | None = None
    warmup: NonNegFloat = 0.0
    seed: Annotated[int, Field(ge=0)] = 1
    replications: Annotated[int, Field(ge=1)] = 1
    timeseries_points: Annotated[int, Field(ge=2, le=1_000_000)] = 500
    # full: one record per message (res.messages); summary: accumulators only, flat memory
    records: Literal["full", "summary"] = "full"

    @model_validator(mode="after")
    def _length(self) -> RunSpec:
        if self.until is None and self.messages is None:
            raise ValueError("give `until` (simulated seconds) or `messages` (stop after N)")
        if self.until is not None and self.warmup >= self.until:
            raise ValueError(f"warmup must be < until ({self.until:g}), got {self.warmup:g}")
        return self


class ProducerSpec(BaseModel):
    """An open-loop source of messages."""

    model_config = _Strict

    to: str
    interarrival: Distribution
    size: Distribution = Field(default_factory=lambda: parse("constant(1000)"))
    start: NonNegFloat = 0.0
    stop: PositiveFloat | None = None
    arrivals: ArrivalsSpec | None = None  # time-varying load (docs/peak.md)

    _parse_dists = field_validator("interarrival", "size", mode="before")(_dist)

    @model_validator(mode="after")
    def _window(self) -> ProducerSpec:
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop must be > start ({self.start:g}), got {self.stop:g}")
        return self


class QueueSpec(BaseModel):
    """A broker queue: a FIFO waiting line with an optional bound."""

    model_config = _Strict

    capacity: float = math.inf
    overflow: Literal["drop-new", "drop-oldest", "block"] = "drop-new"
    backlog: BacklogSpec | None = None  # messages waiting at time 0 (docs/peak.md)

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity(cls, v: Any) -> float:
        if isinstance(v, str) and v.strip().lower() in {"inf", ".inf", "infinity", "unbounded"}:
            return math.inf
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"must be a whole number >= 0 or .inf, got {v!r}")
        if math.isnan(v) or v < 0 or (math.isfinite(v) and v != int(v)):
            raise ValueError(f"must be a whole number >= 0 or .inf, got {v!r}")
        return float(v)


class ConsumerSpec(BaseModel):
    """A group of `count` identical workers taking messages from one queue."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              arbitrary_types_allowed=True)

    source: str = Field(alias="from")
    count: Annotated[int, Field(ge=1)] = 1
    service: Distribution
    to: str | None = None
    # Capacity that changes over time (docs/peak.md): [[time, count], ...] or a policy.
    schedule: list[tuple[NonNegFloat, Annotated[int, Field(ge=0)]]] | None = None
    autoscale: AutoscaleSpec | None = None

    @field_validator("count", mode="before")
    @classmethod
    def _integer(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            if not (isinstance(v, float) and v.is_integer()):
                raise ValueError(f"must be an integer >= 1, got {v!r}")
            v = int(v)
        if v < 1:
            raise ValueError(f"must be an integer >= 1, got {v!r}")
        return v

    _parse_dists = field_validator("service", mode="before")(_dist)


class LinkSpec(BaseModel):
    """A network hop: propagation latency, a serializing bandwidth, random loss."""

    model_config = _Strict

    latency: Distribution = Field(default_factory=lambda: parse("constant(0)"))
    bandwidth: float = math.inf
    loss: Annotated[float, Field(ge=0, lt=1)] = 0.0

    _parse_dists = field_validator("latency", mode="before")(_dist)

    @field_validator("bandwidth", mode="before")
    @classmethod
    def _bandwidth(cls, v: Any) -> float:
        if isinstance(v, str) and v.strip().lower() in {"inf", ".inf", "infinity"}:
            return math.inf
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v) or v <= 0:
            raise ValueError(f"must be a number of bytes/second > 0 (or .inf), got {v!r}")
        return float(v)


def _expand_shorthands(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Replace `rate:` by the exponential distribution it stands for (on a copy)."""
    data = copy.deepcopy(dict(raw))
    for section, long_form in (("producers", "interarrival"), ("consumers", "service")):
        comps = data.get(section)
        if not isinstance(comps, Mapping):
            continue
        for name, spec in comps.items():
            if not isinstance(spec, dict) or "rate" not in spec:
                continue
            path = f"{section}.{name}.rate"
            if long_form in spec:
                raise ScenarioError(path, f"give `rate` or `{long_form}`, not both")
            rate = spec.pop("rate")
            if (isinstance(rate, bool) or not isinstance(rate, int | float)
                    or not math.isfinite(rate) or rate <= 0):
                raise ScenarioError(path, "must be a number > 0 (messages per second)", rate)
            spec[long_form] = exponential_rate(float(rate))
    return _prepare_peak(data)


class Model(BaseModel):
    """The validated content of a scenario file."""

    model_config = _Strict

    name: str = Field(default="scenario", pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    run: RunSpec
    producers: dict[str, ProducerSpec] = Field(default_factory=dict)
    queues: dict[str, QueueSpec] = Field(min_length=1)
    consumers: dict[str, ConsumerSpec] = Field(default_factory=dict)
    links: dict[str, LinkSpec] = Field(default_factory=dict)


def _check_peak(m: Model) -> None:
    """Rules of time-varying load and capacity that span keys (docs/peak.md)."""
    if not m.producers and not any(q.backlog for q in m.queues.values()):
        raise ScenarioError("producers", "a scenario needs at least one producer "
                            "(or a queue with a backlog)")
    # A time-varying producer reads, on paper, as Poisson at its mean rate over the run.
    for n, p in m.producers.items():
        if p.arrivals is not None:
            m.producers[n] = p.model_copy(update={"interarrival": mean_interarrival(
                p.arrivals, m.run.until, f"producers.{n}.arrivals")})
    for n, c in m.consumers.items():
        check_consumer(f"consumers.{n}", c.count, c.schedule, c.autoscale)
    for n, q in m.queues.items():
        if q.backlog is not None and q.backlog.count > q.capacity:
            raise ScenarioError(f"queues.{n}.backlog.count",
                                f"must be <= the queue's capacity ({q.capacity:g})",
                                q.backlog.count)


def _check_references(m: Model) -> None:
    """Refuse dangling names and links that no message would cross."""
    names: dict[str, str] = {}
    for kind in ("producers", "queues", "consumers"):
        for n in getattr(m, kind):
            if n in names:
                raise ScenarioError(f"{kind}.{n}", f"name already used by {names[n]}.{n}")
            if "->" in n:
                raise ScenarioError(f"{kind}.{n}", "names may not contain '->'")
            names[n] = kind
    queues = sorted(m.queues)

    def need_queue(path: str, target: str | None) -> None:
        if target is not None and target not in m.queues:
            raise ScenarioError(path, f"no queue named {target!r} (queues: {', '.join(queues)})")

    for n, p in m.producers.items():
        need_queue(f"producers.{n}.to", p.to)
    for n, c in m.consumers.items():
        need_queue(f"consumers.{n}.from", c.source)
        need_queue(f"consumers.{n}.to", c.to)
    flows = {(n, p.to) for n, p in m.producers.items()}
    flows |= {(c.source, n) for n, c in m.consumers.items()}
    flows |= {(n, c.to) for n, c in m.consumers.items() if c.to is not None}
    for key in m.links:
        a, sep, b = key.partition("->")
        if not sep or not a or not b:
            raise ScenarioError(f"links.{key}", "a link is named 'from->to', e.g. 'app->broker'")
        if (a, b) not in flows:
            raise ScenarioError(
                f"links.{key}",
                f"no messages flow from {a!r} to {b!r}; a link must join a producer to its "
                "queue or a consumer group to the queue it forwards to",
            )
        if a in m.queues:
            raise ScenarioError(
                f"links.{key}", "links from a queue to its consumers are not supported yet"
            )
    _check_no_cycle(m)


def _check_no_cycle(m: Model) -> None:
    """Every `to` is followed by every message, so a cycle would never let one out."""
    nxt: dict[str, list[tuple[str, str]]] = {q: [] for q in m.queues}
    for g, c in m.consumers.items():
        if c.to is not None:
            nxt[c.source].append((g, c.to))
    state: dict[str, int] = {}

    def visit(q: str, trail: list[str]) -> None:
        state[q] = 1
        for g, to in nxt[q]:
            if state.get(to) == 1:
                loop = " -> ".join([*trail, g, to])
                raise ScenarioError(
                    f"consumers.{g}.to", f"messages would loop forever ({loop})", to
                )
            if to not in state:
                visit(to, [*trail, g, to])
        state[q] = 2

    for q in m.queues:
        if q not in state:
            visit(q, [q])


def _validation_error(err: ValidationError, raw: Mapping[str, Any]) -> ScenarioError:
    """Turn pydantic's report into one message naming path, rule and value."""
    e = err.errors(include_url=False)[0]
    loc = [str(p) for p in e["loc"] if not str(p).startswith(("function-", "tagged-union"))]
    loc = [p for p in loc if p not in {"float", "int", "str", "none", "constrained-float"}]
    if loc and loc[-1] == "source":
        loc[-1] = "from"
    path = ".".join(loc)
    kind = e["type"]
    value = e.get("input", ...)
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "top level"
        return ScenarioError(path, f"unknown key (not allowed in {parent})")
    if kind == "missing":
        return ScenarioError(path, "required key is missing")
    if isinstance(value, Mapping) or kind.startswith("value_error"):
        value = ...
    if ", got " in msg:
        value = ...
    return ScenarioError(path, msg[0].lower() + msg[1:], value)


class Scenario:
    """An immutable, validated scenario. Build with :func:`load` or :func:`loads`."""

    __slots__ = ("_raw", "_model", "_base_dir", "_source")
    _raw: dict[str, Any]
    _model: Model
    _base_dir: Path | None
    _source: str

    def __init__(
        self, raw: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "<dict>"
    ) -> None:
        if not isinstance(raw, Mapping):
            raise ScenarioError("", "a scenario is a mapping of keys to values", type(raw).__name__)
        raw = copy.deepcopy(dict(raw))
        try:
            model = Model.model_validate(_expand_shorthands(raw), context={"base_dir": base_dir})
        except ValidationError as err:
            raise _validation_error(err, raw) from None
        _check_references(model)
        _check_peak(model)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_base_dir", base_dir)
        object.__setattr__(self, "_source", source)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Scenario is immutable; use with_overrides()")

    # Reading -------------------------------------------------------------------------
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
        return MappingProxyType(self._model.queues)

    @property
    def consumers(self) -> Mapping[str, ConsumerSpec]:
        return MappingProxyType(self._model.consumers)

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

    # Changing ------------------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any]) -> Scenario:
        """A new scenario with each dotted path set, e.g. ``{"producers.app.rate": 0.9}``.

        The path must lead through existing components; the last key is checked by the
        schema like any key in a file. Shorthands replace their long forms (setting
        ``rate`` removes ``interarrival``/``service`` and the other way round).
        """
        raw = copy.deepcopy(self._raw)
        for path, value in overrides.items():
            _set_path(raw, path, value)
        return Scenario(raw, base_dir=self._base_dir, source=self._source)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e8` and `1.25e8` as text; users mean numbers."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_SECTIONS = ("producers", "queues", "consumers", "links")
_REPLACES = {"rate": ("interarrival", "service", "arrivals"), "interarrival": ("rate", "arrivals"),
             "service": ("rate",), "arrivals": ("rate", "interarrival"),
             "until": (), "messages": ()}


def _set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    if not path or any(p == "" for p in parts):
        raise ScenarioError(path, "an override path is dotted keys, e.g. producers.app.rate")
    top = parts[0]
    if top in _SECTIONS:
        # Link names contain no dots, but component names could: join back greedily.
        if len(parts) < 3:
            raise ScenarioError(path, f"name a key inside a component, e.g. {top}.NAME.KEY")
        section = raw.get(top) or {}
        name, key = ".".join(parts[1:-1]), parts[-1]
        inner: list[str] = []
        # A key nested inside a component (producers.app.arrivals.spike.peak): the
        # longest prefix naming a component wins, the rest leads into its mappings.
        for cut in range(len(parts) - 1, 1, -1):
            if ".".join(parts[1:cut]) in section:
                name, inner = ".".join(parts[1:cut]), parts[cut:-1]
                break
        if name not in section:
            have = ", ".join(sorted(section)) or "none"
            raise ScenarioError(path, f"no {top[:-1]} named {name!r} (have: {have})")
        target = section[name]
        if target is None:
            target = section[name] = {}
        if inner:
            for step in inner:
                nxt = target.get(step) if isinstance(target, dict) else None
                if nxt is None:
                    nxt = target[step] = {}
                if not isinstance(nxt, dict):
                    raise ScenarioError(path, f"{step!r} is not a mapping of keys", nxt)
                target = nxt
            target[key] = value
            return
        for other in _REPLACES.get(key, ()):
            target.pop(other, None)
        target[key] = value
        return
    if top == "run":
        if len(parts) != 2:
            raise ScenarioError(path, "run settings are one level deep, e.g. run.until")
        raw.setdefault("run", {})
        raw["run"][parts[1]] = value
        return
    if len(parts) == 1 and top in {"name", "description"}:
        raw[top] = value
        return
    raise ScenarioError(
        path, "overrides start with run, producers, queues, consumers, links, name or description"
    )


def parse_override(text: str) -> tuple[str, Any]:
    """Split a command-line ``PATH=VALUE``; the value is read as YAML (numbers, .inf, text)."""
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ScenarioError("--set", "expected PATH=VALUE, e.g. producers.app.rate=0.9", text)
    try:
        parsed = _yaml(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return path, parsed


def loads(text: str, *, base_dir: Path | None = None, source: str = "<string>") -> Scenario:
    """Build a scenario from YAML text."""
    try:
        raw = _yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        problem = getattr(err, "problem", None) or str(err)
        raise ScenarioError(source, f"not valid YAML at {where}: {problem}") from None
    if raw is None:
        raise ScenarioError(source, "the scenario is empty")
    return Scenario(raw, base_dir=base_dir, source=source)


def load(source: str | Path | Mapping[str, Any] | Scenario) -> Scenario:
    """Load a scenario from a YAML (or TOML) file, a mapping, or pass one through."""
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return Scenario(source)
    path = Path(source)
    if not path.is_file():
        raise ScenarioError(str(path), "no such scenario file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ScenarioError(str(path), f"not valid TOML: {err}") from None
        return Scenario(raw, base_dir=path.parent, source=str(path))
    return loads(text, base_dir=path.parent, source=str(path))
