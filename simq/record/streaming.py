"""Streaming statistics (``run.records: summary``): the summary without per-message records.

The engine's hot path is the same as in full mode: it appends tuples to the Recorder's
lists. A monitor process folds those lists into the accumulators of
:mod:`simq.record.accumulators` (the same ones full records use) whenever they hold a chunk of
rows, then clears them, so memory stays flat however many messages a run sends. What
full records read from every row is replaced here by:

- percentiles from log-bucketed histograms (relative error at most ``HISTOGRAM_ERROR``);
- the longest line, its time and the drain after it from the queue's own record of new
  lengths (``Queue.peaks``);
- queue lengths, busy workers and messages in flight sampled at regular times, which give
  the time series and the growth rate;
- with ``warmup: auto``, MSER-5 over batch means streamed in send order
  (:class:`simq.record.sketches.StreamedMser`). The window's start is only known once the
  run is over, and every windowed sum depends on it, so the replication runs twice from
  the same seed: the first run only finds the warm-up, the second measures with it.

A row is folded only once every window condition about it is decided (``LAST`` and
``horizon`` in :mod:`simq.record.window`); later rows, and messages still waiting or in
service, stay in the lists until the end of the run, when everything is folded with the
real window. Counts, means and areas therefore equal full mode's (means up to
floating-point summation order); percentiles are within the histogram's error; the growth
rate is fitted to the samples instead of 201 exact levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from simq.analysis.stats import slope
from simq.engine import Outcome, Simulation
from simq.engine.recorder import LAYOUT, Recorder, to_columns
from simq.record.accumulators import Accumulators
from simq.record.guard import MemoryGuard
from simq.record.measures import worker_seconds, workers_at
from simq.record.monitor import CHUNK, Monitor, sample_interval
from simq.record.sketches import HISTOGRAM_ERROR, LogHistogram, StreamedMser
from simq.record.spells import up_at
from simq.record.window import LAST, Window, horizon

__all__ = ["HISTOGRAM_ERROR", "LogHistogram", "StreamResult", "run_full", "run_streaming",
           "streamed_warmup"]


def _take(rows: list[tuple[Any, ...]], log: str,
          ready_of: Callable[[Mapping[str, np.ndarray]], np.ndarray]
          ) -> dict[str, np.ndarray] | None:
    """Remove from a log the rows ``ready_of`` marks; their columns.

    The list is edited in place: the engine holds its bound ``append``.
    """
    if not rows:
        return None
    names, kinds = LAYOUT[log]
    cols = to_columns(rows, names, kinds)
    ready = ready_of(cols)
    if ready.all():
        rows.clear()
        return cols
    rows[:] = [rows[i] for i in np.flatnonzero(~ready).tolist()]
    return {k: x[ready] for k, x in cols.items()}


def take_decided(rec: Recorder, h: float, produced: int) -> dict[str, dict[str, np.ndarray]]:
    """The rows of every log that can be folded with horizon ``h`` (all at inf);
    ``produced``: messages created in the rows folded before."""
    logs: dict[str, dict[str, np.ndarray]] = {}
    for log, last in LAST.items():

        def ready(c: Mapping[str, np.ndarray],
                  last: Callable[[Mapping[str, np.ndarray]], np.ndarray] = last) -> np.ndarray:
            # At the end (h = inf) every row is decided, still-open ones included.
            if h < math.inf:
                return last(c) < h
            return np.ones(len(next(iter(c.values()))), dtype=bool)

        got = _take(getattr(rec, log), log, ready)
        if got is not None:
            logs[log] = got
    # A copy row has no time of its own: it goes with the created row of its copy.
    known = produced + (len(logs["created"]["sent"]) if "created" in logs else 0)
    for log in ("copies", "order"):
        got = _take(getattr(rec, log), log, lambda c: c["id"] < known)
        if got is not None:
            logs[log] = got
    return logs


@dataclass
class StreamResult:
    """What a streaming replication keeps: its summary and sampled levels."""

    summary: dict[str, Any]
    timeseries: dict[str, np.ndarray]
    outcome: Outcome
    t0: float = 0.0  # start of the measurement window


def _busy(sim: Simulation, name: str, gi: int) -> int:
    """Workers serving now in consumer group ``name``."""
    return int(sim.groups[name].busy())


def _monitor_columns(sim: Simulation) -> tuple[list[str], Callable[[], list[float]]]:
    names = list(sim.scenario.consumers)

    def busy() -> list[float]:
        return [float(_busy(sim, n, gi)) for gi, n in enumerate(names)]

    return [f"consumer.{n}.busy" for n in names], busy


def run_streaming(sim: Simulation, chunk: int = CHUNK, *, warmup: float | None = None,
                  mser: StreamedMser | None = None,
                  progress: Callable[[float], None] | None = None) -> StreamResult:
    """Run a built simulation keeping only accumulators; return its summary.

    ``warmup``: the window's start (default: ``run.warmup``, which must then be a number);
    ``mser``: also feed the latency series in send order to this MSER accumulator.
    """
    sc = sim.scenario
    spec = sc.run
    warm = float(spec.warmup) if warmup is None else warmup
    window = Window(warm)
    acc = Accumulators(sc, window, mser=mser)
    rec = sim.rec
    stops_after = spec.messages is not None
    guard = MemoryGuard(sim)

    def workers() -> dict[str, np.ndarray]:
        # The worker-count log is small (one row per change): kept whole, read as in
        # full mode.
        return to_columns(rec.workers, *LAYOUT["workers"])

    def fold() -> None:
        h = horizon(float(sim.env.now), stops_after,
                    [p.last_sent for p in sim.producers.values()])
        acc.set_horizon(h)
        acc.fold(take_decided(rec, h, acc.produced), workers())
        for q in sim.queues.values():
            # Only the last new length before the horizon still matters (see _peak).
            before = sum(1 for entry in q.peaks if entry[0] < h)
            if before > 1:
                del q.peaks[: before - 1]
        guard.check()

    def reset_peaks() -> None:
        for q in sim.queues.values():
            q.reset_peak()

    # At least 1000 samples, for the growth rate; the time series keeps them all.
    points = max(spec.timeseries_points, 1000)
    busy_columns, busy = _monitor_columns(sim)
    monitor = Monitor(
        sim, sample_interval(sim, points), fold, chunk=chunk, sample=True, points=points,
        produced=lambda: acc.produced + len(rec.created),
        finished=lambda: acc.finished + len(rec.finished),
        # The window opens at the warm-up; at 0, after the workers' first takes (a
        # starting backlog is already in line, and full records count those takes first).
        mark=warm, on_mark=reset_peaks, busy=(busy_columns, busy), progress=progress,
    )
    out = sim.run()
    t0 = min(warm, out.t_stop)
    window.t0, window.t1, window.t_end = t0, out.t_stop, out.t_end
    w_cols = workers()
    acc.fold(take_decided(rec, math.inf, acc.produced), w_cols, final=True)
    if not monitor.samples or monitor.samples[-1][0] < out.t_end:
        monitor.sample()  # the state at the end, as full mode's last time-series point
    ts = monitor.timeseries()
    log = SimpleNamespace(workers=w_cols)
    for gi, (name, c) in enumerate(sc.consumers.items()):
        ts[f"consumer.{name}.workers"] = workers_at(
            log, gi, c.count, ts["time"])  # type: ignore[arg-type]  # duck-typed Records
    for qi, name in enumerate(sc.queues):
        if sc.may_go_down(name):
            ts[f"queue.{name}.up"] = up_at(acc.spells.of(("queue", qi)), ts["time"])
    for li, (name, lk) in enumerate(sc.links.items()):
        if lk.partitions is not None:
            ts[f"link.{name}.up"] = up_at(acc.spells.of(("link", li)), ts["time"])
    summary = acc.summary(
        out, lambda gi, count: worker_seconds(log, gi, count, t0, out.t_stop),  # type: ignore[arg-type]
        acc.queue_spells)
    times = ts["time"]
    inw = (times >= t0) & (times <= out.t_stop)
    for name, line in sim.queues.items():
        if name not in summary["queues"]:
            continue
        peak, peak_time, drain = _peak(line, out.t_stop)
        summary["queues"][name].update({
            "length_max": peak,
            "growth_rate": slope(times[inw], ts[f"queue.{name}.length"][inw]),
            "peak_length": peak,
            "peak_time": peak_time,
            "drain_time": drain,
        })
    return StreamResult(summary, _ordered(ts, sim), out, t0)


def streamed_warmup(sim: Simulation, chunk: int = CHUNK,
                    progress: Callable[[float], None] | None = None) -> float:
    """The warm-up MSER-5 picks, from a streaming run of a built simulation."""
    mser = StreamedMser()
    run_streaming(sim, chunk, warmup=0.0, mser=mser, progress=progress)
    return mser.warmup()


def _peak(q: Any, t1: float) -> tuple[int, float, float]:
    """Longest line during the window, when first reached, and the time from then until
    the line was first empty (NaN if never): the queue's last new length at or before t1
    (its record restarts when the window opens)."""
    t, n, drained = q.peaks[0]
    for entry in q.peaks:
        if entry[0] <= t1:
            t, n, drained = entry
    return int(n), float(t), 0.0 if n == 0 else float(drained - t)


def _ordered(ts: dict[str, np.ndarray], sim: Simulation) -> dict[str, np.ndarray]:
    """Columns in the order of :func:`simq.record.summary.timeseries_columns`."""
    sc = sim.scenario
    order = ["time", "in_flight", *(f"queue.{n}.length" for n in sim.queues)]
    for n in sc.consumers:
        order += [f"consumer.{n}.busy", f"consumer.{n}.workers"]
    order += [f"link.{n}.in_transit" for n in sc.links]
    order += [f"queue.{n}.up" for n in sc.queues if sc.may_go_down(n)]
    order += [f"link.{n}.up" for n, lk in sc.links.items() if lk.partitions is not None]
    return {c: ts[c] for c in order}


def run_full(sim: Simulation, chunk: int = CHUNK,
             progress: Callable[[float], None] | None = None) -> Outcome:
    """Run a built simulation, compacting its logs into columns a chunk at a time."""
    rec = sim.rec
    guard = MemoryGuard(sim)

    def logged(name: str) -> int:
        return rec.filled[name] + len(getattr(rec, name))

    def compact() -> None:
        rec.compact()
        for q in sim.queues.values():  # full records give length_max: keep only the last
            del q.peaks[:-1]
        guard.check()

    Monitor(sim, sample_interval(sim, 1000), compact, chunk=chunk,
            produced=lambda: logged("created"), finished=lambda: logged("finished"),
            progress=progress)
    return sim.run()
