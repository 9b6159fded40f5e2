"""Synchronous request/reply against fire-and-forget: throughput, latency, decoupling.

Two sweeps of ``models/sync_vs_async.yaml`` (a sync caller and an async poster, each with
its own queue and an identical consumer):

1. *Same throughput.* N sync clients, each thinking 2 s (exponential) between requests,
   form a closed loop whose throughput X(N) mean value analysis predicts; the async poster
   sends at that same X(N). Latency of each against theory (MVA, M/G/1).
2. *Decoupling.* One sync caller without think time and a poster at its rate (3.125 msg/s)
   while the consumer's mean service time grows: the caller slows down with its consumer,
   the poster does not, and its queue grows at "generation − processing".
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from simq import theory

try:
    from experiments import _common as common
except ImportError:  # run as a script: experiments/ is on sys.path
    import _common as common  # type: ignore[no-redef]

NAME = "sync_vs_async"
COMMAND = "python experiments/sync_vs_async.py"
SCENARIO = common.MODELS / "sync_vs_async.yaml"
# The model's constants: encode 10 ms, link 50 ms, decode 10 ms, reply 50 ms.
ENCODE, LINK, DECODE, REPLY = 0.01, 0.05, 0.01, 0.05
THINK = 2.0


def _mg1_latency(lam: float, service: float) -> float:
    mean = DECODE + service
    return ENCODE + LINK + theory.mg1(lam, mean, service**2 / mean**2).sojourn_mean


def run(argv: Sequence[str] | None = None) -> int:
    opts = common.options(NAME, argv, __doc__)
    reps = 2 if opts.quick else 8
    until = 600 if opts.quick else 20000
    base = {"run.until": until, "run.warmup": until / 10}

    # 1. Same throughput.
    clients = [1, 8] if opts.quick else [1, 2, 4, 6, 8, 10, 12]
    demand = DECODE + 0.2
    outside = THINK + ENCODE + LINK + REPLY
    mva = {n: theory.mva(n, [demand], think=outside) for n in clients}
    rates = [round(mva[n].throughput, 6) for n in clients]
    t1 = common.sweep(opts, SCENARIO,
                      {"producers.caller.clients": clients, "producers.poster.rate": rates},
                      zip_paths=True, replications=reps,
                      overrides={**base, "producers.caller.think": f"exponential(mean={THINK})"})
    same = pd.DataFrame({
        "clients": clients,
        "throughput_mva": rates,
        "sync_throughput": t1["producers.caller.throughput"],
        "async_throughput": t1["producers.poster.throughput"],
        "sync_latency": t1["producers.caller.latency_mean"],
        "sync_latency_ci95": t1["producers.caller.latency_mean.ci95"],
        "sync_latency_mva": [mva[n].response_time + ENCODE + LINK + REPLY for n in clients],
        "async_latency": t1["producers.poster.latency_mean"],
        "async_latency_ci95": t1["producers.poster.latency_mean.ci95"],
        "async_latency_mg1": [_mg1_latency(x, 0.2) for x in rates],
        "consumer_load": [x * demand for x in rates],
    })

    # 2. Decoupling: the consumers slow down.
    services = [0.2, 0.4] if opts.quick else [0.1, 0.15, 0.2, 0.25, 0.3, 0.4]
    dists = [f"exponential(mean={s})" for s in services]
    t2 = common.sweep(opts, SCENARIO,
                      {"consumers.sync-worker.service": dists,
                       "consumers.async-worker.service": dists},
                      zip_paths=True, replications=reps, overrides=base)
    poster_rate = 3.125
    slow = pd.DataFrame({
        "service_mean": services,
        "sync_throughput": t2["producers.caller.throughput"],
        "sync_throughput_theory": [1 / (ENCODE + LINK + DECODE + s + REPLY) for s in services],
        "sync_latency": t2["producers.caller.latency_mean"],
        "async_sent": t2["producers.poster.offered_rate"],
        "async_throughput": t2["producers.poster.throughput"],
        "async_capacity": [1 / (DECODE + s) for s in services],
        "async_growth": t2["queues.async-q.growth_rate"],
        "async_growth_ci95": t2["queues.async-q.growth_rate.ci95"],
        "document_growth": [max(0.0, poster_rate - 1 / (DECODE + s)) for s in services],
        "async_latency": t2["producers.poster.latency_mean"],
    })

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.errorbar(same["sync_throughput"], same["sync_latency"], yerr=same["sync_latency_ci95"],
               fmt="o", color="tab:blue", ms=4, capsize=3, label="sync clients (simulated)")
    a.plot(same["throughput_mva"], same["sync_latency_mva"], color="tab:blue", lw=1,
           label="sync: mean value analysis")
    a.errorbar(same["async_throughput"], same["async_latency"],
               yerr=same["async_latency_ci95"], fmt="s", color="tab:green", ms=4, capsize=3,
               label="async poster (simulated)")
    a.plot(same["throughput_mva"], same["async_latency_mg1"], color="tab:green", lw=1,
           label="async: M/G/1")
    a.set_xlabel("throughput (msg/s)")
    a.set_ylabel("mean latency (s)")
    a.set_title("Same throughput: N clients against a poster at X(N)")
    a.legend(fontsize="small")
    b.plot(slow["service_mean"], slow["sync_throughput"], "o-", color="tab:blue",
           label="sync caller: delivered/s")
    b.plot(slow["service_mean"], slow["async_sent"], "s-", color="tab:green",
           label="async poster: sent/s")
    b.plot(slow["service_mean"], slow["async_throughput"], "s--", color="tab:green",
           label="async poster: delivered/s")
    b.plot(slow["service_mean"], slow["async_growth"], "^:", color="tab:red",
           label="async queue growth (msg/s)")
    b.set_xlabel("consumer's mean service time (s)")
    b.set_ylabel("msg/s")
    b.set_title("Decoupling: the consumer slows down")
    b.legend(fontsize="small")
    fig.tight_layout()

    rep = common.Report(
        "Synchronous against asynchronous sending",
        "At the same throughput, which way of sending gives the lower latency; and what "
        "happens to each sender when its consumer slows down?")
    rep.tables["same_throughput"] = same
    rep.tables["decoupling"] = slow
    rep.figures["sync_vs_async"] = fig
    rep.add(f"""
