"""The declarative model: schema, loading, validation and dotted-path overrides.

A :class:`Scenario` is immutable. It keeps the user's raw mapping next to the validated
model, so ``with_overrides`` edits the raw mapping and validates it again: every rule is
checked in one place, whether a value came from a file, from Python or from ``--set``.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args, get_origin

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
from simq.scenario.reliability import (
    BackoffSpec,
    CrashSpec,
    DurabilitySpec,
    FaultSpec,
    SendRetrySpec,
    SlowSpec,
)
from simq.scenario.workload import (
    ArrivalsSpec,
    AutoscaleSpec,
    BacklogSpec,
    check_consumer,
    mean_interarrival,
)
from simq.scenario.workload import prepare as _prepare_peak

__all__ = ["EXIT", "Scenario", "load", "loads", "parse_override"]

EXIT = "exit"  # in a routing table, the share of messages that leaves the system

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
    # Seconds, or "auto": MSER-5 on each replication's latency series (simq.analysis.stats.mser).
    warmup: NonNegFloat | Literal["auto"] = 0.0
    seed: Annotated[int, Field(ge=0)] = 1
    replications: Annotated[int, Field(ge=1)] = 1
    timeseries_points: Annotated[int, Field(ge=2, le=1_000_000)] = 500
    # full: one record per message (res.messages); summary: accumulators only, flat memory
    records: Literal["full", "summary"] = "full"

    @field_validator("warmup", mode="before")
    @classmethod
    def _warmup(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"must be seconds >= 0 or auto, got {v!r}")
        return float(v)

    @model_validator(mode="after")
    def _length(self) -> RunSpec:
        if self.until is None and self.messages is None:
            raise ValueError("give `until` (simulated seconds) or `messages` (stop after N)")
        if (self.until is not None and isinstance(self.warmup, float)
                and self.warmup >= self.until):
            raise ValueError(f"warmup must be < until ({self.until:g}), got {self.warmup:g}")
        return self


class ProducerSpec(BaseModel):
    """A source of messages: open loop (async), closed loop (sync) or windowed."""

    model_config = _Strict

    to: str
    mode: Literal["async", "sync", "window"] = "async"
    interarrival: Distribution | None = None
    size: Distribution = Field(default_factory=lambda: parse("constant(1000)"))
    start: NonNegFloat = 0.0
    stop: PositiveFloat | None = None
    clients: Annotated[int, Field(ge=1)] = 1
    think: Distribution = Field(default_factory=lambda: parse("constant(0)"))
    window: Annotated[int, Field(ge=1)] | None = None
    encode: Distribution | None = None
    reply: Distribution = Field(default_factory=lambda: parse("constant(0)"))
    priority: int = 0
    batch_size: PositiveFloat | None = None
    linger: NonNegFloat = 0.0
    arrivals: ArrivalsSpec | None = None  # time-varying load (docs/peak.md)
    ttl: PositiveFloat | None = None  # per-message time-to-live from sending (reliability)
    timeout: PositiveFloat | None = None  # give up waiting for the ack after this long
    credits: Annotated[int, Field(ge=1)] | None = None  # flow control: messages not yet taken
    retry: SendRetrySpec | None = None  # what to do then (docs/reliability.md)

    _parse_dists = field_validator(
        "interarrival", "size", "think", "encode", "reply", mode="before"
    )(_dist)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
            raise ValueError(f"must be an integer (higher is served first), got {v!r}")
        return int(v)

    @field_validator("clients", "window", mode="before")
    @classmethod
    def _whole(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or v < 1:
            raise ValueError(f"must be an integer >= 1, got {v!r}")
        return int(v)

    @model_validator(mode="after")
    def _window(self) -> ProducerSpec:
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop must be > start ({self.start:g}), got {self.stop:g}")
        given = self.model_fields_set
        if self.arrivals is not None and self.mode == "sync":
            raise ValueError("`arrivals` (time-varying load) needs mode: async or window; a "
                             "sync client sends when its reply is back (after `think`)")
        if self.mode == "async" and self.interarrival is None:
            raise ValueError("an async producer needs `interarrival` (or the shorthand `rate`)")
        if self.mode == "sync" and self.interarrival is not None:
            raise ValueError("a sync producer sends when its reply is back (after `think`); "
                             "it takes no `interarrival`/`rate`")
        if self.mode == "window" and self.window is None:
            raise ValueError("a window producer needs `window` (max unacknowledged messages)")
        if self.mode != "window" and self.window is not None:
            raise ValueError("`window` needs mode: window")
        for key in ("clients", "think"):
            if key in given and self.mode != "sync":
                raise ValueError(f"`{key}` needs mode: sync")
        if "linger" in given and self.batch_size is None:
            raise ValueError("`linger` needs `batch_size` (bytes that close a batch)")
        if "reply" in given and self.mode == "async" and self.timeout is None:
            raise ValueError("`reply` (latency of the reply or ack) needs mode: sync or window "
                             "(or a send `timeout`)")
        if self.retry is not None and self.timeout is None:
            raise ValueError("`retry` needs `timeout` (how long to wait for the ack)")
        return self

    @property
    def wants_ack(self) -> bool:
        """Senders that learn when their message was processed (waiting or timing out)."""
        return self.mode != "async" or self.timeout is not None

    @property
    def waits_for_reply(self) -> bool:
        """Sync and window senders learn when their message was processed."""
        return self.mode != "async"


class QueueSpec(BaseModel):
    """A broker queue: a FIFO waiting line with an optional bound."""

    model_config = _Strict

    capacity: float = math.inf
    overflow: Literal["drop-new", "drop-oldest", "block"] = "drop-new"
    discipline: Literal["fifo", "priority"] = "fifo"
    backlog: BacklogSpec | None = None  # messages waiting at time 0 (docs/peak.md)
    # Reliability (docs/reliability.md): time-to-live and where failed messages go.
    ttl: PositiveFloat | None = None
    expiry: Literal["head", "anywhere"] = "head"
    dead_letter: str | None = None
    outages: FaultSpec | None = None  # the broker (this queue) unavailable for a while
    persistent: bool = True  # an outage keeps the messages (False: in memory, lost)
    when_down: Literal["block", "drop"] = "block"  # what senders meet during an outage
    durability: DurabilitySpec | None = None  # disk writes and replication per enqueue

    @model_validator(mode="after")
    def _order(self) -> QueueSpec:
        if self.discipline == "priority" and self.overflow == "drop-oldest":
            raise ValueError("drop-oldest would evict the message served next in a priority "
                             "queue; use drop-new or block")
        for key in ("persistent", "when_down"):
            if key in self.model_fields_set and self.outages is None:
                raise ValueError(f"`{key}` needs `outages` (when the broker is down)")
        if "expiry" in self.model_fields_set and self.ttl is None:
            raise ValueError("`expiry` needs `ttl` (seconds a message may wait)")
        if self.expiry == "anywhere" and self.discipline == "priority":
            raise ValueError("expiry: anywhere needs a FIFO queue (the oldest message expires "
                             "first); use expiry: head with a priority queue")
        return self

    @property
    def reliable(self) -> bool:
        """Whether the queue needs the reliability machinery (expiry, dead letters)."""
        return (self.ttl is not None or self.dead_letter is not None
                or self.outages is not None)

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

    # Only `from` is a key: accepting the field's Python name too would let `source:`
    # slip in beside `from:` and one of them be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    source: str = Field(alias="from")
    count: Annotated[int, Field(ge=1)] = 1
    service: Distribution
    to: str | dict[str, float] | None = None
    # Capacity that changes over time (docs/peak.md): [[time, count], ...] or a policy.
    schedule: list[tuple[NonNegFloat, Annotated[int, Field(ge=0)]]] | None = None
    autoscale: AutoscaleSpec | None = None
    decode: Distribution | None = None
    batch: Annotated[int, Field(ge=1)] = 1
    prefetch: Annotated[int, Field(ge=1)] | None = None
    # Reliability (docs/reliability.md): acks, failures, retries, duplicates, crashes.
    ack: Literal["auto", "manual"] = "auto"
    visibility_timeout: PositiveFloat | None = None
    failure: Annotated[float, Field(ge=0, lt=1)] = 0.0
    poison: Annotated[float, Field(ge=0, le=1)] = 0.0
    slow: SlowSpec | None = None
    max_attempts: Annotated[int, Field(ge=1)] | None = None
    backoff: BackoffSpec | None = None
    dedup: bool = False
    crashes: CrashSpec | None = None

    @model_validator(mode="after")
    def _fetching(self) -> ConsumerSpec:
        if self.visibility_timeout is not None and self.ack != "manual":
            raise ValueError("`visibility_timeout` needs ack: manual (an auto-acked message "
                             "is gone from the broker when delivered)")
        if self.slow is not None and self.slow.workers > self.count:
            raise ValueError(f"slow.workers must be <= count ({self.count}), got "
                             f"{self.slow.workers}")
        if self.poison > 0 and self.ack == "manual" and self.max_attempts is None:
            raise ValueError("a poison message fails every time: with ack: manual it needs "
                             "`max_attempts`, or it would be retried forever")
        for key in ("max_attempts", "backoff"):
            if key in self.model_fields_set and self.ack != "manual":
                raise ValueError(f"`{key}` needs ack: manual (with auto ack a failed message "
                                 "is lost, never retried)")
        return self

    @property
    def logs_services(self) -> bool:
        """Whether the group logs each service (``Recorder.batches``) apart from its visits:
        a batch is one service for several messages, a prefetched message's visit also
        spans its trip to the consumer, and a visit whose visibility timeout ran out ends
        when the broker took the message back, while the worker goes on with its copy."""
        return self.batch > 1 or self.prefetch is not None or self.visibility_timeout is not None

    @property
    def reliable(self) -> bool:
        """Whether the group needs the reliability machinery (a slower worker loop)."""
        return (self.ack != "auto" or self.failure > 0 or self.dedup
                or self.crashes is not None or self.poison > 0 or self.slow is not None)

    @field_validator("to", mode="before")
    @classmethod
    def _routes(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            return v
        if not v:
            raise ValueError("a routing table names at least one destination")
        out: dict[str, float] = {}
        for k, p in v.items():
            if (isinstance(p, bool) or not isinstance(p, int | float) or math.isnan(p)
                    or not 0 <= p <= 1):
                raise ValueError(f"route {k!r}: a probability in [0, 1], got {p!r}")
            out[str(k)] = float(p)
        total = sum(out.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"route probabilities must add up to 1 (name `{EXIT}` for the "
                             f"share that leaves), got {total:g}")
        return out

    @property
    def routes(self) -> tuple[tuple[str | None, float], ...]:
        """Where a served message goes, with probabilities; None means it leaves."""
        if self.to is None:
            return ((None, 1.0),)
        if isinstance(self.to, str):
            return ((self.to, 1.0),)
        return tuple((None if k == EXIT else k, p) for k, p in self.to.items() if p > 0)

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

    _parse_dists = field_validator("service", "decode", mode="before")(_dist)


class LinkSpec(BaseModel):
    """A network hop: propagation latency, a serializing bandwidth, random loss."""

    model_config = _Strict

    latency: Distribution = Field(default_factory=lambda: parse("constant(0)"))
    bandwidth: float = math.inf
    loss: Annotated[float, Field(ge=0, lt=1)] = 0.0
    retransmit: PositiveFloat | None = None
    shares: str | None = None
    partitions: FaultSpec | None = None  # the link down for a while (docs/reliability.md)
    when_cut: Literal["hold", "lose"] = "hold"  # messages sent while it is down

    _parse_dists = field_validator("latency", mode="before")(_dist)

    @model_validator(mode="after")
    def _shared(self) -> LinkSpec:
        if self.shares is not None and "bandwidth" in self.model_fields_set:
            raise ValueError("a link that `shares` another's bandwidth has none of its own")
        if "when_cut" in self.model_fields_set and self.partitions is None:
            raise ValueError("`when_cut` needs `partitions` (when the link is down)")
        return self

    @field_validator("bandwidth", mode="before")
    @classmethod
    def _bandwidth(cls, v: Any) -> float:
        if isinstance(v, str) and v.strip().lower() in {"inf", ".inf", "infinity"}:
            return math.inf
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v) or v <= 0:
            raise ValueError(f"must be a number of bytes/second > 0 (or .inf), got {v!r}")
        return float(v)


_KEY = re.compile(r"^\s*(uniform|round-robin|zipf\(\s*s\s*=\s*([0-9.eE+\-]+)\s*\))\s*$")


class TopicSpec(BaseModel):
    """A topic: fan-out to subscriber queues, or a log split into partitions by key."""

    model_config = _Strict

    subscribers: list[str] | None = None
    partitions: Annotated[int, Field(ge=1, le=10_000)] | None = None
    key: str = "uniform"
    capacity: float = math.inf
    overflow: Literal["drop-new", "drop-oldest", "block"] = "drop-new"
    # Each partition is a queue with these keys of a queue's (docs/reliability.md): its
    # own ttl, dead-letter queue, disk and outages (partitions live on different brokers;
    # scheduled outages `at` hit every partition at the same times).
    ttl: PositiveFloat | None = None
    expiry: Literal["head", "anywhere"] = "head"
    dead_letter: str | None = None
    outages: FaultSpec | None = None
    persistent: bool = True
    when_down: Literal["block", "drop"] = "block"
    durability: DurabilitySpec | None = None
    backlog: BacklogSpec | None = None  # each partition's starting lag (docs/peak.md)

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity(cls, v: Any) -> float:
        return QueueSpec._capacity(v)

    def partition_spec(self) -> QueueSpec:
        """What each partition is, as a queue."""
        keys = ("capacity", "overflow", "ttl", "expiry", "dead_letter", "outages", "persistent",
                "when_down", "durability", "backlog")
        return QueueSpec(**{k: getattr(self, k) for k in keys if k in self.model_fields_set})

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        m = _KEY.match(v)
        if m is None:
            raise ValueError(f"must be uniform, round-robin or zipf(s=...), got {v!r}")
        if m.group(2) is not None:
            try:
                ok = float(m.group(2)) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"zipf needs s > 0, got {v!r}")
        return v.strip()

    @model_validator(mode="after")
    def _kind(self) -> TopicSpec:
        if (self.subscribers is None) == (self.partitions is None):
            raise ValueError("a topic has either `subscribers` (fan-out) or `partitions`")
        if self.subscribers is not None:
            if not self.subscribers:
                raise ValueError("`subscribers` names at least one queue")
            if len(set(self.subscribers)) != len(self.subscribers):
                raise ValueError(f"a queue subscribes once, got {self.subscribers!r}")
            for key in ("key", "capacity", "overflow", "ttl", "expiry", "dead_letter",
                        "outages", "persistent", "when_down", "durability", "backlog"):
                if key in self.model_fields_set:
                    raise ValueError(f"`{key}` belongs to a partitioned topic; a fan-out "
                                     "topic's copies wait in the subscriber queues")
        else:
            try:
                self.partition_spec()
            except ValidationError as e:  # the queue rules (e.g. `expiry` needs `ttl`)
                raise ValueError(e.errors(include_url=False)[0]["msg"].removeprefix(
                    "Value error, ")) from None
        return self

    @property
    def key_probabilities(self) -> list[float]:
        """The share of messages each partition gets (round-robin: an equal share)."""
        n = self.partitions or 0
        m = _KEY.match(self.key)
        assert m is not None
        if m.group(2) is None:
            return [1.0 / n] * n
        weights = [1.0 / (k + 1) ** float(m.group(2)) for k in range(n)]
        total = sum(weights)
        return [w / total for w in weights]

    def partition_names(self, topic: str) -> list[str]:
        return [f"{topic}[{p}]" for p in range(self.partitions or 0)]

    def owners(self, consumers: int) -> list[int]:
        """The consumer (0-based) that owns each partition: one per partition, round the
        consumers when there are fewer of them; consumers beyond the partitions stay idle."""
        return [p % consumers for p in range(self.partitions or 0)]


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

    def resolve(self, dest: str) -> list[tuple[str, float]]:
        """The queues a destination stands for, each with the expected number of copies
        it receives per message sent there (fan-out: 1 each; partitions: the key share)."""
        topic = self.topics.get(dest)
        if topic is None:
            return [(dest, 1.0)]
        if topic.subscribers is not None:
            return [(q, 1.0) for q in topic.subscribers]
        return list(zip(topic.partition_names(dest), topic.key_probabilities, strict=True))

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
    for kind in ("producers", "queues", "consumers", "topics"):
        for n in getattr(m, kind):
            if n in names:
                raise ScenarioError(f"{kind}.{n}", f"name already used by {names[n]}.{n}")
            if "->" in n or "[" in n:
                raise ScenarioError(f"{kind}.{n}", "names may not contain '->' or '['")
            names[n] = kind
    if EXIT in names:
        raise ScenarioError(f"{names[EXIT]}.{EXIT}", f"{EXIT!r} is reserved for routing tables")
    queues = sorted(m.queues)
    dests = sorted([*m.queues, *m.topics])

    def need_dest(path: str, target: str | None) -> None:
        if target is not None and target not in m.queues and target not in m.topics:
            raise ScenarioError(
                path, f"no queue or topic named {target!r} (have: {', '.join(dests)})")

    for t, spec in m.topics.items():
        for i, q in enumerate(spec.subscribers or []):
            if q not in m.queues:
                raise ScenarioError(f"topics.{t}.subscribers.{i}",
                                    f"no queue named {q!r} (queues: {', '.join(queues)})")
    for n, p in m.producers.items():
        need_dest(f"producers.{n}.to", p.to)
        fanout = m.topics.get(p.to)
        if p.wants_ack and fanout is not None and fanout.subscribers is not None:
            raise ScenarioError(f"producers.{n}.to", f"a {p.mode} sender waits for one reply; "
                                f"fan-out topic {p.to!r} makes several copies", p.to)
    for n, c in m.consumers.items():
        src = m.topics.get(c.source)
        if c.source not in m.queues and (src is None or src.partitions is None):
            raise ScenarioError(
                f"consumers.{n}.from",
                f"no queue or partitioned topic named {c.source!r} (consumers of a fan-out "
                "topic read from its subscriber queues)", c.source)
        if src is not None:
            other = next((g for g, x in m.consumers.items() if x.source == c.source and g != n),
                         None)
            if other is not None:
                raise ScenarioError(
                    f"consumers.{n}.from", f"topic {c.source!r} is already read by consumer "
                    f"group {other!r}; a partitioned topic has one consumer group", c.source)
        if isinstance(c.to, dict):
            for dest in c.to:
                if dest != EXIT:
                    need_dest(f"consumers.{n}.to.{dest}", dest)
        else:
            need_dest(f"consumers.{n}.to", c.to)
    flows = {(n, p.to) for n, p in m.producers.items()}
    flows |= {(c.source, n) for n, c in m.consumers.items()}
    flows |= {(n, dest) for n, c in m.consumers.items() for dest, _ in c.routes
              if dest is not None}
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
        lspec = m.links[key]
        if lspec.shares is not None:
            owner = m.links.get(lspec.shares)
            if owner is None or lspec.shares == key:
                raise ScenarioError(f"links.{key}.shares",
                                    f"names another link (links: {', '.join(m.links)})",
                                    lspec.shares)
            if owner.shares is not None:
                raise ScenarioError(f"links.{key}.shares", f"{lspec.shares!r} itself shares "
                                    f"{owner.shares!r}: name the link that owns the bandwidth",
                                    lspec.shares)
            for k in (key, lspec.shares):
                if k.partition("->")[0] in m.queues:
                    raise ScenarioError(f"links.{key}.shares", "a queue->consumer link "
                                        "(prefetch) has its own bandwidth per consumer", k)
        if (a in m.queues or a in m.topics) and m.consumers[b].prefetch is None:
            raise ScenarioError(
                f"links.{key}", f"a link from a queue or topic to its consumers needs "
                f"consumers.{b}.prefetch: how many unacknowledged messages the broker may "
                "push over it (brokers differ: RabbitMQ pushes without limit, a Kafka "
                "consumer fetches a batch at a time), so the scenario must say")
    _check_reliability(m)
    _check_no_cycle(m)
    _check_replies(m)


def _check_reliability(m: Model) -> None:
    """Dead-letter names, and the reliability keys whose meaning spans components."""
    for key, link in m.links.items():
        a = key.partition("->")[0]
        if link.partitions is not None and (a in m.queues or a in m.topics):
            raise ScenarioError(f"links.{key}.partitions", "a queue->consumer (prefetch) "
                                "link cannot be partitioned; partition the sender's link")
        if link.partitions is not None and link.when_cut == "lose":
            for n, p in m.producers.items():
                if p.waits_for_reply and p.timeout is None:
                    raise ScenarioError(f"links.{key}.when_cut", f"producer {n!r} (mode "
                                        f"{p.mode}) waits for every reply and has no send "
                                        "`timeout`; a partition that loses messages would "
                                        "stall it", "lose")
    for n, q in m.queues.items():
        if q.dead_letter is not None and (q.dead_letter not in m.queues or q.dead_letter == n):
            others = ", ".join(sorted(k for k in m.queues if k != n)) or "none"
            raise ScenarioError(f"queues.{n}.dead_letter",
                                f"names another queue (queues: {others})", q.dead_letter)
    for t, tspec in m.topics.items():
        if tspec.dead_letter is not None and tspec.dead_letter not in m.queues:
            raise ScenarioError(f"topics.{t}.dead_letter",
                                f"names a queue (queues: {', '.join(sorted(m.queues))})",
                                tspec.dead_letter)
    for n in m.queues:
        trail = [n]
        while (nxt := m.queues[trail[-1]].dead_letter) is not None:
            if nxt in trail:
                loop = " -> ".join([*trail[trail.index(nxt):], nxt])
                raise ScenarioError(
                    f"queues.{trail[-1]}.dead_letter", f"dead-letter queues form a cycle "
                    f"({loop}): a message dead-lettered round it would never end (RabbitMQ "
                    "drops such messages); end the chain in a queue without dead_letter", nxt)
            trail.append(nxt)


def _check_replies(m: Model) -> None:
    """A sync or window sender without a send ``timeout`` waits for every message it sent;
    none may vanish on the way, or it would wait for ever.

    So the queues it reaches must not drop or expire, the links it crosses must not lose,
    and the consumers must not lose (auto ack with failures or crashes) or dead-letter
    for good what they read. With a `timeout` the sender gives up (or retries), and every
    combination is allowed.
    """
    drains = m.drains()
    all_queues = m.all_queues()
    for n, p in m.producers.items():
        if not p.waits_for_reply or p.timeout is not None:
            continue
        why = (f"producer {n!r} (mode {p.mode}) waits for every reply and has no send "
               "`timeout`; ")
        if p.ttl is not None:
            raise ScenarioError(f"producers.{n}.ttl", why + "messages that expire would stall "
                                "it (give it a `timeout`, or no ttl)", p.ttl)
        seen: set[str] = set()
        todo = [(n, p.to)]
        while todo:
            src, dest = todo.pop()
            link = m.links.get(f"{src}->{dest}")
            if link is not None and link.loss > 0 and link.retransmit is None:
                raise ScenarioError(
                    f"links.{src}->{dest}.loss",
                    why + "a lossy link would stall it (use loss 0, `retransmit`, or a "
                    "`timeout`)", link.loss,
                )
            for q, _ in m.resolve(dest):
                if q in seen:
                    continue
                seen.add(q)
                spec = all_queues[q]
                where = f"queues.{q}" if q in m.queues else f"topics.{dest}"
                if spec.ttl is not None:
                    raise ScenarioError(f"{where}.ttl", why + f"messages that expire in queue "
                                        f"{q!r} would stall it", spec.ttl)
                if spec.outages is not None and (not spec.persistent
                                                 or spec.when_down == "drop"):
                    raise ScenarioError(f"{where}.outages", why + f"an outage of queue {q!r} "
                                        "that loses or turns away messages would stall it")
                if math.isfinite(spec.capacity) and spec.overflow != "block":
                    raise ScenarioError(
                        f"{where}.overflow",
                        why + "a queue that drops would stall it (use capacity .inf or "
                        "overflow: block)", spec.overflow,
                    )
                for g in drains[q]:
                    c = m.consumers[g]
                    loses = c.ack == "auto" and (c.failure > 0 or c.poison > 0
                                                 or c.crashes is not None)
                    if loses:
                        raise ScenarioError(
                            f"consumers.{g}.ack", why + f"consumer {g!r} loses what fails or "
                            "crashes under auto ack (use ack: manual, or a `timeout`)", c.ack)
                    if c.ack == "manual" and (c.max_attempts is not None or c.poison > 0):
                        dlq = spec.dead_letter
                        if dlq is None or not drains.get(dlq):
                            raise ScenarioError(
                                f"consumers.{g}.max_attempts", why + f"messages dead-lettered "
                                f"by consumer {g!r} end there (give the queue a dead_letter "
                                "queue with consumers, or the sender a `timeout`)",
                                c.max_attempts)
                        todo.append((q, dlq))
                    fan = [d for d, _ in c.routes if d is not None and d in m.topics
                           and m.topics[d].subscribers is not None]
                    if fan:
                        raise ScenarioError(
                            f"consumers.{g}.to", f"producer {n!r} (mode {p.mode}) waits for "
                            "one reply; a fan-out topic on its route makes several", fan[0])
                    todo += [(g, d) for d, _ in c.routes if d is not None]


def _check_no_cycle(m: Model) -> None:
    """Refuse routes that keep a message forever: every loop must have a way out.

    A queue can let a message out when a group draining it ends the route or may route to
    `exit`, or may route to a queue that can (a queue nobody drains keeps what it gets,
    which is a visible backlog, not a loop). Probabilistic feedback is fine as long as some
    route leaves: the message then leaves with probability 1.
    """
    groups = m.drains()
    leaves = {q for q, gs in groups.items()
              if not gs or any(d is None for g in gs for d, _ in m.consumers[g].routes)}

    def out(d: str | None) -> bool:
        # A copy of a fan-out goes to every subscriber: all of them must let it out.
        return d is None or all(q in leaves for q, _ in m.resolve(d))

    changed = True
    while changed:
        changed = False
        for q, gs in groups.items():
            if q not in leaves and any(out(d) for g in gs for d, _ in m.consumers[g].routes):
                leaves.add(q)
                changed = True
    stuck = [q for q in groups if q not in leaves]
    if not stuck:
        return
    # Every route out of a stuck queue leads to another stuck one: walk until a repeat.
    trail: list[str] = [stuck[0]]
    seen = {stuck[0]: 0}
    while True:
        q = trail[-1]
        g = groups[q][0]
        dest = next(d for d, _ in m.consumers[g].routes if d is not None and not out(d))
        nxt = next(x for x, _ in m.resolve(dest) if x not in leaves)
        trail += [g, nxt]
        if nxt in seen:
            loop = " -> ".join(trail[seen[nxt]:])
            path = f"consumers.{g}.to" if isinstance(m.consumers[g].to, str) else \
                f"consumers.{g}.to.{dest}"
            raise ScenarioError(path, f"messages would loop forever ({loop})", dest)
        seen[nxt] = len(trail) - 1


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'rate'?"`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models_in(a)]


# Keys the loader expands before the schema sees them: valid, though not schema fields.
_SHORTHAND_KEYS: dict[str, tuple[str, ...]] = {"ProducerSpec": ("rate",),
                                                "ConsumerSpec": ("rate",)}


def _keys_at(loc: Sequence[str]) -> set[str]:
    """The keys the schema allows in the mapping at ``loc`` (e.g. producers.app)."""
    models: list[type[BaseModel]] = [Model]
    steps = list(loc)
    i = 0
    while i < len(steps):
        step, named, inner = steps[i], False, []
        if step.isdigit():  # an item of a list: the same models hold inside
            i += 1
            continue
        for m in models:
            for name, field in m.model_fields.items():
                if (field.alias or name) == step:
                    # A section (a mapping of names to components) consumes the name too.
                    named |= get_origin(field.annotation) is dict
                    inner += _models_in(field.annotation)
        if not inner:
            return set()
        models, i = inner, i + (2 if named else 1)
    keys = {f.alias or n for m in models for n, f in m.model_fields.items()}
    for m in models:
        keys.update(_SHORTHAND_KEYS.get(m.__name__, ()))
    return keys


def _validation_error(err: ValidationError, raw: Mapping[str, Any]) -> ScenarioError:
    """Turn pydantic's report into one message naming path, rule and value."""
    e = err.errors(include_url=False)[0]
    loc = [str(p) for p in e["loc"] if not str(p).startswith(("function-", "tagged-union"))]
    loc = [p for p in loc if p not in {"float", "int", "str", "none", "constrained-float"}]
    if loc and loc[-1] == "source" and e["type"] != "extra_forbidden":
        loc[-1] = "from"
    path = ".".join(loc)
    kind = e["type"]
    value = e.get("input", ...)
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "top level"
        hint = did_you_mean(loc[-1], _keys_at(loc[:-1])) if loc else ""
        return ScenarioError(path, f"unknown key (not allowed in {parent}){hint}")
    if kind == "missing":
        return ScenarioError(path, "required key is missing")
    if isinstance(value, Mapping) or kind.startswith("value_error"):
        value = ...
    if ", got " in msg:
        value = ...
    return ScenarioError(path, msg[0].lower() + msg[1:], value)


