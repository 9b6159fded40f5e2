"""Figures from results. Each takes data and an optional ``ax`` and returns the figure;
none of them runs a simulation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path as MplPath

from simq.analysis.compare import format_number as _num
from simq.scenario import Scenario

__all__ = [
    "has_graphviz",
    "heatmap",
    "hop_breakdown",
    "latency_bands",
    "latency_cdf",
    "latency_histogram",
    "latency_vs_load",
    "topology_dot",
    "topology_image",
    "peak_timeline",
    "queue_length",
    "TheoryCurve",
    "TheoryOverlay",
    "theory_curve",
    "theory_overlay",
    "throughput_vs_offered",
    "topology",
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
    growth: Mapping[str, float] | None = None, theory: TheoryOverlay | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Messages waiting in each queue over time, window shaded: the first replication
    drawn full, every other one faint in the same colour (how much a run's path varies is
    part of what it shows).

    ``growth`` maps a queue to a growth rate (msg/s, e.g. the document's generation minus
    processing in overload): drawn as a dashed line from the queue's level at the start
    of the window (in the first replication). ``theory`` (:func:`theory_overlay`) adds
    each queue's Lq, dashed.
    """
    fig, ax = _axes(ax)
    ts, others = _first_and_others(timeseries)
    cols = [c for c in ts.columns if c.startswith("queue.") and c.endswith(".length")]
    if queues is not None:
        cols = [f"queue.{q}.length" for q in queues]
    colours = {}
    for c in cols:
        name = c.split(".")[1]
        more = len(others)
        label = name if not more else f"{name} (+{more} replication{'s' * (more > 1)}, faint)"
        (line,) = ax.step(ts["time"], ts[c], where="post", label=label, lw=1, zorder=3)
        colours[c] = line.get_color()
        for o in others:
            ax.step(o["time"], o[c], where="post", lw=0.6, alpha=0.3, color=colours[c],
                    zorder=2)
    for q, (label, lq) in (theory.waiting if theory is not None else {}).items():
        col = f"queue.{q}.length"
        if col in colours:
            ax.axhline(lq, color=colours[col], ls="--", lw=1.2,
                       label=f"{q}: {label} Lq {_num(lq, 3)}")
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
    if cols:  # beside the axes: a busy queue's trace fills every corner inside them
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
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


@dataclass(frozen=True)
class TheoryCurve:
    """Theory's mean latency along a swept parameter, and the model that gives it."""

    x: np.ndarray
    y: np.ndarray
    label: str  # what the legend says, e.g. "M/M/1 theory"


def theory_curve(scenario: Any, path: str, values: Any, *, x: str = "nominal.load",
                 steps: int = 200) -> TheoryCurve | None:
    """Theory's mean latency (:func:`simq.predict`) at ``steps`` values of ``path`` between
    the smallest and the largest of ``values``, each set on ``scenario`` as a sweep sets a
    point. ``x`` is what the curve is drawn against: ``"nominal.load"`` (the load of each
    scenario) or ``path`` itself. None when no model applies anywhere on the range, or when
    the path does not take the values in between (a count, a name): draw the points then."""
    from simq.errors import ScenarioError
    from simq.model.network import flows
    from simq.model.predict import predict
    from simq.scenario import load

    sc = load(scenario)
    try:
        nums = np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        return None
    nums = nums[np.isfinite(nums)]
    if len(nums) < 2 or np.ptp(nums) == 0:
        return None
    xs, ys, names = [], [], []
    for v in np.linspace(nums.min(), nums.max(), steps):
        try:
            at = sc.with_overrides({path: float(v)})
        except ScenarioError:
            return None  # the path takes only some values (an integer count)
        p = predict(at)
        if x == "nominal.load":
            b = flows(at).bottleneck
            xs.append(b.load if b is not None else math.nan)
        else:
            xs.append(float(v))
        ys.append(p.latency_mean if p.applies else math.nan)
        if p.applies and p.model not in names:
            names.append(p.model)
    y = np.asarray(ys, dtype=float)
    if not names or not np.isfinite(y).any():
        return None
    return TheoryCurve(np.asarray(xs, dtype=float), y, f"{' / '.join(names)} theory")


