"""Scenario -> engine -> RunResult: the replication driver, its seeds and the summary.

Each replication runs on its own stream (:func:`seed_for`) in full or streaming record
mode; :func:`run` combines them (:mod:`simq.analysis.replications`), warns when a queue
grows without bound, and adds the document's formula table with theory beside it
(:mod:`simq.analysis.formulas`). A RunResult's tables come from :mod:`simq.record.frames`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simq.analysis.formulas import document_formulas, theory_columns
from simq.analysis.replications import combine
from simq.analysis.stats import mser
from simq.engine import Simulation
from simq.engine.fast import FastRun, why_not
from simq.engine.recorder import DELIVERED as OUTCOMES_DELIVERED
from simq.engine.recorder import Records
from simq.engine.simulation import Outcome
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

__all__ = ["Progress", "RunResult", "Replication", "RecordsUnavailableError", "UnstableWarning",
           "run", "run_replication", "auto_warmup", "engine_of", "html_table", "preflight",
           "resolve", "seed_for"]


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


Progress = Callable[[float], None]
"""Told the fraction of a run done so far, from 0 to 1, as it goes (see :func:`run`)."""


def run_replication(
    scenario: Scenario, seed: int, index: int, *, point: int | None = None,
    progress: Progress | None = None,
) -> Replication:
    """Run replication ``index`` of ``scenario`` under root seed ``seed`` (see seed_for);
    ``progress``: as in :func:`run`, for this replication (not called with 1 at the end)."""
    started = time.perf_counter()
    if engine_of(scenario)[0] == "fast":
        records, out = FastRun(scenario, seed_for(seed, index, point)).run(progress)
        return _measured(scenario, index, records, out, started)
    sim = Simulation(scenario, seed_for(seed, index, point))
    if scenario.run.records == "summary":
        warm = None
        if scenario.run.warmup == "auto":
            # MSER needs the whole latency series before the window can start: a first
            # streaming run from the same seed finds the warm-up (simq/streaming.py).
            warm = streamed_warmup(sim, progress=_part(progress, 0.0, 0.5))
            sim = Simulation(scenario, seed_for(seed, index, point))
            progress = _part(progress, 0.5, 0.5)
        streamed = run_streaming(sim, warmup=warm, progress=progress)
        out = streamed.outcome
        return Replication(index, None, streamed.summary, (streamed.t0, out.t_stop),
                           out.t_end, time.perf_counter() - started, streamed.timeseries)
    out = run_full(sim, progress=progress)
    return _measured(scenario, index, sim.rec.arrays(out.t_end), out, started)


def _measured(scenario: Scenario, index: int, records: Records, out: Outcome,
              started: float) -> Replication:
    """A replication with full records, summarised over its window."""
    w = scenario.run.warmup
    # "auto" is decided per replication, so replications stay independent (and can run
    # in any order or in parallel); the summary reports each choice.
    warm = auto_warmup(records, out.t_stop) if w == "auto" else float(w)
    t0 = min(warm, out.t_stop)
    summary = summarise(records, scenario, out, t0)
    return Replication(index, records, summary, (t0, out.t_stop), out.t_end,
                       time.perf_counter() - started)


def engine_of(scenario: Scenario) -> tuple[str, str]:
    """The engine a run of ``scenario`` uses (``fast`` or ``simpy``) and why.

    ``run.engine: auto`` takes the fast engine (:mod:`simq.engine.fast`: the same records,
    by recursions over arrays) whenever every component allows it and the run keeps full
    records; ``fast`` asks for it and is refused, with the component that prevents it,
    when it cannot run the scenario."""
    asked = scenario.run.engine
    if asked == "simpy":
        return "simpy", "asked for (run.engine: simpy)"
    reason = why_not(scenario)
    if reason is None and scenario.run.records == "summary":
        reason = ("run.records: summary: streaming statistics fold the records as the "
                  "events happen, which the fast engine does not have")
    if reason is None:
        return "fast", ("asked for (run.engine: fast)" if asked == "fast"
                         else "every component is a FIFO station")
    if asked == "fast":
        raise ScenarioError("run.engine", f"the fast engine cannot run this scenario "
                            f"({reason}); use auto or simpy", "fast")
    return "simpy", f"not eligible for the fast engine: {reason}"


def _part(progress: Progress | None, start: float, share: float) -> Progress | None:
    """``progress`` for a part of the work that begins at ``start`` and is ``share`` of it."""
    if progress is None:
        return None
    return lambda done: progress(start + share * done)


class _Forward:
    """Calls ``progress`` only with fractions that do not go back, and 1 once, at the end."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last = -1.0

    def __call__(self, done: float) -> None:
        if self.last < done < 1.0:
            self.last = done
            self.progress(done)

    def end(self) -> None:
        self.last = 1.0
        self.progress(1.0)


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

    def _repr_html_(self) -> str:
        """What a notebook shows: the run, its key numbers, and the comparison with the
        document's formulas and theory (:func:`simq.compare`)."""
        from html import escape

        from simq.analysis.compare import compare, format_number

        s = self.summary
        ci = s.get("ci95", {})

        def row(name: str, value: Any, half: Any) -> list[str]:
            return [name, format_number(value), format_number(half)]

        lat, lat_ci = s["latency"], ci.get("latency", {})
        rows = [row("throughput (/s)", s["throughput"], ci.get("throughput")),
                row("offered rate (/s)", s["offered_rate"], ci.get("offered_rate"))]
        rows += [row(f"latency {k} (s)", lat[k], lat_ci.get(k)) for k in ("mean", "p50", "p99")]
        rows += [row(f"utilization {g}", c["utilization"],
                     ci.get("consumers", {}).get(g, {}).get("utilization"))
                 for g, c in s.get("consumers", {}).items()]
        table = compare(self)
        cmp_rows = [[str(r["quantity"]), format_number(r["measured"]),
                     format_number(r["ci95"]), format_number(r["formula"]),
                     format_number(r["theory"]), str(r["model"]), str(r["verdict"])]
                    for r in table.to_dict("records")]
        t = s["theory"]
        theory = (f"theory: {t['model']} ({t['kind']})" if t["kind"] != "none"
                  else f"theory: none: {t['reason']}")
        w0, w1 = s["window"]
        head = (f"<p><b>{escape(str(s['scenario']))}</b>: seed {escape(str(self.seed))}, "
                f"{escape(str(s['replications']))} replication"
                f"{'s' if s['replications'] != 1 else ''}, window "
                f"{escape(format_number(float(w0)))}–{escape(format_number(float(w1)))} s"
                f"</p>")
        notes = "".join(f"<p>warning: {escape(str(n))}</p>" for n in s.get("warnings", []))
        return (f"<div>{head}{notes}"
                f"{html_table(['', 'measured', '± 95% CI'], rows)}"
                f"<p>{escape(theory)}</p>"
                + html_table(["quantity", "measured", "± 95% CI", "formula", "theory",
                              "model", "verdict"], cmp_rows)
                + "</div>")

    def __repr__(self) -> str:
        s = self.summary
        return (f"RunResult({self.scenario.name!r}, seed={self.seed}, "
                f"replications={s['replications']}, throughput={s['throughput']:.4g}, "
                f"latency_mean={s['latency']['mean']:.4g})")


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain HTML table of text cells, every cell escaped."""
    from html import escape

    def tr(cells: list[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>"

    body = "".join(tr(r, "td") for r in rows)
    return f"<table><thead>{tr(header, 'th')}</thead><tbody>{body}</tbody></table>"


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
    progress: Progress | None = None,
) -> RunResult:
    """Run a scenario (a Scenario, a file path or a mapping) and summarise it.

    Before anything runs the cost is estimated and refused above ``run.max_events`` (or
    ``max_events``) and ``run.max_memory``; an unstable queue warns (UnstableWarning).
    ``progress(done)``, if given, is called as the run goes with the fraction done of the
    whole run (all replications, in simulated time of ``run.until`` or in messages sent of
    ``run.messages``): fractions that never go back, and 1 last. Replication r of R runs
    from r/R to (r + 1)/R. It changes no number of the run."""
    sc = resolve(scenario, overrides=overrides, seed=seed)
    if replications is not None:
        sc = sc.with_overrides({"run.replications": replications})
    _, notes = preflight(sc, max_events=max_events)
    engine, why = engine_of(sc)  # a refused run.engine: fast is said before anything runs
    for note in notes:  # before the run, so that a long overloaded run says so at once
        warnings.warn(note, UnstableWarning, stacklevel=2)
    started = time.perf_counter()
    root = sc.run.seed
    n = sc.run.replications
    forward = _Forward(progress) if progress is not None else None
    reps = [run_replication(sc, root, r, progress=_part(forward, r / n, 1 / n))
            for r in range(n)]
    if forward is not None:
        forward.end()
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
        "engine": {"name": engine, "reason": why},
    }
    if has_peak_features(sc):
        summary["peak_load"] = True  # time-varying load, a backlog or changing capacity
    if len(reps) > 1:
        summary["ci95"] = ci
    return RunResult(sc, root, summary, reps, time.perf_counter() - started)
