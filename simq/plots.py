"""Figures from results. Each takes data and an optional ``ax`` and returns the figure;
none of them runs a simulation."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["latency_histogram", "queue_length"]


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
