"""Streaming statistics (``run.records: summary``): the summary without per-message records.

The engine's hot path is the same as in full mode: it appends tuples to the Recorder's
lists. A monitor process folds those lists into accumulators whenever they hold a chunk of
rows, then clears them, so memory stays flat however many messages a run sends:

- counts by outcome, and sums for every mean;
- time-weighted areas (a waiting or busy interval clipped to the window is additive);
- log-bucketed histograms for percentiles (:class:`LogHistogram`, relative error at most
  ``HISTOGRAM_ERROR``);
- the longest line from the queue's own record of new lengths (``Queue.peaks``);
- queue lengths, busy workers and messages in flight sampled at regular times, which give
  the time series and the growth rate.

A row is folded only once every window condition about it is decided: all its times are
before the *horizon*, a time the end of the measurement window cannot precede (now, or the
last send when the run stops after N messages). Later rows, and messages still waiting or
in service, stay in the lists until the end of the run, when everything is folded with
the real window. Counts, means and areas therefore equal full mode's (means up to
floating-point summation order); percentiles are within the histogram's error; the growth
rate is fitted to the samples instead of 201 exact levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from simq.engine import Outcome, Simulation
from simq.errors import ScenarioError
from simq.monitor import CHUNK, Monitor, sample_interval
from simq.peak import workers_at
from simq.record import (
    DEAD_LETTERED,
    DELIVERED,
    DROPPED,
    EXPIRED,
    LAYOUT,
    LOST,
    Recorder,
    overlap,
    to_columns,
)
from simq.scenario import Scenario
from simq.stats import slope

__all__ = ["HISTOGRAM_ERROR", "LogHistogram", "StreamStats", "run_full", "run_streaming"]

# Buckets [LO·g^k, LO·g^(k+1)) with g = 1 + REL_WIDTH. A quantile is read as the bucket's
# geometric midpoint, at most a factor sqrt(g) from any value in the bucket.
REL_WIDTH = 0.01
HISTOGRAM_ERROR = math.sqrt(1 + REL_WIDTH) - 1  # 0.499%: relative error of a percentile
_LO, _HI = 1e-9, 1e12  # seconds; values outside fall in the end buckets (min/max are exact)
_LOG_G = math.log1p(REL_WIDTH)
_NBUCKETS = math.ceil(math.log(_HI / _LO) / _LOG_G)


class LogHistogram:
    """Non-negative values (times) in logarithmic buckets, with exact count, sum, min, max.

    ``quantile`` matches ``numpy.quantile`` (linear interpolation between order
    statistics) within a relative error of ``HISTOGRAM_ERROR`` for values between 1 ns
    and 1e12 s: each order statistic is replaced by its bucket's midpoint, and the
    interpolation keeps the error of its two ends. Exact zeros (a hand-over) are exact.
    """

    def __init__(self) -> None:
        self.zeros = 0
        self.counts = np.zeros(_NBUCKETS, dtype=np.int64)
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        self.n += len(x)
        self.total += float(x.sum())
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        pos = x[x > 0]
        self.zeros += len(x) - len(pos)
        k = np.floor(np.log(pos / _LO) / _LOG_G).astype(np.int64)
        np.clip(k, 0, _NBUCKETS - 1, out=k)
        self.counts += np.bincount(k, minlength=_NBUCKETS)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def _order_stat(self, j: int, cum: np.ndarray) -> float:
        """The j-th smallest value (0-based), to within the bucket error."""
        if j < self.zeros:
            return 0.0
        k = int(np.searchsorted(cum, j - self.zeros, side="right"))
        mid = _LO * math.exp((k + 0.5) * _LOG_G)
        return min(max(mid, self.min), self.max)

    def quantile(self, q: float) -> float:
        if self.n == 0:
            return math.nan
        h = (self.n - 1) * q
        lo = math.floor(h)
        cum = np.cumsum(self.counts)
        a = self._order_stat(lo, cum)
        if h == lo:
            return a
        b = self._order_stat(lo + 1, cum)
        return a + (h - lo) * (b - a)


@dataclass
class _QueueAcc:
    wait: LogHistogram = field(default_factory=LogHistogram)
    area: float = 0.0  # integral of the number waiting over the window
    entered: int = 0
    evicted: int = 0  # drop-oldest evictions in the window
    dropped: int = 0  # dropped at this queue in the window
    expired: int = 0  # expired at this queue in the window


@dataclass
class _GroupAcc:
    busy: float = 0.0
    ended: int = 0
    service_total: float = 0.0
    service_n: int = 0


@dataclass
class _LinkAcc:
    delay_total: float = 0.0
    delay_n: int = 0
    tx_area: float = 0.0
    lost: int = 0
    retransmitted: int = 0


# Logs whose statistics (the latency breakdown, duplicates) summary mode does not keep.
_NOT_STREAMED = ("stages", "copies", "batches", "events")


def _take(rows: list[tuple[Any, ...]], log: str,
          last: Callable[[dict[str, np.ndarray]], np.ndarray],
          horizon: float) -> dict[str, np.ndarray] | None:
    """Remove from a log the rows whose last time is before ``horizon``; their columns.

    The list is edited in place: the engine holds its bound ``append``.
    """
    if not rows:
        return None
    names, kinds = LAYOUT[log]
    cols = to_columns(rows, names, kinds)
    if horizon == math.inf:
        rows.clear()
        return cols
    ready = last(cols) < horizon
    if ready.all():
        rows.clear()
        return cols
    rows[:] = [rows[i] for i in np.flatnonzero(~ready).tolist()]
    return {k: x[ready] for k, x in cols.items()}


class StreamStats:
    """Accumulators for one replication, fed chunk by chunk from a Recorder."""

    def __init__(self, sc: Scenario, t0: float) -> None:
        self.t0 = t0
        self.produced = 0
        self.finished = 0
        self.outcomes = np.zeros(5, dtype=np.int64)  # by outcome code, whole run
        self.offered = 0  # sent in the window
        self.delivered_in_window = 0
        self.latency = LogHistogram()
        self.queues = [_QueueAcc() for _ in sc.queues]
        self.groups = [_GroupAcc() for _ in sc.consumers]
        self.links = [_LinkAcc() for _ in sc.links]
        # Send times of messages from id `_base` on, kept until their outcome is known.
        self._base = 0
        self._sent = np.empty(0)
        self._backlog = np.empty(0, dtype=bool)  # waiting at time 0 (producer -1)
        self._open = np.empty(0, dtype=bool)

    # Folding ---------------------------------------------------------------------------
    def fold(self, rec: Recorder, horizon: float, t1: float = math.inf,
             t_end: float = math.inf) -> None:
        """Fold every row whose times are all before ``horizon``; keep the others.

        Mid-run, ``t1`` and ``t_end`` are unknown; rows before the horizon never need them
        (the window cannot close before the horizon, and their intervals are closed).
        """
        t0 = self.t0
        for log in _NOT_STREAMED:
            if getattr(rec, log):
                raise ScenarioError(
                    "run.records", "summary (streaming) mode does not cover codec stages, "
                    "batches, duplicated messages or reliability events yet; use "
                    "run.records: full", "summary")
        # Per-producer figures (blocked time among them) are not kept in this mode.
        rec.blocked.clear()
        c = _take(rec.created, "created", lambda c: c["sent"], horizon)
        if c is not None:
            sent = c["sent"]
            backlog = c["producer"] < 0
            self.produced += len(sent)
            self.offered += int(self._in_window(sent, backlog, t1).sum())
            self._sent = np.concatenate([self._sent, sent])
            self._backlog = np.concatenate([self._backlog, backlog])
            self._open = np.concatenate([self._open, np.ones(len(sent), dtype=bool)])

        f = _take(rec.finished, "finished", lambda c: c["t"], horizon)
        if f is not None:
            ids = f["id"] - self._base
            t, code, where = f["t"], f["outcome"], f["where"]
            sent, backlog = self._sent[ids], self._backlog[ids]
            self._open[ids] = False
            self.finished += len(ids)
            self.outcomes += np.bincount(code, minlength=5)[:5]
            done_in = (t >= t0) & (t <= t1)
            delivered = code == DELIVERED
            self.delivered_in_window += int((delivered & done_in).sum())
            self.latency.add((t - sent)[delivered & self._in_window(sent, backlog, t1)])
            for qi, acc in enumerate(self.queues):
                acc.dropped += int(((code == DROPPED) & (where == qi) & done_in).sum())
                acc.expired += int(((code == EXPIRED) & (where == qi) & done_in).sum())
            for li, lacc in enumerate(self.links):
                lacc.lost += int(((code == LOST) & (where == li) & done_in).sum())
            self._forget_finished()

        def visit_end(c: dict[str, np.ndarray]) -> np.ndarray:
            # Still waiting (left NaN) or still in service (end NaN with a worker) wait for
            # t_end; an eviction's end is NaN for good.
            left = np.where(np.isnan(c["left"]), np.inf, c["left"])
            end = np.where(np.isnan(c["end"]), np.where(c["group"] >= 0, np.inf, -np.inf),
                           c["end"])
            return np.fmax(left, end)

        v = _take(rec.visits, "visits", visit_end, horizon)
        if v is not None:
            self._fold_visits(v, t1, t_end)
        r = _take(rec.retransmits, "retransmits", lambda c: c["t"], horizon)
        if r is not None:
            resent = (r["t"] >= t0) & (r["t"] <= t1)
            for li, lacc in enumerate(self.links):
                lacc.retransmitted += int((resent & (r["link"] == li)).sum())
        h = _take(rec.hops, "hops", lambda c: np.fmax(c["tx_end"], c["out"]), horizon)
        if h is not None:
            link, entered = h["link"], h["entered"]
            tx = overlap(h["tx_start"], h["tx_end"], t0, t1)
            inw = (entered >= t0) & (entered < t1)
            delay = h["out"] - entered
            for li, lacc in enumerate(self.links):
                at = link == li
                lacc.tx_area += float(tx[at].sum())
                lacc.delay_total += float(delay[at & inw].sum())
                lacc.delay_n += int((at & inw).sum())

    def _in_window(self, sent: np.ndarray, backlog: np.ndarray, t1: float) -> np.ndarray:
        """Sent in [t0, t1); without a warm-up a starting backlog belongs too (as in
        :func:`simq.summary.summarise`)."""
        inside = (sent >= self.t0) & (sent < t1)
        return inside | backlog if self.t0 <= 0 else inside

    def _fold_visits(self, v: dict[str, np.ndarray], t1: float, t_end: float) -> None:
        t0 = self.t0
        queue, arrived, left, end, group = (v["queue"], v["arrived"], v["left"], v["end"],
                                            v["group"])
        left_f = np.where(np.isnan(left), t_end, left)
        entered = (arrived >= t0) & (arrived < t1)
        if t0 <= 0:  # only a starting backlog arrives before 0
            entered |= arrived < t0
        wait = left_f - arrived
        waited = overlap(arrived, left_f, t0, t1)
        for qi, acc in enumerate(self.queues):
            at = queue == qi
            served = at & entered & (group >= 0) & ~np.isnan(left)
            acc.wait.add(wait[served])
            acc.area += float(waited[at].sum())
            acc.entered += int((at & entered).sum())
            acc.evicted += int((at & (group < 0) & ~np.isnan(left) & (left_f >= t0)
                                & (left_f <= t1)).sum())
        end_f = np.where(np.isnan(end), t_end, end)
        busy = overlap(left, end_f, t0, t1)
        started_in = (left >= t0) & (left < t1) & ~np.isnan(end)
        for gi, gacc in enumerate(self.groups):
            at = group == gi
            gacc.busy += float(busy[at].sum())
            gacc.ended += int((at & (end >= t0) & (end <= t1)).sum())
            gacc.service_total += float((end - left)[at & started_in].sum())
            gacc.service_n += int((at & started_in).sum())

    def _forget_finished(self) -> None:
        """Drop send times of the oldest messages once all of them have an outcome."""
        still = np.flatnonzero(self._open)
        cut = int(still[0]) if len(still) else len(self._open)
        if cut:
            self._base += cut
            self._sent = self._sent[cut:]
            self._backlog = self._backlog[cut:]
            self._open = self._open[cut:]

    # Summary ---------------------------------------------------------------------------
    def summary(self, sc: Scenario, out: Outcome, t0: float, samples: dict[str, np.ndarray],
                peaks: dict[str, tuple[int, float, float]], workers: Any) -> dict[str, Any]:
        """The same numbers as :func:`simq.summary.summarise`, from the accumulators.

        ``peaks``: each queue's longest line in the window, when it was first reached and
        how long the line then took to empty;
        ``workers``: an object whose ``workers`` are the columns of the worker-count log.
        """
        from simq.peak import worker_seconds
        from simq.summary import ConservationError

        t1 = out.t_stop
        span = t1 - t0
        if span <= 0:
            span = math.nan
        o = self.outcomes
        counts = {
            "produced": self.produced,
            "delivered": int(o[DELIVERED]),
            "dropped": int(o[DROPPED]),
            "lost": int(o[LOST]),
            "expired": int(o[EXPIRED]),
            "dead_lettered": int(o[DEAD_LETTERED]),
            "duplicates": 0,
            "in_flight": int(out.in_flight),
        }
        accounted = sum(v for k, v in counts.items() if k not in {"produced", "duplicates"})
        # Requeues, dead-lettering and dedup discards are reliability events, which this
        # mode refuses (fold()): with none logged, their counts are exactly zero.
        counts["redelivered"] = 0
        counts["discarded"] = 0
        if accounted != counts["produced"]:
            raise ConservationError(
                f"produced {counts['produced']} != accounted {accounted}: {counts}")
        if self.produced - self.finished != counts["in_flight"]:
            raise ConservationError(
                f"{self.produced - self.finished} messages unfinished in the log, "
                f"{counts['in_flight']} found inside")
        lat = self.latency
        summary: dict[str, Any] = {
            "messages": counts,
            "throughput": float(self.delivered_in_window / span),
            "offered_rate": float(self.offered / span),
            "latency": {"mean": lat.mean, "p50": lat.quantile(0.5), "p95": lat.quantile(0.95),
                        "p99": lat.quantile(0.99), "max": lat.max if lat.n else math.nan},
            "queues": {},
            "consumers": {},
            "links": {},
        }
        times = samples["time"]
        inw = (times >= t0) & (times <= t1)
        for name, acc in zip(sc.queues, self.queues, strict=True):
            offered = acc.entered + (acc.dropped - acc.evicted)
            peak, peak_time, drain = peaks[name]
            summary["queues"][name] = {
                "wait_mean": acc.wait.mean,
                "wait_p95": acc.wait.quantile(0.95),
                "length_mean": float(acc.area / span),
                "length_max": peak,
                "arrivals": offered,
                "dropped": acc.dropped,
                "drop_fraction": acc.dropped / offered if offered else 0.0,
                "expired": acc.expired,
                "dead_lettered": 0,
                "redelivered": 0,
                "growth_rate": slope(times[inw], samples[f"queue.{name}.length"][inw]),
                "peak_length": peak,
                "peak_time": peak_time,
                "drain_time": drain,
            }
        for gi, ((name, spec), g) in enumerate(zip(sc.consumers.items(), self.groups,
                                                    strict=True)):
            ws = worker_seconds(workers, gi, spec.count, t0, t1)
            summary["consumers"][name] = {
                "utilization": float(g.busy / ws) if ws > 0 else math.nan,
                "throughput": float(g.ended / span),
                "service_mean": g.service_total / g.service_n if g.service_n else math.nan,
                "worker_seconds": ws,
            }
        for name, lk in zip(sc.links, self.links, strict=True):
            summary["links"][name] = {
                "delay_mean": lk.delay_total / lk.delay_n if lk.delay_n else math.nan,
                "utilization": float(lk.tx_area / span),
                "lost": lk.lost,
                "retransmitted": lk.retransmitted,
            }
        return summary


def _peak(q: Any, t1: float) -> tuple[int, float, float]:
    """Longest line during the window, when first reached, and the time from then until
    the line was first empty (NaN if never): the queue's last new length at or before t1
    (its record restarts when the window opens)."""
    t, n, drained = q.peaks[0]
    for entry in q.peaks:
        if entry[0] <= t1:
            t, n, drained = entry
    return int(n), float(t), 0.0 if n == 0 else float(drained - t)


@dataclass
class StreamResult:
    """What a streaming replication keeps: its summary and sampled levels."""

    summary: dict[str, Any]
    timeseries: dict[str, np.ndarray]
    outcome: Outcome


def _horizon(sim: Simulation) -> float:
    """A time the end of the measurement window cannot precede: now, or the last send
    when the run stops after N messages (the window ends at the last send)."""
    if sim.scenario.run.messages is None:
        return float(sim.env.now)
    sends = [p.last_sent for p in sim.producers.values() if not math.isnan(p.last_sent)]
    return max(sends) if sends else -math.inf


def run_streaming(sim: Simulation, chunk: int = CHUNK) -> StreamResult:
    """Run a built simulation keeping only accumulators; return its summary."""
    spec = sim.scenario.run
    # The schema refuses warmup: auto with records: summary (MSER needs every message).
    assert spec.warmup != "auto"
    warmup = float(spec.warmup)
    stats = StreamStats(sim.scenario, warmup)
    rec = sim.rec

    def fold() -> None:
        horizon = _horizon(sim)
        stats.fold(rec, horizon)
        for q in sim.queues.values():
            # Only the last new length before the horizon still matters (see _length_max).
            before = sum(1 for entry in q.peaks if entry[0] < horizon)
            if before > 1:
                del q.peaks[: before - 1]

    def reset_peaks() -> None:
        for q in sim.queues.values():
            q.reset_peak()

    # At least 1000 samples, for the growth rate; the time series keeps them all.
    points = max(spec.timeseries_points, 1000)
    monitor = Monitor(
        sim, sample_interval(sim, points), fold, chunk=chunk, sample=True, points=points,
        produced=lambda: stats.produced + len(rec.created),
        finished=lambda: stats.finished + len(rec.finished),
        # The window opens at the warm-up; at 0, after the workers' first takes (a
        # starting backlog is already in line, and full records count those takes first).
        mark=warmup, on_mark=reset_peaks,
    )
    out = sim.run()
    t0 = min(warmup, out.t_stop)
    stats.t0 = t0
    stats.fold(rec, math.inf, out.t_stop, out.t_end)
    if not monitor.samples or monitor.samples[-1][0] < out.t_end:
        monitor.sample()  # the state at the end, as full mode's last time-series point
    peaks = {name: _peak(q, out.t_stop) for name, q in sim.queues.items()}
    ts = monitor.timeseries()
    # The worker-count log is small (one row per change): kept whole, read as in full mode.
    workers = SimpleNamespace(workers=to_columns(rec.workers, *LAYOUT["workers"]))
    for gi, (name, c) in enumerate(sim.scenario.consumers.items()):
        ts[f"consumer.{name}.workers"] = workers_at(
            workers, gi, c.count, ts["time"])  # type: ignore[arg-type]  # duck-typed Records
    summary = stats.summary(sim.scenario, out, t0, ts, peaks, workers)
    return StreamResult(summary, _ordered(ts, sim), out)


def _ordered(ts: dict[str, np.ndarray], sim: Simulation) -> dict[str, np.ndarray]:
    """Columns in the order of :func:`simq.summary.timeseries_columns`."""
    order = ["time", "in_flight", *(f"queue.{n}.length" for n in sim.queues)]
    for n in sim.groups:
        order += [f"consumer.{n}.busy", f"consumer.{n}.workers"]
    order += [f"link.{n}.in_transit" for n in sim.links]
    return {c: ts[c] for c in order}


def run_full(sim: Simulation, chunk: int = CHUNK) -> Outcome:
    """Run a built simulation, compacting its logs into columns a chunk at a time."""
    rec = sim.rec

    def logged(name: str) -> int:
        return sum(len(c[LAYOUT[name][0][0]]) for c in rec.chunks[name]) + len(
            getattr(rec, name))

    def compact() -> None:
        rec.compact()
        for q in sim.queues.values():  # full records give length_max: keep only the last
            del q.peaks[:-1]

    Monitor(sim, sample_interval(sim, 1000), compact, chunk=chunk,
            produced=lambda: logged("created"), finished=lambda: logged("finished"))
    return sim.run()
