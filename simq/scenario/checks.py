"""The rules that span components, each a function over the validated :class:`Model`.

A component's own rules live on its spec (:mod:`simq.scenario.components`); these need the
whole scenario: names and references, reliability settings that involve several
components, the routes (no message may loop forever), what a waiting sender relies on,
and time-varying load against the run. :data:`CHECKS` lists them in the order they run;
each raises :class:`~simq.errors.ScenarioError` naming the path, the rule and the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from simq.dists import Distribution
from simq.errors import ScenarioError
from simq.scenario.components import EXIT, ProducerSpec, QueueSpec, TopicSpec
from simq.scenario.model import Model
from simq.scenario.workload import check_consumer, mean_interarrival

__all__ = ["CHECKS", "run_checks"]


def references(m: Model) -> None:
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
            raise ScenarioError(f"producers.{n}.to", f"this {p.mode} sender waits for one reply; "
                                f"fan-out topic {p.to!r} makes several copies", p.to)
        if p.wants_ack and fanout is not None and len(m.topic_groups(p.to)) > 1:
            raise ScenarioError(f"producers.{n}.to", f"this {p.mode} sender waits for one reply; "
                                f"topic {p.to!r} is read by several consumer groups "
                                f"({', '.join(m.topic_groups(p.to))}), each of which "
                                "processes the message", p.to)
    for n, c in m.consumers.items():
        src = m.topics.get(c.source)
        if c.source not in m.queues and (src is None or src.partitions is None):
            raise ScenarioError(
                f"consumers.{n}.from",
                f"no queue or partitioned topic named {c.source!r} (consumers of a fan-out "
                "topic read from its subscriber queues)", c.source)
        if c.rebalance is not None and src is None:
            raise ScenarioError(
                f"consumers.{n}.rebalance", f"a rebalance hands round the partitions of a "
                f"topic; {c.source!r} is a queue, which every worker of the group shares",
                c.source)
        for pname in c.service_by or {}:
            if pname not in m.producers:
                raise ScenarioError(
                    f"consumers.{n}.service_by.{pname}", "a class is a producer: no producer "
                    f"named {pname!r} (producers: {', '.join(sorted(m.producers))})", pname)
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


def reliability(m: Model) -> None:
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
    for n, c in m.consumers.items():
        chosen = None if c.crashes is None else c.crashes.workers
        if chosen is not None:
            # With scaling, "the first N" are the oldest members at the crash (fewer if
            # the group is smaller then); N may not exceed the most it can ever have.
            most, what = c.count, "count"
            if c.autoscale is not None:
                most, what = c.autoscale.max, "autoscale.max"
            elif c.schedule and max(k for _, k in c.schedule) > c.count:
                most, what = max(k for _, k in c.schedule), "the largest count in `schedule`"
            if chosen > most:
                raise ScenarioError(f"consumers.{n}.crashes.workers",
                                    f"must be <= {what} ({most}): the group never has more "
                                    "workers to crash", chosen)
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


_REPLICATION = ("replication_factor", "acks", "min_insync_replicas")


def cluster(m: Model) -> None:
    """The replication keys need a cluster; in a cluster, brokers fail, not queues."""
    specs: list[tuple[str, QueueSpec | TopicSpec]] = [(f"queues.{n}", q)
                                                      for n, q in m.queues.items()]
    specs += [(f"topics.{n}", t) for n, t in m.topics.items() if t.partitions is not None]
    b = m.brokers
    for path, spec in specs:
        given = spec.model_fields_set
        if b is None:
            for key in _REPLICATION:
                if key in given:
                    raise ScenarioError(f"{path}.{key}", "replication needs a broker "
                                        "cluster: add a `brokers:` section (docs/cluster.md)")
            if "when_down" in given and spec.outages is None:
                raise ScenarioError(f"{path}.when_down", "`when_down` needs `outages` (when "
                                    "the broker is down) or a broker cluster (`brokers`)")
            continue
        if spec.outages is not None:
            raise ScenarioError(f"{path}.outages", "in a broker cluster a queue is down when "
                                "its leader's broker is and no replica can take over: give "
                                "the brokers' faults in `brokers.outages`")
        if spec.durability is not None:
            raise ScenarioError(f"{path}.durability", "in a broker cluster a write costs "
                                "`brokers.service` on each replica and `brokers.replication` "
                                "to reach a follower; `durability` is the cost of a queue "
                                "outside a cluster: give one of them")
        rf = spec.replication_factor or b.replication_factor
        if rf > len(b.broker_names):
            raise ScenarioError(f"{path}.replication_factor", f"needs {rf} brokers; the "
                                f"cluster has {len(b.broker_names)}", rf)
        isr = spec.min_insync_replicas
        if isr is not None and isr > rf:
            raise ScenarioError(f"{path}.min_insync_replicas", f"more than the {rf} "
                                "replicas: no write could succeed", isr)


def no_cycle(m: Model) -> None:
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


def replies(m: Model) -> None:
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
                if dest in m.topics and m.topics[dest].retention is not None:
                    raise ScenarioError(f"topics.{dest}.retention", why + "messages that "
                                        f"retention removes from topic {dest!r} would "
                                        "stall it")
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


def peak(m: Model) -> None:
    """Rules of time-varying load and capacity that span keys (docs/peak.md)."""
    if not m.producers and not any(q.backlog for q in m.queues.values()):
        raise ScenarioError("producers", "a scenario needs at least one producer "
                            "(or a queue with a backlog)")
    for n, p in m.producers.items():
        if p.mode != "sync" and p.arrivals is not None:  # its mean rate must be usable
            mean_interarrival(p.arrivals, m.run.until, f"producers.{n}.arrivals")
    for n, c in m.consumers.items():
        check_consumer(f"consumers.{n}", c.count, c.schedule, c.autoscale)
    for n, q in m.queues.items():
        if q.backlog is not None and q.backlog.count > q.capacity:
            raise ScenarioError(f"queues.{n}.backlog.count",
                                f"must be <= the queue's capacity ({q.capacity:g})",
                                q.backlog.count)


def _zero(d: Distribution | None) -> bool:
    return d is None or d.always_zero


def _link_is_instant(m: Model, key: str) -> bool:
    spec = m.links.get(key)
    if spec is None:
        return True
    owner = m.links.get(spec.shares, spec) if spec.shares is not None else spec
    return spec.latency.always_zero and math.isinf(owner.bandwidth)


def _loop_is_instant(m: Model, n: str, p: ProducerSpec) -> bool:
    """Whether a waiting sender's request comes back at the instant it left: no think
    time, encoding, link or reply delay, and every group its messages can reach serves
    (decodes, writes to disk) at once. A queue nobody drains holds the request: not
    instant (the sender stalls instead)."""
    if not (_zero(p.encode) and _zero(p.reply) and _link_is_instant(m, f"{n}->{p.to}")):
        return False
    if p.mode == "sync" and not p.think.always_zero:
        return False
    drains = m.drains()
    seen: set[str] = set()
    todo = [q for q, _ in m.resolve(p.to, n)]
    while todo:
        q = todo.pop()
        if q in seen:
            continue
        seen.add(q)
        groups = drains.get(q, [])
        spec = m.all_queues().get(q)
        durable = spec.durability if spec is not None else None
        if not groups or (durable is not None and not (
                durable.fsync.always_zero and durable.replication.always_zero)):
            return False
        for g in groups:
            c = m.consumers[g]
            if not (c.service.always_zero and _zero(c.decode) and _zero(p.service)
                    and _zero(p.decode) and all(d.always_zero
                                                 for d in (c.service_by or {}).values())):
                return False
            for dest, _ in c.routes:
                if dest is not None:
                    if not _link_is_instant(m, f"{g}->{dest}"):
                        return False
                    todo += [q2 for q2, _ in m.resolve(dest)]
    return True


def zero_gaps(m: Model) -> None:
    """Refuse what could never let time advance: a producer whose sends are all 0 s
    apart, or a waiting sender whose every round trip takes 0 s, with nothing but the end
    of the run to stop it (``run.messages`` bounds it: that is a burst at one instant)."""
    if m.run.messages is not None:
        return
    for n, p in m.producers.items():
        pace = p.pace
        zero_pace = pace is not None and pace.always_zero and p.varying_load is None
        if p.mode == "async" and zero_pace:
            raise ScenarioError(
                f"producers.{n}.interarrival", "is always 0: the producer would send "
                "forever at one instant and time would never reach run.until; give it a "
                "positive mean (or bound the run with run.messages)", str(pace))
        if p.waits_for_reply and (pace is None or zero_pace) and _loop_is_instant(m, n, p):
            raise ScenarioError(
                f"producers.{n}", f"this {p.mode} sender's round trip takes no time (no "
                "think time, link latency, reply latency or service along the way): it "
                "would send forever at one instant and time would never reach run.until; "
                "give one of them a positive mean (or bound the run with run.messages)")


#: Every cross-component rule, in the order it is checked.
CHECKS: tuple[Callable[[Model], None], ...] = (references, reliability, cluster, no_cycle,
                                               replies, peak, zero_gaps)


def run_checks(m: Model) -> None:
    """Apply every rule of :data:`CHECKS` to ``m`` (the first broken one raises)."""
    for check in CHECKS:
        check(m)
