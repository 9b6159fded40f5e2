"""Scenario -> engine -> RunResult: the replication driver, its seeds and the summary.

Each replication runs on its own stream (:func:`seed_for`) in full or streaming record
mode; :func:`run` combines them (:mod:`simq.analysis.replications`), warns when a queue
grows without bound, and adds the document's formula table with theory beside it
(:mod:`simq.analysis.formulas`). A RunResult's tables come from :mod:`simq.record.frames`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simq.analysis.formulas import document_formulas, theory_columns
from simq.analysis.replications import combine
from simq.analysis.stats import mser
from simq.engine import Simulation
from simq.engine.recorder import DELIVERED as OUTCOMES_DELIVERED
from simq.engine.recorder import Records
from simq.errors import ScenarioError
from simq.model.estimate import Estimate, check
from simq.model.network import Flows, flows
from simq.model.predict import predict
from simq.model.stability import stability_warnings
from simq.record.frames import messages_frame, visits_frame
from simq.record.measures import has_peak_features
from simq.record.streaming import run_full, run_streaming, streamed_warmup
from simq.record.summary import fault_rows, rebalance_rows, summarise, timeseries_columns
from simq.scenario import Scenario, load

if TYPE_CHECKING:
    import pandas as pd
else:  # built on first use: a streaming run never needs pandas (simq/_lazy.py)
    from simq._lazy import LazyModule

    pd = LazyModule("pandas")

__all__ = ["RunResult", "Replication", "RecordsUnavailableError", "UnstableWarning", "run",
           "run_replication", "auto_warmup", "preflight", "resolve", "seed_for"]


class RecordsUnavailableError(RuntimeError):
    """Per-message tables were asked of a run that kept only accumulators."""


class UnstableWarning(UserWarning):
    """The offered load reaches the capacity of a queue: it grows without bound."""


@dataclass
class Replication:
    """One independent replication: its records and its summary."""

    index: int
    records: Records | None  # None with run.records: summary
    summary: dict[str, Any]
    window: tuple[float, float]
    t_end: float
    wall_seconds: float
    samples: dict[str, np.ndarray] | None = None  # sampled levels (run.records: summary)

    def require_records(self, what: str) -> Records:
        """The per-message records, or a clear error when the run kept only accumulators."""
        if self.records is None:
            raise RecordsUnavailableError(
                f"{what} needs the per-message records, but this run used "
                "run.records: summary (streaming); run it with run.records: full")
        return self.records


def seed_for(seed: int, replication: int, point: int | None = None) -> np.random.SeedSequence:
    """The stream of one replication: (seed, r) names it, or (seed, point, r) in a sweep.

    Whatever else runs and in whatever order, the same names give the same numbers. A
    sweep with common random numbers passes ``point=None`` so that every point's
    replication r shares the stream of ``simq.run(..., seed)``'s replication r.
    """
    key = (replication,) if point is None else (point, replication)
    return np.random.SeedSequence(seed, spawn_key=key)


def auto_warmup(records: Records, t_stop: float) -> float:
    """The warm-up MSER-5 picks on one replication's end-to-end latencies, in seconds.

    The series is the latency of each delivered message in the order the messages were
    sent; the warm-up ends at the send time of the first message kept.
    """
    delivered = (records.outcome == OUTCOMES_DELIVERED) & (records.sent < t_stop)
    sent = records.sent[delivered]
    lat = (records.done - records.sent)[delivered]
    if len(sent) == 0:
        return 0.0
    cut = mser(lat, 5)
    return float(sent[cut]) if cut < len(sent) else 0.0


def run_replication(
    scenario: Scenario, seed: int, index: int, *, point: int | None = None
) -> Replication:
    """Run replication ``index`` of ``scenario`` under root seed ``seed`` (see seed_for)."""
    started = time.perf_counter()
    sim = Simulation(scenario, seed_for(seed, index, point))
    if scenario.run.records == "summary":
        warm = None
        if scenario.run.warmup == "auto":
            # MSER needs the whole latency series before the window can start: a first
            # streaming run from the same seed finds the warm-up (simq/streaming.py).
            warm = streamed_warmup(sim)
            sim = Simulation(scenario, seed_for(seed, index, point))
        streamed = run_streaming(sim, warmup=warm)
        out = streamed.outcome
        return Replication(index, None, streamed.summary, (streamed.t0, out.t_stop),
                           out.t_end, time.perf_counter() - started, streamed.timeseries)
    out = run_full(sim)
    records = sim.rec.arrays(out.t_end)
    w = scenario.run.warmup
    # "auto" is decided per replication, so replications stay independent (and can run
    # in any order or in parallel); the summary reports each choice.
    warm = auto_warmup(records, out.t_stop) if w == "auto" else float(w)
    t0 = min(warm, out.t_stop)
    summary = summarise(records, scenario, out, t0)
    return Replication(index, records, summary, (t0, out.t_stop), out.t_end,
                       time.perf_counter() - started)



@dataclass
class RunResult:
    """What a run gives back: the summary dict and the per-message tables."""

    scenario: Scenario
    seed: int
    summary: dict[str, Any]
    replications: list[Replication] = field(repr=False)
    wall_seconds: float = 0.0

    @property
    def has_messages(self) -> bool:
        """False when the run kept only accumulators (``run.records: summary``)."""
        return self.scenario.run.records == "full"

    def _need_records(self, what: str) -> None:
        if not self.has_messages:
            raise RecordsUnavailableError(
                f"res.{what} needs per-message records, but this run used "
                "run.records: summary (streaming statistics, no per-message log); "
                "run again with run.records: full (the default) to get them")

    @property
    def messages(self) -> pd.DataFrame:
        """One row per message: ids, per-hop timestamps, outcome."""
        self._need_records("messages")
        return pd.concat([messages_frame(self.scenario, r.require_records("res.messages"),
                                         r.index) for r in self.replications],
                         ignore_index=True)

    @property
    def visits(self) -> pd.DataFrame:
        """One row per message per queue visit (long form of the per-hop timestamps)."""
        self._need_records("visits")
        return pd.concat([visits_frame(self.scenario, r.require_records("res.visits"),
                                       r.index) for r in self.replications],
                         ignore_index=True)

    @property
    def timeseries(self) -> pd.DataFrame:
        """Queue lengths, busy workers, messages in flight and in transit over time."""
        points = self.scenario.run.timeseries_points
        frames = []
        for r in self.replications:
            if r.records is None:  # streaming: the levels sampled during the run
                cols = dict(r.samples or {})
            else:
                times = np.linspace(0.0, r.t_end, points)
                cols = timeseries_columns(r.records, self.scenario, times)
            frame = pd.DataFrame(cols)
            frame.insert(0, "replication", r.index)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    @property
    def flows(self) -> Flows:
        return flows(self.scenario)

    def latency_windows(self, width: float = 60.0, *,
                        quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
                        by: str = "sent") -> pd.DataFrame:
        """Latency percentiles per window of ``width`` s, one block of rows per replication
        (see :func:`simq.record.measures.latency_windows`)."""
        from simq.record.measures import latency_windows

        self._need_records("latency_windows()")
        frames = []
        for r in self.replications:
            frame = latency_windows(r.require_records("res.latency_windows()"), width,
                                    quantiles=quantiles, by=by)
            frame.insert(0, "replication", r.index)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def timeline(self, width: float | None = None) -> pd.DataFrame:
        """Arrival rate, messages waiting and workers per window (default: 200 windows),
        one block of rows per replication (see :func:`simq.record.measures.timeline`)."""
        from simq.record.measures import timeline

        self._need_records("timeline()")
        frames = []
        for r in self.replications:
            w = width if width is not None else max(r.t_end, 1e-9) / 200
            frame = timeline(r.require_records("res.timeline()"), self.scenario, w)
            frame.insert(0, "replication", r.index)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    @property
    def faults(self) -> pd.DataFrame:
        """One row per fault (outage, partition, crash spell) and replication: component,
        kind, start, end, and recovery (seconds from the end until the messages in the
        system are back to their number at the start; docs/reliability.md)."""
        rows = [(r.index, *row) for r in self.replications
                for row in fault_rows(r.require_records("res.faults"), self.scenario)]
        frame = pd.DataFrame(rows, columns=["replication", "component", "kind", "start",
                                            "end", "recovery"])
        # A rebalance's details (docs/rebalancing.md); NaN for the other kinds of fault.
        rb = pd.DataFrame(
            [(r.index, row[0], "rebalance", *row[1:4], *row[5:])
             for r in self.replications
             for row in rebalance_rows(r.require_records("res.faults"), self.scenario)],
            columns=["replication", "component", "kind", "trigger", "cause", "start",
                     "moved", "paused", "pause"])
        return frame.merge(rb, on=["replication", "component", "kind", "start"], how="left")

    def around_faults(self, before: float = 60.0, after: float | None = None) -> pd.DataFrame:
        """The time series around each fault: rows from ``before`` seconds before it
        starts until ``after`` seconds after it ends (default: its recovery, or as long as
        the fault), with the fault's row number in `fault` and the time since its start."""
        ts = self.timeseries
        frames = []
        for k, f in self.faults.iterrows():
            tail = after if after is not None else (
                f["recovery"] if f["recovery"] == f["recovery"] else f["end"] - f["start"])
            mine = ts[(ts["replication"] == f["replication"])
                      & (ts["time"] >= f["start"] - before)
                      & (ts["time"] <= f["end"] + tail)].copy()
            mine.insert(0, "fault", k)
            mine.insert(2, "since_start", mine["time"] - f["start"])
            frames.append(mine)
        if not frames:
            return ts.iloc[0:0].assign(fault=[], since_start=[])
        return pd.concat(frames, ignore_index=True)

    def __repr__(self) -> str:
        s = self.summary
        return (f"RunResult({self.scenario.name!r}, seed={self.seed}, "
                f"replications={s['replications']}, throughput={s['throughput']:.4g}, "
                f"latency_mean={s['latency']['mean']:.4g})")



