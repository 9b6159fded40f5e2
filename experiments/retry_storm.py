"""A retry storm: client timeouts and retries against offered load, and what stops it.

Sweeps the offered rate of ``models/retry_storm.yaml`` (clients time out after 8 s and
send again, up to 4 sends, to one server of rate 1) under three retry policies: immediate
retries, jittered exponential back-off with a 10% retry budget (``retry_storm_jitter``),
and no retries. Goodput (messages acknowledged in time, per second) against offered load,
with the share of replications that collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

try:
    from experiments import _common as common
except ImportError:  # run as a script: experiments/ is on sys.path
    import _common as common  # type: ignore[no-redef]

NAME = "retry_storm"
COMMAND = "python experiments/retry_storm.py"
SCENARIO = common.MODELS / "retry_storm.yaml"
TIMEOUT, MU = 8.0, 1.0
BUDGET = "jittered back-off + 10% budget"
MID = 0.7  # the load the models/retry_storm*.yaml pair is set at
POLICIES = {
    "immediate retries": {"max_attempts": 4},
    BUDGET: {
        "max_attempts": 4, "budget": 0.1,
        "backoff": {"policy": "full-jitter", "delay": 2.0, "multiplier": 2, "cap": 60}},
    "no retries": {"max_attempts": 1},
}
# A replication has collapsed when less than half of what is offered is acknowledged in time.
COLLAPSED = 0.5


def run(argv: Sequence[str] | None = None) -> int:
    opts = common.options(NAME, argv, __doc__)
    rates = [0.4, 0.7] if opts.quick else [0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9]
    reps = 2 if opts.quick else 6
    until = 1500 if opts.quick else 6000
    frames = []
    for policy, retry in POLICIES.items():
        agg, tidy = common.sweep_tables(
            opts, SCENARIO, {"producers.app.rate": rates}, replications=reps,
            overrides={"run.until": until, "run.warmup": until / 12,
                       "producers.app.retry": retry})
        tidy = tidy.assign(collapsed=tidy["producers.app.goodput"]
                           < COLLAPSED * tidy["producers.app.rate"])
        share = tidy.groupby("producers.app.rate")["collapsed"].mean()
        frames.append(pd.DataFrame({
            "policy": policy,
            "offered": agg["producers.app.rate"],
            "sends_per_s": agg["producers.app.offered_rate"],
            "goodput": agg["producers.app.goodput"],
            "goodput_ci95": agg["producers.app.goodput.ci95"],
            "server_utilization": agg["consumers.server.utilization"],
            "queue_growth": agg["queues.api.growth_rate"],
            "collapsed_share": share.reindex(agg["producers.app.rate"]).to_numpy(),
            # M/M/1 without retries: a send outlives the timeout with this probability.
            "p_timeout_mm1": np.exp(-(MU - agg["producers.app.rate"]) * TIMEOUT),
        }))
    data = pd.concat(frames, ignore_index=True)

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for (policy, g), color in zip(data.groupby("policy", sort=False),
                                  ["tab:red", "tab:green", "tab:gray"], strict=True):
        # Goodput is never negative: the interval is cut at 0 rather than drawn below it.
        low = np.minimum(g["goodput_ci95"], g["goodput"])
        a.errorbar(g["offered"], g["goodput"], yerr=[low, g["goodput_ci95"]], fmt="o-", ms=4,
                   capsize=3, color=color, label=policy)
        b.plot(g["offered"], g["server_utilization"], "o-", ms=4, color=color, label=policy)
    xs = np.linspace(min(rates), max(rates), 50)
    a.plot(xs, xs * (1 - np.exp(-(MU - xs) * TIMEOUT)), ":", color="k", lw=1,
           label="M/M/1, no retries: λ·P(latency ≤ timeout)")
    a.set_xlabel("offered load (msg/s), server capacity 1 msg/s")
    a.set_ylabel("goodput (msg/s acknowledged in time)")
    a.set_title(f"Goodput, {reps} replications of {until:g} s")
    a.set_ylim(bottom=0)
    b.set_xlabel("offered load (msg/s)")
    b.set_ylabel("server utilization")
    b.set_title("The server's work")
    # One legend for both panels, below them: inside, it covered the curves.
    handles, labels = a.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))

    def first(policy: str) -> str:
        g = data[(data["policy"] == policy) & (data["collapsed_share"] > 0)]
        return f"{g['offered'].min():g}" if len(g) else f"none up to {max(rates):g}"

    def at(policy: str, rate: float) -> float:
        g = data[(data["policy"] == policy) & np.isclose(data["offered"], rate)]
        return float(g["goodput"].iloc[0]) if len(g) else float("nan")

    rep = common.Report(
        "A retry storm and how to stop it",
        "When clients retry on timeout, at what load does the system collapse, and which "
        "retry policy keeps goodput up?")
    rep.tables["retry_storm"] = data
    rep.figures["retry_storm"] = fig
    rep.add(f"""
Clients send at the offered rate, time out after {TIMEOUT:g} s and send again (at most 4
sends); one server of rate {MU:g} msg/s (exponential) processes every send it receives,
including those the client has given up on. {reps} replications of {until:g} s per point,
seed 1. A replication counts as collapsed when its goodput is below {COLLAPSED:.0%} of the
offered rate.

{common.md_table(data[["policy", "offered", "sends_per_s", "goodput", "goodput_ci95",
                       "server_utilization", "collapsed_share", "p_timeout_mm1"]])}

- Without retries goodput follows λ·P(latency ≤ timeout) of an M/M/1 queue (the dotted
  curve): it only falls as the latency tail crosses the timeout.
- With immediate retries every timed-out send adds a send the server still processes.
  The extra work pushes latency past the timeout for more sends, the loop feeds itself,
  the server ends up busy all the time on abandoned sends and goodput collapses to zero,
  although the offered load is far below capacity: here from {first('immediate retries')}
  msg/s on. Near that threshold some replications collapse and some do not
  (`collapsed_share`): the system is metastable, and a chance burst decides.
- A retry budget (retries at most 10% of first sends) bounds the load at λ(1 + 0.1), so
  the loop cannot run away while that stays below capacity: the first collapse with the
  budget (and jittered back-off spreading the retries) comes at {first(BUDGET)} msg/s.
- Retries do not buy goodput back here: at {MID:g} msg/s the budgeted retries get
  {at(BUDGET, MID):.3g} msg/s acknowledged in time, no retries {at('no retries', MID):.3g}.
  A resend must beat the same timeout, and every resend lengthens everyone's latency.
""")
    rep.write(opts, COMMAND)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    common.main_guard(run)
