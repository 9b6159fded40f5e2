"""The document's formula table over a hand-made summary and traffic model: no scenario,
no simulation (simq.analysis.formulas is pure)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from simq import theory
from simq.analysis.formulas import HOLDS_TOLERANCE, document_formulas, theory_columns
from simq.model.network import Flows, QueueFlow
from simq.model.predict import Prediction

# One queue offered 0.8 msg/s with capacity 1.0 (M/M/1 at rho = 0.8).
FLOWS = Flows(generation_rate=0.8,
              queues={"q": QueueFlow("q", arrival_rate=0.8, capacity=1.0, servers=1,
                                     effective_arrival=0.8)},
              processing_time=1.0, transmission_time=0.25)


def summary(throughput: float, latency: float = 5.0, length: float = 3.2) -> dict[str, Any]:
    return {"offered_rate": 0.8, "throughput": throughput, "latency": {"mean": latency},
            "queues": {"q": {"growth_rate": 0.0, "length_mean": length}}}


def test_the_throughput_row_is_computed_from_the_flows_and_the_summary() -> None:
    f = document_formulas(FLOWS, summary(0.79))
    row = f["throughput"]
    assert row["predicted"] == pytest.approx(0.8)  # min(generation 0.8, processing 1.0)
    assert row["measured"] == 0.79 and row["unit"] == "msg/s"
    assert row["holds"] is True
    assert f["throughput_ratio"]["predicted"] == pytest.approx(1.0 / 0.8)
    assert f["throughput_ratio"]["measured"] == pytest.approx(0.79 / 0.8)
    assert f["latency"]["predicted"] == pytest.approx(1.25)
    assert f["latency"]["gap"] == pytest.approx(5.0 - 1.25)
    assert f["queue_length"]["queue"] == "q"
    assert f["queue_length"]["predicted"] == pytest.approx(-0.2)


def test_a_throughput_far_off_does_not_hold() -> None:
    far = 0.8 * (1 - 3 * HOLDS_TOLERANCE)
    f = document_formulas(FLOWS, summary(far))
    assert f["throughput"]["holds"] is False
    assert f["latency"]["holds"] is False  # 5 s measured against 1.25 s
    assert f["queue_length"]["holds"] is False  # a negative length never holds


def test_theory_columns_set_mm1_beside_each_row() -> None:
    m = theory.mm1(0.8, 1.0)
    pred = Prediction(model="M/M/1", kind="exact", reason="hand-made", queues={"q": m},
                      latency_mean=m.sojourn_mean + 0.25, throughput=0.8, offered=0.8)
    s = summary(0.8, latency=m.sojourn_mean + 0.25, length=m.length_mean * 1.5)
    f = document_formulas(FLOWS, s)
    theory_columns(f, pred, s, None)
    assert f["latency"]["theory"] == pytest.approx(5.25)
    assert f["latency"]["theory_error"] == pytest.approx(0.0)
    assert f["queue_length"]["theory"] == pytest.approx(3.2)
    assert f["queue_length"]["theory_error"] == pytest.approx(0.5)
    assert f["queue_growth"]["theory"] == 0.0
    assert f["throughput"]["theory_model"] == "M/M/1"
    assert f["throughput"]["theory_ci95"] is None  # one replication: no interval
    none = document_formulas(FLOWS, s)
    theory_columns(none, Prediction.none("no model"), s, None)
    assert none["latency"]["theory"] is None and none["latency"]["verdict"] == "no theory"
    assert math.isfinite(none["latency"]["measured"])
