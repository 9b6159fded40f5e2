"""Statistics over runs and the measured-vs-predicted table.

- Replication/deletion: ``simq.run(..., replications=R)`` gives Student-t 95% half-widths
  in ``summary["ci95"]``; :func:`replication_values` gives the per-replication numbers.
- One long run: :func:`batch_means_ci` (batch means of the per-message latencies or waits).
- Warm-up: ``run.warmup: auto`` (MSER-5, :func:`simq.analysis.stats.mser`), per replication.
- Percentiles: :func:`simq.analysis.stats.percentile_ci` (order statistics, iid values) or the
  t interval over per-replication percentiles (``ci95.latency.p95``).
- Common random numbers: every component draws from a stream named by its dotted path,
  so two configurations run with the same seed share their arrivals and service draws
  where the components agree; :func:`paired` turns that into a tight CI on the difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from simq.analysis.stats import batch_means, mean_ci, mser, percentile_ci, t_halfwidth, verdict
from simq.model.predict import Prediction, predict

if TYPE_CHECKING:
    from simq.engine.recorder import Records
    from simq.scenario import Scenario

__all__ = [
    "COMPARE_COLUMNS",
    "format_pm",
    "has_interval",
    "batch_means",
    "format_compare",
    "batch_means_ci",
    "compare",
    "mean_ci",
    "mser",
    "paired",
    "percentile_ci",
    "replication_values",
    "t_halfwidth",
]



class Replication(Protocol):
    """What the comparisons read of one replication (:class:`simq.run.Replication`)."""

    @property
    def summary(self) -> dict[str, Any]: ...

    @property
    def window(self) -> tuple[float, float]: ...

    def require_records(self, what: str) -> Records: ...


class Result(Protocol):
    """What the comparisons read of a run (:class:`simq.run.RunResult` is one); a
    protocol, so that the analysis layer needs nothing from the run layer above it."""

    @property
    def scenario(self) -> Scenario: ...

    @property
    def seed(self) -> int: ...

    @property
    def summary(self) -> dict[str, Any]: ...

    @property
    def replications(self) -> Sequence[Replication]: ...


COMPARE_COLUMNS = ["quantity", "measured", "ci95", "formula", "theory", "model", "kind",
                   "error", "verdict"]


def _get(tree: Any, path: str) -> float:
    for key in _split(path):
        if not isinstance(tree, Mapping) or key not in tree:
            return math.nan
        tree = tree[key]
    try:
        return float(tree)
    except (TypeError, ValueError):
        return math.nan


def _split(path: str) -> list[str]:
    # Component names may hold dots; links hold "->". Sections are one level deep.
    head, _, rest = path.partition(".")
    if head in {"queues", "consumers", "links"}:
        name, _, key = rest.rpartition(".")
        return [head, name, key]
    return [head, *([rest] if rest else [])]


def replication_values(res: Result, path: str) -> np.ndarray:
    """One number per replication for a dotted summary path, e.g. ``queues.broker.wait_mean``."""
    return np.array([_get(r.summary, path) for r in res.replications], dtype=float)


def batch_means_ci(res: Result, quantity: str = "latency", batches: int = 20,
                   replication: int = 0) -> tuple[float, float]:
    """(mean, 95% half-width) of per-message latency (or ``wait:QUEUE``) from one run.

    Uses the messages sent in the measurement window, in send order, cut into ``batches``
    batch means.
    """
    rep = res.replications[replication]
    t0, t1 = rep.window
    rec = rep.require_records("batch_means_ci")
    if quantity == "latency":
        ok = (rec.outcome == 0) & (rec.sent >= t0) & (rec.sent < t1)
        x = (rec.done - rec.sent)[ok]
    elif quantity.startswith("wait:"):
        q = list(res.scenario.queues).index(quantity[5:])
        v = rec.visits
        at = (v["queue"] == q) & (v["group"] >= 0) & (v["arrived"] >= t0) & (v["arrived"] < t1)
        at &= ~np.isnan(v["left"])
        order = np.argsort(v["arrived"][at], kind="stable")
        x = (v["left"][at] - v["arrived"][at])[order]
    else:
        raise ValueError(f"quantity must be 'latency' or 'wait:QUEUE', got {quantity!r}")
    return batch_means(x, batches)


def paired(a: Result, b: Result, path: str, level: float = 0.95
           ) -> tuple[float, float]:
    """(mean, half-width) of b − a over paired replications (common random numbers).

    Both runs must have the same seed and number of replications: replication r of each
    then shares every stream whose component path is the same in both scenarios.
    """
    if a.seed != b.seed or len(a.replications) != len(b.replications):
        raise ValueError("paired runs need the same seed and number of replications")
    d = replication_values(b, path) - replication_values(a, path)
    return float(np.mean(d)), t_halfwidth(d, level)


def _row(quantity: str, measured: float, ci: float, formula: float, theory: float,
         pred: Prediction, allowance: float = 0.0) -> dict[str, Any]:
    err = ((measured - theory) / abs(theory)
           if math.isfinite(theory) and theory != 0 and math.isfinite(measured) else math.nan)
    known = not math.isnan(theory)
    if math.isinf(theory):
        say = "no steady state: grows with the run"
    elif known:
        say = verdict(measured, ci, theory, allowance)
    else:
        say = "no theory" if pred.applies else f"none: {pred.reason}"
    return {
        "quantity": quantity,
        "measured": measured,
        "ci95": ci,
        "formula": formula,
        "theory": theory,
        "model": pred.model if known else "none",
        "kind": pred.kind if known else "none",
        "error": err,
        "verdict": say,
    }


def compare(res: Result, prediction: Prediction | None = None) -> pd.DataFrame:
    """One row per quantity: measured, 95% CI half-width, the document's formula, theory,
    model, relative error and verdict ("within CI", "outside CI", "no CI", "no theory").

    The document's formula is filled on the rows it speaks about, in each row's unit:
    ``throughput/offered`` (its ratio, as written), ``throughput`` (read as a rate,
    min(generation, processing)), ``latency.mean`` (processing + transmission), and at
    the bottleneck queue ``length_mean`` and ``growth_rate`` (generation − processing,
    read as a length and as a rate).
    """
    s = res.summary
    ci = s.get("ci95", {})
    pred = prediction if prediction is not None else predict(res.scenario)
    forms = s.get("formulas", {})
    rows = []

    def c(path: str) -> float:
        return _get(ci, path)

    ratio = forms.get("throughput_ratio", {})
    offered_theory = pred.offered if pred.applies else math.nan
    ratio_theory = (pred.throughput / offered_theory
                    if pred.applies and offered_theory > 0 else math.nan)
    ratios = replication_values(res, "throughput") / replication_values(res, "offered_rate")
    rows.append(_row("throughput/offered", ratio.get("measured", math.nan),
                     t_halfwidth(ratios), ratio.get("predicted", math.nan), ratio_theory, pred))
    rows.append(_row("throughput", s["throughput"], c("throughput"),
                     forms.get("throughput", {}).get("predicted", math.nan),
                     pred.throughput, pred))
    lat = forms.get("latency", {})
    rows.append(_row("latency.mean", s["latency"]["mean"], c("latency.mean"),
                     lat.get("predicted", math.nan), pred.latency_mean, pred))
    ql, qg = forms.get("queue_length", {}), forms.get("queue_growth", {})
    bottleneck = ql.get("queue")
    for q, qs in s.get("queues", {}).items():
        m = pred.queues.get(q)
        at = q == bottleneck
        length_doc = ql.get("predicted", math.nan) if at else math.nan
        doc = qg.get("predicted", math.nan) if at else math.nan
        stable = m is None or m.stable
        for key, th, form in (
            ("wait_mean", m.wait_mean if m else math.nan, math.nan),
            ("length_mean", m.length_mean if m else math.nan, length_doc),
            ("drop_fraction", m.p_block if m else math.nan, math.nan),
            ("growth_rate", m.growth_rate if m else math.nan, doc),
        ):
            if key == "drop_fraction" and not math.isfinite(res.scenario.queues[q].capacity):
                continue
            if key == "growth_rate" and stable and not math.isfinite(doc):
                continue
            rows.append(_row(f"queues.{q}.{key}", qs.get(key, math.nan),
                             c(f"queues.{q}.{key}"), form, th, pred))
    for g, gs in s.get("consumers", {}).items():
        q = res.scenario.consumers[g].source
        m = pred.queues.get(q)
        th = m.utilization if m else math.nan
        rows.append(_row(f"consumers.{g}.utilization", gs["utilization"],
                         c(f"consumers.{g}.utilization"), math.nan, th, pred))
    for name, ls in s.get("links", {}).items():
        lp = pred.links.get(name)
        rows.append(_row(f"links.{name}.delay_mean", ls["delay_mean"],
                         c(f"links.{name}.delay_mean"), math.nan,
                         lp.delay_mean if lp else math.nan, pred))
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def format_number(x: Any, digits: int = 4) -> str:
    """A number as tables print it: NaN "-", thousands separators, else 4 digits."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if 1e4 <= abs(x) < 1e12:  # counts averaged over replications, long windows
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return str(x)


