"""The components a scenario names: its run settings, producers, queues, consumer groups,
links and topics, each a frozen pydantic model built from the types of
:mod:`simq.scenario.types`.

Producers are a union tagged by ``mode``: an :class:`AsyncProducer` (the default when
``mode`` is absent), a :class:`SyncProducer` or a :class:`WindowProducer`, each holding only
the keys that mean something for it. A key of another mode is refused naming the key, the
mode it needs and this producer's mode. Rules that span components live in
:mod:`simq.scenario.checks`. The module is long because there are six kinds of
component; it is one thing, the spec of each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from simq.dists import Distribution
from simq.errors import shown
from simq.scenario.cluster import AcksKey, ReplicasKey
from simq.scenario.keys import KeyDist, key_shares, trace_shares
from simq.scenario.rebalance import RebalanceSpec
from simq.scenario.reliability import (
    BackoffSpec,
    CrashSpec,
    DurabilitySpec,
    FaultSpec,
    SendRetrySpec,
    SlowSpec,
)
from simq.scenario.types import (
    STRICT,
    Bandwidth,
    Capacity,
    Count,
    Dist,
    Fraction,
    NonNegative,
    Positive,
    Probability,
    Size,
    Whole,
    default_dist,
    finite,
    number,
)
from simq.scenario.workload import ArrivalsSpec, AutoscaleSpec, BacklogSpec

__all__ = ["EXIT", "MAX_EVENTS", "MAX_MEMORY", "MODES", "AsyncProducer", "ConsumerSpec",
           "LinkSpec", "ProducerSpec", "QueueSpec", "RetentionSpec", "RunSpec", "SyncProducer",
           "TopicSpec", "WindowProducer"]

EXIT = "exit"  # in a routing table, the share of messages that leaves the system
MODES = ("async", "sync", "window")


# The work and memory a run may take, judged from the scenario before it starts
# (simq.model.estimate; docs/reference/scenario.md, "Limits"). One event costs 4-9 us on
# this engine, so 1e9 events is one to two and a half hours of one core: more is a run to
# ask for on purpose. 4 GiB holds the full records of about seven million messages.
MAX_EVENTS = 1e9
MAX_MEMORY = 4 * 2**30


class RunSpec(BaseModel):
    """How long to run, what to ignore, which streams to use."""

    model_config = STRICT

    until: Positive | None = None
    messages: Count | None = None
    # Seconds, or "auto": MSER-5 on each replication's latency series (simq.analysis.stats.mser).
    warmup: NonNegative | Literal["auto"] = 0.0
    seed: Whole = 1
    replications: Count = 1
    timeseries_points: Annotated[Count, Field(ge=2, le=1_000_000)] = 500
    # full: one record per message (res.messages); summary: accumulators only, flat memory
    records: Literal["full", "summary"] = "full"
    # auto: the fast engine (simq.engine.fast) when every component allows it, else SimPy
    engine: Literal["auto", "simpy", "fast"] = "auto"
    # Refused before it starts above these (simq.model.estimate): events, bytes; a run
    # whose memory grows past max_memory all the same is stopped (simq.record.guard).
    max_events: Positive = MAX_EVENTS
    max_memory: Size = MAX_MEMORY

    @field_validator("warmup", mode="before")
    @classmethod
    def _warmup(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        return finite("seconds >= 0 or auto", lambda x: x >= 0)(v)

    @model_validator(mode="after")
    def _length(self) -> RunSpec:
        if self.until is None and self.messages is None:
            raise ValueError("give `until` (simulated seconds) or `messages` (stop after N)")
        if (self.until is not None and isinstance(self.warmup, float)
                and self.warmup >= self.until):
            raise ValueError(f"warmup must be < until ({self.until:g}), got {self.warmup:g}")
        return self


# What a key of one mode means, said when it is given to a producer of another mode.
_NEEDS: dict[str, str] = {
    "arrivals": "time-varying load",
    "interarrival": "the time between sends",
    "clients": "independent clients, each with one request outstanding",
    "think": "a client's pause between a reply and its next request",
    "window": "max unacknowledged messages",
}


class _Producer(BaseModel):
    """What every producer has, whatever its mode."""

    model_config = STRICT

    to: str
    size: Dist = default_dist("constant(1000)")
    start: NonNegative = 0.0
    stop: Positive | None = None
    encode: Dist | None = None
    reply: Dist = default_dist("constant(0)")  # the reply's (or ack's) trip back
    priority: int = 0
    batch_size: Positive | None = None
    linger: NonNegative = 0.0
    ttl: Positive | None = None  # per-message time-to-live from sending (reliability)
    timeout: Positive | None = None  # give up waiting for the ack after this long
    credits: Count | None = None  # flow control: messages not yet taken
    retry: SendRetrySpec | None = None  # what to do then (docs/reliability.md)
    keys: KeyDist | None = None  # each message's key (docs/patterns.md, keys and ordering)
    # The broker takes in each message once, whatever the resends (docs/reliability.md).
    idempotent: bool = False
    # A message class (docs/patterns.md): the service and decode of this producer's
    # messages where they are first served, instead of the consumer group's.
    service: Dist | None = None
    decode: Dist | None = None

    mode_name: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _other_modes(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        for key, what in _NEEDS.items():
            if key in data and key not in cls.model_fields:
                modes = " or ".join(m for m, c in _VARIANTS.items() if key in c.model_fields)
                hint = ""
                if cls.mode_name == "sync" and key in {"interarrival", "arrivals"}:
                    hint = ("; a sync client sends when its reply is back (after `think`), "
                            "so it takes no `interarrival`, `rate` or `arrivals`")
                raise ValueError(f"`{key}` ({what}) needs mode: {modes}; this producer's mode "
                                 f"is {cls.mode_name}{hint}")
        return data

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: Any) -> Any:
        rule = "an integer (higher is served first)"
        x = number(v, rule)
        if not math.isfinite(x) or x != int(x):
            raise ValueError(f"must be {rule}, got {shown(v)}")
        return int(x)

    @model_validator(mode="after")
    def _common(self) -> _Producer:
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop must be > start ({self.start:g}), got {self.stop:g}")
        if "linger" in self.model_fields_set and self.batch_size is None:
            raise ValueError("`linger` needs `batch_size` (bytes that close a batch)")
        if self.retry is not None and self.timeout is None:
            raise ValueError("`retry` needs `timeout` (how long to wait for the ack)")
        if self.keys is not None and self.trace_keys is not None:
            raise ValueError("`keys` and a trace with a `key` column both give the messages "
                             "their keys; keep one")
        return self

    @property
    def trace_keys(self) -> tuple[str, ...] | None:
        """The keys of a replayed trace's messages, in send order (None: no key column)."""
        arrivals = self.varying_load
        trace = arrivals.trace if arrivals is not None else None
        return trace.keys if trace is not None else None

    @property
    def varying_load(self) -> ArrivalsSpec | None:
        """The time-varying load (``arrivals``) of a producer that sets its own pace; a
        sync producer has none (its clients send when their reply is back)."""
        return None

    def partition_shares(self, partitions: int, unkeyed: list[float]) -> list[float]:
        """The share of this producer's messages each partition of a topic gets: its
        keys' probabilities (or a trace's keys' counts) by partition, ``unkeyed`` for
        messages without a key."""
        if self.keys is not None:
            return list(key_shares(self.keys, partitions))
        trace = self.trace_keys
        if trace is None:
            return list(unkeyed)
        return list(trace_shares(trace, partitions, tuple(unkeyed)))

    @property
    def keyed(self) -> bool:
        """Whether this producer's messages carry keys (a distribution or a trace column)."""
        return self.keys is not None or self.trace_keys is not None

    @property
    def wants_ack(self) -> bool:
        """Senders that learn when their message was processed (waiting or timing out)."""
        return self.waits_for_reply or self.timeout is not None

    @property
    def waits_for_reply(self) -> bool:
        """Sync and window senders learn when their message was processed."""
        return self.mode_name != "async"

    @property
    def pace(self) -> Distribution | None:
        """The time between sends when one is given (always for async, optional for a
        window), None for a sync producer, whose clients send when their reply is back."""
        return None


