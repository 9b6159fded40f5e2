"""Peak-load measures from a replication's records: worker counts over time and
worker-seconds, the peak of a queue and how long it took to drain, latency per time window,
and a timeline of arrival rate, backlog and workers. Pure functions of the records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from simq.engine.recorder import DELIVERED, Records, level_at
from simq.scenario import Scenario

if TYPE_CHECKING:
    import pandas as pd
else:  # built on first use: a streaming run never needs pandas (simq/_lazy.py)
    from simq._lazy import LazyModule

    pd = LazyModule("pandas")

__all__ = ["has_peak_features", "lag_at", "latency_windows", "queue_peak", "timeline",
           "worker_seconds", "workers_at"]


def has_peak_features(sc: Scenario) -> bool:
    """Whether a scenario has time-varying load, a backlog or a changing worker count."""
    return (any(p.mode != "sync" and p.arrivals is not None for p in sc.producers.values())
            or any(q.backlog is not None and q.backlog.count > 0 for q in sc.queues.values())
            or any(c.schedule is not None or c.autoscale is not None
                   for c in sc.consumers.values()))


def _steps(rec: Records, group: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The online worker count of a group as a step function: change times and values."""
    w = rec.workers
    if not w or not (w["group"] == group).any():
        return np.array([0.0]), np.array([count])
    at = w["group"] == group
    # Several changes at one instant: the last one is the level from then on.
    t, n = w["t"][at], w["online"][at]
    last = np.r_[t[1:] != t[:-1], True]
    return t[last], n[last]


def workers_at(rec: Records, group: int, count: int, times: np.ndarray) -> np.ndarray:
    """Workers online in group ``group`` at each time (``count`` for a fixed group)."""
    t, n = _steps(rec, group, count)
    i = np.searchsorted(t, times, side="right") - 1
    return n[np.clip(i, 0, None)]


def worker_seconds(rec: Records, group: int, count: int, t0: float, t1: float) -> float:
    """The integral of the online worker count over [t0, t1] (idle workers count)."""
    if not t1 > t0:
        return math.nan
    t, n = _steps(rec, group, count)
    ends = np.r_[t[1:], np.inf]
    return float((n * np.clip(np.minimum(ends, t1) - np.maximum(t, t0), 0, None)).sum())


def queue_peak(arrived: np.ndarray, left: np.ndarray, t0: float,
               t1: float) -> tuple[int, float, float]:
    """(peak length, when first reached, time from then until the line is first empty)
    for the waiting line made of intervals [arrived, left) (left NaN: still waiting).

    The peak is over [t0, t1]; the drain may end later. Drain time is NaN when the line
    never emptied before the records end, 0 when the peak is 0.
    """
    # Events in time order, departures first at equal times (a hand-over never counts as
    # waiting). The level peaks just after an arrival and first returns to 0 just after a
    # departure, so each kind is swept against the other sorted kind: no merged copy.
    ups = np.sort(arrived, kind="stable")
    downs = np.sort(left[~np.isnan(left)], kind="stable")
    peak = int(np.searchsorted(ups, t0, side="right") - np.searchsorted(downs, t0, side="right"))
    peak_time = t0
    lo, hi = np.searchsorted(ups, [t0, t1], side="right")
    if hi > lo:
        # Level after the i-th arrival: i + 1 arrivals minus the departures up to its time.
        after = np.arange(lo + 1, hi + 1) - np.searchsorted(downs, ups[lo:hi], side="right")
        j = int(np.argmax(after))
        if after[j] > peak:
            peak, peak_time = int(after[j]), float(ups[lo + j])
    if peak == 0:
        return 0, peak_time, 0.0
    # Level after the j-th departure: arrivals strictly before it minus j + 1 departures.
    first = int(np.searchsorted(downs, peak_time, side="right"))
    later = downs[first:]
    level = np.searchsorted(ups, later, side="left") - np.arange(first + 1, len(downs) + 1)
    empty = np.flatnonzero(level == 0)
    if len(empty) == 0:
        return peak, peak_time, math.nan
    return peak, peak_time, float(later[empty[0]] - peak_time)


