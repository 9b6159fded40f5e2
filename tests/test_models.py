"""Every bundled model loads and runs a short version in both record modes, and the two
modes agree: counts equal, means to floating-point tolerance, percentiles within the
histogram's stated error, the same time-series columns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import simq
from simq.streaming import HISTOGRAM_ERROR

MODELS = Path(__file__).resolve().parents[1] / "models"
NAMES = sorted(p.stem for p in MODELS.glob("*.yaml"))
SHORT = 300.0  # simulated seconds: enough for every model's faults and peaks to begin
CAP = 2000  # messages, for models that stop after N or start with a backlog
PERCENTILES = {"p50", "p95", "p99", "wait_p95"}


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


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= _leaves(v, f"{prefix}{k}.")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[prefix + k] = v
    return out


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_runs_a_short_version(name: str) -> None:
    res = simq.run(short(name, "full"))
    m = res.summary["messages"]
    outcomes = ("delivered", "dropped", "lost", "expired", "dead_lettered", "in_flight")
    assert m["produced"] > 0 and m["produced"] == sum(m[k] for k in outcomes), m
    assert len(res.messages) == m["produced"]


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_gives_the_same_numbers_in_both_record_modes(name: str) -> None:
    full = simq.run(short(name, "full"))
    streamed = simq.run(short(name, "summary"))
    # What the formulas and theory tables add is computed from these numbers.
    skip = ("formulas.", "theory.", "warmup.")
    a = {k: v for k, v in _leaves(full.summary).items() if not k.startswith(skip)}
    b = {k: v for k, v in _leaves(streamed.summary).items() if not k.startswith(skip)}
    differ = []
    for key in sorted(a.keys() & b.keys()):
        x, y, last = a[key], b[key], key.rsplit(".", 1)[-1]
        if isinstance(x, float) and math.isnan(x):
            same = isinstance(y, float) and math.isnan(y)
        elif last in PERCENTILES:
            same = y == pytest.approx(x, rel=HISTOGRAM_ERROR * (1 + 1e-9), abs=1e-12)
        elif last == "growth_rate":
            continue  # fitted to sampled levels in summary mode (tests/test_streaming.py)
        elif key.startswith("messages.") or isinstance(x, int):
            same = y == x
        else:
            same = y == pytest.approx(x, rel=1e-9, abs=1e-12)
        if not same:
            differ.append(f"{key}: {x!r} full, {y!r} summary")
    assert not differ, "\n".join(differ)
    assert a.keys() == b.keys(), f"only in one mode: {sorted(a.keys() ^ b.keys())}"
    assert set(streamed.timeseries.columns) == set(full.timeseries.columns)