class AsyncProducer(_Producer):
    """Open loop: sends every ``interarrival`` (or as ``arrivals`` says), never waiting."""

    mode: Literal["async"] = "async"
    interarrival: Dist
    arrivals: ArrivalsSpec | None = None  # time-varying load (docs/peak.md)

    mode_name: ClassVar[str] = "async"

    @property
    def pace(self) -> Distribution | None:
        return self.interarrival

    @property
    def varying_load(self) -> ArrivalsSpec | None:
        return self.arrivals

    @model_validator(mode="before")
    @classmethod
    def _paced(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "interarrival" not in data:
            raise ValueError("an async producer needs `interarrival` (or the shorthand `rate`)")
        return data

    @model_validator(mode="after")
    def _reply(self) -> AsyncProducer:
        if "reply" in self.model_fields_set and self.timeout is None:
            raise ValueError("`reply` (latency of the reply or ack) needs mode: sync or window "
                             "(or a send `timeout`)")
        return self


class SyncProducer(_Producer):
    """Closed loop: ``clients`` each with one request outstanding, pausing ``think``."""

    mode: Literal["sync"]
    clients: Count = 1
    think: Dist = default_dist("constant(0)")

    mode_name: ClassVar[str] = "sync"


class WindowProducer(_Producer):
    """Up to ``window`` unacknowledged messages, sent every ``interarrival`` when given."""

    mode: Literal["window"]
    window: Count
    interarrival: Dist | None = None
    arrivals: ArrivalsSpec | None = None  # time-varying load (docs/peak.md)

    mode_name: ClassVar[str] = "window"

    @property
    def pace(self) -> Distribution | None:
        return self.interarrival

    @property
    def varying_load(self) -> ArrivalsSpec | None:
        return self.arrivals

    @model_validator(mode="before")
    @classmethod
    def _sized(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("window") is None:
            raise ValueError("a window producer needs `window` (max unacknowledged messages)")
        return data


_VARIANTS: dict[str, type[_Producer]] = {"async": AsyncProducer, "sync": SyncProducer,
                                         "window": WindowProducer}


def _mode_of(v: Any) -> str | None:
    # No `mode` means async, as it always has; an unknown mode is reported by io.
    mode = v.get("mode", "async") if isinstance(v, Mapping) else getattr(v, "mode", "async")
    return mode if isinstance(mode, str) and mode in _VARIANTS else None


#: A producer: one of the three modes, chosen by its ``mode`` key (``async`` when absent).
ProducerSpec = Annotated[
    Annotated[AsyncProducer, Tag("async")]
    | Annotated[SyncProducer, Tag("sync")]
    | Annotated[WindowProducer, Tag("window")],
    Discriminator(_mode_of, custom_error_type="producer_mode",
                  custom_error_message="must be async, sync or window"),
]


def replication_keys(spec: QueueSpec | TopicSpec) -> None:
    """The rules of a queue's (or topic's) own replication keys."""
    rf, isr = spec.replication_factor, spec.min_insync_replicas
    if spec.acks == "quorum" and isr is not None:
        raise ValueError("`min_insync_replicas` is for acks: all; a quorum write waits for "
                         "a majority of the replicas by definition")
    if isr is not None and rf is not None and isr > rf:
        raise ValueError(f"`min_insync_replicas` {isr} is more than the "
                         f"{rf} replicas (`replication_factor`): no write could succeed")
    if isr is not None and spec.acks == "1":
        raise ValueError("`min_insync_replicas` only applies to acks: all (with acks: 1 "
                         "the leader takes every write alone)")


class QueueSpec(BaseModel):
    """A broker queue: a FIFO waiting line with an optional bound."""

    model_config = STRICT

    capacity: Capacity = math.inf
    overflow: Literal["drop-new", "drop-oldest", "block"] = "drop-new"
    discipline: Literal["fifo", "priority"] = "fifo"
    backlog: BacklogSpec | None = None  # messages waiting at time 0 (docs/peak.md)
    # Reliability (docs/reliability.md): time-to-live and where failed messages go.
    ttl: Positive | None = None
    expiry: Literal["head", "anywhere"] = "head"
    dead_letter: str | None = None
    outages: FaultSpec | None = None  # the broker (this queue) unavailable for a while
    persistent: bool = True  # an outage keeps the messages (False: in memory, lost)
    when_down: Literal["block", "drop"] = "block"  # what senders meet during an outage
    durability: DurabilitySpec | None = None  # disk writes and replication per enqueue
    # On a broker cluster (`brokers:`, docs/cluster.md): replicas of this queue, what a
    # write waits for, and how many in-sync replicas a write needs (acks: all). Unset:
    # the cluster's replication_factor, acks all, min_insync_replicas 1.
    replication_factor: ReplicasKey = None
    acks: AcksKey = None
    min_insync_replicas: ReplicasKey = None

    @model_validator(mode="after")
    def _order(self) -> QueueSpec:
        if self.discipline == "priority" and self.overflow == "drop-oldest":
            raise ValueError("drop-oldest would evict the message served next in a priority "
                             "queue; use drop-new or block")
        if "persistent" in self.model_fields_set and self.outages is None:
            raise ValueError("`persistent` needs `outages` (when the broker is down)")
        # `when_down` needs `outages` or a cluster (scenario.checks: it sees `brokers`).
        replication_keys(self)
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


class ConsumerSpec(BaseModel):
    """A group of `count` identical workers taking messages from one queue."""

    # Only `from` is a key: accepting the field's Python name too would let `source:`
    # slip in beside `from:` and one of them be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    source: str = Field(alias="from")
    count: Count = 1
    service: Dist
    # Per message class (docs/patterns.md): producer -> service of its messages here.
    service_by: dict[str, Dist] | None = None
    to: str | dict[str, float] | None = None
    # Capacity that changes over time (docs/peak.md): [[time, count], ...] or a policy.
    schedule: list[tuple[NonNegative, Whole]] | None = None
    autoscale: AutoscaleSpec | None = None
    decode: Dist | None = None
    batch: Count = 1
    prefetch: Count | None = None
    # Reliability (docs/reliability.md): acks, failures, retries, duplicates, crashes.
    ack: Literal["auto", "manual"] = "auto"
    visibility_timeout: Positive | None = None
    failure: Fraction = 0.0
    poison: Probability = 0.0
    slow: SlowSpec | None = None
    max_attempts: Count | None = None
    backoff: BackoffSpec | None = None
    dedup: bool = False
    crashes: CrashSpec | None = None
    # On a partitioned topic: how partitions move when membership changes (docs/rebalancing.md).
    rebalance: RebalanceSpec | None = None

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

    @field_validator("service_by")
    @classmethod
    def _classes(cls, v: dict[str, Distribution] | None) -> dict[str, Distribution] | None:
        if v is not None and not v:
            raise ValueError("a class table names at least one producer")
        return v

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


class LinkSpec(BaseModel):
    """A network hop: propagation latency, a serializing bandwidth, random loss."""

    model_config = STRICT

    latency: Dist = default_dist("constant(0)")
    bandwidth: Bandwidth = math.inf
    loss: Fraction = 0.0
    retransmit: Positive | None = None
    shares: str | None = None
    partitions: FaultSpec | None = None  # the link down for a while (docs/reliability.md)
    when_cut: Literal["hold", "lose"] = "hold"  # messages sent while it is down

    @model_validator(mode="after")
    def _shared(self) -> LinkSpec:
        if self.shares is not None and "bandwidth" in self.model_fields_set:
            raise ValueError("a link that `shares` another's bandwidth has none of its own")
        if "when_cut" in self.model_fields_set and self.partitions is None:
            raise ValueError("`when_cut` needs `partitions` (when the link is down)")
        return self


_KEY = re.compile(r"^\s*(uniform|round-robin|zipf\(\s*s\s*=\s*([0-9.eE+\-]+)\s*\))\s*$")
# A partitioned topic's keys that make each partition a queue (see partition_spec).
_PARTITION_KEYS = ("capacity", "overflow", "ttl", "expiry", "dead_letter", "outages",
                   "persistent", "when_down", "durability", "backlog", "replication_factor",
                   "acks", "min_insync_replicas")


class RetentionSpec(BaseModel):
    """How long a partitioned topic's log keeps a message (per partition): by age, by
    count, or both (whichever removes it first). A message removed before a consumer
    group read it is `expired` for that group."""

    model_config = STRICT

    seconds: Positive | None = None
    messages: Count | None = None

    @model_validator(mode="after")
    def _some(self) -> RetentionSpec:
        if self.seconds is None and self.messages is None:
            raise ValueError("retention needs `seconds`, `messages` or both")
        return self


class TopicSpec(BaseModel):
    """A topic: fan-out to subscriber queues, or a log split into partitions by key."""

    model_config = STRICT

    subscribers: list[str] | None = None
    partitions: Annotated[Count, Field(le=10_000)] | None = None
    key: str = "uniform"
    capacity: Capacity = math.inf
    overflow: Literal["drop-new", "drop-oldest", "block"] = "drop-new"
    # Each partition is a queue with these keys of a queue's (docs/reliability.md): its
    # own ttl, dead-letter queue, disk and outages (partitions live on different brokers;
    # scheduled outages `at` hit every partition at the same times).
    ttl: Positive | None = None
    expiry: Literal["head", "anywhere"] = "head"
    dead_letter: str | None = None
    outages: FaultSpec | None = None
    persistent: bool = True
    when_down: Literal["block", "drop"] = "block"
    durability: DurabilitySpec | None = None
    backlog: BacklogSpec | None = None  # each partition's starting lag (docs/peak.md)
    # On a broker cluster (docs/cluster.md): each partition's replicas and write rule.
    replication_factor: ReplicasKey = None
    acks: AcksKey = None
    min_insync_replicas: ReplicasKey = None
    # The log's retention (docs/patterns.md): every consumer group reads the whole log at
    # its own offset; what retention removes before a group read it is lost to that group.
    retention: RetentionSpec | None = None

    def partition_spec(self) -> QueueSpec:
        """What each partition is, as a queue."""
        return QueueSpec(**{k: getattr(self, k) for k in _PARTITION_KEYS
                            if k in self.model_fields_set})

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        m = _KEY.match(v)
        if m is None:
            raise ValueError(f"must be uniform, round-robin or zipf(s=...), got {shown(v)}")
        if m.group(2) is not None:
            try:
                ok = float(m.group(2)) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"zipf needs s > 0, got {shown(v)}")
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
            for key in ("key", "retention", *_PARTITION_KEYS):
                if key in self.model_fields_set:
                    raise ValueError(f"`{key}` belongs to a partitioned topic; a fan-out "
                                     "topic's copies wait in the subscriber queues")
        else:
            if self.retention is not None and self.retention.seconds is not None:
                for key in ("ttl", "expiry"):
                    if key in self.model_fields_set:
                        raise ValueError(
                            f"`{key}` and `retention.seconds` both say how long a partition "
                            "keeps an unread message: retention.seconds is a ttl with expiry "
                            "anywhere that never dead-letters; give one of them")
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

    def partition_names(self, topic: str, group: str | None = None) -> list[str]:
        """The partitions as queues: ``TOPIC[p]``, or ``TOPIC[p]@GROUP`` for one group's
        view of the log when several groups read the topic."""
        at = "" if group is None else f"@{group}"
        return [f"{topic}[{p}]{at}" for p in range(self.partitions or 0)]

    def owners(self, consumers: int) -> list[int]:
        """The consumer (0-based) that owns each partition: one per partition, round the
        consumers when there are fewer of them; consumers beyond the partitions stay idle."""
        return [p % consumers for p in range(self.partitions or 0)]
