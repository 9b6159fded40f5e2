"""What durability costs: an fsync per message against group commit, with replication.

Sweeps the offered rate of ``models/durability.yaml`` (a broker that writes every message
to disk, 4 ms per write, and copies it to 2 followers with ``acks: all``) with one write
per message, and with group commit (up to 32 messages per write). One write per message
is an M/D/1 queue on the disk, which saturates at 1/fsync = 250 msg/s; group commit raises
the limit to 32/fsync. Replication adds the slowest follower's delay.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simq import theory

try:
    from experiments import _common as common
except ImportError:  # run as a script: experiments/ is on sys.path
    import _common as common  # type: ignore[no-redef]

NAME = "durability"
COMMAND = "python experiments/durability.py"
SCENARIO = common.MODELS / "durability.yaml"
FSYNC = 0.004                     # the model's constant(0.004)
REPLICAS, LOW, HIGH = 2, 0.001, 0.005   # uniform(low=0.001, high=0.005) per follower
GROUP = {"size": 32, "wait": 0.001}


def persist_theory(lam: float) -> float:
    """One write per message: M/D/1 with service FSYNC (wait + the write itself)."""
    if lam * FSYNC >= 1:
        return float("inf")
    return theory.md1(lam, 1 / FSYNC).sojourn_mean


def run(argv: Sequence[str] | None = None) -> int:
    opts = common.options(NAME, argv, __doc__)
    reps = 2 if opts.quick else 5
    until = 30 if opts.quick else 200
    per_message = [50, 200] if opts.quick else [25, 50, 100, 150, 200, 225, 240]
    grouped = [50, 400] if opts.quick else [25, 50, 100, 150, 200, 225, 240, 400, 800]
    # Enough consumers that only the disk and the followers matter.
    base = {"run.until": until, "run.warmup": until / 10, "consumers.worker.count": 8,
            "consumers.worker.rate": 200}
    configs = {
        "fsync per message": (per_message, {}),
        f"group commit (up to {GROUP['size']})": (
            grouped, {"queues.events.durability.group_commit": GROUP}),
    }
    frames = []
    for label, (rates, extra) in configs.items():
        agg = common.sweep(opts, SCENARIO, {"producers.app.rate": rates},
                           replications=reps, overrides={**base, **extra})
        frames.append(pd.DataFrame({
            "config": label,
            "rate": agg["producers.app.rate"],
            "throughput": agg["throughput"],
            "persist": agg["breakdown.persist"],
            "persist_ci95": agg["breakdown.persist.ci95"],
            "persist_md1": [persist_theory(x) if not extra else np.nan
                            for x in agg["producers.app.rate"]],
            "replicate": agg["breakdown.replicate"],
            # The slowest of n uniform(low, high) acks: low + (high - low) n / (n + 1).
            "replicate_theory": LOW + (HIGH - LOW) * REPLICAS / (REPLICAS + 1),
            "latency_mean": agg["latency.mean"],
            "latency_p99": agg["latency.p99"],
            "disk_load_one_write_each": agg["producers.app.rate"] * FSYNC,
        }))
    data = pd.concat(frames, ignore_index=True)

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for (label, g), color in zip(data.groupby("config", sort=False),
                                 ["tab:red", "tab:blue"], strict=True):
        a.errorbar(g["rate"], g["persist"] * 1000, yerr=g["persist_ci95"] * 1000, fmt="o",
                   ms=4, capsize=3, color=color, label=f"{label}: simulated")
        b.plot(g["rate"], g["latency_p99"] * 1000, "o-", ms=4, color=color, label=label)
    xs = np.linspace(10, 245, 100)
    a.plot(xs, [persist_theory(x) * 1000 for x in xs], color="tab:red", lw=1,
           label="one write each: M/D/1")
    a.axvline(1 / FSYNC, color="0.5", ls=":", label="disk saturates (1/fsync)")
    a.set_yscale("log")
    a.set_xlabel("offered rate (msg/s)")
    a.set_ylabel("time to persist (ms)")
    a.set_title("The disk write in each message's latency")
    a.legend(fontsize="small")
    b.set_yscale("log")
    b.set_xlabel("offered rate (msg/s)")
    b.set_ylabel("latency p99 (ms)")
    b.set_title("End to end")
    b.legend(fontsize="small")
    fig.tight_layout()

    rep = common.Report(
        "What durability costs",
        "How much latency does writing every message to disk (and to followers) add, "
        "where does it saturate, and what does group commit buy?")
    rep.tables["durability"] = data
    rep.figures["durability"] = fig
    rep.add(f"""
A write takes {FSYNC * 1000:g} ms; the disk does one write at a time. {REPLICAS} followers
each acknowledge a write after uniform({LOW * 1000:g}, {HIGH * 1000:g}) ms and the broker
waits for the slowest (`acks: all`). Consumers are fast (8 × 200 msg/s) so that only
durability shows. {reps} replications of {until:g} s per point, seed 1.

{common.md_table(data[["config", "rate", "throughput", "persist", "persist_md1",
                       "replicate", "replicate_theory", "latency_p99"]])}

- One write per message is an M/D/1 queue on the disk: persist = d + λd²/(2(1 − λd)). It
  adds {FSYNC * 1000:g} ms at low load and grows without bound as λ → 1/d = {1 / FSYNC:g}
  msg/s: durability caps throughput, not just latency.
- Group commit writes many messages at once: a little extra wait at low rates (a message
  waits for its group to close), but the disk carries {GROUP['size']}/d instead of 1/d,
  so the latency stays flat far beyond the per-message limit.
- Replication with `acks: all` adds the slowest follower's delay, the mean of the maximum
  of {REPLICAS} acks ({(LOW + (HIGH - LOW) * REPLICAS / (REPLICAS + 1)) * 1000:.2f} ms),
  independent of the load here (followers are not a bottleneck in this model).
""")
    rep.write(opts, COMMAND)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    common.main_guard(run)
