"""Figures from results. Each takes data and an optional ``ax`` and returns the figure;
none of them runs a simulation."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["latency_bands", "latency_histogram", "peak_timeline", "queue_length"]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert isinstance(fig, Figure)
        return fig, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def queue_length(
    timeseries: pd.DataFrame, *, queues: list[str] | None = None, window: Any = None,
    ax: Axes | None = None,
) -> Figure:
    """Messages waiting in each queue over time (first replication), window shaded."""
    fig, ax = _axes(ax)
    ts = timeseries[timeseries["replication"] == timeseries["replication"].min()]
    cols = [c for c in ts.columns if c.startswith("queue.") and c.endswith(".length")]
    if queues is not None:
        cols = [f"queue.{q}.length" for q in queues]
    for c in cols:
        ax.step(ts["time"], ts[c], where="post", label=c.split(".")[1], lw=1)
    if window is not None:
        ax.axvspan(window[0], window[1], color="0.9", zorder=0, label="measured window")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("messages waiting")
    ax.set_title("Queue length over time")
    if cols:
        ax.legend(loc="upper left", fontsize="small")
    return fig


def latency_histogram(
    messages: pd.DataFrame, *, window: Any = None, bins: int = 60, ax: Axes | None = None,
) -> Figure:
    """Distribution of end-to-end latency of delivered messages, with mean and p95/p99."""
    fig, ax = _axes(ax)
    m = messages[messages["outcome"] == "delivered"]
    if window is not None:
        m = m[(m["sent"] >= window[0]) & (m["sent"] < window[1])]
    lat = m["latency"].to_numpy()
    if len(lat):
        ax.hist(lat, bins=bins, color="tab:blue", alpha=0.75)
        for q, style in ((None, "-"), (0.95, "--"), (0.99, ":")):
            x = float(lat.mean()) if q is None else float(np.quantile(lat, q))
            label = "mean" if q is None else f"p{int(q * 100)}"
            ax.axvline(x, color="k", ls=style, lw=1, label=f"{label} {x:.3g} s")
        ax.legend(fontsize="small")
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("messages")
    ax.set_title("Latency distribution")
    return fig


def peak_timeline(timeline: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Arrival rate, messages waiting and workers online on a shared time axis.

    ``timeline`` is :meth:`RunResult.timeline` (first replication shown). Without ``ax``,
    three stacked panels; with ``ax``, rate and backlog share it and workers use a twin
    axis on the right.
    """
    tl = timeline
    if "replication" in tl.columns:
        tl = tl[tl["replication"] == tl["replication"].min()]
    queues = [c for c in tl.columns if c.startswith("queue.") and c.endswith(".length")]
    groups = [c for c in tl.columns if c.startswith("consumer.") and c.endswith(".workers")]
    t = tl["time"]
    if ax is None:
        fig, axes = plt.subplots(3, 1, figsize=(7.5, 6.4), sharex=True, layout="constrained")
        rate_ax, q_ax, w_ax = axes
    else:
        fig, _ = _axes(ax)
        rate_ax = q_ax = ax
        w_ax = ax.twinx()
    rate_ax.plot(t, tl["arrival_rate"], color="tab:blue", lw=1, label="arrival rate (msg/s)")
    for c in queues:
        q_ax.plot(t, tl[c], lw=1.2, label=f"waiting in {c.split('.', 1)[1][:-7]}")
    for c in groups:
        w_ax.step(t, tl[c], where="mid", lw=1.2, ls="--",
                  label=f"workers {c.split('.', 1)[1][:-8]}")
    if ax is None:
        rate_ax.set_ylabel("msg/s")
        q_ax.set_ylabel("messages waiting")
        w_ax.set_ylabel("workers")
        w_ax.set_xlabel("simulated time (s)")
        for a in axes:
            a.legend(loc="upper right", fontsize="small")
        rate_ax.set_title("Load, backlog and capacity over time")
    else:
        ax.set_xlabel("simulated time (s)")
        w_ax.set_ylabel("workers")
        lines = ax.get_legend_handles_labels()
        lines2 = w_ax.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right",
                  fontsize="small")
    return fig


def latency_bands(windows: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Latency percentiles per time window: the median line inside p95 and p99 bands.

    ``windows`` is :meth:`RunResult.latency_windows` (first replication shown).
    """
    fig, ax = _axes(ax)
    w = windows
    if "replication" in w.columns and len(w):
        w = w[w["replication"] == w["replication"].min()]
    mid = (w["start"] + w["end"]) / 2
    if "p99" in w.columns:
        ax.fill_between(mid, 0, w["p99"], step="mid", color="tab:orange", alpha=0.2,
                        label="p99")
    if "p95" in w.columns:
        ax.fill_between(mid, 0, w["p95"], step="mid", color="tab:orange", alpha=0.35,
                        label="p95")
    if "p50" in w.columns:
        ax.step(mid, w["p50"], where="mid", color="tab:red", lw=1.2, label="median")
    ax.step(mid, w["mean"], where="mid", color="k", lw=1, ls=":", label="mean")
    ax.set_xlabel("send time (s)")
    ax.set_ylabel("end-to-end latency (s)")
    ax.set_title("Latency per time window")
    ax.legend(loc="upper right", fontsize="small")
    return fig
