"""Scenario -> engine -> RunResult: replications, the summary, the formula table."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simq.analysis.stats import mean_ci, mser, verdict
from simq.engine import Simulation
from simq.engine.recorder import ATTEMPT, OUTCOMES, REPEAT, REQUEUED, Records
from simq.engine.recorder import DELIVERED as OUTCOMES_DELIVERED
from simq.errors import ScenarioError
from simq.model.network import Flows, flows
from simq.model.predict import Prediction, predict
from simq.model.stability import stability_warnings
from simq.record.measures import has_peak_features
from simq.record.streaming import run_full, run_streaming, streamed_warmup
from simq.record.summary import breakdown_columns, fault_rows, summarise, timeseries_columns
from simq.scenario import Scenario, load

if TYPE_CHECKING:
    import pandas as pd
else:  # built on first use: a streaming run never needs pandas (simq/_lazy.py)
    from simq._lazy import LazyModule

    pd = LazyModule("pandas")

__all__ = ["RunResult", "Replication", "RecordsUnavailableError", "UnstableWarning", "run",
           "run_replication", "document_formulas", "theory_columns", "auto_warmup",
           "FORMULA_ROWS",
           "HOLDS_TOLERANCE", "combine", "flatten", "resolve", "seed_for"]

# A formula "holds" when it is within this fraction of its scale (documented in docs/).
HOLDS_TOLERANCE = 0.10


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


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (per-replication) summary as one level of dotted keys.

    ``{"latency": {"mean": 4.8}}`` becomes ``{"latency.mean": 4.8}``; text and lists are
    left out, booleans become 0/1. This is the row a sweep table stores per replication.
    """
    out: dict[str, float] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, bool) or _is_number(v):
            out[key] = float(v)
    return out


def combine(trees: list[Any]) -> tuple[Any, Any]:
    """Mean and CI half-width of every numeric leaf across replications.

    Works on nested summaries (``run``) and on flat rows (``sweep``) alike.
    """
    first = trees[0]
    if isinstance(first, Mapping):
        means, cis = {}, {}
        for k in first:
            means[k], cis[k] = combine([t[k] for t in trees])
        return means, cis
    if _is_number(first):
        if len(trees) == 1:
            return first, math.nan
        m, h = mean_ci([float(t) for t in trees])
        return m, h
    return first, None


