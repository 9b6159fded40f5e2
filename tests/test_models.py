"""Every bundled model loads and runs a short version in both record modes, and its
counts add up (that the two modes agree is tests/test_parity.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import simq

MODELS = Path(__file__).resolve().parents[1] / "models"
NAMES = sorted(p.stem for p in MODELS.glob("*.yaml"))
SHORT = 300.0  # simulated seconds: enough for every model's faults and peaks to begin
CAP = 2000  # messages, for models that stop after N or start with a backlog


def short(name: str, records: str) -> simq.Scenario:
    """The model cut to at most SHORT seconds, one replication, in one record mode."""
    sc = simq.load(MODELS / f"{name}.yaml")
    until = min(sc.run.until or math.inf, SHORT)
    over: dict[str, Any] = {"run.until": until, "run.replications": 1,
                            "run.records": records}
    if sc.run.warmup != "auto":
        over["run.warmup"] = min(float(sc.run.warmup), until / 10)
    if sc.run.messages is not None:
        over["run.messages"] = min(sc.run.messages, CAP)
    for q, spec in sc.queues.items():
        # A starting backlog of 100,000 is a drain study, not a smoke test.
        if spec.backlog is not None and spec.backlog.count > CAP:
            over[f"queues.{q}.backlog.count"] = CAP
    return sc.with_overrides(over)


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_runs_a_short_version(name: str) -> None:
    res = simq.run(short(name, "full"))
    m = res.summary["messages"]
    outcomes = ("delivered", "dropped", "lost", "expired", "dead_lettered", "deduplicated",
               "in_flight")
    assert m["produced"] > 0 and m["produced"] == sum(m[k] for k in outcomes), m
    assert len(res.messages) == m["produced"]
