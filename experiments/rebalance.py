"""What a rebalance pause costs: eager against cooperative on the same crash.

A topic of 4 partitions at λ = 0.5 msg/s each is read by a group of 5 consumers (one
partition each, exponential service at μ = 1, one member on standby), so every
partition is an M/M/1 queue at ρ = 0.5. One member crashes; its session times out 10 s
later and the group rebalances (assignor sticky: only the crashed member's partition
moves, to the standby member). The rebalance time P is swept for both protocols.

Fluid picture: an eager rebalance stops every partition for P, each builds λ·P and
drains it at μ − λ; a cooperative one stops only the moved partition. The crashed
member's partition waits from the crash to the end of the handover, session timeout +
P, whatever the protocol. The exact expectations beside it (exponential service, a
stationary M/M/1 line when the crash comes) are derived in :func:`expected`.

The script needs each run's records (levels of every partition around the rebalance),
which a sweep does not keep: it runs each point with ``simq.run`` (``--executor
processes``: one point per process; ``serial``: in this process; the numbers are the
same). simq crashes either one random member (``mtbf``) or all of them (``at``), so the
crash comes from ``mtbf``: the analysis keeps the replications whose only rebalance is
the crash of a member owning a partition, within the window; the crash times come from
their own random stream, so each point keeps the same replications (the same crashes).
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
UNTIL, WARMUP, SEED = 400.0, 100.0, 7
MTBF = 2000.0                    # per member: about one crash in the window per 2 runs
ROOM = 100.0                     # seconds after a rebalance kept free for the drain
PROTOCOLS = ("eager", "cooperative")
RHO = LAM / MU
P99_MM1 = math.log(100) / (MU - LAM)   # an M/M/1 sojourn is exponential at μ − λ


def scenario(protocol: str, pause: float) -> dict[str, Any]:
    return {
        "name": "rebalance-cost",
        "run": {"until": UNTIL, "warmup": WARMUP, "seed": SEED},
        "producers": {"app": {"to": "orders", "rate": PARTITIONS * LAM}},
        "topics": {"orders": {"partitions": PARTITIONS, "key": "uniform"}},
        "consumers": {"readers": {
            "from": "orders", "count": MEMBERS, "service": f"exponential(mean={1 / MU:g})",
            "crashes": {"mtbf": f"exponential(mean={MTBF:g})", "mttr": "constant(1e6)"},
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


def measure_point(args: tuple[str, float, int]) -> tuple[pd.DataFrame, np.ndarray,
                                                          pd.DataFrame]:
    """Per kept replication of one point: the measures; the latencies of the messages
    sent from the crash to the end of the rebalance; the lags around the first one."""
    protocol, pause, reps = args
    res = simq.run(scenario(protocol, pause), replications=reps)
    faults = res.faults
    rebalances = faults[faults["kind"] == "rebalance"]
    visits, messages = res.visits, res.messages
    rows, window = [], []
    latest = UNTIL - ROOM - SESSION - pause
    example = pd.DataFrame()
    for r, mine in rebalances.groupby("replication"):
        f = mine.iloc[0]
        if len(mine) > 1 or f["trigger"] != "crash" or f["moved"] != 1:
            continue  # a standby crashed first, or another crash follows
        cause, start, end = float(f["cause"]), float(f["start"]), float(f["end"])
        if not WARMUP <= cause <= latest:
            continue
        v = visits[visits["replication"] == r]
        lines = [_line(v[v["queue"] == f"orders[{p}]"]) for p in range(PARTITIONS)]
        # The crashed member's partition: the only one nobody takes from between the
        # crash and the rebalance (the others are served; S = 10 s at λ = 0.5 without
        # a take on a live one is about one chance in 300).
        idle = [p for p, (_, downs) in enumerate(lines)
                if not ((downs > cause) & (downs <= start)).any()]
        if len(idle) != 1:
            continue
        crashed = idle[0]
        others = [p for p in range(PARTITIONS) if p != crashed]
        before = end - 1e-9  # just before the new owners take their first messages
        ups, downs = lines[crashed]
        row = {
            "replication": r, "cause": cause, "start": start, "end": end,
            "paused": f["paused"], "recovery": f["recovery"],
            "growth_crashed": level(ups, downs, before) - level(ups, downs, cause),
            "backlog_crashed": level(ups, downs, before),
            "drain_crashed": first_empty(ups, downs, end),
            "growth_other": np.mean([level(u, d, before) - level(u, d, start)
                                     for u, d in (lines[p] for p in others)]),
            "backlog_other": np.mean([level(*lines[p], before) for p in others]),
            "drain_other": np.mean([first_empty(*lines[p], end) for p in others]),
            "peak": max(highest(*lines[p], cause, end + ROOM) for p in range(PARTITIONS)),
            "p99_run": res.replications[int(r)].summary["latency"]["p99"],
        }
        rows.append(row)
        m = messages[(messages["replication"] == r) & (messages["sent"] >= cause)
                     & (messages["sent"] <= end)]
        window.append(m["latency"].dropna().to_numpy())
        if example.empty:
            ts = res.timeseries
            ts = ts[(ts["replication"] == r) & (ts["time"] >= cause - 20)
                    & (ts["time"] <= end + 60)]
            example = pd.DataFrame({
                "since_crash": ts["time"] - cause,
                "crashed": ts[f"queue.orders[{crashed}].length"],
                "others": ts[[f"queue.orders[{p}].length" for p in others]].mean(axis=1),
            })
    lat = np.concatenate(window) if window else np.array([])
    return pd.DataFrame(rows), lat, example


def _map(opts: common.Options, items: list[tuple[str, float, int]]) -> list[Any]:
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
    reps = 40 if opts.quick else 360
    pauses = [1.0, 8.0] if opts.quick else [0.5, 1.0, 2.0, 4.0, 8.0]
    items = [(proto, p, reps) for proto in PROTOCOLS for p in pauses]
    results = _map(opts, items)

    rows = []
    for (proto, pause, _), (per_rep, lat, _) in zip(items, results, strict=True):
        row: dict[str, Any] = {"protocol": proto, "pause": pause, "kept": len(per_rep),
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
    judged = [f"{what}_{role}" for role in ("other", "crashed")
              for what in ("growth", "backlog", "drain")]
    checks = len(judged) * len(rows)
    for row, (_, (per_rep, _, _)) in zip(rows, zip(items, results, strict=True),
                                         strict=True):
        for col in judged:
            row[f"{col}_agrees"] = bool(agreement(per_rep[col].to_numpy(),
                                                  row[f"{col}_theory"], checks=checks))
    data = pd.DataFrame(rows)
    example = {proto: res[2] for (proto, pause, _), res in zip(items, results, strict=True)
               if pause == max(pauses)}

    fig = _figure(data, example, max(pauses))
    rep = common.Report(
        "Rebalancing: what a rebalance pause costs",
        "When a member of a consumer group crashes, how much backlog, drain time and tail "
        "latency does the rebalance cost, eager against cooperative, and how far does the "
        "fluid rule (a backlog of λ·P drained at μ − λ) hold?")
    rep.tables["rebalance"] = data
    rep.figures["rebalance"] = fig
    rep.add(_text(data, reps, checks, pauses))
    rep.write(opts, COMMAND)
    plt.close(fig)
    return 0


def _figure(data: pd.DataFrame, example: dict[str, pd.DataFrame], pause: float) -> Any:
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
    c.axvspan(SESSION, SESSION + pause, color="0.85", label="the rebalance")
    c.axvline(0, color="0.5", ls=":")
    c.set_xlabel("seconds since the crash")
    c.set_ylabel("lag (messages)")
    c.set_title(f"One crash, P = {pause:g} s")
    c.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _pm(data: pd.DataFrame, col: str) -> list[str]:
    return [f"{m:.3g} ± {h:.2g}" for m, h in zip(data[col], data[f"{col}_ci95"], strict=True)]


def _text(data: pd.DataFrame, reps: int, checks: int, pauses: list[float]) -> str:
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
    tails = data[["protocol", "pause", "kept", "paused", "peak", "recovery", "p99_run",
                  "p99_window"]].set_axis(
        ["protocol", "P (s)", "runs kept", "paused", "highest lag", "recovery (s)",
         "p99 of the run (s)", "p99 crash→end (s)"], axis=1)
    agreed = int(data[[c for c in data.columns if c.endswith("_agrees")]].to_numpy().sum())
    eager = data[data["protocol"] == "eager"].set_index("pause")
    coop = data[data["protocol"] == "cooperative"].set_index("pause")
    small, large = min(pauses), max(pauses)
    shortfall = float((data["growth_crashed"] - data["growth_crashed_theory"]).mean())

    def near(role: str) -> str:
        err = eager[f"drain_{role}_fluid_error"].abs()
        return ", ".join(f"{p:g}" for p in err.index[err <= APPROX]) or "none of the pauses"

    def fluid_err(role: str, p: float) -> str:
        return f"{100 * eager.loc[p, f'drain_{role}_fluid_error']:+.0f}%"

    return f"""
{PARTITIONS} partitions at λ = {LAM} msg/s each, {MEMBERS} consumers with exponential service
at μ = {MU} (one partition each, one on standby: each partition is an M/M/1 queue at
ρ = {RHO}), assignor sticky, session timeout S = {SESSION:g} s, rebalance time P (constant).
Members crash at random (mtbf {MTBF:g} s each, never back); of {reps} runs of {UNTIL:g} s per
point (seed {SEED}) the tables keep those whose only rebalance is the crash of a member
that owned a partition, at least {ROOM:g} s before the end. They are the same runs at every
point (the crashes have their own random stream), so the columns differ by the protocol
and P alone; it also means that one sample of crashes is behind every row: in this
sample the crashed member's partition has {shortfall:+.2g} messages against λ(S + P), about
the same at every P (one draw, repeated, not {len(data)} confirmations).