def lag_at(arrived: np.ndarray, left: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Age of the oldest message waiting in a FIFO line at each time (0 when empty)."""
    order = np.argsort(arrived, kind="stable")
    arr = arrived[order]
    # FIFO: messages leave the line in arrival order, so `left` is non-decreasing in that
    # order (the running maximum only settles ties at a hand-over).
    lft = np.maximum.accumulate(np.where(np.isnan(left[order]), np.inf, left[order]))
    head = np.searchsorted(lft, times, side="right")
    out = np.zeros(len(times))
    ok = head < len(arr)
    ok[ok] &= arr[head[ok]] <= times[ok]
    out[ok] = times[ok] - arr[head[ok]]
    return out


def latency_windows(
    rec: Records, width: float, *, quantiles: Sequence[float] = (0.5, 0.95, 0.99),
    by: str = "sent",
) -> pd.DataFrame:
    """Latency of delivered messages per time window of ``width`` seconds.

    ``by="sent"`` puts a message in the window it was sent in (queue backlog messages,
    sent at minus their age, fall in windows before 0); ``by="done"`` in the window it
    was delivered in. Columns: start, end, count, mean, then p50, p95, ... per quantile.
    """
    if not width > 0 or not math.isfinite(width):
        raise ValueError(f"width must be a number of seconds > 0, got {width!r}")
    if by not in {"sent", "done"}:
        raise ValueError(f"by must be 'sent' or 'done', got {by!r}")
    ok = rec.outcome == DELIVERED
    latency = (rec.done - rec.sent)[ok]
    key = (rec.sent if by == "sent" else rec.done)[ok]
    cols = ["start", "end", "count", "mean", *[_qname(q) for q in quantiles]]
    if len(key) == 0:
        return pd.DataFrame(columns=cols)
    first = math.floor(float(key.min()) / width)
    last = math.floor(max(float(key.max()), rec.t_end - 1e-9 * width) / width)
    idx = np.floor(key / width).astype(np.int64) - first
    nbins = last - first + 1
    order = np.argsort(idx, kind="stable")
    idx, latency = idx[order], latency[order]
    bounds = np.searchsorted(idx, np.arange(nbins + 1))
    rows = []
    for b in range(nbins):
        x = latency[bounds[b]:bounds[b + 1]]
        qs = np.quantile(x, quantiles).tolist() if len(x) else [math.nan] * len(quantiles)
        rows.append([(first + b) * width, (first + b + 1) * width, len(x),
                     float(x.mean()) if len(x) else math.nan, *qs])
    return pd.DataFrame(rows, columns=cols)


def _qname(q: float) -> str:
    return f"p{q * 100:g}"


def timeline(rec: Records, sc: Scenario, width: float) -> pd.DataFrame:
    """Per window of ``width`` s: arrival rate (sends by producers, backlog excluded),
    and at the window's middle per queue the messages waiting (``length``) and the age of
    the oldest (``lag``), per group the workers online."""
    if not width > 0 or not math.isfinite(width):
        raise ValueError(f"width must be a number of seconds > 0, got {width!r}")
    n = max(1, math.ceil(rec.t_end / width))
    edges = np.arange(n + 1) * width
    mid = edges[:-1] + width / 2
    sent = rec.sent[rec.producer >= 0]
    out: dict[str, np.ndarray] = {
        "time": mid,
        "arrival_rate": np.histogram(sent, bins=edges)[0] / width,
    }
    v = rec.visits
    for qi, name in enumerate(sc.queues):
        at = v["queue"] == qi
        out[f"queue.{name}.length"] = level_at(v["arrived"][at], v["left"][at], mid)
        out[f"queue.{name}.lag"] = lag_at(v["arrived"][at], v["left"][at], mid)
    for gi, (name, c) in enumerate(sc.consumers.items()):
        out[f"consumer.{name}.workers"] = workers_at(rec, gi, c.count, mid)
    return pd.DataFrame(out)
