"""Compacting the logs into columns mid-run changes nothing a run reports.

The engine's logs are moved into numpy columns every CHUNK rows while the run goes on;
any component that read an earlier row back by message id would break only in runs
longer than a chunk. A tiny chunk makes every model cross hundreds of compactions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import simq
from simq.analysis.replications import flatten
from simq.engine import Simulation
from simq.record.streaming import run_full
from simq.record.summary import summarise
from simq.run import seed_for

MODELS = Path(__file__).resolve().parent.parent / "models"


def _summary(sc: simq.Scenario, chunk: int) -> dict[str, float]:
    sim = Simulation(sc, seed_for(5, 0))
    out = run_full(sim, chunk=chunk)
    t0 = min(float(sc.run.warmup), out.t_stop)
    return flatten(summarise(sim.rec.arrays(out.t_end), sc, out, t0))


@pytest.mark.parametrize("model", ["priorities", "pubsub", "partitions", "retries_dlq",
                                   "sync_vs_async", "tandem", "autoscale"])
def test_compaction_mid_run_changes_no_number(model: str) -> None:
    sc = simq.load(MODELS / f"{model}.yaml")
    until = min(sc.run.until or 2000.0, 2000.0)
    sc = sc.with_overrides({"run.until": until, "run.warmup": until / 10})
    once = _summary(sc, chunk=10**9)
    often = _summary(sc, chunk=53)
    assert once.keys() == often.keys()
    for key, value in once.items():
        assert often[key] == pytest.approx(value, nan_ok=True, rel=1e-12, abs=1e-12), key