Each point is {reps} replications of {until:g} simulated seconds, seed 1. Both sides have
the same consumer (10 ms decode + exponential service, mean 0.2 s), a 50 ms link and 10 ms
of encoding; the sync side also waits for a 50 ms reply.

## Same throughput

N sync clients thinking {THINK:g} s between requests; the poster sends at the throughput
mean value analysis predicts for N clients (MVA is exact for exponential service; the
constant decode makes it a close approximation here).

{common.md_table(same[["clients", "throughput_mva", "sync_throughput", "sync_latency",
                       "sync_latency_mva", "async_latency", "async_latency_mg1",
                       "consumer_load"]])}

A closed loop of N clients never has more than N messages inside: its latency grows
linearly with N once the consumer saturates, but it can never overflow. The open poster at
the same rate sees random (Poisson) arrivals and waits longer at high load (M/G/1),
even though it pays no reply trip.

## Decoupling

{common.md_table(slow[["service_mean", "sync_throughput", "sync_throughput_theory",
                       "async_sent", "async_throughput", "async_growth",
                       "document_growth"]])}

The sync caller's throughput is 1 / (its round trip): it slows down with its consumer and
nothing piles up. The poster keeps sending {poster_rate} msg/s whatever the consumer does;
once the consumer's capacity 1/(0.01 + service) falls below that, its queue grows at
"generation − processing" (the document's queue-length formula, read as a growth rate).
""")
    rep.write(opts, COMMAND)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    common.main_guard(run)
