"""Statistics (MSER-5, batch means, percentile CIs, CRN) and the compare table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import simq
from simq.analysis.compare import (
    COMPARE_COLUMNS,
    batch_means_ci,
    format_compare,
    paired,
    replication_values,
)
from simq.analysis.stats import batch_means, mser, percentile_ci, verdict

MODELS = Path(__file__).resolve().parent.parent / "models"


def _short(name: str, **over: object) -> simq.Scenario:
    return simq.load(MODELS / name).with_overrides({"run.until": 6000, "run.warmup": 600,
                                                     **over})


def test_mser_finds_an_initial_transient() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([np.linspace(20, 0, 500), rng.normal(0, 1, 5000)])
    cut = mser(x)
    assert 300 <= cut <= 700  # the ramp (500 values) is cut, the stationary part kept
    assert mser(rng.normal(0, 1, 5000)) < 1000  # nothing much to cut from a flat series


def test_batch_means_covers_the_mean_of_an_ar1_series() -> None:
    # AR(1) with phi = 0.9: naive iid CIs would be far too narrow; batch means of 500
    # are nearly independent. Over 200 series the 95% CI should cover 0 about 190 times;
    # 175 is 3.3 binomial standard deviations (sd = 3.1) below that.
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        e = rng.normal(0, 1, 20_000)
        x = np.empty_like(e)
        x[0] = e[0]
        for i in range(1, len(e)):
            x[i] = 0.9 * x[i - 1] + e[i]
        m, h = batch_means(x, 20)
        covered += abs(m) <= h
    assert covered >= 175


def test_percentile_ci_covers_the_exponential_p95() -> None:
    rng = np.random.default_rng(5)
    true = math.log(20)
    hits = sum(lo <= true <= hi for _, lo, hi in
               (percentile_ci(rng.exponential(1, 2000), 0.95) for _ in range(300)))
    # 95% nominal (order statistics are conservative): 300 trials, sd about 3.8.
    assert hits >= 270


def test_verdict() -> None:
    assert verdict(1.0, 0.1, 1.05) == "within CI"
    assert verdict(1.0, 0.01, 1.05) == "outside CI"
    assert verdict(1.0, 0.01, 1.05, allowance=0.1) == "within CI"
    assert verdict(1.0, math.nan, 1.0) == "no CI"
    assert verdict(1.0, 0.1, math.nan) == "no theory"


def test_compare_has_one_row_per_quantity_with_a_verdict() -> None:
    res = simq.run(_short("mm1.yaml"), replications=4)
    table = simq.compare(res)
    assert list(table.columns) == COMPARE_COLUMNS
    rows = table.set_index("quantity")
    assert rows.loc["queues.broker.wait_mean", "theory"] == pytest.approx(4.0)
    assert rows.loc["latency.mean", "formula"] == pytest.approx(1.0)  # processing only
    assert rows.loc["queues.broker.length_mean", "formula"] == pytest.approx(-0.2)
    assert set(table["verdict"]) <= {"within CI", "outside CI"}
    assert (table["model"] == "M/M/1").all()
    # The relative error is exactly (measured - theory) / theory.
    r = rows.loc["queues.broker.wait_mean"]
    assert r["error"] == pytest.approx((r["measured"] - 4.0) / 4.0)
    assert "queues.broker.wait_mean" in format_compare(table)


def test_compare_says_none_with_the_reason() -> None:
    sc = _short("mm1.yaml", **{"queues.broker.capacity": 3,
                               "consumers.worker.service": "constant(1)"})
    table = simq.compare(simq.run(sc))
    assert table["theory"].isna().all()
    assert table["verdict"].str.startswith("none: ").all()


def test_summary_formulas_gain_the_theory_columns() -> None:
    res = simq.run(_short("md1.yaml"), replications=3)
    f = res.summary["formulas"]
    assert f["latency"]["theory"] == pytest.approx(3.0)
    assert f["queue_length"]["theory"] == pytest.approx(1.6)
    assert f["throughput"]["theory"] == pytest.approx(0.8)
    for q in f.values():
        assert q["theory_model"] == "M/D/1" and q["theory_kind"] == "exact"
        assert q["verdict"] in {"within CI", "outside CI"}
    assert res.summary["theory"]["model"] == "M/D/1"


def test_auto_warmup_is_reported_per_replication() -> None:
    res = simq.run(_short("mm1.yaml", **{"run.warmup": "auto"}), replications=3)
    w = res.summary["warmup"]
    assert w["method"] == "MSER-5" and len(w["per_replication"]) == 3
    assert all(0 <= t <= 3000 for t in w["per_replication"])  # at most half the run
    assert res.summary["window"][0] == pytest.approx(w["seconds"])
    fixed = simq.run(_short("mm1.yaml"), replications=1).summary["warmup"]
    assert fixed == {"method": "fixed", "seconds": 600.0, "per_replication": [600.0]}


def test_auto_warmup_cuts_a_deliberate_transient() -> None:
    # The first 2000 s are overloaded (a second producer), then the load drops to 0.5:
    # MSER-5 must cut most of the backlog's drain.
    sc = simq.loads("""
