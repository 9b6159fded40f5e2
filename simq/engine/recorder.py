"""What a run remembers: a columnar log of every message, visit and hop.

The engine appends plain tuples to lists (one append per event, nothing else on the hot
path); :meth:`Recorder.compact` moves them into numpy columns a chunk at a time while the
run goes (a tuple row costs about four times its numpy columns), and
:meth:`Recorder.arrays` joins the columns once, at the end. Every
time-weighted statistic is computed afterwards from these intervals, exactly: the area
under a queue's length is the sum of the time its messages spent waiting.

At the end the Recorder hands its columns over to :class:`Records` rather than keeping a
copy: a log that is expanded into per-message arrays (``finished`` into ``done``,
``outcome`` and ``where``; ``copies`` into ``parent``) is freed as soon as it is
converted, so a full-records run never holds the same rows twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

import numpy as np

__all__ = ["BATCH", "BUFFER", "CLUSTER", "Cluster", "DECODE", "DEDUPLICATED", "DELIVERED",
           "DROPPED", "ENCODE", "EVENTS", "FETCH",
           "LAYOUT", "LOST", "OUTCOMES", "REPLY", "RETRANSMIT", "STAGES", "Fate", "Kind",
           "Recorder", "Records", "Stage", "TRIGGERS", "Trigger", "to_columns"]

# The codes are IntEnums for their names; the engine logs the plain ints (aliases below),
# which cost less in a tuple and in the conversion to numpy columns.


# Outcome codes of a finished message (in_flight is "not finished").
class Fate(IntEnum):
    """How a message ended: each message ends exactly once (or is still in flight)."""

    IN_FLIGHT = -1
    DELIVERED = 0
    DROPPED = 1
    LOST = 2
    EXPIRED = 3
    DEAD_LETTERED = 4
    # A resend recognised as a copy of a message (same producer and sequence) already
    # taken in by an idempotent producer's broker, or already applied by a dedup consumer.
    DEDUPLICATED = 5


# Plain ints, in the order of definition (the logs hold ints).
(IN_FLIGHT, DELIVERED, DROPPED, LOST, EXPIRED, DEAD_LETTERED, DEDUPLICATED) = map(int, Fate)
OUTCOMES = {int(f): f.name.lower() for f in Fate if f >= 0} | {int(IN_FLIGHT): "in_flight"}


class Stage(IntEnum):
    """The per-message steps that are neither a queue visit nor a link hop."""

    ENCODE = 0
    DECODE = 1
    REPLY = 2
    BATCH = 3
    BUFFER = 4
    FETCH = 5
    RETRANSMIT = 6
    PERSIST = 7
    REPLICATE = 8


# Plain ints, in the order of definition (the logs hold ints).
(ENCODE, DECODE, REPLY, BATCH, BUFFER, FETCH, RETRANSMIT, PERSIST, REPLICATE) = map(int, Stage)
STAGES = {int(s): s.name.lower() for s in Stage}


class Kind(IntEnum):
    """Reliability and fault events (docs/reliability.md), logged only when those features
    are on. The component is a consumer group for ATTEMPT, FAILED, DUPLICATE, DISCARDED,
    CRASH, RESTART and CRASH_LOST, a queue for REQUEUED and DEAD_LETTER. For a producer
    with a send timeout, the component is the producer and the id the message's first
    send: ACKED (its ack came back in time), TIMED_OUT (one send's wait ran out), RETRIED
    (a new send; the copy's own id is in `copies`), GAVE_UP (no send left). Faults of a
    queue (OUTAGE, BACK, OUTAGE_LOST: a message an in-memory queue lost) and of a link
    (CUT, HEALED), with id -1 except for OUTAGE_LOST. REFUSED: the broker of an idempotent
    producer (the component) refused a resend of a message it had taken in already."""

    ATTEMPT = 0
    REQUEUED = 1
    FAILED = 2
    DUPLICATE = 3
    DISCARDED = 4
    DEAD_LETTER = 5
    CRASH = 6
    RESTART = 7
    CRASH_LOST = 8
    ACKED = 9
    TIMED_OUT = 10
    RETRIED = 11
    GAVE_UP = 12
    OUTAGE = 13
    BACK = 14
    OUTAGE_LOST = 15
    CUT = 16
    HEALED = 17
    REFUSED = 18


# Plain ints, in the order of definition (the logs hold ints).
(
    ATTEMPT, REQUEUED, FAILED, DUPLICATE, DISCARDED, DEAD_LETTER, CRASH, RESTART, CRASH_LOST,
    ACKED, TIMED_OUT, RETRIED, GAVE_UP, OUTAGE, BACK, OUTAGE_LOST, CUT, HEALED, REFUSED
) = map(int, Kind)
EVENTS = {int(k): k.name.lower() for k in Kind}


class Trigger(IntEnum):
    """What started a consumer group's rebalance: a member joined (scaling up, or a
    crashed member back after it was noticed), left cleanly (scaling down), or was
    noticed dead when its session timed out."""

    JOIN = 0
    LEAVE = 1
    CRASH = 2


(JOIN, LEAVE, CRASH_SEEN) = map(int, Trigger)


class Cluster(IntEnum):
    """What the ``cluster`` log records (engine.cluster): a broker down, back, or noticed
    down by the controller; a log's new leader (broker -1: none, the log unavailable);
    a broker's counters (writes as leader and as follower, busy seconds) at that time;
    writes a log lost when a new leader took over (acks: 1), their number in `appends`."""

    DOWN = 0
    UP = 1
    NOTICED = 2
    LEADER = 3
    LOAD = 4
    LOST = 5


TRIGGERS = {int(t): t.name.lower() for t in Trigger}
(C_DOWN, C_UP, C_NOTICED, C_LEADER, C_LOAD, C_LOST) = map(int, Cluster)
CLUSTER = {int(c): c.name.lower() for c in Cluster}
# A visit row's group at or below REPEAT: REPEAT - g is work by group g on a copy of a
# message whose outcome was decided elsewhere (a duplicate processing, or what a worker
# did after the broker took the message back): it counts in the queue's length and the
# group's busy time, not in waits or the message's breakdown.
REPEAT = -3
# A visit row's group for a message taken out of a line by expiry (drop-oldest uses -1).
REAPED = -2
# A finished row's component for a message lost outside any link (a consumer crash, or a
# failure under auto ack): links own indices >= 0.
NOWHERE = -2


@dataclass
class Recorder:
    """Append-only logs filled by the engine during one replication."""

    # created[id] = (producer index, send time, size in bytes); index -1: a queue backlog
    created: list[tuple[int, float, float]] = field(default_factory=list)
    # (id, time, outcome code, index of the component where it ended)
    finished: list[tuple[int, float, int, int]] = field(default_factory=list)
    # (id, queue index, arrived, left the waiting line, service end, group index)
    # left = NaN: still waiting at the end; end = NaN: not served (still in service,
    # or evicted by drop-oldest with group = -1)
    visits: list[tuple[int, int, float, float, float, int]] = field(default_factory=list)
    # (id, link index, entered, transmission start, transmission end, delivered)
    hops: list[tuple[int, int, float, float, float, float]] = field(default_factory=list)
    # (id, stage code, start, end): encoding at the sender, decoding at the receiver, the
    # reply's trip back to a waiting sender. Only filled when those features are on.
    stages: list[tuple[int, int, float, float]] = field(default_factory=list)
    # (copy id, parent id): a fan-out topic's copy of a message, which is its own message.
    copies: list[tuple[int, int]] = field(default_factory=list)
    # (group index, start, end, messages): one service of a batching consumer.
    batches: list[tuple[int, float, float, int]] = field(default_factory=list)
    # (time, group index, workers online, workers starting up): logged by groups whose
    # size changes (schedule, autoscale), at t = 0 and at every change
    workers: list[tuple[float, int, int, int]] = field(default_factory=list)
    # (id, link index, time): a message lost on a link that resends after a timeout.
    retransmits: list[tuple[int, int, float]] = field(default_factory=list)
    # (id, event code, component index, time): see EVENTS; id -1 for a crash or restart.
    events: list[tuple[int, int, int, float]] = field(default_factory=list)
    # (producer index, start, end): a producer held up by backpressure (end NaN: still).
    blocked: list[tuple[int, float, float]] = field(default_factory=list)
    # (id, stream, seq, key): the ordering stream a message belongs to (its key, or its
    # producer when it has none), its place in that stream's send order (a retry keeps
    # its first send's) and its key's index in `key_names` (-1: no key). engine.order.
    order: list[tuple[int, int, int, int]] = field(default_factory=list)
    # The text of each key, by index (filled as keys are first seen).
    key_names: list[str] = field(default_factory=list)
    # (group index, trigger code, cause time, start, end, partitions moved, partitions
    # paused, partitions stranded): one rebalance of a group on a partitioned topic. The
    # cause is the crash (for a crash noticed at `start`) or `start`; stranded partitions
    # had a crashed owner from the cause to the start. End NaN: still going at the end.
    rebalances: list[tuple[int, int, float, float, float, int, int, int]] = field(
        default_factory=list)
    # (kind, broker, log, time, appends, copies, busy): a broker cluster's events and
    # counters (see Cluster); log is the index in Scenario.logs(), -1 for a broker's row.
    cluster: list[tuple[int, int, int, float, int, int, float]] = field(default_factory=list)
    # Rows already moved into columns by compact(), per log: each column one buffer
    # that grows in place (see _append), of which the first `filled[log]` rows are used.
    cols: dict[str, dict[str, np.ndarray]] = field(
        default_factory=lambda: {name: {} for name in LAYOUT})
    filled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYOUT, 0))
    # The Records the columns were handed over to (see arrays()).
    records: Records | None = None

    def compact(self) -> None:
        """Move the rows logged so far into numpy columns and empty the lists.

        The lists are emptied in place: the engine holds their bound ``append``.
        """
        for name, (cols, kinds) in LAYOUT.items():
            rows = getattr(self, name)
            if rows:
                self._append(name, to_columns(rows, cols, kinds))
                rows.clear()

    def _append(self, name: str, new: dict[str, np.ndarray]) -> None:
        """Add a chunk's columns at the end of a log's buffers.

        A buffer grows by doubling with ``ndarray.resize``, which reallocates in place
        (a large buffer is remapped, not copied), and is cut to its rows the same way at
        the end. Joining a list of chunks instead held every row twice at the end, and
        the freed chunks stayed in the process's heap: a full-records run's resident
        memory was about twice its columns.
        """
        have = self.filled[name]
        k = len(next(iter(new.values())))
        bufs = self.cols[name]
        for c, x in new.items():
            if c not in bufs:
                bufs[c] = np.empty(max(k, 1024), dtype=x.dtype)
            elif have + k > len(bufs[c]):
                _resize(bufs, c, max(have + k, 2 * len(bufs[c])))
            bufs[c][have: have + k] = x
        self.filled[name] = have + k

    def columns(self, name: str) -> dict[str, np.ndarray]:
        """All rows of one log as columns: the compacted ones, then the list."""
        self.compact()
        cols, kinds = LAYOUT[name]
        bufs = self.cols[name]
        if not bufs:
            return to_columns([], cols, kinds)
        n = self.filled[name]
        for c in cols:
            if len(bufs[c]) != n:
                _resize(bufs, c, n)
        return dict(bufs)

    def arrays(self, t_end: float) -> Records:
        """Columns of the logs, built once, when the run is over: the Recorder hands its
        columns over to them (asking again gives the same Records)."""
        if self.records is None:
            self.records = Records.from_lists(self, t_end)
        elif self.records.t_end != t_end:
            return replace(self.records, t_end=t_end)
        return self.records

    def hand_over(self, name: str) -> dict[str, np.ndarray]:
        """All rows of one log as columns, which the Recorder then no longer holds."""
        out = self.columns(name)
        self.cols[name] = {}
        self.filled[name] = 0
        return out


def _resize(bufs: dict[str, np.ndarray], c: str, n: int) -> None:
    """Resize ``bufs[c]`` to ``n`` rows in place, or as a copy if something else holds
    it (numpy refuses to move an array that is referenced elsewhere)."""
    try:
        bufs[c].resize(n, refcheck=True)
    except ValueError:
        grown = np.empty(n, dtype=bufs[c].dtype)
        m = min(n, len(bufs[c]))
        grown[:m] = bufs[c][:m]
        bufs[c] = grown


# Column names and kinds (i: integer, f: float) of each log, in tuple order.
LAYOUT: dict[str, tuple[tuple[str, ...], str]] = {
    "created": (("producer", "sent", "size"), "iff"),
    "finished": (("id", "t", "outcome", "where"), "ifii"),
    "visits": (("id", "queue", "arrived", "left", "end", "group"), "iifffi"),
    "hops": (("id", "link", "entered", "tx_start", "tx_end", "out"), "iiffff"),
    "workers": (("t", "group", "online", "pending"), "fiii"),
    "stages": (("id", "stage", "start", "end"), "iiff"),
    "copies": (("id", "parent"), "ii"),
    "batches": (("group", "start", "end", "n"), "iffi"),
    "retransmits": (("id", "link", "t"), "iif"),
    "events": (("id", "kind", "where", "t"), "iiif"),
    "blocked": (("producer", "start", "end"), "iff"),
    "order": (("id", "stream", "seq", "key"), "iiii"),
    "rebalances": (("group", "trigger", "cause", "start", "end", "moved", "paused",
                    "stranded"), "iifffiii"),
    "cluster": (("kind", "broker", "log", "t", "appends", "copies", "busy"), "iiifiif"),
}


def to_columns(
    rows: list[tuple[Any, ...]], names: tuple[str, ...], kinds: str
) -> dict[str, np.ndarray]:
    """Tuple rows as named numpy columns (kinds: ``i`` integer, ``f`` float)."""
    # One pass through a structured dtype is several times faster than zip(*rows).
    dtype = np.dtype([(n, "i8" if k == "i" else "f8") for n, k in zip(names, kinds, strict=True)])
    table = np.fromiter(rows, dtype=dtype, count=len(rows))
    return {n: np.ascontiguousarray(table[n]) for n in names}


@dataclass
class Records:
    """The logs of one replication as numpy columns (all times in seconds)."""

    t_end: float
    producer: np.ndarray
    sent: np.ndarray
    size: np.ndarray
    done: np.ndarray  # NaN while in flight
    outcome: np.ndarray  # IN_FLIGHT while in flight
    where: np.ndarray  # component index where it ended, -1 in flight
    visits: dict[str, np.ndarray]
    hops: dict[str, np.ndarray]
    workers: dict[str, np.ndarray] = field(default_factory=dict)
    stages: dict[str, np.ndarray] = field(default_factory=dict)
    parent: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    batches: dict[str, np.ndarray] = field(default_factory=dict)
    retransmits: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, np.ndarray] = field(default_factory=dict)
    blocked: dict[str, np.ndarray] = field(default_factory=dict)
    order: dict[str, np.ndarray] = field(default_factory=dict)
    key_names: list[str] = field(default_factory=list)

    def keys(self) -> np.ndarray:
        """Each message's key index into ``key_names`` (-1: no key)."""
        out = np.full(len(self.sent), -1, dtype=np.int64)
        if self.order:
            out[self.order["id"]] = self.order["key"]
        return out
    rebalances: dict[str, np.ndarray] = field(default_factory=dict)
    cluster: dict[str, np.ndarray] = field(default_factory=dict)

    def count(self, code: int, where: int | None = None, t0: float = -np.inf,
              t1: float = np.inf) -> int:
        """How many reliability events of a kind (at one component, in [t0, t1])."""
        e = self.events
        at = (e["kind"] == code) & (e["t"] >= t0) & (e["t"] <= t1)
        if where is not None:
            at &= e["where"] == where
        return int(at.sum())

    def per_message(self, code: int) -> np.ndarray:
        """For each message, how many events of a kind it had."""
        e = self.events
        ids = e["id"][e["kind"] == code]
        return np.bincount(ids, minlength=len(self.sent)) if len(ids) else np.zeros(
            len(self.sent), dtype=np.int64)

    @classmethod
    def from_lists(cls, rec: Recorder, t_end: float) -> Records:
        take = rec.hand_over
        created = take("created")
        n = len(created["sent"])
        done = np.full(n, np.nan)
        outcome = np.full(n, IN_FLIGHT, dtype=np.int64)
        where = np.full(n, -1, dtype=np.int64)
        fin = take("finished")
        for name, to in (("t", done), ("outcome", outcome), ("where", where)):
            to[fin["id"]] = fin.pop(name)  # each column freed once spread out
        del fin
        parent = np.full(n, -1, dtype=np.int64)  # -1: an original, not a copy
        copies = take("copies")
        parent[copies["id"]] = copies["parent"]
        del copies
        return cls(t_end, created["producer"], created["sent"], created["size"], done,
                   outcome, where, take("visits"), take("hops"), take("workers"),
                   take("stages"), parent, take("batches"), take("retransmits"),
                   take("events"), take("blocked"), take("order"), list(rec.key_names),
                   take("rebalances"), take("cluster"))


def overlap(start: np.ndarray, end: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Length of each interval [start, end] inside [t0, t1]."""
    return np.asarray(np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0.0, None))


# The sorts below are stable ones (timsort for floats): the logs come nearly in time
# order, which it sorts in close to one pass; the values are the same as any sort's.


def level_at(up: np.ndarray, down: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Number of intervals [up, down) open at each time (down = NaN: never closed)."""
    up_sorted = np.sort(up, kind="stable")
    down_sorted = np.sort(np.where(np.isnan(down), np.inf, down), kind="stable")
    return np.searchsorted(up_sorted, times, side="right") - np.searchsorted(
        down_sorted, times, side="right"
    )


def level_max(up: np.ndarray, down: np.ndarray, t0: float, t1: float) -> int:
    """The largest number of intervals open at once during [t0, t1]."""
    down = np.where(np.isnan(down), np.inf, down)
    start_level = int((up <= t0).sum() - (down <= t0).sum())
    ups = np.sort(up[(up > t0) & (up <= t1)], kind="stable")
    if len(ups) == 0:
        return start_level
    downs = np.sort(down[(down > t0) & (down <= t1)], kind="stable")
    # The level peaks just after an arrival: the k-th arrival (from 1) finds start + k
    # arrivals minus the departures up to its time (a departure at the same time counts
    # first, so a hand-over never counts as waiting).
    after = np.arange(start_level + 1, start_level + 1 + len(ups))
    after -= np.searchsorted(downs, ups, side="right")
    return int(max(start_level, after.max()))