def resolve(scenario: Scenario | str | Mapping[str, Any], *,
            overrides: Mapping[str, Any] | None = None, seed: int | None = None) -> Scenario:
    """The scenario a run or a sweep starts from: loaded, overridden, with its root seed."""
    sc = load(scenario)
    if overrides:
        sc = sc.with_overrides(overrides)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ScenarioError("seed", "must be an integer >= 0", seed)
        sc = sc.with_overrides({"run.seed": seed})
    return sc


def preflight(sc: Scenario, *, max_events: float | None = None) -> tuple[Estimate, list[str]]:
    """What a run of ``sc`` will cost and the warnings of its traffic model, before it
    starts: refused (a ScenarioError) when the cost is above ``run.max_events`` (or
    ``max_events``) or ``run.max_memory`` (:mod:`simq.model.estimate`)."""
    est = check(sc, max_events=max_events)
    return est, stability_warnings(sc)


def run(
    scenario: Scenario | str | Mapping[str, Any],
    *,
    seed: int | None = None,
    replications: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    max_events: float | None = None,
) -> RunResult:
    """Run a scenario (a Scenario, a file path or a mapping) and summarise it.

    Before anything runs the cost is estimated and refused above ``run.max_events`` (or
    ``max_events``) and ``run.max_memory``; an unstable queue warns (UnstableWarning)."""
    sc = resolve(scenario, overrides=overrides, seed=seed)
    if replications is not None:
        sc = sc.with_overrides({"run.replications": replications})
    _, notes = preflight(sc, max_events=max_events)
    for note in notes:  # before the run, so that a long overloaded run says so at once
        warnings.warn(note, UnstableWarning, stacklevel=2)
    started = time.perf_counter()
    root = sc.run.seed
    reps = [run_replication(sc, root, r) for r in range(sc.run.replications)]
    mean, ci = combine([r.summary for r in reps])
    f = flows(sc)
    t0s = [r.window[0] for r in reps]
    t1s = [r.window[1] for r in reps]
    pred = predict(sc)
    formulas = document_formulas(f, mean)
    theory_columns(formulas, pred, mean, ci if len(reps) > 1 else None,
                   [r.summary for r in reps])
    summary: dict[str, Any] = {
        "scenario": sc.name,
        "seed": root,
        "replications": len(reps),
        "window": [float(np.mean(t0s)), float(np.mean(t1s))],
        "warmup": {
            "method": "MSER-5" if sc.run.warmup == "auto" else "fixed",
            "seconds": float(np.mean(t0s)),
            "per_replication": [float(t) for t in t0s],
        },
        **mean,
        "formulas": formulas,
        "theory": {"model": pred.model, "kind": pred.kind, "reason": pred.reason},
        "warnings": notes,
    }
    if has_peak_features(sc):
        summary["peak_load"] = True  # time-varying load, a backlog or changing capacity
    if len(reps) > 1:
        summary["ci95"] = ci
    return RunResult(sc, root, summary, reps, time.perf_counter() - started)
