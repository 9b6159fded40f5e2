"""Streaming statistics (run.records: summary) against full records, and compaction."""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parity import assert_parity

import simq
from simq.cli import main
from simq.engine import Simulation
from simq.engine.recorder import level_max
from simq.record.streaming import HISTOGRAM_ERROR, LogHistogram, run_full, run_streaming
from simq.record.summary import summarise
from simq.run import seed_for

MODELS = "models"

# Scenarios that between them exercise every log: drops, links with loss and
# serialization, several workers, a pipeline, an overload that never drains, and runs
# that stop after N messages (the window ends at the last send, then the system drains).
CASES: list[tuple[str, dict[str, Any]]] = [
    ("mm1", {"run.until": 6000, "run.warmup": 600}),
    ("mm1", {"run.until": None, "run.messages": 5000, "run.warmup": 300}),
    ("mmc", {"run.until": 2000, "run.warmup": 200}),
    ("tandem", {"run.until": 5000, "run.warmup": 500}),
    ("bounded", {"run.until": 6000, "run.warmup": 600}),
    ("bounded", {"run.until": 6000, "queues.broker.overflow": "drop-oldest"}),
    ("bounded", {"run.until": 6000, "queues.broker.overflow": "block"}),
    ("network", {"run.until": 3000, "links.app->broker.loss": 0.05}),
    ("overload", {"run.until": 3000, "run.warmup": 300}),
    ("tandem", {"run.until": None, "run.messages": 4000, "run.warmup": 0}),
    # time-varying load, a starting backlog, a group whose worker count changes
    ("spike", {}),
    ("backlog_drain", {"run.messages": 3000, "queues.broker.backlog.count": 3000}),
    ("autoscale", {}),
    ("bursty", {"run.until": 5000}),
]

def _both(model: str, overrides: dict[str, Any], chunk: int) -> tuple[dict, dict]:
    """Full-record and streaming summaries of one run."""
    sc = simq.load(f"{MODELS}/{model}.yaml").with_overrides(overrides)
    full = Simulation(sc, seed_for(3, 0))
    out = run_full(full, chunk=chunk)
    t0 = min(sc.run.warmup, out.t_stop)
    full_summary = summarise(full.rec.arrays(out.t_end), sc, out, t0)
    streamed = run_streaming(Simulation(sc, seed_for(3, 0)), chunk=chunk)
    assert streamed.outcome == out  # the same run, ended at the same time
    return full_summary, streamed.summary


@pytest.mark.parametrize(("model", "overrides"), CASES)
def test_streaming_gives_the_numbers_of_full_records(model: str, overrides: dict) -> None:
    # A tiny chunk folds hundreds of times mid-run, so every row crosses a fold boundary.
    full, streamed = _both(model, overrides, chunk=97)
    assert_parity(full, streamed)


def test_streaming_growth_rate_in_overload() -> None:
    # Overload grows at lambda - mu = 1.2 - 1.0 = 0.2 msg/s; both fits see the same path,
    # so they agree far more closely than either agrees with 0.2.
    full, streamed = _both("overload", {"run.until": 5000, "run.warmup": 500}, chunk=1000)
    g_full = full["queues"]["broker"]["growth_rate"]
    g_stream = streamed["queues"]["broker"]["growth_rate"]
    assert g_stream == pytest.approx(g_full, rel=0.01)
    assert g_stream == pytest.approx(0.2, rel=0.1)


def test_compaction_keeps_every_row_and_does_not_extend_the_run() -> None:
    sc = simq.load(f"{MODELS}/network.yaml").with_overrides(
        {"run.until": None, "run.messages": 3000, "links.app->broker.loss": 0.02})
    plain = Simulation(sc, seed_for(5, 0))
    out_plain = plain.run()
    chunked = Simulation(sc, seed_for(5, 0))
    out_chunked = run_full(chunked, chunk=50)
    assert out_chunked == out_plain
    a, b = plain.rec.arrays(out_plain.t_end), chunked.rec.arrays(out_chunked.t_end)
    for name in ("producer", "sent", "size", "done", "outcome", "where"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for log in ("visits", "hops"):
        for col, x in getattr(a, log).items():
            np.testing.assert_array_equal(x, getattr(b, log)[col])


def test_log_histogram_quantiles_within_the_stated_error() -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([np.zeros(300), rng.lognormal(0.0, 2.0, 20_000),
                        rng.exponential(1e-3, 500)])
    h = LogHistogram()
    for part in np.array_split(rng.permutation(x), 7):
        h.add(part)
    assert h.n == len(x)
    assert h.mean == pytest.approx(x.mean(), rel=1e-12)
    for q in (0.0, 0.01, 0.2, 0.5, 0.9, 0.99, 0.999, 1.0):
        assert h.quantile(q) == pytest.approx(np.quantile(x, q), rel=HISTOGRAM_ERROR)
    assert HISTOGRAM_ERROR < 0.005  # what the docs promise: p99 within 0.5%


def test_streaming_run_has_no_message_table_but_a_timeseries() -> None:
    sc = simq.load(f"{MODELS}/mm1.yaml").with_overrides(
        {"run.until": 2000, "run.warmup": 0, "run.records": "summary"})
    res = simq.run(sc, replications=2)
    with pytest.raises(simq.RecordsUnavailableError, match="run.records: full"):
        res.messages  # noqa: B018 - the property raises
    ts = res.timeseries
    assert set(ts.columns) == {"replication", "time", "in_flight", "queue.broker.length",
                               "consumer.worker.busy", "consumer.worker.workers"}
    one = ts[ts["replication"] == 0]
    assert one["time"].iloc[0] == 0.0 and one["time"].iloc[-1] == pytest.approx(2000)
    assert len(one) >= 1000
    assert (one["consumer.worker.busy"] <= 1).all()


def test_records_must_be_full_or_summary() -> None:
    with pytest.raises(simq.ScenarioError, match="run.records"):
        simq.load(f"{MODELS}/mm1.yaml").with_overrides({"run.records": "some"})


def test_cli_stream_writes_no_messages(tmp_path, capsys) -> None:
    out = tmp_path / "mm1"
    code = main(["run", f"{MODELS}/mm1.yaml", "--stream", "--set", "run.until=3000",
                 "--set", "run.warmup=0", "--out", str(out)])
    assert code == 0
    assert (out / "summary.json").is_file() and (out / "timeseries.csv").is_file()
    assert not (out / "messages.parquet").exists()
    assert "messages.parquet" not in capsys.readouterr().out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 6) | st.none()), max_size=30),
       st.integers(0, 25), st.integers(0, 25))