def format_estimate(value: Any, half: Any) -> tuple[str, str]:
    """A measured value and its 95% half-width as a table prints them: the half-width to
    two significant digits and the value to the same decimal place, so that neither claims
    more precision than the other (``1.00000 ± 0.00033``, not ``1 ± 0.0003297``). Without
    a finite positive half-width, each as :func:`format_number` prints it."""
    try:
        v, h = float(value), float(half)
    except (TypeError, ValueError):
        return format_number(value), format_number(half)
    if not (math.isfinite(v) and math.isfinite(h) and h > 0):
        return format_number(value), format_number(half)
    places = 1 - math.floor(math.log10(h))  # decimal places of two significant digits
    if places > 6 or places < -12:
        shown, half_shown = f"{v:.2g}", f"{h:.2g}"
    elif places <= 0:  # tens or more: rounded there, with thousands separators
        shown, half_shown = f"{round(v, places):,.0f}", f"{round(h, places):,.0f}"
    else:
        shown, half_shown = f"{v:.{places}f}", f"{h:.{places}f}"
    # A value that rounds to zero is zero, not "-0.000".
    if shown.startswith("-") and float(shown.replace(",", "")) == 0:
        shown = shown[1:]
    return shown, half_shown


def has_interval(half: Any) -> bool:
    """Whether ``half`` is a half-width to show: a finite number above 0."""
    return isinstance(half, float | int) and math.isfinite(half) and half > 0


def format_pm(value: Any, half: Any) -> str:
    """``value ± half`` as :func:`format_estimate` rounds them; the value alone without a
    half-width to show (one replication, or none finite)."""
    shown, half_shown = format_estimate(value, half)
    return f"{shown} ± {half_shown}" if has_interval(half) else shown


def format_compare(table: pd.DataFrame) -> str:
    """The compare table as aligned text (what ``simq run`` prints)."""
    header = ["quantity", "measured", "± 95% CI", "formula", "theory", "model", "error",
              "verdict"]
    rows: list[list[str]] = []
    for r in table.to_dict("records"):
        err = float(r["error"])
        model = str(r["model"]) if r["kind"] == "none" else f"{r['model']} ({r['kind']})"
        rows.append([str(r["quantity"]), *format_estimate(r["measured"], r["ci95"]),
                     format_number(r["formula"]),
                     format_number(r["theory"]), model,
                     "-" if not math.isfinite(err) else f"{100 * err:+.1f}%",
                     # the reason is printed once, above the table
                     "none" if str(r["verdict"]).startswith("none: ") else str(r["verdict"])])
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
