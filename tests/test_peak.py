"""Peak load: time-varying arrivals, backlogs, scheduled and autoscaled consumer groups."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import simq
from simq.engine import Simulation
from simq.engine.recorder import level_at
from simq.record.measures import latency_windows, queue_peak
from simq.scenario.workload import mmpp_generator
from simq.theory.mmpp import mmpp_m1

matplotlib.use("Agg")
pytestmark = pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
MODELS = Path(__file__).resolve().parent.parent / "models"


def scenario(producer: dict, *, until: float = 1000.0, consumers: dict | None = None,
             queue: dict | None = None, **run) -> simq.Scenario:
    return simq.Scenario({
        "name": "t",
        "run": {"until": until, "seed": 3, **run},
        "producers": {"app": {"to": "q", **producer}} if producer else {},
        "queues": {"q": queue or {}},
        "consumers": consumers if consumers is not None else
        {"w": {"from": "q", "count": 50, "service": "constant(0.001)"}},
    })


def simulate(sc: simq.Scenario, rep: int = 0) -> Simulation:
    sim = Simulation(sc, np.random.SeedSequence(sc.run.seed, spawn_key=(rep,)))
    sim.run()
    return sim


def sent_times(sim: Simulation) -> np.ndarray:
    return np.array([c[1] for c in sim.rec.created if c[0] >= 0])


def poisson_ok(count: int, mean: float, alpha: float = 1e-3) -> bool:
    """Count inside the central (1 - alpha) Poisson interval of its mean."""
    lo, hi = stats.poisson.ppf([alpha / 2, 1 - alpha / 2], mean)
    return bool(lo <= count <= hi)


# Arrival processes ---------------------------------------------------------------------

def test_schedule_pieces_get_poisson_counts_and_zero_pieces_none() -> None:
    sched = [[0, 2.0], [100, 10.0], [150, 0.0], [200, 5.0]]
    sc = scenario({"arrivals": {"schedule": sched, "repeat": 300}}, until=3000)
    t = sent_times(simulate(sc)) % 300
    # Ten cycles: expected count per piece = rate x length x 10. Each check is a 99.9%
    # Poisson interval, so all three pass together with probability >= 99.7%.
    assert poisson_ok(int(((t >= 0) & (t < 100)).sum()), 2 * 100 * 10)
    assert poisson_ok(int(((t >= 100) & (t < 150)).sum()), 10 * 50 * 10)
    assert int(((t >= 150) & (t < 200)).sum()) == 0
    assert poisson_ok(int((t >= 200).sum()), 5 * 100 * 10)


def test_spike_counts_and_nominal_mean_rate() -> None:
    sc = scenario({"arrivals": {"spike": {"base": 1, "peak": 20, "start": 200, "duration": 100}}},
                  until=1000)
    t = sent_times(simulate(sc))
    assert poisson_ok(int((t < 200).sum()), 200)
    assert poisson_ok(int(((t >= 200) & (t < 300)).sum()), 2000)
    assert poisson_ok(int((t >= 300).sum()), 700)
    # On paper the producer is Poisson at its mean rate over the run: (900 + 2000) / 1000.
    assert sc.producers["app"].interarrival.mean == pytest.approx(1000 / 2900)


def test_deterministic_schedule_puts_arrival_n_where_the_integral_reaches_n() -> None:
    sc = scenario({"arrivals": {"schedule": [[0, 2], [10, 0.5], [20, 4]],
                                "process": "deterministic"}}, until=22.1)
    t = sent_times(simulate(sc))
    want = np.r_[np.arange(1, 21) / 2, 10 + 2 * np.arange(1, 6), 20 + np.arange(1, 9) / 4]
    np.testing.assert_allclose(t, want, atol=1e-9)


def test_trace_replays_exactly_relative_to_the_scenario_file(tmp_path: Path) -> None:
    times = [0.5, 1.0, 1.0, 2.25, 7.0, 7.0001, 9.5]
    (tmp_path / "sends.csv").write_text("time,who\n" + "".join(f"{x!r},a\n" for x in times))
    (tmp_path / "s.yaml").write_text(
        "run: {until: 20}\nproducers:\n  app: {to: q, arrivals: {trace: sends.csv}}\n"
        "queues: {q: {}}\nconsumers: {w: {from: q, rate: 100}}\n")
    sc = simq.load(tmp_path / "s.yaml")
    sim = simulate(sc)
    assert sent_times(sim).tolist() == times
    # The producer stops after the last send: the run ends when the last is served.
    res = simq.run(sc.with_overrides({"run.until": None, "run.messages": 100}))
    assert res.summary["messages"]["produced"] == len(times)
    assert res.summary["messages"]["delivered"] == len(times)


def test_trace_skips_times_before_start(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("1\n2\n3\n4\n")
    sc = simq.Scenario({"run": {"until": 10}, "producers": {"app": {
        "to": "q", "start": 2.5, "arrivals": {"trace": "t.csv"}}}, "queues": {"q": {}}},
        base_dir=tmp_path)
    assert sent_times(simulate(sc)).tolist() == [3.0, 4.0]


def test_diurnal_counts_per_quarter_period() -> None:
    mean, amp, period = 5.0, 4.0, 100.0
    sc = scenario({"arrivals": {"diurnal": {"mean": mean, "amplitude": amp, "period": period,
                                            "phase": 0.3}}}, until=1000)
    t = sent_times(simulate(sc)) % period
    w = 2 * math.pi / period
    for q in range(4):
        a, b = q * 25.0, (q + 1) * 25.0
        integral = mean * 25 - amp / w * (math.cos(w * b + 0.3) - math.cos(w * a + 0.3))
        assert poisson_ok(int(((t >= a) & (t < b)).sum()), 10 * integral)


def test_onoff_mean_rate_within_its_overdispersed_ci() -> None:
    rate, on, off, until = 6.0, 5.0, 15.0, 20000.0
    sc = scenario({"arrivals": {"onoff": {"rate": rate, "on": on, "off": off}}}, until=until)
    n = len(sent_times(simulate(sc)))
    lam = rate * on / (on + off)
    # MMPP-2 counts over a long window have variance lam*T*IDC, with the asymptotic index
    # of dispersion IDC = 1 + 2 (l1 - l2)^2 r1 r2 / ((r1 + r2)^2 (l1 r2 + l2 r1)).
    r1, r2 = 1 / on, 1 / off
    idc = 1 + 2 * rate**2 * r1 * r2 / ((r1 + r2) ** 2 * (rate * r2))
    sd = math.sqrt(lam * until * idc)
    assert abs(n - lam * until) < 3.3 * sd  # 99.9% normal interval


# Backlogs ------------------------------------------------------------------------------

def test_backlog_drains_in_count_over_capacity() -> None:
    sc = scenario({}, until=None, messages=2000,
                  queue={"backlog": {"count": 2000, "age": "uniform(low=0, high=10)"}},
                  consumers={"w": {"from": "q", "count": 8, "service": "constant(1)"}})
    res = simq.run(sc)
    s = res.summary
    assert s["messages"]["produced"] == 2000 and s["messages"]["delivered"] == 2000
    assert res.replications[0].t_end == pytest.approx(250.0)
    q = s["queues"]["q"]
    # 8 are taken at time 0; the line is empty when the last 8 are taken at 249.
    assert q["peak_length"] == 1992 and q["peak_time"] == 0.0
    assert q["drain_time"] == pytest.approx(249.0)
    m = res.messages
    assert m["producer"].isna().all()
    assert (m["sent"] <= 0).all() and (m["sent"] >= -10).all()
    # Oldest first: start of service never decreases with the age order.
    order = np.argsort(m["sent"].to_numpy(), kind="stable")
    assert np.all(np.diff(m["q.start"].to_numpy()[order]) >= 0)
    # Latency includes the age the message had at time 0.
    assert s["latency"]["max"] <= 10 + 250 + 1e-9
    assert s["latency"]["mean"] == pytest.approx(5 + np.mean(np.arange(250) + 1), rel=0.05)


def test_backlog_with_producer_conserves_and_counts_as_produced() -> None:
    sc = scenario({"rate": 5.0}, until=500, queue={"backlog": {"count": 300}},
                  consumers={"w": {"from": "q", "count": 6, "rate": 1.0}})
    res = simq.run(sc)
    s = res.summary
    m = res.messages
    assert m["producer"].isna().sum() == 300
    assert s["messages"]["produced"] == 300 + m["producer"].notna().sum()
    # Drain at c mu - lambda = 1 msg/s: ~300 s (the line empties when the fluid does).
    assert 200 < s["queues"]["q"]["drain_time"] < 400


# Fluid check ---------------------------------------------------------------------------

def test_spike_peak_and_drain_match_the_fluid_model() -> None:
    base, peak, start, dur, c = 5.0, 20.0, 500.0, 1000.0, 10
    sc = scenario({"arrivals": {"spike": {"base": base, "peak": peak, "start": start,
                                          "duration": dur}, "process": "deterministic"}},
                  until=5000, consumers={"w": {"from": "q", "count": c, "rate": 1.0}},
                  replications=3)
    s = simq.run(sc).summary
    q = s["queues"]["q"]
    fluid_peak = (peak - c) * dur  # grows at lambda_peak - c mu
    fluid_drain = fluid_peak / (c - base)  # drains at c mu - lambda_base
    # Service noise over the spike has sd sqrt(c mu dur) = 100 (1% of the peak); the drain
    # adds sqrt(c mu T_drain)/(c mu - lambda) ~ 28 s (1.4%); averaged over 3 replications
    # both are under 1%, so 5% is more than 5 standard deviations.
    assert q["peak_length"] == pytest.approx(fluid_peak, rel=0.05)
    assert q["peak_time"] == pytest.approx(start + dur, abs=50)
    assert q["drain_time"] == pytest.approx(fluid_drain, rel=0.05)


# Bursty against Poisson ----------------------------------------------------------------

def test_mmpp_m1_reduces_to_mm1_and_matches_a_truncated_ctmc() -> None:
    same = mmpp_m1([0.7, 0.7], mmpp_generator([0.3, 0.3]), 1.0)
    assert same.wait_mean == pytest.approx(simq.theory.mm1(lam=0.7, mu=1.0).wait_mean)
    rates, q, mu = np.array([1.2, 0.4]), mmpp_generator([0.1, 0.1]), 1.0
    # Brute force: levels 0..N x 2 phases, solved directly.
    n = 600
    size = 2 * (n + 1)
    g = np.zeros((size, size))
    for lvl in range(n + 1):
        for ph in range(2):
            i = 2 * lvl + ph
            g[i, 2 * lvl + 1 - ph] += q[ph, 1 - ph]
            if lvl < n:
                g[i, i + 2] += rates[ph]
            if lvl > 0:
                g[i, i - 2] += mu
    np.fill_diagonal(g, 0)
    np.fill_diagonal(g, -g.sum(axis=1))
    a = g.T.copy()
    a[-1, :] = 1.0  # one balance equation is redundant: replace it by normalization
    b = np.zeros(size)
    b[-1] = 1
    p = np.linalg.solve(a, b)
    length = float((np.repeat(np.arange(n + 1), 2) * p).sum())
    assert mmpp_m1(rates, q, mu).length_mean == pytest.approx(length, rel=1e-6)


def test_bursty_waits_longer_than_poisson_by_the_mmpp_m1_ratio() -> None:
    # models/bursty.yaml: MMPP(1.2, 0.4; switch 0.1, 0.1) vs Poisson 0.8, both into mu = 1.
    sc = simq.load(MODELS / "bursty.yaml").with_overrides({"run.until": 30000})
    reps = 5
    res = simq.run(sc, replications=reps)
    wb = np.array([r.summary["queues"]["lumpy"]["wait_mean"] for r in res.replications])
    wp = np.array([r.summary["queues"]["smooth"]["wait_mean"] for r in res.replications])
    ratio = wb.mean() / wp.mean()
    # Delta method on the ratio of two independent replication means, 99% t interval.
    se = ratio * math.sqrt(wb.var(ddof=1) / reps / wb.mean() ** 2
                           + wp.var(ddof=1) / reps / wp.mean() ** 2)
    half = stats.t.ppf(0.995, reps - 1) * se
    theory = (mmpp_m1([1.2, 0.4], mmpp_generator([0.1, 0.1]), 1.0).wait_mean
              / simq.theory.mm1(lam=0.8, mu=1.0).wait_mean)  # 7.69 / 4.0 = 1.92
    assert abs(ratio - theory) <= half
    assert ratio > 1.5
    # Same throughput: both carry the same mean rate (within the CI of the difference).
    s, ci = res.summary["consumers"], res.summary["ci95"]["consumers"]
    assert abs(s["a"]["throughput"] - s["b"]["throughput"]) <= (
        ci["a"]["throughput"] + ci["b"]["throughput"])


# Capacity that changes -----------------------------------------------------------------

def test_schedule_follows_counts_and_accounts_worker_seconds() -> None:
    sc = scenario({"rate": 8.0}, until=300, consumers={"w": {
        "from": "q", "count": 2, "service": "constant(1)",
        "schedule": [[100, 5], [200, 1]]}})
    res = simq.run(sc)
    ws = res.summary["consumers"]["w"]["worker_seconds"]
    # 2 x 100 + 5 x 100 + 1 x 100; a worker asked to leave at 200 finishes its message
    # first (service 1 s), so up to 4 x 1 s more.
    assert 800 <= ws <= 804
    ts = res.timeseries
    at = ts.set_index("time")["consumer.w.workers"]
    assert at[at.index < 100].eq(2).all() and at[(at.index > 100) & (at.index < 200)].eq(5).all()
    assert at[at.index > 202].eq(1).all()
    assert res.summary["consumers"]["w"]["utilization"] <= 1.0


def autoscale_sc(seed: int = 5) -> simq.Scenario:
    return scenario({"arrivals": {"spike": {"base": 2, "peak": 9, "start": 300,
                                            "duration": 300}}}, until=1500, seed=seed,
                    consumers={"w": {"from": "q", "count": 2, "rate": 1.0, "autoscale": {
                        "min": 2, "max": 7, "target_backlog_per_worker": 3, "interval": 5,
                        "scale_up_delay": 20, "cooldown": 50}}})


@pytest.mark.parametrize("seed", [5, 6])
def test_autoscale_respects_bounds_delays_and_cooldown(seed: int) -> None:
    sim = simulate(autoscale_sc(seed))
    log = np.array(sim.rec.workers)
    t, online, starting = log[:, 0], log[:, 2], log[:, 3]
    assert online.min() >= 2 and (online + starting).max() <= 7
    assert online.max() == 7  # the spike does push it to the top
    dec = np.array(sim.scalers["w"].decisions)
    assert np.allclose(dec[:, 0] % 5, 0)  # the policy looks every `interval`
    ups = dec[dec[:, 2] > dec[:, 1], 0]
    # Each time workers come online (the count rises) is a scale-up decision + 20 s.
    rises = t[1:][np.diff(online) > 0]
    assert len(rises)
    for r in rises:
        assert np.isclose(ups, r - 20).any()
    # A scale-down decision comes at least `cooldown` after the previous decision.
    for prev, cur in zip(dec[:-1], dec[1:], strict=True):
        if cur[2] < cur[1]:
            assert cur[0] - prev[0] >= 50 - 1e-9
    # Busy workers never exceed the workers online (nobody is cut off mid-message).
    v = sim.rec.arrays(sim.env.now).visits
    served = ~np.isnan(v["left"])
    starts = v["left"][served]
    busy = level_at(v["left"][served], v["end"][served], starts)
    i = np.searchsorted(t, starts, side="right") - 1
    assert np.all(busy <= online[i])


def test_autoscale_worker_seconds_match_the_worker_log_and_runs_repeat() -> None:
    sc = autoscale_sc()
    res = simq.run(sc)
    t_end = res.replications[0].t_end
    w = res.replications[0].records.workers
    ends = np.r_[w["t"][1:], t_end]
    expect = float((w["online"] * (ends - w["t"])).sum())
    c = res.summary["consumers"]["w"]
    assert c["worker_seconds"] == pytest.approx(expect)
    assert 2 * t_end < c["worker_seconds"] < 7 * t_end
    assert c["utilization"] <= 1.0
    assert simq.run(sc).summary == res.summary


def test_lag_metric_scales_up_under_overload() -> None:
    sc = scenario({"rate": 6.0}, until=400, consumers={"w": {
        "from": "q", "count": 1, "rate": 1.0, "autoscale": {
            "min": 1, "max": 10, "metric": "lag", "target_lag": 5, "interval": 10,
            "cooldown": 1000}}})
    res = simq.run(sc)
    ts = res.timeseries
    assert ts["consumer.w.workers"].iloc[-1] >= 6
    assert res.summary["queues"]["q"]["peak_length"] > 0


@pytest.mark.parametrize("seed", range(4))
def test_conservation_with_scaling_downstream_blocking(seed: int) -> None:
    sc = simq.Scenario({
        "run": {"until": 300, "seed": seed},
        "producers": {"app": {"to": "a", "arrivals": {"mmpp": {"rates": [12, 1],
                                                                "switch": [0.1, 0.05]}}}},
        "queues": {"a": {"backlog": {"count": 50}}, "b": {"capacity": 3, "overflow": "block"}},
        "consumers": {
            "x": {"from": "a", "to": "b", "count": 3, "rate": 2.0,
                  "schedule": [[20, 0], [40, 6], [90, 1], [150, 8]]},
            "y": {"from": "b", "count": 2, "rate": 3.0, "autoscale": {
                "min": 1, "max": 5, "target_backlog_per_worker": 1, "interval": 3,
                "scale_up_delay": 4, "cooldown": 7}},
        },
    })
    s = simq.run(sc).summary  # summarise raises ConservationError on any leak
    m = s["messages"]
    assert m["produced"] == m["delivered"] + m["in_flight"]
    assert m["produced"] > 50


@settings(max_examples=15, deadline=None)
@given(
    rates=st.lists(st.floats(0, 8), min_size=1, max_size=4).filter(lambda r: max(r) > 0.1),
    counts=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    backlog=st.integers(0, 30),
    seed=st.integers(0, 2**16),
)
def test_conservation_and_worker_accounting_property(rates: list[float], counts: list[int],
                                                     backlog: int, seed: int) -> None:
    sched = [[20.0 * i, r] for i, r in enumerate(rates)]
    workers = [[15.0 * (i + 1), n] for i, n in enumerate(counts)]
    sc = scenario({"arrivals": {"schedule": sched, "repeat": 20.0 * len(rates) + 5}},
                  until=120, seed=seed, queue={"capacity": 30, "backlog": {"count": backlog}},
                  consumers={"w": {"from": "q", "count": 2, "rate": 2.0, "schedule": workers}})
    res = simq.run(sc)  # raises ConservationError on any leak
    s = res.summary
    assert s["messages"]["produced"] >= backlog
    # Workers online never below the scheduled count (leavers finish first) and the
    # worker-seconds equal the integral of the log.
    w = res.replications[0].records.workers
    ends = np.r_[w["t"][1:], res.replications[0].t_end]
    assert s["consumers"]["w"]["worker_seconds"] == pytest.approx(
        float((w["online"] * (ends - w["t"])).sum()))
    assert s["consumers"]["w"]["utilization"] <= 1 + 1e-9 or math.isnan(
        s["consumers"]["w"]["utilization"])


# Measures ------------------------------------------------------------------------------

def test_queue_peak_on_a_hand_made_line() -> None:
    arrived = np.array([0.0, 1.0, 2.0, 6.0])
    left = np.array([3.0, 4.0, 5.0, np.nan])
    assert queue_peak(arrived, left, 0.0, 10.0) == (3, 2.0, 3.0)
    peak, when, drain = queue_peak(arrived[3:], left[3:], 0.0, 10.0)
    assert (peak, when) == (1, 6.0) and math.isnan(drain)


def test_latency_windows_by_sent_and_done() -> None:
    res = simq.run(scenario({"rate": 2.0}, until=600,
                            consumers={"w": {"from": "q", "count": 2, "rate": 1.5}}))
    w = res.latency_windows(60)
    assert list(w.columns[:5]) == ["replication", "start", "end", "count", "mean"]
    assert {"p50", "p95", "p99"} <= set(w.columns)
    assert w["count"].sum() == res.summary["messages"]["delivered"]
    assert (w["p50"] <= w["p95"]).all() and (w["p95"] <= w["p99"]).all()
    by_done = latency_windows(res.replications[0].records, 60, by="done")
    assert by_done["count"].sum() == w["count"].sum()
    with pytest.raises(ValueError, match="width"):
        res.latency_windows(0)


def test_plots_and_report_show_the_peak(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    import simq.plots as plots
    from simq.report import report

    sc = simq.load(MODELS / "autoscale.yaml").with_overrides({"run.until": 1800})
    res = simq.run(sc)
    tl = res.timeline(60)
    assert {"arrival_rate", "queue.elastic_q.length", "consumer.elastic.workers"} <= set(tl)
    assert isinstance(plots.peak_timeline(tl), Figure)
    assert isinstance(plots.latency_bands(res.latency_windows(60)), Figure)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert plots.peak_timeline(tl, ax=ax) is fig
    plt.close("all")
    # Every replication is drawn: the others faint, in the first one's colours.
    two = simq.run(sc, replications=2)
    panels = plots.peak_timeline(two.timeline(60)).axes
    rate = [ln for ln in panels[0].get_lines()]
    assert len(rate) == 2 and rate[1].get_alpha() < 1
    assert rate[0].get_color() == rate[1].get_color()
    queues = [c for c in tl if c.startswith("queue.") and c.endswith(".length")]
    assert len(panels[1].get_lines()) == 2 * len(queues)  # each queue, twice
    bands = plots.latency_bands(two.latency_windows(60)).axes[0]
    assert "median, 1 other replication" in [t.get_text() for t in
                                               bands.get_legend().get_texts()]
    plt.close("all")
    out = report(res, tmp_path / "r")
    assert (out / "figures" / "peak_timeline.png").is_file()
    assert (out / "figures" / "latency_bands.png").is_file()
    assert "<h2 id=\"peak_timeline\">Peak load over time</h2>" in (out / "report.html").read_text()


@pytest.mark.parametrize("name,over", [
    ("spike", {"run.until": 1500}),
    ("diurnal", {"run.until": 1440}),
    ("backlog_drain", {"queues.broker.backlog": {"count": 2000}, "run.messages": 2000}),
    ("autoscale", {"run.until": 1200}),
    ("bursty", {"run.until": 2000, "run.warmup": 100}),
])
def test_models_run(name: str, over: dict) -> None:
    s = simq.run(simq.load(MODELS / f"{name}.yaml").with_overrides(over)).summary
    assert s["messages"]["delivered"] > 0


# Validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("producer,path,words", [
    ({"arrivals": {"schedule": [[0, 1], [5, 2], [5, 3]]}}, "producers.app.arrivals.schedule",
     "increase"),
    ({"arrivals": {"schedule": [[1, 1]]}}, "producers.app.arrivals.schedule", "first time"),
    ({"arrivals": {"schedule": [[0, -1]]}}, "producers.app.arrivals.schedule", "0"),
    ({"arrivals": {"schedule": [[0, 1], [10, 0]], "repeat": 5}}, "producers.app.arrivals",
     "repeat"),
    ({"arrivals": {"spike": {"base": 1, "peak": 2, "start": 0, "duration": 1},
                   "diurnal": {"mean": 1, "amplitude": 0, "period": 1}}},
     "producers.app.arrivals", "exactly one"),
    ({"arrivals": {}}, "producers.app.arrivals", "exactly one"),
    ({"arrivals": {"diurnal": {"mean": 1, "amplitude": 2, "period": 5}}},
     "producers.app.arrivals.diurnal", "amplitude"),
    ({"arrivals": {"mmpp": {"rates": [1, 2], "switch": [1, 2, 3]}}},
     "producers.app.arrivals.mmpp", "one rate per state"),
    ({"arrivals": {"trace": "no-such.csv"}}, "producers.app.arrivals.trace", "no such"),
    ({"rate": 1, "arrivals": {"spike": {"base": 1, "peak": 2, "start": 0, "duration": 1}}},
     "producers.app.arrivals", "not both"),
    ({"arrivals": {"diurnal": {"mean": 1, "amplitude": 0, "period": 5},
                   "process": "deterministic"}}, "producers.app.arrivals", "deterministic"),
])
def test_bad_arrivals_name_path_and_rule(producer: dict, path: str, words: str) -> None:
    with pytest.raises(simq.ScenarioError) as err:
        scenario(producer)
    assert str(err.value).startswith(path)
    assert words in str(err.value)


@pytest.mark.parametrize("consumer,path,words", [
    ({"autoscale": {"min": 5, "max": 2, "target_backlog_per_worker": 1}},
     "consumers.w.autoscale", "min must be <= max"),
    ({"autoscale": {"max": 4}}, "consumers.w.autoscale", "target_backlog_per_worker"),
    ({"autoscale": {"max": 4, "metric": "lag"}}, "consumers.w.autoscale", "target_lag"),
    ({"count": 9, "autoscale": {"max": 4, "target_backlog_per_worker": 1}},
     "consumers.w.count", "[autoscale.min, autoscale.max]"),
    ({"schedule": [[10, 1], [5, 2]]}, "consumers.w.schedule", "increase"),
    ({"schedule": [[0, -1]]}, "consumers.w.schedule", "an integer >= 0, got -1"),
    ({"schedule": [[0, 1]], "autoscale": {"max": 4, "target_backlog_per_worker": 1}},
     "consumers.w", "not both"),
])
def test_bad_scaling_names_path_and_rule(consumer: dict, path: str, words: str) -> None:
    spec = {"from": "q", "rate": 1.0, **consumer}
    with pytest.raises(simq.ScenarioError) as err:
        scenario({"rate": 1.0}, consumers={"w": spec})
    assert str(err.value).startswith(path)
    assert words in str(err.value)


def test_bad_backlog_and_missing_producers() -> None:
    with pytest.raises(simq.ScenarioError, match=r"queues\.q\.backlog\.count: must be <= "):
        scenario({"rate": 1.0}, queue={"capacity": 5, "backlog": {"count": 6}})
    with pytest.raises(simq.ScenarioError, match=r"^producers: "):
        scenario({})


def test_overrides_swap_rate_and_arrivals() -> None:
    sc = scenario({"rate": 1.0})
    spiked = sc.with_overrides({"producers.app.arrivals": {
        "spike": {"base": 1, "peak": 3, "start": 0, "duration": 10}}})
    assert spiked.producers["app"].arrivals is not None
    back = spiked.with_overrides({"producers.app.rate": 2.0})
    assert back.producers["app"].arrivals is None


def test_nested_override_reaches_into_arrivals_and_autoscale() -> None:
    sc = simq.load(MODELS / "autoscale.yaml").with_overrides({
        "producers.spike_elastic.arrivals.spike.peak": 12,
        "consumers.elastic.autoscale.max": 20,
    })
    assert sc.producers["spike_elastic"].arrivals.spike.peak == 12
    assert sc.consumers["elastic"].autoscale.max == 20
    with pytest.raises(simq.ScenarioError, match=r"must be a rate >= 0 \(msg/s\), got -1"):
        sc.with_overrides({"producers.spike_elastic.arrivals.spike.base": -1})
    with pytest.raises(simq.ScenarioError, match="not a mapping"):
        sc.with_overrides({"consumers.elastic.count.x": 1})


def test_lag_is_the_age_of_the_oldest_waiting_message() -> None:
    from simq.record.measures import lag_at

    arrived = np.array([0.0, 1.0, 2.0, 6.0])
    left = np.array([3.0, 4.0, 5.0, np.nan])
    got = lag_at(arrived, left, np.array([0.5, 2.5, 3.5, 4.5, 5.5, 8.0]))
    np.testing.assert_allclose(got, [0.5, 2.5, 2.5, 2.5, 0.0, 2.0])