class Scenario:
    """An immutable, validated scenario. Build with :func:`load` or :func:`loads`."""

    __slots__ = ("_raw", "_model", "_base_dir", "_source", "_queues")
    _raw: dict[str, Any]
    _model: Model
    _base_dir: Path | None
    _source: str
    _queues: dict[str, QueueSpec]

    def __init__(
        self, raw: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "<dict>"
    ) -> None:
        if not isinstance(raw, Mapping):
            # Name the file when there is one: YAML that is a list or a word parses fine.
            where = "" if source == "<dict>" else source
            raise ScenarioError(where, "a scenario is a mapping of keys to values",
                                type(raw).__name__)
        raw = copy.deepcopy(dict(raw))
        try:
            model = Model.model_validate(_expand_shorthands(raw), context={"base_dir": base_dir})
        except ValidationError as err:
            raise _validation_error(err, raw) from None
        _check_references(model)
        _check_peak(model)
        object.__setattr__(self, "_queues", model.all_queues())
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
        """Every queue, then each partitioned topic's partitions (``TOPIC[p]``)."""
        return MappingProxyType(self._queues)

    @property
    def topics(self) -> Mapping[str, TopicSpec]:
        return MappingProxyType(self._model.topics)

    def resolve(self, dest: str) -> list[tuple[str, float]]:
        """The queues a destination (queue or topic) stands for, with copies per message."""
        return self._model.resolve(dest)

    def drains(self) -> dict[str, list[str]]:
        """For every queue, partitions included, the consumer groups taking from it."""
        return self._model.drains()

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
            _set_path(raw, path, value)
        return Scenario(raw, base_dir=self._base_dir, source=self._source)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e8` and `1.25e8` as text; users mean numbers. A key given twice
    is refused: plain YAML keeps the last one and silently drops the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then a key of base: overriding is the point
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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


_SECTIONS = ("producers", "queues", "consumers", "links", "topics")
_REPLACES = {"rate": ("interarrival", "service", "arrivals"), "interarrival": ("rate", "arrivals"),
             "service": ("rate",), "arrivals": ("rate", "interarrival"),
             "until": (), "messages": ()}


def _rebuild(raw: dict[str, Any], base_dir: Path | None, source: str) -> Scenario:
    return Scenario(raw, base_dir=base_dir, source=source)


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
            raise ScenarioError(path, f"no {top[:-1]} named {name!r} (have: {have})"
                                + did_you_mean(name, section))
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
        path, "overrides start with run, producers, queues, consumers, links, topics, name or "
        "description" + did_you_mean(top, ("run", *_SECTIONS, "name", "description"))
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