def latency_vs_load(
    data: Any, *, x: str = "nominal.load", y: str = "latency.mean", ax: Axes | None = None,
    theory: str | TheoryCurve | tuple[Any, Any] | None = "theory.latency_mean",
    formula: str | None = "formula.latency", logy: bool = False, xlabel: str | None = None,
) -> Figure:
    """Measured latency (mean ± 95% CI) against load, beside the theory curve and the
    document's "processing + transmission" formula.

    ``theory`` names a column of the table (a line through the points), is a
    :class:`TheoryCurve` (:func:`theory_curve`, labelled by its model), or an ``(x, y)``
    curve drawn as given. ``xlabel`` names the x axis (default: the load, or ``x``).
    """
    fig, ax = _axes(ax)
    t = _sorted(_table(data), x)
    xs = t[x].to_numpy(dtype=float)
    if isinstance(theory, TheoryCurve):
        ax.plot(theory.x, theory.y, color="tab:orange", lw=1.5, label=theory.label)
    elif isinstance(theory, tuple):
        ax.plot(theory[0], theory[1], color="tab:orange", lw=1.5, label="theory")
    elif theory is not None and theory in t and t[theory].notna().any():
        ax.plot(xs, t[theory], color="tab:orange", lw=1.5, label="theory")
    if formula is not None and formula in t:
        ax.plot(xs, t[formula], color="tab:red", ls="--", lw=1.2,
                label="document: processing + transmission")
    if logy:
        ax.set_yscale("log")
    if xlabel is None:
        xlabel = "load ρ = λ / cμ" if x == "nominal.load" else x
    return _measured(fig, ax, xs, t, y, xlabel=xlabel,
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
    quantiles: tuple[float, ...] = (0.5, 0.95, 0.99), theory: TheoryOverlay | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Empirical CDF of end-to-end latency of delivered messages, percentiles marked;
    ``theory`` (:func:`theory_overlay`) adds the model's CDF, dashed, where it has one."""
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
    if theory is not None and theory.latency is not None:
        t, f = theory.latency
        if len(lat):  # the model's curve over the measured range, not its far tail
            keep = t <= max(float(lat[-1]), float(np.quantile(lat, 0.999)))
            t, f = t[keep], f[keep]
        ax.plot(t, f, color="tab:orange", ls="--", lw=1.5, label=theory.label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Latency CDF")
    return fig


def hop_breakdown(
    data: Any, *, x: str | None = None, ax: Axes | None = None, xlabel: str | None = None,
) -> Figure:
    """Where the time goes: link delay, queue wait and service per hop as stacked bars,
    one bar per row (a run's summary gives one bar, a sweep one per point); ``xlabel``
    names the axis of ``x`` (default: ``x``)."""
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
    ax.set_xlabel(xlabel if xlabel is not None else x if x is not None else "")
    ax.set_ylabel("mean time (s)")
    ax.set_title("Latency per hop")
    if parts:
        ax.legend(fontsize="small")
    return fig


def utilization(data: Any, *, x: str | None = None, theory: TheoryOverlay | None = None,
                ax: Axes | None = None, xlabel: str | None = None) -> Figure:
    """Busy fraction of each consumer group: bars for one run, lines against ``x`` for a
    sweep (``xlabel`` names its axis); the dotted line is full utilization. For one run ``theory``
    (:func:`theory_overlay`) marks each group's rho, dashed across its bar."""
    fig, ax = _axes(ax)
    t = _table(data)
    cols = [c for c in t.columns if c.startswith("consumers.") and c.endswith(".utilization")]
    names = [c[len("consumers."):-len(".utilization")] for c in cols]
    if x is None:
        vals = [float(t[c].iloc[0]) for c in cols]
        errs = [float(np.nan_to_num(t[f"{c}.ci95"].iloc[0])) if f"{c}.ci95" in t else 0.0
                for c in cols]
        ax.bar(names, vals, yerr=errs, capsize=3, color="tab:blue", label="measured")
        marks = [(i, theory.utilization[n]) for i, n in enumerate(names)
                 if theory is not None and n in theory.utilization]
        for k, (i, rho) in enumerate(marks):
            assert theory is not None
            ax.plot([i - 0.4, i + 0.4], [rho, rho], color="tab:orange", ls="--", lw=2,
                    label=f"{theory.label} ρ" if k == 0 else "_nolegend_")
        if marks:
            ax.legend(loc="best", fontsize="small")
        ax.set_xlabel("consumer group")
    else:
        t = _sorted(t, x)
        for c, n in zip(cols, names, strict=True):
            ax.errorbar(t[x], t[c], yerr=_ci(t, c), marker="o", ms=4, capsize=3, label=n)
        ax.set_xlabel(xlabel if xlabel is not None else x)
        if cols:
            ax.legend(fontsize="small")
    ax.axhline(1.0, color="0.5", ls=":", lw=1)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("utilization")
    ax.set_title("Utilization per consumer group")
    return fig


def heatmap(
    data: Any, *, x: str, y: str, value: str = "latency.mean", ax: Axes | None = None,
    log: bool = False, names: Mapping[str, str] | None = None,
) -> Figure:
    """A 2-D sweep as a colour grid: ``value`` (mean over replications) for each (x, y);
    ``names`` gives readable names of the columns for the axes, the colour bar and the
    title (default: the column names)."""
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
    name = {x: x, y: y, value: value, **(names or {})}
    fig.colorbar(im, ax=ax, label=name[value])
    ax.set_xlabel(name[x])
    ax.set_ylabel(name[y])
    title = f"{name[value]} over {name[x]} × {name[y]}"
    ax.set_title(title[:1].upper() + title[1:])
    return fig


def latency_histogram(
    messages: pd.DataFrame, *, window: Any = None, bins: int = 60,
    theory: TheoryOverlay | None = None, ax: Axes | None = None,
) -> Figure:
    """Distribution of end-to-end latency of delivered messages, with mean and p95/p99;
    ``theory`` (:func:`theory_overlay`) adds the model's density as the count it expects
    in each bin, dashed."""
    fig, ax = _axes(ax)
    m = messages[messages["outcome"] == "delivered"]
    if window is not None:
        m = m[(m["sent"] >= window[0]) & (m["sent"] < window[1])]
    lat = m["latency"].to_numpy()
    if len(lat):
        _, edges, _ = ax.hist(lat, bins=bins, color="tab:blue", alpha=0.75)
        if theory is not None and theory.latency is not None:
            t, f = theory.latency
            expected = len(lat) * np.diff(np.interp(edges, t, f))
            ax.stairs(expected, edges, color="tab:orange", ls="--", lw=1.5,
                      label=theory.label)
        for q, style in ((None, "-"), (0.95, "--"), (0.99, ":")):
            x = float(lat.mean()) if q is None else float(np.quantile(lat, q))
            label = "mean" if q is None else f"p{int(q * 100)}"
            ax.axvline(x, color="k", ls=style, lw=1, label=f"{label} {x:.3g} s")
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("messages")
    ax.set_title("Latency distribution")
    return fig


def _first_and_others(table: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """A per-replication table's first replication, and each of the others."""
    if "replication" not in table.columns or not len(table):
        return table, []
    reps = sorted(table["replication"].unique())
    return (table[table["replication"] == reps[0]],
            [table[table["replication"] == r] for r in reps[1:]])


def peak_timeline(timeline: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Arrival rate, messages waiting and workers online on a shared time axis.

    ``timeline`` is :meth:`RunResult.timeline`: the first replication drawn full, the
    arrival rate and the backlog of every other one faint in the same colours. Without
    ``ax``, three stacked panels; with ``ax``, rate and backlog share it and workers use a
    twin axis on the right.
    """
    tl, others = _first_and_others(timeline)
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
    for o in others:
        rate_ax.plot(o["time"], o["arrival_rate"], color="tab:blue", lw=0.6, alpha=0.3)
    for c in queues:
        (line,) = q_ax.plot(t, tl[c], lw=1.2, label=f"waiting in {c.split('.', 1)[1][:-7]}")
        for o in others:
            q_ax.plot(o["time"], o[c], lw=0.6, alpha=0.3, color=line.get_color())
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

    ``windows`` is :meth:`RunResult.latency_windows`: the bands of the first replication,
    and the median of every other one as a faint line.
    """
    fig, ax = _axes(ax)
    w, others = _first_and_others(windows)
    mid = (w["start"] + w["end"]) / 2
    for k, o in enumerate(others):
        if "p50" in o.columns:
            ax.step((o["start"] + o["end"]) / 2, o["p50"], where="mid", color="tab:red",
                    lw=0.6, alpha=0.35,
                    label=(f"median, {len(others)} other replication"
                           f"{'s' * (len(others) > 1)}") if k == 0 else None)
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



# Theory overlays -----------------------------------------------------------------------

@dataclass(frozen=True)
class TheoryOverlay:
    """What the queueing model of a scenario predicts, in the terms of a run's figures.

    ``latency`` is the model's distribution of end-to-end latency as ``(t, F(t))`` points
    (None when the model gives only means), ``waiting`` the mean number waiting (Lq) per
    queue, ``utilization`` the busy fraction per consumer group; ``label`` names the
    model on every line drawn from it, e.g. "M/M/1 theory".
    """

    label: str
    latency: tuple[np.ndarray, np.ndarray] | None = None
    waiting: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    utilization: Mapping[str, float] = field(default_factory=dict)


def theory_overlay(scenario: Any, prediction: Any = None) -> TheoryOverlay | None:
    """The overlay of ``simq.predict(scenario)`` (or of ``prediction``), None when no model
    applies. Only a single M/M/1 station whose sojourn is the whole latency (no link or
    codec time on the way) has a latency distribution here: exponential with rate
    mu - lambda, drawn from :func:`simq.theory.mm1_sojourn_quantile`."""
    from simq.model.predict import predict
    from simq.scenario import load
    from simq.theory import mm1_sojourn_quantile

    sc = load(scenario)
    pred = predict(sc) if prediction is None else prediction
    if not pred.applies:
        return None
    waiting = {q: (f"{m.model} theory", float(m.length_mean))
               for q, m in pred.queues.items() if math.isfinite(m.length_mean)}
    drains = sc.drains()
    rho: dict[str, float] = {}
    for g in sc.consumers:
        intake = sc.intake(g)
        q = intake[0][0]
        if len(intake) == 1 and drains[q] == [g] and q in pred.queues:
            u = float(pred.queues[q].utilization)
            if math.isfinite(u):
                rho[g] = u
    latency = None
    if len(pred.queues) == 1:
        m = next(iter(pred.queues.values()))
        if (m.model == "M/M/1" and m.stable and m.service_mean > 0
                and math.isclose(pred.latency_mean, m.sojourn_mean, rel_tol=1e-9)):
            mu = 1.0 / m.service_mean
            qs = 1.0 - np.geomspace(1.0, 1e-6, 400)
            qs[0] = 0.0
            t = np.array([mm1_sojourn_quantile(m.arrival_rate, mu, float(q)) for q in qs])
            latency = (t, qs)
    return TheoryOverlay(f"{pred.model} theory", latency, waiting, rho)


# Topology ------------------------------------------------------------------------------

_FONT = 8.0  # points, every label of the diagram
_PAD = 0.07  # inches between a label and its box
_COL_GAP = 0.6  # inches between columns (room for an edge's probability)
_ROW_GAP = 0.3
_LANE = 0.28  # inches between the lanes of edges routed above or below the drawing
_STYLE = {  # kind -> (face colour, edge colour)
    "producer": ("#dbe9f6", "#2b6cb0"),
    "link": ("#eeeeee", "#777777"),
    "queue": ("#fdebd3", "#c05621"),
    "topic": ("#fef5c7", "#b7791f"),
    "dead-letter": ("#fde2e2", "#c53030"),
    "group": ("#def3e4", "#2f855a"),
}
_EDGES = {  # kind -> (colour, line style, what the legend says)
    "flow": ("#333333", "-", "messages"),
    "dead-letter": ("#c53030", "--", "dead letters"),
    "reply": ("#2b6cb0", ":", "replies to a waiting sender"),
}


@dataclass
class _Node:
    kind: str
    text: str
    partitions: int = 0  # a partitioned topic draws one cell per partition
    col: int = 0
    w: float = 0.0
    h: float = 0.0
    x: float = 0.0  # centre, inches
    y: float = 0.0
    virtual: bool = False  # a bend of an edge that spans several columns


@dataclass
class _Edge:
    src: str
    dst: str
    kind: str = "flow"
    label: str = ""


def _seconds(t: float) -> str:
    if t == 0 or not math.isfinite(t):
        return _num(t)
    if t < 1e-3:
        return f"{_num(t * 1e6, 3)} µs"
    if t < 1:
        return f"{_num(t * 1e3, 3)} ms"
    return f"{_num(t, 3)} s"


def _bytes_rate(b: float) -> str:
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if b >= scale:
            return f"{_num(b / scale, 3)} {unit}"
    return f"{_num(b, 3)} B/s"


def _rate(x: float) -> str:
    return f"{_num(x, 3)} msg/s"


def _dead_letters(sc: Scenario) -> dict[str, str]:
    """Each queue or topic with a dead-letter queue, and that queue."""
    out = {q: spec.dead_letter for q, spec in sc.model.queues.items()
           if spec.dead_letter is not None}
    out.update({t: spec.dead_letter for t, spec in sc.topics.items()
                if spec.dead_letter is not None})
    return out


def _graph(sc: Scenario) -> tuple[dict[str, _Node], list[_Edge]]:
    """The scenario as boxes and arrows: producers, links, queues and topics, groups."""
    from simq.model.network import flows, network, service_mean

    net, fl, drains = network(sc), flows(sc), sc.drains()
    nodes: dict[str, _Node] = {}
    edges: list[_Edge] = []
    letters = _dead_letters(sc)
    dead = set(letters.values())

    def hop(src: str, dst: str, kind: str = "flow", label: str = "") -> None:
        # A link is a box of its own on the way: its latency and bandwidth are written in it.
        key = f"{src}->{dst}"
        spec = sc.links.get(key)
        if spec is None:
            edges.append(_Edge(src, dst, kind, label))
            return
        owner = sc.links[spec.shares] if spec.shares is not None else spec
        lines = ["link", f"latency {_seconds(spec.latency.mean)}"]
        if math.isfinite(owner.bandwidth):
            lines.append(_bytes_rate(owner.bandwidth)
                         + (f" (shares {spec.shares})" if spec.shares is not None else ""))
        if spec.loss > 0:
            lines.append(f"loss {spec.loss:.3g}")
        nodes[f"link:{key}"] = _Node("link", "\n".join(lines))
        edges.append(_Edge(src, f"link:{key}", kind, label))
        edges.append(_Edge(f"link:{key}", dst, kind))

    for name, p in sc.producers.items():
        rate = _rate(net.rates[name])
        lines = [name]
        if p.mode == "sync":
            lines += [f"sync, {p.clients} client{'s' if p.clients != 1 else ''}",
                      f"≈ {rate}"]
        elif p.mode == "window":
            lines += [f"window {p.window}", f"≈ {rate}"]
        else:
            lines.append(rate + (" (mean)" if p.varying_load is not None else ""))
        nodes[name] = _Node("producer", "\n".join(lines))
    for name, q in sc.model.queues.items():
        qf = fl.queues[name]
        cap = "∞" if math.isinf(q.capacity) else f"{_num(q.capacity)} ({q.overflow})"
        lines = [name, f"capacity {cap}"]
        # Nobody reads a dead-letter queue: on paper its messages have left (no rate).
        if drains[name] or name not in dead:
            lines.append(f"λ {_rate(qf.arrival_rate)}")
            if qf.capacity > 0:
                lines.append(f"ρ {_num(qf.load, 3)}")
        nodes[name] = _Node("dead-letter" if name in dead else "queue", "\n".join(lines))
    for name, t in sc.topics.items():
        if t.subscribers is not None:
            lines = [name, f"topic, fan-out to {len(t.subscribers)}"]
            nodes[name] = _Node("topic", "\n".join(lines))
            continue
        views = sc.views(name)
        first = next(iter(views.values()))
        lam = sum(fl.queues[q].arrival_rate for q in first)
        lines = [name, f"topic, {t.partitions} partition{'s' if t.partitions != 1 else ''}",
                 f"λ {_rate(lam)}"]
        if math.isfinite(t.capacity):
            lines.append(f"capacity {_num(t.capacity)} each ({t.overflow})")
        nodes[name] = _Node("topic", "\n".join(lines), partitions=t.partitions or 0)
    for name, c in sc.consumers.items():
        mean = service_mean(c)
        mu = _num(1 / mean, 3) if mean > 0 else "∞"
        count = (f"{c.autoscale.min}–{c.autoscale.max}" if c.autoscale is not None
                 else f"{c.count}" + (" (scheduled)" if c.schedule else ""))
        lines = [name, f"{count} × {mu} msg/s"]
        if c.batch > 1:
            lines.append(f"batches of {c.batch}")
        routes = c.routes
        leave = sum(p for d, p in routes if d is None)
        if 0 < leave < 1:
            lines.append(f"{leave:.0%} leave")
        nodes[name] = _Node("group", "\n".join(lines))

    for name, p in sc.producers.items():
        hop(name, p.to)
    for name, t in sc.topics.items():
        for sub in t.subscribers or []:
            edges.append(_Edge(name, sub))
    for name, dlq in letters.items():
        edges.append(_Edge(name, dlq, "dead-letter"))
    for name, c in sc.consumers.items():
        # Where the group takes from: a queue, or its view of a topic's partitions.
        part = sc.partition_of(sc.intake(name)[0][0])
        hop(part[0] if part is not None else c.source, name)
        routes = c.routes
        for dest, share in routes:
            if dest is not None:
                hop(name, dest, label=f"{share:.0%}" if len(routes) > 1 else "")
    # A sync or window sender waits for its reply: it comes back from the groups where
    # its messages leave.
    flow: dict[str, list[str]] = {}
    for e in edges:
        if e.kind == "flow":
            flow.setdefault(e.src, []).append(e.dst)
    for name, p in sc.producers.items():
        if not p.waits_for_reply:
            continue
        seen, todo = {name}, [name]
        while todo:
            for nxt in flow.get(todo.pop(), []):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for g, c in sc.consumers.items():
            if g in seen and any(d is None for d, _ in c.routes):
                edges.append(_Edge(g, name, "reply"))
    return nodes, edges


def _layers(nodes: dict[str, _Node], edges: list[_Edge]) -> tuple[list[_Edge], list[_Edge]]:
    """Columns by the longest path from the producers; returns the edges drawn left to
    right and those routed round the drawing (replies, loops back)."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        if e.kind != "reply":
            out[e.src].append(e.dst)
    # Depth-first from the producers (then anything left): an edge to a node still on
    # the path closes a loop, and is drawn back round instead of setting a column.
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        state[n] = 1
        for m in out[n]:
            if state.get(m) == 1:
                back.add((n, m))
            elif m not in state:
                visit(m)
        state[n] = 2

    starts = [n for n, v in nodes.items() if v.kind == "producer"] + list(nodes)
    for n in starts:
        if n not in state:
            visit(n)
    forward = [e for e in edges if e.kind != "reply" and (e.src, e.dst) not in back]
    indeg = {n: 0 for n in nodes}
    for e in forward:
        indeg[e.dst] += 1
    ready = [n for n in nodes if indeg[n] == 0]
    while ready:
        n = ready.pop(0)
        for e in forward:
            if e.src == n:
                nodes[e.dst].col = max(nodes[e.dst].col, nodes[n].col + 1)
                indeg[e.dst] -= 1
                if indeg[e.dst] == 0:
                    ready.append(e.dst)
    around = [e for e in edges if e not in forward]
    return forward, around


def _measure(fig: Figure, nodes: dict[str, _Node]) -> None:
    for n in nodes.values():
        t = fig.text(0, 0, n.text, fontsize=_FONT, ha="center", va="center",
                     linespacing=1.25)
        box = t.get_window_extent()
        t.remove()
        n.w = box.width / fig.dpi + 2 * _PAD
        n.h = box.height / fig.dpi + 2 * _PAD + (0.16 if n.partitions else 0.0)


def _place(nodes: dict[str, _Node], forward: list[_Edge]) -> dict[tuple[str, str], list[str]]:
    """Order each column to keep edges short and uncrossed, then give every box its
    centre; an edge spanning several columns gets a bend in each (returned, per edge)."""
    bends: dict[tuple[str, str], list[str]] = {}
    for i, e in enumerate(forward):
        a, b = nodes[e.src].col, nodes[e.dst].col
        chain = []
        for c in range(a + 1, b):
            v = f"bend:{i}:{c}"
            nodes[v] = _Node("bend", "", col=c, w=0.0, h=0.12, virtual=True)
            chain.append(v)
        bends[(e.src, e.dst)] = chain
    hops: list[tuple[str, str]] = []
    for e in forward:
        path = [e.src, *bends[(e.src, e.dst)], e.dst]
        hops += list(zip(path, path[1:], strict=False))
    ncols = max(n.col for n in nodes.values()) + 1
    cols: list[list[str]] = [[k for k, n in nodes.items() if n.col == c] for c in range(ncols)]
    pos = {k: float(i) for col in cols for i, k in enumerate(col)}
    for sweep in range(8):  # barycentre ordering, left to right then right to left
        rng = range(1, ncols) if sweep % 2 == 0 else range(ncols - 2, -1, -1)
        for c in rng:
            def key(k: str, c: int = c, sweep: int = sweep) -> float:
                near = [pos[a] for a, b in hops if b == k] if sweep % 2 == 0 else \
                       [pos[b] for a, b in hops if a == k]
                return sum(near) / len(near) if near else pos[k]
            cols[c].sort(key=key)
            for i, k in enumerate(cols[c]):
                pos[k] = float(i)
    x = 0.0
    for col in cols:
        width = max(nodes[k].w for k in col)
        height = sum(nodes[k].h for k in col) + _ROW_GAP * (len(col) - 1)
        y = height / 2
        for k in col:
            n = nodes[k]
            n.x, n.y = x + width / 2, y - n.h / 2
            y -= n.h + _ROW_GAP
        x += width + _COL_GAP
    # Then each box level with what feeds it, as far as the column's order allows: top
    # down, never closer than the gap to the box above; the column shifted as a whole to
    # the least total offset.
    for col in cols[1:]:
        want = []
        for k in col:
            near = [nodes[a].y for a, b in hops if b == k]
            want.append(sum(near) / len(near) if near else nodes[k].y)
        got: list[float] = []
        for i, k in enumerate(col):
            y = want[i] if i == 0 else min(
                want[i], got[-1] - nodes[col[i - 1]].h / 2 - _ROW_GAP - nodes[k].h / 2)
            got.append(y)
        shift = sum(w - g for w, g in zip(want, got, strict=True)) / len(col)
        for k, g in zip(col, got, strict=True):
            nodes[k].y = g + shift
    return bends


Layout = Literal["auto", "graphviz", "matplotlib"]
_LINE_STYLES = {"-": "solid", "--": "dashed", ":": "dotted"}
_DOT_DPI = 144.0  # Graphviz's PNGs: sharp in the report at their natural size


def _dot_text(text: str) -> str:
    """A DOT string: quoted, its backslashes and quotes escaped, lines centred."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def topology_dot(scenario: Any) -> str:
    """The diagram of :func:`topology` as Graphviz DOT source: the same boxes (with the
    same text and colours) and the same arrows (messages, dead letters dashed, replies
    dotted), laid out left to right by ``dot``."""
    from simq.scenario import load

    nodes, edges = _graph(load(scenario))
    out = ["digraph simq {",
           '  rankdir=LR; nodesep=0.25; ranksep=0.45;',
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];']
    for key, n in nodes.items():
        face, line = _STYLE[n.kind]
        out.append(f'  {_dot_text(key)} [label={_dot_text(n.text)}, fillcolor="{face}", '
                   f'color="{line}"];')
    for e in edges:
        colour, style, _ = _EDGES[e.kind]
        attrs = [f'color="{colour}"', f"style={_LINE_STYLES[style]}"]
        if e.label:
            attrs.append(f"label={_dot_text(e.label)}")
        if e.kind == "reply":  # back to the sender: no say in the columns
            attrs.append("constraint=false")
        out.append(f"  {_dot_text(e.src)} -> {_dot_text(e.dst)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def has_graphviz() -> bool:
    """Whether Graphviz's ``dot`` is on the PATH (what ``layout="auto"`` uses)."""
    import shutil

    return shutil.which("dot") is not None


def topology_image(scenario: Any, fmt: str = "svg", *, layout: Layout = "auto") -> bytes:
    """The diagram as an SVG or PNG file's bytes: drawn by Graphviz when ``dot`` is
    installed (``layout="auto"``, or ``"graphviz"`` to insist), by simq's own layout in
    matplotlib otherwise (``"matplotlib"`` to insist)."""
    if fmt not in {"svg", "png"}:
        raise ValueError(f"fmt must be svg or png, got {fmt!r}")
    if _graphviz(layout):
        return _dot(topology_dot(scenario), fmt)
    import io

    fig = topology(scenario, layout="matplotlib")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _graphviz(layout: Layout) -> bool:
    if layout == "graphviz":
        if not has_graphviz():
            raise RuntimeError("layout='graphviz' needs Graphviz's dot on the PATH "
                               "(e.g. apt install graphviz); layout='auto' falls back to "
                               "matplotlib")
        return True
    if layout not in ("auto", "matplotlib"):
        raise ValueError(f"layout must be auto, graphviz or matplotlib, got {layout!r}")
    return layout == "auto" and has_graphviz()


def _dot(source: str, fmt: str) -> bytes:
    """``dot -T<fmt>`` of ``source``; its own error if Graphviz fails."""
    import subprocess

    args = ["dot", f"-T{fmt}"] + ([f"-Gdpi={_DOT_DPI:g}"] if fmt == "png" else [])
    done = subprocess.run(args, input=source.encode(), capture_output=True, timeout=60,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def topology(scenario: Any, *, ax: Axes | None = None, layout: Layout = "auto") -> Figure:
    """The scenario as a diagram, left to right: producers, links, queues and topics (with
    their partitions), consumer groups and where they send on (dead-letter queues, the
    replies of waiting senders), each box with its rates and capacities.

    ``scenario`` is a :class:`~simq.Scenario` or anything :func:`simq.load` takes. Without
    ``ax`` the figure is sized to the diagram; on a given ``ax`` the labels keep their size.
    With Graphviz's ``dot`` installed and no ``ax`` (``layout="auto"``), the figure shows
    Graphviz's drawing of :func:`topology_dot`; ``layout="matplotlib"`` always draws
    simq's own layout (the one drawn on a given ``ax``).
    """
    from simq.scenario import load

    sc = load(scenario)
    if ax is None and _graphviz(layout):
        import io

        image = plt.imread(io.BytesIO(_dot(topology_dot(sc), "png")), format="png")
        fig = plt.figure(figsize=(image.shape[1] / _DOT_DPI, image.shape[0] / _DOT_DPI),
                         dpi=_DOT_DPI)
        shown = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        shown.imshow(image, interpolation="none")
        shown.set_axis_off()
        return fig
    nodes, edges = _graph(sc)
    forward, around = _layers(nodes, edges)
    own = ax is None
    if ax is None:
        fig = plt.figure(figsize=(6.0, 3.0))
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    else:
        fig, ax = _axes(ax)
    _measure(fig, nodes)
    bends = _place(nodes, forward)
    real = {k: n for k, n in nodes.items() if not n.virtual}
    top = max(n.y + n.h / 2 for n in real.values())
    bottom = min(n.y - n.h / 2 for n in real.values())
    left = min(n.x - n.w / 2 for n in real.values())
    right = max(n.x + n.w / 2 for n in real.values())

    paths: list[list[str]] = [[e.src, *bends[(e.src, e.dst)], e.dst] for e in forward]
    outs: dict[str, list[tuple[float, int]]] = {}
    ins: dict[str, list[tuple[float, int]]] = {}
    for i, p in enumerate(paths):
        outs.setdefault(p[0], []).append((nodes[p[1]].y, i))
        ins.setdefault(p[-1], []).append((nodes[p[-2]].y, i))
    # Replies run below the boxes, loops back above, each in a lane of its own: out of the
    # right side of a box, along the lane, into the left side of the other.
    # Ports are ordered so that these edges do not cross near a box: out of a box the
    # nearest lane leaves highest (lowest, below), into one the farthest comes in highest.
    lanes: dict[int, float] = {}
    above = below = 0
    # Shorter spans nearer the boxes, so that a longer one passes round them.
    around.sort(key=lambda e: (e.kind, abs(nodes[e.src].col - nodes[e.dst].col),
                               nodes[e.src].y if e.kind == "reply" else -nodes[e.src].y))
    for j, e in enumerate(around, start=len(paths)):
        if e.kind == "reply":
            below += 1
            lanes[j], k, sign = bottom - below * _LANE, below, -1.0
        else:
            above += 1
            lanes[j], k, sign = top + above * _LANE, above, 1.0
        outs.setdefault(e.src, []).append((sign * (1e3 - k), j))
        ins.setdefault(e.dst, []).append((sign * (1e3 + k), j))
    start, end = _ports(nodes, outs, 1.0), _ports(nodes, ins, -1.0)
    for i, (e, p) in enumerate(zip(forward, paths, strict=True)):
        verts = [start[i], *[(nodes[v].x, nodes[v].y) for v in p[1:-1]], end[i]]
        _arrow(ax, verts, e.kind)
        if e.label:
            (x0, y0), (x1, y1) = verts[0], verts[1]
            _edge_label(ax, x0 + 0.4 * (x1 - x0), y0 + 0.4 * (y1 - y0), e.label)
    # The turns sit beyond the widest box of the column, one track per edge, the nearest
    # lane's nearest the boxes.
    col_l: dict[int, float] = {}
    col_r: dict[int, float] = {}
    for n in real.values():
        col_l[n.col] = min(col_l.get(n.col, math.inf), n.x - n.w / 2)
        col_r[n.col] = max(col_r.get(n.col, -math.inf), n.x + n.w / 2)
    gone: dict[tuple[int, str], int] = {}
    came: dict[tuple[int, str], int] = {}
    for j, e in enumerate(around, start=len(paths)):
        a, b = (nodes[e.src].col, e.kind), (nodes[e.dst].col, e.kind)
        gone[a] = gone.get(a, 0) + 1
        came[b] = came.get(b, 0) + 1
        (xa, ya), (xb, yb) = start[j], end[j]
        xa2 = col_r[a[0]] + 0.1 * gone[a]
        xb2 = col_l[b[0]] - 0.1 * came[b]
        lane = lanes[j]
        _arrow(ax, [(xa, ya), (xa2, ya), (xa2, lane), (xb2, lane), (xb2, yb), (xb, yb)],
               e.kind)
        left = min(left, xb2 - 0.05)
        right = max(right, xa2 + 0.05)
        if e.label:
            _edge_label(ax, (xa2 + xb2) / 2, lane, e.label)
    for n in real.values():
        face, edge = _STYLE[n.kind]
        ax.add_patch(FancyBboxPatch((n.x - n.w / 2, n.y - n.h / 2), n.w, n.h,
                                    boxstyle="round,pad=0,rounding_size=0.06", fc=face,
                                    ec=edge, lw=1.0, zorder=2))
        shift = 0.08 if n.partitions else 0.0
        ax.text(n.x, n.y + shift, n.text, fontsize=_FONT, ha="center", va="center",
                linespacing=1.25, zorder=3)
        if n.partitions:
            cells = min(n.partitions, 24)
            cw = min(0.12, (n.w - 2 * _PAD) / cells)
            x0 = n.x - cells * cw / 2
            for j in range(cells):
                ax.add_patch(Rectangle((x0 + j * cw, n.y - n.h / 2 + _PAD), cw * 0.8, 0.1,
                                       fc=edge, ec="none", alpha=0.6, zorder=3))
    kinds = dict.fromkeys(e.kind for e in edges)
    handles = [Line2D([], [], color=_EDGES[k][0], ls=_EDGES[k][1], lw=1.2,
                      label=_EDGES[k][2]) for k in kinds]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 0.0), ncol=3,
              fontsize=_FONT - 1, frameon=False, borderaxespad=0.2)
    lo, hi = bottom - below * _LANE - 0.15, top + above * _LANE + 0.15
    ax.set_xlim(left - 0.15, right + 0.15)
    ax.set_ylim(lo, hi + 0.3)
    ax.text(left, hi + 0.15, f"{sc.name}: topology", fontsize=_FONT + 2, fontweight="bold",
            va="center")
    ax.set_aspect("equal")
    ax.set_axis_off()
    if own:
        # Our own figure: one data unit is one inch, the legend in a band below.
        legend_h = 0.3
        w, h = right - left + 0.3, hi + 0.3 - lo
        fig.set_size_inches(w, h + legend_h)
        ax.set_position((0.0, legend_h / (h + legend_h), 1.0, h / (h + legend_h)))
    return fig


def _ports(nodes: Mapping[str, _Node], ends: dict[str, list[tuple[float, int]]],
           side: float) -> dict[int, tuple[float, float]]:
    """Where each edge (by index) leaves or enters a box: spread along its right (side 1)
    or left (-1) side in the order of the keys, highest first, so that arrows from one
    box do not start on top of each other."""
    out: dict[int, tuple[float, float]] = {}
    for k, items in ends.items():
        n = nodes[k]
        items.sort(key=lambda t: -t[0])
        for j, (_, i) in enumerate(items):
            frac = (j + 1) / (len(items) + 1)
            y = n.y + n.h * 0.3 - frac * n.h * 0.6 if len(items) > 1 else n.y
            out[i] = (n.x + side * n.w / 2, y)
    return out


def _edge_label(ax: Axes, x: float, y: float, text: str) -> None:
    ax.text(x, y, text, fontsize=_FONT - 1, ha="center", va="center", zorder=4,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})


def _arrow(ax: Axes, verts: list[tuple[float, float]], kind: str) -> None:
    colour, style, _ = _EDGES[kind]
    codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(verts) - 1)
    ax.add_patch(FancyArrowPatch(path=MplPath(verts, codes), arrowstyle="-|>",
                                 mutation_scale=9, color=colour, ls=style, lw=1.0, zorder=1,
                                 shrinkA=0, shrinkB=0))