Measured in each run's records, per partition: the messages waiting in its line at the
end of the rebalance, how many more than when it started (for the crashed member's
partition: than at the crash), and the time from the end until its line is first empty.
"Exact" is the expectation for this model (`expected()` in the script: a stationary
M/M/1 line when the crash comes, Lq = ρ²/(1 − ρ) = {RHO**2 / (1 - RHO):g}); "fluid" is the rule
of thumb. Intervals are 95%; "agree" counts the checks of backlog added, waiting and drain
against the exact expectation that pass the agreement rule (`simq.analysis.stats.agreement`,
the {checks} checks at a joint 95% level): {agreed} of {checks} pass.

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
  {eager.loc[large, "recovery"]:.3g} s) and lowers the tail a little; the crashed partition sets
  most of it.
- **Where the fluid drain λ·P/(μ − λ) holds**: within 20% of the exact expectation at
  P = {near("other")} s for the paused partitions ({fluid_err("other", large)} at P = {large:g} s),
  and at P = {near("crashed")} s for the crashed member's partition, whose pause S + P
  is never short. It needs the backlog to be several messages. At large P it is off by a
  constant: the exact drain is (E[N] − 1 + P(N = 0))/(μ − λ), N the messages in the
  system at the end, so what was there before the pause counts, the message in hand
  finished during it does not, and the line is empty once the owner holds the last one.
