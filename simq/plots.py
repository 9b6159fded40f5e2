"""Figures from results. Each takes data and an optional ``ax`` and returns the figure;
none of them runs a simulation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "heatmap",
    "hop_breakdown",
    "latency_bands",
    "latency_cdf",
    "latency_histogram",
    "latency_vs_load",
    "peak_timeline",
    "queue_length",
    "throughput_vs_offered",
    "utilization",
]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert isinstance(fig, Figure)
        return fig, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def queue_length(
    timeseries: pd.DataFrame, *, queues: list[str] | None = None, window: Any = None,
    growth: Mapping[str, float] | None = None, ax: Axes | None = None,
) -> Figure:
    """Messages waiting in each queue over time (first replication), window shaded.

    ``growth`` maps a queue to a growth rate (msg/s, e.g. the document's generation minus
    processing in overload): drawn as a dashed line from the queue's level at the start
    of the window.
    """
    fig, ax = _axes(ax)
    ts = timeseries[timeseries["replication"] == timeseries["replication"].min()]
    cols = [c for c in ts.columns if c.startswith("queue.") and c.endswith(".length")]
    if queues is not None:
        cols = [f"queue.{q}.length" for q in queues]
    for c in cols:
        ax.step(ts["time"], ts[c], where="post", label=c.split(".")[1], lw=1)
    if window is not None:
        ax.axvspan(window[0], window[1], color="0.9", zorder=0, label="measured window")
    t = ts["time"].to_numpy()
    for q, rate in (growth or {}).items():
        col = f"queue.{q}.length"
        if col not in ts or not np.isfinite(rate):
            continue
        t0 = window[0] if window is not None else float(t[0])
        t1 = window[1] if window is not None else float(t[-1])
        y0 = float(np.interp(t0, t, ts[col].to_numpy()))
        ax.plot([t0, t1], [y0, y0 + rate * (t1 - t0)], ls="--", color="k", lw=1,
                label=f"{q}: growth {rate:.3g} msg/s")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("messages waiting")
    ax.set_title("Queue length over time")
    if cols:
        ax.legend(loc="upper left", fontsize="small")
    return fig


def _table(data: Any) -> pd.DataFrame:
    """A sweep result, a DataFrame, or one run's summary dict as a one-row table."""
    if isinstance(data, pd.DataFrame):
        if "replication" in data and "point" in data:
            from simq.sweep import aggregate

            return aggregate(data)
        return data
    if hasattr(data, "aggregated"):
        return data.aggregated
    if isinstance(data, Mapping):
        from simq.analysis.replications import flatten

        return pd.DataFrame([flatten(data)])
    raise TypeError(f"expected a sweep result, a DataFrame or a summary, got {type(data)}")


