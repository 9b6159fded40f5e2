"""The fast engine: a network of FIFO stations computed by recursions over arrays.

A scenario whose every component is a first-come-first-served station (open producers, one
consumer group of ``c`` workers per unbounded FIFO queue, links that serialize at a
bandwidth and add a latency, feed-forward routing) needs no event list: each station's
service starts follow from its arrivals by the recursion the SimPy engine's events carry
out one by one,

    start[n] = max(arrived[n], earliest free worker),   end[n] = start[n] + service[n]

(Lindley's for one worker, Kiefer and Wolfowitz's for ``c``), station after station in
topological order, a station's arrivals being the merged departures of what feeds it.

It draws every variate from the same named streams, in the same order, with the same
block sampler as the SimPy engine, and does the same floating-point operations in the
same order (a sequential loop, compiled by numba when it is installed, plain Python
otherwise: the same IEEE operations either way), so on the same seed it writes the same
:class:`~simq.engine.recorder.Records` as :class:`~simq.engine.simulation.Simulation`, to
the bit (``tests/test_fast.py`` checks every eligible bundled model). What it cannot run
it names: :func:`why_not` gives the first component that is not a FIFO station, which
``run.engine: auto`` reports in ``summary["engine"]``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from simq.dists import BLOCK, Constant, Distribution
from simq.engine import arrivals
from simq.engine.core import Streams
from simq.engine.recorder import DELIVERED, IN_FLIGHT, LAYOUT, LOST, Records, to_columns
from simq.engine.simulation import Outcome
from simq.scenario import Scenario
from simq.scenario.components import AsyncProducer

__all__ = ["FastRun", "why_not"]



def why_not(sc: Scenario) -> str | None:
    """Why the fast engine cannot run ``sc`` (the first component that is not a FIFO
    station in a feed-forward network, named by its dotted path), or None when it can."""
    if sc.brokers is not None:
        return "brokers: a broker cluster elects leaders and replicates as events"
    if sc.topics:
        return f"topics.{next(iter(sc.topics))}: a topic's partitions and groups"
    for name, p in sc.producers.items():
        key = f"producers.{name}"
        if p.mode != "async":
            return f"{key}.mode: a {p.mode} producer waits for replies"
        if p.keyed:
            return f"{key}.keys: keys"
        for field, what in (("encode", "an encoding step"), ("batch_size", "batching"),
                            ("ttl", "a time-to-live"), ("timeout", "a send timeout"),
                            ("credits", "flow control"), ("retry", "retries"),
                            ("keys", "keys"), ("service", "a class service time"),
                            ("decode", "a class decode time")):
            if getattr(p, field) not in (None, False):
                return f"{key}.{field}: {what}"
        if p.idempotent:
            return f"{key}.idempotent: an idempotent producer's broker door"
        if p.to not in sc.queues:
            return f"{key}.to: {p.to!r} is not a queue"
    drains = sc.drains()
    for name, q in sc.queues.items():
        key = f"queues.{name}"
        if q.capacity != math.inf:
            return f"{key}.capacity: a bounded queue drops or blocks"
        if q.discipline != "fifo":
            return f"{key}.discipline: {q.discipline} is not first-come-first-served"
        for field, what in (("backlog", "a starting backlog"), ("ttl", "a time-to-live"),
                            ("dead_letter", "a dead-letter queue"), ("outages", "outages"),
                            ("durability", "disk writes")):
            if getattr(q, field) is not None:
                return f"{key}.{field}: {what}"
        if len(drains[name]) > 1:
            return f"{key}: read by {len(drains[name])} consumer groups"
    for name, c in sc.consumers.items():
        key = f"consumers.{name}"
        if c.source not in sc.queues:
            return f"{key}.from: {c.source!r} is not a queue"
        if sc.has_classes(name):
            return f"{key}.service_by: service by message class"
        for field, what in (("schedule", "a schedule of workers"), ("autoscale", "autoscaling"),
                            ("decode", "a decoding step"), ("prefetch", "prefetch"),
                            ("visibility_timeout", "a visibility timeout"),
                            ("slow", "slow workers"), ("max_attempts", "redeliveries"),
                            ("backoff", "redelivery backoff"), ("crashes", "crashes"),
                            ("rebalance", "rebalancing")):
            if getattr(c, field) is not None:
                return f"{key}.{field}: {what}"
        if c.batch != 1:
            return f"{key}.batch: batches"
        if c.ack != "auto" or c.failure or c.poison or c.dedup:
            return f"{key}: acknowledgements, failures or deduplication"
    for name, link in sc.links.items():
        key = f"links.{name}"
        src = name.partition("->")[0]
        if src in sc.queues:
            return f"{key}: a fetch link of a prefetching consumer"
        if link.retransmit is not None:
            return f"{key}.retransmit: resends after a timeout"
        if link.shares is not None:
            return f"{key}.shares: a wire shared by two links"
        if link.partitions is not None:
            return f"{key}.partitions: network partitions"
    if _order(sc) is None:
        return "consumers: routes that lead back to an earlier queue (feedback)"
    return None


def _order(sc: Scenario) -> list[str] | None:
    """The queues in topological order (every queue after the ones that feed it), or
    None when routes go round in a loop."""
    reader = {c.source: name for name, c in sc.consumers.items()}
    feeds: dict[str, set[str]] = {q: set() for q in sc.queues}
    for q, g in reader.items():
        for dest, _ in sc.consumers[g].routes:
            if dest is not None:
                feeds[dest].add(q)
    done: list[str] = []
    left = dict(feeds)
    while left:
        ready = [q for q, f in left.items() if not f - set(done)]
        if not ready:
            return None
        for q in ready:  # scenario order among the ready ones
            done.append(q)
            del left[q]
    return done


# The recursions ------------------------------------------------------------------------
# Plain Python over lists, written so that numba can compile the same source: the same
# operations in the same order give the same bits compiled or not.

def _serve_one(arrived: Any, service: Any, start: Any, end: Any) -> None:
    """One worker (Lindley): a message starts when it arrives or when the one before ends."""
    free = -math.inf
    for n in range(len(arrived)):
        a = arrived[n]
        s = a if a >= free else free
        free = s + service[n]
        start[n] = s
        end[n] = free


def _serve_many(arrived: Any, service: Any, workers: int, start: Any, end: Any) -> None:
    """``workers`` workers (Kiefer-Wolfowitz): a message starts when it arrives or when
    the earliest of the workers is free, and takes that worker."""
    free = [-math.inf] * workers  # a heap of the times the workers are free
    for n in range(len(arrived)):
        a = arrived[n]
        f = free[0]
        s = a if a >= f else f
        e = s + service[n]
        heapq.heapreplace(free, e)
        start[n] = s
        end[n] = e


def _compiled() -> tuple[Callable[..., None], Callable[..., None]]:
    """The two loops compiled by numba when it is installed (the ``fast`` extra)."""
    try:
        import numba
    except ImportError:
        return _serve_one, _serve_many
    jit = numba.njit(cache=True, nogil=True)
    return jit(_serve_one), jit(_serve_many)


_LOOPS: tuple[Callable[..., None], Callable[..., None]] | None = None
# Importing numba and loading the compiled loops costs about 0.6 s, what the Python loops
# take for about 2 million messages: a process compiles once it has served that many (a
# long run, or a sweep's worker a few points in), and keeps the compiled loops after.
COMPILE_FROM = 2_000_000
_served = 0


def fifo(arrived: np.ndarray, service: np.ndarray, workers: int) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Service starts and ends of messages arriving at ``arrived`` (in order) at a FIFO
    station of ``workers`` workers taking ``service`` each."""
    global _LOOPS, _served
    n = len(arrived)
    start, end = np.empty(n), np.empty(n)
    _served += n
    if _LOOPS is None and _served >= COMPILE_FROM:
        _LOOPS = _compiled()
    one, many = (_serve_one, _serve_many) if _LOOPS is None else _LOOPS
    if one is _serve_one:  # Python: lists are several times faster to index than arrays
        a, s = arrived.tolist(), service.tolist()
        st, en = [0.0] * n, [0.0] * n
        if workers == 1:
            _serve_one(a, s, st, en)
        else:
            _serve_many(a, s, workers, st, en)
        start[:], end[:] = st, en
    elif workers == 1:
        one(arrived, service, start, end)
    else:
        many(arrived, service, workers, start, end)
    return start, end


