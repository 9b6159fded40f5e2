"""Every run checks itself: conservation, no negative time, a breakdown that adds up."""

from __future__ import annotations

import pytest

import simq
from simq.engine import Simulation
from simq.record.streaming import run_full
from simq.record.summary import EngineBugError, InvariantError, summarise
from simq.run import seed_for


def _records(model: str, **over: object) -> tuple:
    sc = simq.load(f"models/{model}.yaml").with_overrides(
        {"run.until": 500, "run.warmup": 0, **over})
    sim = Simulation(sc, seed_for(1, 0))
    out = run_full(sim)
    return sc, out, sim.rec.arrays(out.t_end)


def test_a_clean_run_passes_every_check() -> None:
    sc, out, rec = _records("network")
    summarise(rec, sc, out, 0.0)


@pytest.mark.parametrize(("log", "column", "delta", "what"), [
    ("visits", "end", -1e3, "service"),
    ("visits", "left", -1e3, "wait"),
    ("hops", "out", -1e3, "link delay"),
])
def test_a_negative_time_is_an_engine_bug_naming_the_message(
        log: str, column: str, delta: float, what: str) -> None:
    sc, out, rec = _records("network")
    cols = getattr(rec, log)
    i = 5
    cols[column][i] += delta
    with pytest.raises(InvariantError, match=rf"negative {what} .* of message {cols['id'][i]}"):
        summarise(rec, sc, out, 0.0)


def test_a_breakdown_longer_than_the_latency_is_an_engine_bug() -> None:
    sc, out, rec = _records("network")
    # A hop that lasts longer than the whole message: its parts exceed its latency.
    h = rec.hops
    mid = int(h["id"][3])
    h["out"][3] += 10 * float(rec.done[mid] - rec.sent[mid]) + 1.0
    with pytest.raises(InvariantError, match=f"message {mid}"):
        summarise(rec, sc, out, 0.0)


def test_conservation_and_invariants_are_one_kind_of_error() -> None:
    assert issubclass(InvariantError, EngineBugError)
    assert issubclass(simq.record.summary.ConservationError, EngineBugError)


def test_summary_mode_checks_too() -> None:
    # The same accumulators run the checks in both modes: a clean streaming run passes.
    sc = simq.load("models/durability.yaml").with_overrides(
        {"run.until": 200, "run.records": "summary"})
    res = simq.run(sc)
    b = res.summary["breakdown"]
    assert b["other"] >= -1e-9 * res.summary["latency"]["mean"]
