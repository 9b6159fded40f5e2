"""Ciw as a referee where theory is silent: the same model run in both simulators.

Ciw is a development extra; :func:`available` says whether it is installed. Each referee
case runs simq and Ciw with the same number of replications (independent seeds) and
compares the two means: they agree when the difference is within the combined interval
``sqrt(h_simq^2 + h_ciw^2)`` at the suite's Bonferroni level (the agreement rule of
:func:`simq.analysis.stats.agreement` with a ``reference``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from simq.run import Replication
from simq.validate.cases import at

__all__ = ["RefereeCase", "available", "ciw_gg2", "ciw_blocking_tandem", "referee_cases"]


def available() -> bool:
    try:
        import ciw  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class RefereeCase:
    name: str
    scenario: dict[str, Any]
    # Ciw side: a function (seed, until, warmup) -> {quantity: value} for one replication.
    ciw_run: Callable[[int, float, float], dict[str, float]]
    # simq side: quantity -> per-replication measure.
    measures: dict[str, Callable[[Replication], float]]
    model: str
    replications: int = 8


def _lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    s2 = math.log(1.0 + cv * cv)
    return math.log(mean) - s2 / 2.0, math.sqrt(s2)


def ciw_gg2(lam: float, k: int, mean: float, cv: float, c: int
            ) -> Callable[[int, float, float], dict[str, float]]:
    """Erlang-k arrivals at rate lam, lognormal(mean, cv) service, c servers."""

    def one(seed: int, until: float, warmup: float) -> dict[str, float]:
        import ciw

        ciw.seed(seed)
        mu_log, sd_log = _lognormal_params(mean, cv)
        net = ciw.create_network(
            arrival_distributions=[ciw.dists.Erlang(k * lam, k)],
            service_distributions=[ciw.dists.Lognormal(mu_log, sd_log)],
            number_of_servers=[c],
        )
        sim = ciw.Simulation(net)
        sim.simulate_until_max_time(until)
        recs = [r for r in sim.get_all_records()
                if r.record_type == "service" and warmup <= r.arrival_date < until]
        wait = np.array([r.waiting_time for r in recs])
        return {"wait_mean": float(wait.mean()),
                "latency_mean": float(np.mean([r.exit_date - r.arrival_date for r in recs]))}

    return one


def ciw_blocking_tandem(lam: float, mu1: float, mu2: float, buffer: int
                        ) -> Callable[[int, float, float], dict[str, float]]:
    """Poisson arrivals, two exponential stations, ``buffer`` waiting places at the second;
    a worker that finishes while that buffer is full holds its message (blocking after
    service)."""

    def one(seed: int, until: float, warmup: float) -> dict[str, float]:
        import ciw

        ciw.seed(seed)
        net = ciw.create_network(
            arrival_distributions=[ciw.dists.Exponential(lam), None],
            service_distributions=[ciw.dists.Exponential(mu1), ciw.dists.Exponential(mu2)],
            number_of_servers=[1, 1],
            queue_capacities=[float("inf"), buffer],
            routing=[[0.0, 1.0], [0.0, 0.0]],
        )
        sim = ciw.Simulation(net)
        sim.simulate_until_max_time(until)
        recs = [r for r in sim.get_all_records() if r.record_type == "service"]
        first = {r.id_number: r for r in recs if r.node == 1}
        last = {r.id_number: r for r in recs if r.node == 2}
        entered = [r for r in first.values() if warmup <= r.arrival_date < until]
        lat = [last[r.id_number].exit_date - r.arrival_date for r in entered
               if r.id_number in last]
        done = sum(1 for r in last.values() if warmup <= r.exit_date <= until)
        return {
            "wait_mean": float(np.mean([r.waiting_time for r in entered])),
            "blocked_mean": float(np.mean([r.time_blocked for r in entered])),
            "latency_mean": float(np.mean(lat)),
            "throughput": done / (until - warmup),
        }

    return one


def _blocked_mean(rep: Replication) -> float:
    # Time a stage-1 worker holds a finished message, waiting for room downstream:
    # from the end of its service to its arrival in the second queue.
    rec = rep.require_records("the blocking-tandem referee")
    v = rec.visits
    t0, t1 = rep.window
    first = (v["queue"] == 0) & (v["arrived"] >= t0) & (v["arrived"] < t1)
    ends = dict(zip(v["id"][first].tolist(), v["end"][first].tolist(), strict=True))
    second = v["queue"] == 1
    arr2 = dict(zip(v["id"][second].tolist(), v["arrived"][second].tolist(), strict=True))
    held = [arr2[i] - e for i, e in ends.items() if i in arr2 and not math.isnan(e)]
    return float(np.mean(held)) if held else math.nan


def referee_cases(scale: float = 1.0) -> list[RefereeCase]:
    """The models without a closed form that simq and Ciw both run."""
    until = 20_000.0 * scale
    gg2 = {
        "name": "gg2-lognormal",
        "run": {"until": until, "warmup": until * 0.1, "seed": 11},
        "producers": {"app": {"to": "q", "interarrival": "erlang(k=3, mean=0.625)"}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "count": 2,
                            "service": "lognormal(mean=1.0, cv=1.5)"}},
    }
    tandem = {
        "name": "blocking-tandem",
        "run": {"until": until, "warmup": until * 0.1, "seed": 12},
        "producers": {"app": {"to": "a", "rate": 0.6}},
        "queues": {"a": {}, "b": {"capacity": 2, "overflow": "block"}},
        "consumers": {"ga": {"from": "a", "rate": 1.25, "to": "b"},
                      "gb": {"from": "b", "rate": 1.0}},
    }
    return [
        RefereeCase("G/G/2: Erlang-3 arrivals, lognormal cv=1.5 service, rho=0.8", gg2,
                    ciw_gg2(1.6, 3, 1.0, 1.5, 2),
                    {"wait_mean": at("queues.q.wait_mean"), "latency_mean": at("latency.mean")},
                    "Ciw"),
        RefereeCase("tandem with a 2-place buffer that blocks the upstream worker", tandem,
                    ciw_blocking_tandem(0.6, 1.25, 1.0, 2),
                    {"wait_mean": at("queues.a.wait_mean"), "blocked_mean": _blocked_mean,
                     "latency_mean": at("latency.mean"), "throughput": at("throughput")},
                    "Ciw"),
    ]
