"""What a rebalance pause costs: eager against cooperative on the same crash.

A topic of 4 partitions at λ = 0.5 msg/s each is read by a group of 5 consumers (one
partition each, exponential service at μ = 1, one member on standby), so every
partition is an M/M/1 queue at ρ = 0.5. One member, the first (it owns a partition),
crashes at t = 150 s in every replication and stays down (``crashes: {at: [[150, 1e6]],
workers: 1}``); its session times out 10 s later and the group rebalances (assignor
sticky: only the crashed member's partition moves, to the standby member). The
rebalance time P is swept for both protocols.

Fluid picture: an eager rebalance stops every partition for P, each builds λ·P and
drains it at μ − λ; a cooperative one stops only the moved partition. The crashed
member's partition waits from the crash to the end of the handover, session timeout +
P, whatever the protocol. The exact expectations beside it (exponential service, a
stationary M/M/1 line when the crash comes) are derived in :func:`expected`.

A designed experiment: the crash is the same in every replication, so every replication
counts, and the replications of one point are independent (fixed seeds). Each P has its
own seed, shared by the two protocols: eager and cooperative see the same arrivals and
services (their difference is the protocol's alone), and the rows of different P are
independent samples.

The script needs each run's records (levels of every partition around the rebalance),
which a sweep does not keep: it runs each point with ``simq.run`` (``--executor
processes``: one point per process; ``serial``: in this process; the numbers are the
same).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import simq
from simq.analysis.stats import APPROX, agreement, t_halfwidth

try:
    from experiments import _common as common
except ImportError:  # run as a script: experiments/ is on sys.path
    import _common as common  # type: ignore[no-redef]

NAME = "rebalance"
COMMAND = "python experiments/rebalance.py"
LAM, MU, PARTITIONS, MEMBERS = 0.5, 1.0, 4, 5
SESSION = 10.0                   # session_timeout: a crash is noticed this long after
CRASH = 150.0                    # the first member crashes then, in every replication
UNTIL, WARMUP, SEED = 300.0, 100.0, 7
REPS = 300                       # replications per point (--quick: 20)
ROOM = 100.0                     # seconds after the largest rebalance left for the drain
BEFORE, AFTER = 20.0, 60.0       # the mean lag is drawn from 20 s before to 60 s after
CRASHED = 0                      # the partition of the member that crashes
PROTOCOLS = ("eager", "cooperative")
RHO = LAM / MU
P99_MM1 = math.log(100) / (MU - LAM)   # an M/M/1 sojourn is exponential at μ − λ


def scenario(protocol: str, pause: float, seed: int = SEED) -> dict[str, Any]:
    return {
        "name": "rebalance-cost",
        "run": {"until": UNTIL, "warmup": WARMUP, "seed": seed},
        "producers": {"app": {"to": "orders", "rate": PARTITIONS * LAM}},
        "topics": {"orders": {"partitions": PARTITIONS, "key": "uniform"}},
        "consumers": {"readers": {
            "from": "orders", "count": MEMBERS, "service": f"exponential(mean={1 / MU:g})",
            "crashes": {"at": [[CRASH, 1e6]], "workers": 1},
            "rebalance": {"protocol": protocol, "assignor": "sticky",
                          "time": f"constant({pause:g})", "session_timeout": SESSION},
        }},
    }


@dataclass(frozen=True)
class Expected:
    """Expected backlog (messages waiting) at the end of the rebalance and drain time
    (from the end until the line is first empty) of one partition, exact and fluid."""

    backlog: float
    drain: float
    backlog_fluid: float
    drain_fluid: float


def _drain(mean_n: float, p_zero: float) -> float:
    # The owner serves on from N in the system; the line is first empty when N first
    # falls to 1: N − 1 M/M/1 busy periods of mean 1/(μ − λ) each, so E[(N − 1)⁺]/(μ − λ)
    # with E[(N − 1)⁺] = E[N] − 1 + P(N = 0).
    return (mean_n - 1 + p_zero) / (MU - LAM)


def expected(role: str, protocol: str, pause: float) -> Expected:
    """``role`` is ``"crashed"`` (the crashed member's partition) or ``"other"``.

    When the crash comes the line is a stationary M/M/1: N in the system is geometric,
    P(N = n) = (1 − ρ)ρⁿ, and Lq = ρ²/(1 − ρ) wait.
    - crashed: the message in hand is lost (ack: auto); nobody serves the partition for
      S + P, so the line at the end is Lq + Poisson(λ(S + P)); the new owner is idle.
    - other, eager: for P nothing is taken (the message in hand is finished, with
      probability 1 − e^(−μP) within P): N_end = N + Poisson(λP) − that one.
    - other, cooperative: served throughout; N_end is stationary.
    """
    lq = RHO**2 / (1 - RHO)
    if role == "crashed":
        a = LAM * (SESSION + pause)
        return Expected(lq + a, _drain(lq + a, (1 - RHO**2) * math.exp(-a)),
                        a, a / (MU - LAM))
    if protocol == "cooperative":
        return Expected(lq, _drain(RHO / (1 - RHO), 1 - RHO), 0.0, 0.0)
    a, done = LAM * pause, 1 - math.exp(-MU * pause)
    mean_n = RHO / (1 - RHO) + a - RHO * done
    p_zero = (1 - RHO) * math.exp(-a) * (1 + RHO * done)
    return Expected(lq + a, _drain(mean_n, p_zero), a, a / (MU - LAM))


def _line(v: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sorted arrival and take times of one partition's line."""
    return np.sort(v["arrived"].to_numpy()), np.sort(v["start"].dropna().to_numpy())


def level(ups: np.ndarray, downs: np.ndarray, t: float) -> int:
    """Messages waiting at time t (arrived by t, not taken by t)."""
    return int(np.searchsorted(ups, t, side="right") - np.searchsorted(downs, t, side="right"))


def first_empty(ups: np.ndarray, downs: np.ndarray, t: float) -> float:
    """Seconds from t until the line is first empty (0 if it is empty at t)."""
    if level(ups, downs, t) == 0:
        return 0.0
    later = downs[downs > t]
    levels = np.searchsorted(ups, later, side="right") - np.searchsorted(downs, later,
                                                                          side="right")
    empty = np.flatnonzero(levels == 0)
    return float(later[empty[0]] - t) if len(empty) else math.nan


def highest(ups: np.ndarray, downs: np.ndarray, t0: float, t1: float) -> int:
    """The most messages waiting at once in [t0, t1]."""
    top = level(ups, downs, t0)
    arrivals = ups[(ups > t0) & (ups <= t1)]
    if len(arrivals):
        after = (np.searchsorted(ups, arrivals, side="right")
                 - np.searchsorted(downs, arrivals, side="right"))
        top = max(top, int(after.max()))
    return top


def levels(ups: np.ndarray, downs: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Messages waiting at each of the times ``ts``."""
    return np.searchsorted(ups, ts, side="right") - np.searchsorted(downs, ts, side="right")


GRID = np.arange(-BEFORE, AFTER + 1e-9, 0.25)  # seconds since the crash


def measure_point(args: tuple[str, float, int, int]) -> tuple[pd.DataFrame, np.ndarray,
                                                               pd.DataFrame]:
    """Per replication of one point: the measures; the latencies of the messages sent
    from the crash to the end of the rebalance; the mean lag around the crash."""
    protocol, pause, reps, seed = args
    res = simq.run(scenario(protocol, pause, seed), replications=reps)
    faults = res.faults
    rebalances = faults[faults["kind"] == "rebalance"]
    visits, messages = res.visits, res.messages
    rows, window = [], []
    crashed_lag, others_lag = [], []
    for r in range(reps):
        mine = rebalances[rebalances["replication"] == r]
        f = mine.iloc[0] if len(mine) == 1 else None
        if f is None or f["trigger"] != "crash" or f["cause"] != CRASH or f["moved"] != 1:
            raise RuntimeError(f"replication {r} of {protocol}, P = {pause:g}: expected one "
                               f"rebalance, the crash at {CRASH:g} s moving one partition; "
                               f"got {len(mine)} rebalances")
        cause, start, end = float(f["cause"]), float(f["start"]), float(f["end"])
        v = visits[visits["replication"] == r]
        lines = [_line(v[v["queue"] == f"orders[{p}]"]) for p in range(PARTITIONS)]
        # The first member owns partition 0 (4 partitions over 5 members, one each in
        # member order, the last on standby): nobody may take from it until the end.
        ups, downs = lines[CRASHED]
        if ((downs > cause) & (downs < end)).any():
            raise RuntimeError(f"replication {r}: partition {CRASHED} was served while its "
                               "owner was down")
        others = [p for p in range(PARTITIONS) if p != CRASHED]
        before = end - 1e-9  # just before the new owners take their first messages
        row = {
            "replication": r, "start": start, "end": end,
            "paused": f["paused"], "recovery": f["recovery"],
            "growth_crashed": level(ups, downs, before) - level(ups, downs, cause),
            "backlog_crashed": level(ups, downs, before),
            "drain_crashed": first_empty(ups, downs, end),
            "growth_other": np.mean([level(u, d, before) - level(u, d, start)
                                     for u, d in (lines[p] for p in others)]),
            "backlog_other": np.mean([level(*lines[p], before) for p in others]),
            "drain_other": np.mean([first_empty(*lines[p], end) for p in others]),
            "peak": max(highest(*lines[p], cause, end + ROOM) for p in range(PARTITIONS)),
            "p99_run": res.replications[r].summary["latency"]["p99"],
        }
        rows.append(row)
        m = messages[(messages["replication"] == r) & (messages["sent"] >= cause)
                     & (messages["sent"] <= end)]
        window.append(m["latency"].dropna().to_numpy())
        ts = cause + GRID
        crashed_lag.append(levels(ups, downs, ts))
        others_lag.append(np.mean([levels(*lines[p], ts) for p in others], axis=0))
    lat = np.concatenate(window) if window else np.array([])
    lag = pd.DataFrame({"since_crash": GRID, "crashed": np.mean(crashed_lag, axis=0),
                        "others": np.mean(others_lag, axis=0)})
    return pd.DataFrame(rows), lat, lag


def _map(opts: common.Options, items: list[tuple[str, float, int, int]]) -> list[Any]:
    if opts.executor == "serial":
        return [measure_point(x) for x in items]
    with ProcessPoolExecutor(max_workers=opts.workers) as pool:
        return list(pool.map(measure_point, items))


def _mean_ci(x: pd.Series) -> tuple[float, float]:
    return float(x.mean()), t_halfwidth(x.to_numpy())


def run(argv: Sequence[str] | None = None) -> int:
    opts = common.options(NAME, argv, __doc__)
    if opts.executor == "dask":
        print("experiments/rebalance.py: --executor must be serial or processes (each "
              "point reads its runs' records, which only a local run keeps), got dask",
              file=sys.stderr)
        return 2
    reps = 20 if opts.quick else REPS
    pauses = [1.0, 8.0] if opts.quick else [0.5, 1.0, 2.0, 4.0, 8.0]
    # One seed per P, the same for both protocols (common random numbers).
    items = [(proto, p, reps, SEED + k) for proto in PROTOCOLS for k, p in enumerate(pauses)]
    results = _map(opts, items)

    rows = []
    for (proto, pause, _, seed), (per_rep, lat, _) in zip(items, results, strict=True):
        row: dict[str, Any] = {"protocol": proto, "pause": pause, "seed": seed,
                               "runs": len(per_rep),
                               "paused": int(per_rep["paused"].iloc[0])}
        for role in ("other", "crashed"):
            ex = expected(role, proto, pause)
            for what, theory in (("growth", ex.backlog_fluid), ("backlog", ex.backlog),
                                 ("drain", ex.drain)):
                col = f"{what}_{role}"
                row[col], row[f"{col}_ci95"] = _mean_ci(per_rep[col])
                row[f"{col}_theory"] = theory
            row[f"drain_{role}_fluid"] = ex.drain_fluid
            # The fluid rule's own error, against the exact expectation.
            row[f"drain_{role}_fluid_error"] = ex.drain_fluid / ex.drain - 1
        row["peak"] = per_rep["peak"].mean()
        row["recovery"] = per_rep["recovery"].mean()
        row["p99_run"] = per_rep["p99_run"].mean()
        row["p99_window"] = float(np.percentile(lat, 99)) if len(lat) else math.nan
        row["p99_mm1"] = P99_MM1
        rows.append(row)
    # One agreement rule, at the level of all the checks made together (Bonferroni).
    # The crashed member's partition has nobody serving it until the handover ends, so
    # its growth and backlog are the same sample under both protocols (one seed per P):
    # they count once.
    judged = [f"{what}_{role}" for role in ("other", "crashed")
              for what in ("growth", "backlog", "drain")]
    twice = {"growth_crashed", "backlog_crashed"}
    checks = len(judged) * len(rows) - len(twice) * len(pauses)
    agreed = 0
    for row, (_, (per_rep, _, _)) in zip(rows, zip(items, results, strict=True),
                                         strict=True):
        for col in judged:
            ok = bool(agreement(per_rep[col].to_numpy(), row[f"{col}_theory"], checks=checks))
            row[f"{col}_agrees"] = ok
            agreed += ok and not (col in twice and row["protocol"] != PROTOCOLS[0])
    data = pd.DataFrame(rows)
    example = {proto: res[2] for (proto, pause, _, _), res in zip(items, results, strict=True)
               if pause == max(pauses)}

    fig = _figure(data, example, max(pauses), reps)
    rep = common.Report(
        "Rebalancing: what a rebalance pause costs",
        "When a member of a consumer group crashes, how much backlog, drain time and tail "
        "latency does the rebalance cost, eager against cooperative, and how far does the "
        "fluid rule (a backlog of λ·P drained at μ − λ) hold?")
    rep.tables["rebalance"] = data
    rep.figures["rebalance"] = fig
    rep.add(_text(data, reps, checks, agreed, pauses))
    rep.write(opts, COMMAND)
    plt.close(fig)
    return 0


def _figure(data: pd.DataFrame, example: dict[str, pd.DataFrame], pause: float,
            reps: int) -> Any:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    a, b, c = axes
    colors = {"eager": "tab:red", "cooperative": "tab:blue"}
    for proto, g in data.groupby("protocol", sort=False):
        col = colors[str(proto)]
        a.errorbar(g["pause"], g["backlog_other"], yerr=g["backlog_other_ci95"], fmt="o",
                   color=col, capsize=3, label=f"{proto}: other partitions")
        a.plot(g["pause"], g["backlog_other_theory"], "-", color=col, lw=1)
        b.errorbar(g["pause"], g["drain_other"], yerr=g["drain_other_ci95"], fmt="o",
                   color=col, capsize=3, label=f"{proto}: other partitions")
        b.plot(g["pause"], g["drain_other_theory"], "-", color=col, lw=1)
        b.plot(g["pause"], g["drain_other_fluid"], ":", color=col, lw=1)
    crashed = data[data["protocol"] == "eager"]
    a.errorbar(crashed["pause"], crashed["backlog_crashed"],
               yerr=crashed["backlog_crashed_ci95"], fmt="s", color="0.3", capsize=3,
               label="crashed member's partition (both)")
    a.plot(crashed["pause"], crashed["backlog_crashed_theory"], "-", color="0.3", lw=1)
    b.errorbar(crashed["pause"], crashed["drain_crashed"], yerr=crashed["drain_crashed_ci95"],
               fmt="s", color="0.3", capsize=3, label="crashed member's partition")
    b.plot(crashed["pause"], crashed["drain_crashed_theory"], "-", color="0.3", lw=1)
    b.plot(crashed["pause"], crashed["drain_crashed_fluid"], ":", color="0.3", lw=1)
    a.set_xlabel("rebalance time P (s)")
    a.set_ylabel("messages waiting at the end")
    a.set_title("Backlog (lines: exact expectation)")
    a.legend(fontsize="small")
    b.set_xlabel("rebalance time P (s)")
    b.set_ylabel("seconds until the line is empty")
    b.set_title("Drain (solid: exact, dotted: fluid)")
    b.legend(fontsize="small")
    for proto, ex in example.items():
        col = colors[proto]
        c.plot(ex["since_crash"], ex["crashed"], "-", color=col, lw=1.5,
               label=f"{proto}: crashed member's partition")
        c.plot(ex["since_crash"], ex["others"], "--", color=col, lw=1,
               label=f"{proto}: mean of the others")
    # Fluid: the crashed partition grows at λ from Lq until the handover ends, then
    # drains at μ − λ (in expectation its growth is exactly λ per second).
    lq, t = RHO**2 / (1 - RHO), GRID
    out = SESSION + pause
    fluid = np.where(t < 0, lq, np.where(t <= out, lq + LAM * t,
                                         np.maximum(lq, lq + LAM * out - (MU - LAM) * (t - out))))
    c.plot(t, fluid, ":", color="0.3", lw=1, label="fluid: Lq + λt, then − (μ − λ)t")
    c.axvspan(SESSION, SESSION + pause, color="0.85", label="the rebalance")
    c.axvline(0, color="0.5", ls=":")
    c.set_xlabel("seconds since the crash")
    c.set_ylabel("lag (messages), mean of the runs")
    c.set_title(f"The crash, P = {pause:g} s: mean of {reps} runs")
    top = max(float(ex["crashed"].max()) for ex in example.values()) if example else 1.0
    c.set_ylim(0, 2.2 * top)  # room above the curves for the legend
    c.legend(fontsize="x-small", loc="upper right")
    fig.tight_layout()
    return fig


def _pm(data: pd.DataFrame, col: str) -> list[str]:
    return [f"{m:.3g} ± {h:.2g}" for m, h in zip(data[col], data[f"{col}_ci95"], strict=True)]


def crossing(lo: float = 0.1, hi: float = 4.0) -> float:
    """The rebalance time at which the fluid drain of a paused partition equals the exact
    expectation (eager): where the two curves cross (bisection)."""
    def gap(p: float) -> float:
        ex = expected("other", "eager", p)
        return ex.drain_fluid - ex.drain

    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


def _text(data: pd.DataFrame, reps: int, checks: int, agreed: int,
          pauses: list[float]) -> str:
    def role_table(role: str, added: str, waiting: str, fluid: str) -> pd.DataFrame:
        return pd.DataFrame({
            "protocol": data["protocol"], "P (s)": data["pause"],
            "backlog added": _pm(data, f"growth_{role}"), added: data[f"growth_{role}_theory"],
            "waiting at the end": _pm(data, f"backlog_{role}"),
            waiting: data[f"backlog_{role}_theory"],
            "drain (s)": _pm(data, f"drain_{role}"), "exact": data[f"drain_{role}_theory"],
            fluid: data[f"drain_{role}_fluid"],
            "agree": [f"{int(sum(r))} of 3" for r in data[
                [f"{w}_{role}_agrees" for w in ("growth", "backlog", "drain")]].to_numpy()],
        })

    other = role_table("other", "λP (coop: 0)", "Lq + λP", "fluid λP/(μ−λ)")
    crashed = role_table("crashed", "λ(S+P)", "Lq + λ(S+P)", "fluid λ(S+P)/(μ−λ)")
    tails = data[["protocol", "pause", "seed", "paused", "peak", "recovery", "p99_run",
                  "p99_window"]].set_axis(
        ["protocol", "P (s)", "seed", "paused", "highest lag", "recovery (s)",
         "p99 of the run (s)", "p99 crash→end (s)"], axis=1)
    eager = data[data["protocol"] == "eager"].set_index("pause")
    coop = data[data["protocol"] == "cooperative"].set_index("pause")
    small, large = min(pauses), max(pauses)
    cross = crossing()
    late = expected("other", "eager", 1000.0)
    offset = late.drain_fluid - late.drain

    def near(role: str) -> str:
        err = eager[f"drain_{role}_fluid_error"].abs()
        return ", ".join(f"{p:g}" for p in err.index[err <= APPROX]) or "none of the pauses"

    def fluid_err(role: str, p: float) -> str:
        return f"{100 * eager.loc[p, f'drain_{role}_fluid_error']:+.0f}%"

    span = UNTIL - WARMUP

    def share(p: float) -> str:
        return f"{100 * (SESSION + p) / span:.0f}%"

    def genuine(role: str) -> str:
        # The constant alone is within 20% of the fluid drain: the backlog dominates.
        ok = eager.index[abs(offset) <= APPROX * eager[f"drain_{role}_fluid"]]
        return ", ".join(f"{p:g}" for p in ok) or "none of the pauses"

    def coincidence() -> str:
        err = eager["drain_other_fluid_error"].abs()
        lucky = [p for p in err.index[err <= APPROX]
                 if abs(offset) > APPROX * eager.loc[p, "drain_other_fluid"]]
        if not lucky:
            return ""
        at = ", ".join(f"{p:g}" for p in lucky)
        errs = ", ".join(fluid_err("other", p) for p in lucky)
        return (f"At P = {at} s it is within 20% too ({errs}), but by coincidence: that is "
                "near the crossing, where the two errors cancel, not the rule holding. ")

    return f"""
{PARTITIONS} partitions at λ = {LAM} msg/s each, {MEMBERS} consumers with exponential service
at μ = {MU} (one partition each, one on standby: each partition is an M/M/1 queue at
ρ = {RHO}), assignor sticky, session timeout S = {SESSION:g} s, rebalance time P (constant).
A designed experiment: in each of {reps} replications of {UNTIL:g} s per point, the first
member (the owner of partition {CRASHED}) crashes at t = {CRASH:g} s and stays down
(`crashes: {{at: [[{CRASH:g}, 1e6]], workers: 1}}`), so every replication has the one
rebalance the question is about and every one counts. The replications of a point are
independent, and so are the points of different P (seed {SEED} + the index of P, in the
table below). Eager and cooperative at the same P share their seed: they see the same
arrivals and services, so their difference is the protocol's alone, and the crashed
member's partition, which nobody serves until the handover ends, has the same growth and
backlog under both (one sample shown twice, and counted once below).

Measured in each run's records, per partition: the messages waiting in its line at the
end of the rebalance, how many more than when it started (for the crashed member's
partition: than at the crash), and the time from the end until its line is first empty.
"Exact" is the expectation for this model (`expected()` in the script: a stationary
M/M/1 line when the crash comes, Lq = ρ²/(1 − ρ) = {RHO**2 / (1 - RHO):g}); "fluid" is the rule
of thumb. Intervals are 95%; "agree" counts the checks of backlog added, waiting and drain
against the exact expectation that pass the agreement rule (`simq.analysis.stats.agreement`,
the {checks} distinct checks at a joint 95% level): {agreed} of {checks} pass.

**The partitions the crash did not touch** (an eager rebalance pauses them for P, a
cooperative one not at all):

{common.md_table(other, 3)}

**The crashed member's partition** (nobody serves it from the crash to the end of the
handover, S + P, whatever the protocol):

{common.md_table(crashed, 3)}

**The group** (highest lag: the most messages waiting on any one partition from the crash
to {ROOM:g} s after the rebalance; recovery: `res.faults`, seconds from the end until the
messages in the system are back to their number at the start; p99 of the run: the
{UNTIL - WARMUP:g} s window of each run, averaged; p99 crash→end: the messages sent from the
crash to the end of the rebalance, pooled over the runs; an M/M/1 queue alone has a p99
of ln(100)/(μ − λ) = {P99_MM1:.3g} s):

{common.md_table(tails, 3)}

What the numbers show:

- **The backlog of a pause is λ·P, exactly in expectation**: while a partition has no
  consumer its line only grows. An eager rebalance adds λP to every partition
  ({int(eager.loc[large, "paused"])} paused), a cooperative one only to the partition that
  moves: the other three add nothing (0 within the interval) and are served as if nothing
  happened.
- **For a crash the session timeout is the larger part of the pause.** The crashed
  member's partition waits S + P under either protocol: λ(S + P) = {LAM * (SESSION + large):g}
  messages at P = {large:g} s, where the eager pause puts {LAM * large:g} on each of the
  others. Cooperative rebalancing spares the partitions that stay; it does not shorten
  the crashed one's wait, a shorter `session_timeout` (or a clean leave, seen at once)
  does. It shortens the recovery at P = {large:g} s ({coop.loc[large, "recovery"]:.3g} s against
  {eager.loc[large, "recovery"]:.3g} s), but hardly the tail, which the crashed partition
  sets: the p99 of the messages sent from the crash to the end of the rebalance is
  {coop.loc[large, "p99_window"]:.3g} s against {eager.loc[large, "p99_window"]:.3g} s.
- **Where the fluid drain λ·P/(μ − λ) holds, and where it only seems to**: the exact
  drain is (E[N] − 1 + P(N = 0))/(μ − λ), N the messages in the system at the end.
  Against λP/(μ − λ) it adds the line that was there before the pause (and the chance
  it is empty), and takes off the message in hand that the pause lets the owner finish
  and the last message, which the owner holds when the line is empty. At small P the
  first wins (the fluid rule is short: a partition never paused, under cooperative,
  takes {coop.loc[small, "drain_other_theory"]:.2g} s to empty in expectation); at large P the
  second (it is long, by a constant {offset:.2g} s). The two curves cross at
  P ≈ {cross:.2g} s. The fluid rule comes within 20% where λP/(μ − λ) is several times
  that constant: at P = {genuine("other")} s here ({fluid_err("other", large)} at
  P = {large:g} s). {coincidence()}For the crashed member's partition, whose pause S + P is
  never short, it is within 20% at P = {near("crashed")} s.
- **Where it does not**: at small P the pause is lost in the queue's own randomness. At
  P = {small:g} s the fluid drain is {eager.loc[small, "drain_other_fluid"]:.2g} s
  ({fluid_err("other", small)}); the measured {eager.loc[small, "drain_other"]:.2g} s is mostly the
  ordinary M/M/1 line, which takes about as long to empty unpaused
  (cooperative: {coop.loc[small, "drain_other"]:.2g} s). The measured drains are wide (a
  drain is a sum of M/M/1 busy periods: ± {eager.loc[small, "drain_other_ci95"]:.2g} s at
  P = {small:g} s): they {"confirm the exact expectation at every point" if agreed == checks
   else f"agree with the exact expectation in {agreed} of {checks} checks"}, and rule out the
  fluid rule only where the two differ by more than the interval.
- **Tail latency**: the messages sent from the crash to the end of the rebalance have a
  p99 of {eager.loc[small, "p99_window"]:.3g} s at P = {small:g} s and
  {eager.loc[large, "p99_window"]:.3g} s at P = {large:g} s (eager), against
  {P99_MM1:.3g} s for the queue alone: they wait up to S + P longer on the crashed
  member's partition, up to P longer on the others under eager. They are
  (S + P)/{span:g} s of each run's window ({share(small)} at P = {small:g} s, {share(large)} at
  P = {large:g} s), more than the 1% a p99 leaves, so the p99 of the whole run moves with
  them: {eager.loc[small, "p99_run"]:.3g} s at P = {small:g} s,
  {eager.loc[large, "p99_run"]:.3g} s (eager) and {coop.loc[large, "p99_run"]:.3g} s
  (cooperative) at P = {large:g} s.
"""


if __name__ == "__main__":
    common.main_guard(run)