# Draws ---------------------------------------------------------------------------------

def variates(streams: Streams, key: str, dist: Distribution, n: int) -> np.ndarray:
    """The first ``n`` variates the SimPy engine's sampler of ``dist`` on stream ``key``
    gives (engine.core.Streams.draw): the same blocks from the same generator."""
    if isinstance(dist, Constant):
        return np.full(n, float(dist.value))
    rng = streams.generator(key)
    blocks = [dist.sample(rng, BLOCK) for _ in range(-(-n // BLOCK))]
    return np.concatenate(blocks)[:n] if blocks else np.zeros(0)


def uniforms(streams: Streams, key: str, n: int) -> np.ndarray:
    """The first ``n`` coin flips of Streams.uniform(key)."""
    rng = streams.generator(key)
    blocks = [rng.random(BLOCK) for _ in range(-(-n // BLOCK))]
    return np.concatenate(blocks)[:n] if blocks else np.zeros(0)


class _Clock:
    """What a time-varying arrival process reads: the producer's clock."""

    def __init__(self, now: float) -> None:
        self.now = now


# The run -------------------------------------------------------------------------------

class _Flow:
    """Messages on their way to a station: their ids and the times they get there."""

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []
        self.times: list[np.ndarray] = []

    def add(self, ids: np.ndarray, times: np.ndarray) -> None:
        self.ids.append(ids)
        self.times.append(times)

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything that came, in the order it came (ties: the order it was added)."""
        if not self.ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if len(self.ids) == 1 and not (np.diff(self.times[0]) < 0).any():
            return self.ids[0], self.times[0]  # one producer's sends: in order already
        ids, times = np.concatenate(self.ids), np.concatenate(self.times)
        order = np.argsort(times, kind="stable")
        return ids[order], times[order]


class FastRun:
    """One replication of an eligible scenario (see :func:`why_not`) on the fast engine."""

    def __init__(self, scenario: Scenario, seed: np.random.SeedSequence) -> None:
        reason = why_not(scenario)
        if reason is not None:
            raise ValueError(f"the fast engine cannot run this scenario: {reason}")
        self.scenario = scenario
        self.streams = Streams(seed)
        self.until = math.inf if scenario.run.until is None else scenario.run.until
        self._links = list(scenario.links)

    # Producers ---------------------------------------------------------------------------
    def _sends(self, name: str, limit: float) -> tuple[np.ndarray, float]:
        """A producer's send times before its stop, at most ``limit`` of them, and the time
        it would send next (its process's last event: inf when there is none)."""
        p = self.scenario.producers[name]
        assert isinstance(p, AsyncProducer)  # why_not: every producer is open
        key = f"producers.{name}"
        stop = math.inf if p.stop is None else p.stop
        clock = _Clock(p.start)
        if p.arrivals is not None:
            gap, end = arrivals.build(p.arrivals, clock, self.streams, key)
            if end is not None:
                stop = min(stop, end)
            horizon = min(stop, self.until)
            times: list[float] = []
            while len(times) < limit:
                t = clock.now + gap()
                if not t < horizon:
                    return np.asarray(times), t
                times.append(t)
                clock.now = t
            return np.asarray(times), clock.now + gap()
        dist = p.interarrival
        horizon = min(stop, self.until)
        rng = self.streams.generator(f"{key}.interarrival")  # a constant never draws
        chunks: list[np.ndarray] = []
        t, count = p.start, 0
        while True:
            gaps = (np.full(BLOCK, float(dist.value)) if isinstance(dist, Constant)
                    else dist.sample(rng, BLOCK))
            # now + gap, one after the other: a cumulative sum adds in the same order.
            block = np.cumsum(np.concatenate(([t], gaps)))[1:]
            keep = int(np.searchsorted(block, horizon, side="left"))
            keep = int(min(keep, limit - count))
            chunks.append(block[:keep])
            count += keep
            if keep < BLOCK:
                return np.concatenate(chunks), float(block[keep])
            t = float(block[-1])

    def run(self, progress: Callable[[float], None] | None = None
            ) -> tuple[Records, Outcome]:
        """The replication's records and how it ended; ``progress(done)`` is told the
        fraction done after the sends and after each station (never 1)."""
        sc, streams, until = self.scenario, self.streams, self.until
        limit = math.inf if sc.run.messages is None else sc.run.messages
        names = list(sc.producers)
        sends, nexts = [], []
        for name in names:
            times, after = self._sends(name, limit)
            sends.append(times)
            nexts.append(after)
        producer = np.concatenate([np.full(len(t), i, dtype=np.int64)
                                   for i, t in enumerate(sends)])
        sent = np.concatenate(sends) if sends else np.zeros(0)
        seq = np.concatenate([np.arange(len(t), dtype=np.int64) for t in sends])
        size = np.concatenate([variates(streams, f"producers.{n}.size",
                                        sc.producers[n].size, len(t))
                               for n, t in zip(names, sends, strict=True)])
        by_time = np.argsort(sent, kind="stable")  # ids in the order of sending
        if len(by_time) > limit:
            # The first `limit` sends of all producers: a producer whose turn comes after
            # that stops at its next send.
            for i in range(len(names)):
                late = by_time[int(limit):][producer[by_time[int(limit):]] == i]
                if len(late):
                    nexts[i] = float(sent[late].min())
            by_time = by_time[: int(limit)]
        producer, sent, seq, size = (x[by_time] for x in (producer, sent, seq, size))
        n = len(sent)
        ids = np.arange(n, dtype=np.int64)
        done = np.full(n, np.nan)
        outcome = np.full(n, IN_FLIGHT, dtype=np.int64)
        where = np.full(n, -1, dtype=np.int64)
        flows = {q: _Flow() for q in sc.queues}
        visits: list[dict[str, np.ndarray]] = []
        hops: list[dict[str, np.ndarray]] = []
        latest = [0.0]

        def arrive(src: str, dest: str | None, who: np.ndarray, at: np.ndarray) -> None:
            """``who`` leave ``src`` at ``at`` (in order) for queue ``dest`` (None: out)."""
            if dest is None:
                return
            key = f"{src}->{dest}"
            if key in sc.links:
                who, at = self._link(key, who, at, size, done, outcome, where, hops, latest)
            flows[dest].add(who, at)

        for i, name in enumerate(names):
            mine = ids[producer == i]
            arrive(name, sc.producers[name].to, mine, sent[mine])
        stations = _order(sc) or []
        if progress is not None:
            progress(1 / (len(stations) + 1))
        queue_index = {q: k for k, q in enumerate(sc.queues)}
        group_of = {c.source: (g, k) for k, (g, c) in enumerate(sc.consumers.items())}
        for k, q in enumerate(stations):
            if progress is not None and k:
                progress((k + 1) / (len(stations) + 1))
            who, at = flows[q].merged()
            inside = at < until
            who, at = who[inside], at[inside]
            qi = queue_index[q]
            if q not in group_of:  # nobody reads it: everything waits
                visits.append(_visits(who, qi, at, np.full(len(who), np.nan),
                                      np.full(len(who), np.nan), -1))
                continue
            g, gi = group_of[q]
            c = sc.consumers[g]
            start, end = fifo(at, variates(streams, f"consumers.{g}.service", c.service,
                                           len(at)), c.count)
            began, ended = start < until, end < until
            visits.append(_visits(who, qi, at, np.where(began, start, np.nan),
                                  np.where(ended, end, np.nan), gi))
            if ended.any():
                latest[0] = max(latest[0], float(end[ended].max()))
            # What a worker finished goes on, in the order the work ended.
            order = np.argsort(end[ended], kind="stable")
            out, t = who[ended][order], end[ended][order]
            routes = c.routes
            if len(routes) > 1:
                cumulative = np.cumsum([p for _, p in routes])
                cumulative[-1] = np.inf  # rounding never sends a message nowhere
                pick = np.searchsorted(cumulative, uniforms(streams, f"consumers.{g}.route",
                                                            len(out)), side="right")
            else:
                pick = np.zeros(len(out), dtype=np.int64)
            for r, (dest, _) in enumerate(routes):
                chosen = pick == r
                if dest is None:
                    done[out[chosen]] = t[chosen]
                    outcome[out[chosen]] = DELIVERED
                    where[out[chosen]] = gi
                else:
                    arrive(g, dest, out[chosen], t[chosen])
        t_end = until if until < math.inf else max(
            [latest[0], *(x for x in nexts if x < math.inf)])
        empty = {log: to_columns([], *LAYOUT[log]) for log in LAYOUT}
        records = Records(
            t_end, producer, sent, size, done, outcome, where,
            visits=_joined(visits, "visits", "end"), hops=_joined(hops, "hops", "entered"),
            workers=empty["workers"], stages=empty["stages"],
            parent=np.full(n, -1, dtype=np.int64), batches=empty["batches"],
            retransmits=empty["retransmits"], events=empty["events"],
            blocked=empty["blocked"],
            order={"id": ids, "stream": producer.copy(), "seq": seq,
                   "key": np.full(n, -1, dtype=np.int64)},
            key_names=[], rebalances=empty["rebalances"], cluster=empty["cluster"])
        if sc.run.messages is not None:
            t_stop = float(sent.max()) if n else t_end
            t_stop = min(t_stop, until)
        else:
            t_stop = t_end
        return records, Outcome(t_end, t_stop, int((outcome == IN_FLIGHT).sum()))

    def _link(self, key: str, who: np.ndarray, at: np.ndarray, size: np.ndarray,
              done: np.ndarray, outcome: np.ndarray, where: np.ndarray,
              hops: list[dict[str, np.ndarray]], latest: list[float]
              ) -> tuple[np.ndarray, np.ndarray]:
        """Messages ``who`` entering link ``key`` at ``at``: the ones it loses end there;
        the others serialize one after another and arrive a latency later."""
        spec, streams, until = self.scenario.links[key], self.streams, self.until
        index = self._links.index(key)
        order = np.argsort(at, kind="stable")
        who, at = who[order], at[order]
        inside = at < until
        who, at = who[inside], at[inside]
        if spec.loss:
            lost = uniforms(streams, f"links.{key}.loss", len(who)) < spec.loss
            done[who[lost]] = at[lost]
            outcome[who[lost]] = LOST
            where[who[lost]] = index
            who, at = who[~lost], at[~lost]
        if math.isinf(spec.bandwidth):
            tx_start = tx_end = at
        else:
            tx_start, tx_end = fifo(at, size[who] / spec.bandwidth, 1)
        out = tx_end + variates(streams, f"links.{key}.latency", spec.latency, len(who))
        hops.append({"id": who, "link": np.full(len(who), index, dtype=np.int64),
                     "entered": at, "tx_start": tx_start, "tx_end": tx_end, "out": out})
        if len(out):
            latest[0] = max(latest[0], float(out.max()))
        return who, out


def _visits(who: np.ndarray, qi: int, arrived: np.ndarray, left: np.ndarray,
            end: np.ndarray, gi: int) -> dict[str, np.ndarray]:
    """A station's visit rows; one still waiting at the end belongs to no group yet."""
    group = np.where(np.isnan(left), -1, gi).astype(np.int64)
    return {"id": who, "queue": np.full(len(who), qi, dtype=np.int64), "arrived": arrived,
            "left": left, "end": end, "group": group}


def _joined(parts: Sequence[dict[str, np.ndarray]], log: str, by: str) -> dict[str, np.ndarray]:
    """One log's rows from every station in the order the SimPy engine logs them: by the
    time ``by`` of each row (open rows, NaN, last). Each row is whole whatever its place,
    but sums over a log add in its order: the same order gives the same bits. The rows
    come in runs already in order, which a stable sort (timsort) merges in about a pass."""
    if not parts:
        return to_columns([], *LAYOUT[log])
    cols = ({c: np.concatenate([p[c] for p in parts]) for c in LAYOUT[log][0]}
            if len(parts) > 1 else dict(parts[0]))
    key = cols[by]
    order = np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")
    if (np.diff(order) == 1).all():
        return cols
    return {c: x[order] for c, x in cols.items()}
