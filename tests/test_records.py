"""The per-message records, the time series built from them, and the formula table."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import one_queue

import simq

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def piped() -> simq.RunResult:
    """Two stages, a lossy serializing link between them, a bounded first queue."""
    sc = {
        "name": "piped",
        "run": {"until": 2000, "warmup": 200, "seed": 11},
        "producers": {"app": {"to": "a", "rate": 1.5, "size": "uniform(low=500, high=1500)"}},
        "queues": {"a": {"capacity": 3, "overflow": "drop-oldest"}, "b": {}},
        "consumers": {
            "first": {"from": "a", "count": 2, "service": "exponential(mean=1.1)", "to": "b"},
            "second": {"from": "b", "service": "uniform(low=0.2, high=0.8)"},
        },
        "links": {
            "app->a": {"latency": "constant(0.05)", "bandwidth": 4000},
            "first->b": {"latency": "exponential(mean=0.2)", "loss": 0.05},
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # this load is stable: no warning expected
        return simq.run(sc, replications=2)


def test_one_row_per_produced_message(piped: simq.RunResult) -> None:
    msgs = piped.messages
    for r in piped.replications:
        mine = msgs[msgs["replication"] == r.index]
        assert len(mine) == r.summary["messages"]["produced"]
        assert mine["id"].tolist() == list(range(len(mine)))
        assert mine["sent"].is_monotonic_increasing
    assert set(msgs["outcome"]) >= {"delivered", "dropped", "lost"}


def test_per_hop_times_are_in_order(piped: simq.RunResult) -> None:
    m = piped.messages
    d = m[m["outcome"] == "delivered"]
    chain = ["sent", "app->a.in", "app->a.out", "a.arrived", "a.start", "a.end",
             "first->b.in", "first->b.out", "b.arrived", "b.start", "b.end", "done"]
    assert not d[chain].isna().any().any()
    for x, y in zip(chain, chain[1:], strict=False):
        assert (d[x] <= d[y]).all(), f"{x} > {y}"
    # Hops that hand over at once share a timestamp.
    assert (d["app->a.out"] == d["a.arrived"]).all()
    assert (d["a.end"] == d["first->b.in"]).all()
    assert (d["first->b.out"] == d["b.arrived"]).all()
    assert (d["b.end"] == d["done"]).all()
    assert np.allclose(d["latency"], d["done"] - d["sent"])
    # The serializing link keeps order and takes size/bandwidth at least.
    assert ((d["app->a.out"] - d["app->a.in"]) >= d["size"] / 4000 + 0.05 - 1e-9).all()


def test_ended_messages_stop_where_they_ended(piped: simq.RunResult) -> None:
    m = piped.messages
    lost = m[m["outcome"] == "lost"]
    # Lost on the second link: served at a, never arrived at b.
    assert lost["a.end"].notna().all() and lost["b.arrived"].isna().all()
    assert (lost["done"] == lost["a.end"]).all()
    dropped = m[m["outcome"] == "dropped"]
    # Drop-oldest evicts messages that were waiting: they arrived, were never served.
    assert dropped["a.arrived"].notna().all() and dropped["a.end"].isna().all()
    assert (dropped["done"] == dropped["a.start"]).all()
    assert dropped["b.arrived"].isna().all()
    fly = m[m["outcome"] == "in_flight"]
    assert fly["done"].isna().all()


def _brute_levels(res: simq.RunResult, rep: int, times: np.ndarray) -> dict[str, np.ndarray]:
    v = res.visits
    v = v[v["replication"] == rep]
    m = res.messages
    m = m[m["replication"] == rep]
    out = {}
    for q in res.scenario.queues:
        at = v[v["queue"] == q]
        arrived, start = at["arrived"].to_numpy(), at["start"].to_numpy()
        # Waiting at t: arrived by t and not yet taken (start NaN = still waiting at the end).
        out[f"queue.{q}.length"] = np.array(
            [int(((arrived <= t) & ~(start <= t)).sum()) for t in times])
    sent, done = m["sent"].to_numpy(), m["done"].to_numpy()
    out["in_flight"] = np.array([int(((sent <= t) & ~(done <= t)).sum()) for t in times])
    return out


def test_timeseries_matches_a_brute_force_count(piped: simq.RunResult) -> None:
    ts = piped.timeseries
    assert (ts.drop(columns=["replication", "time"]) >= 0).all().all()
    for r in piped.replications:
        mine = ts[ts["replication"] == r.index]
        pick = mine.iloc[np.linspace(1, len(mine) - 1, 12).astype(int)]
        brute = _brute_levels(piped, r.index, pick["time"].to_numpy())
        for col, expected in brute.items():
            assert pick[col].tolist() == expected.tolist(), col
        assert mine["queue.a.length"].max() <= 3
        assert mine["consumer.first.busy"].max() <= 2
        assert mine["consumer.second.busy"].max() <= 1
        assert mine["time"].iloc[-1] == pytest.approx(r.t_end)


def test_length_max_is_the_most_waiting_at_once(piped: simq.RunResult) -> None:
    v = piped.visits
    for r in piped.replications:
        t0, t1 = r.window
        for q in ("a", "b"):
            at = v[(v["replication"] == r.index) & (v["queue"] == q)]
            arrived = at["arrived"].to_numpy()
            start = np.where(at["start"].isna(), np.inf, at["start"].to_numpy())
            # The level only changes at arrivals and departures: check each one in window.
            moments = np.concatenate([[t0], arrived, start[np.isfinite(start)]])
            moments = moments[(moments >= t0) & (moments <= t1)]
            brute = max(int(((arrived <= t) & (start > t)).sum()) for t in moments)
            assert r.summary["queues"][q]["length_max"] == brute, q


def test_latency_mean_is_the_mean_over_window_messages(piped: simq.RunResult) -> None:
    m = piped.messages
    for r in piped.replications:
        t0, t1 = r.window
        mine = m[(m["replication"] == r.index) & (m["outcome"] == "delivered")
                 & (m["sent"] >= t0) & (m["sent"] < t1)]
        s = r.summary["latency"]
        assert s["mean"] == pytest.approx(mine["latency"].mean(), rel=1e-12)
        assert s["max"] == pytest.approx(mine["latency"].max(), rel=1e-12)
        assert s["p95"] == pytest.approx(mine["latency"].quantile(0.95), rel=1e-12)
    # The run's mean is the mean of the replications'.
    means = [r.summary["latency"]["mean"] for r in piped.replications]
    assert piped.summary["latency"]["mean"] == pytest.approx(np.mean(means))


def test_queue_wait_is_the_mean_over_window_arrivals(piped: simq.RunResult) -> None:
    v = piped.visits
    for r in piped.replications:
        t0, t1 = r.window
        for q in ("a", "b"):
            mine = v[(v["replication"] == r.index) & (v["queue"] == q)
                     & (v["consumer"] != "(none)") & v["start"].notna()
                     & (v["arrived"] >= t0) & (v["arrived"] < t1)]
            assert r.summary["queues"][q]["wait_mean"] == pytest.approx(
                mine["wait"].mean(), rel=1e-12)


def test_formulas_in_overload() -> None:
    # λ = 1.2 against μ = 1: the consumer is always busy, so delivered/offered is μ/λ,
    # exactly the text's "processing rate / generation rate", and the queue gains
    # λ − μ = 0.2 messages per second, exactly the text's "generation − processing"
    # read as a growth rate. Both must hold (within the 10% tolerance of `holds`), and
    # so does throughput read as a rate, min(λ, μ) = 1 msg/s.
    with pytest.warns(simq.UnstableWarning):
        res = simq.run(one_queue(1.2, "exponential(rate=1)", until=20000))
    f = res.summary["formulas"]
    assert f["throughput_ratio"]["predicted"] == pytest.approx(1 / 1.2)
    assert f["throughput_ratio"]["holds"] is True
    assert f["throughput"]["predicted"] == pytest.approx(1.0)
    assert f["throughput"]["holds"] is True
    assert f["queue_growth"]["predicted"] == pytest.approx(0.2)
    assert f["queue_growth"]["holds"] is True
    assert f["queue_growth"]["measured"] == pytest.approx(0.2, rel=0.2)
    # Read as a number waiting, 0.2 is nothing like the backlog, which grows with the
    # run and so has no steady-state theory.
    assert f["queue_length"]["holds"] is False
    assert f["queue_length"]["measured"] > 100
    assert f["queue_length"]["theory"] is None
    assert f["queue_length"]["verdict"].startswith("no steady state")
    # Latency has no steady state here: it grows with the run, so "processing +
    # transmission" (1 s) is far below what is measured.
    assert f["latency"]["holds"] is False


def test_formulas_at_rho_08() -> None:
    # At ρ = 0.8 an M/M/1 message waits Wq = ρ/(μ−λ) = 4 s on average before its 1 s of
    # service: "latency = processing + transmission" (1 s) misses the waiting and is off
    # by a factor of five, so it must not hold. The throughput ratio is 1 (all delivered)
    # while the text predicts μ/λ = 1.25, and the queue does not grow although the text
    # predicts −0.2 msg/s: neither holds below saturation. Read as a rate, throughput is
    # min(λ, μ) = 0.8 msg/s, which holds.
    res = simq.run(one_queue(0.8, "exponential(rate=1)", until=20000))
    f = res.summary["formulas"]
    assert f["latency"]["predicted"] == pytest.approx(1.0)
    assert f["latency"]["holds"] is False
    assert f["latency"]["measured"] > 3.0
    assert f["throughput_ratio"]["holds"] is False
    assert f["throughput_ratio"]["measured"] == pytest.approx(1.0, abs=0.02)
    assert f["throughput"]["holds"] is True
    assert f["throughput"]["measured"] == pytest.approx(0.8, rel=0.05)
    assert f["queue_growth"]["holds"] is False
    assert f["queue_length"]["holds"] is False
    # Theory in the row's own unit: 0 msg/s of growth, Lq = ρ²/(1−ρ) = 3.2 messages.
    assert f["queue_growth"]["theory"] == 0.0
    assert f["queue_length"]["theory"] == pytest.approx(3.2)
    assert f["throughput"]["theory"] == pytest.approx(0.8)
    assert f["throughput_ratio"]["theory"] == pytest.approx(1.0)


def test_rows_compare_like_with_like() -> None:
    res = simq.run(one_queue(0.5, "exponential(rate=1)", until=2000), replications=2)
    f = res.summary["formulas"]
    units = {k: row["unit"] for k, row in f.items()}
    assert units == {"throughput": "msg/s", "throughput_ratio": "ratio", "latency": "s",
                     "queue_growth": "msg/s", "queue_length": "messages"}
    s = res.summary
    assert f["throughput"]["measured"] == s["throughput"]
    assert f["throughput_ratio"]["measured"] == pytest.approx(
        s["throughput"] / s["offered_rate"])
    assert f["queue_growth"]["measured"] == s["queues"]["q"]["growth_rate"]
    assert f["queue_length"]["measured"] == s["queues"]["q"]["length_mean"]
    assert f["throughput_ratio"]["theory_ci95"] is not None  # from the replications


def test_a_negative_predicted_length_never_holds() -> None:
    # bounded.yaml below saturation: generation − processing is negative. Neither a
    # length nor a growth rate of a queue can be negative for long, so neither row holds,
    # however close the number is to what was measured.
    sc = simq.load(MODELS / "bounded.yaml").with_overrides(
        {"run.until": 4000, "run.warmup": 400, "run.replications": 1})
    f = simq.run(sc).summary["formulas"]
    assert f["queue_length"]["predicted"] < 0 and f["queue_growth"]["predicted"] < 0
    assert f["queue_length"]["holds"] is False
    assert f["queue_growth"]["holds"] is False
    assert "cannot be negative" in f["queue_length"]["note"]


def test_formulas_at_very_low_load_with_constant_service() -> None:
    # At ρ = 0.01 with a constant 1 s of service, a message waits only if it arrives
    # while another is served: Wq = λs²/(2(1−ρ)) ≈ 0.005 s (M/D/1), half a percent of
    # the service time. Latency is then processing time plus nothing, so the text's
    # formula holds.
    res = simq.run(one_queue(0.01, "constant(1.0)", until=200000))
    f = res.summary["formulas"]
    assert f["latency"]["predicted"] == pytest.approx(1.0)
    assert f["latency"]["holds"] is True
    assert f["latency"]["measured"] == pytest.approx(1.0, abs=0.03)
    assert math.isfinite(f["latency"]["gap"]) and f["latency"]["gap"] >= 0


def test_formula_table_has_the_contract_fields() -> None:
    res = simq.run(one_queue(0.5, "exponential(rate=1)", until=500))
    for name in ("throughput", "throughput_ratio", "latency", "queue_growth", "queue_length"):
        row = res.summary["formulas"][name]
        assert {"text_formula", "predicted", "measured", "theory", "holds"} <= set(row)
        assert isinstance(row["holds"], bool)