def _measured(fig: Figure, ax: Axes, xs: np.ndarray, t: pd.DataFrame, y: str, *,
              xlabel: str, ylabel: str, title: str) -> Figure:
    """The simulated points with their CI bars over the curves already drawn, labelled."""
    ax.errorbar(xs, t[y], yerr=_ci(t, y), fmt="o", color="tab:blue", ms=4, capsize=3,
                label="simulated (mean, 95% CI)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


def _ci(t: pd.DataFrame, col: str) -> np.ndarray | None:
    ci = f"{col}.ci95"
    if ci not in t:
        return None
    return np.asarray(np.nan_to_num(t[ci].to_numpy(dtype=float), nan=0.0))


def _sorted(t: pd.DataFrame, x: str) -> pd.DataFrame:
    if x not in t:
        raise KeyError(f"no column {x!r} in the table (have: {', '.join(map(str, t.columns))})")
    return t.sort_values(x)


def latency_vs_load(
    data: Any, *, x: str = "nominal.load", y: str = "latency.mean", ax: Axes | None = None,
    theory: str | tuple[np.ndarray, np.ndarray] | None = "theory.latency_mean",
    formula: str | None = "formula.latency", logy: bool = False,
) -> Figure:
    """Measured latency (mean ± 95% CI) against load, beside the theory curve and the
    document's "processing + transmission" formula.

    ``theory`` names a column of the table, or is an ``(x, y)`` curve drawn as given.
    """
    fig, ax = _axes(ax)
    t = _sorted(_table(data), x)
    xs = t[x].to_numpy(dtype=float)
    if isinstance(theory, tuple):
        ax.plot(theory[0], theory[1], color="tab:orange", lw=1.5, label="theory")
    elif theory is not None and theory in t and t[theory].notna().any():
        ax.plot(xs, t[theory], color="tab:orange", lw=1.5, label="theory")
    if formula is not None and formula in t:
        ax.plot(xs, t[formula], color="tab:red", ls="--", lw=1.2,
                label="document: processing + transmission")
    if logy:
        ax.set_yscale("log")
    return _measured(fig, ax, xs, t, y, xlabel="load ρ = λ / cμ" if x == "nominal.load" else x,
                     ylabel="end-to-end latency (s)", title="Latency against load")


def throughput_vs_offered(
    data: Any, *, x: str = "nominal.offered_rate", ax: Axes | None = None,
) -> Figure:
    """Delivered rate against the offered rate: the line y = x until saturation, then the
    capacity cμ (``nominal.capacity``), with the measured points and their CI bars."""
    fig, ax = _axes(ax)
    t = _sorted(_table(data), x)
    xs = t[x].to_numpy(dtype=float)
    if "nominal.capacity" in t:
        cap = t["nominal.capacity"].to_numpy(dtype=float)
        ax.plot(xs, np.minimum(xs, cap), color="tab:orange", lw=1.5,
                label="min(offered, capacity)")
        finite = cap[np.isfinite(cap)]
        if len(finite) and np.ptp(finite) == 0:
            ax.axhline(finite[0], color="0.5", ls=":", lw=1, label=f"capacity {finite[0]:.3g}")
    return _measured(fig, ax, xs, t, "throughput",
                     xlabel="offered rate (msg/s)" if x == "nominal.offered_rate" else x,
                     ylabel="throughput (delivered msg/s)", title="Throughput against offered rate")


def latency_cdf(
    messages: pd.DataFrame, *, window: Any = None,
    quantiles: tuple[float, ...] = (0.5, 0.95, 0.99), ax: Axes | None = None,
) -> Figure:
    """Empirical CDF of end-to-end latency of delivered messages, percentiles marked."""
    fig, ax = _axes(ax)
    m = messages[messages["outcome"] == "delivered"]
    if window is not None:
        m = m[(m["sent"] >= window[0]) & (m["sent"] < window[1])]
    lat = np.sort(m["latency"].to_numpy(dtype=float))
    if len(lat):
        ax.step(lat, np.arange(1, len(lat) + 1) / len(lat), where="post", color="tab:blue",
                lw=1.2, label="delivered messages")
        for q in quantiles:
            v = float(np.quantile(lat, q))
            ax.plot([v], [q], "o", color="k", ms=4)
            ax.annotate(f"p{q * 100:g} {v:.3g} s", (v, q), textcoords="offset points",
                        xytext=(6, -10), fontsize="small")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Latency CDF")
    return fig


def hop_breakdown(
    data: Any, *, x: str | None = None, ax: Axes | None = None,
) -> Figure:
    """Where the time goes: link delay, queue wait and service per hop as stacked bars,
    one bar per row (a run's summary gives one bar, a sweep one per point)."""
    fig, ax = _axes(ax)
    t = _table(data)
    if x is not None:
        t = _sorted(t, x)
    parts = [c for c in t.columns if not c.endswith(".ci95") and (
        (c.startswith("links.") and c.endswith(".delay_mean"))
        or (c.startswith("queues.") and c.endswith(".wait_mean"))
        or (c.startswith("consumers.") and c.endswith(".service_mean")))]
    pos = np.arange(len(t))
    bottom = np.zeros(len(t))
    for c in parts:
        v = np.nan_to_num(t[c].to_numpy(dtype=float))
        name, what = ".".join(c.split(".")[1:-1]), c.split(".")[-1]
        label = {"delay_mean": "link", "wait_mean": "wait", "service_mean": "service"}[what]
        ax.bar(pos, v, bottom=bottom, label=f"{name} ({label})", width=0.7)
        bottom += v
    labels = [f"{v:.3g}" for v in t[x]] if x is not None else [str(i) for i in range(len(t))]
    ax.set_xticks(pos, labels if len(t) > 1 else ["run"])
    ax.set_xlabel(x if x is not None else "")
    ax.set_ylabel("mean time (s)")
    ax.set_title("Latency per hop")
    if parts:
        ax.legend(fontsize="small")
    return fig


def utilization(data: Any, *, x: str | None = None, ax: Axes | None = None) -> Figure:
    """Busy fraction of each consumer group: bars for one run, lines against ``x`` for a
    sweep; the dotted line is full utilization."""
    fig, ax = _axes(ax)
    t = _table(data)
    cols = [c for c in t.columns if c.startswith("consumers.") and c.endswith(".utilization")]
    names = [c[len("consumers."):-len(".utilization")] for c in cols]
    if x is None:
        vals = [float(t[c].iloc[0]) for c in cols]
        errs = [float(np.nan_to_num(t[f"{c}.ci95"].iloc[0])) if f"{c}.ci95" in t else 0.0
                for c in cols]
        ax.bar(names, vals, yerr=errs, capsize=3, color="tab:blue")
        ax.set_xlabel("consumer group")
    else:
        t = _sorted(t, x)
        for c, n in zip(cols, names, strict=True):
            ax.errorbar(t[x], t[c], yerr=_ci(t, c), marker="o", ms=4, capsize=3, label=n)
        ax.set_xlabel(x)
        if cols:
            ax.legend(fontsize="small")
    ax.axhline(1.0, color="0.5", ls=":", lw=1)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("utilization")
    ax.set_title("Utilization per consumer group")
    return fig


def heatmap(
    data: Any, *, x: str, y: str, value: str = "latency.mean", ax: Axes | None = None,
    log: bool = False,
) -> Figure:
    """A 2-D sweep as a colour grid: ``value`` (mean over replications) for each (x, y)."""
    from matplotlib.colors import LogNorm

    fig, ax = _axes(ax, figsize=(6.4, 4.8))
    t = _table(data)
    grid = t.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
    z = grid.to_numpy(dtype=float)
    norm = LogNorm() if log and np.nanmin(z) > 0 else None
    im = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis", norm=norm)
    ax.set_xticks(range(grid.shape[1]), [f"{v:.3g}" for v in grid.columns], rotation=45)
    ax.set_yticks(range(grid.shape[0]), [f"{v:.3g}" for v in grid.index])
    if z.size <= 100:
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize="x-small",
                        color="w")
    fig.colorbar(im, ax=ax, label=value)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{value} over {x} × {y}")
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
