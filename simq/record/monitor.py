"""A watcher beside the model: empties the logs a chunk at a time, samples levels.

It reads the engine's state and never changes it, so a run with or without it follows the
same path (its own events only interleave with the model's; random streams are per
component).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sized

import numpy as np
from simpy.events import ProcessGenerator

from simq.engine import Simulation
from simq.model.network import flows

__all__ = ["CHUNK", "Monitor", "sample_interval"]

CHUNK = 65_536  # log rows held before they are compacted or folded: about 6 MB of tuples


def sample_interval(sim: Simulation, points: int) -> float:
    """About ``points`` regular times over the run: `until`, or the time N messages take
    at the nominal rate (a guess; :class:`Monitor` halves its rate if the run is longer)."""
    spec = sim.scenario.run
    span = spec.until
    if span is None:
        rate = flows(sim.scenario).generation_rate
        assert spec.messages is not None  # the schema asks for until or messages
        span = spec.messages / rate if rate > 0 and math.isfinite(rate) else 1.0
    return span / (points - 1)


class Monitor:
    """One process that wakes at regular times: calls ``on_full()`` when the logs hold
    ``chunk`` rows; with ``sample=True`` also records queue lengths, busy workers and
    messages in flight; at time ``mark`` calls ``on_mark()`` once; at every wake-up
    calls ``progress(fraction done)`` (it adds no wake-up of its own).

    It must never extend the run: without ``until``, ``env.run()`` ends at the model's last
    event. So in a run that stops after N messages, the monitor stops once no producer
    can send any more; what the drain logs stays in the lists (it is bounded by what is
    inside the system then, which is in memory anyway).
    """

    def __init__(self, sim: Simulation, interval: float, on_full: Callable[[], None], *,
                 produced: Callable[[], int], finished: Callable[[], int],
                 chunk: int = CHUNK, sample: bool = False, points: int = 1000,
                 mark: float | None = None, on_mark: Callable[[], None] | None = None,
                 busy: tuple[list[str], Callable[[], list[float]]] | None = None,
                 progress: Callable[[float], None] | None = None) -> None:
        self.sim = sim
        self.progress = progress
        self.interval = interval
        self.on_full = on_full
        self.produced = produced
        self.finished = finished
        self.chunk = chunk
        self.sampling = sample
        self.points = points
        self.mark = mark
        self.on_mark = on_mark
        self.next_sample = 0.0
        self.samples: list[list[float]] = []
        if busy is None:
            busy = ([f"consumer.{n}.busy" for n in sim.groups],
                    lambda: [float(g.busy()) for g in sim.groups.values()])
        self._busy = busy[1]
        # Every link of the scenario; a broker->consumer link of prefetching consumers is
        # one Link per consumer (sim.fetch_links, made as consumers join).
        self._links = list(sim.scenario.links)
        self.columns = (["time", "in_flight"]
                        + [f"queue.{n}.length" for n in sim.queues]
                        + busy[0]
                        + [f"link.{n}.in_transit" for n in sim.scenario.links])
        sim.env.process(self._run())

    def sample(self) -> None:
        """Record the levels now; past 2 x points samples, keep every other one."""
        sim = self.sim
        row = [float(sim.env.now), float(self.produced() - self.finished())]
        row += [float(len(q.items)) for q in sim.queues.values()]
        row += self._busy()
        for name in self._links:
            lk = sim.links.get(name)
            row.append(float(lk.in_transit) if lk is not None else
                       float(sum(p.in_transit for p in sim.fetch_links if p.name == name)))
        self.samples.append(row)
        if len(self.samples) >= 2 * self.points:  # run longer than guessed: halve the rate
            self.samples = self.samples[::2]
            self.interval *= 2
        # The next point of the regular grid the kept samples lie on.
        self.next_sample = max(self.samples[-1][0] + self.interval, float(sim.env.now))

    def _sending_over(self) -> bool:
        """True when the run has no `until` and no producer will send again."""
        spec = self.sim.scenario.run
        if spec.until is not None:
            return False  # env.run(until) ends at `until` whatever is scheduled
        now = self.sim.env.now
        return (self.sim.sent[0] >= (spec.messages or 0)
                or all(now >= p.stop for p in self.sim.producers.values()))

    def _run(self) -> ProcessGenerator:
        env = self.sim.env
        rec = self.sim.rec
        # Every log but the worker counts (one row per change, kept whole).
        logs: list[Sized] = [rec.created, rec.finished, rec.visits, rec.hops, rec.stages,
                             rec.copies, rec.batches, rec.retransmits, rec.events, rec.blocked]
        while True:
            now = env.now
            if self.mark is not None and now >= self.mark:
                if self.on_mark is not None:
                    self.on_mark()
                self.mark = None
            if now >= self.next_sample:
                if self.sampling:
                    self.sample()
                else:
                    self.next_sample = now + self.interval
            if sum(map(len, logs)) >= self.chunk:
                self.on_full()
            if self.progress is not None:
                self.progress(self.done())
            # Nothing else scheduled but background sleeps: the model has ended (e.g. its
            # producers wait on replies that never come).
            if self._sending_over() or self.sim.daemons.only_left():
                return
            wake = self.next_sample if self.mark is None else min(self.next_sample, self.mark)
            yield env.timeout(wake - now)

    def done(self) -> float:
        """The fraction of the run behind it: simulated time of `until`, or messages sent
        of `messages`."""
        spec = self.sim.scenario.run
        if spec.until is not None:
            return min(1.0, float(self.sim.env.now) / spec.until) if spec.until > 0 else 1.0
        return min(1.0, self.sim.sent[0] / spec.messages) if spec.messages else 1.0

    def timeseries(self) -> dict[str, np.ndarray]:
        """The samples as columns (the names of :func:`simq.record.summary.timeseries_columns`)."""
        table = np.array(self.samples, dtype=float).reshape(-1, len(self.columns))
        return {c: table[:, i] for i, c in enumerate(self.columns)}