- **Where it does not**: at small P the pause is lost in the queue's own randomness. At
  P = {small:g} s the fluid drain is {eager.loc[small, "drain_other_fluid"]:.2g} s
  ({fluid_err("other", small)}); the measured {eager.loc[small, "drain_other"]:.2g} s is mostly the
  ordinary M/M/1 line, which takes about as long to empty unpaused
  (cooperative: {coop.loc[small, "drain_other"]:.2g} s; exact Lq/(μ − λ) =
  {RHO**2 / (1 - RHO) / (MU - LAM):.2g} s). The measured drains are wide (a drain is a sum
  of M/M/1 busy periods: ± {eager.loc[small, "drain_other_ci95"]:.2g} s at P = {small:g} s): they
  confirm the exact expectation everywhere, and rule out the fluid rule only where the
  two differ by more than the interval.
- **Tail latency**: the messages sent from the crash to the end of the rebalance have a
  p99 of {eager.loc[small, "p99_window"]:.3g} s at P = {small:g} s and
  {eager.loc[large, "p99_window"]:.3g} s at P = {large:g} s (eager), against
  {P99_MM1:.3g} s for the queue alone: they wait up to S + P longer on the crashed
  member's partition, up to P longer on the others under eager. Over the whole run the
  p99 moves once those messages are more than 1% of the window: {eager.loc[small, "p99_run"]:.3g} s
  at P = {small:g} s, {eager.loc[large, "p99_run"]:.3g} s (eager) and
  {coop.loc[large, "p99_run"]:.3g} s (cooperative) at P = {large:g} s.
"""


if __name__ == "__main__":
    common.main_guard(run)