def _rate(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def _holds(measured: float, predicted: float, scale: float) -> bool:
    if not (math.isfinite(measured) and math.isfinite(predicted)):
        return bool(measured == predicted)
    return abs(measured - predicted) <= HOLDS_TOLERANCE * abs(scale)


# One row per quantity, each in one unit: the document's formula (read the way that gives
# that unit), the measured value and theory side by side. Keys of summary["formulas"].
FORMULA_ROWS = {
    "throughput": ("throughput", "msg/s"),
    "throughput_ratio": ("throughput / offered", "ratio"),
    "latency": ("latency", "s"),
    "queue_growth": ("queue growth rate", "msg/s"),
    "queue_length": ("mean waiting", "messages"),
}
_THROUGHPUT = "throughput = processing rate / generation rate"
_LATENCY = "latency = processing time + transmission time"
_QUEUE = "queue length = generation rate - processing rate"


def _formula_row(key: str, text: str, formula: str, predicted: float, measured: float,
                 holds: bool, note: str) -> dict[str, Any]:
    quantity, unit = FORMULA_ROWS[key]
    return {"quantity": quantity, "unit": unit, "text_formula": text, "formula": formula,
            "predicted": predicted, "measured": measured, "holds": holds, "theory": None,
            "note": note}


def document_formulas(f: Flows, summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The source document's three formulas: what each predicts, what was measured.

    Each row compares like with like, in its ``unit``: throughput as a rate and as the
    ratio the text writes; queue length as a growth rate and as a mean number waiting.
    """
    lam = f.generation_rate
    cap = f.processing_rate
    offered = summary["offered_rate"]
    thr = summary["throughput"]
    measured_ratio = thr / offered if offered > 0 else math.nan
    ratio = cap / lam if lam > 0 else math.inf
    rate = min(lam, cap)
    latency_pred = f.processing_time + f.transmission_time
    latency_meas = summary["latency"]["mean"]
    b = f.bottleneck
    closed = any(q.closed for q in f.queues.values())
    out = {
        "throughput": _formula_row(
            "throughput", _THROUGHPUT, "min(generation, processing rate)", rate, thr,
            _holds(thr, rate, rate),
            "read as a rate, the text says delivered/s = min(generation, processing) "
            "in steady state"),
        "throughput_ratio": _formula_row(
            "throughput_ratio", _THROUGHPUT, "processing rate / generation rate", ratio,
            measured_ratio, _holds(measured_ratio, ratio, ratio),
            "as a ratio (delivered / offered) the text holds only in overload; below "
            "saturation every message is delivered and the ratio is 1"),
        "latency": _formula_row(
            "latency", _LATENCY, "processing time + transmission time", latency_pred,
            latency_meas, _holds(latency_meas, latency_pred, latency_pred),
            "true only without queueing; the gap is waiting time, which explodes as the "
            "load approaches capacity"),
    }
    out["latency"]["gap"] = latency_meas - latency_pred
    if closed:
        # A sender that waits for its reply generates only as fast as its loop turns.
        out["throughput"]["note"] += (
            "; sync/window senders are closed loops: their generation rate is the loop's "
            "throughput (exact MVA for exponential service), so they never outrun "
            "processing and their queues cannot grow without bound")
        out["latency"]["note"] += (
            "; for sync/window senders processing includes encode and decode, transmission "
            "the links and the reply's trip back")
    if b is not None:
        q = summary["queues"][b.name]
        growth = b.growth
        where = f"at the bottleneck queue {b.name!r} (load {b.load:.3g})"
        # A queue cannot hold fewer than no messages, nor shrink for ever: a negative
        # value of the formula describes no queue, so it never holds, however close.
        negative = growth < 0
        out["queue_growth"] = _formula_row(
            "queue_growth", _QUEUE, "generation rate - processing rate", growth,
            q["growth_rate"],
            not negative and _holds(q["growth_rate"], growth,
                                    max(b.effective_arrival, b.capacity)),
            ("read as a growth rate, right in overload; " if not negative else
             "negative below saturation, where the queue does not shrink but stays "
             "near its mean; ") + where)
        out["queue_length"] = _formula_row(
            "queue_length", _QUEUE, "generation rate - processing rate", growth,
            q["length_mean"],
            not negative and _holds(q["length_mean"], growth, growth),
            ("a length cannot be negative: " if negative else "")
            + "the formula gives a rate, not a number of messages; below saturation the "
            "queue is non-empty anyway (Lq = rho^2/(1-rho) for M/M/1), in overload its "
            "mean grows with the run; " + where)
        for key in ("queue_growth", "queue_length"):
            out[key]["queue"] = b.name
    return out


def _ci_at(ci: Any, *path: str) -> float:
    for key in path:
        if not isinstance(ci, Mapping) or key not in ci:
            return math.nan
        ci = ci[key]
    return float(ci) if _is_number(ci) else math.nan


def theory_columns(formulas: dict[str, dict[str, Any]], pred: Prediction,
                   summary: Mapping[str, Any], ci: Mapping[str, Any] | None,
                   per_replication: Sequence[Mapping[str, Any]] = ()) -> None:
    """Fill each formula's theory value, model, relative error and CI verdict (in place).

    The theory value is in the row's unit: delivered msg/s for throughput, delivered /
    offered for the ratio, mean end-to-end seconds for latency, msg/s for the bottleneck's
    growth rate (0 when stable) and messages for its mean number waiting (Lq; none in
    overload, where it has no steady state). ``per_replication`` summaries give the
    ratio's confidence interval.
    """
    ci = ci or {}
    for key, f in formulas.items():
        theory = math.nan
        measured = f["measured"]
        half = math.nan
        unbounded = False
        m = pred.queues.get(f["queue"]) if "queue" in f else None
        if not pred.applies:
            pass
        elif key == "throughput":
            theory, half = pred.throughput, _ci_at(ci, "throughput")
        elif key == "throughput_ratio":
            if pred.offered > 0:
                theory = pred.throughput / pred.offered
            ratios = [r["throughput"] / r["offered_rate"] for r in per_replication
                      if r["offered_rate"] > 0]
            if len(ratios) > 1:
                half = mean_ci(ratios)[1]
        elif key == "latency":
            theory, half = pred.latency_mean, _ci_at(ci, "latency", "mean")
        elif key == "queue_growth" and m is not None:
            theory = 0.0 if m.stable else m.growth_rate
            half = _ci_at(ci, "queues", f["queue"], "growth_rate")
        elif key == "queue_length" and m is not None:
            theory = m.length_mean if m.stable else math.nan
            unbounded = not m.stable
            half = _ci_at(ci, "queues", f["queue"], "length_mean")
        has = math.isfinite(theory)
        f["theory"] = theory if has else None
        f["theory_measured"] = measured if has else None
        f["theory_ci95"] = half if has and math.isfinite(half) else None
        f["theory_model"] = pred.model
        f["theory_kind"] = pred.kind
        f["theory_error"] = ((measured - theory) / abs(theory)
                             if has and theory != 0 and math.isfinite(measured) else None)
        f["verdict"] = (verdict(measured, half, theory) if has else
                        "no steady state: grows with the run" if unbounded else "no theory")


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
        return pd.concat([_messages_frame(self.scenario, r) for r in self.replications],
                         ignore_index=True)

    @property
    def visits(self) -> pd.DataFrame:
        """One row per message per queue visit (long form of the per-hop timestamps)."""
        self._need_records("visits")
        return pd.concat([_visits_frame(self.scenario, r) for r in self.replications],
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
            frame = latency_windows(_records(r), width, quantiles=quantiles, by=by)
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
            frame = timeline(_records(r), self.scenario, w)
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
        return pd.DataFrame(rows, columns=["replication", "component", "kind", "start", "end",
                                           "recovery"])

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


def _names(sc: Scenario, section: str) -> list[str]:
    return list(getattr(sc, section))


def _records(r: Replication) -> Records:
    if r.records is None:  # RunResult checks first and says why
        raise RecordsUnavailableError("this replication kept no per-message records")
    return r.records


def _messages_frame(sc: Scenario, r: Replication) -> pd.DataFrame:
    rec = _records(r)
    n = len(rec.sent)
    producers = _names(sc, "producers")
    frame = pd.DataFrame({
        "replication": np.full(n, r.index, dtype=np.int64),
        "id": np.arange(n, dtype=np.int64),
        "producer": pd.Categorical.from_codes(rec.producer, pd.Index(producers)) if n else
        pd.Categorical([], categories=producers),
        "size": rec.size,
        "sent": rec.sent,
        "done": rec.done,
        "outcome": pd.Categorical([OUTCOMES[int(c)] for c in rec.outcome],
                                  categories=list(OUTCOMES.values())),
        "latency": rec.done - rec.sent,
        "parent": rec.parent,  # -1, or the message a fan-out copy was made from
        # Reliability (docs/reliability.md): times a consumer started on it, times given back.
        "attempts": rec.per_message(ATTEMPT),
        "redeliveries": rec.per_message(REQUEUED),
    })
    for col, values in breakdown_columns(rec).items():
        frame[col] = values
    v = rec.visits
    for qi, q in enumerate(sc.queues):
        at = v["queue"] == qi
        ids = v["id"][at]
        # The first visit of each message to this queue, in per-hop columns.
        first = np.unique(ids, return_index=True)[1]
        for col, src in (("arrived", "arrived"), ("start", "left"), ("end", "end")):
            full = np.full(n, np.nan)
            full[ids[first]] = v[src][at][first]
            frame[f"{q}.{col}"] = full
    h = rec.hops
    for li, name in enumerate(sc.links):
        at = h["link"] == li
        ids = h["id"][at]
        first = np.unique(ids, return_index=True)[1]
        for col, src in (("in", "entered"), ("out", "out")):
            full = np.full(n, np.nan)
            full[ids[first]] = h[src][at][first]
            frame[f"{name}.{col}"] = full
    return frame


def _visits_frame(sc: Scenario, r: Replication) -> pd.DataFrame:
    v = _records(r).visits
    queues = _names(sc, "queues")
    groups = ["(none)", *_names(sc, "consumers")]
    # A duplicate processing (record.REPEAT) is the group's work all the same.
    repeat = v["group"] <= REPEAT
    group = np.where(repeat, REPEAT - v["group"], v["group"])
    return pd.DataFrame({
        "replication": np.full(len(v["id"]), r.index, dtype=np.int64),
        "id": v["id"],
        "queue": pd.Categorical.from_codes(v["queue"], pd.Index(queues)),
        "consumer": pd.Categorical.from_codes(np.maximum(group, -1) + 1, pd.Index(groups)),
        "repeat": repeat,
        "arrived": v["arrived"],
        "start": v["left"],
        "end": v["end"],
        "wait": v["left"] - v["arrived"],
        "service": v["end"] - v["left"],
    })


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


def run(
    scenario: Scenario | str | Mapping[str, Any],
    *,
    seed: int | None = None,
    replications: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run a scenario (a Scenario, a file path or a mapping) and summarise it."""
    sc = resolve(scenario, overrides=overrides, seed=seed)
    if replications is not None:
        sc = sc.with_overrides({"run.replications": replications})
    started = time.perf_counter()
    root = sc.run.seed
    reps = [run_replication(sc, root, r) for r in range(sc.run.replications)]
    mean, ci = combine([r.summary for r in reps])
    f = flows(sc)
    notes = stability_warnings(sc)
    for note in notes:
        warnings.warn(note, UnstableWarning, stacklevel=2)
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
