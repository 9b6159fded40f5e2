"""The fast engine (simq.engine.fast) against the SimPy engine, record for record.

Both draw the same named streams in the same blocks and do the same floating-point
operations in the same order, so on the same seed the fast engine must write the SimPy
engine's records exactly (every column, NaN where it has NaN), and the same summary. That
is a stronger check than a statistical agreement, and it makes every theory test of the
suite a theory test of the fast engine too (``run.engine: auto`` runs the eligible ones
on it). Row order within a log is not part of the contract (rows are sets of visits and
hops), so logs are compared sorted.
"""

from __future__ import annotations

import glob
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simq
from simq.engine import Simulation
from simq.engine import fast as fast_engine
from simq.engine.fast import FastRun, why_not
from simq.engine.recorder import Records
from simq.errors import ScenarioError
from simq.record.streaming import run_full
from simq.record.summary import summarise
from simq.report import summary_json
from simq.run import engine_of, seed_for

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted(glob.glob(str(ROOT / "models" / "*.yaml")))
SPAN = 3000.0

# Feed-forward networks the bundled models do not cover, each eligible.
COMPOSED: dict[str, dict[str, Any]] = {
    "mm4-link-loss-routing": {
        "name": "composed", "run": {"until": 2000, "warmup": 100},
        "producers": {
            "a": {"to": "front", "rate": 2.0, "size": "uniform(low=500, high=1500)"},
            "b": {"to": "front", "interarrival": "erlang(k=2, mean=1.0)", "start": 50,
                  "stop": 1500},
        },
        "queues": {"front": {}, "fast": {}, "slow": {}},
        "consumers": {
            "router": {"from": "front", "count": 4, "service": "lognormal(mean=1.2, cv=1.5)",
                       "to": {"fast": 0.5, "slow": 0.3, "exit": 0.2}},
            "f": {"from": "fast", "count": 2, "rate": 1.0},
            "s": {"from": "slow", "count": 1, "service": "gamma(mean=0.8, cv=0.5)"},
        },
        "links": {
            "a->front": {"latency": "exponential(mean=0.05)", "bandwidth": 1.0e6,
                         "loss": 0.02},
            "router->slow": {"latency": "constant(0.01)", "bandwidth": 2.0e5},
        },
    },
    "messages-limit-diurnal": {
        "name": "limited", "run": {"messages": 3000, "warmup": 0},
        "producers": {
            "d": {"to": "q", "arrivals": {"diurnal": {"mean": 1.5, "amplitude": 0.5,
                                                      "period": 600}}},
            "c": {"to": "q", "interarrival": "constant(2.0)"},
        },
        "queues": {"q": {}, "idle": {}},
        "consumers": {"w": {"from": "q", "count": 3, "rate": 1.0, "to": "idle"}},
    },
}


def _shortened(path: str) -> simq.Scenario:
    sc = simq.load(path)
    run = sc.run
    if run.until is not None and run.until > SPAN:
        warm = run.warmup if run.warmup == "auto" else run.warmup * SPAN / run.until
        sc = sc.with_overrides({"run.until": SPAN, "run.warmup": warm})
    if run.messages is not None and run.messages > 20_000:
        sc = sc.with_overrides({"run.messages": 20_000})
    return sc


def _sorted(log: dict[str, np.ndarray], place: str) -> dict[str, np.ndarray]:
    k = np.lexsort((log["id"], log[place]))
    return {c: x[k] for c, x in log.items()}


