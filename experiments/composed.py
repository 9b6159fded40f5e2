"""Three whole systems, every feature composed: a Kafka-like pipeline, a RabbitMQ-like work
queue and a synchronous RPC service (``models/kafka_like.yaml``, ``rabbitmq_like.yaml``,
``rpc.yaml``).

Each model is run as it is shipped (its own `until` and warm-up), with independent
replications, and read the way an engineer choosing a broker would: the throughput
against the offered load, the median and the tail of the latency, what happened to every
message (the outcome counts), and where each message's time went (the latency breakdown,
drawn as one stacked bar per model).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import simq
from simq.record.summary import BREAKDOWN

try:
    from experiments import _common as common
except ImportError:  # run as a script: experiments/ is on sys.path
    import _common as common  # type: ignore[no-redef]

NAME = "composed"
COMMAND = "python experiments/composed.py"
MODELS = ("kafka_like", "rabbitmq_like", "rpc")
OUTCOMES = ("delivered", "dropped", "lost", "expired", "dead_lettered", "in_flight")
# Counts that are not outcomes (a message may have several, or none).
EVENTS = ("duplicates", "redelivered", "retries")


def _col(agg: pd.DataFrame, name: str) -> float:
    """One aggregated value (NaN when the summary has no such field)."""
    return float(agg[name].iloc[0]) if name in agg else float("nan")


def run(argv: Sequence[str] | None = None) -> int:
    opts = common.options(NAME, argv, __doc__)
    reps = 2 if opts.quick else 5
    rows, parts = [], []
    for model in MODELS:
        path = common.MODELS / f"{model}.yaml"
        sc = simq.load(path)
        until = 120.0 if opts.quick else float(sc.run.until)
        warmup = until / 6 if opts.quick else float(sc.run.warmup)
        # A one-point grid: the sweep machinery gives replications, executors and the
        # tidy/aggregated tables the other experiments read.
        agg = common.sweep(opts, path, {"run.until": [until]}, replications=reps,
                           overrides={"run.warmup": warmup})
        row = {
            "model": model,
            "offered_rate": _col(agg, "offered_rate"),
            "throughput": _col(agg, "throughput"),
            "throughput_ci95": _col(agg, "throughput.ci95"),
            "latency_mean": _col(agg, "latency.mean"),
            "latency_p50": _col(agg, "latency.p50"),
            "latency_p50_ci95": _col(agg, "latency.p50.ci95"),
            "latency_p99": _col(agg, "latency.p99"),
            "latency_p99_ci95": _col(agg, "latency.p99.ci95"),
            "produced": _col(agg, "messages.produced"),
        }
        row.update({k: _col(agg, f"messages.{k}") for k in (*OUTCOMES, *EVENTS)})
        rows.append(row)
        parts.append({"model": model, **{k: _col(agg, f"breakdown.{k}") for k in BREAKDOWN}})
    results = pd.DataFrame(rows)
    breakdown = pd.DataFrame(parts)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    _breakdown_bars(axes[0], breakdown)
    _outcome_bars(axes[1], results)
    fig.tight_layout()

    rep = common.Report(
        "Three composed systems",
        "When every feature is on at once (batching, lossy links, retries, dead letters, "
        "durability, outages, prefetch, crashes, autoscaling, sync clients), where does "
        "each system's time go, and what happens to its messages?")
    rep.tables["composed"] = results
    rep.tables["breakdown"] = breakdown
    rep.figures["composed"] = fig
    rep.add(_text(results, breakdown, reps, opts.quick))
    rep.write(opts, COMMAND)
    plt.close(fig)
    return 0


def _breakdown_bars(ax: plt.Axes, breakdown: pd.DataFrame) -> None:
    # Milliseconds on a shared axis would hide the RPC service (tens of ms) next to the
    # queues' seconds, so each bar shows shares of its own mean latency; the total is
    # written beside the bar.
    cmap = plt.get_cmap("tab20")
    steps = [s for s in BREAKDOWN if (breakdown[s].fillna(0).abs() > 0).any()]
    total = breakdown[list(BREAKDOWN)].sum(axis=1, min_count=1).to_numpy()
    left = np.zeros(len(breakdown))
    y = np.arange(len(breakdown))
    for i, step in enumerate(steps):
        share = (breakdown[step].fillna(0).to_numpy() / np.where(total > 0, total, np.nan))
        share = np.nan_to_num(share)
        ax.barh(y, share, left=left, color=cmap(i % 20), label=step)
        left += share
    for yi, t in zip(y, total, strict=True):
        label = "–" if t != t else f"{t:.3g} s" if t >= 1 else f"{t * 1000:.3g} ms"
        ax.text(1.01, yi, label, va="center", fontsize="small")
    ax.set_yticks(y, breakdown["model"])
    ax.set_xlim(0, 1.2)
    ax.set_xlabel("share of the mean latency")
    ax.set_title("Where a message's time goes")
    ax.legend(fontsize="x-small", ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.18))


def _outcome_bars(ax: plt.Axes, results: pd.DataFrame) -> None:
    """What did not simply get delivered, per 10,000 messages produced, on a log scale:
    nearly every message of these systems is delivered, so shares of the whole would
    show one colour."""
    kinds = [k for k in ("dropped", "lost", "expired", "dead_lettered", *EVENTS)
             if k in results and (results[k].fillna(0) > 0).any()]
    height = 0.8 / max(len(kinds), 1)
    produced = results["produced"].to_numpy()
    y = np.arange(len(results))
    for i, k in enumerate(kinds):
        rate = np.nan_to_num(results[k].to_numpy() / produced * 1e4)
        shown = rate > 0  # a log axis has no 0: absent bars are none at all
        ax.barh(y[shown] + (i - (len(kinds) - 1) / 2) * height, rate[shown], height=height,
                color=plt.get_cmap("Set2")(i), label=k)
    ax.set_xscale("log")
    ax.set_yticks(y, results["model"])
    ax.set_xlabel("per 10,000 messages produced (log scale; no bar: none)")
    ax.set_title("What happened besides delivery")
    ax.legend(fontsize="x-small", ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))


def _text(results: pd.DataFrame, breakdown: pd.DataFrame, reps: int, quick: bool) -> str:
    lines = [
        f"Each model as shipped, {reps} replications (seed 1)"
        + (", cut to 120 s for the smoke test" if quick else "") + ". Throughput and "
        "percentiles are means over the replications with their 95% half-widths.",
        "",
        common.md_table(results[["model", "offered_rate", "throughput", "throughput_ci95",
                                 "latency_p50", "latency_p99", "latency_p99_ci95"]]),
        "",
        "Outcomes over the whole run (means per replication), then the counts that are "
        "not outcomes:",
        "",
        common.md_table(results[["model", "produced", *OUTCOMES, *EVENTS]]),
        "",
        "Mean time per delivered message in each step (seconds); the steps add up to the "
        "mean latency:",
        "",
        common.md_table(breakdown),
        "",
    ]
    for r, b in zip(results.itertuples(index=False), breakdown.itertuples(index=False),
                    strict=True):
        steps = {s: getattr(b, s) for s in BREAKDOWN}
        known = {s: v for s, v in steps.items() if v == v}
        top = max(known, key=lambda s: known[s]) if known else "–"
        total = sum(known.values())
        share = known[top] / total if known and total > 0 else float("nan")
        tail = r.latency_p99 / r.latency_p50 if r.latency_p50 > 0 else float("nan")
        lines.append(
            f"- **{r.model}**: {common.fmt(r.throughput)} msg/s delivered of "
            f"{common.fmt(r.offered_rate)} offered; median latency "
            f"{common.fmt(r.latency_p50)} s, p99 {common.fmt(r.latency_p99)} s "
            f"({common.fmt(tail, 3)}× the median). The largest step is `{top}` "
            f"({common.fmt(100 * share, 3)}% of the mean latency). Of "
            f"{common.fmt(r.produced)} messages, {common.fmt(r.lost)} lost, "
            f"{common.fmt(r.dead_lettered)} dead-lettered, {common.fmt(r.expired)} expired; "
            f"{common.fmt(r.duplicates)} processed more than once.")
    lines += [
        "",
        "How to read it: in the Kafka-like pipeline the batch step is the linger the "
        "producer pays for fewer requests, the lost messages are whole batches dropped "
        "by the lossy link, and the tail comes from the minutes the autoscaler needs to "
        "catch up with the load. In the RabbitMQ-like queue the outage and the crashes "
        "are in the tail, the publisher's resends in `retries` and `duplicates`, and "
        "persist/replicate are the price of a durable, replicated queue. In the RPC "
        "service the clients are a closed loop: a crash spell of the database lowers the "
        "throughput instead of growing a queue (a sender held at a full, blocking queue "
        "would show in `other`: here the front end keeps up, so it stays near 0).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    common.main_guard(run)
