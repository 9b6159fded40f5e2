"""The source document's formula table: for each of its three formulas, what it predicts
from the traffic model, what was measured, whether it holds, and the theory columns set
beside it (theory's value, relative error, CI verdict).

Pure functions over a mean summary dict, the traffic model
(:class:`simq.model.network.Flows`) and a :class:`simq.model.predict.Prediction`; the run
layer calls them once per run; docs/output.md describes the rows (`formulas.QUANTITY`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from simq.analysis.replications import is_number
from simq.analysis.stats import mean_ci, verdict

if TYPE_CHECKING:
    from simq.model.network import Flows
    from simq.model.predict import Prediction

__all__ = ["FORMULA_ROWS", "HOLDS_TOLERANCE", "document_formulas", "theory_columns"]

# A formula "holds" when it is within this fraction of its scale (documented in docs/).
HOLDS_TOLERANCE = 0.10


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
    return float(ci) if is_number(ci) else math.nan


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
