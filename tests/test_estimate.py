"""The cost of a run on paper (simq.model.estimate): how it grows with the scenario, and
that it refuses what is too big with the size and what to change."""

from __future__ import annotations

from pathlib import Path

import pytest

import simq
from simq.errors import ScenarioError
from simq.model.estimate import EVENTS_PER_SECOND, check, check_sweep, estimate

ROOT = Path(__file__).resolve().parents[1]


def _mm1(**over: object) -> simq.Scenario:
    return simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.replications": 1, **over})


def test_events_grow_with_the_rate_the_length_and_the_replications() -> None:
    base = estimate(_mm1())
    assert estimate(_mm1(**{"run.until": 40000.0})).total_events == pytest.approx(
        2 * base.total_events, rel=0.01)
    assert estimate(_mm1(**{"producers.app.rate": 1.6})).total_events == pytest.approx(
        2 * base.total_events, rel=0.01)
    assert estimate(_mm1(**{"run.replications": 3})).total_events == pytest.approx(
        3 * base.total_events)
    # 0.8 msg/s for 20,000 s: 16,000 messages, each a send and a visit or so.
    assert base.messages == pytest.approx(16_000)
    assert 2 * base.messages <= base.events <= 4 * base.messages


def test_a_run_of_messages_lasts_as_long_as_they_take() -> None:
    est = estimate(_mm1(**{"run.until": None, "run.warmup": 0.0, "run.messages": 1000}))
    assert est.messages == pytest.approx(1000)


def test_every_station_visited_and_every_retry_costs_events() -> None:
    one = estimate(simq.load(ROOT / "models" / "mm1.yaml"), replications=1)
    tandem = estimate(simq.load(ROOT / "models" / "tandem.yaml"), replications=1)
    assert tandem.events / tandem.messages > 1.5 * one.events / one.messages
    retried = estimate(_mm1(**{"consumers.worker.ack": "manual",
                               "consumers.worker.failure": 0.5}))
    assert retried.events > 1.5 * estimate(_mm1()).events


def test_summary_records_hold_no_per_message_memory() -> None:
    full = estimate(_mm1())
    summary = estimate(_mm1(**{"run.records": "summary"}))
    assert full.records > 1000 * summary.standing > 0 and summary.records == 0
    assert estimate(_mm1(**{"run.replications": 4})).total_memory == pytest.approx(
        full.standing + 4 * full.records)


def test_the_limits_are_the_scenario_keys_or_the_option() -> None:
    sc = _mm1()
    assert check(sc).total_events < sc.run.max_events
    with pytest.raises(ScenarioError, match=r"^run.max_events: .*about 4×10⁴ events"):
        check(sc, max_events=1000)
    with pytest.raises(ScenarioError, match="run.max_events"):
        check(sc.with_overrides({"run.max_events": 1000}))
    check(sc.with_overrides({"run.max_events": 1000}), max_events=1e6)  # the option wins
    with pytest.raises(ScenarioError, match=r"^run.max_memory: .*--stream"):
        check(sc.with_overrides({"run.max_memory": 1e6}))
    check(sc.with_overrides({"run.max_memory": 1e6, "run.records": "summary"}))


def test_a_sweep_counts_every_point_and_replication() -> None:
    points = [_mm1(**{"producers.app.rate": r}) for r in (0.2, 0.4, 0.6)]
    total = check_sweep(points, 10)
    each = sum(estimate(p).events for p in points)
    assert total.total_events == pytest.approx(10 * each)
    with pytest.raises(ScenarioError, match="3 points x 10 replications"):
        check_sweep(points, 10, max_events=each)


def test_the_description_says_events_time_and_memory() -> None:
    est = estimate(_mm1(**{"producers.app.rate": 1e6, "run.warmup": 0.0}))
    text = est.describe()
    assert text.startswith("about ") and "events" in text and f"{EVENTS_PER_SECOND:,}" in text
    assert "days" in text and "TiB" in text, text