def _assert_same_records(a: Records, b: Records) -> None:
    for name in ("producer", "sent", "size", "done", "outcome", "where", "parent"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for log, place in (("visits", "queue"), ("hops", "link"), ("order", "stream")):
        x, y = _sorted(getattr(a, log), place), _sorted(getattr(b, log), place)
        assert set(x) == set(y)
        for c in x:
            np.testing.assert_array_equal(x[c], y[c], err_msg=f"{log}.{c}")
    for log in ("workers", "stages", "batches", "retransmits", "events", "blocked",
                "rebalances", "cluster"):
        assert all(len(v) == 0 for v in getattr(b, log).values()), log


def _both(sc: simq.Scenario) -> None:
    seed = seed_for(sc.run.seed, 0)
    sim = Simulation(sc, seed)
    out = run_full(sim)
    a = sim.rec.arrays(out.t_end)
    b, fast_out = FastRun(sc, seed).run()
    _assert_same_records(a, b)
    assert (fast_out.t_stop, fast_out.in_flight) == (out.t_stop, out.in_flight)
    if sc.run.until is not None:
        assert fast_out.t_end == out.t_end
    else:
        # Without `until` the SimPy run ends at its last event, which may be its sampling
        # monitor's last wake-up after the model's last event (at most one interval).
        assert fast_out.t_end <= out.t_end
    t0 = 0.0 if sc.run.warmup == "auto" else float(sc.run.warmup)
    assert summary_json(summarise(a, sc, out, t0)) == summary_json(
        summarise(b, sc, fast_out, t0))


ELIGIBLE = [m for m in MODELS if why_not(simq.load(m)) is None]


def test_the_fast_engine_covers_the_fifo_models() -> None:
    names = {Path(m).stem for m in ELIGIBLE}
    assert {"mm1", "md1", "mmc", "tandem", "network", "overload", "diurnal", "spike",
            "bursty", "long-run"} <= names


@pytest.mark.parametrize("path", ELIGIBLE, ids=lambda p: Path(p).stem)
def test_the_fast_engine_writes_the_simpy_engines_records(path: str) -> None:
    _both(_shortened(path))


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_composed_feed_forward_networks_match_record_for_record(name: str) -> None:
    sc = simq.load(COMPOSED[name])
    assert why_not(sc) is None
    _both(sc)


def test_compiled_and_python_loops_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    rng = np.random.default_rng(5)
    arrived = np.cumsum(rng.exponential(1.0, 30_000))
    service = rng.exponential(3.5, 30_000)
    for workers in (1, 4):
        monkeypatch.setattr(fast_engine, "COMPILE_FROM", 0)
        compiled = fast_engine.fifo(arrived, service, workers)
        assert fast_engine._LOOPS is not None and fast_engine._LOOPS[0] is not \
            fast_engine._serve_one
        monkeypatch.setattr(fast_engine, "_LOOPS", None)
        monkeypatch.setattr(fast_engine, "COMPILE_FROM", math.inf)
        plain = fast_engine.fifo(arrived, service, workers)
        monkeypatch.undo()
        for x, y in zip(compiled, plain, strict=True):
            np.testing.assert_array_equal(x, y)
        start, end = plain
        assert (start >= arrived).all() and (end >= start).all()


@pytest.mark.parametrize("model, path", [
    ("prefetch", "consumers.worker.prefetch"),
    ("bounded", "queues.broker.capacity"),
    ("rpc", "producers.web.mode"),
    ("partitions", "topics.events"),
    ("routing", "consumers"),  # a route back to an earlier queue
    ("cluster_failover", "brokers"),
])
def test_auto_names_what_keeps_a_scenario_on_simpy(model: str, path: str) -> None:
    sc = simq.load(str(ROOT / "models" / f"{model}.yaml"))
    engine, why = engine_of(sc)
    assert engine == "simpy" and path in why
    with pytest.raises(ScenarioError) as err:
        engine_of(sc.with_overrides({"run.engine": "fast"}))
    assert err.value.path == "run.engine" and path in str(err.value)


def test_the_summary_says_which_engine_ran_and_why() -> None:
    mm1 = str(ROOT / "models" / "mm1.yaml")
    short = {"run.until": 500, "run.warmup": 50}
    fast = simq.run(mm1, overrides=short)
    assert fast.summary["engine"]["name"] == "fast"
    slow = simq.run(mm1, overrides={**short, "run.engine": "simpy"})
    assert slow.summary["engine"] == {"name": "simpy",
                                      "reason": "asked for (run.engine: simpy)"}
    same = {k: v for k, v in fast.summary.items() if k != "engine"}
    assert json.dumps(same, sort_keys=True) == json.dumps(
        {k: v for k, v in slow.summary.items() if k != "engine"}, sort_keys=True)
    streaming = simq.run(mm1, overrides={**short, "run.records": "summary"})
    assert streaming.summary["engine"]["name"] == "simpy"
    assert "run.records" in streaming.summary["engine"]["reason"]


def test_the_cli_refuses_a_fast_run_it_cannot_do_in_the_house_style(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from simq.cli import main

    code = main(["run", str(ROOT / "models" / "prefetch.yaml"), "--set", "run.engine=fast",
                 "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "run.engine" in err and "consumers.worker.prefetch" in err
    assert not (tmp_path / "r").exists()