def test_level_max_is_the_largest_count_of_open_intervals(
    spans: list[tuple[int, int | None]], a: int, b: int
) -> None:
    t0, t1 = min(a, b), max(a, b)
    up = np.array([float(s) for s, _ in spans])
    down = np.array([math.nan if d is None else float(s + d) for s, d in spans])
    # Brute force: the level just after every event time in [t0, t1] (departures first).
    times = [t0] + [t for t in np.concatenate([up, down]) if t0 < t <= t1]
    best = max(int(((up <= t) & ~(down <= t)).sum()) for t in times)
    assert level_max(up, down, t0, t1) == best


@pytest.mark.slow
def test_streaming_memory_stays_flat() -> None:
    # Five times the messages must not need noticeably more memory: the logs are folded
    # every chunk. (Full records would need about 5x.) On the SimPy engine: the fast one
    # takes a streaming run only while its records fit in a quarter of run.max_memory
    # (tests/test_fast.py), so memory that grows with the run is what it is allowed.
    def peak(n: int) -> float:
        sc = simq.load(f"{MODELS}/mm1.yaml").with_overrides(
            {"run.until": None, "run.messages": n, "run.records": "summary",
             "run.engine": "simpy"})
        tracemalloc.start()
        try:
            simq.run(sc)
            return tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()

    small, large = peak(100_000), peak(500_000)
    assert large < 1.25 * small + 1.0, (small, large)


def test_bundled_long_run_model_streams() -> None:
    sc = simq.load(f"{MODELS}/long-run.yaml")
    assert sc.run.records == "summary"
    res = simq.run(sc.with_overrides({"run.messages": 5000, "run.warmup": 0}))
    assert res.summary["messages"]["delivered"] == 5000
    assert not res.has_messages


def _sweep(up: np.ndarray, down: np.ndarray, t0: float, t1: float) -> tuple[int, float, float]:
    """queue_peak by a plain event-by-event walk (departures first at equal times)."""
    events = sorted([(t, 1) for t in up] + [(t, -1) for t in down if not math.isnan(t)],
                    key=lambda e: (e[0], e[1]))
    level = i = 0
    while i < len(events) and events[i][0] <= t0:
        level += events[i][1]
        i += 1
    peak, peak_time, k = level, float(t0), i - 1
    for j in range(i, len(events)):
        level += events[j][1]
        if events[j][0] > t1:
            break
        if level > peak:
            peak, peak_time, k = level, float(events[j][0]), j
    if peak == 0:
        return 0, peak_time, 0.0
    level = sum(e[1] for e in events[: k + 1])
    for t, step in events[k + 1:]:
        level += step
        if level == 0:
            return peak, peak_time, float(t - peak_time)
    return peak, peak_time, math.nan


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 20), st.integers(0, 6) | st.none()), max_size=30),
       st.integers(-2, 25), st.integers(-2, 25))
def test_queue_peak_matches_an_event_by_event_walk(
    spans: list[tuple[int, int | None]], a: int, b: int
) -> None:
    from simq.record.measures import queue_peak

    t0, t1 = min(a, b), max(a, b)
    up = np.array([float(s) for s, _ in spans])
    down = np.array([math.nan if d is None else float(s + d) for s, d in spans])
    got, want = queue_peak(up, down, t0, t1), _sweep(up, down, t0, t1)
    assert got[:2] == want[:2]
    assert got[2] == want[2] or (math.isnan(got[2]) and math.isnan(want[2]))