run: {until: 20000, warmup: auto}
producers:
  app: {to: q, rate: 0.5}
  burst: {to: q, rate: 1.0, stop: 2000}
queues: {q: {}}
consumers: {w: {from: q, rate: 1.0}}
""")
    with pytest.warns(simq.UnstableWarning):  # on paper 1.5 msg/s against 1.0
        res = simq.run(sc, replications=2)
    assert all(t > 2000 for t in res.summary["warmup"]["per_replication"])


def test_batch_means_ci_from_one_run() -> None:
    res = simq.run(_short("mm1.yaml", **{"run.until": 40000, "run.warmup": 2000}))
    m, h = batch_means_ci(res, "latency", batches=20)
    # The same messages, less the remainder that does not fill a 20th batch.
    assert m == pytest.approx(res.summary["latency"]["mean"], rel=2e-3)
    # 95% batch-means CI widened to 99.9% (x 1.9 for 19 df) for a fixed-seed check.
    assert abs(m - 5.0) <= 1.9 * h
    mw, hw = batch_means_ci(res, "wait:broker")
    assert mw == pytest.approx(res.summary["queues"]["broker"]["wait_mean"], rel=2e-3)
    with pytest.raises(ValueError, match="quantity"):
        batch_means_ci(res, "bogus")


def test_common_random_numbers_tighten_a_difference() -> None:
    # One vs two workers at the same arrivals: with CRN (same seed) the paired CI on the
    # difference in mean latency is far tighter than the unpaired one.
    a_sc = _short("mm1.yaml", **{"producers.app.rate": 0.7})
    b_sc = a_sc.with_overrides({"consumers.worker.rate": 1.2})
    a = simq.run(a_sc, replications=6)
    b = simq.run(b_sc, replications=6)
    d, h_paired = paired(a, b, "latency.mean")
    assert d < 0
    va, vb = replication_values(a, "latency.mean"), replication_values(b, "latency.mean")
    h_unpaired = 2.571 * math.sqrt((va.var(ddof=1) + vb.var(ddof=1)) / 6)
    assert h_paired < h_unpaired
    with pytest.raises(ValueError, match="same seed"):
        paired(a, simq.run(b_sc, replications=6, seed=9), "latency.mean")


def test_simq_run_prints_and_stores_the_theory_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from simq.cli import main

    out = tmp_path / "mm1"
    rc = main(["run", str(MODELS / "mm1.yaml"), "--set", "run.until=3000", "--set",
               "run.warmup=300", "--replications", "2", "--out", str(out), "--no-messages"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Measured against theory: M/M/1 (exact)" in text
    assert "queues.broker.wait_mean" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["formulas"]["latency"]["theory"] == pytest.approx(5.0)
    assert summary["formulas"]["latency"]["theory_model"] == "M/M/1"
    assert summary["theory"]["kind"] == "exact"
    assert summary["warmup"]["method"] == "fixed"
    assert "Measured against queueing theory" in (out / "report.html").read_text()


@pytest.mark.parametrize(("value", "half", "shown"), [
    (1.0, 0.0003297, ("1.00000", "0.00033")),
    (0.7964, 0.01107, ("0.796", "0.011")),
    (4.994, 0.3285, ("4.99", "0.33")),
    (15958.0, 120.0, ("15,960", "120")),
    (-0.25, 0.04, ("-0.250", "0.040")),
    (3.2, float("nan"), ("3.2", "-")),
    (-0.0001, 0.014, ("0.000", "0.014")),  # rounds to zero: no sign
])
def test_a_measured_value_is_shown_to_the_precision_of_its_interval(
        value: float, half: float, shown: tuple[str, str]) -> None:
    from simq.analysis.compare import format_estimate

    assert format_estimate(value, half) == shown


def test_value_and_interval_in_one_cell_only_with_an_interval() -> None:
    from simq.analysis.compare import format_pm

    assert format_pm(0.7964, 0.01107) == "0.796 ± 0.011"
    assert format_pm(0.7964, float("nan")) == format_pm(0.7964, 0.0) == "0.7964"
